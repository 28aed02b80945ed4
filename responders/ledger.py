"""The block ledger in Redis: the one source of truth every firewall is made to agree with.

Scope: every block (address or CIDR, reason, provenance: sid/rev/gid, ruleset, flow id,
first and last evidence; created, expires, hit count, ladder level, target firewalls and
their object ids), its history, pinned allows, refusals, the pause flag and the rate
counters of the safety rails. Creating a block is one server-side script, so several
responder processes never create two active blocks for one address and the per-minute and
per-subnet limits hold across all of them.

Keys (``P`` = ``BlockConfig.key_prefix``, hash-tagged so one cluster slot holds them all):
``P:block:<cidr>`` hash (current or last block), ``P:active`` zset cidr→expiry (``inf``:
permanent), ``P:history:<cidr>`` list of ended blocks (JSON, newest first, 20 kept),
``P:allow`` hash cidr→pin, ``P:refusal:<cidr>`` last refusal, ``P:pause`` why blocking is
paused (expires by itself), ``P:rate:m:<minute>`` / ``P:rate:n:<subnet>`` counters,
``P:events`` stream of decisions, ``P:stats:<target>`` reconciliation stats, ``P:meta``
the ledger's identity (its absence means the ledger was lost: see reconcile.py).

Non-goals: deciding whether an alert may block (safety.py, blocking.py) and talking to
firewalls (the block responders, reconcile.py). Raises BusError on any Redis failure.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

from responders.block_config import BlockConfig
from sensor.errors import BusError
from sensor.output.redis_conn import bus_error, connect

HISTORY_KEPT = 20
EVENTS_MAXLEN = 50_000

# Create-or-hit, atomically. Returns {status, detail}: status is exists | paused | tripped
# | created. Rate counters count only new blocks; the call that trips a limit sets the
# pause and is the only one told "tripped" (so exactly one alert is raised per trip).
_UPSERT = """
local block, active, pause, rate_m, rate_n = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local cidr, now = ARGV[1], tonumber(ARGV[2])
local record = cjson.decode(ARGV[3])
local ladder = cjson.decode(ARGV[4])
local memory, max_m, max_n = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local window, pause_s, subnet = tonumber(ARGV[8]), tonumber(ARGV[9]), ARGV[10]
local exp = redis.call('ZSCORE', active, cidr)
if exp and (exp == 'inf' or tonumber(exp) > now) then
  redis.call('HINCRBY', block, 'hits', 1)
  redis.call('HSET', block, 'last_evidence', record['last_evidence'], 'last_seen', now)
  return {'exists', redis.call('HGET', block, 'block_id') or ''}
end
local paused = redis.call('GET', pause)
if paused then return {'paused', paused} end
local m = redis.call('INCR', rate_m)
if m == 1 then redis.call('EXPIRE', rate_m, 120) end
local why = nil
if max_m > 0 and m > max_m then
  why = 'more than ' .. max_m .. ' new blocks in one minute'
else
  local n = redis.call('INCR', rate_n)
  if n == 1 then redis.call('EXPIRE', rate_n, math.max(1, math.floor(window))) end
  if max_n > 0 and n > max_n then
    why = 'more than ' .. max_n .. ' new blocks in ' .. subnet .. ' within ' .. window .. ' s'
  end
end
if why then
  redis.call('DECR', rate_m)
  if redis.call('SET', pause, why, 'NX', 'EX', math.max(1, math.floor(pause_s))) then
    return {'tripped', why}
  end
  return {'paused', redis.call('GET', pause) or why}
