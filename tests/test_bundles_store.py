"""Rule bundles: update from a file, directory, tarball and a local HTTP server, the
suricata-update conf filters, refusal of an invalid update (the running version stays),
activation that signals the sensor's pidfile, rollback to the previous hash, diff."""

from __future__ import annotations

import http.server
import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sensor.config import load_config
from sensor.errors import RuleError
from signatures.bundles import BundleStore
from signatures.variables import Variables

R1 = 'alert tcp any any -> any 80 (msg:"one"; content:"aaa"; classtype:web-application-attack; sid:1001; rev:1;)'
R2 = 'alert tcp any any -> any 80 (msg:"two"; content:"bbb"; metadata:confidence Low; sid:1002; rev:1;)'
R3 = 'alert udp any any -> any 53 (msg:"three"; content:"ccc"; sid:1003; rev:1;)'
BAD = 'alert tcp any any -> any 80 (msg:"broken"; content:"|zz|"; sid:1004; rev:1;)'


@pytest.fixture
def variables() -> Variables:
    config, _ = load_config(None, env={})
    return Variables(address_groups=dict(config.vars.address_groups),
                     port_groups=dict(config.vars.port_groups))  # fmt: skip


def write(path: Path, *lines: str) -> str:
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_update_activate_refuse_rollback_diff(tmp_path: Path, variables: Variables) -> None:
    store = BundleStore(str(tmp_path / "store"))
    v1, new = store.update([write(tmp_path / "web.rules", R1, R2)], variables)
    assert new and v1.rules == 2 and (tmp_path / "store/versions" / v1.version / "cache").is_dir()
    store.activate(v1.version, pidfile=str(tmp_path / "none.pid"))
    assert store.current() == v1.version
    assert Path(store.rule_file()).read_text() == "include rules/web.rules\n"

    with pytest.raises(RuleError, match="refused: 1 invalid rule"):
        store.update([write(tmp_path / "web.rules", R1, R2, BAD)], variables)
    assert store.current() == v1.version  # refused: nothing stored, nothing switched
    assert len(store.versions()) == 1
    # tolerated when asked, and the manifest names the bad line
    v_bad, _ = store.update([str(tmp_path / "web.rules")], variables, max_invalid=1)
    assert v_bad.issues and v_bad.issues[0].startswith("web.rules:3:")

    v2, _ = store.update([write(tmp_path / "web.rules", R1, R2.replace("rev:1", "rev:2")),
                          write(tmp_path / "dns.rules", R3)], variables)  # fmt: skip
    act = store.activate(v2.version[:6], pidfile=str(tmp_path / "none.pid"))
    assert (act.version, act.previous) == (v2.version, v1.version)
    diff = store.diff(v1.version, "current")
    assert [r.sid for r in diff.added] == [1003] and not diff.removed
    assert [(a.rev, b.rev) for a, b in diff.changed] == [(1, 2)]

    back = store.rollback(pidfile=str(tmp_path / "none.pid"))
    assert back.version == v1.version and store.current() == v1.version
    with pytest.raises(RuleError, match="nothing to roll back"):
        store.rollback(pidfile=str(tmp_path / "none.pid"))


def test_tampered_version_is_not_activated(tmp_path: Path, variables: Variables) -> None:
    store = BundleStore(str(tmp_path / "store"))
    v1, _ = store.update([write(tmp_path / "a.rules", R1)], variables)
    Path(tmp_path / "store/versions" / v1.version / "rules/a.rules").write_text(R2 + "\n")
    with pytest.raises(RuleError, match="do not match their hash"):
        store.activate(v1.version, pidfile=str(tmp_path / "none.pid"))
    assert store.current() is None


def test_conf_filters_in_suricata_update_order(tmp_path: Path, variables: Variables) -> None:
    store = BundleStore(str(tmp_path / "store"))
    src = write(tmp_path / "all.rules", R1, R2, "# " + R3)
    conf: dict[str, str | None] = {
        "disable": write(tmp_path / "disable.conf", "# comment", "metadata: confidence low"),
        "enable": write(tmp_path / "enable.conf", "1:1003"),
        "drop": write(tmp_path / "drop.conf", "group:all.rules"),
        "modify": write(tmp_path / "modify.conf", 're:msg:"one" "a(a)a" "z${1}z"'),
    }
    manifest, _ = store.update([src], variables, conf=conf)
    rules = store.rules_of(manifest.version)
    assert not rules[(1, 1002)].enabled  # disabled by metadata
    assert rules[(1, 1003)].enabled and rules[(1, 1003)].text.startswith("drop udp")
    assert rules[(1, 1001)].text.startswith("drop tcp") and 'content:"zaz"' in rules[(1, 1001)].text
    assert manifest.rules == 2 and manifest.disabled == 1


