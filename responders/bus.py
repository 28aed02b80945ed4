"""The responders' side of the alert bus: consumer groups with at-least-once delivery.

Scope: :class:`AlertConsumer` reads alert streams through a Redis consumer group
(XREADGROUP), acknowledges what was handled (XACK), takes over entries a dead consumer left
pending longer than ``claim_idle_ms`` (XAUTOCLAIM), and moves entries delivered
``max_deliveries`` times without success (or unreadable ones) to a dead-letter stream.
:meth:`AlertConsumer.handle` runs an action under an idempotency key (see
:mod:`responders.bus_idempotency`), so a redelivered or replayed alert causes no second
action. Streams written by Suricata's EVE redis output in stream mode are read the same way;
its list and channel modes are in :mod:`responders.bus_sources`.

Every Redis call has a timeout; Redis trouble raises :class:`~sensor.errors.BusError` naming
``host:port``. Non-goals: the actions themselves (firewalls, resets) and process supervision.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from responders.bus_idempotency import IdempotencyGuard, Outcome
from responders.bus_message import BusMessage, MalformedMessage, from_stream_entry
from sensor.errors import BusError, ConfigError
from sensor.output.redis_conn import RedisSettings, bus_error, connect, same_slot_key

log = logging.getLogger(__name__)

Action = Callable[[BusMessage], None]


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class ConsumerConfig:
    """Which streams to read, as which group/consumer, and the redelivery policy."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    streams: tuple[str, ...] = ("sekimori:alerts",)
    group: str = "sekimori-responders"
    consumer: str = field(default_factory=default_consumer_name)
    count: int = 100  # entries per read
    block_ms: int = 1000  # how long one read waits for new entries
    claim_idle_ms: int = 30_000  # pending this long = its consumer is presumed dead
    max_deliveries: int = 5  # after this many deliveries without an ack: dead-letter
    dead_letter_suffix: str = ":dead"  # dead-letter stream = stream + suffix (same slot)
    start_id: str = "0"  # where a new group starts: "0" = all retained entries, "$" = new only
    idempotency_prefix: str = "sekimori:done:"
    idempotency_ttl_s: int = 7 * 86400  # how long "already handled" is remembered

    def __post_init__(self) -> None:
        if not self.streams or not self.group or not self.consumer:
            raise ConfigError("bus consumer: streams, group and consumer must not be empty")
        if self.count < 1 or self.block_ms < 0 or self.claim_idle_ms < 1:
            raise ConfigError("bus consumer: count >= 1, block_ms >= 0, claim_idle_ms >= 1")
        if self.max_deliveries < 1:
            raise ConfigError("bus consumer: max_deliveries must be >= 1")
        # A block longer than the socket timeout would turn every quiet read into an error.
        if self.block_ms / 1000 >= self.redis.socket_timeout_s:
            raise ConfigError(
                f"bus consumer: block_ms ({self.block_ms}) must be shorter than the socket "
                f"timeout ({self.redis.socket_timeout_s} s)"
            )

    def dead_letter_stream(self, stream: str) -> str:
        return same_slot_key(stream, self.dead_letter_suffix)


