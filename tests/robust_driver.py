"""Run the sensor's stages over captures in a fresh process and report memory and counters.

Scope: a subprocess for the flood and soak tests, so the resident set size measured
(``/proc/self/status``: VmRSS, VmHWM) belongs to the sensor's work alone and not to pytest.
It composes the same stages as ``sekimori run`` (capture → decode → flow/stream → detect →
alert record → EVE file) to read the counters the run summary does not carry (flow
evictions, defrag drops, the flow table's memory estimate), and prints one JSON object.

Usage: ``python robust_driver.py --pcap F [--pcap F ...] --rules R --eve OUT
[--passes N] [--set KEY=VALUE ...]``. Each pass replays every capture with timestamps
shifted by a day so earlier flows time out as they would in a long run.

Non-goals: being a second pipeline; anything the product ships (this lives in tests/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from sensor.capture import open_capture
from sensor.config import load_config
from sensor.decode import Decoder
from sensor.detect import Detector
from sensor.flow import FlowTable
from sensor.output.alert import alert_record
from sensor.output.eve import EveWriter
from sensor.packet import Packet
from signatures.ruleset import load_ruleset
from signatures.variables import Variables

PASS_SHIFT = 86_400


def proc_status() -> dict[str, int]:
    """VmRSS/VmHWM in bytes and the number of open file descriptors."""
    out: dict[str, int] = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    out["fds"] = len(os.listdir("/proc/self/fd"))
    return out


class Stages:
    """Decode → flows → detect → EVE, with the peaks the tests assert on."""

    def __init__(self, args: argparse.Namespace) -> None:
        config, _warnings = load_config(None, env={}, sets=args.set)
        variables = Variables(address_groups=dict(config.vars.address_groups),
                              port_groups=dict(config.vars.port_groups))  # fmt: skip
        ruleset, _report = load_ruleset(args.rules, variables, cache_dir=args.cache)
        self.decoder = Decoder()
        self.flows = FlowTable(config.flow, config.stream)
        self.detector = Detector(ruleset)
        self.eve = EveWriter(args.eve)
        self.packets = self.alerts = 0
        self.peak_flows = self.peak_memuse = self.peak_defrag = 0
        self.next_expire = 0

    def packet(self, p: Packet) -> None:
        self.packets += 1
        extra = self.decoder.decode(p)
        for q in (p, extra):
            if q is not None and not q.bad:
                self.inspect(q)
        if p.ts_sec >= self.next_expire:
            self.flows.expire(p.ts_sec)
            self.next_expire = p.ts_sec + 1
            self.peaks()

    def inspect(self, p: Packet) -> None:
        if p.ipver and (p.l4_off >= 0 or p.proto not in (6, 17, 1, 58)) and not p.frag:
            self.flows.process(p)
        for sig in self.detector.inspect(p):
            self.alerts += 1
            self.eve.write(alert_record(sig, p, "detect"))

    def peaks(self) -> None:
        self.peak_flows = max(self.peak_flows, len(self.flows))
        self.peak_memuse = max(self.peak_memuse, self.flows.memuse)
        self.peak_defrag = max(self.peak_defrag, self.decoder.defrag.tracked)

    def replay(self, path: str, shift: int) -> None:
        for cnt, (sec, usec, linktype, data, wirelen) in enumerate(open_capture(path), 1):
            p = Packet(cnt, sec + shift, usec, linktype, data)
            p.wirelen = wirelen
            self.packet(p)
        self.peaks()

    def report(self) -> dict[str, Any]:
        stats = self.flows.stats.as_dict()
        return {
            "packets": self.packets,
            "alerts": self.alerts,
            "peak_flows": self.peak_flows,
            "peak_memuse": self.peak_memuse,
            "peak_defrag_datagrams": self.peak_defrag,
            "flow_stats": stats,
            "decoder": dict(self.decoder.stats),
            "stream_events": dict(self.flows.events),
        }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", action="append", required=True)
    ap.add_argument("--rules", action="append", required=True)
    ap.add_argument("--eve", default="/dev/null")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--passes", type=int, default=1)
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args(argv)
    stages = Stages(args)
    before = proc_status()
    per_pass = []
    for n in range(args.passes):
        for path in args.pcap:
            stages.replay(path, n * PASS_SHIFT)
        per_pass.append(proc_status())
    stages.flows.flush_all()
    stages.eve.close()
    out = stages.report() | {"before": before, "passes": per_pass, "after": proc_status()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
