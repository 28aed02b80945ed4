"""``make bench``: sekimori against Suricata on the same captures and rules, side by side.

Usage: ``.venv/bin/python bench/run.py [--size-mb 256] [--workers 2] [--no-suricata]
[--no-profile]``. Steps:

1. rules: the ET Open rules from ../shared/rules/et-open that sekimori loads (written to
   bench/out/et-supported.rules, so both engines get exactly the same rules); without
   ../shared, tests/data/demo.rules;
2. captures: the 15 shared attack captures merged in time order, and the mixed capture
   from bench/make_mixed.py (generated once and cached; needs root the first time);
3. every engine once on a one-packet capture (its start-up: rule loading, compiling),
   then on each capture; "net" figures subtract the start-up wall time, so packets/s and
   Mbit/s are the packet-processing rates;
4. a per-stage and per-rule profile of sekimori on the attack captures.

Prints the table and writes bench/out/results.{json,md}. Non-goals: tuning either engine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import engines
from make_mixed import mixed_capture

from sensor.capture import open_capture
from sensor.config import load_config

ROOT = engines.ROOT
OUT = engines.OUT
SHARED = ROOT.parent / "shared"


def supported_rules() -> Path:
    """ET Open rules sekimori loads (HOME_NET=EXTERNAL_NET=any), one file for both engines."""
    from signatures.ruleset import build_signatures
    from signatures.variables import Variables

    et = SHARED / "rules" / "et-open"
    if not et.is_dir():
        print("../shared/rules/et-open absent: benchmarking with tests/data/demo.rules")
        return ROOT / "tests" / "data" / "demo.rules"
    files = sorted(str(p) for p in et.glob("*.rules"))
    config, _ = load_config(None, sets=list(engines.HOME_ANY))
    variables = Variables(
        address_groups=dict(config.vars.address_groups), port_groups=dict(config.vars.port_groups)
    )
    from sensor.pipeline import SENSOR_BUFFERS

    sigs, report = build_signatures(files, variables, None, SENSOR_BUFFERS)
    dest = OUT / "et-supported.rules"
    dest.write_text("".join(s.raw.rstrip("\n") + "\n" for s in sigs))
    print(f"rules: {len(sigs):,} of the ET Open rules load in sekimori "
          f"({report.skipped:,} do not) → {dest}")  # fmt: skip
    return dest


def _write_pcap(dest: Path, records: list[tuple[int, int, int, bytes, int]]) -> Path:
    import struct

    with open(dest, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, records[0][2]))
        for ts, us, _lt, data, wire in records:
            f.write(struct.pack("<IIII", ts, us, len(data), wire) + data)
    return dest


def attack_capture() -> Path | None:
    """The shared attack captures merged by time (all Ethernet), or None without them."""
    src = SHARED / "pcaps" / "attacks"
    if not src.is_dir():
        print("../shared/pcaps/attacks absent: no attack-capture row")
        return None
    records: list[tuple[int, int, int, bytes, int]] = []
    for p in sorted(src.glob("*.pcap")):
        records.extend(open_capture(str(p)))
    records.sort(key=lambda r: (r[0], r[1]))
    return _write_pcap(OUT / "attacks-all.pcap", records)


def one_packet(pcap: Path) -> Path:
    return _write_pcap(OUT / "one-packet.pcap", [next(iter(open_capture(str(pcap))))])


def capture_size(pcap: Path) -> tuple[int, int]:
    n = size = 0
    for rec in open_capture(str(pcap)):
        n += 1
        size += rec[4]
    return n, size


def _row(name: str, engine: str, m: engines.Measure, startup: engines.Measure,
         packets: int, wire: int, ref: engines.Measure | None) -> dict[str, object]:  # fmt: skip
    net = m.wall - startup.wall
    net_cpu = max(m.cpu - startup.cpu, 0.0)
    if net < 1.0:  # start-up jitter dominates: rates would be noise
        net = float("nan")
    common, agree = engines.agreement(m.alerts, ref.alerts) if ref is not None else (0, 0.0)
    return {
        "capture": name, "engine": engine, "packets": packets, "status": m.status,
        "wall_s": round(m.wall, 2), "net_s": round(net, 2) if net == net else "-",
        "pps": round(packets / net) if net == net else "-",
        "mbit_s": round(wire * 8 / net / 1e6, 1) if net == net else "-",
        "cpu_s": round(m.cpu, 2), "net_cpu_s": round(net_cpu, 2),
        "pps_cpu": round(packets / net_cpu) if net_cpu >= 0.5 else "-",
        "rss_mb": round(m.max_rss_kb / 1024), "alerts": m.alert_count,
        "agree": f"{common}/{m.alert_count} ({agree:.0%})" if ref is not None else "-",
        "load": m.load,
    }  # fmt: skip


COLUMNS = ("capture", "engine", "packets", "wall_s", "net_s", "pps", "mbit_s", "cpu_s",
           "net_cpu_s", "pps_cpu", "rss_mb", "alerts", "agree", "load")  # fmt: skip


def table(rows: list[dict[str, object]]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |"
    sep = "|" + "|".join("---" for _ in COLUMNS) + "|"
    body = ["| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) else str(r[c])
                              for c in COLUMNS) + " |" for r in rows]  # fmt: skip
    return "\n".join([head, sep, *body])


def bench_capture(name: str, pcap: Path, rules: Path, startup: dict[str, engines.Measure],
                  workers: int, suricata: bool) -> list[dict[str, object]]:  # fmt: skip
    packets, wire = capture_size(pcap)
    print(f"{name}: {packets:,} packets, {wire / 1e6:.0f} MB")
    rows = []
    sur = engines.run_suricata(pcap, rules, f"{name}") if suricata else None
    one = engines.run_sekimori(pcap, rules, f"{name}-w1")
    rows.append(_row(name, "sekimori", one, startup["sekimori"], packets, wire, sur))
    if workers > 1:
        many = engines.run_sekimori(pcap, rules, f"{name}-w{workers}", workers=workers)
        rows.append(_row(name, f"sekimori ×{workers}", many, startup[f"sekimori-w{workers}"],
                         packets, wire, sur))  # fmt: skip
    if sur is not None:
        rows.append(_row(name, "suricata", sur, startup["suricata"], packets, wire, one))
    for r in rows:
        print("  ", {k: r[k] for k in ("engine", "net_s", "pps", "cpu_s", "rss_mb", "alerts")})
    return rows


def profile(pcap: Path, rules: Path) -> None:
    import subprocess

    cmd = [sys.executable, str(ROOT / "bench" / "sekimori_driver.py"), "--pcap", str(pcap),
           "--rules", str(rules), "--profile-rules", "--json", str(OUT / "profile.json")]  # fmt: skip
    for s in engines.HOME_ANY:
        cmd += ["--set", s]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    text = "\n".join(ln for ln in out.stderr.splitlines() if "WARNING" not in ln)
    (OUT / "profile.txt").write_text(text + "\n")
    print(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=256, help="mixed capture size (default 256)")
    ap.add_argument("--workers", type=int, default=2, help="also run sekimori with N workers")
    ap.add_argument("--no-suricata", action="store_true")
    ap.add_argument("--no-profile", action="store_true")
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    version = None if a.no_suricata else engines.suricata_version()
    if version is None:
        print("suricata not installed (or /etc/suricata/suricata.yaml missing): sekimori only")
    rules = supported_rules()
    captures = [("attacks", attack_capture()), ("mixed", _mixed(a.size_mb))]
    first = next((p for _n, p in captures if p is not None), None)
    if first is None:
        print("no capture to benchmark")
        return 1
    base = one_packet(first)
    engines.run_sekimori(base, rules, "warmup")  # fills the compiled-rules cache
    startup = {"sekimori": engines.run_sekimori(base, rules, "startup-w1")}
    if a.workers > 1:
        startup[f"sekimori-w{a.workers}"] = engines.run_sekimori(
            base, rules, f"startup-w{a.workers}", workers=a.workers
        )
    if version is not None:
        engines.run_suricata(base, rules, "warmup")  # page cache, like sekimori's warm-up
        startup["suricata"] = engines.run_suricata(base, rules, "startup")
    print("start-up wall s:", {k: round(v.wall, 2) for k, v in startup.items()})
    rows: list[dict[str, object]] = []
    for name, pcap in captures:
        if pcap is not None:
            rows += bench_capture(name, pcap, rules, startup, a.workers, version is not None)
    text = table(rows)
    print(text)
    ratio = _ratio(rows, "mixed", "sekimori", "suricata", "pps")
    per_cpu = _ratio(rows, "mixed", "sekimori", "suricata", "pps_cpu")
    scale = _ratio(rows, "mixed", f"sekimori ×{a.workers}", "sekimori", "pps")
    summary = [f"sekimori/suricata packets/s on mixed, one process: {ratio} (wall), "
               f"{per_cpu} (per CPU second)",
               f"sekimori ×{a.workers}/×1 packets/s on mixed (wall): {scale}",
               f"1-minute load average before each run: see the load column "
               f"(this machine has {os.cpu_count()} cores; other work perturbs wall times)"]  # fmt: skip
    print("\n".join(summary))
    result = {"suricata": version, "rules": str(rules), "startup": {k: v.wall for k, v in startup.items()},
              "rows": rows, "summary": summary}  # fmt: skip
    (OUT / "results.json").write_text(json.dumps(result, indent=1))
    (OUT / "results.md").write_text(text + "\n\n" + "\n".join(summary) + "\n")
    if not a.no_profile and captures[0][1] is not None:
        profile(captures[0][1], rules)
    return 0


def _mixed(size_mb: int) -> Path | None:
    try:
        return mixed_capture(size_mb)
    except SystemExit as exc:  # not root and not cached yet
        print(exc)
        return None


def _ratio(rows: list[dict[str, object]], cap: str, a: str, b: str, col: str) -> str:
    pa = next((r[col] for r in rows if r["capture"] == cap and r["engine"] == a), None)
    pb = next((r[col] for r in rows if r["capture"] == cap and r["engine"] == b), None)
    if not isinstance(pa, int) or not isinstance(pb, int) or pb == 0:
        return "n/a"
    return f"{pa / pb:.2f}"


if __name__ == "__main__":
    sys.exit(main())
