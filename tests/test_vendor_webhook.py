"""Webhook responder against a local HTTPS receiver started by the test (a stand-in for
whatever a site puts behind the webhook): it implements sekimori's documented webhook
contract (docs/responders/webhook.md: POST/DELETE/GET with JSON bodies), recomputes the
HMAC-SHA256 signature over ``timestamp.body`` and refuses bad or stale ones, and keeps
the blocks it was sent.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from typing import Any

import pytest
from test_vendor_http import Reply, Req, fast, json_reply, lifecycle, serve

from responders.plugin import BlockRequest
from responders.plugins.webhook import WebhookResponder
from sensor.errors import ResponderError

SECRET = "hook-secret"
ITEM_KEYS = {"cidr", "expires_at", "ttl", "reason", "block_id"}


class FakeReceiver:
    def __init__(self) -> None:
        self.blocks: dict[str, float | None] = {}
        self.invalid: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, req: Req) -> Reply:
        stamp = req.headers.get("x-sekimori-timestamp", "0")
        mac = hmac.new(
            SECRET.encode(), stamp.encode() + b"." + req.body, hashlib.sha256
        ).hexdigest()
        if (
            req.headers.get("x-sekimori-signature") != f"sha256={mac}"
            or abs(time.time() - int(stamp)) > 300
        ):
            return json_reply(401, {"error": "bad signature"})
        if req.path != "/hooks/sekimori":
            self.invalid.append(req.path)
        if req.method == "GET":
            return json_reply(
                200, {"blocks": [{"cidr": c, "expires_at": e} for c, e in self.blocks.items()]}
            )
        body = req.json()
        action = {"POST": "block", "DELETE": "unblock"}.get(req.method)
        items = body.get("blocks")
        if (
            body.get("action") != action
            or not isinstance(items, list)
            or any(set(i) != ITEM_KEYS for i in items)
        ):
            self.invalid.append(f"{req.method} {body!r}")
            return json_reply(400, {"error": "schema"})
        with self.lock:
            for item in items:
                if action == "block":
                    self.blocks[item["cidr"]] = item["expires_at"]
                else:
                    self.blocks.pop(item["cidr"], None)
        return json_reply(200, {"ok": True})

    def present(self) -> dict[str, Any]:
        return dict(self.blocks)

    def drop(self, cidr: str) -> None:
        self.blocks.pop(cidr, None)


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    return {"secret-env": "HOOK_SECRET"}


def test_signed_batches_and_listing(table: dict[str, str]) -> None:
    fake = FakeReceiver()
    with serve(fake) as srv:
        r = WebhookResponder(fast(srv.url + "/hooks/sekimori", batch=10, **table))
        reqs = [
            BlockRequest(f"203.0.113.{i}/32", time.time() + 60, "t", f"b{i}") for i in range(25)
        ]
        r.block_many(reqs)
        assert len(srv.requests) == 3 and len(r.list_blocks()) == 25
        r.unblock(reqs[0])
        assert "203.0.113.0/32" not in fake.blocks
        r.probe(write=True)
    assert fake.invalid == []


def test_ledger_reconciliation_and_expiry(redis_server: str, table: dict[str, str]) -> None:
    fake = FakeReceiver()
    with serve(fake) as srv:
        lifecycle(redis_server, "webhook", fast(srv.url + "/hooks/sekimori", **table), fake)


def test_wrong_secret_is_reported(table: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(FakeReceiver()) as srv:
        srv.faults.append(("status", (503, {})))
        monkeypatch.setenv("HOOK_SECRET", "other")
        with pytest.raises(
            ResponderError, match=r"webhook 127\.0\.0\.1:\d+: GET .*HTTP 401.*bad signature"
        ):
            WebhookResponder(fast(srv.url + "/hooks/sekimori", **table)).list_blocks()
