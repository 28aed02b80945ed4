"""PCRE2 pattern syntax -> an exactly equivalent Python ``re`` bytes pattern.

Scope: a byte-by-byte tokenizer over the pattern (so no construct passes through
unexamined) that rewrites what Python spells differently -- ``\\z``/``\\Z``/``$``/``^``
under Suricata's m and E flags, ``\\h``/``\\v``/``\\R``/``\\N``, POSIX classes, named
groups and backreferences, ``\\Q..\\E``, ``\\x{..}``/``\\o{..}``/``\\cX``, the G (ungreedy)
and x (extended) flags, PCRE2's literal ``{,n}`` -- and rejects everything else with
``RuleError("pcre: <construct> has no exact Python equivalent")``. Literal bytes are
emitted as ``\\xHH`` so the result is plain ASCII.

Non-goals: UTF/UCP modes (Suricata compiles without them), matching (``pcre``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from sensor.errors import RuleError

_WS = frozenset(b" \t\n\x0b\x0c\r")
_DIGITS = frozenset(b"0123456789")
_OCT = frozenset(b"01234567")
_HEXD = frozenset(b"0123456789abcdefABCDEF")
_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")

_H = frozenset(b"\t \xa0")
_V = frozenset(b"\n\x0b\x0c\r\x85")
_ALPHA = frozenset(range(65, 91)) | frozenset(range(97, 123))
_POSIX: Mapping[str, frozenset[int]] = MappingProxyType(
    {
        "alpha": _ALPHA,
        "digit": frozenset(range(48, 58)),
        "upper": frozenset(range(65, 91)),
        "lower": frozenset(range(97, 123)),
        "space": frozenset(b" \t\n\x0b\x0c\r"),
        "blank": frozenset(b" \t"),
        "cntrl": frozenset(range(0, 32)) | {127},
        "punct": frozenset(c for c in range(33, 127) if not chr(c).isalnum()),
        "xdigit": frozenset(_HEXD),
        "graph": frozenset(range(33, 127)),
        "print": frozenset(range(32, 127)),
        "ascii": frozenset(range(0, 128)),
        "alnum": _ALPHA | frozenset(range(48, 58)),
        "word": _ALPHA | frozenset(range(48, 58)) | {95},
    }
)


def no_equiv(construct: str) -> RuleError:
    return RuleError(f"pcre: {construct} has no exact Python equivalent")


def _lit(byte: int) -> str:
    return chr(byte) if byte in _WORD else f"\\x{byte:02x}"


def _set_expr(members: frozenset[int] | set[int], negate: bool = False) -> str:
    chosen = sorted(set(range(256)) - set(members)) if negate else sorted(members)
    return "".join(_lit(b) for b in chosen)


class _Translator:
    """One pass over the PCRE pattern bytes producing an equivalent Python pattern."""

    def __init__(self, src: bytes, flags: str) -> None:
        self.src = src
        self.pos = 0
        self.out: list[str] = []
        self.extended = "x" in flags
        self.multiline = "m" in flags
        self.endonly = "E" in flags
        self.ungreedy = "G" in flags
        self.global_flags = ""

    def error(self, construct: str) -> RuleError:
        return no_equiv(construct)

    def peek(self, k: int = 0) -> int:
        i = self.pos + k
        return self.src[i] if i < len(self.src) else -1

    def translate(self) -> str:
        src = self.src
        while self.pos < len(src):
            c = src[self.pos]
            if self.extended and c in _WS:
                self.pos += 1
            elif self.extended and c == 0x23:  # '#': comment to end of line
                nl = src.find(b"\n", self.pos)
                self.pos = len(src) if nl < 0 else nl + 1
            elif c == 0x5C:  # backslash
                self.out.append(self.escape())
            elif c == 0x5B:  # [
                self.out.append(self.char_class())
            elif c == 0x28:  # (
                self.out.append(self.group())
            elif c in b"*+?":
                self.pos += 1
                self.out.append(chr(c) + self.quant_suffix())
            elif c == 0x7B:  # {
                self.out.append(self.brace())
            elif c == 0x5E:  # ^
                self.pos += 1
                self.out.append(r"(?:\A|(?<=\n)(?!\Z))" if self.multiline else r"\A")
            elif c == 0x24:  # $
                self.pos += 1
                if self.multiline:
                    self.out.append(r"(?=\n|\Z)")
                else:
                    self.out.append(r"\Z" if self.endonly else r"(?=\n?\Z)")
            elif c in b").|":
                self.pos += 1
                self.out.append(chr(c))
            else:
                self.pos += 1
                self.out.append(_lit(c))
        return self.global_flags + "".join(self.out)

    def quant_suffix(self) -> str:
        nxt = self.peek()
        if nxt == 0x2B:  # possessive: unaffected by /G
            self.pos += 1
            return "+"
        if nxt == 0x3F:  # '?': lazy, or greedy again under /G
            self.pos += 1
            return "" if self.ungreedy else "?"
        return "?" if self.ungreedy else ""

    def brace(self) -> str:
        m = re.match(rb"\{(\d+)(,(\d*))?\}", self.src[self.pos :])
        if m is None:  # PCRE2 reads a non-quantifier brace (incl. {,n}) literally
            self.pos += 1
            return r"\{"
        if m.group(3) and int(m.group(3)) < int(m.group(1)):
            raise RuleError("pcre: numbers out of order in {} quantifier")
        self.pos += m.end()
        return m.group(0).decode() + self.quant_suffix()

    def read_hex(self) -> int:
        """After ``\\x``: ``{h...}`` or up to two hex digits."""
        src = self.src
        if self.peek() == 0x7B:
            close = src.find(b"}", self.pos)
            digits = src[self.pos + 1 : close] if close > 0 else b""
            if close < 0 or not digits or any(d not in _HEXD for d in digits):
                raise RuleError("pcre: malformed \\x{...} escape")
            self.pos = close + 1
            value = int(digits, 16)
        else:
            start = self.pos
            while self.pos < len(src) and self.pos - start < 2 and src[self.pos] in _HEXD:
                self.pos += 1
            value = int(src[start : self.pos], 16) if self.pos > start else 0
        if value > 0xFF:
            raise self.error(f"code point \\x{{{value:x}}} above 0xff")
        return value

    def char_escape(self, c: int) -> int | None:
        """Escapes naming one byte, shared by classes and the top level; None otherwise."""
        simple = {0x6E: 10, 0x72: 13, 0x74: 9, 0x66: 12, 0x61: 7, 0x65: 27}
        if c in simple:
            return simple[c]
        if c == 0x78:  # x
            return self.read_hex()
        if c == 0x30:  # \0 plus up to two octal digits
            start = self.pos
            while self.pos < len(self.src) and self.pos - start < 2 and self.src[self.pos] in _OCT:
                self.pos += 1
            return int(self.src[start : self.pos] or b"0", 8)
        if c == 0x6F:  # \o{...}
            close = self.src.find(b"}", self.pos)
            digits = self.src[self.pos + 1 : close] if self.peek() == 0x7B and close > 0 else b""
            if not digits or any(d not in _OCT for d in digits) or int(digits, 8) > 0xFF:
                raise RuleError("pcre: malformed \\o{...} escape")
            self.pos = close + 1
            return int(digits, 8)
        if c == 0x63:  # \cX
            x = self.peek()
            if x < 0 or x > 127:
                raise RuleError("pcre: \\c at end of pattern")
            self.pos += 1
            return (x - 32 if 97 <= x <= 122 else x) ^ 0x40
        if c not in _WORD or c == 0x5F:  # PCRE: "\" + any non-alphanumeric is that byte
            return c
        return None

    def escape(self) -> str:
        self.pos += 1
        c = self.peek()
        if c < 0:
            raise RuleError("pcre: \\ at end of pattern")
        self.pos += 1
        keep = {0x41: r"\A", 0x7A: r"\Z", 0x5A: r"(?=\n?\Z)", 0x62: r"\b", 0x42: r"\B"}
        if c in keep:
            return keep[c]
        if c in b"dDsSwW":
            return "\\" + chr(c)
        sets = {0x68: (_H, False), 0x48: (_H, True), 0x76: (_V, False), 0x56: (_V, True)}
        if c in sets:
            members, negate = sets[c]
            return "[" + _set_expr(members, negate) + "]"
        if c == 0x52:  # \R: any newline sequence, atomically
            return r"(?>\r\n|[\n\x0b\x0c\r\x85])"
        if c == 0x4E:  # \N: not a newline
            if self.peek() == 0x7B:
                raise self.error("\\N{...}")
            return r"[^\n]"
        if c == 0x51:  # \Q...\E literal text
            end = self.src.find(b"\\E", self.pos)
            end = len(self.src) if end < 0 else end
            text = self.src[self.pos : end]
            self.pos = min(len(self.src), end + 2)
            return "".join(_lit(b) for b in text)
        if c == 0x45:  # stray \E is ignored by PCRE
            return ""
        if c in _DIGITS and c != 0x30:
            if self.peek() in _DIGITS:
                raise self.error("multi-digit backreference or octal escape")
            return f"(?:\\{chr(c)})"
        if c in (0x6B, 0x67):  # \k<name> \k'name' \k{name} \g{n} \gn \g{name}
            return self.backref(c)
        value = self.char_escape(c)
        if value is None:
            raise self.error(f"escape \\{chr(c)}")
        return _lit(value)

    def backref(self, c: int) -> str:
        m = re.match(rb"<(\w+)>|'(\w+)'|\{(-?\w+)\}|(-?\d+)", self.src[self.pos :])
        if m is None:
            raise self.error(f"\\{chr(c)} form")
        if c == 0x67 and (m.group(1) or m.group(2)):
            raise self.error("subroutine call \\g<...>")
        if c == 0x6B and m.group(4):
            raise RuleError("pcre: \\k must be followed by a group name")
        ref = next(g for g in m.groups() if g is not None).decode()
        self.pos += m.end()
        if ref.startswith("-") or ref == "0":
            raise self.error("relative backreference")
        if ref.isdigit():
            return f"(?:\\{int(ref)})"
        return f"(?P={ref})"

    def class_item(self) -> tuple[int | None, str]:
        """One class member: (single byte or None, Python text for it)."""
        c = self.peek()
        if c == 0x5C:
            self.pos += 1
            e = self.peek()
            if e < 0:
                raise RuleError("pcre: \\ at end of pattern")
            self.pos += 1
            if e in b"dDsSwW":
                return None, "\\" + chr(e)
            sets = {0x68: (_H, False), 0x48: (_H, True), 0x76: (_V, False), 0x56: (_V, True)}
            if e in sets:
                members, negate = sets[e]
                return None, _set_expr(members, negate)
            if e == 0x62:  # \b in a class is backspace
                return 8, _lit(8)
            if e == 0x51 or e == 0x45:
                raise self.error("\\Q...\\E inside a character class")
            value = self.char_escape(e)
            if value is None:
                raise self.error(f"escape \\{chr(e)} in a character class")
            return value, _lit(value)
        if c == 0x5B:
            m = re.match(rb"\[:(\^?)([a-z]+):\]", self.src[self.pos :])
            if m is not None:
                name = m.group(2).decode()
                if name not in _POSIX:
                    raise RuleError(f"pcre: unknown POSIX class [:{name}:]")
                self.pos += m.end()
                return None, _set_expr(_POSIX[name], bool(m.group(1)))
        self.pos += 1
        return c, _lit(c)

    def char_class(self) -> str:
        self.pos += 1
        parts = ["["]
        if self.peek() == 0x5E:
            self.pos += 1
            parts.append("^")
        first = True
        while True:
            c = self.peek()
            if c < 0:
                raise RuleError("pcre: missing terminating ] for character class")
            if c == 0x5D and not first:
                self.pos += 1
                break
            first = False
            lo, text = self.class_item()
            if lo is not None and self.peek() == 0x2D and self.peek(1) not in (0x5D, -1):
                save = self.pos
                self.pos += 1
                hi, hi_text = self.class_item()
                if hi is None:
                    self.pos = save  # '-' before a class escape is literal
                else:
                    if hi < lo:
                        raise RuleError("pcre: range out of order in character class")
                    text = f"{text}-{hi_text}"
            parts.append(text)
        parts.append("]")
        return "".join(parts)

    def group(self) -> str:
        src = self.src
        self.pos += 1
        if self.peek() == 0x2A:  # (*VERB)
            raise self.error("(*...) verb")
        if self.peek() != 0x3F:
            return "("
        rest = src[self.pos + 1 :]
        simple = (b":", b"=", b"!", b"<=", b"<!", b">")
        for lead in simple:
            if rest.startswith(lead):
                self.pos += 1 + len(lead)
                return "(?" + lead.decode()
        if rest.startswith(b"#"):
            close = src.find(b")", self.pos)
            if close < 0:
                raise RuleError("pcre: missing ) after comment")
            self.pos = close + 1
            return ""
        m = re.match(rb"(?:P?<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)')", rest)
        if m is not None:
            self.pos += 1 + m.end()
            return f"(?P<{(m.group(1) or m.group(2)).decode()}>"
        m = re.match(rb"P=([A-Za-z_]\w*)\)", rest)
        if m is not None:
            self.pos += 1 + m.end()
            return f"(?P={m.group(1).decode()})"
        m = re.match(rb"\((?:(\d+)|<([A-Za-z_]\w*)>|'([A-Za-z_]\w*)'|([A-Za-z_]\w*))\)", rest)
        if m is not None:
            ref = next(g for g in m.groups() if g is not None).decode()
            if ref in ("R", "DEFINE") or ref.startswith("R"):
                raise self.error(f"condition (?({ref})")
            self.pos += 1 + m.end()
            return f"(?({ref})"
        if rest.startswith(b"("):
            raise self.error("assertion condition (?(?...)")
        m = re.match(rb"([imsxnJU]*)(?:-([imsxnJU]*))?([:)])", rest)
        if m is None:
            raise self.error(f"group (?{rest[:3].decode('latin-1')}")
        on, off, end = m.group(1).decode(), (m.group(2) or b"").decode(), m.group(3)
        bad = set(on + off) - set("is")
        if bad:
            raise self.error(f"inline option {''.join(sorted(bad))}")
        self.pos += 1 + m.end()
        if end == b":":
            return f"(?{on}-{off}:" if off else f"(?{on}:"
        if off or self.out or self.global_flags:
            raise self.error("inline option setting after the start of the pattern")
        self.global_flags = f"(?{on})"
        return ""


def translate(expression: bytes, flags: str) -> bytes:
    """PCRE2 pattern bytes (with Suricata's flags) → an equivalent Python ``re`` bytes pattern."""
    text = _Translator(expression, flags).translate()
    return text.encode("latin-1")
