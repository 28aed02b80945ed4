"""Alerts per second end to end: an alert-heavy capture through `sekimori run --redis`.

Usage: .venv/bin/python bench/alerts.py [--packets 20000] [--rules 20]

Builds a capture of UDP datagrams that each match every one of N rules (so each packet
raises N alerts), starts a throw-away redis-server on a free loopback port, runs the real
pipeline with EVE to /dev/null and the Redis sink, and reports alerts per second from the
first packet to the last alert acknowledged by Redis, checking the stream holds every
alert. Issue 4's target is 50,000 alerts/s on this 2-core machine.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dpkt
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sensor.config import load_config
from sensor.pipeline import RunRequest, run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _capture(path: Path, packets: int) -> None:
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
        for i in range(packets):
            udp = dpkt.udp.UDP(sport=10000 + i % 5000, dport=9999, data=b"ALERT-ME " + bytes(40))
            udp.ulen = len(udp)
            ip = dpkt.ip.IP(src=bytes([10, 1, i >> 8 & 255, i & 255]), dst=b"\x0a\x02\x00\x01",
                            p=17, data=udp)  # fmt: skip
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)
            w.writepkt(bytes(eth), ts=1_700_000_000 + i * 1e-5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--packets", type=int, default=20000)
    ap.add_argument("--rules", type=int, default=20)
    args = ap.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server not installed")
    with tempfile.TemporaryDirectory(prefix="sekimori-bench-") as tmp:
        work = Path(tmp)
        pcap = work / "alerts.pcap"
        _capture(pcap, args.packets)
        rules = work / "alerts.rules"
        rules.write_text("".join(
            f'alert udp any any -> any 9999 (msg:"bench {n}"; content:"ALERT-ME"; sid:{n};)\n'
            for n in range(1, args.rules + 1)
        ))  # fmt: skip
        port = _free_port()
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            client = redis.Redis(port=port, socket_timeout=2)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            url = f"redis://127.0.0.1:{port}/0"
            config, _ = load_config(None, env={}, sets=[f"detect.cache-dir={work / 'cache'}",
                                                        f"outputs.redis.spool-dir={work / 'spool'}",
                                                        "outputs.redis.maxlen=0"])  # fmt: skip
            request = RunRequest(pcap=str(pcap), iface=None, rule_files=(str(rules),),
                                 eve="/dev/null", redis_url=url)  # fmt: skip
            run(config, request)  # warm the rule cache; the timed run below starts clean
            client.delete("sekimori:alerts")
            t0 = time.perf_counter()
            summary = run(config, request)
            elapsed = time.perf_counter() - t0
            in_stream = int(client.xlen("sekimori:alerts"))
        finally:
            server.terminate()
            server.wait(timeout=10)
    rate = summary.alerts / elapsed
    print(f"{summary.packets:,} packets, {summary.alerts:,} alerts ({args.rules} per packet) "
          f"in {elapsed:.2f} s (rule loading included): {rate:,.0f} alerts/s end to end; "
          f"{in_stream:,} in the Redis stream")  # fmt: skip
    if in_stream != summary.alerts:
        sys.exit("the stream does not hold every alert")


if __name__ == "__main__":
    main()
