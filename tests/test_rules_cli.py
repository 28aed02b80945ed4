"""sekimori rules check / stats / test on real rule files and a generated capture."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from pcapgen import TcpSession, write_pcap

from cli.common import CliState
from cli.main import sekimori

GOOD = 'alert tcp any any -> any 80 (msg:"get"; content:"GET"; sid:1; rev:1;)\n'
BAD = 'alert tcp any any -> any 80 (msg:"bad"; content:"|4G|"; sid:2;)\n'
UNSUPPORTED = 'alert tcp any any -> any any (msg:"u"; lua:script.lua; sid:3;)\n'


def _invoke(tmp_path: Path, *args: str):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "SEKIMORI_CONFIG": ""}
    return CliRunner().invoke(sekimori, list(args), env=env, obj=CliState(), catch_exceptions=False)


def test_check_lists_every_problem_with_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(GOOD + BAD + UNSUPPORTED)
    result = _invoke(tmp_path, "rules", "check", str(rules))
    assert result.exit_code == 1
    assert f"{rules}:2: error:" in result.output
    assert f"{rules}:3: error: keyword 'lua' is not yet supported" in result.output
    assert "1 rules loaded, 2 skipped" in result.output
    assert "unsupported keyword: lua" in result.output


def test_check_passes_a_clean_file(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(GOOD)
    assert _invoke(tmp_path, "rules", "check", str(rules)).exit_code == 0


def test_stats_shows_groups_and_fast_patterns(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(GOOD + 'alert ip 192.0.2.1 any -> any any (msg:"ip"; sid:9;)\n')
    result = _invoke(tmp_path, "rules", "stats", str(rules))
    assert result.exit_code == 0
    tcp = next(line for line in result.output.splitlines() if line.startswith("tcp "))
    # rules, prefiltered, patterns (summed over the to-server and to-client databases),
    # always, ip-only
    assert tcp.split()[1:6] == ["2", "1", "2", "0", "1"]


def test_test_counts_which_rules_fire(tmp_path: Path) -> None:
    s = TcpSession().handshake().send(True, b"GET / HTTP/1.0\r\n\r\n").close()
    pcap = write_pcap(tmp_path / "t.pcap", s.frames)
    rules = tmp_path / "r.rules"
    rules.write_text(GOOD)
    result = _invoke(tmp_path, "rules", "test", str(rules), "--pcap", str(pcap))
    assert result.exit_code == 0
    assert "1 alerts from 1 rules" in result.output and "1:1  get" in result.output