end
local level = 0
local prev_level = tonumber(redis.call('HGET', block, 'level') or '-1')
local prev_end = tonumber(redis.call('HGET', block, 'ended') or redis.call('HGET', block, 'expires') or '0')
if prev_level >= 0 and now - prev_end <= memory then level = prev_level + 1 end
if level > #ladder - 1 then level = #ladder - 1 end
local expires = now + ladder[level + 1]
redis.call('DEL', block)
record['level'] = level
record['expires'] = expires
for k, v in pairs(record) do redis.call('HSET', block, k, v) end
redis.call('PERSIST', block)
redis.call('ZADD', active, expires, cidr)
return {'created', record['block_id']}
"""


@dataclass(frozen=True)
class Block:
    """One block as the ledger holds it."""

    block_id: str
    cidr: str
    reason: str
    origin: str  # alert | manual | recovered
    created: float
    expires: float | None  # None: until removed
    level: int = 0  # ladder step
    hits: int = 1
    state: str = "active"  # active | expired | removed
    sid: int | None = None
    gid: int | None = None
    rev: int | None = None
    ruleset: str | None = None
    flow_id: int | None = None
    sensor: str | None = None
    first_evidence: Mapping[str, Any] = field(default_factory=dict)
    last_evidence: Mapping[str, Any] = field(default_factory=dict)
    targets: Mapping[str, str] = field(default_factory=dict)  # target → object id
    ended: float | None = None
    end_reason: str = ""

    def to_fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, Mapping):
                out[name] = json.dumps(dict(value), sort_keys=True)
            else:
                out[name] = str(value)
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[Any, Any]) -> Block:
        f = {_text(k): _text(v) for k, v in raw.items()}

        def num(name: str) -> int | None:
            return int(float(f[name])) if f.get(name) not in (None, "") else None

        def real(name: str) -> float | None:
            value = f.get(name)
            if value in (None, "", "inf"):
                return None
            return float(value)

        return cls(
            block_id=f.get("block_id", ""),
            cidr=f.get("cidr", ""),
            reason=f.get("reason", ""),
            origin=f.get("origin", "alert"),
            created=real("created") or 0.0,
            expires=real("expires"),
            level=num("level") or 0,
            hits=num("hits") or 0,
            state=f.get("state", "active"),
            sid=num("sid"),
            gid=num("gid"),
            rev=num("rev"),
            ruleset=f.get("ruleset"),
            flow_id=num("flow_id"),
            sensor=f.get("sensor"),
            first_evidence=_json(f.get("first_evidence")),
            last_evidence=_json(f.get("last_evidence")),
            targets=_json(f.get("targets")),
            ended=real("ended"),
            end_reason=f.get("end_reason", ""),
        )


@dataclass(frozen=True)
class UpsertResult:
    status: str  # created | exists | paused | tripped
    detail: str  # block id, or why blocking is paused


def new_block_id() -> str:
    return uuid.uuid4().hex[:16]


class Ledger:
    """Typed access to the ledger keys. Every method raises BusError when Redis fails."""

    def __init__(self, cfg: BlockConfig, client: Any = None) -> None:
        self.cfg = cfg
        self.client: Any = client if client is not None else connect(cfg.redis)
        self._upsert = self.client.register_script(_UPSERT)

    def key(self, *parts: str) -> str:
        return ":".join((self.cfg.key_prefix, *parts))

    @contextmanager
    def _redis(self, doing: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise bus_error(self.cfg.redis, exc, doing) from exc

    # -- identity ------------------------------------------------------------------------

    def ensure_meta(self) -> str:
        """The ledger's id, created on first use."""
        with self._redis("reading the ledger identity"):
            self.client.hsetnx(self.key("meta"), "id", new_block_id())
            self.client.hsetnx(self.key("meta"), "created", str(time.time()))
            return _text(self.client.hget(self.key("meta"), "id"))

    def meta_id(self) -> str | None:
        with self._redis("reading the ledger identity"):
            value = self.client.hget(self.key("meta"), "id")
        return _text(value) if value is not None else None

    # -- blocks --------------------------------------------------------------------------

    def upsert(self, block: Block, subnet: str, now: float) -> UpsertResult:
        """Create ``block`` (its level and expiry from the ladder) unless one is active."""
        record = block.to_fields()
        minute = str(int(now // 60))
        keys = [
            self.key("block", block.cidr),
            self.key("active"),
            self.key("pause"),
            self.key("rate", "m", minute),
            self.key("rate", "n", subnet),
        ]
        args = [
            block.cidr,
            repr(now),
            json.dumps(record),
            json.dumps(list(self.cfg.ladder)),
            self.cfg.escalation_memory_s,
            self.cfg.max_per_minute,
            self.cfg.max_per_subnet,
            self.cfg.subnet_window_s,
            self.cfg.pause_s,
            subnet,
        ]
        with self._redis(f"recording the block of {block.cidr}"):
            status, detail = self._upsert(keys=keys, args=args)
        return UpsertResult(_text(status), _text(detail))

    def put(self, block: Block) -> None:
        """Write ``block`` as the active block of its CIDR, whatever was there (manual add)."""
        score = "inf" if block.expires is None else repr(block.expires)
        with self._redis(f"writing the block of {block.cidr}"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(self.key("block", block.cidr))
            pipe.hset(self.key("block", block.cidr), mapping=block.to_fields())
            pipe.zadd(self.key("active"), {block.cidr: score})
            pipe.hdel(self.key("allow"), block.cidr)
            pipe.execute()

    def get(self, cidr: str) -> Block | None:
        with self._redis(f"reading the block of {cidr}"):
            raw = self.client.hgetall(self.key("block", cidr))
        return Block.from_fields(raw) if raw else None

    def active(self, now: float) -> dict[str, float | None]:
        """Every active, unexpired block: cidr → expiry (None: permanent)."""
        with self._redis("reading the active blocks"):
            rows = self.client.zrangebyscore(
                self.key("active"), f"({now!r}", "+inf", withscores=True
            )
        return {_text(c): (None if math.isinf(s) else float(s)) for c, s in rows}

    def active_blocks(self, now: float) -> list[Block]:
        cidrs = list(self.active(now))
        with self._redis("reading the active blocks"):
            pipe = self.client.pipeline(transaction=False)
            for cidr in cidrs:
                pipe.hgetall(self.key("block", cidr))
            rows = pipe.execute()
        return [Block.from_fields(raw) for raw in rows if raw]

    def add_hits(self, hits: Mapping[str, int], last_seen: float) -> None:
        """Count coalesced repeats on blocks that still exist."""
        if not hits:
            return
        with self._redis("counting hits"):
            pipe = self.client.pipeline(transaction=False)
            for cidr in hits:
                pipe.exists(self.key("block", cidr))
            present = pipe.execute()
            pipe = self.client.pipeline(transaction=False)
            for (cidr, n), there in zip(hits.items(), present):
                if there:
                    pipe.hincrby(self.key("block", cidr), "hits", n)
                    pipe.hset(self.key("block", cidr), "last_seen", repr(last_seen))
            pipe.execute()

    def set_target(self, cidr: str, target: str, object_id: str) -> None:
        block = self.get(cidr)
        if block is None:
            return
        targets = {**block.targets, target: object_id}
        with self._redis(f"recording the firewall object of {cidr}"):
            self.client.hset(self.key("block", cidr), "targets", json.dumps(targets))

    def end(self, cidr: str, state: str, reason: str, now: float) -> Block | None:
        """Take ``cidr`` out of the active set (expired or removed); its record stays for
        escalation memory and ``blocks why``. None when it was not active (someone else
        ended it first)."""
        with self._redis(f"ending the block of {cidr}"):
            if not self.client.zrem(self.key("active"), cidr):
                return None
            key = self.key("block", cidr)
            fields = {"state": state, "ended": repr(now), "end_reason": reason}
            if state == "removed":  # a manual unblock also resets the escalation ladder
                fields["level"] = "-1"
            self.client.hset(key, mapping=fields)
            self.client.expire(key, max(1, int(self.cfg.escalation_memory_s)))
            raw = self.client.hgetall(key)
            block = Block.from_fields(raw)
            self.client.lpush(self.key("history", cidr), json.dumps(block.to_fields()))
            self.client.ltrim(self.key("history", cidr), 0, HISTORY_KEPT - 1)
            self.client.expire(self.key("history", cidr), max(1, int(self.cfg.escalation_memory_s)))
        return block

    def due(self, now: float) -> list[str]:
        """Active CIDRs whose expiry has passed."""
        with self._redis("reading expired blocks"):
            rows = self.client.zrangebyscore(self.key("active"), "-inf", repr(now))
        return [_text(c) for c in rows]

    def history(self, cidr: str) -> list[dict[str, Any]]:
        with self._redis(f"reading the history of {cidr}"):
            rows = self.client.lrange(self.key("history", cidr), 0, -1)
        return [json.loads(_text(r)) for r in rows]

    # -- allows, refusals, pause, events, stats -------------------------------------------

    def pin_allow(self, cidr: str, reason: str, by: str, until: float | None) -> None:
        pin = {"reason": reason, "by": by, "created": time.time(), "until": until}
        with self._redis(f"pinning an allow for {cidr}"):
            self.client.hset(self.key("allow"), cidr, json.dumps(pin))

    def allows(self, now: float) -> dict[str, dict[str, Any]]:
        """Pinned allows still in force (lapsed pins are dropped on read)."""
        with self._redis("reading pinned allows"):
            raw = self.client.hgetall(self.key("allow"))
            pins = {_text(k): json.loads(_text(v)) for k, v in raw.items()}
            lapsed = [c for c, p in pins.items() if p.get("until") and p["until"] <= now]
            if lapsed:
                self.client.hdel(self.key("allow"), *lapsed)
        return {c: p for c, p in pins.items() if c not in lapsed}

    def record_refusal(self, cidr: str, reason: str, evidence: Mapping[str, Any]) -> None:
        record = {"reason": reason, "at": time.time(), "evidence": dict(evidence)}
        with self._redis(f"recording the refusal for {cidr}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.key("refusal", cidr), mapping={"last": json.dumps(record, default=str)})
            pipe.hincrby(self.key("refusal", cidr), "count", 1)
            pipe.expire(self.key("refusal", cidr), 7 * 86400)
            pipe.execute()

    def refusal(self, cidr: str) -> dict[str, Any] | None:
        with self._redis(f"reading refusals for {cidr}"):
            raw = self.client.hgetall(self.key("refusal", cidr))
        if not raw:
            return None
        f = {_text(k): _text(v) for k, v in raw.items()}
        return {**json.loads(f.get("last", "{}")), "count": int(f.get("count", "0"))}

    def pause_reason(self) -> str | None:
        with self._redis("reading the pause flag"):
            value = self.client.get(self.key("pause"))
        return _text(value) if value is not None else None

    def clear_pause(self) -> None:
        with self._redis("clearing the pause flag"):
            self.client.delete(self.key("pause"))

    def event(self, kind: str, cidr: str, reason: str, **extra: Any) -> None:
        fields = {"kind": kind, "cidr": cidr, "reason": reason, "at": repr(time.time())}
        if extra:
            fields["detail"] = json.dumps(extra, default=str, sort_keys=True)
        with self._redis("appending to the block events"):
            self.client.xadd(self.key("events"), fields, maxlen=EVENTS_MAXLEN, approximate=True)

    def events(self, count: int = 1000) -> list[dict[str, str]]:
        with self._redis("reading the block events"):
            rows = self.client.xrevrange(self.key("events"), count=count)
        return [{_text(k): _text(v) for k, v in f.items()} for _id, f in rows]

    def write_stats(self, target: str, stats: Mapping[str, Any]) -> None:
        with self._redis(f"writing reconciliation stats of {target}"):
            self.client.hset(
                self.key("stats", target), mapping={k: json.dumps(v) for k, v in stats.items()}
            )

    def stats(self, target: str) -> dict[str, Any]:
        with self._redis(f"reading reconciliation stats of {target}"):
            raw = self.client.hgetall(self.key("stats", target))
        return {_text(k): json.loads(_text(v)) for k, v in raw.items()}

    def publish_alert(self, stream: str, eve: Mapping[str, Any]) -> None:
        with self._redis(f"publishing an alert on {stream}"):
            self.client.xadd(stream, {"eve": json.dumps(dict(eve), default=str)})

    def ping(self) -> None:
        with self._redis("ping"):
            self.client.ping()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _json(value: str | None) -> dict[str, Any]:
    if not value:
        return {}
    try:
        loaded = json.loads(value)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


__all__ = ["Block", "BusError", "Ledger", "UpsertResult", "new_block_id"]
