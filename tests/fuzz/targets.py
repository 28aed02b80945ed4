"""Fuzz targets: every parser that takes outside input, as ``bytes -> None`` functions.

Scope: one :class:`Target` per parser (packet decoders with the flow table and detection
behind them, the capture reader, the rule parser and builder, the HTTP/DNS/TLS parsers, the
alert records a responder reads from Redis), the exceptions each is allowed to raise (its
documented error: ``CaptureError``, ``RuleError``, ``MalformedMessage``; anything else is a
crash), and seed builders drawing on real inputs (``../shared/pcaps``, ``../shared/conformance``,
``tests/data``). The same targets run under atheris (``tests/fuzz/run.py``, ``make fuzz``)
and, without atheris, over their seeds and saved crash inputs in the test suite
(tests/test_robust_fuzz.py).

Non-goals: defining parser behaviour; only "no crash, no hang" is checked here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from responders.bus_message import (
    BusMessage,
    MalformedMessage,
    from_plain_json,
    from_stream_entry,
)
from sensor.applayer import AppLayer, AppLayerSettings
from sensor.capture import open_capture
from sensor.config import DEFAULT_ADDRESS_GROUPS, DEFAULT_PORT_GROUPS, Config
from sensor.decode import Decoder
from sensor.detect import Detector
from sensor.errors import CaptureError, RuleError
from sensor.flow import FlowTable
from sensor.packet import Packet
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.loader import load_rule_text
from signatures.ruleset import SUPPORTED_BUFFERS, load_ruleset
from signatures.variables import Variables

TESTS = Path(__file__).resolve().parent.parent
SHARED = TESTS.parent.parent / "shared"
LINKTYPES = (1, 0, 12, 14, 101, 113, 228, 229, 276, 108)
MAX_SEED = 64 * 1024


def variables() -> Variables:
    return Variables(
        address_groups=dict(DEFAULT_ADDRESS_GROUPS), port_groups=dict(DEFAULT_PORT_GROUPS)
    )


@dataclass
class Target:
    """A fuzz target: ``one_input`` raises only ``allowed`` on bad input."""

    name: str
    one_input: Callable[[bytes], None]
    seeds: Callable[[], Iterator[bytes]]
    allowed: tuple[type[BaseException], ...] = field(default=())

    def run(self, data: bytes) -> None:
        try:
            self.one_input(data)
        except self.allowed:
            pass


# ---------------------------------------------------------------- seed sources


def capture_files(limit_bytes: int = 2 * 1024 * 1024) -> list[Path]:
    """The project's and the shared captures (small ones only: seeds must stay fast)."""
    found = [TESTS / "data" / "demo.pcap"]
    found += sorted((SHARED / "pcaps" / "attacks").glob("*.pcap"))
    found += sorted((SHARED / "conformance").glob("*/input.pcap"))
    return [p for p in found if p.is_file() and p.stat().st_size <= limit_bytes]


def decoded_packets(per_file: int = 40) -> Iterator[Packet]:
    for path in capture_files():
        try:
            cap = open_capture(str(path))
        except CaptureError:
            continue
        decoder = Decoder()
        for i, (sec, usec, linktype, data, _wire) in enumerate(cap):
            if i >= per_file:
                cap.close()
                break
            p = Packet(i + 1, sec, usec, linktype, data)
            decoder.decode(p)
            yield p


def rule_files() -> list[Path]:
    found = [TESTS / "data" / "demo.rules"]
    found += sorted((SHARED / "conformance").glob("*/test.rules"))
    found += sorted((SHARED / "rules" / "et-open").glob("*.rules"))[:6]
    return [p for p in found if p.is_file()]


# ---------------------------------------------------------------- packets


class PacketPath:
    """Decode → flow/stream → detection with the demo rules, as the sensor's loop does."""

    def __init__(self) -> None:
        cache = os.path.join(tempfile.gettempdir(), "sekimori-fuzz-cache")
        ruleset, _ = load_ruleset([str(TESTS / "data" / "demo.rules")], variables(),
                                  cache_dir=cache)  # fmt: skip
        config = Config(sensor_id="fuzz")
        self.decoder = Decoder()
        self.flows = FlowTable(config.flow, config.stream)
        self.detector = Detector(ruleset)
        self.count = 0

    def one_input(self, data: bytes) -> None:
        if not data:
            return
        self.count += 1
        # timestamps advance so flows and fragments also time out under the fuzzer
        p = Packet(self.count, self.count // 50, 0, LINKTYPES[data[0] % len(LINKTYPES)], data[1:])
        extra = self.decoder.decode(p)
        for q in (p, extra):
            if q is None or q.bad:
                continue
            if q.ipver and (q.l4_off >= 0 or q.proto not in (6, 17, 1, 58)) and not q.frag:
                self.flows.process(q)
            self.detector.inspect(q)
        if self.count % 50 == 0:
            for f in self.flows.expire(p.ts_sec):
                self.detector.flow_end(f, p.ts_sec, 0)


def packet_seeds() -> Iterator[bytes]:
    for p in decoded_packets():
        lt = LINKTYPES.index(p.linktype) if p.linktype in LINKTYPES else 0
        yield bytes([lt]) + p.data[:MAX_SEED]


# ---------------------------------------------------------------- capture files


def capture_input(data: bytes) -> None:
    fd, path = tempfile.mkstemp(prefix="sekimori-fuzz-", suffix=".pcap", dir=_scratch_dir())
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        cap = open_capture(path)
        for _record in cap:
            pass
    finally:
        os.unlink(path)


def _scratch_dir() -> str:
    return "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()


def capture_seeds() -> Iterator[bytes]:
    for path in capture_files(limit_bytes=MAX_SEED):
        yield path.read_bytes()


# ---------------------------------------------------------------- rules


class RulePath:
    """Rule text → loader (includes, continuation lines) → parser → signature builder."""

    def __init__(self) -> None:
        self.variables = variables()
        self.builder = SignatureBuilder(Classifications.load(None), SUPPORTED_BUFFERS)

    def one_input(self, data: bytes) -> None:
        text = data.decode("utf-8", "replace")
        loaded = load_rule_text(text, self.variables)
        for parsed in loaded.rules:
            if parsed.enabled:
                try:
                    self.builder.build(parsed)
                except RuleError:
                    pass


def rule_seeds() -> Iterator[bytes]:
    for path in rule_files():
        lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()[:1] not in (b"", b"#")]
        for i in range(0, min(len(lines), 400), 4):
            yield b"\n".join(lines[i : i + 4])


