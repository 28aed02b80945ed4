"""Long runs: replaying captures pass after pass grows neither memory nor open files.

A bounded soak: the shared attack captures (or, without ../shared, the demo capture) are
replayed ``SOAK_PASSES`` times through the sensor's stages in one subprocess, timestamps
shifted per pass so earlier flows time out as in a long run. After the first pass (caches,
interned strings and allocator arenas warm up), resident memory stays flat within a small
tolerance and the descriptor count does not change. ``sekimori run``'s entry point is also
called repeatedly in-process to catch descriptor leaks in setup and teardown.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sensor.config import load_config
from sensor.pipeline import RunRequest, run

HERE = Path(__file__).parent
SHARED = HERE.parent.parent / "shared" / "pcaps" / "attacks"
DEMO_PCAP = HERE / "data" / "demo.pcap"
DEMO_RULES = HERE / "data" / "demo.rules"
SOAK_PASSES = int(os.environ.get("SEKIMORI_SOAK_PASSES", "6"))
# Tolerated RSS difference between the second and the last pass: allocator noise, not growth.
FLAT_TOLERANCE = 4 * 1024 * 1024


def soak_captures() -> list[str]:
    found = sorted(str(p) for p in SHARED.glob("*.pcap"))
    return found or [str(DEMO_PCAP)]


def test_soak_memory_and_fds_flat_between_passes(tmp_path: Path) -> None:
    cmd = [sys.executable, str(HERE / "robust_driver.py"), "--rules", str(DEMO_RULES),
           "--eve", str(tmp_path / "eve.json"), "--cache", str(tmp_path / "cache"),
           "--passes", str(SOAK_PASSES)]  # fmt: skip
    for pcap in soak_captures():
        cmd += ["--pcap", pcap]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    passes = result["passes"]
    assert len(passes) == SOAK_PASSES >= 3
    assert result["packets"] > 0
    rss = [p["VmRSS"] for p in passes]
    assert max(rss[1:]) - rss[1] <= FLAT_TOLERANCE, rss
    assert len({p["fds"] for p in passes}) == 1, passes


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_repeated_runs_leak_no_descriptors(tmp_path: Path) -> None:
    config, _ = load_config(None, env={}, sets=[f"detect.cache-dir={tmp_path / 'cache'}"])
    request = RunRequest(pcap=str(DEMO_PCAP), iface=None, rule_files=(str(DEMO_RULES),),
                         eve=str(tmp_path / "eve.json"))  # fmt: skip
    first = run(config, request)
    before = _fds()
    for _ in range(5):
        summary = run(config, request)
        assert summary.alerts == first.alerts > 0
    assert _fds() == before
