"""SSH and FTP parsing (sensor/applayer/ssh.py, ftp.py) on hand-built streams, plus the
real OpenSSH / hydra capture of the shared attack set when present."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.applayer import AppLayer, AppLayerSettings
from sensor.applayer.common import PROGRESS_COMPLETE, PROGRESS_LINE, Transaction
from sensor.applayer.detect import NEED_MORE, NO_MATCH, detect_protocol
from sensor.applayer.ftp import port_address
from sensor.applayer.ssh import hassh_string, parse_banner

KEX = b"curve25519-sha256,diffie-hellman-group14-sha256"
HOSTKEY = b"ssh-ed25519,rsa-sha2-512"
ENC_CS, ENC_SC = b"aes128-ctr,aes256-ctr", b"chacha20-poly1305@openssh.com"
MAC_CS, MAC_SC = b"hmac-sha2-256", b"hmac-sha1"
COMP = b"none,zlib@openssh.com"


def name_list(v: bytes) -> bytes:
    return struct.pack("!I", len(v)) + v


def binary_packet(code: int, payload: bytes) -> bytes:
    body = bytes((code,)) + payload
    padding = 8 - (len(body) + 5) % 8 + 4
    return struct.pack("!IB", len(body) + padding + 1, padding) + body + b"\0" * padding


def kexinit() -> bytes:
    lists = (KEX, HOSTKEY, ENC_CS, ENC_SC, MAC_CS, MAC_SC, COMP, COMP, b"", b"")
    return binary_packet(20, b"C" * 16 + b"".join(map(name_list, lists)) + b"\0" + b"\0" * 4)


NEWKEYS = binary_packet(21, b"")
CLIENT = b"SSH-2.0-libssh_0.10.4\r\n" + kexinit() + NEWKEYS + b"\x8f" * 64
SERVER = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n" + kexinit() + NEWKEYS + b"\x13" * 64


def run_ssh(ts: bytes, tc: bytes, step: int = 1 << 20, hassh: bool = True
            ) -> tuple[AppLayer, Transaction]:  # fmt: skip
    al = AppLayer(AppLayerSettings(ssh_hassh=hassh), 6, 50000, 22)
    for i in range(0, max(len(ts), len(tc)), step):
        al.feed(False, tc[i : i + step], 0)
        al.feed(True, ts[i : i + step], 0)
    txs = al.pop_ready()
    assert al.proto_name == "ssh" and len(txs) == 1
    return al, txs[0]


def test_banner_parsing_follows_suricata() -> None:
    assert parse_banner(b"SSH-2.0-OpenSSH_9.2p1 Debian-2") == (b"2.0", b"OpenSSH_9.2p1")
    assert parse_banner(b"SSH-1.99-PuTTY_2.123") == (b"1.99", b"PuTTY_2.123")
    assert parse_banner(b"SSH-Single-") == (b"Single", b"")
    assert parse_banner(b"SSH--x") is None
    assert parse_banner(b"SSH-2.0") is None
    assert parse_banner(b"HTTP/1.1 200") is None


def test_buffers_progress_hassh_and_eve() -> None:
    al, tx = run_ssh(CLIENT, SERVER)
    assert tx.get("ssh.proto", True) == b"2.0" and tx.get("ssh.proto", False) == b"2.0"
    assert tx.get("ssh.software", True) == b"libssh_0.10.4"
    assert tx.get("ssh.software", False) == b"OpenSSH_9.2p1"
    client_str = b";".join((KEX, ENC_CS, MAC_CS, COMP))
    server_str = b";".join((KEX, ENC_SC, MAC_SC, COMP))
    assert tx.get("ssh.hassh.string", True) == client_str
    assert tx.get("ssh.hassh", True) == hashlib.md5(client_str).hexdigest().encode()
    assert tx.get("ssh.hassh.server.string", False) == server_str
    assert tx.get("ssh.hassh.server", False) == hashlib.md5(server_str).hexdigest().encode()
    assert tx.get("ssh.hassh", False) is None  # the client's fingerprint is to-server only
    assert tx.progress_ts == tx.progress_tc == PROGRESS_COMPLETE and al.encrypted
    assert al.eve_fields(tx)["ssh"] == {
        "client": {"proto_version": "2.0", "software_version": "libssh_0.10.4",
                   "hassh": {"hash": hashlib.md5(client_str).hexdigest(),
                             "string": client_str.decode()}},
        "server": {"proto_version": "2.0", "software_version": "OpenSSH_9.2p1",
                   "hassh": {"hash": hashlib.md5(server_str).hexdigest(),
                             "string": server_str.decode()}},
    }  # fmt: skip
    assert al.flow_eve_fields() == al.eve_fields(tx)
    assert tx.events == [] and not al.anomalous


def test_every_slicing_gives_the_same_buffers() -> None:
    _al, whole = run_ssh(CLIENT, SERVER)
    for step in (1, 2, 3, 7, 50):
        _al, tx = run_ssh(CLIENT, SERVER, step)
        assert tx.buffers == whole.buffers and tx.buffers_tc == whole.buffers_tc, step


def test_hassh_is_not_computed_unless_enabled() -> None:
    al, tx = run_ssh(CLIENT, SERVER, hassh=False)
    assert "ssh.hassh" not in tx.buffers and "ssh.hassh.server" not in tx.buffers_tc
    client = al.eve_fields(tx)["ssh"]
    assert isinstance(client, dict) and "hassh" not in client["client"]
    assert al.encrypted  # NEWKEYS is still followed


def test_banner_only_is_line_progress_and_not_encrypted() -> None:
    al, tx = run_ssh(b"SSH-1.99-PuTTY\n", b"")
    assert tx.progress_ts == PROGRESS_LINE and tx.progress_tc == 0
    assert tx.get("ssh.proto", True) == b"1.99" and tx.get("ssh.proto", False) is None
    assert not al.encrypted
    assert al.eve_fields(tx)["ssh"] == {"client": {"proto_version": "1.99",
                                                   "software_version": "PuTTY"}}  # fmt: skip


def test_anomalies_are_suricata_events() -> None:
    al, tx = run_ssh(b"SSH-x\r\n", b"")
    assert tx.events == ["ssh.invalid_banner"] and al.events == ["ssh.invalid_banner"]
    long_line = b"SSH-2.0-" + b"A" * 300
    al, tx = run_ssh(long_line + b"\r\n" + NEWKEYS, b"")
    assert "ssh.long_banner" in tx.events and tx.progress_ts == PROGRESS_COMPLETE
    assert tx.get("ssh.software", True) == b"A" * 300
    al, tx = run_ssh(b"SSH-2.0-x\r\n" + b"\0\0\0\x01\x04\x14", b"")
    assert tx.events == ["ssh.invalid_record"]


def test_hassh_string_rejects_truncated_kexinit() -> None:
    payload = kexinit()[6:]
    assert hassh_string(payload[:40], True) is None
    assert hassh_string(payload, False) is not None


def test_detection_patterns_follow_suricata_7() -> None:
    assert detect_protocol(b"SSH-2.0-x", False, 6, 22, 50000) == "ssh"
    assert detect_protocol(b"ehlo mail.example\r\n", True, 6, 50000, 25) == "smtp"
    assert detect_protocol(b"QUIT\r\n", True, 6, 50000, 2525) == "smtp"
    assert detect_protocol(b"user anonymous\r\n", True, 6, 50000, 2121) == "ftp"
    assert detect_protocol(b"220 (vsFTPd 3.0.3)\r\n", False, 6, 21, 50000) == "ftp"
    # any other greeting decides nothing, whatever the port: the client's command will
    assert detect_protocol(b"220 mail.example ESMTP\r\n", False, 6, 25, 50000) is NO_MATCH
    assert detect_protocol(b"220 ProFTPD ready\r\n", False, 6, 21, 50000) is NO_MATCH
    assert detect_protocol(b"22", False, 6, 21, 50000) is NEED_MORE
    assert detect_protocol(b"EH", True, 6, 50000, 25) is NEED_MORE


def test_smtp_flow_is_named_by_the_clients_ehlo() -> None:
    al = AppLayer(AppLayerSettings(), 6, 50000, 25)
    al.feed(False, b"220 mail.example ESMTP Postfix\r\n", 0)
    assert al.proto_name is None
    al.feed(True, b"EHLO client.example\r\n", 0)
    assert al.proto_name == "smtp" and al.pop_ready() == []


def test_ftp_port_commands_are_transactions_with_the_bounce_value() -> None:
    al = AppLayer(AppLayerSettings(), 6, 50000, 21, client_ip=0x0A000002)
    al.feed(False, b"220 (vsFTPd 3.0.3)\r\n", 0)
    for chunk in (b"USER anon\r\nPASS x\r\nPO", b"RT 10,0,0,2,4,1\r\n", b"PORT 192,168,1,9,0,21\n"):
        al.feed(True, chunk, 0)
    txs = al.pop_ready()
    assert al.proto_name == "ftp" and [tx.tx_id for tx in txs] == [0, 1, 2, 3]
    assert [tx.values.get("ftp.bounce") for tx in txs] == [None, None, 0, 1]


def test_port_address_reads_like_suricata() -> None:
    assert port_address(b" 80,58,0,33,10,20") == 0x503A0021
    assert port_address(b"1,2,3") is None
    assert port_address(b"1,2,3,1000,5,6") is None
    assert port_address(b"1,2,x,4,5,6") is None
    assert port_address(b"300,2,3,4,5,6") is None


def test_real_openssh_capture(shared_dir) -> None:
    pcap = shared_dir / "pcaps" / "attacks" / "hydra_ssh.pcap"
    if not pcap.exists():
        pytest.skip(f"{pcap} is absent")
    from test_applayer_pcaps import read_flows

    seen = 0
    for proto, sport, dport, items in read_flows(pcap):
        al = AppLayer(AppLayerSettings(ssh_hassh=True), proto, sport, dport)
        for to_server, data in items:
            al.feed(to_server, data, 0)
        txs = al.pop_ready()
        if not txs:
            continue
        tx = txs[0]
        assert al.proto_name == "ssh" and tx.events == []
        assert tx.get("ssh.software", False) == b"OpenSSH_9.2p1"
        software = tx.get("ssh.software", True)
        assert isinstance(software, bytes) and software.startswith(b"libssh")
        server = tx.get("ssh.hassh.server.string", False)
        assert server is not None and b"curve25519-sha256" in server and server.count(b";") == 3
        seen += 1
    assert seen >= 5


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), max_size=8),
       st.integers(min_value=1, max_value=64), st.binary(max_size=200))  # fmt: skip
def test_mutated_ssh_and_ftp_never_raise(edits: list[tuple[int, int]], step: int,
                                         junk: bytes) -> None:  # fmt: skip
    def mutate(data: bytes) -> bytes:
        buf = bytearray(data)
        for pos, value in edits:
            buf[pos % len(buf)] = value
        return bytes(buf)

    for ts, tc, port in ((mutate(CLIENT), mutate(SERVER), 22),
                         (b"USER a\r\nPORT " + junk + b"\r\n", b"220 (x)\r\n", 21)):  # fmt: skip
        al = AppLayer(AppLayerSettings(ssh_hassh=True), 6, 40000, port, client_ip=1)
        for i in range(0, max(len(ts), len(tc)), step):
            al.feed(True, ts[i : i + step], 0)
            al.feed(False, tc[i : i + step], 0)
        for tx in al.pop_ready():
            al.eve_fields(tx)
        al.flow_eve_fields()
