"""SNMP v1, v2c and v3 over UDP (one BER message per datagram), as Suricata 7 sees it.

Scope: every message is its own transaction (requests and responses are not paired, as in
Suricata). Values for the numeric keywords: ``snmp.version`` (1, 2 for v2c, 3 - the version
of the flow's first message, as Suricata keeps it per flow) and ``snmp.pdu_type`` (the PDU's
context tag: 0 GetRequest ... 8 Report; absent when a v3 PDU is encrypted). Buffers:
``snmp.community`` (v1/v2c) and ``snmp.usm`` (the v3 USM user name), filled for the direction
the message travelled. EVE: the ``snmp`` object (``version``, ``pdu_type``, ``error``,
``trap_type``/``trap_oid``/``trap_address``, ``vars``, ``community``, ``usm``).

Events (Suricata's names): ``snmp.malformed_data`` (not an SNMP message: no transaction),
``snmp.version_mismatch`` (a message whose version differs from the flow's first),
``snmp.unknown_security_model`` (v3 without USM).

Non-goals: variable values (only their OIDs), decryption, SNMP over TCP (Suricata 7 only
parses UDP).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from sensor.applayer.ber import (
    APPLICATION,
    CONTEXT,
    TAG_INTEGER,
    TAG_OCTET_STRING,
    TAG_OID,
    TAG_SEQUENCE,
    UNIVERSAL,
    BerError,
    Tlv,
    children,
    integer,
    oid_text,
    read_tlv,
)
from sensor.applayer.common import AppLayerSettings, Transaction

PDU_TYPES = ("get_request", "get_next_request", "response", "set_request", "trap_v1",
             "get_bulk_request", "inform_request", "trap_v2", "report")  # fmt: skip
TRAP_V1, GET_BULK = 4, 5
ERRORS = ("NoError", "TooBig", "NoSuchName", "BadValue", "ReadOnly", "GenErr", "NoAccess",
          "WrongType", "WrongLength", "WrongEncoding", "WrongValue", "NoCreation",
          "InconsistentValue", "ResourceUnavailable", "CommitFailed", "UndoFailed",
          "AuthorizationError", "NotWritable", "InconsistentName")  # fmt: skip
TRAP_TYPES = ("ColdStart", "WarmStart", "LinkDown", "LinkUp", "AuthenticationFailure",
              "EgpNeighborLoss", "EnterpriseSpecific")  # fmt: skip
USM_MODEL = 3
MAX_VARS = 64  # variable OIDs kept per PDU for EVE


@dataclass(frozen=True, slots=True)
class SnmpPdu:
    pdu_type: int
    error: int = 0
    trap: tuple[int, str, str] | None = None  # (generic trap, enterprise OID, agent address)
    vars: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SnmpMessage:
    version: int  # 1, 2 (v2c) or 3, as Suricata numbers them
    community: bytes | None = None
    usm: bytes | None = None
    pdu: SnmpPdu | None = None  # None when encrypted
    encrypted: bool = False
    unknown_model: bool = False


def envelope_version(data: bytes) -> int | None:
    """Suricata's probe: a SEQUENCE of 3 elements starting with INTEGER 0 or 1 (v1, v2c) or
    of 4 starting with INTEGER 3 (v3). Returns 1, 2 or 3, None when it is not SNMP."""
    try:
        top = read_tlv(data, 0)
        if not top.is_(UNIVERSAL, TAG_SEQUENCE) or not top.constructed:
            return None
        items = children(data, top)
        if not items or not items[0].is_(UNIVERSAL, TAG_INTEGER):
            return None
        wire = integer(data, items[0])
    except BerError:
        return None
    if len(items) == 3 and wire in (0, 1):
        return wire + 1
    if len(items) == 4 and wire == 3:
        return 3
    return None


def _octets(data: bytes, tlv: Tlv) -> bytes:
    if not tlv.is_(UNIVERSAL, TAG_OCTET_STRING) or tlv.constructed:
        raise BerError("expected an OCTET STRING")
    return tlv.content(data)


def _varbind_oids(data: bytes, tlv: Tlv) -> tuple[str, ...]:
    out: list[str] = []
    for bind in children(data, tlv)[:MAX_VARS]:
        parts = children(data, bind)
        if not parts or not parts[0].is_(UNIVERSAL, TAG_OID):
            raise BerError("variable binding without an OID")
        out.append(oid_text(parts[0].content(data)))
    return tuple(out)


def parse_pdu(data: bytes, tlv: Tlv) -> SnmpPdu:
    if tlv.cls != CONTEXT or not tlv.constructed or tlv.tag > 8:
        raise BerError("not an SNMP PDU")
    items = children(data, tlv)
    if tlv.tag == TRAP_V1:
        if len(items) != 6 or not items[0].is_(UNIVERSAL, TAG_OID):
            raise BerError("bad Trap-PDU")
        addr = items[1]
        if not addr.is_(APPLICATION, 0) or addr.end - addr.start != 4:
            raise BerError("bad agent address")
        address = str(ipaddress.IPv4Address(addr.content(data)))
        trap = (integer(data, items[2]), oid_text(items[0].content(data)), address)
        return SnmpPdu(TRAP_V1, 0, trap, _varbind_oids(data, items[5]))
    if len(items) != 4 or not all(i.is_(UNIVERSAL, TAG_INTEGER) for i in items[:3]):
        raise BerError("bad PDU")
    error = 0 if tlv.tag == GET_BULK else integer(data, items[1])  # bulk: non-repeaters
    return SnmpPdu(tlv.tag, error, None, _varbind_oids(data, items[3]))


def parse_message(data: bytes) -> SnmpMessage:
    """One SNMP message; raises :class:`BerError` when it is not one."""
    version = envelope_version(data)
    if version is None:
        raise BerError("not an SNMP message")
    items = children(data, read_tlv(data, 0))
    if version < 3:
        return SnmpMessage(version, community=_octets(data, items[1]),
                           pdu=parse_pdu(data, items[2]))  # fmt: skip
    header = children(data, items[1])  # msgID, msgMaxSize, msgFlags, msgSecurityModel
    if len(header) != 4 or not header[3].is_(UNIVERSAL, TAG_INTEGER):
        raise BerError("bad v3 header")
    usm: bytes | None = None
    unknown = integer(data, header[3]) != USM_MODEL
    if not unknown:
        params = _octets(data, items[2])
        seq = read_tlv(params, 0)
        fields = children(params, seq)  # engine id, boots, time, user name, auth, priv
        if len(fields) != 6:
            raise BerError("bad USM parameters")
        usm = _octets(params, fields[3])
    body = items[3]
    if body.is_(UNIVERSAL, TAG_OCTET_STRING):  # encryptedPDU
        return SnmpMessage(3, usm=usm, encrypted=True, unknown_model=unknown)
    scoped = children(data, body)  # contextEngineID, contextName, data
    if len(scoped) != 3:
        raise BerError("bad scoped PDU")
    return SnmpMessage(3, usm=usm, pdu=parse_pdu(data, scoped[2]), unknown_model=unknown)


class SnmpParser:
    """SNMP datagrams of one flow; ``on_update(tx)`` receives each new transaction."""

    def __init__(self, cfg: AppLayerSettings, on_update: Callable[[Transaction], None]) -> None:
        self.cfg = cfg
        self._on_update = on_update
        self._next_id = 0
        self.version = 0  # the flow's version (first message), 0 until known
        self.events: list[str] = []

    def feed(self, to_server: bool, data: bytes) -> None:
        if self.version == 0:
            self.version = envelope_version(data) or 0
        try:
            msg = parse_message(data)
        except (BerError, ValueError):
            if "snmp.malformed_data" not in self.events:  # once: the list stays bounded
                self.events.append("snmp.malformed_data")
            return
        tx = Transaction(self._next_id, "snmp")
        self._next_id += 1
        tx.state = msg
        if msg.version != self.version:
            tx.events.append("snmp.version_mismatch")
        if msg.unknown_model:
            tx.events.append("snmp.unknown_security_model")
        for name in tx.events:  # also flow-level, where app-layer-event looks (once each)
            if name not in self.events:
                self.events.append(name)
        tx.values["snmp.version"] = self.version
        if msg.pdu is not None:
            tx.values["snmp.pdu_type"] = msg.pdu.pdu_type
        if msg.community is not None:
            tx.set_buffer("snmp.community", msg.community, to_server)
        if msg.usm is not None:
            tx.set_buffer("snmp.usm", msg.usm, to_server)
        tx.complete()
        self._on_update(tx)


def eve_snmp(tx: Transaction) -> dict[str, object]:
    """The ``snmp`` object Suricata 7 adds to an alert on this transaction."""
    msg = tx.state
    if not isinstance(msg, SnmpMessage):
        return {}
    out: dict[str, object] = {"version": tx.values.get("snmp.version", msg.version)}
    if msg.encrypted:
        out["pdu_type"] = "encrypted"
        return out
    pdu = msg.pdu
    if pdu is not None:
        kind = pdu.pdu_type
        out["pdu_type"] = PDU_TYPES[kind] if kind < len(PDU_TYPES) else f"Unknown(0x{kind:x})"
        if pdu.error:
            known = 0 <= pdu.error < len(ERRORS)
            out["error"] = ERRORS[pdu.error] if known else f"ErrorStatus({pdu.error})"
        if pdu.trap is not None:
            generic, enterprise, address = pdu.trap
            known = 0 <= generic < len(TRAP_TYPES)
            out["trap_type"] = TRAP_TYPES[generic] if known else f"TrapType({generic})"
            out["trap_oid"] = enterprise
            out["trap_address"] = address
        if pdu.vars:
            out["vars"] = list(pdu.vars)
    if msg.community is not None:
        out["community"] = msg.community.decode("latin-1")
    if msg.usm is not None:
        out["usm"] = msg.usm.decode("latin-1")
    return out
