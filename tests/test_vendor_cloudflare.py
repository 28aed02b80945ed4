"""Cloudflare responder against a local HTTPS server that stands in for the Cloudflare API
(it is not Cloudflare): IP Access rules at zone scope (create, list with pagination and
filters, delete) and token verify, as documented at
https://developers.cloudflare.com/api/resources/firewall/subresources/access_rules/ .
It checks the bearer token, the JSON body schema (mode, configuration.target/value,
notes), answers with the v4 envelope (success, errors, result, result_info), rejects
duplicates as the API does, and keeps one rule made by someone else.
"""

from __future__ import annotations

import ipaddress
import itertools
import threading
from typing import Any

import pytest
from test_vendor_http import Reply, Req, fast, json_reply, lifecycle, serve

from responders.plugin import BlockRequest
from responders.plugins.cloudflare import CloudflareResponder
from sensor.errors import ResponderError

TOKEN = "cf-token"
ZONE = "023e105f4ecef8ad9ca31a8372d0c353"
RULES = f"/client/v4/zones/{ZONE}/firewall/access_rules/rules"


def envelope(result: Any, **extra: Any) -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": result, **extra}


class FakeCloudflare:
    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.rules: dict[str, dict[str, Any]] = {
            "manual": {
                "id": "manual",
                "mode": "block",
                "notes": "blocked by hand",
                "configuration": {"target": "ip", "value": "192.0.2.77"},
            },
        }
        self.invalid: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, req: Req) -> Reply:
        if req.headers.get("authorization") != f"Bearer {TOKEN}":
            return json_reply(
                403,
                {"success": False, "errors": [{"code": 10000, "message": "Authentication error"}]},
            )
        if req.path == "/client/v4/user/tokens/verify" and req.method == "GET":
            return json_reply(200, envelope({"id": "t1", "status": "active"}))
        if req.path == RULES and req.method == "POST":
            return self._create(req.json())
        if req.path == RULES and req.method == "GET":
            return self._list(req)
        if req.path.startswith(RULES + "/") and req.method == "DELETE":
            rule_id = req.path.rsplit("/", 1)[1]
            with self.lock:
                if self.rules.pop(rule_id, None) is None:
                    return json_reply(
                        404, {"success": False, "errors": [{"code": 10001, "message": "not found"}]}
                    )
            return json_reply(200, envelope({"id": rule_id}))
        self.invalid.append(f"{req.method} {req.path}")
        return json_reply(
            404, {"success": False, "errors": [{"code": 7003, "message": "No route"}]}
        )

    def _create(self, body: Any) -> Reply:
        conf: Any = body.get("configuration") if isinstance(body, dict) else None
        ok = (isinstance(conf, dict) and body.get("mode") == "block" and set(body) <= {"mode", "configuration", "notes"}
              and conf.get("target") in ("ip", "ip6", "ip_range") and isinstance(conf.get("value"), str))  # fmt: skip
        if not ok:
            self.invalid.append(f"body {body!r}")
            return json_reply(
                400, {"success": False, "errors": [{"code": 10014, "message": "bad body"}]}
            )
        net = ipaddress.ip_network(conf["value"], strict=False)
        if conf["target"] == "ip_range" and net.prefixlen not in (16, 24, 32, 48, 64):
            self.invalid.append(f"range {net}")
        with self.lock:
            if any(r["configuration"]["value"] == conf["value"] for r in self.rules.values()):
                return json_reply(400, {"success": False, "errors": [
                    {"code": 10009, "message": "firewallaccessrules.api.duplicate_of_existing"}]})  # fmt: skip
            rule_id = f"r{next(self.ids)}"
            self.rules[rule_id] = {"id": rule_id, **body}
        return json_reply(200, envelope(self.rules[rule_id]))

    def _list(self, req: Req) -> Reply:
        page = int(req.query.get("page", ["1"])[0])
        per_page = int(req.query.get("per_page", ["20"])[0])
        if not 5 <= per_page <= 1000:
            self.invalid.append(f"per_page {per_page}")
        notes = req.query.get("notes", [""])[0]
        with self.lock:
            rules = [r for r in self.rules.values() if notes in r.get("notes", "")]
        pages = max(1, -(-len(rules) // per_page))
        chunk = rules[(page - 1) * per_page : page * per_page]
        info = {"page": page, "per_page": per_page, "count": len(chunk),
                "total_count": len(rules), "total_pages": pages}  # fmt: skip
        return json_reply(200, envelope(chunk, result_info=info))

    def present(self) -> dict[str, Any]:
        return {str(ipaddress.ip_network(r["configuration"]["value"], strict=False)): None
                for r in self.rules.values() if r.get("notes", "").startswith("sekimori")}  # fmt: skip

    def drop(self, cidr: str) -> None:
        with self.lock:
            for rid, r in list(self.rules.items()):
                if str(ipaddress.ip_network(r["configuration"]["value"], strict=False)) == cidr:
                    del self.rules[rid]


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("CF_TOKEN", TOKEN)
    return {"token-env": "CF_TOKEN", "zone-id": ZONE}


def _req(cidr: str) -> BlockRequest:
    return BlockRequest(cidr=cidr, expires_at=None, reason="scanner", block_id="b7")


def test_rules_created_listed_across_pages_and_deleted(table: dict[str, str]) -> None:
    fake = FakeCloudflare()
    with serve(fake) as srv:
        r = CloudflareResponder(fast(srv.url + "/client/v4", rate=200.0, **table))
        r.block_many([_req(f"203.0.113.{i}/32") for i in range(1, 131)])  # > one page
        r.block(_req("203.0.113.1/32"))  # duplicate: already ours, done
        r.block(_req("2001:db8::1/128"))
        r.block(_req("198.51.100.0/24"))
        listing = r.list_blocks()
        assert len(listing) == 132 and "192.0.2.77/32" not in listing
        with pytest.raises(ResponderError, match="ip_range rules take only /16, /24"):
            r.block(_req("198.51.100.0/25"))
        r.unblock(_req("203.0.113.1/32"))
        r.unblock(_req("203.0.113.1/32"))
        assert "203.0.113.1/32" not in fake.present() and "manual" in fake.rules
        assert "API token is active" in r.probe(write=True)
    assert fake.invalid == []


def test_ledger_reconciliation_and_expiry(redis_server: str, table: dict[str, str]) -> None:
    fake = FakeCloudflare()
    with serve(fake) as srv:
        lifecycle(redis_server, "cloudflare", fast(srv.url + "/client/v4", **table), fake)
    assert "manual" in fake.rules


def test_bad_token_and_5xx(table: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeCloudflare()
    with serve(fake) as srv:
        srv.faults.extend([("status", (520, {})), ("status", (429, {"Retry-After": "1"}))])
        CloudflareResponder(fast(srv.url + "/client/v4", **table)).block(_req("203.0.113.50/32"))
        assert "203.0.113.50/32" in fake.present()
        monkeypatch.setenv("CF_TOKEN", "wrong")
        with pytest.raises(
            ResponderError,
            match=r"cloudflare 127\.0\.0\.1:\d+: GET .*HTTP 403.*Authentication error",
        ):
            CloudflareResponder(fast(srv.url + "/client/v4", **table)).list_blocks()
