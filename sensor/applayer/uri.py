"""HTTP request-target normalisation as Suricata 7 (libhtp 0.5, "IDS" personality) does it.

Scope: split a request target into path/query/fragment and build the ``http.uri`` buffer:

* path: ``%HH`` and ``%uHHHH`` decoding (invalid escapes keep their ``%``), encoded separators
  decoded, ``\\`` turned into ``/``, runs of ``/`` compressed, UTF-8 (overlong forms included)
  folded to single bytes with best-fit mapping (``?`` when no mapping, or for invalid UTF-8),
  then RFC 3986 dot-segment removal (``/./``, ``/../``). Case is kept: Suricata switches the
  IDS personality's lower-casing off because signatures do not expect it.
* query: ``%HH`` decoding only (no ``%u``, ``+`` kept), as Suricata's normalised-URI builder does.
* fragment: ``%HH`` decoded.
* absolute-form targets (``http://host:port/p``) contribute only path, query and fragment
  (``uri-include-all: false``); the host part is returned for ``http.host``.

Non-goals: double decoding (off by default in Suricata), libhtp's full best-fit code page table
(only the full-width ASCII block U+FF01..U+FF5E is mapped, which is what evasion uses).
"""

from __future__ import annotations

import re

_REPLACEMENT = 0x3F  # '?': libhtp's best-fit replacement byte
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ABSOLUTE = re.compile(rb"^[A-Za-z][A-Za-z0-9+.-]*://")
# Bytes that make path decoding necessary; anything else is copied as is.
_NEEDS_DECODE = re.compile(rb"[%\\\x80-\xff]|//")


def split_target(target: bytes) -> tuple[bytes | None, bytes, bytes | None, bytes | None]:
    """Split a request target into (authority, path, query, fragment); absent parts are None."""
    authority: bytes | None = None
    rest = target
    if _ABSOLUTE.match(target):
        after = target.index(b"://") + 3
        end = len(target)
        for sep in (b"/", b"?", b"#"):
            pos = target.find(sep, after)
            if pos != -1 and pos < end:
                end = pos
        authority = target[after:end]
        rest = target[end:]
    fragment: bytes | None = None
    hash_pos = rest.find(b"#")
    if hash_pos != -1:
        fragment = rest[hash_pos + 1 :]
        rest = rest[:hash_pos]
    query: bytes | None = None
    q_pos = rest.find(b"?")
    if q_pos != -1:
        query = rest[q_pos + 1 :]
        rest = rest[:q_pos]
    return authority, rest, query, fragment


def _u_escape(c1: int, c2: int) -> int:
    """Best-fit byte for a ``%uHHHH`` escape or a decoded UTF-8 code point's two bytes."""
    if c1 == 0:
        return c2
    code = (c1 << 8) | c2
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII forms
        return code - 0xFEE0
    return _REPLACEMENT


def _bestfit(codepoint: int) -> int:
    if codepoint < 0x100:
        return codepoint
    if codepoint > 0xFFFF:
        return _REPLACEMENT
    return _u_escape(codepoint >> 8, codepoint & 0xFF)


def decode_path(path: bytes) -> bytes:
    """Percent/%u-decode a path, convert backslashes and compress separators."""
    if not _NEEDS_DECODE.search(path):
        return path
    out = bytearray()
    n = len(path)
    i = 0
    prev_sep = False
    while i < n:
        c = path[i]
        if c == 0x25:  # '%'
            if i + 2 < n:
                if path[i + 1] in (0x75, 0x55):  # %u
                    if i + 5 < n and all(b in _HEX for b in path[i + 2 : i + 6]):
                        c = _u_escape(int(path[i + 2 : i + 4], 16), int(path[i + 4 : i + 6], 16))
                        i += 6
                    else:
                        i += 1  # invalid %u: keep the percent sign
                elif path[i + 1] in _HEX and path[i + 2] in _HEX:
                    c = int(path[i + 1 : i + 3], 16)
                    i += 3
                else:
                    i += 1
            else:
                i += 1
        else:
            i += 1
        if c == 0x5C:  # backslash is a separator for the IDS personality
            c = 0x2F
        if c == 0x2F:
            if prev_sep:
                continue
            prev_sep = True
        else:
            prev_sep = False
        out.append(c)
    return _utf8_bestfit(bytes(out))


