"""Password guessing against authentication services, from flow behaviour.

Scope: ``BruteForceDetector``, a PacketObserver keyed by (client, server, service port).
Within a tumbling ``window`` it counts
- sessions (counted at the server's first data: banner or reply) for the session services (SSH, FTP, RDP,
  telnet, VNC by default: one session is roughly one or a few guesses),
- failed-login replies the server sends in clear text (FTP ``530``, SMTP ``535``, POP3
  ``-ERR``, IMAP tagged ``NO``, telnet ``Login incorrect``, HTTP ``401`` on an HTTP port),
- HTTP POSTs to a configured login path,
and alerts once per key and window when any count reaches its threshold. An alert raised
on a server's reply names the client as the source through the signature's ``target``.

Memory: at most ``max_entries`` keys (LRU, evictions counted). Non-goals: decrypting TLS
or SSH (their failures are invisible; session counts stand in), credential extraction,
per-user tracking.
"""

from __future__ import annotations

from sensor.behaviour.settings import BruteForceConfig
from sensor.behaviour.sigs import behaviour_signature
from sensor.behaviour.table import LruTable
from sensor.packet import IPPROTO_TCP, Packet
from signatures.rule import Signature

_SERVICE_SIDS = {"ssh": 9100200, "ftp": 9100201, "rdp": 9100202, "telnet": 9100203,
                 "smtp": 9100204, "pop3": 9100205, "imap": 9100206, "vnc": 9100207,
                 "http": 9100208}  # fmt: skip
_OTHER_SID = 9100209

# First bytes of a server reply that mean "login failed", per service.
_FAILURES: dict[str, tuple[bytes, ...]] = {
    "ftp": (b"530 ", b"530-"),
    "smtp": (b"535 ", b"535-"),
    "pop3": (b"-ERR",),
    "telnet": (b"Login incorrect", b"\r\nLogin incorrect"),
    "http": (b"HTTP/1.1 401", b"HTTP/1.0 401"),
}


class _Count:
    __slots__ = ("alerted", "attempts", "failures", "sessions", "start")

    def __init__(self, start: int) -> None:
        self.start = start
        self.sessions = self.failures = self.attempts = 0
        self.alerted = False


def _imap_failure(payload: bytes) -> bool:
    """A tagged ``NO`` reply (``a001 NO [AUTHENTICATIONFAILED] ...``)."""
    tag, _, rest = payload.partition(b" ")
    return bool(tag) and tag != b"*" and rest[:3] == b"NO "


class BruteForceDetector:
    def __init__(self, config: BruteForceConfig) -> None:
        self._cfg = config
        services = {port: name for name, ports in config.services for port in ports}
        for port in config.http_ports:
            services.setdefault(port, "http")
        self._services = services
        self._session_services = frozenset(config.session_services)
        self._login_paths = tuple(p.encode() for p in config.http_login_paths)
        self._table: LruTable[_Count] = LruTable(config.max_entries)
        self._seen: LruTable[bool] = LruTable(config.max_entries)  # flows already counted
        self._sigs: dict[str, tuple[Signature, Signature]] = {}
        for name in {*services.values()}:
            sid = _SERVICE_SIDS.get(name, _OTHER_SID)
            msg = f"SEKIMORI BRUTEFORCE repeated login attempts against {name.upper()}"
            self._sigs[name] = (
                behaviour_signature(sid, msg, "attempted-user", proto="tcp", target="dest_ip"),
                behaviour_signature(sid, msg, "attempted-user", proto="tcp", target="src_ip"),
            )
        self.alerts = 0

    def observe(self, p: Packet) -> list[Signature] | None:
        fl = p.flow
        if p.proto != IPPROTO_TCP or fl is None or p.l4_off < 0:
            return None
        service = self._services.get(fl.dport)
        if service is None:
            return None
        if p.to_server:
            if service != "http" or p.payload[:5] != b"POST " or not self._login(p.payload):
                return None
            entry = self._entry(fl.src, fl.dst, fl.dport, p.ts_sec)
            entry.attempts += 1
        else:
            if not p.payload:
                return None
            entry = self._entry(fl.src, fl.dst, fl.dport, p.ts_sec)
            if service in self._session_services and self._seen.get(fl.flow_id) is None:
                # First data from the server (SSH/FTP banner, RDP reply): a session the
                # service really served, unlike a scanner's half-open or probe connection.
                self._seen.put(fl.flow_id, True)
                entry.sessions += 1
            if self._failed(service, p.payload):
                entry.failures += 1
        return self._verdict(entry, service, p.to_server)

    def _entry(self, client: int, server: int, port: int, now: int) -> _Count:
        key = (client, server, port)
        entry = self._table.get(key)
        if entry is None or now - entry.start >= self._cfg.window:
            entry = _Count(now)
            self._table.put(key, entry)
        return entry

    def _verdict(self, e: _Count, service: str, to_server: bool) -> list[Signature] | None:
        cfg = self._cfg
        if e.alerted:
            return None
        if (
            (cfg.sessions and e.sessions >= cfg.sessions)
            or (cfg.failures and e.failures >= cfg.failures)
            or (cfg.http_attempts and e.attempts >= cfg.http_attempts)
        ):
            e.alerted = True
            self.alerts += 1
            return [self._sigs[service][0 if to_server else 1]]
        return None

    def _login(self, payload: bytes) -> bool:
        line = payload[5 : payload.find(b" ", 5)] if b" " in payload[5:] else payload[5:]
        path = line.split(b"?", 1)[0]
        return any(path == lp or path.startswith(lp + b"/") for lp in self._login_paths)

    @staticmethod
    def _failed(service: str, payload: bytes) -> bool:
        if service == "imap":
            return _imap_failure(payload)
        markers = _FAILURES.get(service)
        return markers is not None and payload.startswith(markers)

    def stats(self) -> dict[str, int]:
        return {"bruteforce.alerts": self.alerts, "bruteforce.tracked": len(self._table),
                "bruteforce.evicted": self._table.evictions}  # fmt: skip

    def close(self) -> None:
        pass
