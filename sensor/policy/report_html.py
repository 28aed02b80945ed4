"""The tuning report as one self-contained HTML page: tables and inline SVG charts.

Scope: ``render_html(report)`` → a page with no external assets (no scripts, fonts,
stylesheets or images fetched): alerts over time (``#chart-timeline``), alerts per rule
(``#chart-rules``) and would-block per asset (``#chart-assets``) as SVG bars, then the
tables ``tune report`` prints. Every string from the alerts is HTML-escaped.
Non-goals: interactivity.
"""

from __future__ import annotations

import datetime as dt
import html

from sensor.policy.report import Report

_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#eee}h2{margin-top:1.5em}.bar{fill:#3a6ea5}.warn{fill:#c0392b}
svg text{font:11px sans-serif;fill:#333}"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _timeline(report: Report) -> str:
    width, height, pad = 720, 200, 30
    peak = max((n for _, n in report.timeline), default=0) or 1
    step = (width - 2 * pad) / max(len(report.timeline), 1)
    bars = []
    for i, (start, n) in enumerate(report.timeline):
        h = (height - 2 * pad) * n / peak
        x, y = pad + i * step, height - pad - h
        bars.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{step * 0.9:.1f}" '
                    f'height="{h:.1f}"><title>{_e(_when(start))}: {n}</title></rect>')  # fmt: skip
    labels = (f'<text x="{pad}" y="{height - 8}">{_e(_when(report.start))}</text>'
              f'<text x="{width - pad}" y="{height - 8}" text-anchor="end">'
              f"{_e(_when(report.end))}</text>"
              f'<text x="4" y="{pad}">{peak}</text>')  # fmt: skip
    return (f'<svg id="chart-timeline" role="img" aria-label="alerts over time" '
            f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
            f'stroke="#999"/>{"".join(bars)}{labels}</svg>')  # fmt: skip


def _hbars(chart_id: str, label: str, rows: list[tuple[str, int]], css: str = "bar") -> str:
    width, row_h, left = 720, 22, 300
    height = max(len(rows), 1) * row_h + 10
    peak = max((n for _, n in rows), default=0) or 1
    parts = []
    for i, (name, n) in enumerate(rows):
        y = 5 + i * row_h
        w = (width - left - 60) * n / peak
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{_e(name[:48])}</text>'
                     f'<rect class="{css}" x="{left}" y="{y}" width="{w:.1f}" height="{row_h - 6}">'
                     f"<title>{_e(name)}: {n}</title></rect>"
                     f'<text x="{left + w + 4:.1f}" y="{y + 14}">{n}</text>')  # fmt: skip
    if not rows:
        parts.append('<text x="10" y="18">none</text>')
    return (f'<svg id="{chart_id}" role="img" aria-label="{_e(label)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>')  # fmt: skip


def _table(head: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body or '<tr><td colspan=99>none</td></tr>'}</table>"


def render_html(report: Report, title: str = "sekimori tuning report") -> str:
    top = report.rules[:20]
    stages = ", ".join(f"{k} {v}" for k, v in sorted(report.by_stage.items())) or "none"
    rule_rows = [(f"{s.sid} {s.msg}", s.count) for s in top]
    asset_rows = sorted(report.would_block_by_asset.items(), key=lambda kv: -kv[1])[:20]
    sections = [
        f"<h1>{_e(title)}</h1><p>{_e(_when(report.start))} – {_e(_when(report.end))} UTC: "
        f"{report.total} alerts ({_e(stages)})</p>",
        "<h2>Alerts over time</h2>", _timeline(report),
        "<h2>Alerts per rule</h2>", _hbars("chart-rules", "alerts per rule", rule_rows),
        "<h2>Would block, per asset</h2>",
        _hbars("chart-assets", "would-block per asset", asset_rows, "warn"),
        "<h2>Noisiest rules</h2>",
        _table(("sid", "rule", "stage", "alerts", "would block", "top sources"),
               [(s.sid, s.msg, s.stage, s.count, s.would_block,
                 ", ".join(f"{a} ({n})" for a, n in s.sources.most_common(3))) for s in top]),
        "<h2>Candidates for suppression</h2>",
        _table(("sid", "rule", "alerts", "source", "share"),
               [(s.sid, s.msg, s.count, src, f"{share:.0%}")
                for s, src, share in report.suppress_candidates]),
        "<h2>Candidates for promotion</h2>",
        _table(("sid", "rule", "alerts", "from", "to"),
               [(s.sid, s.msg, s.count, a, b) for s, a, b in report.promote_candidates]),
        "<h2>Rules that never fired</h2>",
        _table(("sid", "rule"), [(sid, msg) for sid, msg in report.never_fired[:200]]),
    ]  # fmt: skip
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
            f"{''.join(sections)}</body></html>\n")  # fmt: skip
