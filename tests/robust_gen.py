"""Hostile traffic for the robustness tests: packet mutation and flood capture generators.

Scope: deterministic (seeded) generators of Ethernet/IPv4 frames built with ``struct`` (fast
enough for hundreds of thousands of frames), a byte-level mutator for real packets, and a
pcap writer. Each flood targets one cap of the sensor: the flow table (SYN flood from random
sources), the defragmenter (overlapping and never-completed fragments), the stream engine's
out-of-order budget (segments beyond a hole), tiny-segment streams, and the alert path.

Non-goals: realism beyond what reaches the code under test; checksums are left zero (the
sensor does not validate them, as Suricata's default ``checksum-validation: auto`` on
captures); IPv6 floods (the same caps apply to both IP versions).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

ETH_HDR = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
TH_FIN, TH_SYN, TH_RST, TH_PSH, TH_ACK = 0x01, 0x02, 0x04, 0x08, 0x10
Frame = tuple[float, bytes]


def ipv4(src: int, dst: int, proto: int, payload: bytes, *, ident: int = 1,
         frag: int = 0, mf: bool = False) -> bytes:  # fmt: skip
    """An Ethernet frame carrying one IPv4 packet; ``frag`` is the offset in 8-byte units."""
    flags = (0x2000 if mf else 0) | (frag & 0x1FFF)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident & 0xFFFF, flags,
                      64, proto, 0, src.to_bytes(4, "big"), dst.to_bytes(4, "big"))  # fmt: skip
    return ETH_HDR + hdr + payload


def tcp(src: int, dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
        data: bytes = b"") -> bytes:  # fmt: skip
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      5 << 4, flags, 65535, 0, 0)  # fmt: skip
    return ipv4(src, dst, 6, seg + data)


def udp(src: int, dst: int, sport: int, dport: int, data: bytes) -> bytes:
    return ipv4(src, dst, 17, struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data)


def write_pcap(path: Path, frames: Iterable[Frame], snaplen: int = 65535) -> int:
    """Write (timestamp, frame) pairs as a little-endian microsecond pcap; return the count."""
    n = 0
    with open(path, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        for ts, frame in frames:
            sec = int(ts)
            fh.write(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(frame), len(frame)))
            fh.write(frame)
            n += 1
    return n


T0 = 1_700_000_000.0
SERVER = 0x0A000001  # 10.0.0.1, inside the default HOME_NET


def syn_flood(n: int, seed: int = 1) -> Iterator[Frame]:
    """SYNs from ``n`` random sources and ports to one server, 10 000 per capture second."""
    rng = random.Random(seed)
    for i in range(n):
        src = rng.getrandbits(32) | 0x01000000
        yield T0 + i / 10_000, tcp(src, SERVER, rng.randrange(1024, 65536), 80,
                                   rng.getrandbits(32), 0, TH_SYN)  # fmt: skip


def fragment_flood(n: int, seed: int = 2) -> Iterator[Frame]:
    """Never-completed datagrams (first and middle pieces, no last one) mixed with
    overlapping fragments of datagrams that do complete, each with a fresh IP id."""
    rng = random.Random(seed)
    for i in range(n):
        src = 0xC0A80000 | rng.getrandbits(16)
        ident = rng.getrandbits(16)
        ts = T0 + i / 10_000
        if i % 4:
            # incomplete: 1-3 pieces with MF set, the tail never arrives
            for k in range(rng.randint(1, 3)):
                yield ts, ipv4(src, SERVER, 17, bytes(rng.getrandbits(8) for _ in range(64)),
                               ident=ident, frag=k * 8, mf=True)  # fmt: skip
        else:
            # overlapping pieces that complete (Suricata's BSD policy decides the overlap)
            yield ts, ipv4(src, SERVER, 17, b"A" * 64, ident=ident, frag=0, mf=True)
            yield ts, ipv4(src, SERVER, 17, b"B" * 64, ident=ident, frag=4, mf=True)
            yield ts, ipv4(src, SERVER, 17, b"C" * 24, ident=ident, frag=8, mf=False)


def _handshake(c: int, s: int, cp: int, isn_c: int, isn_s: int, ts: float) -> list[Frame]:
    return [
        (ts, tcp(c, s, cp, 80, isn_c, 0, TH_SYN)),
        (ts, tcp(s, c, 80, cp, isn_s, isn_c + 1, TH_SYN | TH_ACK)),
        (ts, tcp(c, s, cp, 80, isn_c + 1, isn_s + 1, TH_ACK)),
    ]


def ooo_flood(sessions: int, segments: int, size: int = 512, seed: int = 3) -> Iterator[Frame]:
    """Sessions whose first data segment never arrives: everything after the hole is held
    out of order until the per-direction (max-ooo-*) and global (memcap) budgets bite."""
    rng = random.Random(seed)
    for k in range(sessions):
        c = 0xC0A80100 + k
        cp = 20000 + k
        isn = rng.getrandbits(31)
        ts = T0 + k
        yield from _handshake(c, SERVER, cp, isn, 1000, ts)
        order = list(range(1, segments + 1))
        rng.shuffle(order)
        for j in order:  # segment 0 (the hole) is never sent
            payload = bytes([65 + j % 26]) * size
            yield ts, tcp(c, SERVER, cp, 80, isn + 1 + j * size, 1001, TH_ACK | TH_PSH, payload)


def tiny_segments(sessions: int, nbytes: int, seed: int = 4) -> Iterator[Frame]:
    """Streams sent one byte per segment, each acknowledged (the costliest per-byte path)."""
    rng = random.Random(seed)
    body = b"GET /" + b"a" * nbytes + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    for k in range(sessions):
        c, cp, isn = 0xC0A80200 + k, 30000 + k, rng.getrandbits(31)
        ts = T0 + k
        yield from _handshake(c, SERVER, cp, isn, 5000, ts)
        for j, byte in enumerate(body):
            yield ts, tcp(c, SERVER, cp, 80, isn + 1 + j, 5001, TH_ACK | TH_PSH, bytes([byte]))
            yield ts, tcp(SERVER, c, 80, cp, 5001, isn + 2 + j, TH_ACK)


def alert_flood(n: int, seed: int = 5) -> Iterator[Frame]:
    """UDP datagrams that each match the alert-flood rule (content "FLOOD")."""
    rng = random.Random(seed)
    for i in range(n):
        src = 0xC0A80000 | rng.getrandbits(16)
        yield T0 + i / 10_000, udp(src, SERVER, rng.randrange(1024, 65536), 9999, b"xxFLOODxx")


ALERT_FLOOD_RULE = 'alert udp any any -> any 9999 (msg:"flood"; content:"FLOOD"; sid:9100001;)\n'


def mutate(frame: bytes, rng: random.Random) -> bytes:
    """A hostile variant of ``frame``: flipped bits, overwritten length/offset fields,
    truncation or extension, and spliced random bytes (1-4 edits)."""
    buf = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        if not buf:
            buf.extend(rng.randbytes(rng.randint(1, 64)))
        pos = rng.randrange(len(buf))
        if kind == 0:
            buf[pos] ^= 1 << rng.randrange(8)
        elif kind == 1:
            buf[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, 0x05, 0x45, 0x60, 0x11, 0x06))
        elif kind == 2:
            del buf[rng.randrange(len(buf)) :]
        elif kind == 3:
            buf.extend(rng.randbytes(rng.randint(1, 128)))
        elif kind == 4:
            buf[pos : pos + 2] = rng.getrandbits(16).to_bytes(2, "big")
        else:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 16))
    return bytes(buf)


def base_frames() -> list[bytes]:
    """A varied set of well-formed frames to mutate (TCP, UDP, fragments, options, DNS)."""
    c, s = 0xC0A80001, SERVER
    dns = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"
    frames = [f for _, f in _handshake(c, s, 40000, 100, 900, 0.0)]
    frames += [
        tcp(c, s, 40000, 80, 101, 901, TH_ACK | TH_PSH, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
        tcp(s, c, 80, 40000, 901, 127, TH_ACK | TH_PSH, b"HTTP/1.1 200 OK\r\n\r\n"),
        tcp(c, s, 40000, 80, 127, 921, TH_FIN | TH_ACK),
        tcp(c, s, 40001, 443, 1, 0, TH_RST),
        udp(c, s, 5353, 53, dns),
        ipv4(c, s, 17, b"\x00" * 40, ident=7, frag=0, mf=True),
        ipv4(c, s, 17, b"\x01" * 16, ident=7, frag=5, mf=False),
        ipv4(c, s, 1, b"\x08\x00\x00\x00\x00\x01\x00\x01ping"),
        ipv4(c, s, 47, b"\x00\x00\x08\x00" + b"\x45" * 20),
    ]
    # IPv6 + UDP on Ethernet, and an 802.1Q-tagged IPv4 frame
    v6 = struct.pack("!IHBB16s16s", 0x60000000, 12, 17, 64, b"\x20\x01" + b"\x00" * 13 + b"\x01",
                     b"\x20\x01" + b"\x00" * 13 + b"\x02") + struct.pack("!HHHH", 1, 2, 12, 0)  # fmt: skip
    frames.append(ETH_HDR[:12] + b"\x86\xdd" + v6 + b"abcd")
    frames.append(ETH_HDR[:12] + b"\x81\x00\x00\x05" + frames[3][12:])
    return frames


def mutated_frames(n: int, seed: int, extra: list[bytes] | None = None) -> Iterator[Frame]:
    """``n`` mutated frames drawn from the base set (plus ``extra``, e.g. real captures)."""
    rng = random.Random(seed)
    pool = base_frames() + (extra or [])
    for i in range(n):
        yield T0 + i / 1000, mutate(rng.choice(pool), rng)
