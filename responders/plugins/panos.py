"""Palo Alto Networks PAN-OS block responder: the User-ID XML API registers each address
with a tag (with a timeout) that a Dynamic Address Group matches; unblock unregisters it.

Endpoints and payloads (PAN-OS XML API):

- ``POST /api/`` form ``type=user-id&cmd=<uid-message>`` with
  ``<register><entry ip="203.0.113.5"><tag><member timeout="3600">sekimori</member>
  </tag></entry></register>`` (and ``<unregister>`` without the timeout): "Apply User-ID
  Mapping and Populate Dynamic Groups (API)",
  https://docs.paloaltonetworks.com/pan-os/10-1/pan-os-panorama-api/pan-os-xml-api-request-types/apply-user-id-mapping-and-populate-dynamic-address-groups-api.html,
  and the register/unregister message format with the per-tag ``timeout`` and the
  objects allowed (IPv4/IPv6 hosts; IPv4 networks from PAN-OS 10.0),
  http://api-lab.paloaltonetworks.com/registered-ip.html;
- ``POST /api/`` form ``type=op&cmd=<show><object><registered-ip><tag><entry
  name="sekimori"/></tag></registered-ip></object></show>``: the addresses carrying the
  tag ("Run Operational Mode Commands (API)",
  https://docs.paloaltonetworks.com/pan-os/10-1/pan-os-panorama-api/pan-os-xml-api-request-types/run-operational-mode-commands-api.html);
- the API key goes in the ``X-PAN-KEY`` header ("Get Your API Key",
  https://docs.paloaltonetworks.com/pan-os/10-1/pan-os-panorama-api/get-started-with-the-pan-os-xml-api/get-your-api-key.html),
  so it never appears in a URL or an access log.

Answers are ``<response status="success">`` or ``status="error"`` with ``<msg>``. Many
entries go in one message (``batch``, default 500). The tag timeout is native expiry
(``can_expire``): each entry gets the ledger's remaining time capped at a lease and is
re-asserted before it lapses. The listing does not show the remaining timeout, so the
expiry reported for an entry is the one this process registered (unknown entries, e.g.
after a restart, report none and are re-asserted once).

Config (``[blocks.panos]``): ``url``, ``tag`` (default ``sekimori``), ``vsys``,
``api-key-env``/``api-key-file``, ``subnets`` (allow IPv4 networks: PAN-OS >= 10.0),
``batch`` and the HTTP keys of http.py.
"""

from __future__ import annotations

import ipaddress
import re
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from xml.sax.saxutils import quoteattr

from responders.plugin import BlockRequest
from responders.plugins.base import ApiBlockResponder, chunks, cidr_of, host_or_cidr
from responders.plugins.http import secret
from sensor.errors import ResponderError

MAX_TIMEOUT_S = 2_592_000  # the largest tag timeout PAN-OS accepts (30 days)
TAG_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,127}$")


class PanosResponder(ApiBlockResponder):
    name: ClassVar[str] = "panos"
    can_expire: ClassVar[bool] = True
    default_rate: ClassVar[float] = 5.0
    default_burst: ClassVar[int] = 5
    default_batch: ClassVar[int] = 500

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        tag = config.get("tag", "sekimori")
        if not isinstance(tag, str) or not TAG_NAME.match(tag):
            raise ResponderError(f"{self.where}.tag: letters, digits, '.', '_' or '-'")
        self.tag = tag
        vsys = config.get("vsys")
        self.vsys = str(vsys) if vsys else None
        self.subnets = bool(config.get("subnets", False))
        self._key = secret(config, "api-key", self.where)
        self._registered: dict[str, float] = {}  # cidr → expiry this process registered
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------

    def _api(self, kind: str, cmd: str) -> ET.Element:
        form = {"type": kind, "cmd": cmd}
        if self.vsys and kind == "user-id":
            form["vsys"] = self.vsys
        response = self.http.request(
            "POST",
            "/api/",
            body=urllib.parse.urlencode(form).encode(),
            headers={
                "X-PAN-KEY": self._key,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        try:
            root = ET.fromstring(response.body)
        except ET.ParseError as exc:
            raise ResponderError(
                f"panos {self.http.settings.host}: answer is not XML ({exc})"
            ) from exc
        if root.get("status") != "success":
            msg = " ".join(t.strip() for t in root.itertext() if t.strip()) or "no message"
            raise ResponderError(f"panos {self.http.settings.host}: {kind} refused: {msg}")
        return root

    def _address(self, cidr: str) -> str:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.prefixlen != net.max_prefixlen and not (self.subnets and net.version == 4):
            raise ResponderError(
                f"{self.where}: {cidr}: PAN-OS registers single addresses"
                + (" (IPv4 networks need subnets = true, PAN-OS 10.0+)" if net.version == 4 else "")
            )
        return host_or_cidr(cidr)

    def _message(self, verb: str, entries: str) -> str:
        return (
            "<uid-message><version>2.0</version><type>update</type><payload>"
            f"<{verb}>{entries}</{verb}></payload></uid-message>"
        )

    # -- the contract ----------------------------------------------------------------------

    def block_many(self, requests: Sequence[BlockRequest]) -> None:
        now = time.time()
        for part in chunks(requests, self.batch):
            entries = []
            expiries = {}
            for req in part:
                timeout = min(self.timeout_for(req, now), MAX_TIMEOUT_S)
                entries.append(
                    f"<entry ip={quoteattr(self._address(req.cidr))}><tag>"
                    f'<member timeout="{timeout}">{self.tag}</member></tag></entry>'
                )
                expiries[str(cidr_of(req.cidr))] = now + timeout
            self._api("user-id", self._message("register", "".join(entries)))
            with self._lock:
                self._registered.update(expiries)

    def unblock_many(self, requests: Sequence[BlockRequest]) -> None:
        for part in chunks(requests, self.batch):
            entries = "".join(
                f"<entry ip={quoteattr(host_or_cidr(req.cidr))}><tag>"
                f"<member>{self.tag}</member></tag></entry>"
                for req in part
            )
            self._api("user-id", self._message("unregister", entries))
            with self._lock:
                for req in part:
                    self._registered.pop(str(cidr_of(req.cidr)), None)

    def list_blocks(self) -> Mapping[str, float | None]:
        cmd = (
            "<show><object><registered-ip><tag>"
            f"<entry name={quoteattr(self.tag)}/></tag></registered-ip></object></show>"
        )
        root = self._api("op", cmd)
        now = time.time()
        found: dict[str, float | None] = {}
        with self._lock:
            for entry in root.iter("entry"):
                cidr = cidr_of(entry.get("ip", ""))
                tags = {m.text for m in entry.iter("member")}
                if cidr is None or (tags and self.tag not in tags):
                    continue
                expiry = self._registered.get(cidr)
                found[cidr] = expiry if expiry is not None and expiry > now else None
        return found
