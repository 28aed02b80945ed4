"""SSH, FTP and SMTP rules end to end: captures built with dpkt → pipeline → EVE alerts.

Covers the rule header protocols (``alert ssh/ftp/smtp`` match only flows detected as that
protocol), ``app-layer-protocol``, the SSH sticky buffers and legacy keywords, HASSH,
``ftpbounce``, the EVE ``ssh`` object and the end of payload inspection once SSH is encrypted.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pcapgen import TcpSession, alerts_of
from test_applayer_ssh import CLIENT, ENC_CS, KEX, MAC_CS, NEWKEYS, SERVER, kexinit

from signatures.ruleset import load_ruleset
from signatures.variables import Variables

CLIENT_IP, SERVER_IP = "192.168.1.10", "203.0.113.5"


def _alerts(tmp_path: Path, frames: list[bytes], rules: str) -> list[dict]:
    return alerts_of(tmp_path, frames, rules)


def _sids(alerts: list[dict]) -> list[int]:
    return sorted(a["alert"]["signature_id"] for a in alerts)


def ssh_session(client: bytes = CLIENT, server: bytes = SERVER, port: int = 22) -> TcpSession:
    s = TcpSession(sport=port).handshake()
    cut_c, cut_s = client.index(b"\n") + 1, server.index(b"\n") + 1
    s.send(False, server[:cut_s]).send(True, client[:cut_c])  # banners
    s.send(False, server[cut_s:]).send(True, client[cut_c:])  # KEXINIT, NEWKEYS, encrypted
    s.send(True, b"encrypted-marker").ack(False)
    return s.close()


def test_ssh_header_and_buffers(tmp_path: Path) -> None:
    http = (
        TcpSession(sport=22, cport=40002).handshake().send(True, b"GET / HTTP/1.0\r\n\r\n").close()
    )
    rules = "\n".join([
        'alert ssh any any -> any any (msg:"any ssh"; flow:to_server; content:"SSH-"; sid:1;)',
        'alert ssh any any -> any any (ssh.software; content:"libssh"; sid:2;)',
        'alert ssh any any -> any any (ssh.software; content:"OpenSSH"; sid:3;)',
        'alert ssh any any -> any any (ssh_proto; content:"2.0"; flow:to_client; sid:4;)',
        'alert tcp any any -> any any (ssh.proto; content:"1.99"; sid:5;)',
        'alert tcp any any -> any 22 (app-layer-protocol:ssh; content:"SSH-2.0"; sid:6;)',
        'alert tcp any any -> any 22 (app-layer-protocol:!ssh; content:"GET"; sid:7;)',
        'alert http any any -> any 22 (content:"SSH-"; sid:8;)',
    ])  # fmt: skip
    alerts = _alerts(tmp_path, ssh_session().frames + http.frames, rules + "\n")
    assert _sids(alerts) == [1, 2, 3, 4, 6, 7]
    by_sid = {a["alert"]["signature_id"]: a for a in alerts}
    assert by_sid[2]["src_ip"] == CLIENT_IP and by_sid[3]["src_ip"] == SERVER_IP
    assert by_sid[4]["src_ip"] == SERVER_IP
    assert by_sid[1]["app_proto"] == "ssh" and by_sid[7]["app_proto"] == "http"
    # every alert on an SSH flow carries Suricata's ssh object
    assert by_sid[1]["ssh"]["client"] == {"proto_version": "2.0",
                                          "software_version": "libssh_0.10.4"}  # fmt: skip
    assert by_sid[3]["ssh"]["server"]["software_version"] == "OpenSSH_9.2p1"


def test_legacy_protoversion_and_softwareversion(tmp_path: Path) -> None:
    old = b"SSH-1.99-PuTTY_2.123\r\n" + kexinit() + NEWKEYS
    rules = "\n".join([
        "alert ssh any any -> any any (ssh.protoversion:2_compat; flow:to_server; sid:1;)",
        "alert ssh any any -> any any (ssh.protoversion:1.99; sid:2;)",
        'alert ssh any any -> any any (ssh.protoversion:"2.0"; flow:to_client; sid:3;)',
        "alert ssh any any -> any any (ssh.protoversion:1.9; sid:4;)",
        'alert ssh any any -> any any (ssh.softwareversion:"PuTTY_2.123"; sid:5;)',
        "alert ssh any any -> any any (ssh.softwareversion:PuTTY; sid:6;)",
    ])  # fmt: skip
    alerts = _alerts(tmp_path, ssh_session(client=old).frames, rules + "\n")
    assert _sids(alerts) == [1, 2, 3, 5]
    assert {a["src_ip"] for a in alerts if a["alert"]["signature_id"] != 3} == {CLIENT_IP}


def test_hassh_buffers(tmp_path: Path) -> None:
    client_str = b";".join((KEX, ENC_CS, MAC_CS, b"none,zlib@openssh.com"))
    digest = hashlib.md5(client_str).hexdigest()
    rules = "\n".join([
        f'alert ssh any any -> any any (ssh.hassh; content:"{digest}"; sid:1;)',
        'alert ssh any any -> any any (ssh.hassh.string; content:"aes128-ctr"; sid:2;)',
        'alert ssh any any -> any any (ssh.hassh.server.string; content:"chacha20"; sid:3;)',
        'alert ssh any any -> any any (ssh.hassh.server; content:"0000"; sid:4;)',
        'alert ssh any any -> any any (ssh.hassh.server.string; content:"aes128-ctr"; sid:5;)',
    ])  # fmt: skip
    alerts = _alerts(tmp_path, ssh_session().frames, rules + "\n")
    assert _sids(alerts) == [1, 2, 3]
    first = next(a for a in alerts if a["alert"]["signature_id"] == 1)
    hassh = first["ssh"]["client"]["hassh"]
    assert hassh == {"hash": digest, "string": client_str.decode()}


def test_encrypted_ssh_payload_is_not_inspected(tmp_path: Path) -> None:
    rules = "\n".join([
        'alert ssh any any -> any any (content:"encrypted-marker"; sid:1;)',
        'alert tcp any any -> any any (content:"encrypted-marker"; sid:2;)',
        "alert tcp any any -> any any (flags:FA; flow:to_server; sid:3;)",
        # the same bytes on a flow that never switched to encryption do match
        'alert tcp any any -> any 2222 (content:"hello encrypted"; sid:4;)',
    ])  # fmt: skip
    plain = TcpSession(sport=2222, cport=40001).handshake()
    plain.send(True, b"hello encrypted-marker").close()
    alerts = _alerts(tmp_path, ssh_session().frames + plain.frames, rules + "\n")
    # the FIN of both flows; the marker only on the plain one
    assert _sids(alerts) == [2, 3, 3, 4]
    assert all(a["src_port"] == 40001 for a in alerts if a["alert"]["signature_id"] == 2)


def test_ssh_rule_does_not_match_other_protocols(tmp_path: Path) -> None:
    s = TcpSession(sport=22).handshake().send(True, b"not SSH-2.0 at all\r\n").close()
    rules = 'alert ssh any any -> any any (content:"SSH"; sid:1;)\n'
    assert _alerts(tmp_path, s.frames, rules) == []


def test_ftp_detection_and_ftpbounce(tmp_path: Path) -> None:
    s = TcpSession(sport=21).handshake()
    s.send(False, b"220 (vsFTPd 3.0.3)\r\n").send(True, b"USER anonymous\r\n")
    s.send(False, b"331 Please specify the password.\r\n").send(True, b"PASS x\r\n")
    s.send(True, b"PORT 192,168,1,10,4,1\r\n")  # to the client itself: no bounce
    s.send(True, b"PORT 10,9,8,7,0,21\r\n")  # to another host
    s.close()
    rules = "\n".join([
        "alert ftp any any -> any any (flow:to_server; content:\"USER\"; sid:1;)",
        # the GPL rule of ET Open
        'alert tcp any any -> any 21 (msg:"GPL FTP PORT bounce attempt"; '
        'flow:to_server,established; content:"PORT"; nocase; ftpbounce; '
        'pcre:"/^PORT/smi"; sid:2;)',
        "alert tcp any any -> any any (ftpbounce; sid:3;)",
        "alert smtp any any -> any any (content:\"USER\"; sid:4;)",
    ])  # fmt: skip
    alerts = _alerts(tmp_path, s.frames, rules + "\n")
    assert _sids(alerts) == [1, 2, 3]
    bounce = next(a for a in alerts if a["alert"]["signature_id"] == 2)
    assert bounce["app_proto"] == "ftp" and bounce["pcap_cnt"] == 9


def test_smtp_header_matches_once_ehlo_named_the_flow(tmp_path: Path) -> None:
    s = TcpSession(sport=25).handshake()
    s.send(False, b"220 mail.example ESMTP Postfix\r\n").send(True, b"EHLO client\r\n")
    s.send(False, b"250 mail.example\r\n").send(True, b"MAIL FROM:<a@b.example>\r\n").close()
    rules = "\n".join([
        'alert smtp any any -> any any (content:"MAIL FROM"; sid:1;)',
        'alert smtp any any -> any any (flow:to_client; content:"250 "; sid:2;)',
        'alert ftp any any -> any any (content:"EHLO"; sid:3;)',
    ])  # fmt: skip
    alerts = _alerts(tmp_path, s.frames, rules + "\n")
    assert _sids(alerts) == [1, 2] and {a["app_proto"] for a in alerts} == {"smtp"}


def test_et_open_style_rules_load(tmp_path: Path) -> None:
    rules = tmp_path / "et.rules"
    rules.write_text(
        'alert ssh $EXTERNAL_NET any -> $HOME_NET any (msg:"ET SCAN SSH BruteForce Tool with '
        'fake PUTTY version"; flow:established,to_server; ssh_proto; content:"PUTTY"; '
        "threshold: type limit, track by_src, count 1, seconds 30; sid:2019876; rev:6;)\n"
        'alert tcp $EXTERNAL_NET any -> $HOME_NET 21 (msg:"GPL FTP PORT bounce attempt"; '
        'flow:to_server,established; content:"PORT"; nocase; ftpbounce; pcre:"/^PORT/smi"; '
        "sid:2103441; rev:2;)\n"
        "alert ssh any any -> any any (ssh.protoversion:2_com; sid:3;)\n"
        "alert ssh any any -> any any (ftpbounce; sid:4;)\n"
    )
    from sensor.pipeline import SENSOR_BUFFERS

    _ruleset, report = load_ruleset(
        [str(rules)],
        Variables({"HOME_NET": "any", "EXTERNAL_NET": "any"}, {}),
        supported_buffers=SENSOR_BUFFERS,
    )
    assert report.loaded == 2
    reasons = sorted(issue.reason for issue in report.issues)
    assert len(reasons) == 2 and any("protoversion" in r for r in reasons)
