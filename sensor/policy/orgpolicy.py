"""Organisation policy as rules: allowed services per zone, compiled to rule text.

Scope: a TOML file of zones and three kinds of statement, each compiled into ordinary
Suricata-syntax rules with sids in the policy's own range (``sid_base`` + ``id`` × 10 + k,
default base 9100000, ids 1–9999), classtype ``policy-violation`` and metadata
``sekimori_org <id>``, so they pass through the same stages, exceptions and priorities:

- ``[[allow_only]]``: zone Z accepts from ``from`` (``outside`` or a zone) only the listed
  services; anything else opening a connection (TCP SYN) or sending UDP to Z alerts;
- ``[[no_outbound]]``: hosts in zone Z open no connection leaving Z except to
  ``except_to`` (addresses or zones) or for ``except_services``;
- ``[[deny]]``: the listed services never cross the boundary (between ``internal`` and
  outside, both directions), or between two named zones (``between``).

TCP rules fire on the opening SYN only (``flags:S,CE``), UDP rules once per flow
(``threshold: type limit, track by_flow``). ``outside`` is everything not in the
``internal`` zone, which must be defined. Non-goals: ICMP and other protocols; stateful
allow-lists (this describes violations; it does not enforce by itself).
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass
from typing import Any

from sensor.errors import ConfigError

DEFAULT_SID_BASE = 9_100_000
SID_SPAN = 100_000
_SERVICE = re.compile(r"^(tcp|udp)/(\d{1,5})(?:-(\d{1,5}))?$")
_NAME = re.compile(r"^[A-Za-z0-9 ._/:,()-]{1,120}$")


@dataclass(frozen=True, slots=True)
class OrgRule:
    sid: int
    origin: str  # "org.toml:12"
    text: str


def _services(values: Any, where: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"tcp": [], "udp": []}
    for value in values if isinstance(values, list) else [values]:
        m = _SERVICE.match(str(value).strip().lower())
        if not m:
            raise ConfigError(f"{where}: service {value!r}: expected tcp/PORT, udp/PORT or "
                              "tcp/LOW-HIGH")  # fmt: skip
        low, high = int(m.group(2)), int(m.group(3) or m.group(2))
        if not 0 < low <= high <= 65535:
            raise ConfigError(f"{where}: service {value!r}: port out of range")
        out[m.group(1)].append(f"{low}:{high}" if high != low else str(low))
    return out


def _ports(ports: list[str], negate: bool) -> str:
    if not ports:
        return "any"
    body = ports[0] if len(ports) == 1 else "[" + ",".join(ports) + "]"
    return "!" + body if negate else body


class _Compiler:
    def __init__(self, doc: dict[str, Any], display: str, text: str) -> None:
        self.display = display
        self.base = doc.get("sid_base", DEFAULT_SID_BASE)
        if not isinstance(self.base, int) or self.base < 1:
            raise ConfigError(f"{display}: sid_base: expected a positive number")
        zones = doc.get("zones", {})
        if not isinstance(zones, dict) or "internal" not in zones:
            raise ConfigError(f"{display}: [zones] must define 'internal' (what is not outside)")
        self.zones = {name: self._cidrs(value, f"{display}: zones.{name}")
                      for name, value in zones.items()}  # fmt: skip
        self.lines = text.splitlines()
        self.used: dict[int, str] = {}
        self.rules: list[OrgRule] = []

    def _cidrs(self, value: Any, where: str) -> list[str]:
        items = value if isinstance(value, list) else [value]
        try:
            return [str(ipaddress.ip_network(str(v), strict=False)) for v in items]
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from exc

    def addr(self, name: str, where: str, negate: bool = False) -> str:
        if name == "outside":
            return self.addr("internal", where, not negate)
        if name == "any":
            return "any"
        cidrs = self.zones.get(name)
        if cidrs is None:
            cidrs = self._cidrs(name, f"{where}: '{name}' is neither a zone nor an address")
        body = cidrs[0] if len(cidrs) == 1 else "[" + ",".join(cidrs) + "]"
        return "!" + body if negate else body

    def origin(self, kind: str, index: int) -> str:
        pattern = re.compile(rf"^\s*\[\[\s*{kind}\s*\]\]")
        numbers = [i for i, line in enumerate(self.lines, 1) if pattern.match(line)]
        return f"{self.display}:{numbers[index] if index < len(numbers) else '?'}"

    def sid(self, entry: dict[str, Any], k: int, where: str) -> int:
        ident = entry.get("id")
        if not isinstance(ident, int) or not 1 <= ident <= SID_SPAN // 10 - 1:
            raise ConfigError(f"{where}: id: expected a number 1-{SID_SPAN // 10 - 1} "
                              "(it fixes the rule sids across edits)")  # fmt: skip
        if ident in self.used and self.used[ident] != where:
            raise ConfigError(f"{where}: id {ident} already used at {self.used[ident]}")
        self.used[ident] = where
        return self.base + ident * 10 + k

    def emit(self, entry: dict[str, Any], k: int, where: str, proto: str, header: str,
             what: str) -> None:  # fmt: skip
        name = str(entry.get("name", f"org policy {entry.get('id')}"))
        if not _NAME.match(name):
            raise ConfigError(f"{where}: name: letters, digits, spaces and ._/:,()- only")
        sid = self.sid(entry, k, where)
        once = ("flags:S,CE;" if proto == "tcp"
                else "flow:to_server; threshold:type limit, track by_flow, count 1, seconds 3600;")  # fmt: skip
        text = (f'alert {proto} {header} (msg:"ORG POLICY {name}: {what}"; {once} '
                f"classtype:policy-violation; sid:{sid}; rev:1; "
                f"metadata:sekimori_org {entry.get('id')};)")  # fmt: skip
        self.rules.append(OrgRule(sid, where, text))

    def allow_only(self, entry: dict[str, Any], where: str) -> None:
        zone, source = str(entry.get("zone", "")), str(entry.get("from", "outside"))
        services = _services(entry.get("services", []), where)
        for k, proto in enumerate(("tcp", "udp")):
            header = (f"{self.addr(source, where)} any -> {self.addr(zone, where)} "
                      f"{_ports(services[proto], True)}")  # fmt: skip
            self.emit(entry, k, where, proto, header,
                      f"{proto} from {source} to {zone} outside the allowed services")  # fmt: skip

    def no_outbound(self, entry: dict[str, Any], where: str) -> None:
        zone = str(entry.get("zone", ""))
        targets = [self.addr(zone, where)]
        targets += [self.addr(str(t), where) for t in entry.get("except_to", [])]
        dest = "![" + ",".join(targets) + "]"
        services = _services(entry.get("except_services", []), where)
        for k, proto in enumerate(("tcp", "udp")):
            header = f"{self.addr(zone, where)} any -> {dest} {_ports(services[proto], True)}"
            self.emit(entry, k, where, proto, header, f"{proto} connection leaving {zone}")

    def deny(self, entry: dict[str, Any], where: str) -> None:
        pair = entry.get("between", ["internal", "outside"])
        if not isinstance(pair, list) or len(pair) != 2:
            raise ConfigError(f"{where}: between: expected two zones")
        services = _services(entry.get("services", []), where)
        k = 0
        for proto in ("tcp", "udp"):
            if not services[proto]:
                continue
            for a, b in ((pair[0], pair[1]), (pair[1], pair[0])):
                header = (f"{self.addr(str(a), where)} any -> {self.addr(str(b), where)} "
                          f"{_ports(services[proto], False)}")  # fmt: skip
                self.emit(entry, k, where, proto, header, f"denied {proto} service from {a} to {b}")
                k += 1


def compile_org_policy_text(text: str, source: str) -> list[OrgRule]:
    display = os.path.basename(source)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    c = _Compiler(doc, display, text)
    for kind in ("allow_only", "no_outbound", "deny"):
        entries = doc.get(kind, [])
        if not isinstance(entries, list):
            raise ConfigError(f"{display}: '{kind}' must be written as [[{kind}]] tables")
        for index, entry in enumerate(entries):
            where = c.origin(kind, index)
            if kind != "deny" and str(entry.get("zone", "")) not in c.zones:
                raise ConfigError(f"{where}: zone: expected one of {', '.join(sorted(c.zones))}")
            getattr(c, kind)(entry, where)
    return c.rules


def compile_org_policy(path: str) -> list[OrgRule]:
    """The rules of the organisation policy at ``path`` (ConfigError naming file:line)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read organisation policy: {exc}") from exc
    return compile_org_policy_text(text, path)


def render_rules(rules: list[OrgRule], source: str) -> str:
    head = [f"# Generated by `sekimori policy org-rules` from {os.path.basename(source)}; "
            "do not edit, edit the policy."]  # fmt: skip
    return "\n".join(head + [f"# {r.origin}\n{r.text}" for r in rules]) + "\n"
