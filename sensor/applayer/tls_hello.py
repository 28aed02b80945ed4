"""TLS ClientHello / ServerHello bodies and the fingerprints computed from them.

Scope: parse the hello messages (legacy version, cipher suites, extensions: SNI, supported
groups, EC point formats, signature algorithms, ALPN, supported_versions) and compute
JA3 / JA3S (string and MD5, GREASE values removed as Suricata does) and JA4 (client).

Non-goals: record framing and handshake reassembly (``tls.py``), certificate parsing
(``x509.py``), any cryptography.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

EXT_SNI = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43

VERSION_NAMES = {
    0x0002: "SSLv2",
    0x0200: "SSLv2",
    0x0300: "SSLv3",
    0x0301: "TLSv1",
    0x0302: "TLS 1.1",
    0x0303: "TLS 1.2",
    0x0304: "TLS 1.3",
}
_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0200: "s2",
    0x0002: "s2",
}


class HelloError(ValueError):
    """Malformed hello (internal; becomes ``tls.invalid_handshake_message``)."""


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE values: 0x0a0a, 0x1a1a, ... 0xfafa."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


@dataclass(frozen=True)
class Hello:
    version: int  # legacy_version field
    random: bytes
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...]  # extension types in order
    sni: bytes | None
    groups: tuple[int, ...]
    point_formats: tuple[int, ...]
    sig_algs: tuple[int, ...]
    alpn: tuple[bytes, ...]
    supported_versions: tuple[int, ...]
    sni_count: int


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise HelloError("field runs past the message")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def vec8(self) -> bytes:
        return self.take(self.u8())

    def vec16(self) -> bytes:
        return self.take(self.u16())

    def left(self) -> int:
        return len(self.data) - self.pos


def _u16s(raw: bytes) -> tuple[int, ...]:
    return struct.unpack(f"!{len(raw) // 2}H", raw[: len(raw) // 2 * 2])


def parse_hello(body: bytes, client: bool) -> Hello:
    """Parse a ClientHello (``client``) or ServerHello body."""
    r = _Reader(body)
    version = r.u16()
    random = r.take(32)
    r.vec8()  # session id
    if client:
        ciphers = _u16s(r.vec16())
        r.vec8()  # compression methods
    else:
        ciphers = (r.u16(),)
        r.u8()
    ext_types: list[int] = []
    sni: bytes | None = None
    sni_count = 0
    groups: tuple[int, ...] = ()
    formats: tuple[int, ...] = ()
    sig_algs: tuple[int, ...] = ()
    alpn: list[bytes] = []
    versions: tuple[int, ...] = ()
    if r.left() >= 2:
        ext = _Reader(r.vec16())
        while ext.left() >= 4:
            etype = ext.u16()
            edata = ext.vec16()
            ext_types.append(etype)
            er = _Reader(edata)
            if etype == EXT_SNI and client and edata:
                sni_count += 1
                names = _Reader(er.vec16())
                if names.u8() != 0:
                    raise HelloError("invalid SNI type")
                sni = names.vec16()
            elif etype == EXT_SUPPORTED_GROUPS and edata:
                groups = _u16s(er.vec16())
            elif etype == EXT_EC_POINT_FORMATS and edata:
                formats = tuple(er.vec8())
            elif etype == EXT_SIGNATURE_ALGORITHMS and edata:
                sig_algs = _u16s(er.vec16())
            elif etype == EXT_ALPN and edata:
                protos = _Reader(er.vec16())
                while protos.left():
                    alpn.append(protos.vec8())
            elif etype == EXT_SUPPORTED_VERSIONS and edata:
                versions = _u16s(er.vec8()) if client else (er.u16(),)
    return Hello(
        version,
        random,
        tuple(ciphers),
        tuple(ext_types),
        sni,
        groups,
        formats,
        sig_algs,
        tuple(alpn),
        versions,
        sni_count,
    )


def _dash(values: tuple[int, ...]) -> str:
    return "-".join(str(v) for v in values if not is_grease(v))


def ja3_string(h: Hello) -> str:
    return ",".join(
        (
            str(h.version),
            _dash(h.ciphers),
            _dash(h.extensions),
            _dash(h.groups),
            "-".join(str(v) for v in h.point_formats),
        )
    )


def ja3s_string(h: Hello) -> str:
    return ",".join((str(h.version), _dash(h.ciphers), _dash(h.extensions)))


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("ascii")).hexdigest()


def negotiated_version(h: Hello) -> int:
    """The version a hello announces (supported_versions wins over the legacy field)."""
    real = [v for v in h.supported_versions if not is_grease(v)]
    return max(real) if real else h.version


def _ja4_alpn(alpn: tuple[bytes, ...]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    first = alpn[0]
    a, b = chr(first[0]), chr(first[-1])
    if a.isascii() and a.isalnum() and b.isascii() and b.isalnum():
        return a + b
    text = first.hex()
    return text[0] + text[-1]


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12] if text else "000000000000"


def ja4(h: Hello, quic: bool = False) -> str:
    """JA4 client fingerprint (FoxIO spec): ``t13d1516h2_<ciphers hash>_<extensions hash>``."""
    ciphers = [c for c in h.ciphers if not is_grease(c)]
    exts = [e for e in h.extensions if not is_grease(e)]
    version = _JA4_VERSIONS.get(negotiated_version(h), "00")
    part_a = (
        f"{'q' if quic else 't'}{version}{'d' if h.sni is not None else 'i'}"
        f"{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{_ja4_alpn(h.alpn)}"
    )
    part_b = _sha12(",".join(sorted(f"{c:04x}" for c in ciphers)))
    ext_text = ",".join(sorted(f"{e:04x}" for e in exts if e not in (EXT_SNI, EXT_ALPN)))
    sigs = ",".join(f"{s:04x}" for s in h.sig_algs)
    part_c = _sha12(f"{ext_text}_{sigs}" if sigs else ext_text)
    return f"{part_a}_{part_b}_{part_c}"


def client_version(h: Hello) -> int:
    """The client's version as Suricata's tls.version sees it: the first valid entry of
    supported_versions (the preferred one; GREASE and unknown values skipped), else the
    ClientHello's legacy version."""
    for v in h.supported_versions:
        if 0x0300 <= v <= 0x0304 or v >> 8 == 0x7F:
            return v
    return h.version
