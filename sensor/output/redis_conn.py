"""Connecting to Redis (the alert bus) the same way from the sensor, the responders and the CLI.

Scope: turn connection settings (``redis://``, ``rediss://`` with CA/client certificate,
``unix://``; ACL username; password given directly, from an environment variable or from a
file; Redis Cluster) into a redis-py client whose every call has a timeout, and turn redis-py
exceptions into :class:`~sensor.errors.BusError` messages that name ``host:port`` (or the
socket path) and never the password.

Non-goals: retry policy. Callers decide: the publisher spools instead of retrying, the
consumer loop retries on its own schedule, the CLI fails with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from sensor.errors import BusError, ConfigError

SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class RedisSettings:
    """Where the bus is and how to log in. ``repr`` never shows the password."""

    url: str = "redis://127.0.0.1:6379/0"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None  # name of an environment variable holding the password
    password_file: str | None = None  # path of a file whose first line is the password
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True
    cluster: bool = False
    connect_timeout_s: float = 2.0
    socket_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        scheme = urlsplit(self.url).scheme
        if scheme not in SCHEMES:
            raise ConfigError(
                f"redis URL {redact_url(self.url)!r}: scheme must be one of "
                f"{', '.join(s + '://' for s in SCHEMES)}"
            )
        if self.cluster and scheme == "unix":
            raise ConfigError("redis cluster mode needs a redis:// or rediss:// URL, not unix://")
        if self.connect_timeout_s <= 0 or self.socket_timeout_s <= 0:
            raise ConfigError("redis timeouts must be positive (every call has a timeout)")

    @property
    def where(self) -> str:
        """``host:port`` or the unix socket path: what error messages name."""
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return f"unix:{parts.path}"
        return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"

    def resolve_password(self) -> str | None:
        """The password from (in order) the field, the environment variable, the file, the URL."""
        if self.password is not None:
            return self.password
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"redis password variable ${self.password_env} is not set")
            return value
        if self.password_file:
            try:
                text = Path(self.password_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"{self.password_file}: cannot read redis password file: {exc.strerror}"
                ) from exc
            lines = text.splitlines()
            return lines[0] if lines else ""
        url_password = urlsplit(self.url).password
        return unquote(url_password) if url_password is not None else None


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (for logs, errors and config dumps)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def connect(settings: RedisSettings, *, retries: int = 0) -> Any:
    """A client for ``settings`` (no network traffic yet: redis-py connects lazily).

    ``retries`` is how many times redis-py itself retries a failed call; the publisher passes
    0 because it falls back to its spool instead.
    """
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.connect_timeout_s,
        "socket_timeout": settings.socket_timeout_s,
        "retry": Retry(NoBackoff(), retries),
    }
    password = settings.resolve_password()
    if password is not None:
        options["password"] = password
    if settings.username is not None:
        options["username"] = settings.username
    if urlsplit(settings.url).scheme == "rediss":
        options["ssl_cert_reqs"] = "required" if settings.tls_verify else "none"
        if settings.tls_ca:
            options["ssl_ca_certs"] = settings.tls_ca
        if settings.tls_cert:
            options["ssl_certfile"] = settings.tls_cert
        if settings.tls_key:
            options["ssl_keyfile"] = settings.tls_key
    try:
        if settings.cluster:
            options.pop("retry")
            return RedisCluster.from_url(settings.url, **options)
        return redis.Redis.from_url(settings.url, **options)
    except (ValueError, redis.RedisError) as exc:
        raise ConfigError(f"redis URL {redact_url(settings.url)!r}: {exc}") from exc


def bus_error(settings: RedisSettings, exc: BaseException, doing: str) -> BusError:
    """A one-line :class:`BusError` for ``exc`` that names where Redis is, never the password."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    password = _safe_password(settings)
    if password:
        detail = detail.replace(password, "***")
    return BusError(f"redis at {settings.where}: {doing}: {detail}")


def _safe_password(settings: RedisSettings) -> str | None:
    try:
        return settings.resolve_password()
    except ConfigError:
        return None


def same_slot_key(stream: str, suffix: str) -> str:
    """A key that hashes to the same Redis Cluster slot as ``stream``.

    A key with a ``{tag}`` hashes on the tag, so ``stream + suffix`` keeps the stream's slot;
    a key without one hashes on the whole name, so the whole name becomes the tag.
    """
    start = stream.find("{")
    end = stream.find("}", start + 1) if start != -1 else -1
    if end > start + 1:  # Redis ignores an empty "{}" tag
        return f"{stream}{suffix}"
    return f"{{{stream}}}{suffix}"


def sensor_stream_key(base: str, sensor_id: str) -> str:
    """The per-sensor, hash-tagged stream key recommended with Redis Cluster."""
    return f"{base}:{{{sensor_id}}}"
