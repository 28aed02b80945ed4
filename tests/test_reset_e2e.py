"""End to end: a SPAN-fed sensor and the tcp-reset responder kill live TCP sessions.

The lab (built here, torn down in finalizers): network namespaces for a client and a
server joined by a bridge in a third namespace; ``tc mirred`` copies every frame entering
the bridge from the client's and the server's ports (a ``u32`` match-all filter: some
kernels here lack ``matchall``) to a veth whose other end, in the test's namespace, is the
sensor's capture interface (the SPAN port); a second veth is a bridge port with MAC
learning off, the responder's injection port (with learning on, a spoofed RST would move
the client's MAC to it). A real redis-server, ``sekimori run --iface`` and ``sekimori
respond`` run as processes, joined by the same-host fast path (``respond.fast_socket``) as
well as the bus. Two rules: a stream content rule (sensor in detect mode) and an ``http.uri``
rule with the sensor in prevent mode (its inline timing parses the request on arrival), each
run twice: with the responder sending the RSTs, and with the sensor sending them itself
(``respond.tcp-reset.in_sensor``, capture loop at ``capture.rt-priority`` 10; the responder
records and watches). The client sends a request matching a ``drop`` rule; the server
holds its reply back for ``SERVER_DELAY_S``. Expected in prevent mode: both ends get
ECONNRESET before any response byte reaches the client, and the decision says
``confirmed``; in detect mode the same traffic completes and the decision is
``would_reset``. Capture-to-send latency is printed (docs/performance.md), never asserted.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parent.parent
SEKIMORI = [sys.executable, "-m", "cli.main"]
SERVER_DELAY_S = 0.3
SESSIONS = 50
GAP_S = 0.05  # between sessions
CLIENT_IP, SERVER_IP, PORT = "10.77.0.1", "10.77.0.2", 8080
RULE = 'drop tcp any any -> any 8080 (msg:"reset lab marker"; content:"EVIL-MARKER"; sid:4200001; rev:1;)\n'
# The same race with an application-layer rule: it needs the sensor in prevent mode, whose
# inline timing (stream.inline) parses the request on arrival; with Suricata's IDS timing the
# rule would fire only after the server's ACK, too late (docs/detection.md).
HTTP_RULE = 'drop http any any -> any 8080 (msg:"reset lab marker"; http.uri; content:"/EVIL-MARKER"; sid:4200001; rev:1;)\n'
# variant: (rule, the sensor's mode, whether the sensor sends the RSTs itself)
LAB_RULES = {
    "tcp-content": (RULE, "detect", False),
    "http-uri-prevent": (HTTP_RULE, "prevent", False),
    "tcp-content-in-sensor": (RULE, "detect", True),
    "http-uri-prevent-in-sensor": (HTTP_RULE, "prevent", True),
}

SERVER = textwrap.dedent(
    """
    import json, socket, sys, threading, time
    delay, ip, port = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ip, port)); srv.listen(256)
    print("ready", flush=True)
    lock = threading.Lock()
    def handle(conn):
        conn.settimeout(10)
        data, out = b"", "?"
        try:
            while b"\\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            time.sleep(delay)
            conn.sendall(b"RESPONSE-BYTES " * 20 + b"\\n")
            out = "sent"
        except ConnectionResetError:
            out = "reset"
        except BrokenPipeError:
            out = "epipe"
        except OSError as exc:
            out = type(exc).__name__
        finally:
            conn.close()
        with lock:
            print(json.dumps({"req": data.decode(errors="replace").strip(), "server": out}),
                  flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
    """
)

CLIENT = textwrap.dedent(
    """
    import json, socket, sys, time
    ip, port, n, gap, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
    for i in range(n):
        req = f"GET /EVIL-MARKER-{tag}-{i} HTTP/1.0\\n"
        out, got = "?", b""
        s = socket.create_connection((ip, port), timeout=5)
        s.settimeout(5)
        try:
            s.sendall(req.encode())
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    out = "closed"
                    break
                got += chunk
                if got.endswith(b"\\n"):
                    out = "data"
                    break
        except ConnectionResetError:
            out = "reset"
        except OSError as exc:
            out = type(exc).__name__
        finally:
            s.close()
        print(json.dumps({"req": req.strip(), "client": out, "bytes": len(got)}), flush=True)
        time.sleep(gap)
    """
)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=20)


class Lab:
    """The namespaces, bridge, SPAN mirror and injection port."""

    def __init__(self) -> None:
        tag = secrets.token_hex(2)
        self.br, self.cli, self.srv = f"skbr{tag}", f"skcl{tag}", f"sksv{tag}"
        self.capture, self.inject = f"skcap{tag}", f"skinj{tag}"
        self.tag = tag

    def build(self) -> None:
        br, t = self.br, self.tag
        for ns in (br, self.cli, self.srv):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", br, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", br, "link", "set", "br0", "up")
        for ns, port, inner, ip in ((self.cli, f"pc{t}", "c0", CLIENT_IP),
                                    (self.srv, f"ps{t}", "s0", SERVER_IP)):  # fmt: skip
            sh("ip", "link", "add", port, "netns", br, "type", "veth", "peer", "name", inner,
               "netns", ns)  # fmt: skip
            sh("ip", "-n", br, "link", "set", port, "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", inner)
            sh("ip", "-n", ns, "link", "set", inner, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # The injection port: a bridge port that never learns MAC addresses.
        sh("ip", "link", "add", self.inject, "type", "veth", "peer", "name", f"pi{t}", "netns", br)
        sh("ip", "-n", br, "link", "set", f"pi{t}", "master", "br0", "up")
        sh("bridge", "-n", br, "link", "set", "dev", f"pi{t}", "learning", "off")
        # The SPAN port: mirrored copies of what enters the bridge from client and server.
        sh("ip", "link", "add", self.capture, "type", "veth", "peer", "name", f"pm{t}", "netns", br)
        sh("ip", "-n", br, "link", "set", f"pm{t}", "up")
        for name in (self.capture, self.inject):
            sh("sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1")
            sh("ip", "link", "set", name, "up")
        for port in (f"pc{t}", f"ps{t}"):
            sh("tc", "-n", br, "qdisc", "add", "dev", port, "ingress")
            sh("tc", "-n", br, "filter", "add", "dev", port, "parent", "ffff:", "protocol", "all",
               "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "mirror", "dev",
               f"pm{t}")  # fmt: skip

    def destroy(self) -> None:
        for ns in (self.cli, self.srv, self.br):
            sh("ip", "netns", "del", ns, check=False)
        for name in (self.capture, self.inject):
            sh("ip", "link", "del", name, check=False)


def _start(argv: list[str], log: Path, ns: str | None = None) -> subprocess.Popen[str]:
    if ns is not None:
        argv = ["ip", "netns", "exec", ns, *argv]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    handle = log.open("w")
    return subprocess.Popen(argv, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, text=True,
                            env=env)  # fmt: skip


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _sessions(lab: Lab, count: int, tag: str, timeout: float) -> list[dict[str, Any]]:
    argv = ["ip", "netns", "exec", lab.cli, sys.executable, "-c", CLIENT, SERVER_IP, str(PORT),
            str(count), str(GAP_S), tag]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _server_results(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            out[row["req"]] = row["server"]
    return out


def _decisions(client: Any, after: str = "-") -> list[dict[str, str]]:
    rows = client.xrange("sekimori:decisions", min=after if after == "-" else f"({after}")
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in rows]


def _wait(predicate: Any, timeout: float, what: str, detail: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))
        time.sleep(0.1)


def _pcts(values: list[int]) -> str:
    ordered = sorted(values)
    rank = -(-len(ordered) * 99 // 100)
    return f"p50 {ordered[(len(ordered) - 1) // 2]} p99 {ordered[rank - 1]} max {ordered[-1]}"


@pytest.fixture
def lab(require_root: None) -> Iterator[Lab]:
    built = Lab()
    try:
        built.build()
        yield built
    finally:
        built.destroy()


def _config(tmp: Path, url: str, lab: Lab, mode: str, sensor_mode: str = "detect",
            in_sensor: bool = False) -> Path:  # fmt: skip
    path = tmp / f"sekimori-{mode}.toml"
    path.write_text(textwrap.dedent(f"""
        sensor-name = "lab-{lab.tag}"
        [sensor]
        mode = "{sensor_mode}"
        [capture]
        # The low-latency setup docs/performance.md recommends goes with in-sensor resets.
        rt-priority = {10 if in_sensor else 0}
        [outputs.redis]
        url = "{url}"
        [respond]
        mode = "{mode}"
        responders = ["tcp-reset"]
        group = "lab-{mode}"
        block_ms = 200
        fast_socket = "{tmp / "fast.sock"}"
        [respond.tcp-reset]
        interface = "{lab.inject}"
        watch_interface = "{lab.capture}"
        confirm_window_ms = 800
        in_sensor = {"true" if in_sensor else "false"}
    """))  # fmt: skip
    return path


@pytest.mark.parametrize("variant", sorted(LAB_RULES))
def test_resets_kill_both_ends_and_detect_mode_leaves_traffic(
    lab: Lab, redis_server: str, tmp_path: Path, variant: str
) -> None:
    rule, sensor_mode, sensor_resets = LAB_RULES[variant]
    rules = tmp_path / "lab.rules"
    rules.write_text(rule)
    client: Any = redis.Redis.from_url(redis_server, socket_timeout=5)
    procs: list[subprocess.Popen[str]] = []
    try:
        server_log = tmp_path / "server.log"
        procs.append(_start([sys.executable, "-c", SERVER, str(SERVER_DELAY_S), SERVER_IP,
                             str(PORT)], server_log, lab.srv))  # fmt: skip
        _wait(lambda: "ready" in server_log.read_text(), 10, "the lab server")
        prevent = _config(tmp_path, redis_server, lab, "prevent", sensor_mode, sensor_resets)
        sensor = _start([*SEKIMORI, "--config", str(prevent), "run", "--iface", lab.capture,
                         "--rules", str(rules)], tmp_path / "sensor.log")  # fmt: skip
        procs.append(sensor)
        responder = _start([*SEKIMORI, "--config", str(prevent), "respond"],
                           tmp_path / "respond-prevent.log")  # fmt: skip
        procs.append(responder)
        # Warm up until the whole chain answers (rule compilation, group creation).
        deadline = time.monotonic() + 60
        while not any(d["outcome"] == "reset" for d in _decisions(client)):
            assert time.monotonic() < deadline, (tmp_path / "sensor.log").read_text()[-3000:]
            assert responder.poll() is None, (tmp_path / "respond-prevent.log").read_text()
            _sessions(lab, 1, "warm", timeout=20)
            time.sleep(0.5)
        time.sleep(1.0)  # let the warm-up verdicts land
        start = client.xrevrange("sekimori:decisions", count=1)[0][0].decode()

        results = _sessions(lab, SESSIONS, "run", timeout=SESSIONS * (SERVER_DELAY_S + 1) + 30)
        _wait(lambda: len(_server_results(server_log)) >= SESSIONS + 1, 20, "the server's results")
        _wait(lambda: sum(d["outcome"] in ("confirmed", "failed")
                          for d in _decisions(client, start)) >= SESSIONS, 20, "verdicts",
              lambda: (Counter(d["outcome"] for d in _decisions(client, start)),
                       (tmp_path / "respond-prevent.log").read_text()[-2000:]))  # fmt: skip
        served = _server_results(server_log)
        both = [r for r in results if r["client"] == "reset" and served.get(r["req"]) == "reset"]
        decisions = _decisions(client, start)
        resets = [d for d in decisions if d["outcome"] == "reset"]
        ours = {d["alert_id"] for d in resets}  # verdicts of warm-up sessions may land late
        confirmed = [d for d in decisions if d["outcome"] == "confirmed" and d["alert_id"] in ours]
        latencies = sorted(int(d["latency_us"]) for d in resets if "latency_us" in d)
        detail = [json.loads(d["details"]) for d in resets]
        to_bus = sorted(round((x["received_at"] - x["sent_at"]) * 1e6 + x["latency_us"])
                        for x in detail)  # fmt: skip
        in_sensor = sorted(int(x["sensor_us"]) for x in detail if "sensor_us" in x)
        print(
            f"\nreset lab ({variant}): {len(both)}/{SESSIONS} reset on both ends, {len(confirmed)} "
            f"confirmed (of these sessions); capture-to-send us: {_pcts(latencies)}; "
            f"capture-to-responder us: {_pcts(to_bus)}; capture-to-alert (sensor) us: "
            f"{_pcts(in_sensor)}"
        )
        # The responder acted from the sensor's datagram, not from the bus copy (or the
        # sensor acted, and the responder recorded it and watched).
        path = "sensor" if sensor_resets else "fast"
        assert sum(x.get("path") == path for x in detail) >= SESSIONS - 1, detail
        assert all(r["bytes"] == 0 for r in results if r["client"] == "reset")
        assert len(both) >= SESSIONS - 1, results
        assert len(confirmed) >= SESSIONS - 1, [d for d in decisions if d["outcome"] == "failed"]
        _stop(responder)

        # Detect mode: same traffic, nothing touched, the decision says would_reset.
        detect = _config(tmp_path, redis_server, lab, "detect", sensor_mode, sensor_resets)
        if sensor_resets:  # the sensor applies the response mode itself: it restarts with it
            _stop(sensor)
            procs.append(_start([*SEKIMORI, "--config", str(detect), "run", "--iface",
                                 lab.capture, "--rules", str(rules)],
                                tmp_path / "sensor-detect.log"))  # fmt: skip
            time.sleep(3)  # capture open (the ruleset comes from the cache)
        responder = _start([*SEKIMORI, "--config", str(detect), "respond"],
                           tmp_path / "respond-detect.log")  # fmt: skip
        procs.append(responder)
        _wait(lambda: any(g["name"] == b"lab-detect"
                          for g in client.xinfo_groups("sekimori:alerts")), 20, "the group")  # fmt: skip
        before = client.xrevrange("sekimori:decisions", count=1)[0][0].decode()
        quiet = _sessions(lab, 3, "detect", timeout=30)
        assert [r["client"] for r in quiet] == ["data"] * 3
        _wait(
            lambda: sum(d["outcome"] == "would_reset" for d in _decisions(client, before)) >= 3,
            30,
            "would_reset decisions",
        )
        served = _server_results(server_log)
        assert [served[r["req"]] for r in quiet] == ["sent"] * 3
    finally:
        for proc in reversed(procs):
            _stop(proc)
        client.close()
