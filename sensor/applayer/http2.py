"""HTTP/2 in clear text (h2c) over the two reassembled directions of one TCP connection.

Scope: the client connection preface, RFC 7540 framing in any slicing (DATA, HEADERS +
CONTINUATION, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE;
padding removed), HPACK decoding with one dynamic table per direction whose size follows the
peer's SETTINGS_HEADER_TABLE_SIZE, one transaction per stream as Suricata 7 makes them
(frames on stream 0 each get a transaction of their own, Suricata's "global" transactions),
and the switch from HTTP/1 after ``Upgrade: h2c`` answered by ``101`` (the upgrade request
becomes stream 1). Buffers and EVE fields come from ``http2_tx.py``.

Bounds: frames longer than ``MAX_FRAME`` are skipped, a header block (HEADERS and its
CONTINUATIONs) is held up to ``MAX_HEADER_BLOCK`` bytes, the decoded header list of a block
up to ``MAX_HEADER_LIST``, the dynamic tables to 64 KiB, open streams to ``max_transactions``
(the oldest is dropped). Anomalies are Suricata's ``http2.*`` event names; a broken preface
or an undecodable header block stops that direction (the HPACK context is lost).

Non-goals: TLS (h2 over ALPN), flow control accounting, stream state validation, server push
bodies, ``http2.*`` events beyond the few named here.
"""

from __future__ import annotations

from collections.abc import Callable

from sensor.applayer.common import (
    PROGRESS_BODY,
    PROGRESS_COMPLETE,
    PROGRESS_HEADERS,
    AppLayerSettings,
    Transaction,
)
from sensor.applayer.hpack import HpackDecoder
from sensor.applayer.http2_tx import Frame, Http2TxData, header_buffers
from sensor.applayer.http_body import BodySink, codings_of

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_FRAME = 1 << 20
MAX_HEADER_BLOCK = 256 * 1024
MAX_HEADER_LIST = 64 * 1024

T_DATA, T_HEADERS, T_PRIORITY, T_RST, T_SETTINGS, T_PUSH, T_PING, T_GOAWAY, T_WINDOW, T_CONT = (
    range(10)
)
F_END_STREAM, F_END_HEADERS, F_PADDED, F_PRIORITY = 0x1, 0x4, 0x8, 0x20


class _Side:
    __slots__ = ("block", "block_frame", "buf", "decoder", "preface", "skip", "stopped")

    def __init__(self, preface: bool) -> None:
        self.buf = bytearray()
        self.preface = preface  # the client preface is still expected
        self.stopped = False
        self.skip = 0  # bytes of an oversized frame still to drop
        self.decoder = HpackDecoder()  # decodes the header blocks this side sends
        self.block = bytearray()  # header block fragments waiting for END_HEADERS
        # the block's first frame: type, stream, priority weight, END_STREAM flag
        self.block_frame: tuple[int, int, int | None, bool] | None = None


