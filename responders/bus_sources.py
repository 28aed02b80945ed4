"""Reading alerts that Suricata's EVE ``redis`` output writes in list or channel mode.

Scope: Suricata can write each EVE record as the bare JSON to a list (``mode: list`` /
``lpush`` pushes at the head, ``rpush`` at the tail) or publish it on a channel
(``mode: channel`` / ``publish``). Its stream mode (``xadd``: one ``eve`` field) needs
nothing special: :class:`responders.bus.AlertConsumer` reads it directly.

:class:`ListSource` takes records oldest first with LMOVE/BLMOVE into a per-consumer
processing list and removes them there on :meth:`ListSource.ack` (the reliable-queue
pattern), so a record is not lost if the responder dies before acting; :meth:`recover`
puts a dead run's leftovers back. :class:`ChannelSource` subscribes: Pub/Sub keeps
nothing, so what is published while no responder listens is lost (Suricata's limitation).
Both yield :class:`BusMessage` with a content-derived idempotency key, so running them
through an :class:`~responders.bus_idempotency.IdempotencyGuard` makes repeats harmless.

Non-goals: consumer groups for lists (Redis has none), writing to Suricata's keys.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from responders.bus_message import BusMessage, MalformedMessage, from_plain_json
from sensor.errors import ConfigError
from sensor.output.redis_conn import RedisSettings, bus_error

LIST_MODES = ("list", "lpush", "rpush")


class ListSource:
    """Oldest-first reader of a Suricata EVE list, with a processing list for safety."""

    def __init__(self, client: Any, settings: RedisSettings, key: str, consumer: str,
                 mode: str = "list", count: int = 100, block_s: float = 1.0) -> None:  # fmt: skip
        if mode not in LIST_MODES:
            raise ConfigError(f"suricata list mode must be one of {', '.join(LIST_MODES)}")
        self._client = client
        self._settings = settings
        self.key = key
        self.processing = f"{key}:processing:{consumer}"
        # LPUSH puts the newest at the head, so the oldest is at the tail; RPUSH the reverse.
        self._take_from = "RIGHT" if mode in ("list", "lpush") else "LEFT"
        self.count = count
        self.block_s = block_s
        self.malformed = 0

    def read(self) -> list[BusMessage]:
        try:
            first = self._client.blmove(self.key, self.processing, self.block_s,
                                        self._take_from, "LEFT")  # fmt: skip
            raws = [] if first is None else [first]
            while first is not None and len(raws) < self.count:
                more = self._client.lmove(self.key, self.processing, self._take_from, "LEFT")
                if more is None:
                    break
                raws.append(more)
        except redis.RedisError as exc:
            raise bus_error(self._settings, exc, f"reading list {self.key}") from exc
        return self._decode(raws)

    def ack(self, message: BusMessage) -> None:
        try:
            self._client.lrem(self.processing, 1, message.raw)
        except redis.RedisError as exc:
            raise bus_error(self._settings, exc, f"acknowledging on {self.processing}") from exc

    def recover(self) -> int:
        """Put records a previous run took but never acknowledged back to be read first."""
        moved = 0
        try:
            # Newest taken first onto the reading end, so the oldest ends up read first again.
            while self._client.lmove(self.processing, self.key, "LEFT", self._take_from):
                moved += 1
        except redis.RedisError as exc:
            raise bus_error(self._settings, exc, f"recovering {self.processing}") from exc
        return moved

    def _decode(self, raws: list[bytes]) -> list[BusMessage]:
        out: list[BusMessage] = []
        for raw in raws:
            try:
                out.append(from_plain_json(f"list:{self.key}", raw))
            except MalformedMessage:
                self.malformed += 1
                self._client.lrem(self.processing, 1, raw)
        return out


class ChannelSource:
    """Subscriber to a Suricata EVE channel (at-most-once: Pub/Sub stores nothing)."""

    def __init__(self, client: Any, settings: RedisSettings, channel: str,
                 count: int = 100, block_s: float = 1.0) -> None:  # fmt: skip
        self._client = client  # kept: redis-py closes the pool when the client is collected
        self._settings = settings
        self.channel = channel
        self.count = count
        self.block_s = block_s
        self.malformed = 0
        try:
            self._pubsub = client.pubsub()
            self._pubsub.subscribe(channel)
            confirmed = self._wait_subscribed(settings.socket_timeout_s)
        except redis.RedisError as exc:
            raise bus_error(settings, exc, f"subscribing to {channel}") from exc
        if not confirmed:
            raise bus_error(settings, TimeoutError("no confirmation"), f"subscribing to {channel}")

    def _wait_subscribed(self, timeout_s: float) -> bool:
        """Wait for the server's confirmation: until then, published records would be missed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            item = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if item is not None and item.get("type") == "subscribe":
                return True
        return False

    def read(self) -> list[BusMessage]:
        out: list[BusMessage] = []
        deadline = time.monotonic() + self.block_s
        try:
            while len(out) < self.count:
                wait = deadline - time.monotonic() if not out else 0.0
                item = self._pubsub.get_message(timeout=max(0.0, wait))
                if item is None:
                    if out or time.monotonic() >= deadline:
                        break
                    continue
                if item.get("type") != "message":
                    continue
                try:
                    out.append(from_plain_json(f"channel:{self.channel}", item["data"]))
                except MalformedMessage:
                    self.malformed += 1
        except redis.RedisError as exc:
            raise bus_error(self._settings, exc, f"reading channel {self.channel}") from exc
        return out

    def ack(self, message: BusMessage) -> None:
        """Nothing to acknowledge on Pub/Sub; present so both sources look alike."""

    def close(self) -> None:
        try:
            self._pubsub.close()
        except redis.RedisError:
            pass
