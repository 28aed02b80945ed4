"""Parsers and hot-path steps for byte_test, byte_jump, byte_extract and byte_math.

Scope: one ``parse_*`` function per keyword returning a precompiled step, and the steps'
``run`` methods (Suricata 7 semantics: byte_test and byte_math leave the cursor alone,
byte_jump and byte_extract move it past what they read/jumped to). Shared option parsing
and number extraction live in ``bytekw``.

Non-goals: 64-bit-overflow quirks of Suricata's int32 casts of variables.
"""

from __future__ import annotations

from sensor.errors import RuleError
from signatures.bytekw import (
    U64,
    ByteOptions,
    Extractor,
    int_or_var,
    nbytes_of,
    parse_int,
    split_args,
)
from signatures.inspect import NO_MATCH, MatchEnv, Step, run_next

_TEST_OPTS = frozenset(
    {"relative", "big", "little", "string", "hex", "dec", "oct", "dce", "bitmask"}
)
_JUMP_OPTS = _TEST_OPTS | {"multiplier", "align", "from_beginning", "from_end", "post_offset"}
_EXTRACT_OPTS = _TEST_OPTS | {"multiplier", "align"}
_TEST_OPS = ("<=", ">=", "<", ">", "=", "&", "^")
_MATH_OPS = ("+", "-", "*", "/", "<<", ">>")


def _s64(value: int) -> int:
    value &= U64
    return value - (1 << 64) if value >> 63 else value


def _s32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >> 31 else value


def _extractor(
    opts: ByteOptions, nbytes: int | None, var: str | None, numeric_max: int, min_bytes: int = 1
) -> Extractor:
    ext = opts.finish(nbytes, numeric_max, min_bytes)
    ext.nbytes_var = var
    return ext


class ByteTestStep:
    __slots__ = ("ext", "negate", "offset", "offset_var", "op", "relative", "value", "value_var")

    def __init__(
        self,
        ext: Extractor,
        op: str,
        negate: bool,
        value: int,
        value_var: str | None,
        offset: int,
        offset_var: str | None,
        relative: bool,
    ) -> None:
        self.ext, self.op, self.negate = ext, op, negate
        self.value, self.value_var = value, value_var
        self.offset, self.offset_var, self.relative = offset, offset_var, relative

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        offset = self.offset if self.offset_var is None else _s32(env.vars.get(self.offset_var, 0))
        got = self.ext.read(buf, 0, self.relative, offset, env)
        if got is None:
            return NO_MATCH
        val = got[0]
        value = self.value if self.value_var is None else env.vars.get(self.value_var, 0)
        op = self.op
        if op == "=":
            ok = val == value
        elif op == "<":
            ok = val < value
        elif op == ">":
            ok = val > value
        elif op == "<=":
            ok = val <= value
        elif op == ">=":
            ok = val >= value
        elif op == "&":
            ok = (val & value) != 0
        else:
            ok = (val ^ value) != 0
        if ok == self.negate:
            return NO_MATCH
        return run_next(steps, i, buf, env)


def parse_byte_test(value: str | None, known: frozenset[str]) -> ByteTestStep:
    """``byte_test:<bytes>,[!]<op>,<value>,<offset>[,options]``."""
    kw = "byte_test"
    args = split_args(value, kw, 4)
    nbytes, nvar = nbytes_of(args[0], kw, known)
    op_text = args[1].replace(" ", "")
    negate = op_text.startswith("!")
    op_text = op_text[1:] if negate else op_text
    if op_text == "" and negate:
        op_text = "="  # a lone '!' means "not equal"
    if op_text not in _TEST_OPS:
        raise RuleError(f"{kw}: invalid operator {args[1]!r}")
    number, value_var = int_or_var(args[2], kw, "value", known)
    offset, offset_var = int_or_var(args[3], kw, "offset", known)
    opts = ByteOptions(kw)
    for word in args[4:]:
        opts.apply(word, _TEST_OPTS)
    ext = _extractor(opts, nbytes, nvar, 8, min_bytes=0)  # ET has byte_test:0,... rules
    return ByteTestStep(
        ext, op_text, negate, number & U64, value_var, offset, offset_var, opts.relative
    )


class ByteJumpStep:
    __slots__ = (
        "align",
        "ext",
        "from_beginning",
        "from_end",
        "multiplier",
        "offset",
        "offset_var",
        "post_offset",
        "relative",
    )

    def __init__(
        self, ext: Extractor, offset: int, offset_var: str | None, opts: ByteOptions
    ) -> None:
        self.ext, self.offset, self.offset_var = ext, offset, offset_var
        self.relative = opts.relative
        self.multiplier = opts.multiplier
        self.align = opts.align != 0
        self.from_beginning = opts.from_beginning
        self.from_end = opts.from_end
        self.post_offset = opts.post_offset

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        offset = self.offset if self.offset_var is None else _s32(env.vars.get(self.offset_var, 0))
        got = self.ext.read(buf, 0, self.relative, offset, env)
        if got is None:
            return NO_MATCH
        val, end = got
        val = (val * self.multiplier) & U64
        if self.align and val % 4:
            val = (val + 4 - val % 4) & U64
        if self.from_beginning:
            jump = _s64(val)
        elif self.from_end:
            jump = len(buf) + _s64(val)
        else:
            jump = end + _s64(val)
        jump += self.post_offset
        if jump < 0:
            jump = 0  # Suricata clamps a jump before the buffer start to the start
        elif jump > len(buf):
            return NO_MATCH
        env.offset = jump
        return run_next(steps, i, buf, env)


