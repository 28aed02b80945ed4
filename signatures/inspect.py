"""The evaluation engine for one buffer's chain of payload keywords.

Scope: :class:`MatchEnv` (per-thread scratch reused across rules), :class:`BufferProgram`
(an ordered tuple of precompiled steps) and the steps that are not content/pcre/byte_*:
isdataat, bsize and base64_decode. Evaluation mirrors Suricata 7's
DetectEngineContentInspection: each step returns 1 (match), 0 (no match, an earlier
content may retry at its next occurrence) or -1 (no match and give up), and a step that
matched calls the rest of the chain itself, which is how backtracking happens.

Non-goals: choosing which rules run (the prefilter does that) and producing buffers.
"""

from __future__ import annotations

import binascii
from typing import Protocol

from sensor.errors import RuleError

# Suricata's default detect.inspection-recursion-limit.
RECURSION_LIMIT = 3000
# Keywords in one buffer's chain. Each matching step calls the rest of the chain, so the
# chain length is Python stack depth (about three frames per step against the interpreter's
# limit of 1000); a longer chain would raise RecursionError mid-packet, so it is refused
# when the rule loads. Real rules stay far below (ET Open's longest chains are ~40).
MAX_STEPS = 200

MATCH = 1
NO_MATCH = 0
DISCONTINUE = -1

U32 = 0xFFFFFFFF


class MatchEnv:
    """Mutable scratch for one rule evaluation; call :meth:`reset` before each rule."""

    __slots__ = ("_lower_buf", "_lower_src", "calls", "captures", "offset", "pcre_start", "vars")

    def __init__(self) -> None:
        self.vars: dict[str, int] = {}
        self.offset = 0  # Suricata's buffer_offset: end of the last relative anchor
        self.pcre_start = 0  # where a retried pcre resumes (match start + 1), 0 = fresh
        self.calls = 0  # recursion counter against RECURSION_LIMIT
        # pcre captures bound for flow/packet variables: (kind, name) -> value, applied
        # only when the whole rule matches (signatures/pcre_vars.py)
        self.captures: dict[tuple[str, str], bytes] = {}
        self._lower_src: bytes | None = None
        self._lower_buf = b""

    def reset(self) -> None:
        self.vars.clear()
        self.offset = 0
        self.pcre_start = 0
        self.calls = 0
        if self.captures:
            self.captures = {}

    def lowered(self, buf: bytes) -> bytes:
        """ASCII-lowercased copy of ``buf``, computed once per buffer for nocase contents."""
        if self._lower_src is not buf:
            self._lower_src = buf
            self._lower_buf = buf.lower()
        return self._lower_buf


class Step(Protocol):
    """One precompiled keyword. ``run`` evaluates it and, when it matches, the rest."""

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int: ...


