"""AWS WAFv2 IP set block responder: the whole address list of a dedicated IP set,
read-modified-written with the lock token, retried on ``WAFOptimisticLockException``.
Requests are signed with Signature Version 4 (sigv4.py; no AWS SDK).

Endpoints (AWS WAFV2 API Reference, JSON 1.1 protocol: ``POST /`` to
``https://wafv2.<region>.amazonaws.com`` with ``X-Amz-Target: AWSWAF_20190729.<Action>``
and ``Content-Type: application/x-amz-json-1.1``):

- ``GetIPSet`` ``{"Name", "Scope", "Id"}`` → ``{"IPSet": {"Addresses": [...], ...},
  "LockToken"}`` (https://docs.aws.amazon.com/waf/latest/APIReference/API_GetIPSet.html);
- ``UpdateIPSet`` ``{"Name", "Scope", "Id", "Addresses", "LockToken"}`` → ``{"NextLockToken"}``;
  it replaces the whole list; a stale token fails with ``WAFOptimisticLockException``
  (https://docs.aws.amazon.com/waf/latest/APIReference/API_UpdateIPSet.html);
- errors are ``{"__type": "...", "message": "..."}`` with a 4xx/5xx status
  (https://docs.aws.amazon.com/waf/latest/APIReference/CommonErrors.html);
- ``CLOUDFRONT`` scope must use us-east-1; an IP set holds at most 10,000 addresses
  (https://docs.aws.amazon.com/waf/latest/developerguide/limits.html).

The IP set is sekimori's own (every address in it is managed). One set per address family
(``ip-set-id`` for IPv4, ``ip-set-id-v6`` for IPv6). A batch is one read-modify-write, so
reconciliation of many blocks costs two calls; calls are paced at one per second by
default. No per-entry expiry: the ledger's reconciliation removes ended blocks.

Config (``[blocks.awswaf]``): ``region``, ``scope`` (REGIONAL | CLOUDFRONT),
``ip-set-name``/``ip-set-id`` and/or ``ip-set-name-v6``/``ip-set-id-v6``,
``access-key-id-env`` (default AWS_ACCESS_KEY_ID) / ``-file``, ``secret-access-key-env``
(default AWS_SECRET_ACCESS_KEY) / ``-file``, ``session-token-env`` (optional),
``url`` (endpoint override), ``lock-retries`` (default 5) and the HTTP keys of http.py.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar

from responders.plugin import BlockRequest
from responders.plugins.base import ApiBlockResponder, cidr_of
from responders.plugins.http import ApiError, json_body, secret
from responders.plugins.sigv4 import Credentials, sign_request
from sensor.errors import ResponderError

TARGET_PREFIX = "AWSWAF_20190729."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_ADDRESSES = 10_000
LOCK_EXCEPTION = "WAFOptimisticLockException"
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


def _family_sets(config: Mapping[str, Any], where: str) -> dict[int, tuple[str, str]]:
    sets: dict[int, tuple[str, str]] = {}
    for version, suffix in ((4, ""), (6, "-v6")):
        name, ident = config.get(f"ip-set-name{suffix}"), config.get(f"ip-set-id{suffix}")
        if bool(name) != bool(ident):
            raise ResponderError(f"{where}: set both ip-set-name{suffix} and ip-set-id{suffix}")
        if name:
            sets[version] = (str(name), str(ident))
    if not sets:
        raise ResponderError(f"{where}: set ip-set-name/ip-set-id (and/or the -v6 pair)")
    return sets


class AwsWafResponder(ApiBlockResponder):
    name: ClassVar[str] = "awswaf"
    can_expire: ClassVar[bool] = False
    default_rate: ClassVar[float] = 1.0
    default_burst: ClassVar[int] = 2
    default_batch: ClassVar[int] = MAX_ADDRESSES

    def __init__(self, config: Mapping[str, Any]) -> None:
        region = str(config.get("region", ""))
        if not REGION.match(region):
            raise ResponderError(f"blocks.awswaf.region: {region!r} is not a region name")
        super().__init__(config, url=f"https://wafv2.{region}.amazonaws.com")
        self.region = region
        self.scope = str(config.get("scope", "REGIONAL"))
        if self.scope not in ("REGIONAL", "CLOUDFRONT"):
            raise ResponderError(f"{self.where}.scope: REGIONAL or CLOUDFRONT")
        if self.scope == "CLOUDFRONT" and region != "us-east-1":
            raise ResponderError(f"{self.where}: CLOUDFRONT scope requires region us-east-1")
        self.sets = _family_sets(config, self.where)
        token_env = str(config.get("session-token-env", "AWS_SESSION_TOKEN"))
        self._creds = Credentials(
            secret(config, "access-key-id", self.where, default_env="AWS_ACCESS_KEY_ID"),
            secret(config, "secret-access-key", self.where, default_env="AWS_SECRET_ACCESS_KEY"),
            os.environ.get(token_env) or None,
        )
        retries = config.get("lock-retries", 5)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ResponderError(f"{self.where}.lock-retries: a non-negative integer")
        self.lock_retries = retries
        self._lock = threading.Lock()  # one read-modify-write at a time from this process
        self.conflicts = 0  # WAFOptimisticLockException seen (stats, tests)

    # -- plumbing --------------------------------------------------------------------------

    def _sign(
        self, method: str, target: str, headers: MutableMapping[str, str], body: bytes
    ) -> None:
        sign_request(
            self._creds,
            method=method,
            host=self.http.settings.host,
            target=target,
            headers=headers,
            body=body,
            region=self.region,
            service="wafv2",
        )

    def _call(self, action: str, payload: Mapping[str, Any]) -> Any:
        headers = {"X-Amz-Target": TARGET_PREFIX + action, "Content-Type": CONTENT_TYPE}
        response = self.http.request(
            "POST", "/", body=json_body(payload), headers=headers, sign=self._sign
        )
        return response.json()

    def _get(self, version: int) -> tuple[list[str], str]:
        name, ident = self.sets[version]
        answer = self._call("GetIPSet", {"Name": name, "Scope": self.scope, "Id": ident})
        try:
            return list(answer["IPSet"]["Addresses"]), str(answer["LockToken"])
        except (KeyError, TypeError) as exc:
            raise ResponderError(f"awswaf: GetIPSet {name}: unexpected answer") from exc

    def _modify(self, version: int, change: Callable[[set[str]], set[str]]) -> None:
        """Read, change, write; on a lock conflict read again (jittered), a few times."""
        name, ident = self.sets[version]
        for attempt in range(self.lock_retries + 1):
            addresses, token = self._get(version)
            current = {c for c in (cidr_of(a) for a in addresses) if c}
            wanted = change(set(current))
            if wanted == current:
                return
            if len(wanted) > MAX_ADDRESSES:
                raise ResponderError(
                    f"awswaf: IP set {name} would hold {len(wanted)} addresses "
                    f"(AWS allows {MAX_ADDRESSES})"
                )
            payload = {
                "Name": name,
                "Scope": self.scope,
                "Id": ident,
                "Addresses": sorted(wanted),
                "LockToken": token,
            }
            try:
                self._call("UpdateIPSet", payload)
                return
            except ApiError as exc:
                if LOCK_EXCEPTION not in exc.body.decode("utf-8", "replace"):
                    raise
                self.conflicts += 1
                if attempt == self.lock_retries:
                    raise ResponderError(
                        f"awswaf: IP set {name} kept changing under us "
                        f"({attempt + 1} lock conflicts); the next reconcile pass retries"
                    ) from exc
                time.sleep(random.uniform(0.05, 0.3))

    def _by_family(self, requests: Sequence[BlockRequest]) -> dict[int, set[str]]:
        out: dict[int, set[str]] = {}
        for req in requests:
            net = ipaddress.ip_network(req.cidr, strict=False)
            if net.version not in self.sets:
                raise ResponderError(f"awswaf: {req.cidr}: no IPv{net.version} IP set configured")
            out.setdefault(net.version, set()).add(str(net))
        return out

    # -- the contract ----------------------------------------------------------------------

    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        with self._lock:
            for version, cidrs in self._by_family(requests).items():
                self._modify(version, lambda s, add=cidrs: s | add)  # type: ignore[misc]

    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        with self._lock:
            for version, cidrs in self._by_family(requests).items():
                self._modify(version, lambda s, rm=cidrs: s - rm)  # type: ignore[misc]

    def list_blocks(self) -> Mapping[str, float | None]:
        found: dict[str, float | None] = {}
        for version in self.sets:
            addresses, _ = self._get(version)
            for text in addresses:
                cidr = cidr_of(text)
                if cidr is not None:
                    found[cidr] = None
        return found

    def probe_details(self) -> list[str]:
        return [
            f"IP set {name} ({self.scope}, {self.region}) readable"
            for name, _ in self.sets.values()
        ]
