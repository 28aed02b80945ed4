"""DNS over UDP (one message per datagram) and TCP (2-byte length-prefixed messages).

Scope: header, question and answer sections with name compression (pointer loops bounded),
as Suricata 7 sees them: every message is its own transaction (requests and responses are not
paired), ``dns.query`` is a multi-buffer of the question names of a request (labels joined by
``.``, no trailing dot), values ``dns.opcode``/``dns.rrtype``/``dns.rcode``/``dns.id`` for the
numeric keywords, and the EVE ``dns`` object (``query`` list for requests, ``answer`` for
responses). Malformed messages produce ``dns.malformed_data``; a response sent to the server
side (or a request to the client) produces ``dns.not_a_request`` / ``dns.not_a_response``.

Non-goals: EDNS option parsing, DNSSEC record rendering, zone transfers beyond their first
message's records.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass

from sensor.applayer.common import AppLayerSettings, Transaction

RRTYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    10: "NULL",
    11: "WKS",
    12: "PTR",
    13: "HINFO",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    41: "OPT",
    43: "DS",
    46: "RRSIG",
    47: "NSEC",
    48: "DNSKEY",
    50: "NSEC3",
    64: "SVCB",
    65: "HTTPS",
    99: "SPF",
    249: "TKEY",
    250: "TSIG",
    251: "IXFR",
    252: "AXFR",
    255: "ANY",
    257: "CAA",
}
RCODES = (
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
)
_MAX_POINTERS = 32  # compression pointers followed per name before calling it a loop
_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")


class DnsError(ValueError):
    """A message that cannot be parsed (internal; becomes ``dns.malformed_data``)."""


@dataclass(frozen=True)
class DnsRecord:
    name: bytes
    rrtype: int
    rrclass: int
    ttl: int = 0
    rdata: bytes = b""
    rendered: str | None = None  # rdata as Suricata prints it (addresses, names)


@dataclass(frozen=True)
class DnsMessage:
    id: int
    flags: int
    queries: tuple[DnsRecord, ...]
    answers: tuple[DnsRecord, ...]
    authorities: int
    additionals: int

    @property
    def is_response(self) -> bool:
        return bool(self.flags & 0x8000)

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF

    @property
    def rcode(self) -> int:
        return self.flags & 0xF


def read_name(msg: bytes, off: int) -> tuple[bytes, int]:
    """Decode a (possibly compressed) name at ``off``; returns (name, offset after it)."""
    labels: list[bytes] = []
    end = -1
    jumps = 0
    total = 0
    while True:
        if off >= len(msg):
            raise DnsError("name runs past the message")
        length = msg[off]
        if length == 0:
            off += 1
            break
        if length & 0xC0 == 0xC0:
            if off + 1 >= len(msg):
                raise DnsError("truncated compression pointer")
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DnsError("compression pointer loop")
            if end == -1:
                end = off + 2
            off = ((length & 0x3F) << 8) | msg[off + 1]
            continue
        if length & 0xC0:
            raise DnsError("reserved label type")
        label = msg[off + 1 : off + 1 + length]
        if len(label) != length:
            raise DnsError("label runs past the message")
        total += length + 1
        if total > 255:
            raise DnsError("name longer than 255 bytes")
        labels.append(label)
        off += 1 + length
    return b".".join(labels), (end if end != -1 else off)


def _render_rdata(msg: bytes, rrtype: int, start: int, rdata: bytes) -> str | None:
    try:
        if rrtype == 1 and len(rdata) == 4:
            return str(ipaddress.IPv4Address(rdata))
        if rrtype == 28 and len(rdata) == 16:
            return str(ipaddress.IPv6Address(rdata))
        if rrtype in (2, 5, 12):
            return read_name(msg, start)[0].decode("latin-1")
        if rrtype == 15 and len(rdata) > 2:
            return read_name(msg, start + 2)[0].decode("latin-1")
        if rrtype == 16 and rdata:
            return rdata[1 : 1 + rdata[0]].decode("latin-1")
    except DnsError:
        return None
    return None


def parse_message(msg: bytes, max_names: int) -> DnsMessage:
    """Parse one DNS message; raises :class:`DnsError` when malformed."""
    if len(msg) < _HEADER.size:
        raise DnsError("shorter than a DNS header")
    ident, flags, qd, an, ns, ar = _HEADER.unpack_from(msg, 0)
    off = _HEADER.size
    queries: list[DnsRecord] = []
    for _ in range(qd):
        name, off = read_name(msg, off)
        if off + 4 > len(msg):
            raise DnsError("truncated question")
        rrtype, rrclass = struct.unpack_from("!HH", msg, off)
        off += 4
        if len(queries) < max_names:
            queries.append(DnsRecord(name, rrtype, rrclass))
    answers: list[DnsRecord] = []
    for _ in range(an):
        name, off = read_name(msg, off)
        if off + _RR_FIXED.size > len(msg):
            raise DnsError("truncated resource record")
        rrtype, rrclass, ttl, rdlen = _RR_FIXED.unpack_from(msg, off)
        off += _RR_FIXED.size
        rdata = msg[off : off + rdlen]
        if len(rdata) != rdlen:
            raise DnsError("rdata runs past the message")
        if len(answers) < max_names:
            rendered = _render_rdata(msg, rrtype, off, rdata)
            answers.append(DnsRecord(name, rrtype, rrclass, ttl, rdata, rendered))
        off += rdlen
    return DnsMessage(ident, flags, tuple(queries), tuple(answers), ns, ar)


class DnsParser:
    """DNS messages of one flow; ``on_update(tx)`` receives each new transaction."""

    def __init__(
        self, cfg: AppLayerSettings, tcp: bool, on_update: Callable[[Transaction], None]
    ) -> None:
        self.cfg = cfg
        self.tcp = tcp
        self._on_update = on_update
        self._next_id = 0
        self._bufs = {True: bytearray(), False: bytearray()}
        self.failed = False
        self.events: list[str] = []

    def feed(self, to_server: bool, data: bytes) -> None:
        if self.failed:
            return
        if not self.tcp:
            self._message(to_server, data)
            return
        buf = self._bufs[to_server]
        buf += data
        pos = 0
        while len(buf) - pos >= 2:
            (length,) = struct.unpack_from("!H", buf, pos)
            if len(buf) - pos - 2 < length:
                break
            self._message(to_server, bytes(buf[pos + 2 : pos + 2 + length]))
            pos += 2 + length
        del buf[:pos]

    def _message(self, to_server: bool, data: bytes) -> None:
        tx = Transaction(self._next_id, "dns")
        tx.one_way = to_server
        self._next_id += 1
        try:
            msg = parse_message(data, self.cfg.dns_max_names)
        except DnsError:
            tx.events.append("dns.malformed_data")
            self.events.append("dns.malformed_data")
            self._complete(tx, to_server)
            return
        tx.state = msg
        if msg.is_response == to_server:
            tx.events.append("dns.not_a_request" if to_server else "dns.not_a_response")
        if msg.flags & 0x0040:
            tx.events.append("dns.z_flag_set")
        tx.values["dns.id"] = msg.id
        tx.values["dns.opcode"] = msg.opcode
        tx.values["dns.rcode"] = msg.rcode
        if msg.queries:
            tx.values["dns.rrtype"] = msg.queries[0].rrtype
        if not msg.is_response:  # Suricata 7 inspects dns.query in requests only
            tx.buffers["dns.query"] = [q.name for q in msg.queries]
        self._complete(tx, to_server)

    def _complete(self, tx: Transaction, to_server: bool) -> None:
        tx.complete()
        self._on_update(tx)


def _rrtype_name(rrtype: int) -> str:
    return RRTYPES.get(rrtype, str(rrtype))


def eve_dns(tx: Transaction) -> dict[str, object]:
    """The ``dns`` object Suricata 7 adds to an alert on this transaction."""
    msg = tx.state
    if not isinstance(msg, DnsMessage):
        return {}
    if not msg.is_response:
        return {
            "query": [
                {
                    "type": "query",
                    "id": msg.id,
                    "rrname": q.name.decode("latin-1"),
                    "rrtype": _rrtype_name(q.rrtype),
                    "tx_id": tx.tx_id,
                    "opcode": msg.opcode,
                }
                for q in msg.queries
            ]
        }
    answer: dict[str, object] = {
        "version": 2,
        "type": "answer",
        "id": msg.id,
        "flags": f"{msg.flags:x}",
        "qr": True,
        "opcode": msg.opcode,
        "rcode": RCODES[msg.rcode] if msg.rcode < len(RCODES) else str(msg.rcode),
    }
    for bit, key in ((0x0400, "aa"), (0x0200, "tc"), (0x0100, "rd"), (0x0080, "ra")):
        if msg.flags & bit:
            answer[key] = True
    if msg.queries:
        answer["rrname"] = msg.queries[0].name.decode("latin-1")
        answer["rrtype"] = _rrtype_name(msg.queries[0].rrtype)
    if msg.answers:
        answer["answers"] = [
            {
                "rrname": a.name.decode("latin-1"),
                "rrtype": _rrtype_name(a.rrtype),
                "ttl": a.ttl,
                **({"rdata": a.rendered} if a.rendered is not None else {}),
            }
            for a in msg.answers
        ]
    return {"answer": answer}
