"""AWS Signature Version 4, written from the published algorithm with hashlib and hmac.

Scope: sign one request (method, path with query, headers, body) for a service and
region: canonical request, string to sign, derived key, ``Authorization`` header
("Create a signed AWS API request",
https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html).
Non-goals: presigned URLs, chunked (streaming) payloads, SigV4a.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import urllib.parse
from collections.abc import MutableMapping
from dataclasses import dataclass

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(access_key={self.access_key[:4]}…)"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _canonical_query(query: str) -> str:
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    return "&".join(
        f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
        for k, v in sorted(pairs)
    )


def sign_request(
    creds: Credentials,
    *,
    method: str,
    host: str,
    target: str,
    headers: MutableMapping[str, str],
    body: bytes,
    region: str,
    service: str,
    now: dt.datetime | None = None,
) -> None:
    """Add ``X-Amz-Date``, ``Host`` (if missing), the session token and ``Authorization``."""
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    headers["X-Amz-Date"] = when
    headers.setdefault("Host", host)
    if creds.session_token:
        headers["X-Amz-Security-Token"] = creds.session_token
    path, _, query = target.partition("?")
    canonical_headers = {k.lower().strip(): " ".join(v.split()) for k, v in headers.items()}
    signed = ";".join(sorted(canonical_headers))
    canonical = "\n".join(
        [
            method,
            urllib.parse.quote(path or "/", safe="/-_.~"),
            _canonical_query(query),
            "".join(f"{k}:{canonical_headers[k]}\n" for k in sorted(canonical_headers)),
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{when[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, when, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + creds.secret_key).encode(), when[:8])
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={signature}"
    )
