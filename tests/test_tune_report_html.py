"""The tuning report's HTML page renders in headless Chromium with its charts present, and
is self-contained (no external assets)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from conftest import skip_or_fail

from sensor.policy.report import build_report
from sensor.policy.report_html import render_html


def records() -> list[dict]:
    out = []
    for i in range(120):
        sid = 1 if i % 3 else 2
        out.append({
            "timestamp": f"2024-03-01T{10 + i // 60:02d}:{i % 60:02d}:00.000000+0000",
            "event_type": "alert", "src_ip": f"198.51.100.{i % 4}", "dest_ip": "192.168.1.10",
            "proto": "TCP", "dest_port": 80,
            "alert": {"gid": 1, "signature_id": sid, "severity": 1,
                      "signature": "<script>alert(1)</script>" if sid == 2 else "noisy"},
            "sekimori": {"stage": "shadow" if sid == 2 else "detect", "would_block": "198.51.100.1",
                         "asset_names": ["web-dmz"]},
        })  # fmt: skip
    return out


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    skip_or_fail("Chromium is not installed (apt-get install -y chromium)")


def test_report_page_renders_with_charts(tmp_path: Path) -> None:
    report = build_report(records(), since_s=3 * 3600)
    page = render_html(report)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)  # self-contained
    assert "<script>alert(1)</script>" not in page  # alert text is escaped
    path = tmp_path / "report.html"
    path.write_text(page)
    browser = chromium()
    profile = tmp_path / "profile"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={profile}"]  # fmt: skip
    dom = subprocess.run([browser, *flags, "--dump-dom", path.as_uri()], capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    for chart in ("chart-timeline", "chart-rules", "chart-assets"):
        match = re.search(rf'<svg id="{chart}".*?</svg>', html, re.DOTALL)
        assert match, f"{chart} missing from the rendered DOM"
        assert match.group(0).count('<rect class="') >= 1
    timeline = re.search(r'<svg id="chart-timeline".*?</svg>', html, re.DOTALL)
    assert timeline is not None and timeline.group(0).count("<rect") == 24
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=900,1400",
                    path.as_uri()], capture_output=True, timeout=120)  # fmt: skip
    assert shot.exists() and shot.stat().st_size > 5000  # a real, non-blank rendering
