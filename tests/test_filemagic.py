"""filemagic / file.magic: the libmagic binding, the rule builder, and detection on a capture.

Needs the system's libmagic (libmagic1); the binding and capture tests skip without it, the
refusal test does not.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
from pcapgen import TcpSession, alerts_of

from sensor.applayer.magic import (
    MAGIC_MIN_BYTES,
    LibMagic,
    MagicUnavailable,
    libmagic_missing,
    magic_input,
)
from sensor.errors import RuleError
from sensor.pipeline import SENSOR_BUFFERS
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.parser import parse_rule
from signatures.rule import Signature
from signatures.variables import Variables

needs_libmagic = pytest.mark.skipif(libmagic_missing() is not None, reason="libmagic missing")

PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + b"x" * 600


def _pe() -> bytes:
    """A minimal PE header: MZ stub whose e_lfanew points at 'PE\\0\\0' + an i386 COFF header."""
    mz = bytearray(b"MZ" + b"\0" * 0x3A) + struct.pack("<I", 0x40)
    coff = b"PE\0\0" + struct.pack("<HHIIIHH", 0x14C, 1, 0, 0, 0, 0xE0, 0x0102)
    optional = struct.pack("<H", 0x10B) + b"\0" * 0xDE
    return bytes(mz) + coff + optional + b"\0" * 256


@needs_libmagic
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PDF, b"PDF document, version 1.4"),
        (gzip.compress(b"hello", mtime=0), b"gzip compressed data"),
        (_pe(), b"PE32 executable"),
        (b"plain words only\n", b"ASCII text"),
    ],
)
def test_describe_known_formats(data: bytes, expected: bytes) -> None:
    with LibMagic() as magic:
        description = magic.describe(data)
    assert description is not None and description.startswith(expected)


@needs_libmagic
def test_describe_empty_and_after_close() -> None:
    magic = LibMagic()
    assert magic.describe(b"") is None
    magic.close()
    assert magic.describe(PDF) is None  # a closed cookie is never touched again
    magic.close()  # idempotent


def test_magic_input_waits_for_512_bytes_or_the_end() -> None:
    short = b"%PDF-1.4\n"
    assert magic_input(short, complete=False) is None
    assert magic_input(short, complete=True) == short
    big = b"a" * MAGIC_MIN_BYTES
    assert magic_input(big, complete=False) == big
    assert magic_input(b"", complete=True) is None


def test_missing_library_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import sensor.applayer.magic as magic_mod

    monkeypatch.setattr(magic_mod, "_SONAMES", ("libmagic-does-not-exist.so.9",))
    monkeypatch.setattr(magic_mod.ctypes.util, "find_library", lambda _name: None)
    with pytest.raises(MagicUnavailable, match="libmagic1"):
        LibMagic()
    reason = libmagic_missing()
    assert reason is not None and "libmagic1" in reason


def _build(rule: str, buffers: frozenset[str]) -> Signature:
    parsed = parse_rule(rule, Variables.suricata_defaults())
    return SignatureBuilder(Classifications.load(None), buffers).build(parsed)


def test_filemagic_is_a_nocase_content_in_file_magic() -> None:
    sig = _build('alert http any any -> any any (filemagic:!"PDF"; content:"x"; sid:1;)',
                 SENSOR_BUFFERS)  # fmt: skip
    assert set(sig.app_buffers) == {"file.magic"}
    assert sig.payload is not None and "pkt_data" in sig.payload.programs  # not sticky


def test_filemagic_without_libmagic_is_refused_with_the_reason() -> None:
    for rule in ('alert http any any -> any any (filemagic:"PDF"; sid:1;)',
                 'alert http any any -> any any (file.magic; content:"PDF"; sid:2;)'):  # fmt: skip
        with pytest.raises(RuleError) as info:
            _build(rule, SENSOR_BUFFERS - {"file.magic"})
        assert "libmagic" in info.value.reason and info.value.category == "needs libmagic"


def _download(body: bytes, name: str = "report.pdf") -> list[bytes]:
    s = TcpSession().handshake()
    s.send(True, f"GET /files/{name} HTTP/1.1\r\nHost: example.test\r\n\r\n".encode())
    s.ack(False)
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    s.send(False, head + body)
    s.ack(True)
    return s.close().frames


def _alerts(tmp_path: Path, frames: list[bytes], rules: str) -> list[dict]:
    return alerts_of(tmp_path, frames, rules)


@needs_libmagic
def test_filemagic_rules_on_a_pdf_download(tmp_path: Path) -> None:
    rules = "\n".join([
        'alert http any any -> any any (filemagic:"pdf document"; sid:1;)',
        'alert http any any -> any any (filemagic:!"PDF"; sid:2;)',
        'alert http any any -> any any (filemagic:!"zip archive"; sid:3;)',
        'alert http any any -> any any (file.magic; content:"version 1.4"; sid:4;)',
        'alert http any any -> any any (flow:to_server; file.magic; content:"PDF"; sid:5;)',
    ])  # fmt: skip
    alerts = _alerts(tmp_path, _download(PDF), rules + "\n")
    assert sorted(a["alert"]["signature_id"] for a in alerts) == [1, 3, 4]
    assert {a["src_port"] for a in alerts} == {80}  # on the response (the file's direction)
