"""``--workers N`` on capture files: the same alerts as one process, flows kept whole.

The capture is generated (pcapgen): many interleaved TCP sessions (attacks in single
segments, split across segments, after a sequence gap so only flow end finds them, and a
flowbits pair spanning both directions), UDP, ICMP and fragmented UDP datagrams. Each
run goes through the real pipeline in forked worker processes. Rules that track state per
host across flows (threshold by_src/by_dst, hostbits) are left out on purpose: with
several workers that state is per worker (docs/performance.md, "Scale-out").
"""

from __future__ import annotations

import json
import random
import socket
from collections import Counter
from pathlib import Path

import dpkt
import pytest
from pcapgen import TcpSession, eth_ip, icmp_echo, udp, write_pcap

from sensor.config import load_config
from sensor.errors import ConfigError
from sensor.flow_hash import FlowHasher, split_capture
from sensor.pipeline import RunRequest, run
from sensor.workers import run_parallel

RULES = """\
alert tcp any any -> any any (msg:"evil"; flow:established,to_server; content:"EVIL-PATTERN"; sid:1;)
alert tcp any any -> any any (msg:"split"; content:"SPLITATTACK"; sid:2;)
alert udp any any -> any any (msg:"udp"; content:"bad-udp"; sid:3;)
alert icmp any any -> any any (msg:"big ping"; dsize:>100; sid:4;)
alert udp any any -> any any (msg:"fragmented"; content:"FRAGATTACK"; sid:5;)
alert tcp any any -> any 80 (msg:"login"; content:"LOGIN"; flowbits:set,login; flowbits:noalert; sid:6;)
alert tcp any 80 -> any any (msg:"welcome after login"; content:"WELCOME"; flowbits:isset,login; sid:7;)
alert tcp any any -> any any (msg:"after gap"; content:"GAPATTACK"; sid:8;)
"""


def _session(i: int, rng: random.Random) -> list[bytes]:
    s = TcpSession(client=f"10.0.{i // 200}.{i % 200 + 1}", server="192.0.2.80",
                   cport=20000 + i, sport=80, cisn=rng.randrange(1 << 31), sisn=rng.randrange(1 << 31))  # fmt: skip
    s.handshake()
    kind = i % 5
    if kind == 0:
        s.send(True, b"GET /?q=EVIL-PATTERN HTTP/1.1\r\n\r\n").ack(False)
    elif kind == 1:
        s.send(True, b"xxxxSPLIT").send(True, b"ATTACKyyyy").ack(False)
    elif kind == 2:
        s.send(True, b"LOGIN user\r\n").ack(False).send(False, b"WELCOME user\r\n").ack(True)
    elif kind == 3:  # a segment never arrives: the data after it is only seen at flow end
        s.send(True, b"A" * 100, advance=True)
        s.cseq += 50
        s.send(True, b"zzGAPATTACKzz")
        return s.frames  # no close: the flow ends with the capture
    else:
        s.send(True, b"GET / HTTP/1.1\r\n\r\n").send(False, b"HTTP/1.1 200 OK\r\n\r\n")
    s.close()
    return s.frames


def _fragments(i: int) -> list[bytes]:
    payload = b"x" * 60 + b"FRAGATTACK" + b"y" * 60
    u = dpkt.udp.UDP(sport=5000 + i, dport=9999, data=payload)
    u.ulen = len(u)
    body = bytes(u)
    frames = []
    for off, last in ((0, False), (64, True)):
        chunk = body[off : off + 64] if not last else body[off:]
        ip = dpkt.ip.IP(src=socket.inet_aton(f"10.9.0.{i + 1}"), dst=socket.inet_aton("192.0.2.53"),
                        p=17, id=0x1000 + i, offset=off // 8, mf=0 if last else 1, data=chunk)  # fmt: skip
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip)
        frames.append(bytes(eth))
    return frames


def make_capture(path: Path, sessions: int = 120, seed: int = 5) -> Path:
    rng = random.Random(seed)
    streams = [_session(i, rng) for i in range(sessions)]
    streams += [
        [udp(f"10.1.0.{i + 1}", "192.0.2.53", 3000 + i, 53, b"q bad-udp q")] for i in range(20)
    ]
    streams += [
        [icmp_echo(f"10.2.0.{i + 1}", "192.0.2.1", data=b"p" * (50 + 20 * i))] for i in range(6)
    ]
    streams += [_fragments(i) for i in range(8)]
    frames: list[bytes] = []
    while streams:  # interleave, keeping each stream's own order
        k = rng.randrange(len(streams))
        frames.append(streams[k].pop(0))
        if not streams[k]:
            streams.pop(k)
    return write_pcap(path, frames)


