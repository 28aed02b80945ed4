"""Suricata 7 buffer transforms: ``http.uri; to_lowercase; url_decode; content:...``.

Scope: the transform keywords Suricata 7 documents for sticky buffers (``dotprefix``,
``strip_whitespace``, ``compress_whitespace``, ``to_lowercase``, ``to_uppercase``,
``to_md5``, ``to_sha1``, ``to_sha256``, ``url_decode``, ``xor``, ``pcrexform``,
``header_lowercase``, ``strip_pseudo_headers``): parsing their options, the check Suricata
makes of a content that follows them (a ``to_lowercase`` buffer cannot contain "A"), and
applying a chain to a buffer's bytes.

A transformed buffer is a buffer of its own, named ``<base>#<transform>[=<hex option>]...``
(``http.uri#to_lowercase#xor=0d0a``): the rule's programs, the Hyperscan prefilter and the
transaction lookup all key on that name, so two rules share a transformed buffer exactly
when they name the same chain, as Suricata's transform-aware buffer ids do.

Non-goals: transforms on ``pkt_data``, header buffers and ``base64_data`` (Suricata refuses
them too, or they are not used by any rule set we know); ``from_base64`` (Suricata 8).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from sensor.errors import RuleError
from signatures.buffers import TRANSFORM_SEPARATOR
from signatures.pcre import compile_pcre

SEPARATOR = TRANSFORM_SEPARATOR

_NO_OPTION = frozenset(
    {
        "dotprefix",
        "strip_whitespace",
        "compress_whitespace",
        "to_lowercase",
        "to_uppercase",
        "to_md5",
        "to_sha1",
        "to_sha256",
        "url_decode",
        "header_lowercase",
        "strip_pseudo_headers",
    }
)
TRANSFORM_KEYWORDS: frozenset[str] = _NO_OPTION | {"xor", "pcrexform"}

# C isspace(): space, \t, \n, \v, \f, \r
_SPACE = frozenset(b" \t\n\v\f\r")
_SPACE_RUN = re.compile(rb"([ \t\n\v\f\r])[ \t\n\v\f\r]+")
_STRIP = bytes.maketrans(b"", b"")


@dataclass(frozen=True)
class Transform:
    """One transform of a chain; ``option`` is the xor key or the translated pcrexform."""

    name: str
    option: bytes = b""

    def token(self) -> str:
        return self.name + (f"={self.option.hex()}" if self.option else "")


def parse_transform(name: str, value: str | None, quoted: bool = False) -> Transform:
    """The transform keyword ``name`` with its option text, validated as Suricata 7 does."""
    if name in _NO_OPTION:
        if value is not None and value.strip():
            raise RuleError(f"{name}: takes no option")
        return Transform(name)
    text = value or "" if quoted else (value or "").strip()
    if not quoted and len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    elif not quoted and name == "pcrexform":
        raise RuleError("pcrexform: the regular expression must be quoted")
    if name == "xor":
        if not text or len(text) % 2 or len(text) > 510:
            raise RuleError(f"xor: key '{text}' must be an even number of hex digits")
        try:
            return Transform(name, bytes.fromhex(text))
        except ValueError as exc:
            raise RuleError(f"xor: key '{text}' is not hex") from exc
    # pcrexform: a PCRE with exactly the one capture whose text becomes the buffer. The
    # option kept is the Python translation, so applying it is a cached re.compile.
    compiled = compile_pcre(text.encode(), "")
    if compiled.groups != 1:
        raise RuleError(f"pcrexform needs exactly one substring capture, found {compiled.groups}")
    return Transform(name, compiled.pattern)


def transformed_name(base: str, chain: tuple[Transform, ...]) -> str:
    return base + "".join(SEPARATOR + t.token() for t in chain)


def split_name(name: str) -> tuple[str, tuple[Transform, ...]]:
    """(base buffer, transform chain) of a buffer name made by :func:`transformed_name`."""
    base, *tokens = name.split(SEPARATOR)
    chain = []
    for tok in tokens:
        kw, _, opt = tok.partition("=")
        chain.append(Transform(kw, bytes.fromhex(opt)))
    return base, tuple(chain)


def base_name(name: str) -> str:
    return name.split(SEPARATOR, 1)[0]


def check_content(chain: tuple[Transform, ...], pattern: bytes) -> None:
    """Suricata refuses a content the last transform could never produce."""
    if not chain:
        return
    last = chain[-1].name
    bad = {
        "to_lowercase": lambda: pattern != pattern.lower(),
        "to_uppercase": lambda: pattern != pattern.upper(),
        "strip_whitespace": lambda: any(c in _SPACE for c in pattern),
        "compress_whitespace": lambda: _SPACE_RUN.search(pattern) is not None,
    }.get(last)
    if bad is not None and bad():
        raise RuleError(f"content is not compatible with the {last} transform")


def _url_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    hexdigits = b"0123456789abcdefABCDEF"
    while i < n:
        c = data[i]
        if c == 0x25 and i + 2 < n and data[i + 1] in hexdigits and data[i + 2] in hexdigits:
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
            continue
        out.append(0x20 if c == 0x2B else c)  # '+' is a space
        i += 1
    return bytes(out)


def _xor(data: bytes, key: bytes) -> bytes:
    reps = key * (len(data) // len(key) + 1)
    return bytes(a ^ b for a, b in zip(data, reps, strict=False))


def _pcrexform(data: bytes, regex: bytes) -> bytes:
    m = re.compile(regex).search(data)  # ``regex`` is already translated; re caches it
    # Suricata 7 leaves the buffer as it is when the expression does not match.
    return data if m is None or m.group(1) is None else m.group(1)


def _header_lines(data: bytes, fix: Callable[[bytes], bytes | None]) -> bytes:
    lines = data.split(b"\r\n")
    out = [r for r in (fix(line) for line in lines) if r is not None]
    return b"\r\n".join(out)


def _lower_name(line: bytes) -> bytes:
    name, sep, rest = line.partition(b":")
    return name.lower() + sep + rest if sep else line.lower()


_SIMPLE: dict[str, Callable[[bytes], bytes]] = {
    "dotprefix": lambda d: b"." + d,
    "strip_whitespace": lambda d: d.translate(_STRIP, b" \t\n\v\f\r"),
    "compress_whitespace": lambda d: _SPACE_RUN.sub(rb"\1", d),
    "to_lowercase": bytes.lower,
    "to_uppercase": bytes.upper,
    "to_md5": lambda d: hashlib.md5(d).digest(),
    "to_sha1": lambda d: hashlib.sha1(d).digest(),
    "to_sha256": lambda d: hashlib.sha256(d).digest(),
    "url_decode": _url_decode,
    "header_lowercase": lambda d: _header_lines(d, _lower_name),
    "strip_pseudo_headers": lambda d: _header_lines(
        d, lambda line: None if line.startswith(b":") else line
    ),
}


def apply_chain(chain: tuple[Transform, ...], data: bytes) -> bytes:
    for t in chain:
        if t.name == "xor":
            data = _xor(data, t.option)
        elif t.name == "pcrexform":
            data = _pcrexform(data, t.option)
        else:
            data = _SIMPLE[t.name](data)
    return data
