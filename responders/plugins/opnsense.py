"""OPNsense block responder: addresses in a named firewall alias through the alias utility
API (``alias_util``), authenticated with an API key and secret (HTTP basic auth).

Endpoints (OPNsense core API reference,
https://docs.opnsense.org/development/api/core/firewall.html, controller ``alias_util``;
authentication: https://docs.opnsense.org/development/how-tos/api.html):

- ``GET  /api/firewall/alias_util/list/<alias>`` → ``{"total", "rowCount", "current",
  "rows": [{"ip": "203.0.113.5"}, ...]}``: the alias's current table;
- ``POST /api/firewall/alias_util/add/<alias>`` with ``{"address": "203.0.113.5"}`` →
  ``{"status": "done"}``;
- ``POST /api/firewall/alias_util/delete/<alias>`` with ``{"address": ...}`` →
  ``{"status": "done"}``;
- ``GET  /api/firewall/alias_util/aliases`` → the alias names (``responders check``).

The alias should be of type *External (advanced)* (https://docs.opnsense.org/manual/aliases.html):
its content is set only through the API, so it is sekimori's own, and a firewall rule
blocks ``source: <alias>``. OPNsense has no per-entry expiry: the ledger's reconciliation
removes ended blocks (``can_expire = False``). One address per call (the API takes one).

Config (``[blocks.opnsense]``): ``url``, ``alias`` (default ``sekimori_block``),
``key-env``/``key-file``, ``secret-env``/``secret-file``, and the HTTP keys of http.py.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from responders.plugin import BlockRequest
from responders.plugins.base import ApiBlockResponder, cidr_of, host_or_cidr
from responders.plugins.http import json_body, secret
from sensor.errors import ResponderError

ALIAS_NAME = re.compile(r"^[A-Za-z0-9_]{1,31}$")  # OPNsense alias names
BASE = "/api/firewall/alias_util"


class OpnsenseResponder(ApiBlockResponder):
    name: ClassVar[str] = "opnsense"
    can_expire: ClassVar[bool] = False
    default_rate: ClassVar[float] = 10.0
    default_burst: ClassVar[int] = 5

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        alias = config.get("alias", "sekimori_block")
        if not isinstance(alias, str) or not ALIAS_NAME.match(alias):
            raise ResponderError(f"{self.where}.alias: letters, digits and _ (at most 31)")
        self.alias = alias
        pair = f"{secret(config, 'key', self.where)}:{secret(config, 'secret', self.where)}"
        self._auth = "Basic " + base64.b64encode(pair.encode()).decode()

    def _call(self, method: str, action: str, payload: Any = None) -> Any:
        headers = {"Authorization": self._auth, "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json_body(payload)
            headers["Content-Type"] = "application/json"
        path = f"{BASE}/{action}"
        return self.http.request(method, path, body=body, headers=headers).json()

    def _change(self, verb: str, cidr: str) -> None:
        answer = self._call("POST", f"{verb}/{urllib.parse.quote(self.alias)}",
                            {"address": host_or_cidr(cidr)})  # fmt: skip
        status = answer.get("status") if isinstance(answer, dict) else None
        if status != "done":
            raise ResponderError(
                f"opnsense {self.http.settings.host}: {verb} {cidr} in alias {self.alias}: "
                f"answered {answer!r}"
            )

    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        for req in requests:
            self._change("add", req.cidr)

    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        for req in requests:
            self._change("delete", req.cidr)

    def list_blocks(self) -> Mapping[str, float | None]:
        answer = self._call("GET", f"list/{urllib.parse.quote(self.alias)}")
        rows = answer.get("rows") if isinstance(answer, dict) else None
        if not isinstance(rows, list):
            raise ResponderError(
                f"opnsense {self.http.settings.host}: list of alias {self.alias}: no rows"
            )
        found: dict[str, float | None] = {}
        for row in rows:
            cidr = cidr_of(str(row.get("ip", ""))) if isinstance(row, dict) else None
            if cidr is not None:
                found[cidr] = None
        return found

    def probe_details(self) -> list[str]:
        names = self._call("GET", "aliases")
        known = names if isinstance(names, list) else list(names or {})
        if self.alias not in known:
            raise ResponderError(
                f"opnsense {self.http.settings.host}: alias {self.alias!r} does not exist; "
                "create it (type External (advanced)) and a rule that blocks it"
            )
        return [f"alias {self.alias} exists"]
