"""rediss:// with a CA and a client certificate, against a real TLS redis-server."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from test_bus_helpers import free_port, make_alert

from responders.bus import AlertConsumer, ConsumerConfig
from sensor.errors import BusError
from sensor.output.redis_bus import AlertPublisher, BusConfig
from sensor.output.redis_conn import RedisSettings, connect

OPENSSL = shutil.which("openssl")
REDIS_SERVER = shutil.which("redis-server")


def openssl(*args: str, cwd: Path) -> None:
    assert OPENSSL is not None
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(directory: Path, name: str) -> None:
    """A CA plus a server (127.0.0.1) and a client certificate signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-ca.key",
            "-out", f"{name}-ca.crt", "-days", "1", "-subj", f"/CN={name}-ca", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for who in ("server", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}-{who}.key",
                "-out", f"{name}-{who}.csr", "-subj", "/CN=127.0.0.1", cwd=directory)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}-{who}.csr", "-CA", f"{name}-ca.crt", "-CAkey",
                f"{name}-ca.key", "-CAcreateserial", "-out", f"{name}-{who}.crt", "-days", "1",
                "-extfile", "san.ext", cwd=directory)  # fmt: skip


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if OPENSSL is None or REDIS_SERVER is None:
        if os.environ.get("SEKIMORI_REQUIRE_ALL") == "1":
            pytest.fail("openssl and redis-server are needed for the TLS test")
        pytest.skip("openssl and redis-server are needed for the TLS test")
    make_pki(tmp_path, "good")
    make_pki(tmp_path, "other")
    port = free_port()
    proc = subprocess.Popen(
        [REDIS_SERVER, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", "good-server.crt", "--tls-key-file", "good-server.key",
         "--tls-ca-cert-file", "good-ca.crt", "--tls-auth-clients", "yes", "--save", "",
         "--dir", str(tmp_path)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        settings = tls_settings(port, tmp_path, "good")
        deadline = time.monotonic() + 10
        while True:
            try:
                connect(settings).ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("TLS redis-server did not come up")
                time.sleep(0.05)
        yield port, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def tls_settings(port: int, pki: Path, ca: str) -> RedisSettings:
    return RedisSettings(url=f"rediss://127.0.0.1:{port}/0", tls_ca=str(pki / f"{ca}-ca.crt"),
                         tls_cert=str(pki / "good-client.crt"),
                         tls_key=str(pki / "good-client.key"), connect_timeout_s=2.0)  # fmt: skip


def test_publish_and_consume_over_tls(tls_server: tuple[int, Path], tmp_path: Path) -> None:
    port, pki = tls_server
    cfg = BusConfig(url=f"rediss://127.0.0.1:{port}/0", tls_ca=str(pki / "good-ca.crt"),
                    tls_cert=str(pki / "good-client.crt"), tls_key=str(pki / "good-client.key"),
                    spool_dir=str(tmp_path / "spool"))  # fmt: skip
    pub = AlertPublisher(cfg)
    for i in range(10):
        pub.publish(make_alert(i))
    pub.close()
    assert pub.stats.published == 10 and pub.stats.redis_errors == 0
    consumer = AlertConsumer(ConsumerConfig(redis=tls_settings(port, pki, "good"),
                                            consumer="c", block_ms=100))  # fmt: skip
    seen: list[int] = []
    consumer.run_once(lambda m: seen.append(m.eve["sekimori"]["alert_no"]))
    assert seen == list(range(10))


def test_untrusted_server_certificate_is_a_bus_error(tls_server: tuple[int, Path]) -> None:
    port, pki = tls_server
    consumer = AlertConsumer(ConsumerConfig(redis=tls_settings(port, pki, "other"),
                                            consumer="c", block_ms=100))  # fmt: skip
    with pytest.raises(BusError) as info:
        consumer.read()
    assert f"127.0.0.1:{port}" in str(info.value)
