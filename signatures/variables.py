"""Rule variables: the ``$HOME_NET`` / ``$HTTP_PORTS`` groups rules refer to.

Scope: an immutable pair of name -> expression-text tables (address groups and port
groups) with Suricata's stock ``suricata.yaml`` defaults, and a way to override them.
Values stay text: :mod:`signatures.addresses` resolves them (recursively, with cycle
detection) when a rule header is compiled, exactly as Suricata resolves its ``vars``.

Names are case-sensitive (Suricata looks them up as YAML keys, which are) and are
written without the ``$``.

Non-goals: reading suricata.yaml / the sensor config (the config module does that and
calls :meth:`Variables.with_overrides`); validating the expressions (done by
:func:`signatures.addresses.check_variables`, which needs the address grammar).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sensor.errors import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Suricata 7.0 stock suricata.yaml, section vars.address-groups / vars.port-groups.
_DEFAULT_ADDRESS_GROUPS: tuple[tuple[str, str], ...] = (
    ("HOME_NET", "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]"),
    ("EXTERNAL_NET", "!$HOME_NET"),
    ("HTTP_SERVERS", "$HOME_NET"),
    ("SMTP_SERVERS", "$HOME_NET"),
    ("SQL_SERVERS", "$HOME_NET"),
    ("DNS_SERVERS", "$HOME_NET"),
    ("TELNET_SERVERS", "$HOME_NET"),
    ("AIM_SERVERS", "$EXTERNAL_NET"),
    ("DC_SERVERS", "$HOME_NET"),
    ("DNP3_SERVER", "$HOME_NET"),
    ("DNP3_CLIENT", "$HOME_NET"),
    ("MODBUS_CLIENT", "$HOME_NET"),
    ("MODBUS_SERVER", "$HOME_NET"),
    ("ENIP_CLIENT", "$HOME_NET"),
    ("ENIP_SERVER", "$HOME_NET"),
)
_DEFAULT_PORT_GROUPS: tuple[tuple[str, str], ...] = (
    ("HTTP_PORTS", "80"),
    ("SHELLCODE_PORTS", "!80"),
    ("ORACLE_PORTS", "1521"),
    ("SSH_PORTS", "22"),
    ("DNP3_PORTS", "20000"),
    ("MODBUS_PORTS", "502"),
    ("FILE_DATA_PORTS", "[$HTTP_PORTS,110,143]"),
    ("FTP_PORTS", "21"),
    ("GENEVE_PORTS", "6081"),
    ("VXLAN_PORTS", "4789"),
    ("TEREDO_PORTS", "3544"),
)


def _frozen_table(kind: str, items: Mapping[str, str]) -> Mapping[str, str]:
    """Copy ``items`` into a read-only mapping, rejecting names a rule could not spell."""
    table: dict[str, str] = {}
    for name, value in items.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"invalid {kind} variable name {name!r}: use letters, digits and '_', without '$'"
            )
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{kind} variable {name} has an empty value")
        table[name] = value.strip()
    return MappingProxyType(table)


@dataclass(frozen=True)
class Variables:
    """Address and port groups by name (without ``$``) -> expression text."""

    address_groups: Mapping[str, str]
    port_groups: Mapping[str, str]
    # Compiled AddressSet/PortSet per expression text, filled by signatures.addresses.
    # Safe to share: the tables above never change and compiled sets are immutable.
    # ET Open repeats a handful of header expressions ~25k times; this makes them free.
    _compiled: dict[tuple[str, str], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "address_groups", _frozen_table("address", self.address_groups))
        object.__setattr__(self, "port_groups", _frozen_table("port", self.port_groups))

    @classmethod
    def suricata_defaults(cls) -> Variables:
        """The groups of Suricata 7's stock suricata.yaml."""
        return cls(dict(_DEFAULT_ADDRESS_GROUPS), dict(_DEFAULT_PORT_GROUPS))

    @classmethod
    def empty(cls) -> Variables:
        return cls({}, {})

    def with_overrides(
        self,
        addresses: Mapping[str, str] = MappingProxyType({}),
        ports: Mapping[str, str] = MappingProxyType({}),
    ) -> Variables:
        """A copy where ``addresses``/``ports`` replace or add groups of the same name."""
        return Variables(
            {**self.address_groups, **addresses},
            {**self.port_groups, **ports},
        )
