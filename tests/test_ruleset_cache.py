"""The rule cache: a second load of unchanged rules comes from the cache and behaves the
same; any change to a file the load read (an include too) rebuilds."""

from __future__ import annotations

from pathlib import Path

from sensor.packet import Packet
from signatures import rulecache
from signatures.ruleset import load_ruleset
from signatures.variables import Variables

RULES = (
    'alert tcp any any -> any 80 (msg:"a"; content:"GET"; dsize:>3; sid:1; rev:1;)\n'
    'alert udp any any -> any 53 (msg:"b"; content:"x"; pcre:"/x+y/"; sid:2;)\n'
)


def _load(files: list[str], cache: Path):
    return load_ruleset(files, Variables.suricata_defaults(), cache_dir=str(cache))


def test_second_load_is_served_from_the_cache_with_working_checks(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(RULES)
    first, _ = _load([str(rules)], tmp_path / "cache")
    assert list((tmp_path / "cache").glob("rules-*.pkl"))
    second, report = _load([str(rules)], tmp_path / "cache")
    assert report.loaded == 2 and second.version == first.version
    sig = next(s for s in second.signatures if s.sid == 1)
    assert sig.check_specs == (("dsize", ">3"),)
    p = Packet(1, 0, 0, 1, b"")
    p.payload = b"GET /"
    assert all(check(p) for check in sig.checks)  # dsize rebuilt from its spec
    p.payload = b"GE"
    assert not all(check(p) for check in sig.checks)
    pcre_sig = next(s for s in second.signatures if s.sid == 2)
    prog = pcre_sig.payload.programs["pkt_data"]
    from signatures.payload import MatchEnv

    assert prog.match(b"..xxy..", MatchEnv()) and not prog.match(b"..y..", MatchEnv())


def test_an_edited_include_invalidates_the_cache(tmp_path: Path) -> None:
    inc = tmp_path / "inc.rules"
    inc.write_text('alert tcp any any -> any any (msg:"i"; content:"one"; sid:10;)\n')
    top = tmp_path / "top.rules"
    top.write_text(f"include {inc.name}\n")
    first, _ = _load([str(top)], tmp_path / "cache")
    inc.write_text('alert tcp any any -> any any (msg:"i"; content:"two"; sid:10;)\n')
    second, _ = _load([str(top)], tmp_path / "cache")
    assert first.version != second.version
    fp = second.signatures[0].payload.fast_pattern
    assert fp is not None and fp.pattern == b"two"


def test_a_damaged_entry_is_rebuilt_not_fatal(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text(RULES)
    _load([str(rules)], tmp_path / "cache")
    for entry in (tmp_path / "cache").glob("rules-*.pkl"):
        entry.write_bytes(b"not a pickle")
    ruleset, report = _load([str(rules)], tmp_path / "cache")
    assert report.loaded == 2 and len(ruleset.signatures) == 2


def test_cache_key_depends_on_variables() -> None:
    v = Variables.suricata_defaults()
    k1 = rulecache.cache_key(["a.rules"], v, None, frozenset({"pkt_data"}))
    k2 = rulecache.cache_key(
        ["a.rules"], v.with_overrides(addresses={"HOME_NET": "10.0.0.0/8"}), None,
        frozenset({"pkt_data"}),
    )  # fmt: skip
    assert k1 != k2
