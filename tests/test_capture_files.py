"""Capture files: pcap (both byte orders, usec/nsec) and pcapng (sections, IDB options,
EPB/SPB/PB) read back exactly; truncation and garbage reported, never raised mid-file."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import dpkt
import pytest

from sensor.capture import CaptureFile, open_capture
from sensor.errors import CaptureError

FRAMES = [bytes([i]) * (60 + i) for i in range(5)]


def write_dpkt_pcap(path: Path, nano: bool) -> None:
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f, nano=nano, linktype=1)
        for i, frame in enumerate(FRAMES):
            w.writepkt(frame, ts=1_700_000_000 + i + 0.25)


def pcap_bytes(order: str, nsec: bool, linktype: int = 1) -> bytes:
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for i, frame in enumerate(FRAMES):
        frac = 123_456_789 if nsec else 123_456
        out += (
            struct.pack(order + "IIII", 1_700_000_000 + i, frac, len(frame), len(frame) + 10)
            + frame
        )
    return out


def read_all(path: Path) -> tuple[CaptureFile, list[tuple[int, int, int, bytes, int]]]:
    cap = open_capture(str(path))
    return cap, list(cap)


@pytest.mark.parametrize("nano", [False, True])
def test_dpkt_pcap_round_trip(tmp_path: Path, nano: bool) -> None:
    path = tmp_path / "a.pcap"
    write_dpkt_pcap(path, nano)
    cap, recs = read_all(path)
    assert [r[3] for r in recs] == FRAMES
    assert [(r[0], r[1], r[2]) for r in recs] == [(1_700_000_000 + i, 250_000, 1) for i in range(5)]
    assert (
        cap.truncated is None
        and cap.packets_read == 5
        and cap.position == cap.size == path.stat().st_size
    )
    assert cap.bytes_read == sum(map(len, FRAMES)) and cap.linktype == 1 and cap.format == "pcap"


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nsec", [False, True])
def test_pcap_byte_orders_and_nsec(tmp_path: Path, order: str, nsec: bool) -> None:
    path = tmp_path / "b.pcap"
    path.write_bytes(pcap_bytes(order, nsec, linktype=113))
    cap, recs = read_all(path)
    assert recs[2] == (1_700_000_002, 123_456, 113, FRAMES[2], len(FRAMES[2]) + 10)
    assert cap.linktype == 113 and cap.truncated is None


def test_dpkt_pcapng_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.pcapng"
    with path.open("wb") as f:
        w = dpkt.pcapng.Writer(f, linktype=101)
        for i, frame in enumerate(FRAMES):
            w.writepkt(frame, ts=1_700_000_000 + i + 0.5)
    cap, recs = read_all(path)
    assert recs == [(1_700_000_000 + i, 500_000, 101, f, len(f)) for i, f in enumerate(FRAMES)]
    assert cap.format == "pcapng" and cap.linktype == 101 and cap.truncated is None


def block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def shb(order: str) -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str, linktype: int, tsresol: int | None = None, snaplen: int = 0) -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    if tsresol is not None:
        body += struct.pack(order + "HH", 9, 1) + bytes([tsresol]) + b"\0\0\0"
        body += struct.pack(order + "HH", 0, 0)
    return block(order, 1, body)


def epb(order: str, if_id: int, ticks: int, frame: bytes) -> bytes:
    hdr = struct.pack(
        order + "IIIII", if_id, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)
    )
    return block(order, 6, hdr + frame)


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcapng_sections_tsresol_spb_pb_and_unknown_blocks(tmp_path: Path, order: str) -> None:
    other = ">" if order == "<" else "<"
    data = (
        shb(order)
        + idb(order, 1, tsresol=9)  # nanoseconds
        + idb(order, 113)  # default microseconds
        + epb(order, 0, 1_700_000_000 * 10**9 + 123_456_789, FRAMES[0])
        + block(order, 0x00000004, b"name resolution, skipped")
        + epb(order, 1, 1_700_000_001 * 10**6 + 42, FRAMES[1])
        + block(
            order,
            2,
            struct.pack(order + "HHIIII", 1, 0, 0, 5_000_000, len(FRAMES[2]), 999) + FRAMES[2],
        )
        + shb(other)  # a second section in the other byte order, one interface
        + idb(other, 101, tsresol=0x80 | 10, snaplen=64)  # 2^-10 s units
        + block(other, 3, struct.pack(other + "I", len(FRAMES[4])) + FRAMES[4])
        + epb(other, 0, 1024 * 7 + 512, FRAMES[3])
    )
    path = tmp_path / "multi.pcapng"
    path.write_bytes(data)
    cap, recs = read_all(path)
    assert cap.truncated is None and cap.linktype == 1
    assert recs[0] == (1_700_000_000, 123_456, 1, FRAMES[0], len(FRAMES[0]))
    assert recs[1] == (1_700_000_001, 42, 113, FRAMES[1], len(FRAMES[1]))
    assert recs[2] == (5, 0, 113, FRAMES[2], 999)
    assert recs[3] == (0, 0, 101, FRAMES[4], len(FRAMES[4]))  # SPB: no timestamp, snaplen cap
    assert recs[4] == (7, 500_000, 101, FRAMES[3], len(FRAMES[3]))
    assert cap.packets_read == 5 and cap.position == len(data)


def test_pcap_truncated_mid_record(tmp_path: Path) -> None:
    full = pcap_bytes("<", False)
    path = tmp_path / "cut.pcap"
    path.write_bytes(full[:-10])
    cap, recs = read_all(path)
    assert len(recs) == 4 and cap.packets_read == 4
    assert cap.truncated is not None
    assert str(path) in cap.truncated and "record 5" in cap.truncated
    last_start = len(full) - 16 - len(FRAMES[4])
    assert f"byte {last_start}" in cap.truncated and cap.position == last_start


def test_pcap_garbage_record_length(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes("<", False))
    struct.pack_into("<I", data, 24 + 16 + len(FRAMES[0]) + 8, 10_000_000)  # caplen of record 2
    path = tmp_path / "garbage.pcap"
    path.write_bytes(bytes(data))
    cap, recs = read_all(path)
    assert len(recs) == 1 and cap.truncated and "implausible captured length" in cap.truncated


def test_pcapng_truncated_block(tmp_path: Path) -> None:
    data = shb("<") + idb("<", 1) + epb("<", 0, 5, FRAMES[0]) + epb("<", 0, 6, FRAMES[1])
    path = tmp_path / "cut.pcapng"
    path.write_bytes(data[:-7])
    cap, recs = read_all(path)
    assert len(recs) == 1 and cap.truncated and "record 2" in cap.truncated


def test_pcapng_packet_for_undeclared_interface(tmp_path: Path) -> None:
    path = tmp_path / "noidb.pcapng"
    path.write_bytes(shb("<") + epb("<", 3, 5, FRAMES[0]))
    cap, recs = read_all(path)
    assert recs == [] and cap.truncated and "undeclared interface 3" in cap.truncated


def test_header_only_and_short_header(tmp_path: Path) -> None:
    path = tmp_path / "hdr.pcap"
    path.write_bytes(pcap_bytes("<", False)[:24])
    cap, recs = read_all(path)
    assert recs == [] and cap.truncated is None
    path.write_bytes(pcap_bytes("<", False)[:10])
    cap, recs = read_all(path)
    assert recs == [] and cap.truncated is not None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "no such file"),
        ("directory", "is a directory"),
        ("empty", "empty file"),
        ("garbage", "not a pcap or pcapng file"),
    ],
)
def test_unusable_files_raise_capture_error(tmp_path: Path, setup: str, message: str) -> None:
    path = tmp_path / "x"
    if setup == "directory":
        path.mkdir()
    elif setup == "empty":
        path.write_bytes(b"")
    elif setup == "garbage":
        path.write_bytes(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(CaptureError) as info:
        open_capture(str(path))
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.pcap"
    path.write_bytes(pcap_bytes("<", False))
    path.chmod(0)
    if os.geteuid() == 0:
        pytest.skip("root reads files regardless of their mode")
    with pytest.raises(CaptureError, match="permission denied"):
        open_capture(str(path))
