"""Registry of the buffer names payload keywords can inspect.

Scope: the canonical names of Suricata 7 sticky buffers for packet data, packet headers,
HTTP/1 and HTTP/2, DNS, TLS, SSH, SMB, SNMP, SIP, Kerberos 5, DCERPC and files; the legacy
spellings that select them; and the legacy content modifiers (``http_uri`` ...) and pcre flags
(``/U`` ...) that move a pattern into one.

Non-goals: producing the buffers (decoders and the application layer do that) and knowing
which of them the engine can produce right now (the caller passes that set to the builder).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from sensor.errors import RuleError

PKT_DATA = "pkt_data"  # packet payload, or reassembled stream data for stream inspection
BASE64_DATA = "base64_data"  # pseudo buffer: the bytes decoded by the last base64_decode

HEADER_BUFFERS = frozenset(
    {"ipv4.hdr", "ipv6.hdr", "tcp.hdr", "udp.hdr", "icmpv4.hdr", "icmpv6.hdr"}
)

# MQTT's sticky buffers: listed once, used by APP_BUFFERS and BUFFER_DIRECTION.
MQTT_BUFFERS = (
    "mqtt.connect.clientid",
    "mqtt.connect.username",
    "mqtt.connect.password",
    "mqtt.connect.willtopic",
    "mqtt.connect.willmessage",
    "mqtt.publish.topic",
    "mqtt.publish.message",
    "mqtt.subscribe.topic",
    "mqtt.unsubscribe.topic",
)
APP_BUFFERS: frozenset[str] = frozenset(
    {
        # HTTP/1 request side
        "http.uri",
        "http.uri.raw",
        "http.method",
        "http.request_line",
        "http.request_body",
        "http.protocol",
        "http.host",
        "http.host.raw",
        "http.user_agent",
        "http.header",
        "http.header.raw",
        "http.header_names",
        "http.cookie",
        "http.accept",
        "http.accept_enc",
        "http.accept_lang",
        "http.referer",
        "http.content_type",
        "http.content_len",
        "http.connection",
        "http.start",
        # HTTP/1 response side
        "http.stat_code",
        "http.stat_msg",
        "http.response_line",
        "http.response_body",
        "http.location",
        "http.server",
        "http.request_header",
        "http.response_header",
        # HTTP/2: one entry per header field
        "http2.header_name",
        "http2.header",
        # files (HTTP bodies as files, SMTP attachments, ...)
        "file.data",
        "file.name",
        "file.magic",
        # DNS
        "dns.query",
        # TLS
        "tls.sni",
        "tls.cert_subject",
        "tls.cert_issuer",
        "tls.cert_serial",
        "tls.cert_fingerprint",
        "tls.certs",
        "tls.random",
        "tls.random_time",
        "tls.random_bytes",
        "tls.subjectaltname",
        "ja3.hash",
        "ja3.string",
        "ja3s.hash",
        "ja3s.string",
        # DCERPC (over TCP and SMB named pipes): a call's request / response stub
        "dce.stub_data",
        # SMB (tree connect share paths)
        "smb.share",
        "smb.named_pipe",
        # SSH
        "ssh.proto",
        "ssh.software",
        "ssh.hassh",
        "ssh.hassh.string",
        "ssh.hassh.server",
        "ssh.hassh.server.string",
        # SNMP, SIP, Kerberos 5
        "snmp.community",
        "snmp.usm",
        "sip.method",
        "sip.uri",
        "sip.request_line",
        "sip.stat_code",
        "sip.stat_msg",
        "sip.response_line",
        "sip.protocol",
        "krb5.cname",
        "krb5.sname",
        # MQTT (to server in Suricata 7, whatever direction the packet travelled)
        *MQTT_BUFFERS,
    }
)

ALL_BUFFERS: frozenset[str] = frozenset({PKT_DATA}) | HEADER_BUFFERS | APP_BUFFERS

# Older sticky-buffer spellings that Suricata 7 still accepts for the same buffer.
ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "file_data": "file.data",
        "dce_stub_data": "dce.stub_data",
        "dcerpc.stub_data": "dce.stub_data",
        "filename": "file.name",
        "dns_query": "dns.query",
        "tls_sni": "tls.sni",
        "tls_cert_subject": "tls.cert_subject",
        "tls_cert_issuer": "tls.cert_issuer",
        "tls_cert_serial": "tls.cert_serial",
        "tls_cert_fingerprint": "tls.cert_fingerprint",
        "ja3_hash": "ja3.hash",
        "ja3_string": "ja3.string",
        "ssh_proto": "ssh.proto",
        "ssh_software": "ssh.software",
        "krb5_cname": "krb5.cname",
        "krb5_sname": "krb5.sname",
        "http_request_line": "http.request_line",
        "http_response_line": "http.response_line",
        "http_header_names": "http.header_names",
        "http_accept": "http.accept",
        "http_accept_enc": "http.accept_enc",
        "http_accept_lang": "http.accept_lang",
        "http_referer": "http.referer",
        "http_content_type": "http.content_type",
        "http_content_len": "http.content_len",
        "http_connection": "http.connection",
        "http_start": "http.start",
        "http_protocol": "http.protocol",
        "http_location": "http.location",
        "http_server": "http.server",
        "http.request_body": "http.request_body",
        "http.response_body": "http.response_body",
    }
)

# Content modifiers that move the previous content into an app-layer buffer.
LEGACY_MODIFIERS: Mapping[str, str] = MappingProxyType(
    {
        "http_uri": "http.uri",
        "http_raw_uri": "http.uri.raw",
        "http_method": "http.method",
        "http_header": "http.header",
        "http_raw_header": "http.header.raw",
        "http_cookie": "http.cookie",
        "http_client_body": "http.request_body",
        "http_server_body": "http.response_body",
        "http_stat_code": "http.stat_code",
        "http_stat_msg": "http.stat_msg",
        "http_user_agent": "http.user_agent",
        "http_host": "http.host",
        "http_raw_host": "http.host.raw",
    }
)

# Sticky buffers that are one list in Suricata 7 under two names (what a pcre buffer flag
# naming the other one still means): http.response_body is file_data's HTTP side.
SAME_LIST: Mapping[str, tuple[str, ...]] = MappingProxyType({"http.response_body": ("file.data",)})

# Suricata-specific pcre flags that select the buffer the expression runs on.
PCRE_BUFFER_FLAGS: Mapping[str, str] = MappingProxyType(
    {
        "U": "http.uri",
        "I": "http.uri.raw",
        "P": "http.request_body",
        "Q": "file.data",
        "H": "http.header",
        "D": "http.header.raw",
        "M": "http.method",
        "C": "http.cookie",
        "S": "http.stat_code",
        "Y": "http.stat_msg",
        "V": "http.user_agent",
        "W": "http.host",
        "Z": "http.host.raw",
    }
)


def sticky_buffer_name(keyword: str) -> str | None:
    """The canonical buffer a sticky-buffer keyword selects, or None if it is not one."""
    if keyword in ALIASES:
        return ALIASES[keyword]
    if keyword in APP_BUFFERS or keyword in HEADER_BUFFERS:
        return keyword
    return None


# Which direction fills each application buffer: "ts" (request / client), "tc" (response /
# server) or "both" (filled from either side; the packet's direction picks the version).
_TS = "ts"
_TC = "tc"
_BOTH = "both"
BUFFER_DIRECTION: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "http.uri",
                "http.uri.raw",
                "http.method",
                "http.host",
                "http.host.raw",
                "http.user_agent",
                "http.request_body",
                "http.request_line",
                "http.accept",
                "http.accept_enc",
                "http.accept_lang",
                "http.referer",
                "http.request_header",
                "dns.query",
                "tls.sni",
                "ja3.hash",
                "ja3.string",
                "ja4.hash",
                "ssh.hassh",
                "ssh.hassh.string",
                "ftp.bounce",
                "smb.share",
                "smb.named_pipe",
                "sip.method",
                "sip.uri",
                "sip.request_line",
                # every MQTT keyword: Suricata 7 registers them to server only
                *MQTT_BUFFERS,
                "mqtt.type",
                "mqtt.flags",
                "mqtt.qos",
                "mqtt.reason_code",
                "mqtt.connack.session_present",
                "mqtt.connect.flags",
                "mqtt.protocol_version",
                "modbus",  # the modbus keyword: requests only, as Suricata 7
            ),
            _TS,
        ),
        **dict.fromkeys(
            (
                "http.stat_code",
                "http.stat_msg",
                "http.response_line",
                "http.response_body",
                "http.location",
                "http.server",
                "http.response_header",
                "ja3s.hash",
                "ja3s.string",
                "ssh.hassh.server",
                "ssh.hassh.server.string",
                "sip.stat_code",
                "sip.stat_msg",
                "sip.response_line",
                "tls.cert_chain_len",  # the server's certificate chain (a value keyword)
                # the server certificate's validity (tls_cert_notbefore/notafter/expired/valid)
                "tls.cert_notbefore",
                "tls.cert_notafter",
                "tls.cert_validity",
            ),
            _TC,
        ),
    }
)


# A transformed buffer is named "<base>#<transform>..." (see signatures/transforms.py).
TRANSFORM_SEPARATOR = "#"


def buffer_direction(name: str) -> str:
    """ "ts", "tc" or "both" for an application buffer (unknown ones count as both)."""
    return BUFFER_DIRECTION.get(name.split(TRANSFORM_SEPARATOR, 1)[0], _BOTH)


def buffer_app_proto(name: str) -> str | None:
    """The application protocol whose parser fills ``name`` (None for pkt_data/headers and
    for the file buffers, which every file-carrying protocol fills: HTTP and SMB)."""
    if name.startswith("http2."):  # the HTTP/2 buffers and frame keywords
        return "http2"
    if name.startswith("http."):  # HTTP/1 and HTTP/2 (Suricata 7 fills both)
        return "http"
    if name.startswith("smb."):
        return "smb"
    if name.startswith("dce."):  # dce_stub_data, dce_iface, dce_opnum
        return "dcerpc"
    if name.startswith("dns."):
        return "dns"
    if name.startswith(("tls.", "ja3", "ja4")):  # tls.version (a value keyword) too
        return "tls"
    if name.startswith("ssh."):
        return "ssh"
    if name.startswith("ftp."):  # ftpbounce's value
        return "ftp"
    if name == "modbus":  # the modbus keyword's value
        return "modbus"
    for proto in ("snmp", "sip", "krb5", "mqtt"):  # buffers and values (snmp.version ...)
        if name.startswith(proto + "."):
            return proto
    return None


def check_directions(app_buffers: Iterable[str], to_server: bool, to_client: bool) -> None:
    """Suricata's SigValidate direction checks: a rule may not mix request-only and
    response-only buffers, nor contradict its ``flow`` direction (``to_server``/``to_client``
    say which one the flow keyword set); ``http.header.raw`` (http_raw_header, pcre /D)
    needs an explicit flow direction."""
    dirs = {buffer_direction(b) for b in app_buffers}
    # http.response_body is the exception: Suricata accepts it with flow:to_server
    flow_dirs = {buffer_direction(b) for b in app_buffers if not b.startswith("http.response_b")}
    if (
        (_TS in dirs and _TC in dirs)
        or (_TS in flow_dirs and to_client)
        or (_TC in flow_dirs and to_server)
    ):
        raise RuleError("rule mixes keywords with conflicting directions")
    raw = any(b.split(TRANSFORM_SEPARATOR, 1)[0] == "http.header.raw" for b in app_buffers)
    if raw and not (to_server or to_client):
        raise RuleError("http.header.raw needs flow:to_server or flow:to_client")