# ---------------------------------------------------------------- application layer


def feed_both(proto: int, port: int, ts: bytes, tc: bytes, step: int,
              field_limit: int = 2048) -> AppLayer:  # fmt: skip
    """Both directions into one app-layer parser, interleaved in ``step``-byte chunks, then
    closed, with every finished transaction's EVE fields built (as the sensor would)."""
    al = AppLayer(AppLayerSettings(field_limit=field_limit), proto, 40000, port)
    for i in range(0, max(len(ts), len(tc)), step):
        al.feed(True, ts[i : i + step], 0)
        al.feed(False, tc[i : i + step], 0)
    al.close()
    for tx in al.pop_ready():
        al.eve_fields(tx)
    return al


def applayer_input(proto: int, port: int) -> Callable[[bytes], None]:
    """Split the input at its first byte's value into to-server and to-client data, then
    feed both in chunks sized by the second byte (segmentation must not matter)."""

    def one_input(data: bytes) -> None:
        if len(data) < 2:
            return
        cut = 2 + data[0] * len(data) // 256
        feed_both(proto, port, data[2:cut], data[cut:], 1 + data[1] % 97)

    return one_input


def applayer_seeds(proto: int, port: int) -> Callable[[], Iterator[bytes]]:
    def seeds() -> Iterator[bytes]:
        ts: dict[tuple, bytearray] = {}
        tc: dict[tuple, bytearray] = {}
        for p in decoded_packets(per_file=200):
            if p.proto != proto or not p.payload or port not in (p.sport, p.dport):
                continue
            key = (
                (p.src, p.dst, p.sport, p.dport)
                if p.dport == port
                else (p.dst, p.src, p.dport, p.sport)
            )
            side = ts if p.dport == port else tc
            side.setdefault(key, bytearray()).extend(p.payload)
        for key, up in ts.items():
            down = bytes(tc.get(key, b""))[: MAX_SEED // 2]
            up_b = bytes(up)[: MAX_SEED // 2]
            total = len(up_b) + len(down) or 1
            yield bytes([min(255, 256 * len(up_b) // total), 0]) + up_b + down

    return seeds


# ---------------------------------------------------------------- bus records


def bus_input(data: bytes) -> None:
    """Fields of a stream entry (``name\\0value\\0...``) and the same bytes as list/channel JSON."""
    parts = data.split(b"\x00")
    fields = dict(zip(parts[0::2], parts[1::2]))
    for msg in _bus_messages(fields, data):
        _ = (msg.context, msg.signature_id, msg.idempotency_key)


def _bus_messages(fields: dict[bytes, bytes], data: bytes) -> Iterator[BusMessage]:
    for build in (
        lambda: from_stream_entry("s", "1-0", fields),
        lambda: from_plain_json("l", data),
    ):
        try:
            yield build()
        except MalformedMessage:
            pass


def bus_seeds() -> Iterator[bytes]:
    found = sorted((SHARED / "pcaps" / "attacks").glob("*.suricata-alerts.json"))
    found += sorted((SHARED / "conformance").glob("*/expected.json"))[:40]
    for path in found:
        try:
            alerts = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError:
            continue
        for alert in alerts[:3] if isinstance(alerts, list) else ():
            eve = orjson.dumps(
                {"event_type": "alert", "alert": alert, "sekimori": {"mode": "detect"}}
            )
            yield b"eve\x00" + eve + b"\x00sensor\x00s1\x00seq\x00" + str(len(eve)).encode()
            yield eve


# ---------------------------------------------------------------- the table


def targets() -> dict[str, Callable[[], Target]]:
    """Factories, so a fuzzing process builds only the target it runs."""
    return {
        "decode": lambda: Target("decode", PacketPath().one_input, packet_seeds),
        "capture": lambda: Target("capture", capture_input, capture_seeds, (CaptureError,)),
        "rules": lambda: Target("rules", RulePath().one_input, rule_seeds, (RuleError,)),
        "http": lambda: Target("http", applayer_input(6, 80), applayer_seeds(6, 80)),
        "dns": lambda: Target("dns", applayer_input(17, 53), applayer_seeds(17, 53)),
        "tls": lambda: Target("tls", applayer_input(6, 443), applayer_seeds(6, 443)),
        "bus": lambda: Target("bus", bus_input, bus_seeds),
    }