@dataclass(slots=True)
class ConsumerStats:
    read: int = 0  # entries delivered to this consumer (new + claimed)
    claimed: int = 0  # entries taken over from a dead consumer
    handled: int = 0  # actions run and acknowledged
    duplicates: int = 0  # already handled (by anyone): acknowledged without acting
    busy: int = 0  # being handled by another consumer right now: left pending
    failed: int = 0  # action raised: left pending for redelivery
    dead_lettered: int = 0

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class AlertConsumer:
    """A member of a consumer group on one or more alert streams."""

    def __init__(self, cfg: ConsumerConfig, client: Any = None) -> None:
        self.cfg = cfg
        self.stats = ConsumerStats()
        self._client: Any = client if client is not None else connect(cfg.redis, retries=1)
        self.guard = IdempotencyGuard(
            self._client,
            prefix=cfg.idempotency_prefix,
            owner=cfg.consumer,
            lease_ms=cfg.claim_idle_ms,
            ttl_s=cfg.idempotency_ttl_s,
        )
        self._groups_ready = False

    def ensure_groups(self) -> None:
        """Create the group on every stream (and the stream itself) unless it exists."""
        for stream in self.cfg.streams:
            try:
                self._client.xgroup_create(stream, self.cfg.group, id=self.cfg.start_id,
                                           mkstream=True)  # fmt: skip
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise self._error(exc, f"creating group {self.cfg.group} on {stream}") from exc
            except redis.RedisError as exc:
                raise self._error(exc, f"creating group {self.cfg.group} on {stream}") from exc
        self._groups_ready = True

    # -- reading -------------------------------------------------------------------------

    def read(self) -> list[BusMessage]:
        """Entries to handle: first those a dead consumer left behind, then new ones."""
        if not self._groups_ready:
            self.ensure_groups()
        messages = self.reclaim()
        if len(messages) < self.cfg.count:
            messages.extend(self._read_new(self.cfg.count - len(messages)))
        return messages

    def _read_new(self, count: int) -> list[BusMessage]:
        # One blocking call over all streams, unless in a cluster where streams of different
        # sensors live on different shards: then each is polled with a share of the block time.
        if self.cfg.redis.cluster and len(self.cfg.streams) > 1:
            share = max(1, self.cfg.block_ms // len(self.cfg.streams))
            batches = [self._xreadgroup({s: ">"}, count, share) for s in self.cfg.streams]
            return [m for batch in batches for m in batch]
        return self._xreadgroup({s: ">" for s in self.cfg.streams}, count, self.cfg.block_ms)

    def _xreadgroup(self, streams: dict[str, str], count: int, block_ms: int) -> list[BusMessage]:
        try:
            reply = self._client.xreadgroup(self.cfg.group, self.cfg.consumer, streams,
                                            count=count, block=block_ms or None)  # fmt: skip
        except redis.RedisError as exc:
            raise self._error(exc, f"reading {', '.join(streams)}") from exc
        messages: list[BusMessage] = []
        for stream_name, entries in reply or []:
            stream = _text(stream_name)
            for entry_id, fields in entries:
                message = self._decode(stream, _text(entry_id), fields, 1)
                if message is not None:
                    messages.append(message)
        self.stats.read += len(messages)
        return messages

    def reclaim(self) -> list[BusMessage]:
        """Dead-letter over-delivered entries, then XAUTOCLAIM the rest of the idle ones."""
        messages: list[BusMessage] = []
        for stream in self.cfg.streams:
            try:
                deliveries = self._dead_letter_overdelivered(stream)
                reply = self._client.xautoclaim(stream, self.cfg.group, self.cfg.consumer,
                                                self.cfg.claim_idle_ms, start_id="0-0",
                                                count=self.cfg.count)  # fmt: skip
            except redis.RedisError as exc:
                raise self._error(exc, f"claiming idle entries of {stream}") from exc
            for entry_id, fields in reply[1]:
                if fields is None:  # trimmed away while pending
                    continue
                entry = _text(entry_id)
                # XAUTOCLAIM itself counts as one more delivery.
                message = self._decode(stream, entry, fields, deliveries.get(entry, 0) + 1)
                if message is not None:
                    messages.append(message)
        self.stats.claimed += len(messages)
        self.stats.read += len(messages)
        return messages

    def _dead_letter_overdelivered(self, stream: str) -> dict[str, int]:
        """Move idle entries delivered ``max_deliveries`` times; return the others' counts."""
        pending = self._client.xpending_range(stream, self.cfg.group, min="-", max="+",
                                              count=self.cfg.count,
                                              idle=self.cfg.claim_idle_ms)  # fmt: skip
        counts: dict[str, int] = {}
        for item in pending:
            entry = _text(item["message_id"])
            delivered = int(item["times_delivered"])
            if delivered < self.cfg.max_deliveries:
                counts[entry] = delivered
                continue
            found = self._client.xrange(stream, min=entry, max=entry)
            fields = found[0][1] if found else {}
            self._dead_letter(stream, entry, fields, f"delivered {delivered} times, never acked")
        return counts

    def _decode(self, stream: str, entry: str, fields: dict, deliveries: int) -> BusMessage | None:
        try:
            return from_stream_entry(stream, entry, fields, deliveries)
        except MalformedMessage as exc:
            try:
                self._dead_letter(stream, entry, fields, str(exc))
            except redis.RedisError as rexc:
                raise self._error(rexc, f"dead-lettering {stream} {entry}") from rexc
            return None

    def _dead_letter(self, stream: str, entry: str, fields: dict, reason: str) -> None:
        record = dict(fields)
        record.update({b"origin_stream": stream, b"origin_id": entry, b"reason": reason})
        self._client.xadd(self.cfg.dead_letter_stream(stream), record)
        self._client.xack(stream, self.cfg.group, entry)
        self.stats.dead_lettered += 1
        log.warning("bus: %s entry %s dead-lettered: %s", stream, entry, reason)

    # -- acting --------------------------------------------------------------------------

    def ack(self, message: BusMessage) -> None:
        try:
            self._client.xack(message.source, self.cfg.group, message.id)
        except redis.RedisError as exc:
            raise self._error(exc, f"acknowledging {message.source} {message.id}") from exc

    def handle(self, message: BusMessage, action: Action) -> Outcome:
        """Run ``action`` once per alert across all consumers; ack unless it must be retried."""
        try:
            outcome = self.guard.run(message, action)
        except redis.RedisError as exc:
            raise self._error(exc, f"idempotency key for {message.id}") from exc
        if outcome is Outcome.HANDLED:
            self.stats.handled += 1
        elif outcome is Outcome.DUPLICATE:
            self.stats.duplicates += 1
        elif outcome is Outcome.BUSY:
            self.stats.busy += 1
        else:
            self.stats.failed += 1
        if outcome in (Outcome.HANDLED, Outcome.DUPLICATE):
            self.ack(message)
        return outcome

    def run_once(self, action: Action) -> int:
        """Read one batch and handle each alert; the number of messages read."""
        messages = self.read()
        for message in messages:
            self.handle(message, action)
        return len(messages)

    def close(self) -> None:
        try:
            self._client.close()
        except redis.RedisError:
            pass

    def _error(self, exc: BaseException, doing: str) -> BusError:
        return bus_error(self.cfg.redis, exc, doing)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
