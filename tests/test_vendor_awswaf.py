"""AWS WAFv2 responder against a local HTTPS server that stands in for the WAFV2 API (it is
not AWS): ``POST /`` with ``X-Amz-Target: AWSWAF_20190729.GetIPSet|UpdateIPSet`` and
``application/x-amz-json-1.1`` bodies, SigV4-signed (the server recomputes the signature
with the test's secret key and refuses a mismatch), the lock token (a stale one fails with
``WAFOptimisticLockException``), https://docs.aws.amazon.com/waf/latest/APIReference/ .
Also the signer against AWS's published Signature V4 test vector (get-vanilla).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import threading
import uuid
from typing import Any

import pytest
from test_vendor_http import Reply, Req, fast, json_reply, lifecycle, manager, serve

from responders.plugin import BlockRequest
from responders.plugins.awswaf import AwsWafResponder
from responders.plugins.sigv4 import Credentials, sign_request
from sensor.errors import ResponderError

AKID, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SET_NAME, SET_ID = "sekimori-block", "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"


def test_sigv4_matches_the_published_get_vanilla_vector() -> None:
    headers: dict[str, str] = {"Host": "example.amazonaws.com"}
    sign_request(Credentials(AKID, SECRET), method="GET", host="example.amazonaws.com",
                 target="/", headers=headers, body=b"", region="us-east-1", service="service",
                 now=dt.datetime(2015, 8, 30, 12, 36, 0, tzinfo=dt.UTC))  # fmt: skip
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


class FakeWaf:
    def __init__(self) -> None:
        self.addresses: set[str] = set()
        self.token = str(uuid.uuid4())
        self.invalid: list[str] = []
        self.lock = threading.Lock()
        self.conflict_next = 0  # someone else updates the set just before our next N updates
        self.updates = 0

    def _verify(self, req: Req) -> str | None:
        auth = req.headers.get("authorization", "")
        m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/wafv2/aws4_request, "
                     r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$", auth)  # fmt: skip
        if not m or m.group(1) != AKID:
            return "UnrecognizedClientException"
        signed = m.group(4).split(";")
        headers = {h: req.headers.get(h, "") for h in signed}
        if "x-amz-date" not in headers or "host" not in headers:
            return "IncompleteSignatureException"
        check = dict(headers)
        when = dt.datetime.strptime(check["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        sign_request(Credentials(AKID, SECRET), method=req.method, host=check["host"], target=req.path,
                     headers=check, body=req.body, region=m.group(3), service="wafv2", now=when)  # fmt: skip
        return None if check["Authorization"] == auth else "InvalidSignatureException"

    def __call__(self, req: Req) -> Reply:
        err = self._verify(req)
        if err:
            return json_reply(
                403,
                {"__type": err, "message": "The request signature we calculated does not match"},
            )
        if (
            req.method != "POST"
            or req.path != "/"
            or req.headers.get("content-type") != "application/x-amz-json-1.1"
        ):
            self.invalid.append(f"{req.method} {req.path} {req.headers.get('content-type')}")
        body = req.json()
        action = req.headers.get("x-amz-target", "")
        if (
            body.get("Name") != SET_NAME
            or body.get("Id") != SET_ID
            or body.get("Scope") != "REGIONAL"
        ):
            return json_reply(
                400, {"__type": "WAFNonexistentItemException", "message": "no such set"}
            )
        with self.lock:
            if action == "AWSWAF_20190729.GetIPSet":
                if set(body) != {"Name", "Scope", "Id"}:
                    self.invalid.append(f"get body {body}")
                ipset = {"Name": SET_NAME, "Id": SET_ID, "ARN": "arn:aws:wafv2:x", "IPAddressVersion": "IPV4",
                         "Addresses": sorted(self.addresses)}  # fmt: skip
                return json_reply(200, {"IPSet": ipset, "LockToken": self.token})
            if action == "AWSWAF_20190729.UpdateIPSet":
                if set(body) - {"Description"} != {"Name", "Scope", "Id", "Addresses", "LockToken"}:
                    self.invalid.append(f"update body {sorted(body)}")
                if self.conflict_next:
                    self.conflict_next -= 1
                    self.token = str(uuid.uuid4())  # a concurrent writer
                if body["LockToken"] != self.token:
                    return json_reply(400, {"__type": "WAFOptimisticLockException",
                                            "message": "AWS WAF couldn’t save your changes because someone changed the resource after you started to edit it."})  # fmt: skip
                for a in body["Addresses"]:
                    net = ipaddress.ip_network(a)  # CIDR notation required
                    if "/" not in a or net.prefixlen == 0:
                        self.invalid.append(f"address {a}")
                self.addresses = set(body["Addresses"])
                self.token = str(uuid.uuid4())
                self.updates += 1
                return json_reply(200, {"NextLockToken": self.token})
        self.invalid.append(f"action {action}")
        return json_reply(400, {"__type": "UnknownOperationException"})

    def present(self) -> dict[str, Any]:
        return dict.fromkeys(self.addresses)

    def drop(self, cidr: str) -> None:
        with self.lock:
            self.addresses.discard(cidr)
            self.token = str(uuid.uuid4())


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AKID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    return {"region": "eu-west-1", "ip-set-name": SET_NAME, "ip-set-id": SET_ID, "rate": 20.0}


def _req(cidr: str) -> BlockRequest:
    return BlockRequest(cidr=cidr, expires_at=None, reason="t", block_id="b1")


def test_read_modify_write_retries_lock_conflicts(table: dict[str, Any]) -> None:
    fake = FakeWaf()
    with serve(fake) as srv:
        r = AwsWafResponder(fast(srv.url, **table))
        r.block_many([_req(f"203.0.113.{i}/32") for i in range(1, 51)])
        assert fake.updates == 1 and len(fake.addresses) == 50  # one write for the batch
        fake.conflict_next = 2
        r.block(_req("198.51.100.0/24"))
        assert r.conflicts == 2 and "198.51.100.0/24" in fake.addresses
        r.unblock(_req("203.0.113.1/32"))
        assert "203.0.113.1/32" not in fake.addresses and r.check(_req("203.0.113.2/32"))
        fake.conflict_next = 99
        with pytest.raises(ResponderError, match="kept changing under us"):
            r.block(_req("203.0.113.200/32"))
        fake.conflict_next = 0
        r.probe(write=True)
        with pytest.raises(ResponderError, match="no IPv6 IP set"):
            r.block(_req("2001:db8::1/128"))
    assert fake.invalid == []


def test_ledger_reconciliation_and_expiry(redis_server: str, table: dict[str, Any]) -> None:
    fake = FakeWaf()
    with serve(fake) as srv:
        lifecycle(redis_server, "awswaf", fast(srv.url, **table), fake)


def test_reconcile_of_many_blocks_is_one_update_at_the_default_pace(
    redis_server: str, table: dict[str, Any]
) -> None:
    fake = FakeWaf()
    table = {k: v for k, v in table.items() if k != "rate"}  # default: 1 request/s, burst 2
    with serve(fake, rate=1.1, burst=3) as srv:
        mgr = manager(redis_server, "awswaf", fast(srv.url, **table))
        for i in range(200):
            mgr.add(f"10.1.{i}.9/32", 600.0, "flood", "test")
        mgr.responders  # noqa: B018 - built; start runs the first reconcile pass
        mgr.start()
        mgr.stop()
    assert len(fake.addresses) == 200 and fake.updates == 1 and srv.rate_violations == 0


def test_bad_signature_is_reported(table: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(FakeWaf()) as srv:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-key")
        with pytest.raises(
            ResponderError,
            match=r"awswaf 127\.0\.0\.1:\d+: POST /: HTTP 403.*InvalidSignatureException",
        ):
            AwsWafResponder(fast(srv.url, **table)).list_blocks()
