"""The capture wake-up floor of the reset lab: kernel timestamp → a trivial reader's hands.

Usage (root): .venv/bin/python bench/capture_floor.py [--sessions 60] [--runs 2]

Builds the namespace lab of tests/test_reset_e2e.py (client, server, bridge, ``tc mirred``
SPAN copy), runs client sessions whose request carries the marker, and reads the SPAN port
with the smallest possible pypcap reader (immediate mode, select + dispatch, a substring
test per frame) that prints, for each marker frame, the time from the kernel's capture
timestamp to the reader holding the bytes. Nothing else runs: this is the part of
capture-to-send latency no sensor can avoid on this machine, and it varies with the
machine's load far more than sekimori's own work does (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_reset_e2e import PORT, SERVER, SERVER_IP, Lab, _sessions, _start, _stop  # noqa: E402

READER = r"""
import select, sys, time
import pcap
iface, seconds = sys.argv[1], float(sys.argv[2])
handle = pcap.pcap(name=iface, snaplen=65535, promisc=True, timeout_ms=100, immediate=True,
                   timestamp_in_ns=True)
handle.setnonblock(True)
fd, out = handle.fileno(), []
def seen(ts, data):
    if b"EVIL-MARKER" in data:
        out.append((time.time() - ts / 1e9) * 1e6)
deadline = time.time() + seconds
while time.time() < deadline:
    if select.select([fd], [], [], 0.1)[0]:
        handle.dispatch(-1, seen)
print(" ".join(f"{x:.0f}" for x in out))
"""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, -(-len(ordered) * int(q) // 100) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=60)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("capture_floor: skipped, needs root (network namespaces)", file=sys.stderr)
        return 0
    lab = Lab()
    lab.build()
    server = None
    try:
        log = Path(tempfile.mkdtemp()) / "server.log"
        server = _start([sys.executable, "-c", SERVER, "0.05", SERVER_IP, str(PORT)], log, lab.srv)
        time.sleep(1)
        for run in range(1, args.runs + 1):
            reader = subprocess.Popen(
                [sys.executable, "-c", READER, lab.capture, str(args.sessions * 0.2 + 5)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            time.sleep(1)
            _sessions(lab, args.sessions, f"floor{run}", timeout=args.sessions + 30)
            out, _ = reader.communicate()
            values = [float(x) for x in out.split()]
            if not values:
                print(f"run {run}: no marker frames seen")
                continue
            print(f"run {run}: {len(values)} frames, capture wake-up µs p50 {_pct(values, 50):.0f} "
                  f"p90 {_pct(values, 90):.0f} p99 {_pct(values, 99):.0f} "
                  f"(load {os.getloadavg()[0]:.2f})")  # fmt: skip
    finally:
        if server is not None:
            _stop(server)
        lab.destroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
