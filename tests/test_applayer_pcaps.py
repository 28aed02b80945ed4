"""The parsers on the team's real attack captures, checked against Suricata 7's alert counts.

Each check mirrors one ET Open rule whose only app-layer condition is a single buffer match,
so the number of transactions whose buffer matches must equal the number of Suricata alerts
for that sid in ``<capture>.suricata-alerts.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import dpkt
import pytest

from sensor.applayer import AppLayer, AppLayerSettings
from sensor.applayer.common import Transaction

ATTACKS = Path(__file__).resolve().parent.parent.parent / "shared" / "pcaps" / "attacks"

Flow = tuple[int, int, int, list[tuple[bool, bytes]]]


def read_flows(path: Path) -> list[Flow]:
    """(ipproto, client port, server port, [(to_server, bytes)]) per flow of a clean capture.

    The lab captures have no loss or reordering, so in-order TCP payloads (retransmissions
    dropped by sequence number) are the reassembled stream.
    """
    flows: dict[tuple[object, ...], tuple[tuple[bytes, int], Flow]] = {}
    next_seq: dict[tuple[object, ...], int] = {}
    with path.open("rb") as fh:
        for _ts, frame in dpkt.pcap.Reader(fh):
            ip = dpkt.ethernet.Ethernet(frame).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(
                ip.data, dpkt.tcp.TCP | dpkt.udp.UDP
            ):
                continue
            l4 = ip.data
            proto = 6 if isinstance(l4, dpkt.tcp.TCP) else 17
            src, dst = (ip.src, l4.sport), (ip.dst, l4.dport)
            key = (proto, *sorted((src, dst)))
            if key not in flows:
                syn_only = (
                    proto == 6 and l4.flags & dpkt.tcp.TH_SYN and not l4.flags & dpkt.tcp.TH_ACK
                )
                if proto == 6 and not syn_only:
                    continue
                flows[key] = (src, (proto, l4.sport, l4.dport, []))
            client, flow = flows[key]
            to_server = src == client
            if proto == 6:
                direction = (key, to_server)
                if l4.flags & dpkt.tcp.TH_SYN:
                    next_seq[direction] = (l4.seq + 1) & 0xFFFFFFFF
                    continue
                if not l4.data or next_seq.get(direction) != l4.seq:
                    continue
                next_seq[direction] = (l4.seq + len(l4.data)) & 0xFFFFFFFF
            if l4.data:
                flow[3].append((to_server, bytes(l4.data)))
    return [flow for _client, flow in flows.values()]


def transactions(name: str) -> list[tuple[AppLayer, Transaction]]:
    path = ATTACKS / f"{name}.pcap"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    out: list[tuple[AppLayer, Transaction]] = []
    for proto, sport, dport, items in read_flows(path):
        al = AppLayer(AppLayerSettings(), proto, sport, dport)
        for to_server, data in items:
            al.feed(to_server, data, 0)
        al.close()
        out.extend((al, tx) for tx in al.pop_ready())
    return out


def suricata_count(name: str, sid: int) -> int:
    alerts = json.loads((ATTACKS / f"{name}.suricata-alerts.json").read_text())
    return sum(1 for a in alerts if a["sid"] == sid)


def matching(name: str, buffer: str, to_server: bool, pred: Callable[[bytes], bool]) -> int:
    count = 0
    for _al, tx in transactions(name):
        value = tx.get(buffer, to_server)
        values = value if isinstance(value, list) else [value] if value is not None else []
        count += any(pred(v) for v in values)
    return count


def test_tls_cert_subject_rule_2011540() -> None:
    got = matching(
        "tls_suspicious", "tls.cert_subject", False, lambda v: b"O=Internet Widgits Pty Ltd" in v
    )
    assert got == suricata_count("tls_suspicious", 2011540) == 8


def test_tls_sni_rules_2033967_2035145() -> None:
    assert matching(
        "tls_suspicious", "tls.sni", True, lambda v: v == b"api.telegram.org"
    ) == suricata_count("tls_suspicious", 2033967)
    assert matching(
        "tls_suspicious", "tls.sni", True, lambda v: v.endswith(b"transfer.sh")
    ) == suricata_count("tls_suspicious", 2035145)


def test_dns_query_rule_2022918() -> None:
    got = matching("dns_suspicious", "dns.query", True, lambda v: b".duckdns." in v.lower())
    assert got == suricata_count("dns_suspicious", 2022918) == 2


def test_http_uri_rule_2049400_needs_normalisation() -> None:
    got = matching("http_traversal", "http.uri", True, lambda v: b"/etc/passwd" in v.lower())
    assert got == suricata_count("http_traversal", 2049400) == 7


@pytest.mark.parametrize(
    "name",
    [
        "http_cmdinj_webshell",
        "http_log4shell",
        "http_shellshock",
        "http_sqli_manual",
        "sqlmap",
        "scanner_useragents",
        "tls_suspicious",
        "dns_suspicious",
    ],
)
def test_clean_captures_parse_without_anomalies(name: str) -> None:
    txs = transactions(name)
    assert txs, "no transactions at all"
    assert [e for al, tx in txs for e in tx.events + al.events] == []
    assert all(tx.to_server_done and tx.to_client_done for _al, tx in txs)
