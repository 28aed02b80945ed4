"""The ``pcre`` keyword: value parsing, compilation via ``pcre_translate``, and matching.

Scope: splitting ``/re/flags``, translating every construct whose meaning Python can express
exactly (rewriting the ones it spells differently: ``\\z``, ``\\Z``, ``$``, ``^`` under /m,
``\\h``, ``\\v``, ``\\R``, POSIX classes, named groups, /G ungreedy, /x whitespace), and
rejecting the rest with ``RuleError("pcre: <construct> has no exact Python equivalent")``.
The pattern is tokenised byte by byte so no construct is passed through unexamined.

Hostile rules: Python's ``re`` has no match limit (PCRE's ``match-limit``), so a backtracking
bomb cannot be stopped once running. Two bounds replace it (docs/limits.md): a pattern with
a nested unbounded repeat whose outer body can match through the inner repeat alone
(``(a+)+``, ``(?:\\s*\\w+)*``: exponential backtracking) is rejected when the rule loads, and
one pcre call looks at most ``PCRE_MAX_SUBJECT`` bytes of its buffer (polynomial patterns
like ``.*a.*b.*c`` stay bounded). Alternation-driven blow-ups such as ``(a|aa)+`` are not
detected.

Captures into flow/packet variables (``, flow:name``, ``(?P<flow_name>..)``) are parsed in
``pcre_vars`` and recorded here on each successful match.

Non-goals: PCRE match limits (/O is accepted and ignored), UTF/UCP modes.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from sensor.errors import RuleError
from signatures.buffers import PCRE_BUFFER_FLAGS
from signatures.inspect import DISCONTINUE, MATCH, NO_MATCH, MatchEnv, Step, run_from
from signatures.pcre_translate import no_equiv, translate
from signatures.pcre_vars import Capture, record

__all__ = ["PcreStep", "compile_pcre", "pcre_buffer", "split_pcre", "translate"]

_FLAGS = frozenset("ismxAEGRUIPHDMCSYBOQVWZ")
# Bytes of a buffer one pcre call examines (above the 100 KiB HTTP body limits, so normal
# buffers are never cut); bounds polynomial backtracking on huge reassembled buffers.
PCRE_MAX_SUBJECT = 128 * 1024
# The regex parser of the standard library (``re._parser``; ``sre_parse`` is deprecated).
sre_parse: Any = importlib.import_module("re._parser")
sre_c: Any = importlib.import_module("re._constants")
_REPEATS = (sre_c.MAX_REPEAT, sre_c.MIN_REPEAT)


def split_pcre(value: str | None, quoted: bool) -> tuple[bytes, str, bool]:
    """Return (expression bytes, flags, negated) from the keyword value ``/re/flags``."""
    if value is None:
        raise RuleError("pcre: missing expression")
    text = value.strip() if not quoted else value
    negated = False
    if not quoted and text.startswith("!"):
        negated = True
        text = text[1:].strip()
    if not quoted and len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        text = text[1:-1]
    last = text.rfind("/")
    if not text.startswith("/") or last <= 0:
        raise RuleError(f"pcre: expected /expression/flags, got {value!r}")
    flags = text[last + 1 :]
    for flag in flags:
        if flag not in _FLAGS:
            raise RuleError(f"pcre: unknown flag {flag!r} in {value!r}")
    return text[1:last].encode("utf-8"), flags, negated


def compile_pcre(expression: bytes, flags: str) -> re.Pattern[bytes]:
    pattern = translate(expression, flags)
    reflags = (re.IGNORECASE if "i" in flags else 0) | (re.DOTALL if "s" in flags else 0)
    try:
        compiled = re.compile(pattern, reflags)
    except re.error as exc:
        if "look-behind requires fixed-width" not in str(exc):
            raise RuleError(f"pcre: cannot compile {expression!r}: {exc}") from exc
        # PCRE lets each top-level branch of a lookbehind have its own fixed length;
        # Python wants one length per lookbehind: one lookbehind per branch says the same.
        pattern = split_lookbehinds(pattern.decode("latin-1")).encode("latin-1")
        try:
            compiled = re.compile(pattern, reflags)
        except re.error as again:
            raise no_equiv("variable-length lookbehind") from again
    nested = _nested_unbounded(sre_parse.parse(pattern, reflags))
    if nested:
        raise RuleError(
            f"pcre: {expression!r} nests an unbounded repeat in another ({nested}); "
            "catastrophic backtracking risk, and Python's re has no match limit",
            category="pathological pcre",
        )
    return compiled


def _top_items(body: Any) -> list[list[Any]]:
    """The alternatives of a repeated body as item lists, unwrapping single groups."""
    items = list(body)
    if len(items) == 1 and items[0][0] == sre_c.SUBPATTERN:
        return _top_items(items[0][1][-1])
    if len(items) == 1 and items[0][0] == sre_c.BRANCH:
        return [alt for branch in items[0][1][1] for alt in _top_items(branch)]
    return [items]


def _nested_unbounded(tree: Any) -> str:
    """Describe the first unbounded repeat whose body is, up to parts that may match empty,
    another unbounded repeat ("" when there is none)."""
    for op, av in tree:
        children: list[Any] = []
        if op in _REPEATS:
            _lo, hi, body = av
            if hi == sre_c.MAXREPEAT:
                for items in _top_items(body):
                    for k, (iop, iav) in enumerate(items):
                        if iop in _REPEATS and iav[1] == sre_c.MAXREPEAT:
                            rest = sre_parse.SubPattern(body.state, items[:k] + items[k + 1 :])
                            if rest.getwidth()[0] == 0:
                                return "an unbounded repeat directly inside another"
            children = [body]
        elif op == sre_c.SUBPATTERN:
            children = [av[-1]]
        elif op == sre_c.BRANCH:
            children = list(av[1])
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            children = [av[1]]
        for child in children:
            found = _nested_unbounded(child)
            if found:
                return found
    return ""


def pcre_buffer(flags: str) -> str | None:
    """The buffer named by a Suricata buffer flag (/U, /H, ...), or None for the current one."""
    chosen = {PCRE_BUFFER_FLAGS[f] for f in flags if f in PCRE_BUFFER_FLAGS}
    if len(chosen) > 1:
        raise RuleError(f"pcre: flags {flags!r} select more than one buffer")
    return chosen.pop() if chosen else None


class PcreStep:
    """Precompiled pcre; ``run`` is Suricata's pcre branch including retries."""

    __slots__ = ("_source", "anchored", "captures", "negated", "regex", "relative",
                 "relative_next")  # fmt: skip

    def __init__(self, regex: re.Pattern[bytes], negated: bool, relative: bool, anchored: bool,
                 captures: tuple[Capture, ...] = ()) -> None:  # fmt: skip
        self.regex: re.Pattern[bytes] | None = regex
        self._source = (regex.pattern, regex.flags)
        self.negated = negated
        self.relative = relative
        self.anchored = anchored
        self.relative_next = False
        self.captures = captures  # flow/packet variables the groups are stored into

    # Pickled (rule cache) without the compiled regex: recompiling thousands of ET patterns
    # at load would cost seconds, so each one is compiled the first time it is needed.
    def __getstate__(self) -> tuple[object, ...]:
        return (self._source, self.negated, self.relative, self.anchored, self.relative_next,
                self.captures)  # fmt: skip

    def __setstate__(self, state: tuple[object, ...]) -> None:
        (self._source, self.negated, self.relative, self.anchored, self.relative_next,
         self.captures) = state  # type: ignore[assignment]  # fmt: skip
        self.regex = None

    def _regex(self) -> re.Pattern[bytes]:
        regex = self.regex
        if regex is None:
            regex = self.regex = re.compile(*self._source)
        return regex

    def _search(self, buf: bytes, env: MatchEnv) -> bool:
        base = env.offset if self.relative else 0
        subject = memoryview(buf)[base:] if base else buf
        if len(subject) > PCRE_MAX_SUBJECT:
            subject = memoryview(buf)[base : base + PCRE_MAX_SUBJECT]
        start = env.pcre_start - base if env.pcre_start else 0
        if start > len(subject):
            return self.negated  # PCRE2 rejects the offset: no match
        regex = self._regex()
        m = regex.match(subject, start) if self.anchored else regex.search(subject, start)
        if m is None:
            return self.negated
        if self.negated:
            return False
        env.offset = base + m.end()
        env.pcre_start = base + m.start() + 1
        if self.captures:
            record(self.captures, m, env.captures)
        return True

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        start = env.offset
        env.pcre_start = 0
        last = i + 1 == len(steps)
        while True:
            if not self._search(buf, env):
                return NO_MATCH
            if last:
                return MATCH
            resume = env.pcre_start
            r = run_from(steps, i + 1, buf, env)
            if r in (MATCH, DISCONTINUE) or not self.relative_next:
                return r
            if resume == 0:  # negated pcre: nothing to retry
                return NO_MATCH
            env.offset = start
            env.pcre_start = resume


