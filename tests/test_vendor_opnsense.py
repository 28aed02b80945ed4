"""OPNsense responder against a local HTTPS server that stands in for OPNsense (it is not
OPNsense): it implements the documented ``alias_util`` endpoints (list/add/delete/aliases,
https://docs.opnsense.org/development/api/core/firewall.html), checks basic auth with the
key and secret, the method, path and JSON body of every request, and keeps the alias
table. Also the flood: many blocks against a small rate limit, none lost, never over it.
"""

from __future__ import annotations

import base64
import ipaddress
import threading
from typing import Any

import pytest
from test_vendor_http import Reply, Req, fast, flood, json_reply, lifecycle, serve

from responders.plugin import BlockRequest
from responders.plugins.opnsense import OpnsenseResponder
from sensor.errors import ResponderError

KEY, SECRET = "opn-key", "opn-secret"


class FakeOpnsense:
    def __init__(self, alias: str = "sekimori_block") -> None:
        self.aliases: dict[str, set[str]] = {alias: set(), "other": {"192.0.2.1"}}
        self.invalid: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, req: Req) -> Reply:
        want = "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
        if req.headers.get("authorization") != want:
            return json_reply(401, {"status": 401, "message": "Authentication Failed"})
        parts = req.path.split("/")  # ['', 'api', 'firewall', 'alias_util', action, alias]
        if parts[:4] != ["", "api", "firewall", "alias_util"] or len(parts) < 5:
            self.invalid.append(f"path {req.path}")
            return json_reply(404, {"errorMessage": "Endpoint not found"})
        action = parts[4]
        if action == "aliases" and req.method == "GET":
            return json_reply(200, sorted(self.aliases))
        alias = parts[5] if len(parts) > 5 else ""
        if alias not in self.aliases:
            return json_reply(200, {"status": "failed"})
        if action == "list" and req.method == "GET":
            rows = [{"ip": a} for a in sorted(self.aliases[alias])]
            return json_reply(200, {"total": len(rows), "rowCount": len(rows), "current": 1,
                                    "rows": rows})  # fmt: skip
        if action in ("add", "delete") and req.method == "POST":
            if req.headers.get("content-type") != "application/json":
                self.invalid.append("content-type")
            body = req.json()
            address = body.get("address") if isinstance(body, dict) else None
            if set(body) != {"address"} or not isinstance(address, str):
                self.invalid.append(f"body {body!r}")
                return json_reply(400, {"status": "failed"})
            ipaddress.ip_network(address, strict=False)
            with self.lock:
                (self.aliases[alias].add if action == "add" else self.aliases[alias].discard)(
                    address
                )
            return json_reply(200, {"status": "done"})
        self.invalid.append(f"{req.method} {req.path}")
        return json_reply(405, {"status": "failed"})

    def present(self) -> dict[str, Any]:
        return {
            str(ipaddress.ip_network(a, strict=False)): None for a in self.aliases["sekimori_block"]
        }

    def drop(self, cidr: str) -> None:
        self.aliases["sekimori_block"].discard(cidr.removesuffix("/32"))


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("OPN_KEY", KEY)
    monkeypatch.setenv("OPN_SECRET", SECRET)
    return {"key-env": "OPN_KEY", "secret-env": "OPN_SECRET"}


def _req(cidr: str) -> BlockRequest:
    return BlockRequest(cidr=cidr, expires_at=None, reason="t", block_id="b1")


def test_block_check_unblock_and_probe(creds: dict[str, str]) -> None:
    fake = FakeOpnsense()
    with serve(fake) as srv:
        r = OpnsenseResponder(fast(srv.url, **creds))
        r.block(_req("203.0.113.5/32"))
        r.block(_req("203.0.113.5/32"))  # idempotent
        r.block(_req("198.51.100.0/24"))
        assert fake.aliases["sekimori_block"] == {"203.0.113.5", "198.51.100.0/24"}
        assert r.check(_req("203.0.113.5/32"))
        r.unblock(_req("203.0.113.5/32"))
        r.unblock(_req("203.0.113.5/32"))  # absent: fine
        assert not r.check(_req("203.0.113.5/32"))
        assert any("alias sekimori_block exists" in line for line in r.probe(write=True))
    assert fake.invalid == []


def test_ledger_reconciliation_and_expiry(redis_server: str, creds: dict[str, str]) -> None:
    fake = FakeOpnsense()
    with serve(fake) as srv:
        lifecycle(redis_server, "opnsense", fast(srv.url, **creds), fake)


def test_wrong_secret_and_missing_alias_are_reported(creds: dict[str, str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    with serve(FakeOpnsense()) as srv:
        monkeypatch.setenv("OPN_SECRET", "wrong")
        with pytest.raises(ResponderError, match=r"opnsense 127\.0\.0\.1:\d+: GET .*HTTP 401"):
            OpnsenseResponder(fast(srv.url, **creds)).list_blocks()
        monkeypatch.setenv("OPN_SECRET", SECRET)
        with pytest.raises(ResponderError, match="alias 'nope' does not exist"):
            OpnsenseResponder(fast(srv.url, alias="nope", **creds)).probe()


def test_5xx_and_timeouts_during_a_block_are_retried(creds: dict[str, str]) -> None:
    fake = FakeOpnsense()
    with serve(fake) as srv:
        srv.faults.extend([("status", (503, {})), ("hang", 1.0)])
        OpnsenseResponder(fast(srv.url, **creds)).block(_req("203.0.113.9/32"))
        assert "203.0.113.9" in fake.aliases["sekimori_block"]


def test_flood_against_a_small_rate_limit_loses_none(redis_server: str,
                                                     creds: dict[str, str]) -> None:  # fmt: skip
    fake = FakeOpnsense()
    with serve(fake, rate=42.0, burst=6) as srv:  # the "firewall" allows 40/s, burst 5 + slack
        flood(redis_server, "opnsense", fast(srv.url, rate=40.0, burst=5, **creds), fake, srv, 150)


def test_responders_check_cli_says_what_is_wrong(tmp_path: Any, creds: dict[str, str],
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from test_vendor_http import tls_material

    from cli.common import invoke
    from cli.main import sekimori

    with serve(FakeOpnsense()) as srv:
        conf = tmp_path / "s.toml"
        conf.write_text(
            '[blocks]\ntargets = ["opnsense"]\n[blocks.opnsense]\n'
            f'url = "{srv.url}"\nca-file = "{tls_material()[0]}"\n'
            'key-env = "OPN_KEY"\nsecret-env = "OPN_SECRET"\ntimeout = 1\n'
        )
        assert invoke(sekimori, ["--config", str(conf), "responders", "check", "--write"]) == 0
        out = capsys.readouterr().out
        assert "opnsense: ok:" in out and "write access" in out
        monkeypatch.setenv("OPN_SECRET", "wrong")
        assert invoke(sekimori, ["--config", str(conf), "responders", "check"]) == 6
        captured = capsys.readouterr()
        assert "opnsense: FAILED:" in captured.out and "HTTP 401" in captured.out
        assert "wrong" not in captured.out + captured.err and SECRET not in captured.out
