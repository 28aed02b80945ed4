"""Where a rule bundle comes from: sources (files, directories, tarballs, URLs) and
suricata-update's disable/enable/drop/modify conf filters.

Scope: ``read_source`` returns {file name: text} for one source (http/https downloads with
a timeout and a size cap; tarballs contribute their ``*.rules`` members), and
``apply_filters`` applies the conf files in suricata-update's order (disable, enable, drop,
modify). Matchers: ``gid:sid`` or ``sid`` (comma lists), ``re:REGEX`` (rule text),
``group:GLOB`` (file name), ``metadata:KEY VALUE``; modify lines are
``<matcher> "<regex>" "<replacement>"`` (``${1}`` back-references as suricata-update).
Part of signatures/bundles.py, split out for size.

Non-goals: storing or validating (signatures/bundles.py), rule-source indexes.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from sensor.errors import RuleError

MAX_DOWNLOAD = 256 * 1024 * 1024
_RULE = re.compile(r"^(?P<hash>\s*#+\s*)?(?P<action>alert|pass|drop|reject|rejectsrc|rejectdst|"
                   r"rejectboth)\s+\S.*\bsid\s*:\s*(?P<sid>\d+)", re.DOTALL)  # fmt: skip
_GID = re.compile(r"\bgid\s*:\s*(\d+)")
_REV = re.compile(r"\brev\s*:\s*(\d+)")
_META = re.compile(r"\bmetadata\s*:\s*([^;]*);")
_MODIFY = re.compile(r'^(?P<m>.+?)\s+"(?P<f>.*)"\s+"(?P<t>.*)"\s*$')


@dataclass(frozen=True, slots=True)
class RuleLine:
    file: str
    text: str  # without the disabling '#'
    enabled: bool
    gid: int
    sid: int
    rev: int


# -- reading sources -------------------------------------------------------------------


def _rules_from_tar(data: bytes, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".rules"):
                    handle = tar.extractfile(member)
                    if handle is not None:
                        out[os.path.basename(member.name)] = _text(handle.read(), member.name)
    except tarfile.TarError as exc:
        raise RuleError(f"{where}: not a readable tarball: {exc}") from exc
    return out


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RuleError(f"{where}: rule file is not UTF-8 text") from exc


def _fetch(url: str, timeout: float) -> dict[str, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = resp.read(MAX_DOWNLOAD + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RuleError(f"{url}: cannot download rules: {exc}") from exc
    if len(data) > MAX_DOWNLOAD:
        raise RuleError(f"{url}: download larger than {MAX_DOWNLOAD} bytes")
    if _looks_like_tar(data):
        return _rules_from_tar(data, url)
    name = os.path.basename(url.split("?", 1)[0]) or "download.rules"
    return {name if name.endswith(".rules") else name + ".rules": _text(data, url)}


def _looks_like_tar(data: bytes) -> bool:
    return data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[257:262] == b"ustar"


def read_source(source: str, timeout: float = 30.0) -> dict[str, str]:
    """Rule files of one source (file, directory, tarball, URL) as {name: text}."""
    if source.startswith(("http://", "https://")):
        return _fetch(source, timeout)
    if os.path.isdir(source):
        names = sorted(n for n in os.listdir(source) if n.endswith(".rules"))
        return {n: _read(os.path.join(source, n)) for n in names}
    if not os.path.isfile(source):
        raise RuleError(f"{source}: no such rule file, directory or tarball")
    with open(source, "rb") as handle:
        data = handle.read()
    if _looks_like_tar(data):
        return _rules_from_tar(data, source)
    return {os.path.basename(source): _text(data, source)}


def _read(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return _text(handle.read(), path)
    except OSError as exc:
        raise RuleError(f"{path}: cannot read: {exc.strerror or exc}") from exc


# -- suricata-update conf filters -------------------------------------------------------


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return out


def parse_rule_line(file: str, line: str) -> RuleLine | None:
    m = _RULE.match(line)
    if not m:
        return None
    body = line[m.start("action") :]
    gid, rev = _GID.search(body), _REV.search(body)
    return RuleLine(file, body, m.group("hash") is None, int(gid.group(1)) if gid else 1,
                    int(m.group("sid")), int(rev.group(1)) if rev else 0)  # fmt: skip


def _matcher(spec: str, where: str) -> Any:
    spec = spec.strip()
    if spec.startswith("re:"):
        try:
            rx = re.compile(spec[3:].strip())
        except re.error as exc:
            raise RuleError(f"{where}: bad regular expression: {exc}") from exc
        return lambda r: bool(rx.search(r.text))
    if spec.startswith("group:"):
        pattern = spec[6:].strip()
        return lambda r: fnmatch.fnmatch(r.file, pattern)
    if spec.startswith("metadata:"):
        key, _, value = spec[9:].strip().partition(" ")
        wanted = f"{key.lower()} {value.strip().lower()}"

        def by_meta(r: RuleLine) -> bool:
            m = _META.search(r.text)
            if m is None:
                return False
            return wanted in (p.strip().lower() for p in m.group(1).split(","))

        return by_meta
    ids = []
    for part in spec.split(","):
        gid, _, sid = part.strip().rpartition(":")
        if not sid.isdigit() or (gid and not gid.isdigit()):
            raise RuleError(
                f"{where}: expected gid:sid, sid, re:, group: or metadata:, got {spec!r}"
            )
        ids.append((int(gid or 1), int(sid)))
    wanted_ids = frozenset(ids)
    return lambda r: (r.gid, r.sid) in wanted_ids


def _conf_entries(path: str | None) -> list[tuple[str, str]]:
    if not path:
        return []
    out = []
    for number, line in enumerate(_read(path).splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            out.append((line, f"{os.path.basename(path)}:{number}"))
    return out


def apply_filters(files: dict[str, str], *, disable: str | None = None, enable: str | None = None,
                  drop: str | None = None, modify: str | None = None) -> dict[str, str]:  # fmt: skip
    """suricata-update's filters, in its order: disable, enable, drop, modify."""
    rules = [(name, [parse_rule_line(name, ln) or ln for ln in _logical_lines(text)])
             for name, text in files.items()]  # fmt: skip
    steps: list[tuple[str, Any, tuple[str, str] | None]] = []
    for kind, path in (("disable", disable), ("enable", enable), ("drop", drop)):
        steps += [(kind, _matcher(spec, where), None) for spec, where in _conf_entries(path)]
    for spec, where in _conf_entries(modify):
        m = _MODIFY.match(spec)
        if not m:
            raise RuleError(f'{where}: expected <matcher> "<from>" "<to>"')
        steps.append(("modify", _matcher(m.group("m"), where), (m.group("f"), m.group("t"))))
    for kind, match, change in steps:
        for _name, lines in rules:
            for i, r in enumerate(lines):
                if isinstance(r, RuleLine) and match(r):
                    lines[i] = _apply(kind, r, change)
    return {name: "\n".join(_render(r) for r in lines) + "\n" for name, lines in rules}


def _apply(kind: str, r: RuleLine, change: tuple[str, str] | None) -> RuleLine:
    if kind in ("disable", "enable"):
        return RuleLine(r.file, r.text, kind == "enable", r.gid, r.sid, r.rev)
    if kind == "drop":
        text = re.sub(r"^\S+", "drop", r.text, count=1)
        return RuleLine(r.file, text, r.enabled, r.gid, r.sid, r.rev)
    assert change is not None
    try:
        text = re.sub(change[0], re.sub(r"\$\{(\d+)\}", r"\\g<\1>", change[1]), r.text)
    except re.error as exc:
        raise RuleError(f"modify {change[0]!r}: {exc}") from exc
    return parse_rule_line(r.file, text) or r


def _render(r: RuleLine | str) -> str:
    if isinstance(r, str):
        return r
    return r.text if r.enabled else "# " + r.text
