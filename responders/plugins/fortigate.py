"""FortiGate block responder: the quarantine (banned IP) list of the FortiOS monitor API,
with native expiry, an API token (bearer) and a VDOM.

Endpoints (FortiOS REST API reference, Monitor API, ``user/banned``: FortiOS 6.0.4
REST API Reference, https://docs.fortinet.com/document/fortigate/6.0.0/rest-api-reference,
and the FNDN API browser https://fndn.fortinet.net/index.php?/fortiapi/1-fortios/ for
newer releases; token authentication: "REST API administrator",
https://docs.fortinet.com/document/fortigate/7.4.0/administration-guide/399023/rest-api-administrator):

- ``POST /api/v2/monitor/user/banned/add_users?vdom=<vdom>`` with
  ``{"ip_addresses": ["203.0.113.5", ...], "expiry": <seconds>}`` (0 would be indefinite:
  sekimori always sends the ledger's time capped at a lease);
- ``POST /api/v2/monitor/user/banned/clear_users?vdom=<vdom>`` with
  ``{"ip_addresses": [...]}``;
- ``GET  /api/v2/monitor/user/banned/select/?vdom=<vdom>`` → ``{"results": [{"ip_address",
  "ipv6", "created", "expires", "source"}], "status": "success"}`` (epoch seconds).
- ``Authorization: Bearer <token>`` on every call.

The list is shared with FortiGate's own quarantines (IPS, AV, DLP, DoS): only entries
whose ``source`` is in ``own-sources`` (default ``["administrative"]``, what an API ban
records) count as sekimori's; dedicate the API admin to sekimori so that holds. Many
addresses go in one call (``batch``, default 100); addresses in one call share one
expiry, so a batch is grouped by timeout (rounded down to the minute above ten minutes:
an entry may lapse up to a minute early and is re-asserted before it does). Single
addresses only (the list holds addresses, not networks).

Config (``[blocks.fortigate]``): ``url``, ``vdom`` (default ``root``), ``token-env``/
``token-file``, ``own-sources``, ``batch`` and the HTTP keys of http.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from responders.plugin import BlockRequest
from responders.plugins.base import ApiBlockResponder, chunks, cidr_of, host_or_cidr
from responders.plugins.http import json_body, secret
from sensor.errors import ResponderError

BASE = "/api/v2/monitor/user/banned"
MAX_EXPIRY_S = 31_536_000  # one year: the longest ban the GUI offers


def _group_timeout(seconds: int) -> int:
    return seconds if seconds < 600 else seconds - seconds % 60


class FortigateResponder(ApiBlockResponder):
    name: ClassVar[str] = "fortigate"
    can_expire: ClassVar[bool] = True
    default_rate: ClassVar[float] = 5.0
    default_burst: ClassVar[int] = 5
    default_batch: ClassVar[int] = 100

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.vdom = str(config.get("vdom", "root"))
        sources = config.get("own-sources", ["administrative"])
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise ResponderError(f"{self.where}.own-sources: a list of source names")
        self.own_sources = {s.lower() for s in sources}
        self._auth = "Bearer " + secret(config, "token", self.where)

    def _call(self, method: str, action: str, payload: Any = None) -> Any:
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json_body(payload)
            headers["Content-Type"] = "application/json"
        answer = self.http.request(
            method, f"{BASE}/{action}", body=body, headers=headers, query={"vdom": self.vdom}
        ).json()
        if isinstance(answer, dict) and answer.get("status") not in (None, "success"):
            raise ResponderError(
                f"fortigate {self.http.settings.host}: {action} (vdom {self.vdom}): {answer!r}"
            )
        return answer

    def _address(self, cidr: str) -> str:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.prefixlen != net.max_prefixlen:
            raise ResponderError(f"{self.where}: {cidr}: the quarantine list holds addresses only")
        return host_or_cidr(cidr)

    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        groups: dict[int, list[str]] = {}
        for req in requests:
            timeout = _group_timeout(min(self.timeout_for(req), MAX_EXPIRY_S))
            groups.setdefault(timeout, []).append(self._address(req.cidr))
        for timeout, addresses in sorted(groups.items()):
            for part in chunks(addresses, self.batch):
                self._call("POST", "add_users", {"ip_addresses": list(part), "expiry": timeout})

    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        addresses = [host_or_cidr(r.cidr) for r in requests]
        for part in chunks(addresses, self.batch):
            self._call("POST", "clear_users", {"ip_addresses": list(part)})

    def list_blocks(self) -> Mapping[str, float | None]:
        answer = self._call("GET", "select/")
        results = answer.get("results") if isinstance(answer, dict) else None
        if not isinstance(results, list):
            raise ResponderError(f"fortigate {self.http.settings.host}: select: no results list")
        found: dict[str, float | None] = {}
        for item in results:
            if not isinstance(item, dict):
                continue
            if str(item.get("source", "")).lower() not in self.own_sources:
                continue  # FortiGate's own quarantines (IPS, AV, ...) are not ours
            cidr = cidr_of(str(item.get("ip_address", "")))
            expires = item.get("expires")
            if cidr is not None:
                found[cidr] = (
                    float(expires) if isinstance(expires, int | float) and expires else None
                )
        return found
