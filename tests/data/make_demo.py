#!/usr/bin/env python3
"""Write the demo capture and rules: tests/data/demo.pcap and tests/data/demo.rules.

Scope: a small, deterministic (fixed timestamps, sequence numbers and ports) Ethernet
capture between an outside host 203.0.113.5 and an inside web server 192.168.1.10, and
six Suricata-syntax rules that fire on it using only content/flow/dsize/itype:

    1 HTTP GET with a ../ traversal to /etc/passwd           sid 1000001
    2 the server answering with passwd contents               sid 1000002
    3 a scanner User-Agent (Nikto)                            sid 1000003
    4 an IIS cmd.exe request split across two TCP segments    sid 1000004 (needs reassembly)
    5 a DNS query for a known C2 name                         sid 1000005
    6 an oversized ICMP echo request                          sid 1000006
    plus a normal HTTP request that raises nothing.

Non-goals: realism beyond what the rules look at. Run it again after editing; the output
is byte-for-byte reproducible.   Usage: python tests/data/make_demo.py [OUT_DIR]
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import dpkt

OUTSIDE = "203.0.113.5"
INSIDE = "192.168.1.10"
MAC_OUTSIDE = bytes.fromhex("020000000005")
MAC_INSIDE = bytes.fromhex("02000000000a")
START = 1_700_000_000  # 2023-11-14T22:13:20Z
STEP_USEC = 10_000

RULES = """\
# sekimori demo rules: they fire on tests/data/demo.pcap (see tests/data/make_demo.py).
alert tcp $EXTERNAL_NET any -> $HOME_NET 80 (msg:"DEMO WEB path traversal to /etc/passwd"; flow:established,to_server; content:"../"; content:"/etc/passwd"; classtype:web-application-attack; sid:1000001; rev:1;)
alert tcp $HOME_NET 80 -> $EXTERNAL_NET any (msg:"DEMO WEB passwd file contents in response"; flow:established,to_client; content:"root:x:0:0:"; classtype:successful-recon-limited; sid:1000002; rev:1;)
alert tcp $EXTERNAL_NET any -> $HOME_NET 80 (msg:"DEMO SCAN Nikto User-Agent"; flow:established,to_server; content:"User-Agent: Mozilla/5.00 (Nikto"; classtype:web-application-activity; sid:1000003; rev:1;)
alert tcp $EXTERNAL_NET any -> $HOME_NET 80 (msg:"DEMO WEB IIS cmd.exe access"; flow:established,to_server; content:"/winnt/system32/cmd.exe"; classtype:web-application-attack; sid:1000004; rev:2;)
alert udp $HOME_NET any -> any 53 (msg:"DEMO DNS query for C2 domain malware-c2.example"; content:"|0a|malware-c2|07|example|00|"; classtype:trojan-activity; sid:1000005; rev:1;)
alert icmp $EXTERNAL_NET any -> $HOME_NET any (msg:"DEMO ICMP oversized echo request"; itype:8; dsize:>800; classtype:attempted-recon; sid:1000006; rev:1;)
"""


class Capture:
    """Frames with strictly increasing fixed timestamps."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, bytes]] = []

    def add(self, src: str, dst: str, l4: dpkt.Packet, proto: int) -> None:
        ip = dpkt.ip.IP(
            src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64, data=l4
        )
        ip.id = len(self.frames) + 1
        src_mac, dst_mac = (
            (MAC_OUTSIDE, MAC_INSIDE) if src == OUTSIDE else (MAC_INSIDE, MAC_OUTSIDE)
        )
        eth = dpkt.ethernet.Ethernet(
            src=src_mac, dst=dst_mac, type=dpkt.ethernet.ETH_TYPE_IP, data=ip
        )
        usec_total = len(self.frames) * STEP_USEC
        self.frames.append((START + usec_total // 1_000_000, usec_total % 1_000_000, bytes(eth)))

    def write(self, path: Path) -> None:
        with path.open("wb") as handle:
            writer = dpkt.pcap.Writer(handle, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
            for sec, usec, frame in self.frames:
                writer.writepkt(frame, ts=sec + usec / 1_000_000)


class TcpSession:
    """One client→server connection: handshake, data both ways, FIN teardown."""

    def __init__(self, cap: Capture, sport: int, isn_c: int, isn_s: int) -> None:
        self.cap, self.sport = cap, sport
        self.cseq, self.sseq = isn_c, isn_s
        self._segment(True, dpkt.tcp.TH_SYN, b"")
        self.cseq += 1
        self._segment(False, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, b"")
        self.sseq += 1
        self._segment(True, dpkt.tcp.TH_ACK, b"")

    def _segment(self, from_client: bool, flags: int, data: bytes) -> None:
        seq, ack = (self.cseq, self.sseq) if from_client else (self.sseq, self.cseq)
        tcp = dpkt.tcp.TCP(
            sport=self.sport if from_client else 80,
            dport=80 if from_client else self.sport,
            seq=seq,
            ack=ack if flags & dpkt.tcp.TH_ACK else 0,
            flags=flags,
            win=64240,
            data=data,
        )
        src, dst = (OUTSIDE, INSIDE) if from_client else (INSIDE, OUTSIDE)
        self.cap.add(src, dst, tcp, dpkt.ip.IP_PROTO_TCP)

    def client(self, data: bytes) -> None:
        self._segment(True, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data)
        self.cseq += len(data)
        self._segment(False, dpkt.tcp.TH_ACK, b"")

    def server(self, data: bytes) -> None:
        self._segment(False, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, data)
        self.sseq += len(data)
        self._segment(True, dpkt.tcp.TH_ACK, b"")

    def close(self) -> None:
        self._segment(True, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, b"")
        self.cseq += 1
        self._segment(False, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, b"")
        self.sseq += 1
        self._segment(True, dpkt.tcp.TH_ACK, b"")


def http_request(path: str, user_agent: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {INSIDE}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n\r\n"
    ).encode()


def udp(sport: int, dport: int, data: bytes) -> dpkt.udp.UDP:
    return dpkt.udp.UDP(sport=sport, dport=dport, ulen=8 + len(data), data=data)


def http_response(body: bytes, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"


def build() -> Capture:
    cap = Capture()
    # 1 + 2: traversal to /etc/passwd and the leaked file in the answer.
    s = TcpSession(cap, 40001, 1_000_000, 2_000_000)
    s.client(http_request("/cgi-bin/view.php?file=../../../../etc/passwd", "curl/8.4.0"))
    s.server(http_response(b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/sbin/nologin\n"))
    s.close()
    # 3: a scanner announcing itself.
    s = TcpSession(cap, 40002, 3_000_000, 4_000_000)
    s.client(http_request("/admin/", "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)"))
    s.server(http_response(b"not found\n", "404 Not Found"))
    s.close()
    # 4: the attack string split across two segments: only stream reassembly sees it whole.
    s = TcpSession(cap, 40003, 5_000_000, 6_000_000)
    request = http_request("/scripts/..%c1%1c../winnt/system32/cmd.exe?/c+dir", BROWSER)
    cut = request.index(b"system32/") + len(b"system32/c")
    s.client(request[:cut])
    s.client(request[cut:])
    s.server(http_response(b"denied\n", "403 Forbidden"))
    s.close()
    # A normal request: no alert.
    s = TcpSession(cap, 40004, 7_000_000, 8_000_000)
    s.client(http_request("/index.html", BROWSER))
    s.server(http_response(b"<html><body>hello</body></html>\n"))
    s.close()
    # 5: DNS query (inside host asks), and its NXDOMAIN answer.
    query = dpkt.dns.DNS(id=0x1234, qd=[dpkt.dns.DNS.Q(name="malware-c2.example")])
    cap.add(INSIDE, OUTSIDE, udp(53001, 53, bytes(query)), dpkt.ip.IP_PROTO_UDP)
    answer = dpkt.dns.DNS(
        id=0x1234,
        op=dpkt.dns.DNS_RA | 0x8000,
        rcode=dpkt.dns.DNS_RCODE_NXDOMAIN,
        qd=[dpkt.dns.DNS.Q(name="malware-c2.example")],
    )
    cap.add(OUTSIDE, INSIDE, udp(53, 53001, bytes(answer)), dpkt.ip.IP_PROTO_UDP)
    # 6: an oversized echo request and its reply.
    payload = bytes(range(256)) * 4  # 1024 bytes
    for src, dst, kind in (
        (OUTSIDE, INSIDE, dpkt.icmp.ICMP_ECHO),
        (INSIDE, OUTSIDE, dpkt.icmp.ICMP_ECHOREPLY),
    ):
        echo = dpkt.icmp.ICMP.Echo(id=0x4242, seq=1, data=payload)
        cap.add(src, dst, dpkt.icmp.ICMP(type=kind, code=0, data=echo), dpkt.ip.IP_PROTO_ICMP)
    return cap


def main(argv: list[str]) -> int:
    out_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    out_dir.mkdir(parents=True, exist_ok=True)
    build().write(out_dir / "demo.pcap")
    (out_dir / "demo.rules").write_text(RULES)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
