"""The profiler (sensor/profile.py) and the bench harness's pure parts.

The profile is checked on a real run of the demo capture through the bench driver
(subprocess, the pipeline instrumented from outside): every packet passes the capture and
decode stages, the stage times add up to the measured span, and the per-rule table names
the demo rules that fired. No timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sensor.profile import STAGES, Profiler, format_report

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import engines  # noqa: E402
from mixed_peers import plan  # noqa: E402


def _driver(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(ROOT / "bench" / "sekimori_driver.py"),
           "--pcap", str(ROOT / "tests/data/demo.pcap"), "--rules", str(ROOT / "tests/data/demo.rules"),
           "--set", f"detect.cache-dir={tmp_path / 'cache'}", *extra]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def test_profile_of_a_real_run(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    run = _driver(
        tmp_path, "--profile-rules", "--json", str(out), "--eve", str(tmp_path / "e.json")
    )
    prof = json.loads(out.read_text())
    stages = prof["stages"]
    assert set(stages) == {*STAGES, "other"}
    assert prof["packets"] > 0
    assert stages["capture"]["calls"] == prof["packets"]
    assert stages["decode"]["calls"] == prof["packets"]
    assert stages["verify"]["calls"] > 0
    total = sum(s["seconds"] for s in stages.values())
    assert total == pytest.approx(prof["wall_seconds"], rel=1e-6)
    records = [json.loads(line) for line in (tmp_path / "e.json").open()]
    fired = {r["alert"]["signature_id"] for r in records if r["event_type"] == "alert"}
    matched = {r["sid"] for r in prof["rules"] if r["matches"]}
    assert fired and fired <= matched
    assert all(r["checks"] >= r["matches"] for r in prof["rules"])
    assert "profile:" in run.stderr and "verify" in run.stderr


def test_nested_stages_are_exclusive() -> None:
    prof = Profiler()
    inner = prof.timed("verify", lambda x: x + 1)
    outer = prof.timed("detect", lambda x: inner(inner(x)))
    assert outer(1) == 3
    report = prof.report()
    by = {s.name: s for s in report.stages}
    assert by["detect"].calls == 1 and by["verify"].calls == 2
    assert by["detect"].seconds >= 0 and by["verify"].seconds >= 0
    assert "detect" in format_report(report)


def test_instrument_skips_what_is_missing() -> None:
    class Bare:
        pass

    Profiler().instrument(Bare())  # nothing to wrap: no error


def test_agreement_counts_by_sid() -> None:
    a = Counter({(1, 10): 2, (2, 11): 1})
    b = Counter({(1, 12): 1, (3, 13): 1})
    common, share = engines.agreement(a, b)
    assert common == 1
    assert share == pytest.approx(1 / 3)
    assert engines.agreement(Counter(), Counter()) == (0, 1.0)


def test_mixed_plan_is_reproducible() -> None:
    assert plan(8, 1) == plan(8, 1)
    assert plan(8, 1) != plan(8, 2)
    kinds = Counter(kind for kind, _ in plan(32, 1))
    assert kinds["get"] > 100 and kinds["dns"] > 20


@pytest.mark.skipif(not engines.STOCK_YAML.exists(), reason="suricata not installed")
def test_suricata_config_keeps_only_alerts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "OUT", tmp_path)
    text = engines.bench_yaml().read_text()
    eve = text[text.index("  - eve-log:") : text.index("  - http-log:")]
    assert "      types:\n        - alert\n" in eve
    assert "- dns" not in eve.split("types:")[1]
    fast = text[text.index("  - fast:") :].splitlines()[1]
    assert fast.strip() == "enabled: no"
