"""The ``decode-event``, ``stream-event``, ``engine-event`` and ``app-layer-event`` keywords.

Scope: parse the keyword's value into a packet predicate, with Suricata 7's semantics:
``decode-event:ipv4.trunc_pkt`` is the engine event ``decoder.ipv4.trunc_pkt``,
``stream-event:3whs_wrong_seq_wrong_ack`` is ``stream.3whs_wrong_seq_wrong_ack`` (plus
Suricata's two ``..._with_different_ack`` aliases), ``engine-event`` takes the full name;
names compare case-insensitively and a name Suricata does not know is a RuleError. The
predicate looks the event up in ``pkt.events``, where the decoder and the stream engine put
Suricata's names (decoder events without the ``decoder.`` prefix, stream events with
``stream.``). sekimori adds the TCP flag anomalies of sensor/behaviour/anomaly.py
(``decode-event:tcp.flags_xmas`` ...), computed from the header because no decoder event
exists for them in Suricata.

``app-layer-event:http.missing_host_header`` matches a flow whose application layer
recorded that event (``flow.app.events``); per-transaction matching needs the detection
engine's transaction loop (see docs/detectors.md).

Non-goals: event prefiltering (each predicate is one membership test), the ``decoder.``
names of link layers sekimori does not decode (PPP, GRE, MPLS...): they are accepted and
simply never raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sensor.behaviour.anomaly import FLAG_ANOMALIES, flag_anomaly_check
from sensor.errors import RuleError
from sensor.packet import Packet

Check = Callable[[Packet], bool]

# Suricata 7's decoder events (src/decode-events.c), without the "decoder." prefix.
DECODER_EVENTS = frozenset(
    [
        "ipv4.pkt_too_small",
        "ipv4.hlen_too_small",
        "ipv4.iplen_smaller_than_hlen",
        "ipv4.trunc_pkt",
        "ipv4.opt_invalid",
        "ipv4.opt_invalid_len",
        "ipv4.opt_malformed",
        "ipv4.opt_pad_required",
        "ipv4.opt_eol_required",
        "ipv4.opt_duplicate",
        "ipv4.opt_unknown",
        "ipv4.wrong_ip_version",
        "ipv4.icmpv6",
        "icmpv4.pkt_too_small",
        "icmpv4.unknown_type",
        "icmpv4.unknown_code",
        "icmpv4.ipv4_trunc_pkt",
        "icmpv4.ipv4_unknown_ver",
        "icmpv6.unknown_type",
        "icmpv6.unknown_code",
        "icmpv6.pkt_too_small",
        "icmpv6.ipv6_unknown_version",
        "icmpv6.ipv6_trunc_pkt",
        "icmpv6.mld_message_with_invalid_hl",
        "icmpv6.unassigned_type",
        "icmpv6.experimentation_type",
        "ipv6.pkt_too_small",
        "ipv6.trunc_pkt",
        "ipv6.trunc_exthdr",
        "ipv6.exthdr_dupl_fh",
        "ipv6.exthdr_useless_fh",
        "ipv6.exthdr_dupl_rh",
        "ipv6.exthdr_dupl_hh",
        "ipv6.exthdr_dupl_dh",
        "ipv6.exthdr_dupl_ah",
        "ipv6.exthdr_dupl_eh",
        "ipv6.exthdr_invalid_optlen",
        "ipv6.wrong_ip_version",
        "ipv6.exthdr_ah_res_not_null",
        "ipv6.hopopts_unknown_opt",
        "ipv6.hopopts_only_padding",
        "ipv6.dstopts_unknown_opt",
        "ipv6.dstopts_only_padding",
        "ipv6.rh_type_0",
        "ipv6.zero_len_padn",
        "ipv6.fh_non_zero_reserved_field",
        "ipv6.data_after_none_header",
        "ipv6.unknown_next_header",
        "ipv6.icmpv4",
        "ipv6.frag_invalid_length",
        "tcp.pkt_too_small",
        "tcp.hlen_too_small",
        "tcp.invalid_optlen",
        "tcp.opt_invalid_len",
        "tcp.opt_duplicate",
        "udp.pkt_too_small",
        "udp.hlen_too_small",
        "udp.hlen_invalid",
        "sll.pkt_too_small",
        "ethernet.pkt_too_small",
        "ppp.pkt_too_small",
        "ppp.vju_pkt_too_small",
        "ppp.ip4_pkt_too_small",
        "ppp.ip6_pkt_too_small",
        "ppp.wrong_type",
        "ppp.unsup_proto",
        "pppoe.pkt_too_small",
        "pppoe.wrong_code",
        "pppoe.malformed_tags",
        "gre.pkt_too_small",
        "gre.wrong_version",
        "gre.version0_recur",
        "gre.version0_flags",
        "gre.version0_hdr_too_big",
        "gre.version0_malformed_sre_hdr",
        "gre.version1_chksum",
        "gre.version1_route",
        "gre.version1_ssr",
        "gre.version1_recur",
        "gre.version1_flags",
        "gre.version1_no_key",
        "gre.version1_wrong_protocol",
        "gre.version1_malformed_sre_hdr",
        "gre.version1_hdr_too_big",
        "vlan.header_too_small",
        "vlan.unknown_type",
        "vlan.too_many_layers",
        "ieee8021ah.header_too_small",
        "vntag.header_too_small",
        "vntag.unknown_type",
        "ipraw.invalid_ip_version",
        "ltnull.pkt_too_small",
        "ltnull.unsupported_type",
        "sctp.pkt_too_small",
        "esp.pkt_too_small",
        "ipv4.frag_pkt_too_large",
        "ipv6.frag_pkt_too_large",
        "ipv4.frag_overlap",
        "ipv6.frag_overlap",
        "ipv4.frag_ignored",
        "ipv6.frag_ignored",
        "ipv6.ipv4_in_ipv6_too_small",
        "ipv6.ipv4_in_ipv6_wrong_version",
        "ipv6.ipv6_in_ipv6_too_small",
        "ipv6.ipv6_in_ipv6_wrong_version",
        "mpls.header_too_small",
        "mpls.pkt_too_small",
        "mpls.bad_label_router_alert",
        "mpls.bad_label_implicit_null",
        "mpls.bad_label_reserved",
        "mpls.unknown_payload_type",
        "vxlan.unknown_payload_type",
        "geneve.unknown_payload_type",
        "erspan.header_too_small",
        "erspan.unsupported_version",
        "erspan.too_many_vlan_layers",
        "dce.pkt_too_small",
        "chdlc.pkt_too_small",
        "nsh.header_too_small",
        "nsh.unsupported_version",
        "nsh.bad_header_length",
        "nsh.reserved_type",
        "nsh.unsupported_type",
        "nsh.unknown_payload",
        "too_many_layers",
    ]
)

# Suricata 7's stream events (the decode-events table plus the reassembly engine's), with
# the "stream." prefix as they appear on pkt.events.
STREAM_EVENTS = frozenset(
    "stream." + n
    for n in [
        "3whs_ack_in_wrong_dir",
        "3whs_async_wrong_seq",
        "3whs_right_seq_wrong_ack_evasion",
        "3whs_synack_in_wrong_direction",
        "3whs_synack_resend_with_diff_ack",
        "3whs_synack_resend_with_diff_seq",
        "3whs_synack_toserver_on_syn_recv",
        "3whs_synack_with_wrong_ack",
        "3whs_synack_flood",
        "3whs_syn_resend_diff_seq_on_syn_recv",
        "3whs_syn_toclient_on_syn_recv",
        "3whs_wrong_seq_wrong_ack",
        "3whs_ack_data_inject",
        "3whs_synack_tfo_data_ignored",
        "4whs_synack_with_wrong_ack",
        "4whs_synack_with_wrong_syn",
        "4whs_wrong_seq",
        "4whs_invalid_ack",
        "closewait_ack_out_of_window",
        "closewait_fin_out_of_window",
        "closewait_pkt_before_last_ack",
        "closewait_invalid_ack",
        "closing_ack_wrong_seq",
        "closing_invalid_ack",
        "est_packet_out_of_window",
        "est_pkt_before_last_ack",
        "est_synack_resend",
        "est_synack_resend_with_diff_ack",
        "est_synack_resend_with_diff_seq",
        "est_synack_toserver",
        "est_syn_resend",
        "est_syn_resend_diff_seq",
        "est_syn_toclient",
        "est_invalid_ack",
        "fin_invalid_ack",
        "fin1_ack_wrong_seq",
        "fin1_fin_wrong_seq",
        "fin1_invalid_ack",
        "fin2_ack_wrong_seq",
        "fin2_fin_wrong_seq",
        "fin2_invalid_ack",
        "fin_but_no_session",
        "fin_out_of_window",
        "fin_syn",
        "lastack_ack_wrong_seq",
        "lastack_invalid_ack",
        "rst_but_no_session",
        "timewait_ack_wrong_seq",
        "timewait_invalid_ack",
        "shutdown_syn_resend",
        "pkt_invalid_timestamp",
        "pkt_invalid_ack",
        "pkt_broken_ack",
        "rst_invalid_ack",
        "pkt_retransmission",
        "pkt_spurious_retransmission",
        "pkt_bad_window_update",
        "suspected_rst_inject",
        "wrong_thread",
        "rst_invalid",
        "reassembly_segment_before_base_seq",
        "reassembly_no_segment",
        "reassembly_seq_gap",
        "reassembly_overlap_different_data",
        "reassembly_insert_memcap",
        "reassembly_insert_limit",
        "reassembly_insert_invalid",
        "reassembly_urgent_oob_limit_reached",
        "reassembly_depth_reached",
    ]
)

_STREAM_ALIASES = {
    "est_synack_resend_with_different_ack": "est_synack_resend_with_diff_ack",
    "3whs_synack_resend_with_different_ack": "3whs_synack_resend_with_diff_ack",
}
_NAME_RE = re.compile(r"^[0-9A-Za-z_]+\.[0-9A-Za-z_.]+$")
_APP_EVENT_RE = re.compile(r"^[0-9A-Za-z_-]+\.[0-9A-Za-z_]+$")


def _in_events(name: str) -> Check:
    def check(p: Packet) -> bool:
        events = p.events
        return events is not None and name in events

    return check


def event_name(keyword: str, value: str | None) -> str:
    """The event name as it appears on ``pkt.events`` (RuleError when unknown)."""
    raw = (value or "").strip()
    if keyword == "stream-event":
        raw = "stream." + _STREAM_ALIASES.get(raw, raw)
    elif keyword == "decode-event":
        raw = "decoder." + raw
    if not _NAME_RE.match(raw):
        raise RuleError(f"{keyword}: invalid event name '{value}'")
    name = raw.lower()
    if name.startswith("decoder."):
        name = name[len("decoder.") :]
        if name in DECODER_EVENTS or name in FLAG_ANOMALIES:
            return name
    elif name in STREAM_EVENTS:
        return name
    raise RuleError(f"{keyword}: unknown event '{(value or '').strip()}'")


def parse_event_keyword(name: str, value: str | None) -> Check:
    """``decode-event``/``stream-event``/``engine-event``/``app-layer-event`` → predicate."""
    if name == "app-layer-event":
        return parse_app_layer_event(value)
    if name not in ("decode-event", "stream-event", "engine-event"):
        raise RuleError(f"{name}: not an event keyword")
    event = event_name(name, value)
    if event in FLAG_ANOMALIES:
        return flag_anomaly_check(event)
    return _in_events(event)


def parse_app_layer_event(value: str | None) -> Check:
    """``app-layer-event:PROTO.EVENT`` against the flow's recorded app-layer events."""
    raw = (value or "").strip()
    if not _APP_EVENT_RE.match(raw):
        raise RuleError(f"app-layer-event: expected PROTO.EVENT, got '{value}'")
    wanted = raw.lower()

    def check(p: Packet) -> bool:
        app = p.flow.app if p.flow is not None else None
        events = getattr(app, "events", None) if app is not None else None
        return events is not None and wanted in events

    return check


EVENT_KEYWORDS = ("decode-event", "stream-event", "engine-event", "app-layer-event")
