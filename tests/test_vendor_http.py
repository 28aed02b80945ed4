"""The HTTP client of the firewall API responders, and the harness every vendor test uses.

The HTTPS server here is a local stand-in for a vendor's API (it is not the vendor): the
test generates its own CA and server certificate with the ``openssl`` CLI, and each vendor
test plugs in an app implementing the documented endpoints. The server can answer with
injected faults (5xx, 429 with Retry-After, hangs) and checks the client's request rate
against a token bucket of its own. Tests here: retries with backoff on 5xx, timeouts and
429 (Retry-After honoured), a 4xx reported with host, method, path and status, TLS
verification with and without the CA, credentials only from env/files.
"""

from __future__ import annotations

import contextlib
import functools
import json
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from responders.block_config import parse_blocks
from responders.blocking import BlockManager
from responders.plugins.http import ApiError, HttpClient, http_settings, secret
from sensor.errors import ResponderError


# --------------------------------------------------------------------------- TLS material
@functools.cache
def tls_material() -> tuple[str, str, str]:
    """(ca.pem, server.pem, server.key) for 127.0.0.1/localhost, made once per run."""
    out = Path(tempfile.mkdtemp(prefix="sekimori-vendor-tls-"))

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=out)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=sekimori test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost")  # fmt: skip
    (out / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return str(out / "ca.pem"), str(out / "server.pem"), str(out / "server.key")


# --------------------------------------------------------------------------- the server
@dataclass
class Req:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


Reply = tuple[int, dict[str, str], bytes]
App = Callable[[Req], Reply]


def json_reply(status: int, value: Any) -> Reply:
    return status, {"Content-Type": "application/json"}, json.dumps(value).encode()


@dataclass
class VendorServer:
    """A local HTTPS stand-in for a vendor API (see the module docstring)."""

    app: App
    rate: float = 1000.0  # the server's own token bucket (requests/s, burst)
    burst: int = 1000
    requests: list[Req] = field(default_factory=list)
    faults: deque[tuple[str, Any]] = field(default_factory=deque)
    rate_violations: int = 0
    url: str = ""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = float(self.burst)
        self._at = time.monotonic()

    def over_rate(self) -> bool:
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1.0:
                self.rate_violations += 1
                return True
            self._tokens -= 1.0
            return False

    def handle(self, req: Req) -> Reply:
        with self._lock:
            self.requests.append(req)
            fault = self.faults.popleft() if self.faults else None
        if self.over_rate():
            return json_reply(429, {"error": "rate limit exceeded"})
        if fault is not None:
            kind, arg = fault
            if kind == "hang":
                time.sleep(arg)
            elif kind == "status":
                status, headers = arg
                return status, headers, b'{"error": "injected"}'
        return self.app(req)


def _handler(server: VendorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            req = Req(
                self.command,
                parts.path,
                urllib.parse.parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length) if length else b"",
                time.time(),
            )
            status, headers, body = server.handle(req)
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up (a hang test)

        do_GET = do_POST = do_DELETE = do_PUT = _any

    return Handler


@contextlib.contextmanager
def serve(app: App, *, rate: float = 1000.0, burst: int = 1000) -> Iterator[VendorServer]:
    """Run a VendorServer on 127.0.0.1 (TLS with the test CA) until the block ends."""
    _, cert, key = tls_material()
    server = VendorServer(app, rate=rate, burst=burst)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    server.url = f"https://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def fast(url: str, **extra: Any) -> dict[str, Any]:
    """Connection keys for tests: the test CA, short timeouts and backoffs."""
    ca, _, _ = tls_material()
    return {"url": url, "ca-file": ca, "timeout": 0.5, "backoff": 0.02, "backoff-max": 0.1,
            "retry-budget": 5.0, **extra}  # fmt: skip


# --------------------------------------------------------------------------- ledger helpers
def alert(src: str, sid: int = 2100001) -> dict[str, Any]:
    """An EVE alert of a drop rule on a TCP flow with a seen handshake (blocks)."""
    return {
        "timestamp": "2026-01-01T00:00:00.000000+0000",
        "flow_id": 42,
        "src_ip": src,
        "src_port": 40000,
        "dest_ip": "192.0.2.10",
        "dest_port": 80,
        "proto": "TCP",
        "alert": {
            "action": "allowed",
            "gid": 1,
            "signature_id": sid,
            "rev": 1,
            "signature": "TEST drop",
            "severity": 1,
        },
        "sekimori": {"rule_action": "drop", "handshake_seen": True, "sensor_id": "edge-1"},
    }


def manager(redis_url: str, target: str, table: Mapping[str, Any], **settings: Any) -> BlockManager:
    """A real BlockManager with one API target and the rate rails off (tests pace)."""
    blocks = {
        "redis-url": redis_url,
        "protect-self": False,
        "targets": [target],
        "max-per-minute": 0,
        "max-per-subnet": 0,
        "coalesce": 0,
        target: dict(table),
        **settings,
    }
    return BlockManager(parse_blocks(blocks))


# --------------------------------------------------------------------------- client tests
def _ok(req: Req) -> Reply:
    return json_reply(200, {"path": req.path})


def _client(url: str, **extra: Any) -> HttpClient:
    return HttpClient(http_settings(fast(url, **extra), "blocks.test"), "test")


def test_5xx_and_timeouts_are_retried_until_success() -> None:
    with serve(_ok) as srv:
        srv.faults.extend([("status", (503, {})), ("hang", 1.0), ("status", (502, {}))])
        client = _client(srv.url)
        response = client.request("GET", "/x")
        assert response.status == 200 and response.attempts == 4
        assert [r.path for r in srv.requests] == ["/x"] * 4


def test_429_retry_after_is_honoured() -> None:
    slept: list[float] = []
    with serve(_ok) as srv:
        srv.faults.append(("status", (429, {"Retry-After": "1"})))
        client = HttpClient(http_settings(fast(srv.url), "blocks.test"), "test", sleep=slept.append)
        assert client.request("GET", "/y").status == 200
    assert any(s >= 1.0 for s in slept), slept


def test_4xx_is_reported_with_host_path_and_status_and_not_retried() -> None:
    def forbidden(req: Req) -> Reply:
        return json_reply(403, {"message": "token lacks permission firewall:write"})

    with serve(forbidden) as srv:
        with pytest.raises(ApiError) as err:
            _client(srv.url).request("POST", "/api/thing")
        assert len(srv.requests) == 1
    text = str(err.value)
    assert "127.0.0.1" in text and "POST /api/thing" in text and "HTTP 403" in text
    assert "firewall:write" in text and err.value.status == 403


def test_persistent_5xx_gives_up_with_a_clear_error() -> None:
    with (
        serve(lambda req: json_reply(500, {"e": "down"})) as srv,
        pytest.raises(ResponderError, match=r"HTTP 500 \(gave up after 3 attempt"),
    ):
        _client(srv.url, retries=2).request("GET", "/z")


def test_tls_is_verified_and_ca_file_trusts_a_private_ca() -> None:
    with serve(_ok) as srv:
        settings = http_settings({"url": srv.url, "timeout": 1.0}, "blocks.test")
        with pytest.raises(ApiError, match=r"TLS certificate not trusted.*ca-file"):
            HttpClient(settings, "test").request("GET", "/")
        assert _client(srv.url).request("GET", "/").status == 200
        insecure = http_settings({"url": srv.url, "tls-verify": False}, "blocks.test")
        assert HttpClient(insecure, "test").request("GET", "/").status == 200


def test_client_never_exceeds_its_rate() -> None:
    with serve(_ok, rate=22.0, burst=4) as srv:  # the server allows a little slack
        client = _client(srv.url, rate=20.0, burst=3)
        for _ in range(40):
            client.request("GET", "/r")
        assert srv.rate_violations == 0 and len(srv.requests) == 40


def test_credentials_only_from_env_or_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ResponderError, match="not in the configuration"):
        secret({"token": "s3cr3t"}, "token", "blocks.x")
    with pytest.raises(ResponderError, match="SEKIMORI_TEST_TOKEN is not set") as err:
        secret({"token-env": "SEKIMORI_TEST_TOKEN"}, "token", "blocks.x")
    monkeypatch.setenv("SEKIMORI_TEST_TOKEN", "from-env")
    assert secret({"token-env": "SEKIMORI_TEST_TOKEN"}, "token", "blocks.x") == "from-env"
    path = tmp_path / "token"
    path.write_text("from-file\n")
    assert secret({"token-file": str(path)}, "token", "blocks.x") == "from-file"
    assert "from-env" not in str(err.value)


