"""PAN-OS responder against a local HTTPS server that stands in for a PAN-OS firewall (it
is not PAN-OS): ``POST /api/`` with the ``X-PAN-KEY`` header, ``type=user-id`` uid-messages
registering/unregistering IP→tag with a ``timeout`` attribute, and ``type=op`` ``show object
registered-ip tag`` (https://docs.paloaltonetworks.com/pan-os/10-1/pan-os-panorama-api/,
http://api-lab.paloaltonetworks.com/registered-ip.html). It validates every message's
structure, keeps the registered IPs with their tag timeouts (expiring them itself) and
answers ``<response status="success|error">``.
"""

from __future__ import annotations

import ipaddress
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from test_vendor_http import Reply, Req, fast, lifecycle, serve

from responders.plugin import BlockRequest
from responders.plugins.panos import PanosResponder
from sensor.errors import ResponderError

KEY = "pan-api-key"


def xml_reply(status: str, inner: str = "") -> Reply:
    body = f'<response status="{status}">{inner}</response>'.encode()
    return 200, {"Content-Type": "application/xml"}, body


class FakePanos:
    def __init__(self) -> None:
        self.tags: dict[str, dict[str, float | None]] = {}  # ip → tag → expiry
        self.invalid: list[str] = []
        self.lock = threading.Lock()
        self.messages = 0

    def __call__(self, req: Req) -> Reply:
        if req.method != "POST" or req.path != "/api/":
            self.invalid.append(f"{req.method} {req.path}")
            return 404, {}, b""
        if req.headers.get("x-pan-key") != KEY:
            return (
                403,
                {},
                b'<response status="error" code="403"><result><msg>Invalid credentials.</msg></result></response>',
            )
        if req.headers.get("content-type") != "application/x-www-form-urlencoded":
            self.invalid.append("content-type")
        form = urllib.parse.parse_qs(req.body.decode())
        kind, cmd = form.get("type", [""])[0], form.get("cmd", [""])[0]
        try:
            root = ET.fromstring(cmd)
        except ET.ParseError:
            self.invalid.append(f"cmd not XML: {cmd!r}")
            return xml_reply("error", "<msg><line>bad cmd</line></msg>")
        if kind == "user-id":
            return self._uid(root)
        if kind == "op":
            return self._show(root)
        self.invalid.append(f"type {kind}")
        return xml_reply("error")

    def _uid(self, root: ET.Element) -> Reply:
        if root.tag != "uid-message" or root.findtext("type") != "update":
            self.invalid.append("uid-message")
            return xml_reply("error")
        payload = root.find("payload")
        assert payload is not None
        now = time.time()
        with self.lock:
            self.messages += 1
            for verb in payload:
                if verb.tag not in ("register", "unregister"):
                    self.invalid.append(verb.tag)
                for entry in verb.findall("entry"):
                    ip = entry.get("ip", "")
                    ipaddress.ip_network(ip, strict=False)
                    for member in entry.findall("tag/member"):
                        if verb.tag == "register":
                            timeout = int(member.get("timeout", "0"))
                            if not 0 <= timeout <= 2592000:
                                self.invalid.append(f"timeout {timeout}")
                            expiry = now + timeout if timeout else None
                            self.tags.setdefault(ip, {})[str(member.text)] = expiry
                        else:
                            self.tags.get(ip, {}).pop(str(member.text), None)
        return xml_reply(
            "success",
            "<result><uid-response><version>2.0</version><payload/></uid-response></result>",
        )

    def _show(self, root: ET.Element) -> Reply:
        entry = root.find("object/registered-ip/tag/entry")
        if root.tag != "show" or entry is None:
            self.invalid.append("op cmd")
            return xml_reply("error")
        tag = entry.get("name")
        out = []
        for ip, members in sorted(self.current().items()):
            if tag in members:
                tags = "".join(f"<member>{t}</member>" for t in members)
                out.append(
                    f'<entry ip="{ip}" from_agent="0" persistent="1"><tag>{tags}</tag></entry>'
                )
        return xml_reply("success", f"<result>{''.join(out)}<count>{len(out)}</count></result>")

    def current(self) -> dict[str, dict[str, float | None]]:
        now = time.time()
        with self.lock:
            return {ip: {t: e for t, e in m.items() if e is None or e > now}
                    for ip, m in self.tags.items() if any(e is None or e > now for e in m.values())}  # fmt: skip

    def present(self) -> dict[str, Any]:
        return {str(ipaddress.ip_network(ip, strict=False)): m["sekimori"]
                for ip, m in self.current().items() if "sekimori" in m}  # fmt: skip

    def drop(self, cidr: str) -> None:
        with self.lock:
            self.tags.pop(cidr.removesuffix("/32"), None)


@pytest.fixture
def creds(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("PAN_KEY", KEY)
    return {"api-key-env": "PAN_KEY"}


def _req(cidr: str, ttl: float | None = 600.0) -> BlockRequest:
    return BlockRequest(cidr=cidr, expires_at=None if ttl is None else time.time() + ttl,
                        reason="t", block_id="b1")  # fmt: skip


def test_register_many_in_one_message_with_timeout_and_unregister(creds: dict[str, str]) -> None:
    fake = FakePanos()
    with serve(fake) as srv:
        r = PanosResponder(fast(srv.url, **creds))
        r.block_many([_req(f"203.0.113.{i}/32") for i in range(1, 21)])
        assert fake.messages == 1 and len(fake.present()) == 20
        expiry = fake.present()["203.0.113.1/32"]
        assert expiry is not None and 595 <= expiry - time.time() <= 601
        assert r.check(_req("203.0.113.1/32"))
        r.unblock(_req("203.0.113.1/32"))
        assert "203.0.113.1/32" not in fake.present()
        fake.tags["192.0.2.50"] = {"other-tag": None}  # not ours: never listed
        assert "192.0.2.50/32" not in r.list_blocks()
        with pytest.raises(ResponderError, match="single addresses"):
            r.block(_req("198.51.100.0/24"))
        r.probe(write=True)
    assert fake.invalid == []


def test_ledger_reconciliation_and_native_expiry(redis_server: str, creds: dict[str, str]) -> None:
    fake = FakePanos()
    with serve(fake) as srv:
        lifecycle(redis_server, "panos", fast(srv.url, **creds), fake)


def test_bad_key_and_5xx(creds: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePanos()
    with serve(fake) as srv:
        srv.faults.extend([("status", (500, {})), ("hang", 1.0)])
        PanosResponder(fast(srv.url, **creds)).block(_req("203.0.113.30/32"))
        assert "203.0.113.30/32" in fake.present()
        monkeypatch.setenv("PAN_KEY", "wrong")
        with pytest.raises(
            ResponderError,
            match=r"panos 127\.0\.0\.1:\d+: POST /api/: HTTP 403.*Invalid credentials",
        ):
            PanosResponder(fast(srv.url, **creds)).list_blocks()
