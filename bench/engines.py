"""Running the two engines under measurement: sekimori and (when installed) Suricata.

Scope: each run is a child process waited for with ``os.wait4``, so wall time, CPU seconds
(user+sys, including worker processes) and peak RSS (largest single process) come from
the kernel, the same way for both engines. Alerts are read back from each engine's EVE
file as ``(sid, pcap_cnt)`` pairs. Suricata runs ``--runmode single`` with the stock
/etc/suricata/suricata.yaml, reduced to what the comparison needs (EVE alerts only, no
fast.log/stats.log), ``-k none`` and HOME_NET = EXTERNAL_NET = any, as the shared
reference alerts were made.

Non-goals: tuning either engine beyond its defaults.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
HOME_ANY = ("vars.address-groups.HOME_NET=any", "vars.address-groups.EXTERNAL_NET=any")
STOCK_YAML = Path("/etc/suricata/suricata.yaml")


@dataclass(frozen=True)
class Measure:
    engine: str
    wall: float
    cpu: float
    max_rss_kb: int
    alerts: Counter[tuple[int, int]] = field(default_factory=Counter)  # (sid, pcap_cnt)
    status: int = 0
    load: float = 0.0  # 1-minute load average when the run started

    @property
    def alert_count(self) -> int:
        return sum(self.alerts.values())


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _timed(cmd: list[str], log: Path) -> tuple[float, float, int, int]:
    """Run ``cmd``: wall s, CPU s (it and its children), peak RSS of its largest process.

    Peak RSS is each process's VmHWM, polled every 50 ms (the rusage figure is useless
    here: a forked child inherits its parent's high-water mark).
    """
    t0 = time.perf_counter()
    peaks: dict[int, int] = {}
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            for p in _descendants(proc.pid):
                peaks[p] = max(peaks.get(p, 0), _hwm_kb(p))
            time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_utime + ru.ru_stime, max(peaks.values(), default=0), proc.returncode


def read_alerts(eve: Path) -> Counter[tuple[int, int]]:
    alerts: Counter[tuple[int, int]] = Counter()
    if not eve.exists():
        return alerts
    with open(eve, "rb") as f:
        for line in f:
            if b'"alert"' not in line:
                continue
            rec = json.loads(line)
            if rec.get("event_type") == "alert":
                alerts[(rec["alert"]["signature_id"], rec.get("pcap_cnt", 0))] += 1
    return alerts


def run_sekimori(pcap: Path, rules: Path, tag: str, workers: int = 1) -> Measure:
    """sekimori on ``pcap`` through bench/sekimori_driver.py (the pipeline, or N workers)."""
    eve = OUT / f"{tag}.sekimori.json"
    eve.unlink(missing_ok=True)
    cmd = [sys.executable, str(ROOT / "bench" / "sekimori_driver.py"), "--pcap", str(pcap),
           "--rules", str(rules), "--eve", str(eve), "--workers", str(workers)]  # fmt: skip
    for s in HOME_ANY:
        cmd += ["--set", s]
    load = round(os.getloadavg()[0], 1)
    wall, cpu, rss, status = _timed(cmd, OUT / f"{tag}.sekimori.log")
    return Measure("sekimori", wall, cpu, rss, read_alerts(eve), status, load)


def suricata_version() -> str | None:
    exe = shutil.which("suricata")
    if exe is None or not STOCK_YAML.exists():
        return None
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "unknown"


def bench_yaml() -> Path:
    """The stock suricata.yaml with EVE reduced to alerts and fast/stats logs off."""
    lines = STOCK_YAML.read_text().splitlines()
    out: list[str] = []
    section = ""
    skipping = False
    for line in lines:
        if line.startswith("  - ") and not line.startswith("    "):
            section = line.strip()
            skipping = False
        if skipping:
            continue
        if section == "- eve-log:" and line == "      types:":
            out += ["      types:", "        - alert", ""]
            skipping = True  # the types list is the last key of eve-log
            continue
        if section in ("- fast:", "- stats:") and line.strip() == "enabled: yes":
            line = line.replace("yes", "no")
        out.append(line)
    path = OUT / "suricata-bench.yaml"
    path.write_text("\n".join(out) + "\n")
    return path


def run_suricata(pcap: Path, rules: Path, tag: str) -> Measure:
    logdir = OUT / f"{tag}.suricata"
    shutil.rmtree(logdir, ignore_errors=True)
    logdir.mkdir(parents=True)
    cmd = ["suricata", "--runmode", "single", "-c", str(bench_yaml()), "-S", str(rules),
           "-r", str(pcap), "-l", str(logdir), "-k", "none"]  # fmt: skip
    for s in HOME_ANY:
        cmd += ["--set", s]
    load = round(os.getloadavg()[0], 1)
    wall, cpu, rss, status = _timed(cmd, logdir / "console.log")
    return Measure("suricata", wall, cpu, rss, read_alerts(logdir / "eve.json"), status, load)


def agreement(a: Counter[tuple[int, int]], b: Counter[tuple[int, int]]) -> tuple[int, float]:
    """Alerts both engines raised, matched by sid (the packet an alert lands on differs by
    design: sekimori alerts on the packet carrying the data, Suricata's IDS mode on the
    acknowledging one), and that count over the larger of the two totals."""
    sa: Counter[int] = Counter()
    sb: Counter[int] = Counter()
    for (sid, _cnt), n in a.items():
        sa[sid] += n
    for (sid, _cnt), n in b.items():
        sb[sid] += n
    common = sum((sa & sb).values())
    most = max(sum(sa.values()), sum(sb.values()))
    return common, (common / most if most else 1.0)
