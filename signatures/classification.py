"""classification.config and reference.config: what ``classtype:`` and ``reference:`` name.

Scope: read-only lookup tables, loaded from a file or from the stock copies shipped in
``signatures/data`` (Suricata 7's own files, unchanged):

* ``config classification: shortname,description,priority``
* ``config reference: name url-prefix``

Names are looked up case-insensitively. A line that is neither blank, a comment nor a
valid entry is reported in ``issues`` (file:line, severity "warning") and skipped; a
duplicate name keeps the first definition and is reported the same way.

Non-goals: checking that rules use known classtypes (the builder does, through
:meth:`Classifications.get`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from sensor.errors import ConfigError
from signatures.loader import RuleIssue

_DATA = Path(__file__).resolve().parent / "data"
_CLASSIFICATION = re.compile(
    r"\s*config\s+classification\s*:\s*([A-Za-z0-9_\-]+)\s*,\s*(.*?)\s*,\s*(\d+)\s*\Z"
)
_REFERENCE = re.compile(r"\s*config\s+reference\s*:\s*([A-Za-z][A-Za-z0-9_\-]*)\s+(\S+)\s*\Z")


@dataclass(frozen=True, slots=True)
class Classtype:
    name: str
    description: str
    priority: int


def _read(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc


class _Table(Mapping[str, object]):
    """Shared read-only mapping behaviour (lower-cased keys) plus the load issues."""

    _entries: Mapping[str, object]
    issues: tuple[RuleIssue, ...]
    path: str

    def __getitem__(self, name: str) -> object:
        return self._entries[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")


def _parse_table(
    path: Path, pattern: re.Pattern[str], what: str, make: type | None = None
) -> tuple[dict[str, object], list[RuleIssue]]:
    entries: dict[str, object] = {}
    issues: list[RuleIssue] = []
    for number, line in enumerate(_read(path), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        match = pattern.match(text)
        if match is None:
            issues.append(
                RuleIssue(
                    str(path),
                    number,
                    f"not a valid 'config {what}:' line: {text!r}",
                    what,
                    "warning",
                )
            )
            continue
        key = match.group(1).lower()
        if key in entries:
            issues.append(
                RuleIssue(
                    str(path),
                    number,
                    f"duplicate {what} '{match.group(1)}'; the first definition is kept",
                    what,
                    "warning",
                )
            )
            continue
        if make is None:
            entries[key] = match.group(2)
        else:
            entries[key] = make(match.group(1), match.group(2), int(match.group(3)))
    return entries, issues


class Classifications(_Table):
    """classtype name -> :class:`Classtype`."""

    def __init__(self, entries: Mapping[str, Classtype], issues: tuple[RuleIssue, ...], path: str):
        object.__setattr__(self, "_entries", MappingProxyType(dict(entries)))
        object.__setattr__(self, "issues", issues)
        object.__setattr__(self, "path", path)

    @classmethod
    def load(cls, path: str | None = None) -> Classifications:
        file = Path(path) if path is not None else _DATA / "classification.config"
        entries, issues = _parse_table(file, _CLASSIFICATION, "classification", Classtype)
        return cls(entries, tuple(issues), str(file))  # type: ignore[arg-type]

    def get(self, name: str) -> Classtype | None:  # type: ignore[override]
        found = self._entries.get(name.lower())
        return found if isinstance(found, Classtype) else None


class References(_Table):
    """reference system name (``cve``, ``url``...) -> URL prefix."""

    def __init__(self, entries: Mapping[str, str], issues: tuple[RuleIssue, ...], path: str):
        object.__setattr__(self, "_entries", MappingProxyType(dict(entries)))
        object.__setattr__(self, "issues", issues)
        object.__setattr__(self, "path", path)

    @classmethod
    def load(cls, path: str | None = None) -> References:
        file = Path(path) if path is not None else _DATA / "reference.config"
        entries, issues = _parse_table(file, _REFERENCE, "reference")
        return cls(entries, tuple(issues), str(file))  # type: ignore[arg-type]

    def get(self, name: str) -> str | None:  # type: ignore[override]
        found = self._entries.get(name.lower())
        return found if isinstance(found, str) else None
