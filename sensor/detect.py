"""Per-packet detection: which signatures match this packet (and the data it carries).

Scope: candidate selection and evaluation order. For packet rules: the packet's L4 rule
group, its IP-only rules once per flow direction, Hyperscan prefilter hits on the payload /
stream window, and rules without a fast pattern; for transaction rules: the application
transactions this packet completed or grew (sensor/detect_app.py). Each candidate is checked
exactly (sensor/detect_match.py) in Suricata's evaluation order; then thresholds, post-match
effects (flowbits, flowint, hostbits) and pass/noalert handling.

Stream inspection, by design different from Suricata's IDS mode: in-order TCP data is
inspected on the packet that delivers it (not when the peer acknowledges it), so the
packet carrying an attack raises the alert. A pattern split across segments is found by
inspecting a bridge window ``tail + new data``, where the tail is the last ``max_reach``
bytes already inspected; a bridge match counts only when the tail alone does not match,
so content already alerted on is not reported again. Transactions, by contrast, follow
Suricata's timing: the app layer parses a direction once the peer acknowledged it
(TxSource.feed_tcp), so transaction rules alert where Suricata's do.
"""

from __future__ import annotations

from typing import Any

from sensor import detect_raw
from sensor.applayer.common import AppLayerSettings, Transaction
from sensor.detect_app import TxSource, tx_value
from sensor.detect_match import StreamCtx, app_proto_of, header_ok, packet_buffers_ok
from sensor.detect_state import (
    FlowDetectState,
    HostBits,
    Thresholds,
    alp_gated,
    bits_apply,
    done_side,
    flowint_apply,
    host_keys,
    is_pd_only,
    with_deferred,
)
from sensor.packet import IPPROTO_TCP, IPPROTO_UDP, Packet
from signatures.compiler import OTHER, CompiledRuleset
from signatures.payload import MatchEnv
from signatures.pcre_vars import apply as apply_captures
from signatures.rule import INSPECT_BOTH, Signature
from signatures.txvalues import TIMED_VALUES, compile_tx_value


def pseudo_packet(flow: Any, to_server: bool, ts_sec: int, ts_usec: int) -> Packet:
    """A stand-in packet for inspecting stream data at flow end (Suricata's pseudo packet).

    ``pcap_cnt`` is 0: no captured frame carries this data now, and EVE omits the field.
    """
    p = Packet(0, ts_sec, ts_usec, 0, b"")
    p.ipver, p.proto, p.flow, p.to_server = flow.ipver, flow.proto, flow, to_server
    p.vlan = flow.vlan
    p.l4_off, p.stream_added = 0, True
    if to_server:
        p.src, p.sport, p.dst, p.dport = flow.src, flow.sport, flow.dst, flow.dport
    else:
        p.src, p.sport, p.dst, p.dport = flow.dst, flow.dport, flow.src, flow.sport
    return p


class DetectStats:
    __slots__ = ("candidates", "checked", "matched", "suppressed", "transactions")

    def __init__(self) -> None:
        self.candidates = 0
        self.checked = 0
        self.matched = 0
        self.suppressed = 0
        self.transactions = 0