def _tarball(path: Path, files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"rules/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A local HTTP server (loopback) standing in for a rule vendor's download URL."""
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_sources_dir_tarball_url(tmp_path: Path, variables: Variables,
                                 http_dir: tuple[Path, str]) -> None:  # fmt: skip
    store = BundleStore(str(tmp_path / "store"))
    d = tmp_path / "dir"
    d.mkdir()
    write(d / "a.rules", R1)
    write(d / "notes.txt", "ignored")
    tgz = tmp_path / "set.tar.gz"
    _tarball(tgz, {"b.rules": R2 + "\n"})
    root, url = http_dir
    _tarball(root / "vendor.tar.gz", {"c.rules": R3 + "\n"})
    write(root / "extra.rules", 'alert icmp any any -> any any (msg:"four"; itype:8; sid:1005;)')
    m, _ = store.update([str(d), str(tgz), f"{url}/vendor.tar.gz", f"{url}/extra.rules"],
                        variables)  # fmt: skip
    assert sorted(m.files) == ["a.rules", "b.rules", "c.rules", "extra.rules"]
    assert m.rules == 4
    with pytest.raises(RuleError, match="cannot download"):
        store.update([f"{url}/missing.rules"], variables, timeout=5)


SENSOR_STANDIN = """
import os, signal, sys, time
hups = 0
def on_hup(signum, frame):
    global hups
    hups += 1
    with open(sys.argv[2], "w") as fh:
        fh.write(os.readlink(sys.argv[3]))
signal.signal(signal.SIGHUP, on_hup)
with open(sys.argv[1], "w") as fh:
    fh.write(str(os.getpid()))
for _ in range(600):
    time.sleep(0.05)
"""


def test_activation_signals_the_running_sensor(tmp_path: Path, variables: Variables) -> None:
    """A stand-in process for the sensor (it writes the pidfile and records SIGHUP): the
    sensor's own reload on SIGHUP is sensor/pipeline.py's and tested there."""
    store = BundleStore(str(tmp_path / "store"))
    v1, _ = store.update([write(tmp_path / "a.rules", R1)], variables)
    pidfile, seen = tmp_path / "sensor.pid", tmp_path / "seen"
    proc = subprocess.Popen([sys.executable, "-c", SENSOR_STANDIN, str(pidfile), str(seen),
                             str(tmp_path / "store/current")])  # fmt: skip
    try:
        for _ in range(200):
            if pidfile.exists() and pidfile.read_text():
                break
            time.sleep(0.02)
        act = store.activate(v1.version, pidfile=str(pidfile))
        assert act.signalled == proc.pid
        for _ in range(200):
            if seen.exists():
                break
            time.sleep(0.02)
        assert seen.read_text() == os.path.join("versions", v1.version)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    act = store.activate(v1.version, pidfile=str(pidfile))  # the process is gone now
    assert act.signalled is None and "not running" in act.note


def test_rules_cli_update_activate_rollback(tmp_path: Path) -> None:
    env = {**os.environ, "SEKIMORI_RULE_STORE": str(tmp_path / "store"),
           "SEKIMORI_PIDFILE": str(tmp_path / "none.pid"), "XDG_CACHE_HOME": str(tmp_path)}  # fmt: skip

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", "rules", *args], env=env,
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    first = cli("update", write(tmp_path / "a.rules", R1), "--activate")
    assert first.returncode == 0, first.stderr
    v1 = first.stdout.split("version ")[1].split(",")[0]
    bad = cli("update", write(tmp_path / "b.rules", R1, BAD), "--activate")
    assert bad.returncode == 4 and bad.stderr.startswith("sekimori: error: rule update refused")
    second = cli("update", write(tmp_path / "c.rules", R1, R3), "--activate")
    assert second.returncode == 0, second.stderr
    assert "+ 1:1003" in cli("diff", v1, "current").stdout
    assert cli("rollback").returncode == 0
    assert cli("versions").stdout.splitlines()[0].startswith(f"* {v1}")
