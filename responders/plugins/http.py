"""One small HTTPS client for the firewall API responders, on the standard library.

Scope: every request has a timeout; transient failures (connection errors, timeouts, 429
and 5xx) are retried with exponential backoff and full jitter, honouring ``Retry-After``,
within a retry budget shorter than the block manager's call timeout; a 4xx (or a retry
budget spent) becomes a :class:`ApiError` (a ResponderError) that names the host, the
method and path, the status and the API's own message. A token bucket per target keeps
every attempt (retries included) within the vendor's rate limit. TLS verification is on
by default; ``ca-file`` adds a private CA. Credentials come from ``<name>-env`` (an
environment variable) or ``<name>-file`` (a file), never from the TOML value itself, so
neither logs nor ``sekimori config dump`` can show them.

Non-goals: connection pooling (a firewall API call is rare next to its latency), HTTP/2,
proxies, cookies or session logins.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sensor.errors import ResponderError

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429})  # plus every 5xx
MAX_BODY_SHOWN = 200  # characters of an API's error body quoted in an error message


class ApiError(ResponderError):
    """A vendor API refused a request (4xx) or kept failing; ``status`` 0: no answer."""

    def __init__(self, message: str, status: int = 0, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


@dataclass(frozen=True)
class HttpSettings:
    """Where a target is and how patiently it is asked (from its ``[blocks.<name>]``)."""

    base_url: str
    timeout_s: float = 5.0  # one attempt (connect + answer)
    retries: int = 4  # extra attempts after the first for transient failures
    backoff_s: float = 0.25  # first backoff; doubles per attempt (full jitter)
    backoff_max_s: float = 4.0
    retry_budget_s: float = 8.0  # no new attempt after this (the manager's call timeout is 10 s)
    rate_per_s: float = 5.0  # token bucket: sustained requests per second ...
    burst: int = 5  # ... and how many may go at once
    verify: bool = True
    ca_file: str | None = None

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.base_url).netloc


def _number(config: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ResponderError(f"{where}.{key}: expected a non-negative number, got {value!r}")
    return float(value)


def http_settings(
    config: Mapping[str, Any],
    where: str,
    *,
    url: str | None = None,
    rate_per_s: float = 5.0,
    burst: int = 5,
) -> HttpSettings:
    """Parse the connection keys of a target table: ``url``, ``timeout``, ``retries``,
    ``backoff``, ``retry-budget``, ``rate`` (requests/s), ``burst``, ``tls-verify``,
    ``ca-file``. ``url`` may be given by the vendor module (e.g. AWS's regional endpoint)."""
    base = config.get("url", url)
    if not isinstance(base, str) or not base:
        raise ResponderError(f"{where}.url: required (e.g. https://firewall.example.net)")
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ResponderError(f"{where}.url: {base!r} is not an http(s) URL")
    verify = config.get("tls-verify", True)
    if not isinstance(verify, bool):
        raise ResponderError(f"{where}.tls-verify: expected true or false")
    ca_file = config.get("ca-file")
    if ca_file is not None and (not isinstance(ca_file, str) or not os.path.isfile(ca_file)):
        raise ResponderError(f"{where}.ca-file: {ca_file!r} is not a readable file")
    rate = _number(config, "rate", rate_per_s, where)
    if rate <= 0:
        raise ResponderError(f"{where}.rate: must be > 0 requests per second")
    return HttpSettings(
        base_url=base.rstrip("/"),
        timeout_s=_number(config, "timeout", 5.0, where) or 5.0,
        retries=int(_number(config, "retries", 4, where)),
        backoff_s=_number(config, "backoff", 0.25, where),
        backoff_max_s=_number(config, "backoff-max", 4.0, where),
        retry_budget_s=_number(config, "retry-budget", 8.0, where),
        rate_per_s=rate,
        burst=max(1, int(_number(config, "burst", burst, where))),
        verify=verify,
        ca_file=ca_file,
    )


def secret(config: Mapping[str, Any], name: str, where: str, *, default_env: str = "") -> str:
    """A credential from ``<name>-env`` (variable name) or ``<name>-file`` (path).

    A literal ``<name>`` key is refused: secrets never live in the TOML file. Errors name
    the key and the variable or file, never the value."""
    if name in config:
        raise ResponderError(
            f"{where}.{name}: put the secret in an environment variable ({name}-env) "
            f"or a file ({name}-file), not in the configuration"
        )
    path = config.get(f"{name}-file")
    if path:
        try:
            with open(str(path), encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError as exc:
            raise ResponderError(
                f"{where}.{name}-file: cannot read {path}: {exc.strerror}"
            ) from exc
        if not value:
            raise ResponderError(f"{where}.{name}-file: {path} is empty")
        return value
    env = str(config.get(f"{name}-env", default_env) or "")
    if not env:
        raise ResponderError(f"{where}: set {name}-env or {name}-file")
    value = os.environ.get(env, "").strip()
    if not value:
        raise ResponderError(f"{where}.{name}-env: environment variable {env} is not set")
    return value


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``take`` waits for one.

    Thread-safe: the block manager may call one responder from several worker threads."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate = rate_per_s
        self.burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self, sleep: Callable[[float], None] = time.sleep) -> None:
        while True:
            with self._lock:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                wait = (1.0 - self._tokens) / self.rate
            sleep(wait)


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes = b""
    attempts: int = 1

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise ResponderError(f"answer is not JSON: {self.body[:MAX_BODY_SHOWN]!r}") from exc

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class _Attempt:
    """What one try produced: an answer or why there was none."""

    response: Response | None = None
    error: str = ""
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


class HttpClient:
    """Requests to one target; see the module docstring for the retry and error rules."""

    def __init__(
        self,
        settings: HttpSettings,
        vendor: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.vendor = vendor
        self.bucket = TokenBucket(settings.rate_per_s, settings.burst)
        self._sleep = sleep
        self._rng = rng or random.Random()
        parts = urllib.parse.urlsplit(settings.base_url)
        self._scheme = parts.scheme
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._ssl = self._context() if parts.scheme == "https" else None
        self.requests_sent = 0  # every attempt, for stats and tests

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.settings.ca_file)
        if not self.settings.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def url_path(self, path: str, query: Mapping[str, Any] | None = None) -> str:
        full = (self._prefix + path) or "/"
        if query:
            full += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        return full

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, Any] | None = None,
        sign: Callable[[str, str, dict[str, str], bytes], None] | None = None,
    ) -> Response:
        """One logical request; ``sign`` (AWS) adds headers per attempt (fresh dates)."""
        target = self.url_path(path, query)
        what = f"{self.vendor} {self.settings.host}: {method} {path}"
        started = time.monotonic()
        delay = self.settings.backoff_s
        attempt = 0
        while True:
            attempt += 1
            hdrs = dict(headers or {})
            if sign is not None:
                sign(method, target, hdrs, body or b"")
            result = self._once(method, target, body, hdrs)
            response = result.response
            if response is not None and response.status < 400:
                return Response(response.status, response.headers, response.body, attempt)
            if response is not None and not _transient(response.status):
                raise ApiError(
                    f"{what}: HTTP {response.status}: {_excerpt(response.body)}",
                    response.status,
                    response.body,
                )
            why = result.error or f"HTTP {response.status if response else 0}"
            elapsed = time.monotonic() - started
            wait = self._rng.uniform(0.0, min(delay, self.settings.backoff_max_s))
            if result.retry_after is not None:
                wait = max(wait, result.retry_after)
            if attempt > self.settings.retries or elapsed + wait > self.settings.retry_budget_s:
                status = response.status if response else 0
                raise ApiError(f"{what}: {why} (gave up after {attempt} attempt(s))", status,
                               response.body if response else b"")  # fmt: skip
            log.info("%s: %s; retrying in %.2f s", what, why, wait)
            self._sleep(wait)
            delay *= 2

    def _once(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> _Attempt:
        self.bucket.take(self._sleep)
        self.requests_sent += 1
        timeout = self.settings.timeout_s
        conn: http.client.HTTPConnection
        if self._ssl is not None:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        headers.setdefault("User-Agent", "sekimori-responder")
        try:
            conn.request(method, target, body=body, headers=headers)
            raw = conn.getresponse()
            data = raw.read()
            hdrs = {k.lower(): v for k, v in raw.getheaders()}
        except ssl.SSLCertVerificationError as exc:
            raise ApiError(
                f"{self.vendor} {self.settings.host}: TLS certificate not trusted "
                f"({exc.verify_message}); set ca-file to the CA that signed it"
            ) from exc
        except TimeoutError:
            return _Attempt(error=f"no answer within {timeout:g} s")
        except (OSError, http.client.HTTPException) as exc:
            return _Attempt(error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
        response = Response(raw.status, hdrs, data)
        return _Attempt(response, retry_after=retry_after_s(hdrs.get("retry-after"), time.time()))


def _transient(status: int) -> bool:
    return status >= 500 or status in RETRY_STATUSES


def _excerpt(body: bytes) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text[:MAX_BODY_SHOWN] + ("…" if len(text) > MAX_BODY_SHOWN else "") or "(empty body)"


def json_body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()