def split_lookbehinds(pattern: str) -> str:
    """``(?<!A|B)`` → ``(?<!A)(?<!B)`` and ``(?<=A|B)`` → ``(?:(?<=A)|(?<=B))``, for every
    lookbehind of a (Python-syntax) pattern whose body has top-level alternatives."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith(("(?<!", "(?<="), i):
            end = _group_end(pattern, i)
            kind = pattern[i : i + 4]
            branches = [split_lookbehinds(b) for b in _top_branches(pattern[i + 4 : end])]
            if len(branches) == 1:
                out.append(f"{kind}{branches[0]})")
            elif kind == "(?<!":
                out.append("".join(f"(?<!{b})" for b in branches))
            else:
                out.append("(?:" + "|".join(f"(?<={b})" for b in branches) + ")")
            i = end + 1
            continue
        step = _token_len(pattern, i)
        out.append(pattern[i : i + step])
        i += step
    return "".join(out)


def _token_len(pattern: str, i: int) -> int:
    """Length of the token at ``i``: an escape, a whole character class, or one character."""
    if pattern[i] == "\\":
        return 2
    if pattern[i] == "[":
        j = i + 1
        if j < len(pattern) and pattern[j] == "^":
            j += 1
        if j < len(pattern) and pattern[j] == "]":  # a leading ] is a member
            j += 1
        while j < len(pattern) and pattern[j] != "]":
            j += 2 if pattern[j] == "\\" else 1
        return j + 1 - i
    return 1


def _group_end(pattern: str, start: int) -> int:
    """Index of the ``)`` closing the group opened at ``start``."""
    depth = 0
    i = start
    while i < len(pattern):
        c = pattern[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += _token_len(pattern, i)
    raise RuleError("pcre: unbalanced parentheses")


def _top_branches(body: str) -> list[str]:
    """``body`` split at its top-level ``|``."""
    parts: list[str] = []
    depth = 0
    last = i = 0
    while i < len(body):
        c = body[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            parts.append(body[last:i])
            last = i + 1
        i += _token_len(body, i)
    parts.append(body[last:])
    return parts
