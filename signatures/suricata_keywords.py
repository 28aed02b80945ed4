"""Keywords Suricata 7 knows that sekimori does not implement (yet).

Scope: a plain list, so a rule using one is skipped as "not yet supported" (and counted by
keyword) instead of "unknown keyword". Buffer keywords (http.*, dns.query, tls.sni...) are
known to signatures/payload.py and reported there.
"""

from __future__ import annotations

UNSUPPORTED_KEYWORDS: frozenset[str] = frozenset(
    """
    urilen app-layer-protocol app-layer-event decode-event stream-event engine-event
    app-layer-state flow.age flow.pkts flow.bytes pktvar flowvar bypass config
    ipv4-csum tcpv4-csum tcpv6-csum udpv4-csum udpv6-csum icmpv4-csum icmpv6-csum
    icmpv6.mtu tcp.flags replace tag
    dns.opcode dns.rrtype ssl_version ssl_state tls.version tls.subject tls.issuerdn
    tls.fingerprint tls.store tls_cert_notbefore tls_cert_notafter tls_cert_expired
    tls_cert_valid tls.certs tls.cert_chain_len tls.random tls.random_time tls.random_bytes
    ssh.protoversion ssh.softwareversion ssh.hassh ssh.hassh.string ssh.hassh.server
    ssh.hassh.server.string filename fileext filemagic filestore filemd5 filesha1 filesha256
    filesize file.name file.magic lua luajit dataset datarep iprep geoip asn1 ftpbounce
    ftpdata_command nfs_procedure nfs.version dcerpc.iface dcerpc.opnum dcerpc.stub_data
    dce_iface dce_opnum dce_stub_data smb.named_pipe smb.share smb.ntlmssp_user
    smb.ntlmssp_domain krb5_msg_type krb5_err_code krb5.sname krb5.cname krb5.weak_encryption
    snmp.version snmp.community snmp.pdu_type snmp.usm modbus dnp3_func dnp3_ind dnp3_obj
    dnp3_data dnp3.data enip_command cip_service enip.command template template2 tftp
    to_md5 to_sha1 to_sha256 compress_whitespace strip_whitespace dotprefix url_decode
    pcrexform header_lowercase strip_pseudo_headers xor to_lowercase to_uppercase
    from_base64 http2.frametype http2.errorcode http2.priority http2.window
    http2.size_update http2.settings http2.header_name http2.header mqtt.type mqtt.flags
    mqtt.qos mqtt.reason_code mqtt.connack.session_present mqtt.connect.clientid
    mqtt.connect.flags mqtt.connect.password mqtt.connect.username mqtt.connect.willmessage
    mqtt.connect.willtopic mqtt.protocol_version mqtt.publish.message mqtt.publish.topic
    mqtt.subscribe.topic mqtt.unsubscribe.topic rfb.name rfb.secresult rfb.sectype
    sip.method sip.uri sip.request_line sip.stat_code sip.stat_msg sip.response_line
    sip.protocol quic.version quic.cyu.hash quic.cyu.string quic.sni quic.ua
    ike.exchtype ike.spi.initiator ike.spi.responder ike.chosen_sa_attribute
    ike.nonce_payload_length ike.nonce_payload ike.key_exchange_payload_length
    ike.key_exchange_payload ike.vendor dhcp.leasetime dhcp.rebinding_time
    dhcp.renewal_time frame transforms xbits.expire pkt_data_raw rpc sameip_pair
    """.split()
)
