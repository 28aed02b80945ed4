"""Floods keep the sensor within its configured caps, count what they evict, and keep going.

Each test writes a flood capture (tests/robust_gen.py), runs the sensor's stages over it in
a fresh subprocess (tests/robust_driver.py) and checks three things: the structure's own
accounting never passes its cap, the overflow was counted (evictions, drops), and the
process's peak resident set stays under the configured caps plus a fixed allowance for the
interpreter, the rules and allocator slack. Memory, not time, is asserted (speed belongs to
``make bench``). Small caps are configured so the floods hit them quickly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import robust_gen as gen

HERE = Path(__file__).parent
MB = 1024 * 1024
# What the process needs besides the capped structures: interpreter, imports, compiled
# rules, the capture mapping, pymalloc arenas not yet returned to the OS.
FIXED_ALLOWANCE = 48 * MB
# Python objects cost more than the tables' per-entry estimates; allowed factor over a cap.
OVERHEAD_FACTOR = 3

FLOW_CAPS = ["flow.max-flows=20000", "flow.memcap=8mb", "stream.reassembly.memcap=4mb"]


def drive(
    tmp: Path, frames: Iterator[gen.Frame], sets: list[str], passes: int = 1
) -> dict[str, Any]:
    pcap = tmp / "flood.pcap"
    gen.write_pcap(pcap, frames)
    rules = tmp / "flood.rules"
    rules.write_text(gen.ALERT_FLOOD_RULE)
    cmd = [sys.executable, str(HERE / "robust_driver.py"), "--pcap", str(pcap),
           "--rules", str(rules), "--eve", str(tmp / "eve.json"), "--cache", str(tmp / "cache"),
           "--passes", str(passes)]  # fmt: skip
    for item in sets:
        cmd += ["--set", item]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def rss_growth(result: dict[str, Any]) -> int:
    return int(result["after"]["VmHWM"] - result["before"]["VmRSS"])


def test_syn_flood_random_sources_evicts_and_stays_under_flow_memcap(tmp_path: Path) -> None:
    r = drive(tmp_path, gen.syn_flood(60_000), FLOW_CAPS)
    stats = r["flow_stats"]
    assert r["packets"] == 60_000
    assert stats["flows_created"] == 60_000  # every SYN was still tracked: processing continued
    assert r["peak_flows"] <= 20_000
    assert r["peak_memuse"] <= 8 * MB
    assert stats["evicted_memcap"] > 0
    caps = 8 * MB + 4 * MB
    assert rss_growth(r) <= OVERHEAD_FACTOR * caps + FIXED_ALLOWANCE, r


def test_fragment_flood_overlapping_and_incomplete_is_bounded(tmp_path: Path) -> None:
    r = drive(tmp_path, gen.fragment_flood(20_000), FLOW_CAPS)
    dec = r["decoder"]
    assert r["peak_defrag_datagrams"] <= 4096  # DecodeConfig.defrag_max_datagrams
    assert dec["defrag_evicted"] > 0
    assert dec["ipv4.frag_overlap"] > 0
    assert dec["defrag_reassembled"] == 5_000  # the completing datagrams still complete
    assert rss_growth(r) <= FIXED_ALLOWANCE, r


def test_out_of_order_flood_respects_ooo_budgets(tmp_path: Path) -> None:
    sets = [
        *FLOW_CAPS,
        "stream.reassembly.max-ooo-bytes=65536",
        "stream.reassembly.max-ooo-segments=64",
    ]
    r = drive(tmp_path, gen.ooo_flood(40, 300), sets)
    stats = r["flow_stats"]
    assert stats["ooo_dropped"] > 0
    assert r["peak_memuse"] <= 8 * MB + 4 * MB
    # 40 sessions x 64 KiB held at most, well under the reassembly memcap
    assert rss_growth(r) <= OVERHEAD_FACTOR * 40 * 65536 + FIXED_ALLOWANCE, r


def test_out_of_order_flood_hits_reassembly_memcap(tmp_path: Path) -> None:
    sets = ["stream.reassembly.memcap=1mb", "flow.memcap=64mb"]
    r = drive(tmp_path, gen.ooo_flood(30, 200), sets)
    stats = r["flow_stats"]
    assert stats["reassembly_memcap_drops"] > 0 or stats["evicted_memcap"] > 0
    assert rss_growth(r) <= OVERHEAD_FACTOR * 2 * MB + FIXED_ALLOWANCE, r


def test_tiny_segment_streams_are_reassembled_and_bounded(tmp_path: Path) -> None:
    r = drive(tmp_path, gen.tiny_segments(10, 400), FLOW_CAPS)
    assert r["flow_stats"]["tcp_sessions"] == 10
    assert r["flow_stats"]["flows_created"] == 10
    assert rss_growth(r) <= FIXED_ALLOWANCE, r


def test_alert_flood_every_alert_written_memory_flat(tmp_path: Path) -> None:
    r = drive(tmp_path, gen.alert_flood(30_000), FLOW_CAPS)
    assert r["alerts"] == 30_000
    lines = (tmp_path / "eve.json").read_bytes().count(b"\n")
    assert lines == 30_000
    assert r["peak_flows"] <= 20_000
    assert rss_growth(r) <= OVERHEAD_FACTOR * 8 * MB + FIXED_ALLOWANCE, r


@pytest.mark.parametrize("size", [20_000, 60_000])
def test_longer_floods_stay_under_the_same_cap(tmp_path: Path, size: int) -> None:
    """Once the cap is reached, a longer flood is held to the same bound as a shorter one."""
    caps = ["flow.max-flows=5000", "flow.memcap=4mb"]
    r = drive(tmp_path, gen.syn_flood(size, seed=size), caps)
    assert r["peak_flows"] <= 5000
    assert rss_growth(r) <= OVERHEAD_FACTOR * 4 * MB + FIXED_ALLOWANCE, r