def run_from(steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
    """Evaluate ``steps[i:]`` on ``buf``; counts calls like Suricata's recursion limit."""
    env.calls += 1
    if env.calls == RECURSION_LIMIT:
        return DISCONTINUE
    return steps[i].run(steps, i, buf, env)


def run_next(steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
    """Continue after a matching step: the chain matched when it was the last one."""
    if i + 1 == len(steps):
        return MATCH
    return run_from(steps, i + 1, buf, env)


class BufferProgram:
    """The chain of keywords inspecting one buffer, in rule order."""

    __slots__ = ("buffer", "steps")

    def __init__(self, buffer: str, steps: tuple[Step, ...]) -> None:
        if len(steps) > MAX_STEPS:
            raise RuleError(
                f"{len(steps)} keywords on buffer {buffer} (at most {MAX_STEPS}: each one is "
                "a level of recursion while matching)",
                category="pathological rule",
            )
        self.buffer = buffer
        self.steps = steps

    def match(self, buf: bytes, env: MatchEnv) -> bool:
        env.offset = 0
        env.pcre_start = 0
        env.calls = 0
        if not self.steps:
            return True
        return run_from(self.steps, 0, buf, env) == MATCH

    def __repr__(self) -> str:
        return f"BufferProgram({self.buffer!r}, {len(self.steps)} steps)"


class IsDataAtStep:
    """``isdataat:[!]n[,relative]``: is there a byte at position n (after the cursor)?"""

    __slots__ = ("dataat", "negated", "relative", "var")

    def __init__(self, dataat: int, var: str | None, negated: bool, relative: bool) -> None:
        self.dataat = dataat
        self.var = var
        self.negated = negated
        self.relative = relative

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        dataat = self.dataat
        if self.var is not None:
            value = env.vars.get(self.var, 0)
            if value >= 100_000_000:  # Suricata treats absurd extracted values as "no data"
                return run_next(steps, i, buf, env) if self.negated else NO_MATCH
            dataat = value
        # a failing constant isdataat cannot start to hold at another anchor: give up
        fail = NO_MATCH if self.var is not None else DISCONTINUE
        blen = len(buf)
        if self.relative:
            if env.offset + dataat > blen:
                return run_next(steps, i, buf, env) if self.negated else fail
            return NO_MATCH if self.negated else run_next(steps, i, buf, env)
        if dataat < blen:
            return fail if self.negated else run_next(steps, i, buf, env)
        return run_next(steps, i, buf, env) if self.negated else fail


class BsizeStep:
    """``bsize``: the buffer length compared with a number or an exclusive range."""

    __slots__ = ("hi", "lo", "mode")

    def __init__(self, mode: str, lo: int, hi: int) -> None:
        self.mode = mode  # one of = != < <= > >= <>
        self.lo = lo
        self.hi = hi

    def holds(self, size: int) -> bool:
        mode, lo = self.mode, self.lo
        if mode == "=":
            return size == lo
        if mode == "!=":
            return size != lo
        if mode == "<":
            return size < lo
        if mode == "<=":
            return size <= lo
        if mode == ">":
            return size > lo
        if mode == ">=":
            return size >= lo
        return lo < size < self.hi

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        # the buffer is complete when we see it, so a failure is final (Suricata's eof case)
        if not self.holds(len(buf)):
            return DISCONTINUE
        return run_next(steps, i, buf, env)


_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def decode_base64_relaxed(data: bytes) -> bytes:
    """Decode base64 up to the first byte outside the alphabet; a short last group is kept.

    Mirrors Suricata's relaxed mode: padding or any other byte ends the encoded text, and a
    final group of 2 or 3 characters still yields its 1 or 2 bytes.
    """
    end = 0
    for byte in data:
        if byte not in _B64_ALPHABET:
            break
        end += 1
    text = data[:end]
    usable = len(text) - (len(text) % 4)
    tail = text[usable:]
    out = binascii.a2b_base64(text[:usable]) if usable else b""
    if len(tail) >= 2:
        out += binascii.a2b_base64(tail + b"=" * (4 - len(tail)))
    return out


class Base64DecodeStep:
    """``base64_decode`` followed by the ``base64_data`` chain over the decoded bytes.

    As in Suricata the decoded chain is terminal: when it matches, the whole buffer
    matched and keywords after base64_decode in this buffer are not evaluated.
    """

    __slots__ = ("nbytes", "offset", "relative", "sub")

    def __init__(self, nbytes: int, offset: int, relative: bool, sub: tuple[Step, ...]) -> None:
        if len(sub) > MAX_STEPS:
            raise RuleError(f"{len(sub)} keywords on base64_data (at most {MAX_STEPS})",
                            category="pathological rule")  # fmt: skip
        self.nbytes = nbytes  # 0 = to the end of the buffer
        self.offset = offset
        self.relative = relative
        self.sub = sub

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        start = self.offset + (env.offset if self.relative else 0)
        if start >= len(buf):
            return NO_MATCH
        end = len(buf) if self.nbytes == 0 else min(len(buf), start + self.nbytes)
        decoded = decode_base64_relaxed(buf[start:end])
        if not decoded or not self.sub:
            return NO_MATCH
        env.offset = 0  # the decoded bytes are a new buffer
        env.pcre_start = 0
        if run_from(self.sub, 0, decoded, env) == MATCH:
            return MATCH
        return NO_MATCH
