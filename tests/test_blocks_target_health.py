"""A firewall target that keeps failing is reported once (event + severity-1 alert) and its
recovery recorded, while other targets carry on. The failing target is a test double that
raises like an unreachable API would; the ledger is a real redis-server."""

from __future__ import annotations

import json
from collections.abc import Mapping

import redis

from responders.block_config import parse_blocks
from responders.blocking import FAILING_PASSES, BlockManager
from responders.plugin import DONE, BlockRequest, BlockResponder, Outcome
from sensor.errors import ResponderError


class Flaky(BlockResponder):
    """Fails every call while ``down`` is set, as a firewall API that is unreachable."""

    name = "flaky"
    can_expire = False

    def __init__(self) -> None:
        super().__init__({})
        self.down = True
        self.entries: dict[str, float | None] = {}

    def _guard(self) -> None:
        if self.down:
            raise ResponderError("flaky.example: connection refused")

    def block(self, request: BlockRequest) -> Outcome:
        self._guard()
        self.entries[request.cidr] = request.expires_at
        return Outcome(self.name, DONE)

    def unblock(self, request: BlockRequest) -> Outcome:
        self._guard()
        self.entries.pop(request.cidr, None)
        return Outcome(self.name, DONE)

    def check(self, request: BlockRequest) -> bool:
        self._guard()
        return request.cidr in self.entries

    def list_blocks(self) -> Mapping[str, float | None]:
        self._guard()
        return dict(self.entries)


def test_failing_target_is_reported_once_then_recovery(redis_server: str) -> None:
    flaky = Flaky()
    cfg = parse_blocks({"redis-url": redis_server, "protect-self": False})
    m = BlockManager(cfg, {"flaky": flaky})
    client = redis.Redis.from_url(redis_server)
    for _ in range(FAILING_PASSES + 2):
        m.reconcile_once()
    entries = client.xrange(cfg.alert_stream)
    assert isinstance(entries, list)
    alerts = [json.loads(fields[b"eve"]) for _id, fields in entries if fields]
    assert len(alerts) == 1
    assert alerts[0]["alert"]["severity"] == 1
    assert "flaky failing" in alerts[0]["alert"]["signature"]
    assert m.counters.get("target_failed") == 1
    flaky.down = False
    m.reconcile_once()
    assert m.counters.get("target_recovered") == 1
    kinds = [e["kind"] for e in m.ledger.events()]
    assert "target_failed" in kinds and "target_recovered" in kinds
