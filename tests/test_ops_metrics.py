"""The Prometheus endpoint scraped over HTTP during a real capture run.

A ticker appended after the real extensions scrapes /metrics at every tick (the metrics
server answers from its own thread while the packet loop waits), so the test sees the
counters as a Prometheus server would during the run, and at the closing tick compares
them with the run's summary.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dpkt
import pytest
from pcapgen import udp
from prometheus_client.parser import text_string_to_metric_families

import sensor.pipeline as pipeline
from sensor.config import load_config
from sensor.metrics import MetricsServer, Snapshot, metric_families

RULES = 'alert udp any any -> any 5353 (msg:"TEST ping"; content:"PING"; sid:4200001; rev:1;)\n'


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def write_capture(path: Path, seconds: int, per_second: int) -> None:
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=dpkt.pcap.DLT_EN10MB)
        for sec in range(seconds):
            for i in range(per_second):
                data = b"PING" if i % 10 == 0 else b"data"
                frame = udp("10.0.0.1", "10.0.0.2", 40000 + i, 5353, data)
                w.writepkt(frame, ts=1_700_000_000 + sec + i / (per_second + 1))


class Scraper:
    def __init__(self, ext: Any) -> None:
        self.ext = ext
        self.scrapes: list[dict[tuple[str, tuple[tuple[str, str], ...]], float]] = []

    def tick(self, now_sec: float, counters: Mapping[str, int]) -> None:
        server = next(t for t in self.ext.tickers if isinstance(t, MetricsServer))
        self.scrapes.append(scrape(server.port))


def test_metrics_move_during_a_run_and_match_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pcap, rules = tmp_path / "t.pcap", tmp_path / "t.rules"
    write_capture(pcap, seconds=6, per_second=200)
    rules.write_text(RULES)
    monkeypatch.setenv("SEKIMORI_METRICS_LISTEN", "127.0.0.1:0")
    scrapers: list[Scraper] = []
    real = pipeline.build_extensions

    def with_scraper(config: Any) -> Any:
        ext = real(config)
        scrapers.append(Scraper(ext))
        ext.tickers.append(scrapers[-1])
        return ext

    monkeypatch.setattr(pipeline, "build_extensions", with_scraper)
    config, _ = load_config(None, env={}, sets=[f"detect.cache-dir={tmp_path / 'cache'}"])
    request = pipeline.RunRequest(pcap=str(pcap), iface=None, rule_files=(str(rules),),
                                  eve=str(tmp_path / "eve.json"))  # fmt: skip
    summary = pipeline.run(config, request)

    scrapes = scrapers[0].scrapes
    packets = [s[("sekimori_packets_total", ())] for s in scrapes]
    assert len(set(packets)) >= 5, packets  # moving while the capture is read
    assert packets == sorted(packets)
    final = scrapes[-1]
    assert final[("sekimori_packets_total", ())] == summary.packets == 1200
    assert final[("sekimori_bytes_total", ())] == summary.bytes
    assert final[("sekimori_alerts_total", ())] == summary.alerts == 120
    hits = ("sekimori_rule_hits_total", (("gid", "1"), ("msg", "TEST ping"), ("sid", "4200001")))
    assert final[hits] == 120
    severity = ("sekimori_alerts_by_severity_total", (("severity", "3"),))
    assert final[severity] == summary.alerts_by_severity[3]
    assert final[("sekimori_memcap_bytes", (("name", "flow"),))] == config.flow.memcap
    flows = final[("sekimori_flow_flows_created_total", ())]
    assert flows == summary.flows
    # the listener is gone after the run: nothing left bound
    server_port = next(t for t in scrapers[0].ext.tickers if isinstance(t, MetricsServer)).port
    with pytest.raises(OSError):
        scrape(server_port)


def test_names_labels_and_types() -> None:
    snap = Snapshot(
        counters={"capture.kernel_drops": 3, "capture.iface_drops": 1, "flow.flows_active": 7,
                  "decoder.ipv4.trunc_pkt": 2, "responder.blocks_active": 4,
                  "responder.resets_confirmed": 9},
        by_action=(("drop", "allowed", 5),),
    )  # fmt: skip
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): (f.type, s.value)
        for f in metric_families(snap)
        for s in f.samples
    }
    assert samples[("sekimori_drops_total", (("where", "kernel"),))] == ("counter", 3)
    assert samples[("sekimori_drops_total", (("where", "interface"),))] == ("counter", 1)
    assert samples[("sekimori_flow_flows_active", ())] == ("gauge", 7)
    assert samples[("sekimori_decoder_events_total", (("event", "ipv4.trunc_pkt"),))][1] == 2
    assert samples[("sekimori_responder_blocks_active", ())] == ("gauge", 4)
    assert samples[("sekimori_responder_resets_confirmed_total", ())] == ("counter", 9)
    key = ("sekimori_alerts_by_action_total", (("action", "drop"), ("outcome", "allowed")))
    assert samples[key] == ("counter", 5)
