"""Generic webhook block responder: a JSON body POSTed (block) or DELETEd (unblock) to a
URL, signed with HMAC-SHA256, for any firewall or automation without a plugin of its own.

The contract is sekimori's own (docs/responders/webhook.md): ``POST <url>`` with
``{"action": "block", "blocks": [{"cidr", "expires_at", "ttl", "reason", "block_id"}]}``,
``DELETE <url>`` with ``{"action": "unblock", "blocks": [{"cidr", ...}]}`` and ``GET <url>``
answering ``{"blocks": [{"cidr", "expires_at"}]}`` (what the receiver holds, for
reconciliation). Every request carries ``X-Sekimori-Timestamp`` (Unix seconds) and
``X-Sekimori-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>``, the
scheme GitHub and Stripe webhooks use
(https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries), so a
receiver can reject forgeries and replays. The receiver owns expiry or not: sekimori
treats it as a target without native expiry and sends DELETE when the ledger's block ends.

Config (``[blocks.webhook]``): ``url``, ``secret-env``/``secret-file``, ``batch`` (addresses
per call, default 50) and the HTTP keys of http.py.
Non-goals: receivers that cannot list (reconciliation needs GET).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from responders.plugin import BlockRequest
from responders.plugins.base import ApiBlockResponder, chunks, cidr_of
from responders.plugins.http import json_body, secret
from sensor.errors import ResponderError

SIGNATURE_HEADER = "X-Sekimori-Signature"
TIMESTAMP_HEADER = "X-Sekimori-Timestamp"


def sign(key: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` over ``timestamp.body``: what a receiver recomputes."""
    mac = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookResponder(ApiBlockResponder):
    name: ClassVar[str] = "webhook"
    can_expire: ClassVar[bool] = False
    default_rate: ClassVar[float] = 10.0
    default_burst: ClassVar[int] = 10
    default_batch: ClassVar[int] = 50

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self._key = secret(config, "secret", self.where).encode()
        self._path = ""  # the URL itself: base_url carries the path

    def _send(self, method: str, payload: Any = None) -> Any:
        body = b"" if payload is None else json_body(payload)
        stamp = str(int(time.time()))
        headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: sign(self._key, stamp, body)}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        return self.http.request(method, self._path, body=body or None, headers=headers)

    def _items(self, requests: Sequence[BlockRequest], now: float) -> list[dict[str, Any]]:
        return [
            {
                "cidr": r.cidr,
                "expires_at": r.expires_at,
                "ttl": None if r.expires_at is None else max(1, int(r.expires_at - now)),
                "reason": r.reason,
                "block_id": r.block_id,
            }
            for r in requests
        ]

    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        now = time.time()
        for part in chunks(requests, self.batch):
            self._send("POST", {"action": "block", "blocks": self._items(part, now)})

    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        now = time.time()
        for part in chunks(requests, self.batch):
            self._send("DELETE", {"action": "unblock", "blocks": self._items(part, now)})

    def list_blocks(self) -> Mapping[str, float | None]:
        data = self._send("GET").json()
        if not isinstance(data, dict) or not isinstance(data.get("blocks"), list):
            raise ResponderError(
                f"webhook {self.http.settings.host}: GET answered without a 'blocks' list"
            )
        found: dict[str, float | None] = {}
        for item in data["blocks"]:
            cidr = cidr_of(str(item.get("cidr", ""))) if isinstance(item, dict) else None
            if cidr is not None:
                expiry = item.get("expires_at")
                found[cidr] = float(expiry) if isinstance(expiry, int | float) else None
        return found
