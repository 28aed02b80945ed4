"""Generate the mixed benchmark capture: real HTTP/DNS traffic between two namespaces.

Usage (root): ``.venv/bin/python bench/make_mixed.py [--size-mb 256] [--seed 1]`` →
``bench/out/mixed-<size>mb-s<seed>.pcap`` (cached: an existing file is reused unless
``--force``). Two network namespaces joined by a veth pair (MTU 1500, GSO limited to one
segment per packet so every captured frame is a real ≤1514-byte frame); the server and
client are bench/mixed_peers.py; tcpdump captures on the server side. The traffic plan
(sizes, order, attacks) is a function of size and seed; timestamps and interleaving of
the 4 client threads naturally vary from run to run.

Non-goals: TLS traffic, traffic to anything but the two private namespaces.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
SRV_ADDR, CLI_ADDR = "10.99.0.1", "10.99.0.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, timeout=30)


class Lab:
    """Namespaces ``skb<pid>s``/``skb<pid>c`` and their veth pair; removed on exit."""

    def __init__(self) -> None:
        tag = f"skb{os.getpid() % 100000}"
        self.srv, self.cli = f"{tag}s", f"{tag}c"
        self.srv_if, self.cli_if = f"{tag}s0", f"{tag}c0"

    def __enter__(self) -> Lab:
        try:
            for ns in (self.srv, self.cli):
                _ip("netns", "add", ns)
                _ip("-n", ns, "link", "set", "lo", "up")
            _ip("link", "add", self.srv_if, "netns", self.srv, "type", "veth",
                "peer", "name", self.cli_if, "netns", self.cli)  # fmt: skip
            for ns, dev, addr in (
                (self.srv, self.srv_if, SRV_ADDR),
                (self.cli, self.cli_if, CLI_ADDR),
            ):
                _ip("-n", ns, "link", "set", dev, "mtu", "1500", "gso_max_segs", "1", "up")
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for ns in (self.srv, self.cli):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)

    def cmd(self, ns: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *args]


def generate(size_mb: int, seed: int, dest: Path) -> None:
    peers = str(HERE / "mixed_peers.py")
    tmp = dest.with_suffix(".part")
    with Lab() as lab:
        server = subprocess.Popen(lab.cmd(lab.srv, sys.executable, peers, "server", "--addr", SRV_ADDR),
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        dump = None
        try:
            assert server.stdout is not None
            if server.stdout.readline().strip() != "ready":
                raise SystemExit("make_mixed: the server did not start")
            dump = subprocess.Popen(lab.cmd(lab.srv, "tcpdump", "-i", lab.srv_if, "-s", "0",
                                            "-B", "131072", "-w", str(tmp), "-n"),
                                    stderr=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(1.0)  # tcpdump has no "ready" signal; it opens within milliseconds
            subprocess.run(lab.cmd(lab.cli, sys.executable, peers, "client", "--addr", SRV_ADDR,
                                   "--size-mb", str(size_mb), "--seed", str(seed)),
                           check=True, timeout=1800)  # fmt: skip
            time.sleep(0.5)
        finally:
            if dump is not None:
                dump.send_signal(signal.SIGINT)
                _out, err = dump.communicate(timeout=60)
                print("\n".join(line for line in err.splitlines() if "packets" in line))
            server.kill()
            server.wait(timeout=30)
    tmp.rename(dest)


def mixed_capture(size_mb: int = 256, seed: int = 1, force: bool = False) -> Path:
    """The cached capture for (size, seed), generated first when missing."""
    OUT.mkdir(exist_ok=True)
    dest = OUT / f"mixed-{size_mb}mb-s{seed}.pcap"
    if dest.exists() and not force:
        return dest
    if os.geteuid() != 0:
        raise SystemExit("make_mixed: generating the capture needs root (network namespaces)")
    started = time.monotonic()
    generate(size_mb, seed, dest)
    print(f"make_mixed: {dest} ({dest.stat().st_size / 1e6:.0f} MB) in "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=256, help="HTTP body volume (default 256)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="regenerate even when cached")
    a = ap.parse_args()
    print(mixed_capture(a.size_mb, a.seed, a.force))


if __name__ == "__main__":
    main()
