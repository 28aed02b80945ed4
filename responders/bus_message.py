"""One alert as a responder receives it from the bus, whatever wrote it.

Scope: :class:`BusMessage` (the EVE alert, sekimori's response context when present, where it
came from and its idempotency key) and the decoding of the layouts that reach a responder:
sekimori's stream entries (``eve`` + ``sensor`` + ``seq`` fields) and Suricata's EVE
``redis`` output (stream mode: one ``eve`` field; list and channel modes: the bare JSON).

Non-goals: validating the EVE schema beyond "a JSON object"; acting on alerts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson


class MalformedMessage(ValueError):
    """An entry on the bus that is not an EVE JSON object (dead-lettered, never acted on)."""


@dataclass(frozen=True)
class BusMessage:
    """An alert read from the bus. ``source`` names the stream/list/channel it came from."""

    source: str
    id: str  # stream entry id, or a content-derived id for list/channel messages
    eve: dict[str, Any]
    raw: bytes  # the JSON exactly as received
    idempotency_key: str
    sensor: str | None = None
    deliveries: int = 1

    @property
    def context(self) -> dict[str, Any] | None:
        """sekimori's response context (5-tuple, TCP state, action, mode); None from Suricata."""
        value = self.eve.get("sekimori")
        return value if isinstance(value, dict) else None

    @property
    def signature_id(self) -> int | None:
        alert = self.eve.get("alert")
        sid = alert.get("signature_id") if isinstance(alert, dict) else None
        return sid if isinstance(sid, int) else None


def decode_json(raw: bytes) -> dict[str, Any]:
    """The EVE object in ``raw``; :class:`MalformedMessage` when it is not one."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessage(f"not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedMessage("JSON is not an object")
    return value


def content_key(raw: bytes) -> str:
    """An idempotency key from the bytes: the same alert written twice gets the same key."""
    return "h:" + hashlib.blake2b(raw, digest_size=16).hexdigest()


def from_stream_entry(
    source: str, entry_id: str, fields: dict[bytes, bytes], deliveries: int = 1
) -> BusMessage:
    """A message from a stream entry written by sekimori or by Suricata (``eve`` field)."""
    raw = fields.get(b"eve")
    if raw is None:
        raise MalformedMessage(f"{source} entry {entry_id} has no 'eve' field")
    sensor = fields.get(b"sensor")
    seq = fields.get(b"seq")
    sensor_text = sensor.decode("utf-8", "replace") if sensor is not None else None
    if sensor_text is not None and seq is not None:
        # The publisher's (sensor, seq) survives spooling and replay, unlike the entry id.
        key = f"s:{sensor_text}:{seq.decode('ascii', 'replace')}"
    else:
        key = content_key(raw)
    return BusMessage(
        source=source,
        id=entry_id,
        eve=decode_json(raw),
        raw=raw,
        idempotency_key=key,
        sensor=sensor_text,
        deliveries=deliveries,
    )


def from_plain_json(source: str, raw: bytes) -> BusMessage:
    """A message from Suricata's list or channel mode (the value is the EVE JSON itself)."""
    key = content_key(raw)
    return BusMessage(source=source, id=key, eve=decode_json(raw), raw=raw, idempotency_key=key)
