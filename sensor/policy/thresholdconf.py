"""Suricata ``threshold.config`` syntax: suppress, threshold, event_filter, rate_filter lines.

Scope: one line → one exception record (sensor/policy/model.py), with Suricata's keywords
(``gen_id``, ``sig_id``, ``type``, ``track``, ``count``, ``seconds``, ``ip``,
``new_action``, ``timeout``). ``ip`` takes an address, a CIDR, a ``[a, b]`` list or an
address-group variable (``$HOME_NET``) resolved from the configuration. Accountability
comes from a comment line right above the entry:
``# owner: alice; reason: scanner at 10.1.2.3; expires: 2026-03-01``.

Non-goals: negated addresses in ``ip`` (Suricata accepts them; rare, refused here with the
line named), global thresholds (``sig_id 0``) for anything but suppress/threshold.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping

from sensor.errors import ConfigError
from sensor.policy.model import (
    AnyException,
    ExceptionMeta,
    Network,
    RateFilter,
    Suppression,
    Threshold,
)

_KINDS = ("suppress", "threshold", "event_filter", "rate_filter")
_TRACKS = {"by_src", "by_dst", "by_rule", "by_both", "by_flow", "by_either"}
_TYPES = {"limit", "threshold", "both"}
_ACTIONS = {"alert", "drop", "pass", "reject"}
_ANNOTATION = re.compile(r"^\s*#\s*(owner|reason|expires)\s*[:=]", re.IGNORECASE)


def parse_date(text: object, where: str) -> dt.date:
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError as exc:
        raise ConfigError(f"{where}: expires: expected a date YYYY-MM-DD, got {text!r}") from exc


def parse_networks(value: object, where: str,
                   groups: Mapping[str, str] | None = None, depth: int = 0) -> tuple[Network, ...]:  # fmt: skip
    """Addresses/CIDRs as a string, ``[a, b]`` list text, a TOML list or ``$VAR``."""
    items: list[str]
    if isinstance(value, list | tuple):
        items = [str(v) for v in value]
    else:
        text = str(value).strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        items = [t.strip() for t in text.split(",") if t.strip()]
    out: list[Network] = []
    for item in items:
        if item.startswith("$"):
            name = item[1:]
            if groups is None or name not in groups or depth > 8:
                raise ConfigError(f"{where}: unknown address variable {item}")
            out.extend(parse_networks(groups[name], where, groups, depth + 1))
            continue
        if item.startswith("!"):
            raise ConfigError(f"{where}: negated address {item!r} is not supported here")
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"{where}: bad address {item!r}: {exc}") from exc
    if not out:
        raise ConfigError(f"{where}: empty address list")
    return tuple(out)


def _annotation(comments: list[str], where: str) -> tuple[str, str, dt.date | None]:
    owner = reason = ""
    expires: dt.date | None = None
    for comment in comments:
        for part in comment.lstrip("# \t").split(";"):
            key, sep, value = part.partition(":") if ":" in part else part.partition("=")
            key, value = key.strip().lower(), value.strip()
            if not sep:
                continue
            if key == "owner":
                owner = value
            elif key == "reason":
                reason = value
            elif key == "expires":
                expires = parse_date(value, where)
    return owner, reason, expires


def _fields(body: str, where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    # Split on commas outside [...] (ip lists contain commas).
    depth, start, parts = 0, 0, []
    for i, ch in enumerate(body):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    for part in parts:
        key, _, value = part.strip().partition(" ")
        if not key:
            continue
        if not value.strip():
            raise ConfigError(f"{where}: '{key}' has no value")
        out[key.lower()] = value.strip()
    return out


def _int(fields: dict[str, str], key: str, where: str, default: int | None = None) -> int:
    if key not in fields:
        if default is None:
            raise ConfigError(f"{where}: missing '{key}'")
        return default
    try:
        return int(fields[key])
    except ValueError as exc:
        raise ConfigError(f"{where}: {key}: expected a number, got {fields[key]!r}") from exc


def _choice(fields: dict[str, str], key: str, allowed: set[str], where: str) -> str:
    value = fields.get(key, "").lower()
    if value not in allowed:
        raise ConfigError(f"{where}: {key}: expected one of {', '.join(sorted(allowed))}")
    return value


def parse_line(line: str, meta: ExceptionMeta, where: str,
               groups: Mapping[str, str] | None = None) -> AnyException:  # fmt: skip
    kind, _, body = line.strip().partition(" ")
    kind = kind.lower()
    if kind not in _KINDS:
        raise ConfigError(f"{where}: unknown entry '{kind}' (suppress, threshold, "
                          "event_filter or rate_filter)")  # fmt: skip
    fields = _fields(body, where)
    gid, sid = _int(fields, "gen_id", where, 1), _int(fields, "sig_id", where)
    kind_name = "threshold" if kind == "event_filter" else kind
    meta = ExceptionMeta(kind_name, meta.origin, meta.owner, meta.reason, meta.expires)
    if kind == "suppress":
        if "track" not in fields:
            return Suppression(meta, gid, sid, None)
        track = _choice(fields, "track", {"by_src", "by_dst", "by_either"}, where)
        if "ip" not in fields:
            raise ConfigError(f"{where}: suppress with track needs 'ip'")
        return Suppression(meta, gid, sid, track, parse_networks(fields["ip"], where, groups))
    track = _choice(fields, "track", _TRACKS - {"by_either"}, where)
    count, seconds = _int(fields, "count", where), _int(fields, "seconds", where)
    if count < 1 or seconds < 1:
        raise ConfigError(f"{where}: count and seconds must be at least 1")
    if kind == "rate_filter":
        action = _choice(fields, "new_action", _ACTIONS, where)
        timeout = _int(fields, "timeout", where)
        return RateFilter(meta, gid, sid, track, count, seconds, action, timeout)
    return Threshold(meta, gid, sid, _choice(fields, "type", _TYPES, where), track, count, seconds)


def parse_threshold_config(text: str, display: str,
                           groups: Mapping[str, str] | None = None) -> list[AnyException]:  # fmt: skip
    """Every entry of a threshold.config text; a bad line is a ConfigError naming it."""
    out: list[AnyException] = []
    comments: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            comments = []
            continue
        if line.startswith("#"):
            if _ANNOTATION.match(line):
                comments.append(line)
            continue
        where = f"{display}:{number}"
        owner, reason, expires = _annotation(comments, where)
        comments = []
        meta = ExceptionMeta("", where, owner, reason, expires)
        out.append(parse_line(line, meta, where, groups))
    return out