def _utf8_bestfit(data: bytes) -> bytes:
    """Fold UTF-8 sequences (overlong allowed) into single bytes; invalid ones become '?'."""
    if data.isascii():
        return data
    out = bytearray()
    n = len(data)
    i = 0
    while i < n:
        b = data[i]
        if b < 0x80:
            out.append(b)
            i += 1
            continue
        if 0xC0 <= b <= 0xDF:
            need, cp = 1, b & 0x1F
        elif 0xE0 <= b <= 0xEF:
            need, cp = 2, b & 0x0F
        elif 0xF0 <= b <= 0xF7:
            need, cp = 3, b & 0x07
        else:  # stray continuation byte or invalid lead: replace and consume it
            out.append(_REPLACEMENT)
            i += 1
            continue
        j = i + 1
        while j < n and j <= i + need and 0x80 <= data[j] <= 0xBF:
            cp = (cp << 6) | (data[j] & 0x3F)
            j += 1
        if j == i + need + 1:
            out.append(_bestfit(cp))
            i = j
        elif j == n:
            break  # sequence cut by the end of the path: libhtp drops it
        else:
            out.append(_REPLACEMENT)  # the offending byte starts the next sequence
            i = j
    return bytes(out)


def remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986 section 5.2.4 on bytes, as libhtp runs it: the "/" that a final "/." or "/.."
    (or "/./") leaves at the head of the input is never written, so "/a/b/." and "/a/b/./"
    give "/a/b", "/a/b/.." gives "/a" and "/." gives "" (Suricata 7.0.10's ``http.uri``)."""
    if b"." not in path:
        return path
    out = bytearray()
    n = len(path)
    i = 0
    head = -1  # first byte of the input when already taken from ``path`` (-1: none)
    while i < n:
        if head == -1:
            head, i = path[i], i + 1
        nxt = path[i : i + 3]
        if head == 0x2E and (nxt[:2] == b"./" or nxt[:1] == b"/"):  # "../" or "./"
            i += 2 if nxt[:2] == b"./" else 1
            head = -1
            continue
        if head == 0x2F:  # "/"
            if nxt[:2] == b"./" or path[i:] == b".":  # "/./" or a final "/.": "/" stays
                i += 2 if nxt[:2] == b"./" else 1
                continue
            if nxt == b"../" or path[i:] == b"..":  # "/../" or a final "/..": up one
                i += 3 if nxt == b"../" else 2
                del out[max(out.rfind(b"/"), 0) :]
                continue
        if head == 0x2E and path[i:] in (b"", b"."):  # the input is "." or ".."
            break
        out.append(head)
        end = path.find(b"/", i)
        end = n if end == -1 else end
        out += path[i:end]
        i, head = end, -1
    return bytes(out)


def urldecode(data: bytes) -> bytes:
    """``%HH`` decoding as libhtp's urlencoded decoder (invalid escapes keep ``%``, ``+`` kept)."""
    if b"%" not in data:
        return data
    out = bytearray()
    n = len(data)
    i = 0
    while i < n:
        pos = data.find(b"%", i)
        if pos == -1:
            out += data[i:]
            break
        out += data[i:pos]
        if pos + 2 < n and data[pos + 1] in _HEX and data[pos + 2] in _HEX:
            out.append(int(data[pos + 1 : pos + 3], 16))
            i = pos + 3
        else:
            out.append(0x25)
            i = pos + 1
    return bytes(out)


def normalize_uri(target: bytes) -> tuple[bytes, bytes | None]:
    """The ``http.uri`` buffer for a request target, and the absolute-form authority if any."""
    authority, path, query, fragment = split_target(target)
    norm = remove_dot_segments(decode_path(path))
    if query is not None:
        norm += b"?" + urldecode(query)
    if fragment is not None:
        norm += b"#" + urldecode(fragment)
    return norm, authority


def normalize_hostname(host: bytes) -> bytes:
    """``http.host``: lower-cased, port and trailing dots removed (IPv6 brackets kept)."""
    host = host.strip(b" \t")
    if host.startswith(b"["):
        end = host.find(b"]")
        host = host[: end + 1] if end != -1 else host
    else:
        colon = host.rfind(b":")
        if colon != -1:
            host = host[:colon]
    return host.rstrip(b".").lower()


def header_hostname(value: bytes) -> bytes:
    """``http.host`` from a Host header, as libhtp parses it: blanks trimmed, lower-cased when
    there is no port; with a port (after the first ":"), the name as sent, without the blanks
    before the colon. Trailing dots stay (only a URI's hostname loses them)."""
    host = value.strip(b" \t\r\n\x0b\x0c")
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[: end + 1].lower() if end != -1 else b""
    colon = host.find(b":")
    if colon == -1:
        return host.lower()
    return host[:colon].rstrip(b" \t\r\n\x0b\x0c")
