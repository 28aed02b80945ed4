"""Rule files -> parsed rules plus a list of problems; one bad rule never stops loading.

Scope, line by line (CRLF and LF both accepted):

* blank lines and ``#`` comments are skipped;
* a line that ends with ``\\`` continues on the next line; as in Suricata the backslash
  is removed and the next line appended as is (the rule's line is its first line);
* ``# alert ...`` / ``#alert ...`` (any number of ``#``, leading whitespace allowed) is a
  disabled rule: parsed and returned with ``enabled=False``; if it does not parse it was
  just a comment and is ignored without an issue;
* ``include <path>`` / ``include: <path>`` (optionally quoted) loads another file at that
  point, relative to the including file's directory; a missing included file is fatal
  (RuleError naming it, like a missing file the user passed), an include cycle or a file
  included twice is an issue and skipped;
* a rule indented by whitespace is parsed, with a warning: Suricata silently ignores
  lines that start with a space or tab;
* bytes that are not UTF-8 make that line an error issue and the line is skipped
  (in a comment they are ignored): content bytes are written as ``|hex|`` in rules, so
  guessing latin-1 would silently change what a rule matches;
* a rule that does not parse becomes a RuleIssue (file, line, reason) and is skipped;
* duplicate (gid, sid) among enabled rules: like Suricata, the rule with the higher rev
  is kept (the first one on a tie) and the other is reported (category "duplicate sid").

Non-goals: keyword semantics (the builder), rule-file lists from the config.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sensor.errors import RuleError
from signatures.parser import ACTIONS, ParsedRule, parse_rule
from signatures.variables import Variables

_ACTION_WORDS = "|".join(sorted(ACTIONS))
_DISABLED = re.compile(rf"\s*#[#\s]*((?:{_ACTION_WORDS})\s.*)\Z", re.DOTALL)
_INCLUDE = re.compile(r"\s*include\s*:?\s+(.*?)\s*\Z|\s*include\s*:\s*(.*?)\s*\Z", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RuleIssue:
    """One problem found while loading: where, why, a bucket for summaries, how bad."""

    file: str
    line: int
    reason: str
    category: str
    severity: str  # "error" (rule/line skipped) or "warning" (loaded, but look at it)


@dataclass(frozen=True, slots=True)
class LoadResult:
    rules: tuple[ParsedRule, ...]  # enabled and disabled, in file order
    issues: tuple[RuleIssue, ...]
    files: tuple[str, ...]  # every file read, includes too, in the order read

    @property
    def enabled(self) -> tuple[ParsedRule, ...]:
        return tuple(rule for rule in self.rules if rule.enabled)


def _read_lines(path: str, display: str) -> list[str | None]:
    """The file's lines; None for a line that is not valid UTF-8."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise RuleError(f"rule file {display} does not exist", category="missing file") from None
    except OSError as exc:
        raise RuleError(
            f"cannot read rule file {display}: {exc.strerror}", category="missing file"
        ) from exc
    try:
        return list(_split_lines(data.decode("utf-8")))
    except UnicodeDecodeError:
        pass
    lines: list[str | None] = []
    for raw in data.split(b"\n"):
        try:
            lines.append(raw.decode("utf-8").removesuffix("\r"))
        except UnicodeDecodeError:
            # A comment's bytes do not matter (old files carry latin-1 author names);
            # a disabled rule with bad bytes is dropped like any unparsable comment.
            lines.append("#" if raw.lstrip().startswith(b"#") else None)
    return lines


def _split_lines(text: str) -> list[str]:
    # Not str.splitlines(): it also splits on \x0b, \x1c, U+2028... which may sit in a rule.
    return [line.removesuffix("\r") for line in text.split("\n")]


