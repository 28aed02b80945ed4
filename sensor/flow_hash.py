"""Which worker a frame belongs to, and a capture file split into per-worker shards.

Scope: :class:`FlowHasher` maps a frame to one of N workers by a hash that is symmetric
over the 5-tuple (both directions of a flow meet) and sends IP fragments after their first
fragment; :func:`split_capture` reads a capture once and writes one pcapng shard per
worker with the original frame numbers, for ``sekimori run --workers N`` on a file
(sensor/workers.py runs the workers).

Non-goals: the live interface's split (the kernel's AF_PACKET fanout does it there),
tunnels (hashed on the outer header).
"""

from __future__ import annotations

import array
import os
import struct
import zlib
from typing import BinaryIO

from sensor.errors import CaptureError

_FRAG_MEMORY = 65536  # fragment-id → worker entries kept by the dispatcher
_ETH_TYPES_VLAN = (0x8100, 0x88A8, 0x9100)
_IPV6_EXT = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH


# -- flow hashing -------------------------------------------------------------------------
def _l3_offset(linktype: int, data: bytes) -> tuple[int, int]:
    """(offset of the IP header, IP version) for a frame; (-1, 0) when not IP."""
    if linktype == 1:  # Ethernet, possibly VLAN/QinQ tagged
        off, etype = 12, 0
        while off + 2 <= len(data):
            etype = (data[off] << 8) | data[off + 1]
            if etype in _ETH_TYPES_VLAN:
                off += 4
                continue
            break
        off += 2
    elif linktype in (101, 12, 228, 229, 14):  # raw IP
        off, etype = 0, 0
    elif linktype == 113:  # Linux cooked
        off, etype = 16, (data[14] << 8) | data[15] if len(data) >= 16 else 0
    elif linktype in (0, 108):  # BSD loopback: family word
        off, etype = 4, 0
    else:
        return -1, 0
    if etype not in (0, 0x0800, 0x86DD) or off >= len(data):
        return -1, 0
    ver = data[off] >> 4
    return (off, ver) if ver in (4, 6) else (-1, 0)


def _pair_key(a: bytes, b: bytes, pa: int, pb: int) -> bytes:
    if (a, pa) <= (b, pb):
        return a + b + pa.to_bytes(2, "big") + pb.to_bytes(2, "big")
    return b + a + pb.to_bytes(2, "big") + pa.to_bytes(2, "big")


class FlowHasher:
    """Maps frames to workers: one flow, both directions, always to the same worker."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._frags: dict[bytes, int] = {}

    def worker(self, linktype: int, data: bytes) -> int:
        off, ver = _l3_offset(linktype, data)
        if off < 0:
            return 0
        if ver == 4:
            if len(data) < off + 20:
                return 0
            ihl = (data[off] & 0x0F) * 4
            proto = data[off + 9]
            src, dst = data[off + 12 : off + 16], data[off + 16 : off + 20]
            frag = ((data[off + 6] << 8) | data[off + 7]) & 0x3FFF  # MF + offset
            l4 = off + ihl
            if frag:
                fkey = src + dst + data[off + 4 : off + 6] + bytes((proto,))
                return self._fragment(fkey, frag & 0x1FFF == 0, proto, src, dst, data, l4)
        else:
            if len(data) < off + 40:
                return 0
            proto = data[off + 6]
            src, dst = data[off + 8 : off + 24], data[off + 24 : off + 40]
            l4 = off + 40
            while proto in _IPV6_EXT and l4 + 8 <= len(data):
                proto, l4 = data[l4], l4 + (data[l4 + 1] + 1) * (4 if proto == 51 else 8)
            if proto == 44 and l4 + 8 <= len(data):  # fragment header
                fkey = src + dst + data[l4 + 4 : l4 + 8]
                first = (int.from_bytes(data[l4 + 2 : l4 + 4], "big") & 0xFFF8) == 0
                return self._fragment(fkey, first, data[l4], src, dst, data, l4 + 8)
        return self._flow(proto, src, dst, data, l4)

    def _flow(self, proto: int, src: bytes, dst: bytes, data: bytes, l4: int) -> int:
        if proto in (6, 17, 132) and l4 + 4 <= len(data):
            sp = (data[l4] << 8) | data[l4 + 1]
            dp = (data[l4 + 2] << 8) | data[l4 + 3]
            key = _pair_key(src, dst, sp, dp) + bytes((proto,))
        else:
            key = _pair_key(src, dst, 0, 0) + bytes((proto,))
        return zlib.crc32(key) % self.n

    def _fragment(self, fkey: bytes, first: bool, proto: int, src: bytes, dst: bytes,
                  data: bytes, l4: int) -> int:  # fmt: skip
        """All fragments of a datagram go together, to the flow's worker when known."""
        w = self._frags.get(fkey)
        if w is None:
            w = (
                self._flow(proto, src, dst, data, l4)
                if first
                else self._flow(proto, src, dst, b"", 0)
            )
            if len(self._frags) >= _FRAG_MEMORY:
                self._frags.pop(next(iter(self._frags)))
            self._frags[fkey] = w
        return w


def frame_worker(hasher: FlowHasher, linktype: int, data: bytes) -> int:
    """The worker (0..n-1) a frame belongs to (a convenience for a pipeline-side filter)."""
    return hasher.worker(linktype, data)


# -- capture-file dispatch -----------------------------------------------------------------
class _PcapngShard:
    """A minimal pcapng writer: SHB, one IDB per link type, EPBs (µs timestamps)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._f: BinaryIO = open(path, "wb", buffering=1 << 20)  # noqa: SIM115
        self._ifaces: dict[int, int] = {}
        self._f.write(
            struct.pack("<IIIHHq", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1) + struct.pack("<I", 28)
        )

    def write(self, ts_sec: int, ts_usec: int, linktype: int, data: bytes, wirelen: int) -> None:
        iface = self._ifaces.get(linktype)
        if iface is None:
            iface = self._ifaces[linktype] = len(self._ifaces)
            self._f.write(struct.pack("<IIHHII", 1, 20, linktype, 0, 0, 20))
        ts = ts_sec * 1_000_000 + ts_usec
        pad = (-len(data)) & 3
        total = 32 + len(data) + pad
        self._f.write(struct.pack("<IIIIIII", 6, total, iface, ts >> 32, ts & 0xFFFFFFFF,
                                  len(data), wirelen))  # fmt: skip
        self._f.write(data)
        self._f.write(b"\x00" * pad + struct.pack("<I", total))

    def close(self) -> None:
        self._f.close()


def split_capture(
    path: str, n: int, outdir: str
) -> tuple[list[str], list[array.array], str | None]:
    """Write one shard per worker; return the shard paths, per-shard original frame
    numbers (1-based, in shard order) and the source's truncation message."""
    from sensor.capture import open_capture

    cap = open_capture(path)
    hasher = FlowHasher(n)
    shards = [_PcapngShard(os.path.join(outdir, f"shard{k}.pcapng")) for k in range(n)]
    numbers = [array.array("Q") for _ in range(n)]
    try:
        for cnt, (ts_sec, ts_usec, linktype, data, wirelen) in enumerate(cap, 1):
            k = hasher.worker(linktype, data)
            shards[k].write(ts_sec, ts_usec, linktype, data, wirelen)
            numbers[k].append(cnt)
    except OSError as exc:
        raise CaptureError(
            f"cannot write worker shards in {outdir}: {exc.strerror or exc}"
        ) from exc
    finally:
        for s in shards:
            s.close()
    return [s.path for s in shards], numbers, cap.truncated