class Http2Parser:
    """Both directions of one h2c connection. ``on_update(tx)`` is called for every change."""

    def __init__(self, cfg: AppLayerSettings, on_update: Callable[[Transaction], None],
                 first_id: int = 0, preface: bool = True) -> None:  # fmt: skip
        self.cfg = cfg
        self._on_update = on_update
        self._ts = _Side(preface)
        self._tc = _Side(False)
        self._next_id = first_id
        self._streams: dict[int, Transaction] = {}  # open streams, oldest first
        self.events: list[str] = []

    def upgraded(self, method: bytes, target: bytes) -> None:
        """The HTTP/1 request that asked for h2c is stream 1 (its response comes as
        HTTP/2 on that stream), as Suricata carries it over."""
        tx = self._stream(1)
        assert isinstance(tx.state, Http2TxData)
        tx.state.add(True, Frame(T_HEADERS, 1, headers=((b":method", method), (b":path", target))))
        header_buffers(tx, tx.state, True)
        self._done(tx, True)

    # ---------------------------------------------------------------- input
    def feed(self, to_server: bool, data: bytes) -> None:
        side = self._ts if to_server else self._tc
        if side.stopped or not data:
            return
        if side.skip:
            dropped = min(side.skip, len(data))
            side.skip -= dropped
            data = data[dropped:]
        side.buf += data
        if side.preface:
            have = bytes(side.buf[: len(PREFACE)])
            if not PREFACE.startswith(have):
                self._stop(side, "http2.invalid_preface")
                return
            if len(have) < len(PREFACE):
                return
            del side.buf[: len(PREFACE)]
            side.preface = False
        pos = 0
        buf = side.buf
        while not side.stopped and len(buf) - pos >= 9:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            ftype, flags = buf[pos + 3], buf[pos + 4]
            stream = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            if length > MAX_FRAME:
                self.events.append("http2.frame_length_mismatch")
                side.skip = max(0, length - (len(buf) - pos - 9))
                pos = len(buf)
                break
            if len(buf) - pos - 9 < length:
                break
            payload = bytes(buf[pos + 9 : pos + 9 + length])
            pos += 9 + length
            self._frame(side, to_server, ftype, flags, stream, payload)
        del buf[:pos]

    def _stop(self, side: _Side, event: str) -> None:
        self.events.append(event)
        side.stopped = True
        side.buf.clear()

    # --------------------------------------------------------------- frames
    def _frame(self, side: _Side, to_server: bool, ftype: int, flags: int, stream: int,
               payload: bytes) -> None:  # fmt: skip
        if side.block_frame is not None and ftype != T_CONT:
            self.events.append("http2.invalid_frame_header")  # CONTINUATION expected
            side.block_frame = None
            side.block.clear()
        if ftype in (T_DATA, T_HEADERS, T_PUSH) and flags & F_PADDED:
            if not payload or payload[0] >= len(payload):
                self.events.append("http2.invalid_frame_length")
                return
            payload = payload[1 : len(payload) - payload[0]]
        if ftype == T_DATA:
            self._data(to_server, flags, stream, payload)
        elif ftype in (T_HEADERS, T_PUSH):
            weight = None
            if ftype == T_HEADERS and flags & F_PRIORITY:
                if len(payload) < 5:
                    self.events.append("http2.invalid_frame_length")
                    return
                weight, payload = payload[4], payload[5:]
            if ftype == T_PUSH:  # the promised stream's id precedes the block
                payload = payload[4:]
            side.block_frame = (ftype, stream, weight, bool(flags & F_END_STREAM))
            side.block[:] = payload
            self._block_end(side, to_server, flags)
        elif ftype == T_CONT:
            if side.block_frame is None or side.block_frame[1] != stream:
                self.events.append("http2.invalid_frame_header")
                return
            side.block += payload
            self._block_end(side, to_server, flags)
        else:
            self._control(side, to_server, ftype, stream, payload)

    def _control(self, side: _Side, to_server: bool, ftype: int, stream: int,
                 payload: bytes) -> None:  # fmt: skip
        frame: Frame
        if ftype == T_PRIORITY and len(payload) == 5:
            frame = Frame(ftype, stream, weight=payload[4])
        elif ftype == T_RST and len(payload) == 4:
            frame = Frame(ftype, stream, error_code=int.from_bytes(payload, "big"))
        elif ftype == T_GOAWAY and len(payload) >= 8:
            frame = Frame(ftype, stream, error_code=int.from_bytes(payload[4:8], "big"))
        elif ftype == T_WINDOW and len(payload) == 4:
            frame = Frame(ftype, stream, window=int.from_bytes(payload, "big") & 0x7FFFFFFF)
        elif ftype == T_SETTINGS and len(payload) % 6 == 0:
            settings = tuple(
                (int.from_bytes(payload[i : i + 2], "big"),
                 int.from_bytes(payload[i + 2 : i + 6], "big"))
                for i in range(0, len(payload), 6)
            )  # fmt: skip
            for ident, value in settings:
                if ident == 1:  # the sender's decoder size bounds the peer's encoder
                    peer = self._tc if to_server else self._ts
                    peer.decoder.set_settings_max(value)
            frame = Frame(ftype, stream, settings=settings)
        elif ftype in (T_PRIORITY, T_RST, T_GOAWAY, T_WINDOW, T_SETTINGS):
            self.events.append("http2.invalid_frame_length")
            return
        else:  # PING and unknown types: only their type is of interest
            frame = Frame(ftype, stream)
        tx = self._global() if stream == 0 else self._stream(stream)
        data = tx.state
        assert isinstance(data, Http2TxData)
        data.add(to_server, frame)
        # a global transaction has nothing more to come; RST_STREAM ends its stream
        if stream == 0 or ftype == T_RST:
            self._done(tx, True)
            self._done(tx, False)
        else:
            self._on_update(tx)

    def _block_end(self, side: _Side, to_server: bool, flags: int) -> None:
        if len(side.block) > MAX_HEADER_BLOCK:
            self._stop(side, "http2.invalid_header")  # the HPACK context cannot be kept
            return
        if not flags & F_END_HEADERS:
            return
        assert side.block_frame is not None
        ftype, stream, weight, end_stream = side.block_frame
        side.block_frame = None
        block = side.decoder.decode(bytes(side.block), MAX_HEADER_LIST)
        side.block.clear()
        tx = self._stream(stream) if stream else self._global()
        data = tx.state
        assert isinstance(data, Http2TxData)
        data.add(to_server, Frame(ftype, stream, weight=weight,
                                  size_updates=block.size_updates, headers=block.headers))  # fmt: skip
        header_buffers(tx, data, to_server)
        if block.error is not None:
            tx.events.append("http2.invalid_header")
            if block.error != "header_list_too_large":
                side.stopped = True  # the dynamic table may be out of step from here on
        if to_server:
            tx.progress_ts = max(tx.progress_ts, PROGRESS_HEADERS)
        else:
            tx.progress_tc = max(tx.progress_tc, PROGRESS_HEADERS)
            encoding = next((v for n, v in block.headers if n == b"content-encoding"), None)
            if data.resp_body is None and encoding is not None:
                data.resp_body = self._sink(False, encoding)
        if ftype == T_HEADERS and end_stream:
            self._done(tx, to_server)
        else:
            self._on_update(tx)

    def _sink(self, to_server: bool, encoding: bytes | None) -> BodySink:
        cfg = self.cfg
        if to_server:
            return BodySink([], cfg.request_body_limit)
        codings, events = codings_of(encoding) if cfg.decompress else ([], [])
        self.events.extend(events)
        return BodySink(codings, cfg.response_body_limit, cfg.decompress_layer_limit,
                        cfg.decompression_limit)  # fmt: skip

    def _data(self, to_server: bool, flags: int, stream: int, payload: bytes) -> None:
        if stream == 0:
            self.events.append("http2.stream_id_reuse")
            return
        tx = self._stream(stream)
        data = tx.state
        assert isinstance(data, Http2TxData)
        data.add(to_server, Frame(T_DATA, stream))
        if to_server:
            data.req_body = data.req_body or self._sink(True, None)
            data.req_body.add(payload)
            tx.progress_ts = max(tx.progress_ts, PROGRESS_BODY)
        else:
            data.resp_body = data.resp_body or self._sink(False, None)
            data.resp_body.add(payload)
            tx.progress_tc = max(tx.progress_tc, PROGRESS_BODY)
        if flags & F_END_STREAM:
            self._done(tx, to_server)
        else:
            self._on_update(tx)

    # --------------------------------------------------------- transactions
    def _new_tx(self, stream: int) -> Transaction:
        tx = Transaction(self._next_id, "http2")
        self._next_id += 1
        tx.state = Http2TxData(stream)
        return tx

    def _global(self) -> Transaction:
        return self._new_tx(0)  # not kept: one frame each, complete at once

    def _stream(self, stream: int) -> Transaction:
        tx = self._streams.get(stream)
        if tx is None:
            if len(self._streams) >= self.cfg.max_transactions:
                oldest = next(iter(self._streams))
                del self._streams[oldest]
                self.events.append("http2.too_many_streams")
            tx = self._streams[stream] = self._new_tx(stream)
        return tx

    def _done(self, tx: Transaction, to_server: bool) -> None:
        if to_server:
            tx.progress_ts, tx.to_server_done = PROGRESS_COMPLETE, True
        else:
            tx.progress_tc, tx.to_client_done = PROGRESS_COMPLETE, True
        data = tx.state
        if isinstance(data, Http2TxData) and tx.to_server_done and tx.to_client_done:
            if data.stream_id and self._streams.get(data.stream_id) is tx:
                del self._streams[data.stream_id]
            if "file.size" not in tx.values and data.resp_body is not None:
                tx.values["file.size"] = len(data.resp_body.data)
        self._on_update(tx)