class Detector:
    """Runs a compiled ruleset over packets; holds cross-packet detection state."""

    def __init__(self, ruleset: CompiledRuleset, app: AppLayerSettings | None = None) -> None:
        self.ruleset = ruleset
        self._sigs = ruleset.signatures
        self._pd_only = frozenset(s.order for s in ruleset.signatures if is_pd_only(s))
        # app-layer-protocol without payload: Suricata's per-direction alproto (see _run)
        self._alp_gated = frozenset(s.order for s in ruleset.signatures if alp_gated(s))
        self._groups = ruleset.groups
        self._reach = ruleset.max_reach
        self._env = MatchEnv()
        settings = app or AppLayerSettings()
        self._tx = TxSource(ruleset, settings)
        # rules Suricata inspects on packet and raw stream alike; in IDS mode (not inline)
        # they get its second, raw-stream look (sensor/detect_raw.py)
        self._both = frozenset(s.order for s in self._sigs if s.inspect == INSPECT_BOTH)
        self._raw_on = bool(self._both) and not settings.inline
        self._tx_tests = {
            s.order: tuple(compile_tx_value(k, v) for k, v in s.tx_values)
            for s in ruleset.signatures
            if s.tx_values
        }
        self.hostbits = HostBits()
        self.thresholds = Thresholds()
        self.stats = DetectStats()
        self._app_before: str | None = None
        self._sealed = False  # this packet's flow is encrypted: no payload inspection
        # the transaction each transaction-rule alert of the last inspected packet is on
        self.alert_txs: dict[int, Transaction] = {}

    # -- entry points ------------------------------------------------------------------
    def inspect(self, p: Packet) -> list[Signature]:
        """The signatures that alert on ``p``, in evaluation order (pass/noalert removed)."""
        flow = p.flow
        fstate: FlowDetectState | None = None
        if flow is not None:
            fstate = flow.detect
            if fstate is None:
                fstate = flow.detect = FlowDetectState()

        if fstate is not None and fstate.action is not None:
            return []  # a pass/drop rule already decided for this flow (Suricata's flow action)

        # Suricata stops inspecting a flow's payload once its application layer says the
        # rest is encrypted (SSH after both NEWKEYS); rules without payload still run.
        app = flow.app if flow is not None else None
        self._sealed = sealed = app is not None and app.encrypted
        # stream data delivered in order by this packet (TCP sessions only)
        new_data = tail = b""
        if flow is not None and p.proto == IPPROTO_TCP and flow.tcp_session and not sealed:
            d = flow.toserver if p.to_server else flow.toclient
            if d is not None:
                new_data = d.new_data
            if fstate is not None:
                tail = fstate.tail_toserver if p.to_server else fstate.tail_toclient
        raw: bytes | None = None
        tcp = flow is not None and p.proto == IPPROTO_TCP and flow.tcp_session and not sealed
        if self._raw_on and tcp and fstate is not None:
            raw = detect_raw.on_packet(p, flow, fstate, new_data)
        window = tail + new_data if tail and new_data else new_data
        ctx: StreamCtx = (new_data, tail, window, raw)

        txs: list[Transaction] = []
        self._app_before = None
        if fstate is not None:
            fstate.note_packet(p.to_server, bool(p.payload))
        if flow is not None and self._tx.enabled and fstate is not None:
            if p.proto == IPPROTO_TCP and flow.tcp_session:
                txs = self._tx.feed_tcp(p, flow, fstate, new_data)
            elif p.proto == IPPROTO_UDP and p.payload:
                known = app_proto_of(p)
                txs = self._tx.feed(flow, p.to_server, p.payload, p.ts_sec)
                if known is None and app_proto_of(p) is not None:
                    fstate.app_pending = p.to_server
            txs = with_deferred(txs, p.to_server, fstate)
            self._app_before = self._visible_app_proto(p, fstate)

        self.alert_txs.clear()
        alerts: list[Signature] = []
        passed = self._run(self._packet_candidates(p, fstate, ctx), p, fstate, ctx, alerts)
        if txs and not passed and fstate is not None:
            # pkt_data of a transaction rule: this direction's data handed to the parser since
            # its last packet (consumed here, so a later transaction does not see it again)
            parsed = fstate.parsed_ts if p.to_server else fstate.parsed_tc
            if p.to_server:
                fstate.parsed_ts = b""
            else:
                fstate.parsed_tc = b""
            tx_ctx: StreamCtx = (parsed, b"", parsed, None) if parsed else ctx
            for tx in txs:
                if self._inspect_tx(tx, p, fstate, tx_ctx, alerts):
                    break

        if new_data and fstate is not None and self._reach > 1:
            keep = (tail + new_data)[-(self._reach - 1) :]
            if p.to_server:
                fstate.tail_toserver = keep
            else:
                fstate.tail_toclient = keep
        return alerts

    def flow_end(self, flow: Any, ts_sec: int, ts_usec: int) -> list[tuple[Signature, Packet]]:
        """A flow ends: inspect data left beyond a gap and transactions only the end
        completes (HTTP bodies delimited by connection close). Alerts with their packets."""
        out: list[tuple[Signature, Packet]] = []
        if flow.proto == IPPROTO_TCP and flow.tcp_session:
            for to_server, d in ((True, flow.toserver), (False, flow.toclient)):
                if d is None or not d.final_chunks:
                    continue
                chunks, d.final_chunks = d.final_chunks, []
                for chunk in chunks:
                    fstate = flow.detect
                    if fstate is not None:  # a gap separates these bytes from what came before
                        fstate.tail_toserver = fstate.tail_toclient = b""
                    d.new_data = chunk
                    p = pseudo_packet(flow, to_server, ts_sec, ts_usec)
                    out.extend((sig, p) for sig in self.inspect(p))
                d.new_data = b""
        fs = flow.detect
        if fs is not None and self._raw_on and fs.action is None:
            for to_server in (True, False):  # the raw stream's last chunk (Suricata's flush)
                out.extend(self._raw_flush(flow, fs, to_server, ts_sec, ts_usec))
        if fs is not None and self._tx.enabled and flow.proto == IPPROTO_TCP:
            for to_server in (True, False):  # data never acknowledged: Suricata's flush
                grown = self._tx.parse_upto(flow, fs, to_server, None, ts_sec)
                if grown or (fs.tx_later_ts if to_server else fs.tx_later_tc):
                    p = pseudo_packet(flow, to_server, ts_sec, ts_usec)
                    alerts_end: list[Signature] = []
                    for tx in with_deferred(grown, to_server, fs):
                        self._inspect_tx(tx, p, fs, (b"", b"", b"", None), alerts_end)
                    out.extend((sig, p) for sig in alerts_end)
        txs = self._tx.close(flow) if self._tx.enabled else []
        if txs:
            fstate = flow.detect if flow.detect is not None else FlowDetectState()
            p = pseudo_packet(flow, False, ts_sec, ts_usec)
            alerts: list[Signature] = []
            for tx in txs:
                self._inspect_tx(tx, p, fstate, (b"", b"", b"", None), alerts)
            out.extend((sig, p) for sig in alerts)
        return out

    def _raw_flush(self, flow: Any, fs: FlowDetectState, to_server: bool, ts_sec: int,
                   ts_usec: int) -> list[tuple[Signature, Packet]]:  # fmt: skip
        """The INSPECT_BOTH rules over the raw stream not yet inspected, at flow end."""
        app = flow.app
        chunk = detect_raw.flush(fs, to_server)
        if not chunk or (app is not None and app.encrypted):
            return []
        p = pseudo_packet(flow, to_server, ts_sec, ts_usec)
        ctx: StreamCtx = (b"", b"", b"", chunk)
        orders = [o for o in self._packet_candidates(p, None, ctx) if o in self._both]
        alerts: list[Signature] = []
        self._run(orders, p, fs, ctx, alerts)
        return [(sig, p) for sig in alerts]

    @staticmethod
    def _visible_app_proto(p: Packet, fs: FlowDetectState) -> str | None:
        """The app protocol as Suricata's packet rules would see it on this packet.

        Suricata (IDS mode) hands client data to the app layer only when the server's ACK
        for it is processed on an established session, so ``alert http ... (flow:...)``
        without payload keywords does not match the packet carrying the first request but
        does match from the acknowledging packet on. UDP is parsed on the packet itself.
        """
        acked = (
            fs.app_pending is not None
            and p.to_server != fs.app_pending
            and p.flow is not None
            and p.flow.is_established(p)
        )
        if fs.app_visible is None and (p.proto != IPPROTO_TCP or acked):
            fs.app_visible = app_proto_of(p)
        return fs.app_visible

    # -- candidates --------------------------------------------------------------------
    def _packet_candidates(self, p: Packet, fstate: FlowDetectState | None,
                           ctx: StreamCtx) -> list[int]:  # fmt: skip
        group = self._groups.get(p.proto if p.l4_off >= 0 else OTHER) or self._groups[OTHER]
        cand: set[int] = set(group.always.candidates(p.sport, p.dport))
        if group.ip_only is not None and (
            fstate is None
            or (p.to_server and not fstate.ipo_toserver)
            or (not p.to_server and not fstate.ipo_toclient)
        ):
            cand.update(group.ip_only.candidates(p.ipver, p.src, p.dst))
            if fstate is not None:
                if p.to_server:
                    fstate.ipo_toserver = True
                else:
                    fstate.ipo_toclient = True
        pf = group.to_server if p.to_server or p.flow is None else group.to_client
        if pf is not None:
            db, users = pf.db, pf.pattern_rules
            new_data, _tail, window, raw = ctx
            if window:
                for pid in db.scan(window):
                    cand.update(users[pid])
            if raw:  # the raw chunk only concerns the rules inspected on packet and stream
                both = self._both
                for pid in db.scan(raw):
                    cand.update(o for o in users[pid] if o in both)
            if p.payload and (not new_data or p.payload != new_data):
                for pid in db.scan(p.payload):
                    cand.update(users[pid])
        return sorted(cand)

    def _inspect_tx(self, tx: Transaction, p: Packet, fstate: FlowDetectState, ctx: StreamCtx,
                    alerts: list[Signature]) -> bool:  # fmt: skip
        """Check the transaction rules on ``tx``; True when a pass rule matched."""
        self.stats.transactions += 1
        done = fstate.tx_done
        tx_id = tx.tx_id
        to_server = p.to_server ^ fstate.app_reversed
        if tx.one_way is not None and tx.one_way != to_server:
            return False  # checked on its own direction's packets (deferred there if need be)
        side = done_side(tx, to_server)
        orders = [
            o for o in self._tx.candidates(tx.proto, tx, to_server) if (tx_id, o, side) not in done
        ]
        before = len(alerts)
        passed = self._run(orders, p, fstate, ctx, alerts, tx)
        for sig in alerts[before:]:
            self.alert_txs[sig.order] = tx  # for the EVE http/dns/tls object of the alert
        return passed

    # -- evaluation --------------------------------------------------------------------
    def _run(self, orders: list[int], p: Packet, fs: FlowDetectState | None, ctx: StreamCtx,
             alerts: list[Signature], tx: Transaction | None = None) -> bool:  # fmt: skip
        """Check candidates in order, appending alerts; True when a pass rule matched."""
        if not orders:
            return False
        self.stats.candidates += len(orders)
        sigs = self._sigs
        env = self._env
        hostbits = self.hostbits
        to_server = p.to_server ^ (fs.app_reversed if fs is not None else False)
        app_buffer = (lambda name: tx_value(tx, name, to_server)) if tx is not None else None
        # A rule on an app protocol without payload keywords sees the protocol as it was
        # known before this packet: Suricata learns it only once the data is acknowledged,
        # so the packet that carries the first request does not match `alert http ...`.
        before, now = self._app_before, app_proto_of(p)
        check = self._check
        # app-layer-protocol (no payload) on TCP sees the alproto of the packet's direction,
        # which Suricata sets once that direction's data was parsed: from its next packet on
        alp_hidden = fs is not None and p.proto == IPPROTO_TCP and not fs.alp_ready
        for order in orders:
            sig = sigs[order]
            self.stats.checked += 1
            if alp_hidden and order in self._alp_gated:
                continue
            app = tx.proto if tx is not None else now if sig.payload is not None else before
            if not check(sig, p, fs, hostbits, env, ctx, app_buffer, app):
                continue
            self.stats.matched += 1
            if order in self._pd_only and fs is not None and not fs.first(order, p.to_server):
                continue  # a protocol-detection-only rule alerts once per flow direction
            if tx is not None and fs is not None:
                fs.tx_done.add((tx.tx_id, order, done_side(tx, to_server)))
            if not self._thresholds_allow(sig, p):
                continue
            self._post_match(sig, p, fs)
            if env.captures and sig.payload is not None and sig.payload.var_kinds:
                apply_captures(env.captures, p, fs.vars if fs is not None else None)
            # Suricata applies pass/drop/reject of IP-only and app-layer rules to the whole
            # flow (first decision wins); the rest of the flow is not inspected.
            flow_wide = sig.action != "alert" and (sig.ip_only or sig.app_proto is not None)
            if flow_wide and fs is not None and fs.action is None:
                fs.action = "pass" if sig.action == "pass" else "drop"
            if sig.bypass and fs is not None and fs.action is None:
                fs.action = "bypass"  # Suricata's local bypass: later packets are skipped
            if sig.action == "pass":
                return True  # Suricata: a matching pass rule ends inspection of the packet
            if not sig.noalert:
                alerts.append(sig)
        return False

    def _check(self, sig: Signature, p: Packet, fs: FlowDetectState | None, hostbits: HostBits,
               env: MatchEnv, ctx: StreamCtx, app_buffer: Any, app: str | None) -> bool:  # fmt: skip
        """The exact check of one rule (one method, so --profile-rules can time it)."""
        if not header_ok(sig, p, fs, hostbits, app):
            return False
        if self._sealed and sig.payload is not None and "pkt_data" in sig.payload.programs:
            return False
        if sig.tx_values:
            for name, test in self._tx_tests[sig.order]:
                value = app_buffer(name) if app_buffer is not None else None
                if value is not None and name in TIMED_VALUES:
                    value = (value, p.ts_sec)
                if value is None or not test(value):
                    return False
        return sig.payload is None or packet_buffers_ok(sig, p, env, ctx, app_buffer)

    def _thresholds_allow(self, s: Signature, p: Packet) -> bool:
        now = p.ts_sec + p.ts_usec / 1e6
        if s.detection_filter is not None and not self.thresholds.allow(
            s.sid, s.gid, s.detection_filter, p, now
        ):
            return False
        if s.threshold is not None and not self.thresholds.allow(s.sid, s.gid, s.threshold, p, now):
            self.stats.suppressed += 1
            return False
        return True

    def _post_match(self, s: Signature, p: Packet, fs: FlowDetectState | None) -> None:
        for op in s.bit_actions:
            if op.kind == "flowbits":
                if fs is not None:
                    bits_apply(fs.bits, op)
                continue
            expiry = p.ts_sec + p.ts_usec / 1e6 + op.expire if op.expire else 0
            for key in host_keys(op, p):
                table = self.hostbits.get(key)
                for name in op.names:
                    if op.op == "set":
                        table[name] = expiry
                    elif op.op == "unset":
                        table.pop(name, None)
                    elif name in table:
                        del table[name]
                    else:
                        table[name] = expiry
        if fs is not None:
            for iop in s.flowint_actions:
                flowint_apply(fs.ints, iop)
