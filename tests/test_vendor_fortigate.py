"""FortiGate responder against a local HTTPS server that stands in for FortiOS (it is not
FortiOS): the monitor API quarantine endpoints ``user/banned/add_users``, ``clear_users``
and ``select`` with ``?vdom=``, a bearer token, JSON bodies ``{"ip_addresses": [...],
"expiry": N}`` (FortiOS REST API reference). It validates every request, keeps the banned
list with expiries (dropping lapsed entries itself) and holds one IPS-made entry that
sekimori must never touch.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from typing import Any

import pytest
from test_vendor_http import Reply, Req, fast, json_reply, lifecycle, serve

from responders.plugin import BlockRequest
from responders.plugins.fortigate import FortigateResponder
from sensor.errors import ResponderError

TOKEN = "fgt-token"
BASE = "/api/v2/monitor/user/banned/"


class FakeFortigate:
    def __init__(self, vdom: str = "edge") -> None:
        self.vdom = vdom
        self.banned: dict[str, dict[str, Any]] = {
            "192.0.2.66": {
                "ip_address": "192.0.2.66",
                "ipv6": False,
                "created": int(time.time()),
                "expires": int(time.time()) + 3600,
                "source": "ips",
            },
        }
        self.invalid: list[str] = []
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def __call__(self, req: Req) -> Reply:
        if req.headers.get("authorization") != f"Bearer {TOKEN}":
            return json_reply(401, {"http_status": 401, "status": "error"})
        if req.query.get("vdom") != [self.vdom]:
            self.invalid.append(f"vdom {req.query.get('vdom')}")
        action = req.path.removeprefix(BASE).strip("/")
        if req.method == "GET" and action == "select":
            now = time.time()
            with self.lock:
                results = [
                    e for e in self.banned.values() if not e["expires"] or e["expires"] > now
                ]
            return json_reply(200, {"http_method": "GET", "results": results, "vdom": self.vdom,
                                    "status": "success", "http_status": 200})  # fmt: skip
        if req.method != "POST" or action not in ("add_users", "clear_users"):
            self.invalid.append(f"{req.method} {req.path}")
            return json_reply(404, {"status": "error", "http_status": 404})
        body = req.json()
        ips = body.get("ip_addresses")
        allowed = {"ip_addresses", "expiry"} if action == "add_users" else {"ip_addresses"}
        if not isinstance(ips, list) or not ips or set(body) - allowed:
            self.invalid.append(f"body {body!r}")
            return json_reply(400, {"status": "error", "http_status": 400})
        now = int(time.time())
        with self.lock:
            self.calls.append((action, len(ips)))
            for ip in ips:
                addr = ipaddress.ip_address(ip)
                if action == "add_users":
                    expiry = int(body.get("expiry", 0))
                    self.banned[ip] = {"ip_address": ip, "ipv6": addr.version == 6, "created": now,
                                       "expires": now + expiry if expiry else 0,
                                       "source": "administrative"}  # fmt: skip
                else:
                    self.banned.pop(ip, None)
        return json_reply(200, {"http_method": "POST", "status": "success", "http_status": 200})

    def present(self) -> dict[str, Any]:
        now = time.time()
        return {f"{ip}/32": float(e["expires"]) for ip, e in self.banned.items()
                if e["source"] == "administrative" and e["expires"] > now}  # fmt: skip

    def drop(self, cidr: str) -> None:
        with self.lock:
            self.banned.pop(cidr.removesuffix("/32"), None)


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("FGT_TOKEN", TOKEN)
    return {"token-env": "FGT_TOKEN", "vdom": "edge"}


def _req(cidr: str, ttl: float = 600.0) -> BlockRequest:
    return BlockRequest(cidr=cidr, expires_at=time.time() + ttl, reason="t", block_id="b1")


def test_batched_ban_with_expiry_clear_and_foreign_entries_untouched(creds: dict[str, str]) -> None:
    fake = FakeFortigate()
    with serve(fake) as srv:
        r = FortigateResponder(fast(srv.url, **creds))
        r.block_many([_req(f"203.0.113.{i}/32") for i in range(1, 31)])
        assert fake.calls == [("add_users", 30)]
        expires = fake.banned["203.0.113.1"]["expires"] - time.time()
        assert 540 <= expires <= 601
        listing = r.list_blocks()
        assert len(listing) == 30 and "192.0.2.66/32" not in listing
        r.unblock_many([_req(f"203.0.113.{i}/32") for i in range(1, 31)])
        assert fake.calls[-1] == ("clear_users", 30) and fake.present() == {}
        assert "192.0.2.66" in fake.banned  # the IPS's own quarantine stays
        with pytest.raises(ResponderError, match="addresses only"):
            r.block(_req("198.51.100.0/24"))
        r.probe(write=True)
    assert fake.invalid == []


def test_ledger_reconciliation_and_native_expiry(redis_server: str, creds: dict[str, str]) -> None:
    fake = FakeFortigate()
    with serve(fake) as srv:
        lifecycle(redis_server, "fortigate", fast(srv.url, **creds), fake)
    assert "192.0.2.66" in fake.banned


def test_bad_token_and_5xx(creds: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeFortigate()
    with serve(fake) as srv:
        srv.faults.extend(
            [("status", (502, {})), ("hang", 1.0), ("status", (429, {"Retry-After": "0"}))]
        )
        FortigateResponder(fast(srv.url, **creds)).block(_req("203.0.113.40/32"))
        assert "203.0.113.40/32" in fake.present()
        monkeypatch.setenv("FGT_TOKEN", "wrong")
        with pytest.raises(
            ResponderError, match=r"fortigate 127\.0\.0\.1:\d+: GET .*select.*HTTP 401"
        ):
            FortigateResponder(fast(srv.url, **creds)).list_blocks()
