"""Cloudflare block responder: IP Access rules (mode ``block``) at zone or account scope,
with an API token (bearer).

Endpoints (Cloudflare API v4, "IP Access rules":
https://developers.cloudflare.com/api/resources/firewall/subresources/access_rules/ ,
product page https://developers.cloudflare.com/waf/tools/ip-access-rules/ , token
authentication https://developers.cloudflare.com/fundamentals/api/get-started/create-token/ ,
rate limit 1,200 requests per five minutes
https://developers.cloudflare.com/fundamentals/api/reference/limits/):

- ``POST   /client/v4/{zones|accounts}/<id>/firewall/access_rules/rules`` with
  ``{"mode": "block", "configuration": {"target": "ip"|"ip6"|"ip_range", "value": ...},
  "notes": "sekimori <block id>: <reason>"}`` → ``{"success": true, "result": {"id"}}``;
- ``GET    .../firewall/access_rules/rules?mode=block&notes=sekimori&page=N&per_page=100``
  → ``{"result": [...], "result_info": {"page", "total_pages"}}``;
- ``DELETE .../firewall/access_rules/rules/<rule id>``;
- ``GET    /client/v4/user/tokens/verify`` (``responders check``: the token is active).

Rules whose notes start with ``sekimori`` are sekimori's own; others are never touched.
``ip_range`` takes IPv4 /16 and /24 and IPv6 /32, /48 and /64 only: other prefixes are
refused with that reason. No per-rule expiry: the ledger's reconciliation removes ended
blocks (``can_expire = False``). One rule per call (the API has no bulk create for access
rules). Default rate 4 requests/s, the account limit.

Config (``[blocks.cloudflare]``): ``zone-id`` or ``account-id`` (one of them),
``token-env``/``token-file``, ``url`` (default https://api.cloudflare.com/client/v4) and
the HTTP keys of http.py.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from responders.plugin import BlockRequest
from responders.plugins.base import ApiBlockResponder, cidr_of, host_or_cidr
from responders.plugins.http import ApiError, json_body, secret
from sensor.errors import ResponderError

API_URL = "https://api.cloudflare.com/client/v4"
NOTE_PREFIX = "sekimori"
RANGE_PREFIXES = {4: (16, 24), 6: (32, 48, 64)}


def configuration_of(cidr: str) -> dict[str, str]:
    """The ``configuration`` object for an address or range (documented targets only)."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.prefixlen == net.max_prefixlen:
        return {"target": "ip" if net.version == 4 else "ip6", "value": host_or_cidr(cidr)}
    if net.prefixlen not in RANGE_PREFIXES[net.version]:
        allowed = ", ".join(f"/{p}" for p in RANGE_PREFIXES[net.version])
        raise ResponderError(f"cloudflare: {cidr}: ip_range rules take only {allowed}")
    return {"target": "ip_range", "value": str(net)}


class CloudflareResponder(ApiBlockResponder):
    name: ClassVar[str] = "cloudflare"
    can_expire: ClassVar[bool] = False
    default_rate: ClassVar[float] = 4.0
    default_burst: ClassVar[int] = 4

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config, url=API_URL)
        zone, account = config.get("zone-id"), config.get("account-id")
        if bool(zone) == bool(account):
            raise ResponderError(f"{self.where}: set exactly one of zone-id or account-id")
        self.scope = f"/zones/{zone}" if zone else f"/accounts/{account}"
        self._auth = "Bearer " + secret(config, "token", self.where)
        self._ids: dict[str, str] = {}  # cidr → rule id, from the last listing or create
        self._lock = threading.Lock()

    def _call(self, method: str, path: str, payload: Any = None, query: Any = None) -> Any:
        headers = {"Authorization": self._auth}
        body = None
        if payload is not None:
            body = json_body(payload)
            headers["Content-Type"] = "application/json"
        answer = self.http.request(method, path, body=body, headers=headers, query=query).json()
        if not isinstance(answer, dict) or answer.get("success") is not True:
            raise ResponderError(
                f"cloudflare {self.http.settings.host}: {method} {path}: {answer!r}"
            )
        return answer

    def _rules_path(self) -> str:
        return f"{self.scope}/firewall/access_rules/rules"

    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        for req in requests:
            cidr = str(cidr_of(req.cidr))
            payload = {
                "mode": "block",
                "configuration": configuration_of(cidr),
                "notes": f"{NOTE_PREFIX} {req.block_id}: {req.reason}"[:500],
            }
            try:
                answer = self._call("POST", self._rules_path(), payload)
            except ApiError as exc:
                # A rule for this address already exists (ours from an earlier try): done.
                if exc.status == 400 and cidr in self.list_blocks():
                    continue
                raise
            rule_id = answer.get("result", {}).get("id")
            if rule_id:
                with self._lock:
                    self._ids[cidr] = str(rule_id)

    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        for req in requests:
            cidr = str(cidr_of(req.cidr))
            with self._lock:
                rule_id = self._ids.get(cidr)
            if rule_id is None:
                self.list_blocks()
                with self._lock:
                    rule_id = self._ids.get(cidr)
            if rule_id is None:
                continue  # not there: unblocking is idempotent
            try:
                self._call("DELETE", f"{self._rules_path()}/{rule_id}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
            with self._lock:
                self._ids.pop(cidr, None)

    def list_blocks(self) -> Mapping[str, float | None]:
        ids: dict[str, str] = {}
        page, pages = 1, 1
        while page <= pages:
            answer = self._call(
                "GET",
                self._rules_path(),
                query={"mode": "block", "notes": NOTE_PREFIX, "page": page, "per_page": 100},
            )
            for rule in answer.get("result") or []:
                notes = str(rule.get("notes", ""))
                value = str(rule.get("configuration", {}).get("value", ""))
                cidr = cidr_of(value)
                if notes.startswith(NOTE_PREFIX) and rule.get("mode") == "block" and cidr:
                    ids[cidr] = str(rule.get("id"))
            info = answer.get("result_info") or {}
            pages = int(info.get("total_pages") or 1)
            page += 1
        with self._lock:
            self._ids = ids
        return dict.fromkeys(ids)

    def probe_details(self) -> list[str]:
        answer = self._call("GET", "/user/tokens/verify")
        status = answer.get("result", {}).get("status")
        if status != "active":
            raise ResponderError(f"cloudflare: the API token is {status!r}, not active")
        return ["API token is active"]