def _alerts(eve: Path) -> Counter[tuple[object, ...]]:
    out: Counter[tuple[object, ...]] = Counter()
    for line in eve.read_text().splitlines():
        r = json.loads(line)
        if r.get("event_type") == "alert":
            out[(r["alert"]["signature_id"], r.get("pcap_cnt"), r["src_ip"], r.get("src_port"),
                 r["dest_ip"], r.get("dest_port"))] += 1  # fmt: skip
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("workers")
    rules = d / "w.rules"
    rules.write_text(RULES)
    return make_capture(d / "mixed.pcap"), rules


def _run(capture: tuple[Path, Path], tmp_path: Path, n: int) -> tuple[object, Path]:
    pcap, rules = capture
    config, _ = load_config(None, sets=[f"detect.cache-dir={tmp_path / 'cache'}"])
    eve = tmp_path / f"eve-{n}.json"
    request = RunRequest(pcap=str(pcap), iface=None, rule_files=(str(rules),), eve=str(eve))
    summary = run(config, request) if n == 1 else run_parallel(config, request, n)
    return summary, eve


@pytest.mark.parametrize("n", [2, 3])
def test_same_alerts_as_one_process(capture: tuple[Path, Path], tmp_path: Path, n: int) -> None:
    one, eve1 = _run(capture, tmp_path, 1)
    many, even = _run(capture, tmp_path, n)
    expected = _alerts(eve1)
    assert {key[0] for key in expected} == {1, 2, 3, 4, 5, 7, 8}  # every kind fired
    assert _alerts(even) == expected
    for field in ("packets", "bytes", "flows", "alerts", "alerts_by_severity"):
        assert getattr(many, field) == getattr(one, field), field


def test_merged_output_is_in_capture_order(capture: tuple[Path, Path], tmp_path: Path) -> None:
    _summary, eve = _run(capture, tmp_path, 2)
    counts = [json.loads(line).get("pcap_cnt") for line in eve.read_text().splitlines()]
    numbered = [c for c in counts if c is not None]
    assert numbered == sorted(numbered)


def test_every_flow_stays_on_one_worker(capture: tuple[Path, Path], tmp_path: Path) -> None:
    pcap, _rules = capture
    paths, numbers, truncated = split_capture(str(pcap), 2, str(tmp_path))
    assert truncated is None
    assert all(len(x) > 50 for x in numbers)  # both workers get a real share
    owner: dict[tuple[object, ...], int] = {}
    for k, path in enumerate(paths):
        for _ts, buf in dpkt.pcapng.Reader(open(path, "rb")):  # noqa: SIM115
            ip = dpkt.ethernet.Ethernet(buf).data
            l4 = ip.data
            ports = (l4.sport, l4.dport) if isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP) else (0, 0)
            key = (frozenset(((ip.src, ports[0]), (ip.dst, ports[1]))), ip.p)
            assert owner.setdefault(key, k) == k, "a flow was split across workers"


def test_fragments_follow_their_datagram() -> None:
    hasher = FlowHasher(4)
    frames = [f for i in range(16) for f in _fragments(i)]
    for first, second in zip(frames[::2], frames[1::2]):
        assert hasher.worker(1, first) == hasher.worker(1, second)


def test_both_directions_hash_alike() -> None:
    hasher = FlowHasher(7)
    s = TcpSession(client="10.0.0.1", server="10.0.0.2", cport=1234, sport=80).handshake()
    assert len({hasher.worker(1, f) for f in s.frames}) == 1
    v6 = [eth_ip("10.0.0.1", "10.0.0.2", dpkt.udp.UDP(sport=1, dport=2), 17)]
    assert hasher.worker(1, v6[0]) in range(7)
    assert hasher.worker(1, b"\x00" * 5) == 0  # runt: never an error


def test_redis_with_workers_is_refused(capture: tuple[Path, Path], tmp_path: Path) -> None:
    pcap, rules = capture
    config, _ = load_config(None)
    request = RunRequest(pcap=str(pcap), iface=None, rule_files=(str(rules),), eve=None,
                         redis_url="redis://127.0.0.1:1")  # fmt: skip
    with pytest.raises(ConfigError, match="Redis"):
        run_parallel(config, request, 2)
