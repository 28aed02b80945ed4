"""Read a policy TOML file (and the threshold.config files it names) into a ``Policy``.

Scope: validation with the file and line of every mistake (a ConfigError, one line), sid
and sid-range specs, CIDR lists, dates. The file format is documented in docs/policy.md.
Exceptions written in the TOML file must name an owner and a reason; entries from a
threshold.config without them load with a warning (existing files keep working) and are
listed by ``sekimori tune``.

Non-goals: deciding anything (stages.py, exceptions.py, assets.py do).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from typing import Any

from sensor.errors import ConfigError
from sensor.policy.model import (
    CRITICALITY,
    MODES,
    RESPONSES,
    STAGES,
    AnyException,
    Asset,
    ExceptionMeta,
    Network,
    PassRule,
    Policy,
    RateFilter,
    StageEntry,
    Suppression,
    Threshold,
)
from sensor.policy.thresholdconf import parse_date, parse_networks, parse_threshold_config

DEFAULT_INTERNAL = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
_TOP_KEYS = {"mode", "default_stage", "internal", "hits_file", "threshold_files", "stage",
             "suppress", "threshold", "rate_filter", "pass", "asset"}  # fmt: skip
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def _table_lines(text: str, name: str) -> list[int]:
    """Line numbers of each ``[[name]]`` header, in order (tomllib keeps no positions)."""
    pattern = re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]")
    return [i for i, line in enumerate(text.splitlines(), 1) if pattern.match(line)]


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def parse_sids(value: Any, where: str) -> tuple[frozenset[int], tuple[tuple[int, int], ...]]:
    """``1000``, ``"2000-2999"`` or a list of both → (sids, ranges)."""
    sids: set[int] = set()
    ranges: list[tuple[int, int]] = []
    for item in _list(value):
        if isinstance(item, int) and not isinstance(item, bool):
            sids.add(item)
            continue
        match = _RANGE.match(str(item))
        if match:
            low, high = int(match.group(1)), int(match.group(2))
            if low > high:
                raise ConfigError(f"{where}: sid range {item!r} is empty")
            ranges.append((low, high))
            continue
        if str(item).strip().isdigit():
            sids.add(int(str(item)))
            continue
        raise ConfigError(f"{where}: sid: expected a number or 'LOW-HIGH', got {item!r}")
    return frozenset(sids), tuple(ranges)


def _str(table: Mapping[str, Any], key: str, where: str, default: str = "") -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key}: expected a string")
    return value


def _int(table: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{where}: {key}: expected a number")
    return value


def _choice(value: Any, allowed: tuple[str, ...] | set[str], where: str, key: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{where}: {key}: expected one of {', '.join(sorted(allowed))}, "
                          f"got {value!r}")  # fmt: skip
    return str(value)


def _meta(table: Mapping[str, Any], kind: str, where: str) -> ExceptionMeta:
    owner, reason = _str(table, "owner", where), _str(table, "reason", where)
    if not owner.strip() or not reason.strip():
        raise ConfigError(f"{where}: every exception needs an owner and a reason")
    expires = parse_date(table["expires"], where) if "expires" in table else None
    return ExceptionMeta(kind, where, owner, reason, expires)


def _stage(table: Mapping[str, Any], where: str) -> StageEntry:
    stage = _choice(table.get("stage"), STAGES, where, "stage")
    sids, ranges = parse_sids(table["sid"], where) if "sid" in table else (frozenset(), ())
    metadata = tuple(
        (str(k).lower(), frozenset(str(v).lower() for v in _list(vals)))
        for k, vals in dict(table.get("metadata", {})).items()
    )
    response = None
    if "response" in table:
        response = tuple(_choice(r, RESPONSES, where, "response") for r in _list(table["response"]))
    entry = StageEntry(
        stage=stage, origin=where, sids=sids, ranges=ranges,
        classtypes=frozenset(str(c).lower() for c in _list(table.get("classtype", []))),
        severities=frozenset(int(s) for s in _list(table.get("severity", []))),
        files=tuple(str(f) for f in _list(table.get("file", []))), metadata=metadata,
        response=response, owner=_str(table, "owner", where), reason=_str(table, "reason", where),
    )  # fmt: skip
    if not (entry.sids or entry.ranges or entry.classtypes or entry.severities or entry.files
            or entry.metadata):  # fmt: skip
        raise ConfigError(f"{where}: a stage entry needs at least one of sid, classtype, "
                          "severity, file, metadata")  # fmt: skip
    return entry


def _suppressions(table: Mapping[str, Any], where: str) -> list[Suppression]:
    meta = _meta(table, "suppress", where)
    gid = _int(table, "gid", where, 1)
    sids, ranges = parse_sids(table.get("sid", 0), where)
    if ranges:
        raise ConfigError(f"{where}: suppress takes sids, not ranges")
    selectors: list[tuple[str | None, tuple[Network, ...]]] = []
    if "src" in table:
        selectors.append(("by_src", parse_networks(table["src"], where)))
    if "dst" in table:
        selectors.append(("by_dst", parse_networks(table["dst"], where)))
    if "ip" in table:
        track = _choice(table.get("track", "by_either"), {"by_src", "by_dst", "by_either"},
                        where, "track")  # fmt: skip
        selectors.append((track, parse_networks(table["ip"], where)))
    if not selectors:
        selectors.append((None, ()))
    return [Suppression(meta, gid, sid, track, nets) for sid in sorted(sids)
            for track, nets in selectors]  # fmt: skip


def _threshold(table: Mapping[str, Any], where: str) -> Threshold:
    count, seconds = _int(table, "count", where), _int(table, "seconds", where)
    if count < 1 or seconds < 1:
        raise ConfigError(f"{where}: count and seconds must be at least 1")
    return Threshold(
        _meta(table, "threshold", where), _int(table, "gid", where, 1), _int(table, "sid", where),
        _choice(table.get("type"), {"limit", "threshold", "both"}, where, "type"),
        _choice(table.get("track", "by_src"), {"by_src", "by_dst", "by_rule", "by_both",
                                               "by_flow"}, where, "track"),
        count, seconds,
    )  # fmt: skip


def _rate_filter(table: Mapping[str, Any], where: str) -> RateFilter:
    count, seconds = _int(table, "count", where), _int(table, "seconds", where)
    if count < 1 or seconds < 1:
        raise ConfigError(f"{where}: count and seconds must be at least 1")
    return RateFilter(
        _meta(table, "rate_filter", where), _int(table, "gid", where, 1), _int(table, "sid", where),
        _choice(table.get("track", "by_rule"), {"by_src", "by_dst", "by_rule", "by_both",
                                                "by_flow"}, where, "track"),
        count, seconds,
        _choice(table.get("new_action"), {"alert", "drop", "pass", "reject"}, where, "new_action"),
        _int(table, "timeout", where),
    )  # fmt: skip


def _pass(table: Mapping[str, Any], where: str) -> PassRule:
    sids, ranges = parse_sids(table["sid"], where) if "sid" in table else (frozenset(), ())
    if ranges:
        raise ConfigError(f"{where}: pass takes sids, not ranges")
    ports = frozenset(int(p) for p in _list(table.get("dst_port", [])))
    proto = table.get("proto")
    if proto is not None:
        proto = _choice(str(proto).lower(), {"tcp", "udp", "icmp", "ipv6-icmp"}, where, "proto")
    rule = PassRule(
        _meta(table, "pass", where), sids,
        parse_networks(table["src"], where) if "src" in table else (),
        parse_networks(table["dst"], where) if "dst" in table else (), proto, ports,
    )  # fmt: skip
    if not (rule.src or rule.dst or rule.dst_ports or rule.proto):
        raise ConfigError(f"{where}: a pass entry needs src, dst, proto or dst_port "
                          "(to silence a rule everywhere, disable it or suppress it)")  # fmt: skip
    return rule


def _asset(table: Mapping[str, Any], where: str) -> Asset:
    try:
        network = ipaddress.ip_network(_str(table, "cidr", where), strict=False)
    except ValueError as exc:
        raise ConfigError(f"{where}: cidr: {exc}") from exc
    name = _str(table, "name", where)
    if not name:
        raise ConfigError(f"{where}: an asset needs a name")
    return Asset(network, name, _choice(table.get("criticality", "medium"), tuple(CRITICALITY),
                                        where, "criticality"),
                 _str(table, "owner", where), _str(table, "role", where), where)  # fmt: skip


def _tables(doc: Mapping[str, Any], text: str, display: str, name: str) -> list[tuple[Any, str]]:
    items = doc.get(name, [])
    if not isinstance(items, list) or not all(isinstance(t, dict) for t in items):
        raise ConfigError(f"{display}: '{name}' must be written as [[{name}]] tables")
    lines = _table_lines(text, name)
    return [(t, f"{display}:{lines[i] if i < len(lines) else '?'}") for i, t in enumerate(items)]


def parse_policy(text: str, source: str, *, address_groups: Mapping[str, str] | None = None,
                 extra_digest: bytes = b"") -> Policy:  # fmt: skip
    display = os.path.basename(source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    warnings = [f"{display}: unknown key '{k}' ignored" for k in doc if k not in _TOP_KEYS]
    mode = _choice(doc.get("mode", "detect"), MODES, display, "mode")
    default_stage = _choice(doc.get("default_stage", "detect"), STAGES, display, "default_stage")
    stages = [_stage(t, w) for t, w in _tables(doc, text, display, "stage")]
    exceptions: list[AnyException] = []
    for t, w in _tables(doc, text, display, "suppress"):
        exceptions.extend(_suppressions(t, w))
    exceptions += [_threshold(t, w) for t, w in _tables(doc, text, display, "threshold")]
    exceptions += [_rate_filter(t, w) for t, w in _tables(doc, text, display, "rate_filter")]
    exceptions += [_pass(t, w) for t, w in _tables(doc, text, display, "pass")]
    digest = hashlib.sha256(text.encode() + extra_digest)
    base = os.path.dirname(os.path.abspath(source))
    for name in _list(doc.get("threshold_files", [])):
        path = os.path.join(base, str(name))
        conf = _read(path)
        digest.update(conf.encode())
        for entry in parse_threshold_config(conf, os.path.basename(path), address_groups):
            if not entry.meta.owner or not entry.meta.reason:
                warnings.append(f"{entry.meta.origin}: exception without owner/reason "
                                "(add '# owner: ...; reason: ...' above it)")  # fmt: skip
            exceptions.append(entry)
    internal = tuple(parse_networks(doc.get("internal", list(DEFAULT_INTERNAL)), display))
    hits_file = doc.get("hits_file")
    if hits_file is not None:
        hits_file = os.path.join(base, str(hits_file))
    return Policy(
        source=source, version=digest.hexdigest()[:12], mode=mode, default_stage=default_stage,
        stages=tuple(stages),
        suppressions=tuple(e for e in exceptions if isinstance(e, Suppression)),
        thresholds=tuple(e for e in exceptions if isinstance(e, Threshold)),
        rate_filters=tuple(e for e in exceptions if isinstance(e, RateFilter)),
        passes=tuple(e for e in exceptions if isinstance(e, PassRule)),
        assets=tuple(_asset(t, w) for t, w in _tables(doc, text, display, "asset")),
        internal=internal, hits_file=hits_file, warnings=tuple(warnings),
    )  # fmt: skip


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read policy file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: policy file is not UTF-8 text") from exc


def load_policy(path: str, address_groups: Mapping[str, str] | None = None) -> Policy:
    """Parse the policy file at ``path``; any mistake is a ConfigError naming file:line."""
    return parse_policy(_read(path), path, address_groups=address_groups)


__all__ = ["load_policy", "parse_policy", "parse_sids"]
