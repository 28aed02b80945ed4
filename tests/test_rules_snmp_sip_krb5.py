"""SNMP, SIP and Kerberos 5 rules end to end: captures built with dpkt → pipeline → EVE.

Covers the ``alert snmp/sip/krb5`` headers (only flows detected as that protocol), the
sticky buffers and their directions, the value keywords, multi-buffer matching of Kerberos
principal names and the EVE ``snmp``/``sip``/``krb5`` objects.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from pcapgen import TcpSession, udp
from pcapgen import alerts_of as _alerts
from test_applayer_snmp_sip_krb5 import (
    SIP_INVITE,
    SIP_OK,
    as_rep,
    as_req,
    krb_error,
    snmp_v2,
    snmp_v3,
)
from test_rules_ssh_ftp import _sids

from sensor.errors import RuleError
from signatures.txvalues import compile_tx_value

C, S = "192.168.1.10", "203.0.113.5"


def test_snmp_rules(tmp_path: Path) -> None:
    frames = [
        udp(C, S, 40000, 161, snmp_v2(b"private", 0xA3)),
        udp(S, C, 161, 40000, snmp_v2(b"private", 0xA2)),
        udp(C, S, 40001, 161, snmp_v3(b"admin")),
        udp(C, S, 40002, 9999, snmp_v2(b"private")),  # not SNMP's port: not detected
    ]
    rules = "\n".join([
        'alert snmp any any -> any any (snmp.community; content:"private"; sid:1;)',
        'alert snmp any any -> any any (snmp.version:<3; snmp.pdu_type:3; sid:2;)',
        'alert snmp any any -> any any (snmp.pdu_type:2; flow:to_client; sid:3;)',
        'alert snmp any any -> any any (snmp.version:3; snmp.usm; content:"admin"; sid:4;)',
        'alert snmp any any -> any any (snmp.version:>=2; snmp.usm; content:"root"; sid:5;)',
        'alert udp any any -> any 9999 (content:"private"; sid:6;)',
    ])  # fmt: skip
    alerts = _alerts(tmp_path, frames, rules + "\n")
    assert _sids(alerts) == [1, 1, 2, 3, 4, 6]
    by_sid = {a["alert"]["signature_id"]: a for a in alerts}
    assert by_sid[2]["app_proto"] == "snmp"
    assert by_sid[2]["snmp"] == {"version": 2, "pdu_type": "set_request",
                                 "vars": ["1.3.6.1.2.1.1.1.0"], "community": "private"}  # fmt: skip
    assert by_sid[4]["snmp"]["usm"] == "admin"


def test_sip_rules_udp_and_tcp(tmp_path: Path) -> None:
    tcp = TcpSession(sport=5060, cport=40010).handshake()
    tcp.send(True, SIP_INVITE.replace(b"INVITE", b"REGISTER", 1)).send(False, SIP_OK).close()
    frames = [udp(C, S, 5060, 5060, SIP_INVITE), udp(S, C, 5060, 5060, SIP_OK), *tcp.frames]
    rules = "\n".join([
        'alert sip any any -> any any (sip.method; content:"INVITE"; sid:1;)',
        'alert sip any any -> any any (sip.uri; content:"bob@biloxi"; sid:2;)',
        'alert sip any any -> any any (sip.request_line; content:"REGISTER sip:"; sid:3;)',
        'alert sip any any -> any any (sip.stat_code; content:"180"; sid:4;)',
        'alert sip any any -> any any (sip.stat_msg; content:"Ringing"; sid:5;)',
        'alert sip any any -> any any (sip.response_line; content:"SIP/2.0 180"; sid:6;)',
        'alert sip any any -> any any (sip.protocol; content:"SIP/2.0"; flow:to_client; sid:7;)',
        'alert sip any any -> any any (sip.method; content:"BYE"; sid:8;)',
    ])  # fmt: skip
    alerts = _alerts(tmp_path, frames, rules + "\n")
    assert _sids(alerts) == [1, 2, 2, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    invite = next(a for a in alerts if a["alert"]["signature_id"] == 1)
    assert invite["app_proto"] == "sip" and invite["sip"]["method"] == "INVITE"
    assert {a["proto"] for a in alerts if a["alert"]["signature_id"] == 4} == {"UDP", "TCP"}


def test_krb5_rules(tmp_path: Path) -> None:
    rec = lambda m: struct.pack("!I", len(m)) + m  # noqa: E731
    tcp = TcpSession(sport=88, cport=40020).handshake()
    tcp.send(True, rec(as_req(b"mallory"))).send(False, rec(krb_error(6))).close()
    frames = [udp(C, S, 40000, 88, as_req()), udp(S, C, 88, 40000, as_rep()), *tcp.frames]
    rules = "\n".join([
        "alert krb5 any any -> any any (krb5_msg_type:10; sid:1;)",
        "alert krb5 any any -> any any (krb5_msg_type:11; sid:2;)",
        'alert krb5 any any -> any any (krb5.cname; content:"alice"; sid:3;)',
        'alert krb5 any any -> any any (krb5_sname; content:"krbtgt"; startswith; endswith; sid:4;)',
        'alert krb5 any any -> any any (krb5.sname; content:"krbtgt/"; sid:5;)',
        "alert krb5 any any -> any any (krb5_err_code:6; sid:6;)",
        "alert krb5 any any -> any any (krb5_msg_type:30; krb5_err_code:25; sid:7;)",
        'alert krb5 any any -> any any (krb5_cname; content:"mallory"; sid:8;)',
    ])  # fmt: skip
    alerts = _alerts(tmp_path, frames, rules + "\n")
    # sid 4 matches each part whole: AS-REQ, AS-REP, TCP AS-REQ and KRB-ERROR name krbtgt
    assert _sids(alerts) == [1, 1, 2, 3, 3, 4, 4, 4, 4, 6, 8]
    err = next(a for a in alerts if a["alert"]["signature_id"] == 6)
    assert err["app_proto"] == "krb5" and err["proto"] == "TCP"
    assert err["krb5"]["error_code"] == "KDC_ERR_C_PRINCIPAL_UNKNOWN"
    assert err["krb5"]["failed_request"] == "KRB_AS_REQ"


def test_keyword_values_are_validated() -> None:
    with pytest.raises(RuleError):
        compile_tx_value("krb5_msg_type", ">10")
    with pytest.raises(RuleError):
        compile_tx_value("snmp.version", "three")
    assert compile_tx_value("krb5_err_code", "-1")[1](-1)
    assert compile_tx_value("snmp.pdu_type", "5")[1](5)


def test_app_layer_events(tmp_path: Path) -> None:
    frames = [udp(C, S, 40000, 88, as_req()), udp(S, C, 88, 40000, as_rep(etype=23))]
    frames += [udp(C, S, 5061, 5060, b"INVITE sip:x;transport=udp SIP/2.0\r\n\r\n")]
    rules = "\n".join([
        "alert udp any any -> any any (app-layer-event:krb5.weak_encryption; sid:1;)",
        "alert udp any any -> any any (app-layer-event:sip.invalid_data; sid:2;)",
        "alert krb5 any any -> any any (krb5_msg_type:99; sid:3;)",  # turns the app layer on
    ])  # fmt: skip
    assert _sids(_alerts(tmp_path, frames, rules + "\n")) == [1, 2]
