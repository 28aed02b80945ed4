"""CLI frame: errors become one line + exit code, config check/dump, run's own checks."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest

from cli.common import CliState, invoke
from cli.main import sekimori
from cli.run import ProgressBar, format_summary, human_bytes
from sensor.config import load_config
from sensor.errors import BusError, ConfigError, SekimoriError

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command in a child process (as a user would)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SEKIMORI_")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def failing_group(exc: BaseException) -> click.Group:
    @click.group()
    @click.option("-v", "--verbose", count=True)
    @click.pass_obj
    def group(state: CliState, verbose: int) -> None:
        state.verbose = verbose

    @group.command()
    def boom() -> None:
        raise exc

    return group


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (SekimoriError("plain"), 1),
        (ConfigError("x.toml:3: stream.midstream: bad"), 2),
        (BusError("redis://h:6379: connection refused"), 5),
    ],
)
def test_sekimori_error_is_one_line_and_its_exit_code(
    capsys, exc: SekimoriError, code: int
) -> None:
    assert invoke(failing_group(exc), ["boom"]) == code
    err = capsys.readouterr().err
    assert err == f"sekimori: error: {exc}\n"


def test_multiline_message_still_prints_one_line(capsys) -> None:
    assert invoke(failing_group(SekimoriError("first\nsecond")), ["boom"]) == 1
    assert capsys.readouterr().err == "sekimori: error: first second\n"


def test_internal_error_hints_at_verbose(capsys) -> None:
    assert invoke(failing_group(RuntimeError("oops")), ["boom"]) == 70
    err = capsys.readouterr().err
    assert err == "sekimori: internal error: RuntimeError: oops (rerun with -v for the traceback)\n"


def test_verbose_shows_the_traceback(capsys) -> None:
    assert invoke(failing_group(RuntimeError("oops")), ["-v", "boom"]) == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("sekimori: internal error: RuntimeError: oops")


def test_ctrl_c_exits_130(capsys) -> None:
    assert invoke(failing_group(KeyboardInterrupt()), ["boom"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_usage_errors_exit_2_with_clicks_message(capsys) -> None:
    assert invoke(sekimori, ["run", "--pcap", "a.pcap", "--iface", "eth0"]) == 2
    assert "give exactly one of --pcap FILE or --iface IF" in capsys.readouterr().err
    assert invoke(sekimori, ["no-such-command"]) == 2
    assert invoke(sekimori, ["--help"]) == 0


def test_real_process_reports_config_error_without_traceback(tmp_path: Path) -> None:
    proc = cli("--config", str(tmp_path / "missing.toml"), "config", "dump")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"sekimori: error: {tmp_path}/missing.toml: cannot read config file: "
        "No such file or directory\n"
    )
    assert proc.stdout == ""


def test_real_process_bad_set_value(tmp_path: Path) -> None:
    proc = cli("run", "--pcap", "x.pcap", "--rules", "r.rules", "--set", "stream.midstream=perhaps")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sekimori: error: --set stream.midstream=perhaps: stream.midstream: "
        "expected a boolean (true/false/yes/no/1/0), got 'perhaps'"
    ]


def test_run_without_pipeline_is_a_clean_error(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sensor.pipeline", None)  # makes the import fail
    code = invoke(sekimori, ["run", "--pcap", "x.pcap", "--rules", "r.rules"])
    assert code == 1
    assert capsys.readouterr().err.endswith(
        "sekimori: error: this build has no detection pipeline (sensor.pipeline)\n"
    )


def test_run_without_rules_is_a_config_error(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sensor.pipeline", object())  # reached only after rules
    assert invoke(sekimori, ["run", "--pcap", "x.pcap"]) == 2
    assert "no rules: give --rules FILE" in capsys.readouterr().err


def test_config_check_ok_warning_and_error(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[stream]\nmidstream = true\n")
    proc = cli("config", "check", str(good))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"{good}: OK\n", "")

    odd = tmp_path / "odd.toml"
    odd.write_text("[stream]\nmidstreams = true\n")
    proc = cli("config", "check", str(odd))
    assert proc.returncode == 0
    assert (
        proc.stderr == f"sekimori: warning: {odd}:2: unknown setting 'stream.midstreams' ignored\n"
    )
    assert cli("config", "check", "--strict", str(odd)).returncode == 1

    bad = tmp_path / "bad.toml"
    bad.write_text("[flow]\nmemcap = 1\n\n[flow-timeouts.tcp]\nnew = 'soon'\n")
    proc = cli("config", "check", str(bad))
    assert proc.returncode == 1
    assert proc.stderr == (
        f"sekimori: error: {bad}:5: flow-timeouts.tcp.new: "
        "expected a non-negative integer or size like 64mb, got 'soon'\n"
    )


def test_config_check_uses_the_global_config_and_ignores_env(tmp_path: Path) -> None:
    good = tmp_path / "c.toml"
    good.write_text("")
    proc = cli("--config", str(good), "config", "check", env={"SEKIMORI_STREAM__MIDSTREAM": "bad"})
    assert proc.returncode == 0, proc.stderr
    assert cli("config", "check").returncode == 2  # no file at all: usage error


def test_config_dump_is_loadable_toml_with_secrets_masked(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('sensor-name = "edge-7"\n[stream]\nmidstream = true\n')
    proc = cli(
        "--config",
        str(conf),
        "config",
        "dump",
        "--set",
        "outputs.redis.url=redis://:hunter2@127.0.0.1:6379/0",
        env={"SEKIMORI_FLOW__MEMCAP": "1mb", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "hunter2" not in proc.stdout
    data = tomllib.loads(proc.stdout)
    assert data["outputs"]["redis"]["url"] == "redis://:***@127.0.0.1:6379/0"
    assert data["stream"]["midstream"] is True and data["flow"]["memcap"] == 1 << 20
    assert data["sensor-name"] == "edge-7"
    # Loading the dump back gives the same configuration (but for the masked secret).
    dumped = tmp_path / "dump.toml"
    dumped.write_text(proc.stdout.replace("redis://:***@", "redis://:hunter2@"))
    again, warnings = load_config(str(dumped), env={"HOME": str(tmp_path)})
    original, _ = load_config(
        str(conf),
        env={"SEKIMORI_FLOW__MEMCAP": "1mb", "HOME": str(tmp_path)},
        sets=["outputs.redis.url=redis://:hunter2@127.0.0.1:6379/0"],
    )
    assert warnings == [] and again == original


def test_json_log_format(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("[nope]\nx = 1\n")
    proc = cli("--config", str(conf), "--log-format", "json", "config", "dump")
    assert proc.returncode == 0
    line = proc.stderr.strip()
    assert line.startswith("{") and '"level":"warning"' in line and "nope.x" in line


SUMMARY = dict(
    packets=12345,
    bytes=3 << 20,
    flows=42,
    alerts=6,
    alerts_by_severity={1: 2, 2: 3, 3: 1},
    decode_events={"ipv4.trunc_pkt": 2},
    kernel_drops=0,
    iface_drops=0,
    elapsed=2.0,
    truncated=None,
    rules_loaded=6,
    rules_skipped={},
)


class Summary:
    def __init__(self, **fields: object) -> None:
        self.__dict__.update(fields)


def test_format_summary() -> None:
    text = format_summary(Summary(**SUMMARY))  # type: ignore[arg-type]
    assert text.splitlines() == [
        "packets: 12,345 (3.0 MiB), flows: 42, elapsed: 2.00 s (6,172 packets/s)",
        "alerts: 6 (severity 1: 2, severity 2: 3, severity 3: 1)",
        "rules: 6 loaded",
        "anomalies: ipv4.trunc_pkt: 2",
    ]


def test_format_summary_drops_truncation_and_skips() -> None:
    fields = dict(
        SUMMARY,
        alerts=0,
        alerts_by_severity={},
        decode_events={},
        kernel_drops=5,
        truncated="file ends inside packet 1234",
        rules_skipped={"unsupported keyword: x": 2},
        elapsed=0.0,
    )
    lines = format_summary(Summary(**fields)).splitlines()  # type: ignore[arg-type]
    assert lines[1] == "alerts: 0"
    assert lines[2] == "rules: 6 loaded, 2 skipped (unsupported keyword: x: 2)"
    assert "drops: kernel 5, interface 0" in lines
    assert lines[-1] == "warning: capture truncated: file ends inside packet 1234"
    assert "(0 packets/s)" in lines[0]


def test_progress_bar_draws_in_place_and_erases() -> None:
    out = io.StringIO()
    bar = ProgressBar(out)
    bar(0, 1000)
    bar(500, 1000)  # within 0.1 s of the first: throttled
    bar(1000, 1000)  # completion is always drawn
    bar.finish()
    text = out.getvalue()
    assert text.count("\r[") == 2
    assert "100%" in text and "0%" in text
    assert text.endswith("\r\x1b[K")


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (5, 2048, 3 << 20, 5 << 30)] == [
        "5 B",
        "2.0 KiB",
        "3.0 MiB",
        "5.0 GiB",
    ]