# --------------------------------------------------------------------------- shared vendor checks
def lifecycle(redis_url: str, name: str, table: Mapping[str, Any], fake: Any) -> None:
    """Through the real BlockManager and reconciliation: block → present on the fake,
    deletion behind sekimori's back → repaired, manual removal → gone, expiry honoured
    (the target's own timeout, or the ledger's sweep), every request valid."""
    mgr = manager(redis_url, name, table, ladder=["3s"])
    mgr.start()
    try:
        outcomes = mgr.handle_alert(alert("203.0.113.7"), enforce=True)
        assert [o.status for o in outcomes] == ["done"], outcomes
        assert "203.0.113.7/32" in fake.present()
        block = mgr.ledger.get("203.0.113.7/32")
        assert block is not None and block.expires is not None
        ledger_expiry = block.expires
        expiry = fake.present()["203.0.113.7/32"]
        if mgr.responders[name].can_expire:  # the ledger's expiry, not more
            assert expiry is not None and abs(expiry - ledger_expiry) <= 2.0
        fake.drop("203.0.113.7/32")  # someone deletes it on the firewall
        assert "203.0.113.7/32" not in fake.present()
        report = mgr.reconcile_once()[name]
        assert report.added == 1 and report.failed == 0, report
        assert "203.0.113.7/32" in fake.present()
        mgr.handle_alert(alert("198.51.100.9"), enforce=True)
        mgr.remove("198.51.100.9/32", "false positive", "test")
        mgr.reconcile_once()
        assert "198.51.100.9/32" not in fake.present()
        time.sleep(3.2)  # the 3 s block ends
        if mgr.responders[name].can_expire:
            assert "203.0.113.7/32" not in fake.present()  # the firewall dropped it itself
        mgr.reconcile_once()
        assert "203.0.113.7/32" not in fake.present()
        assert mgr.reports[name].failed == 0
    finally:
        mgr.stop()
    assert fake.invalid == []


def flood(redis_url: str, name: str, table: Mapping[str, Any], fake: Any, srv: VendorServer,
          count: int) -> None:  # fmt: skip
    """``count`` blocks from distinct sources through handle_alert: none lost, the
    server's rate limit never exceeded."""
    mgr = manager(redis_url, name, table)
    mgr.start()
    try:
        for i in range(count):
            outcomes = mgr.handle_alert(alert(f"10.{i // 250}.{i % 250}.1"), enforce=True)
            assert [o.status for o in outcomes] == ["done"], outcomes
    finally:
        mgr.stop()
    assert len(fake.present()) == count
    assert srv.rate_violations == 0
    assert fake.invalid == []