def parse_byte_jump(value: str | None, known: frozenset[str]) -> ByteJumpStep:
    """``byte_jump:<bytes>,<offset>[,options]``."""
    kw = "byte_jump"
    args = split_args(value, kw, 2)
    nbytes, nvar = nbytes_of(args[0], kw, known)
    offset, offset_var = int_or_var(args[1], kw, "offset", known)
    opts = ByteOptions(kw)
    for word in args[2:]:
        opts.apply(word, _JUMP_OPTS)
    if opts.from_beginning and opts.from_end:
        raise RuleError(f"{kw}: from_beginning and from_end exclude each other")
    return ByteJumpStep(_extractor(opts, nbytes, nvar, 8, min_bytes=0), offset, offset_var, opts)


class ByteExtractStep:
    __slots__ = ("align", "ext", "multiplier", "name", "offset", "relative")

    def __init__(self, ext: Extractor, offset: int, name: str, opts: ByteOptions) -> None:
        self.ext, self.offset, self.name = ext, offset, name
        self.relative = opts.relative
        self.multiplier = opts.multiplier
        self.align = opts.align

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        got = self.ext.read(buf, 0, self.relative, self.offset, env)
        if got is None:
            return NO_MATCH
        val, end = got
        val = (val * self.multiplier) & U64
        if self.align and val % self.align:
            val = (val + self.align - val % self.align) & U64
        env.vars[self.name] = val
        env.offset = end
        return run_next(steps, i, buf, env)


def parse_byte_extract(value: str | None, known: frozenset[str]) -> ByteExtractStep:
    """``byte_extract:<bytes>,<offset>,<name>[,options]``."""
    kw = "byte_extract"
    args = split_args(value, kw, 3)
    nbytes = parse_int(args[0], kw, "bytes")
    offset = parse_int(args[1], kw, "offset")
    name = args[2]
    if not (name[0].isalpha() or name[0] == "_") or not name.replace("_", "").isalnum():
        raise RuleError(f"{kw}: invalid variable name {name!r}")
    opts = ByteOptions(kw)
    for word in args[3:]:
        opts.apply(word, _EXTRACT_OPTS)
    return ByteExtractStep(_extractor(opts, nbytes, None, 8), offset, name, opts)


class ByteMathStep:
    __slots__ = (
        "ext",
        "mask",
        "offset",
        "op",
        "relative",
        "result",
        "rvalue",
        "rvalue_var",
        "shift",
    )

    def __init__(
        self,
        ext: Extractor,
        offset: int,
        op: str,
        rvalue: int,
        rvalue_var: str | None,
        result: str,
        relative: bool,
    ) -> None:
        self.mask, self.shift = ext.mask, ext.shift
        ext.mask = 0  # byte_math masks the result of the operation, not the operand
        self.ext, self.offset, self.op = ext, offset, op
        self.rvalue, self.rvalue_var = rvalue, rvalue_var
        self.result, self.relative = result, relative

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        got = self.ext.read(buf, 0, self.relative, self.offset, env)
        if got is None:
            return NO_MATCH
        val = got[0]
        rvalue = self.rvalue if self.rvalue_var is None else env.vars.get(self.rvalue_var, 0)
        op = self.op
        if op == "+":
            val += rvalue
        elif op == "-":
            val -= rvalue
        elif op == "*":
            val *= rvalue
        elif op == "/":
            if rvalue == 0:
                return NO_MATCH
            val //= rvalue
        elif op == "<<":
            val = val << rvalue if rvalue < 64 else 0
        else:
            val >>= rvalue
        val &= U64
        if self.mask:
            val &= self.mask
            if val and self.shift:
                val >>= self.shift
        env.vars[self.result] = val
        return run_next(steps, i, buf, env)


def parse_byte_math(value: str | None, known: frozenset[str]) -> ByteMathStep:
    """``byte_math:bytes <n>, offset <o>, oper <op>, rvalue <v>, result <name>[, options]``."""
    kw = "byte_math"
    fields: dict[str, str] = {}
    opts = ByteOptions(kw)
    for word in split_args(value, kw, 5):
        parts = word.split(None, 1)
        key = parts[0].lower()
        if key in ("bytes", "offset", "oper", "rvalue", "result"):
            if len(parts) != 2 or key in fields:
                raise RuleError(f"{kw}: {key} needs exactly one value")
            fields[key] = parts[1].strip()
        else:
            opts.apply(word, frozenset({"relative", "endian", "string", "bitmask", "dce"}))
    missing = [k for k in ("bytes", "offset", "oper", "rvalue", "result") if k not in fields]
    if missing:
        raise RuleError(f"{kw}: missing required {', '.join(missing)}")
    if fields["oper"] not in _MATH_OPS:
        raise RuleError(f"{kw}: invalid oper {fields['oper']!r}")
    nbytes, nvar = nbytes_of(fields["bytes"], kw, known)
    offset = parse_int(fields["offset"], kw, "offset")
    rvalue, rvar = int_or_var(fields["rvalue"], kw, "rvalue", known)
    if rvar is None and not 0 <= rvalue <= 0xFFFFFFFF:
        raise RuleError(f"{kw}: rvalue must be 0-4294967295")
    ext = _extractor(opts, nbytes, nvar, 4)
    return ByteMathStep(ext, offset, fields["oper"], rvalue, rvar, fields["result"], opts.relative)