class _Loader:
    """Accumulates rules and issues over several files (and their includes)."""

    def __init__(self, variables: Variables) -> None:
        self.variables = variables
        self.rules: list[ParsedRule | None] = []  # None: replaced by a duplicate with higher rev
        self.issues: list[RuleIssue] = []
        self.files: list[str] = []
        self.by_identity: dict[tuple[int, int], int] = {}  # (gid, sid) -> index in rules
        self.stack: list[str] = []  # files being loaded, for include cycles

    def issue(
        self, file: str, line: int, reason: str, category: str, severity: str = "error"
    ) -> None:
        self.issues.append(RuleIssue(file, line, reason, category, severity))

    def load_file(self, path: str) -> None:
        real = os.path.realpath(path)
        if real in self.stack:
            raise _IncludeCycle(" -> ".join([*self.stack, real]))
        if real in self.files:
            raise _AlreadyLoaded(real)
        lines = _read_lines(path, path)
        self.files.append(real)
        self.stack.append(real)
        try:
            self.load_lines(lines, path)
        finally:
            self.stack.pop()

    def load_lines(self, lines: Sequence[str | None], file: str) -> None:
        index = 0
        while index < len(lines):
            start = index + 1
            text = lines[index]
            index += 1
            if text is None:
                self.issue(file, start, "line is not valid UTF-8", "encoding")
                continue
            commented = text.lstrip().startswith("#")
            if commented and _DISABLED.match(text) is None:
                continue  # a plain comment: a trailing backslash does not continue it
            while text.rstrip().endswith("\\") and index < len(lines):
                following = lines[index]
                index += 1
                if following is None:
                    self.issue(file, index, "line is not valid UTF-8", "encoding")
                    following = ""
                if commented:  # a disabled rule's continuation lines are commented out too
                    following = following.lstrip().lstrip("#")
                text = text.rstrip()[:-1] + following
            self.load_logical_line(text, file, start)

    def load_logical_line(self, text: str, file: str, line: int) -> None:
        stripped = text.strip()
        if not stripped:
            return
        if stripped[0] == "#":
            disabled = _DISABLED.match(text)
            if disabled is not None:
                self.add_disabled(disabled.group(1), file, line)
            return
        include = _INCLUDE.match(text)
        if include is not None:
            self.include((include.group(1) or include.group(2) or "").strip("\"'"), file, line)
            return
        if text[0].isspace():
            self.issue(
                file,
                line,
                "rule line starts with whitespace (Suricata would ignore it)",
                "indented rule",
                "warning",
            )
        try:
            rule = parse_rule(stripped, self.variables, file, line)
        except RuleError as exc:
            self.issue(file, line, exc.reason, exc.category)
            return
        self.add_enabled(rule)

    def add_disabled(self, text: str, file: str, line: int) -> None:
        try:
            self.rules.append(parse_rule(text, self.variables, file, line, enabled=False))
        except RuleError:
            pass  # a comment that merely starts with an action word

    def add_enabled(self, rule: ParsedRule) -> None:
        key = (rule.gid, rule.sid)
        previous_index = self.by_identity.get(key)
        if previous_index is None:
            self.by_identity[key] = len(self.rules)
            self.rules.append(rule)
            return
        previous = self.rules[previous_index]
        assert previous is not None
        if rule.rev > previous.rev:
            loser, winner = previous, rule
            self.rules[previous_index] = None
            self.by_identity[key] = len(self.rules)
            self.rules.append(rule)
        else:
            loser, winner = rule, previous
        self.issue(
            loser.file,
            loser.line,
            f"duplicate sid {rule.gid}:{rule.sid} rev {loser.rev}; kept rev {winner.rev} "
            f"from {winner.file}:{winner.line}",
            "duplicate sid",
            "warning",
        )

    def include(self, target: str, file: str, line: int) -> None:
        if not target:
            self.issue(file, line, "include without a path", "include")
            return
        if "$" in target:
            self.issue(
                file,
                line,
                f"include path '{target}' uses a variable, which is not supported",
                "include",
            )
            return
        base = os.path.dirname(file) if file != "<string>" else os.getcwd()
        path = os.path.join(base, target)
        if not os.path.exists(path):
            raise RuleError(
                f"included rule file {path} does not exist",
                file=file,
                line=line,
                category="missing file",
            )
        try:
            self.load_file(path)
        except _IncludeCycle as cycle:
            self.issue(file, line, f"include cycle: {cycle}", "include")
        except _AlreadyLoaded:
            self.issue(
                file, line, f"{path} is already loaded; include skipped", "include", "warning"
            )

    def result(self) -> LoadResult:
        rules = tuple(rule for rule in self.rules if rule is not None)
        return LoadResult(rules, tuple(self.issues), tuple(self.files))


class _IncludeCycle(Exception):
    """Internal: an include would re-enter a file being loaded."""


class _AlreadyLoaded(Exception):
    """Internal: an include names a file that was loaded before."""


def load_rule_files(paths: Sequence[str], variables: Variables) -> LoadResult:
    """Load rule files in order. Raises RuleError only for a file that cannot be read."""
    loader = _Loader(variables)
    for path in paths:
        try:
            loader.load_file(path)
        except _AlreadyLoaded:
            loader.issue(
                path, 0, f"{path} is given more than once; loaded once", "include", "warning"
            )
    return loader.result()


def load_rule_text(text: str, variables: Variables, file: str = "<string>") -> LoadResult:
    """Load rules from a string as if it were the file ``file`` (includes are relative to it)."""
    loader = _Loader(variables)
    loader.stack.append(os.path.realpath(file) if file != "<string>" else file)
    loader.load_lines(_split_lines(text), file)
    return loader.result()
