"""Block ledger and safety rails against a real redis-server (no firewall: managers here have
no targets, so the ledger's own behaviour is what is checked).

Covers: escalation ladder, at most one active block per source, refusals recorded
(protected, pinned allow, spoofable UDP/SYN-only sources), dry run / detect mode, the
100,000-alert flood from 1,000 sources against the per-minute and per-/24 limits (pause +
exactly one high-severity alert), Redis down → queued and replayed, and the CLI.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis

from cli.main import sekimori
from responders.block_config import BlockConfig, load_block_config, parse_blocks
from responders.blocking import BlockManager
from sensor.errors import ConfigError
from sensor.output.redis_conn import RedisSettings


def alert(
    src: str,
    *,
    proto: str = "TCP",
    handshake: bool | None = True,
    action: str = "drop",
    sid: int = 2100001,
    metadata: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    inner: dict[str, Any] = {
        "action": "allowed",
        "gid": 1,
        "signature_id": sid,
        "rev": 3,
        "signature": "TEST drop rule",
        "severity": 1,
    }
    if metadata:
        inner["metadata"] = metadata
    return {
        "timestamp": "2026-01-01T00:00:00.000000+0000",
        "flow_id": 42,
        "src_ip": src,
        "src_port": 40000,
        "dest_ip": "192.0.2.10",
        "dest_port": 80,
        "proto": proto,
        "alert": inner,
        "sekimori": {
            "rule_action": action,
            "handshake_seen": handshake,
            "sensor_id": "edge-1",
            "mode": "prevent",
        },
    }


def manager(url: str, **settings: Any) -> BlockManager:
    table = {"redis-url": url, "protect-self": False, **settings}
    return BlockManager(parse_blocks(table), {})


def test_one_active_block_per_source_and_the_ladder_escalates(redis_server: str) -> None:
    m = manager(redis_server, ladder=["1s", "1h", "1d"], coalesce="0s")
    first = m.handle_alert(alert("198.51.100.7"), True)
    assert first[0].status == "done" and "in the ledger" in first[0].reason
    again = m.handle_alert(alert("198.51.100.7"), True)
    assert again[0].reason.endswith("already blocked")
    block = m.ledger.get("198.51.100.7/32")
    assert block is not None and block.level == 0 and block.hits == 2
    assert block.sid == 2100001 and block.rev == 3 and block.flow_id == 42
    assert block.first_evidence["dest_ip"] == "192.0.2.10"
    assert block.expires is not None and block.expires - block.created == pytest.approx(1.0)
    time.sleep(1.1)
    m.reconcile_once()  # expires it in the ledger
    assert m.ledger.get("198.51.100.7/32").state == "expired"  # type: ignore[union-attr]
    m.handle_alert(alert("198.51.100.7"), True)
    second = m.ledger.get("198.51.100.7/32")
    assert second is not None and second.level == 1 and second.state == "active"
    assert second.expires - second.created == pytest.approx(3600.0)  # type: ignore[operator]
    assert m.ledger.history("198.51.100.7/32")[0]["state"] == "expired"


def test_refusals_are_recorded_not_blocked(redis_server: str) -> None:
    m = manager(redis_server, protected=["198.51.100.0/28"], coalesce="0s")
    cases = {
        "198.51.100.5": alert("198.51.100.5"),  # protected
        "203.0.113.1": alert("203.0.113.1", proto="UDP"),  # forged-source UDP
        "203.0.113.2": alert("203.0.113.2", handshake=False),  # SYN-only
        "203.0.113.3": alert("203.0.113.3", handshake=None),  # unknown = not seen
        "127.0.0.1": alert("127.0.0.1"),  # always protected
    }
    for src, eve in cases.items():
        out = m.handle_alert(eve, True)
        assert out[0].status == "skipped" and out[0].reason.startswith("refused:"), out
        assert m.ledger.refusal(f"{src}/32")["count"] == 1  # type: ignore[index]
    assert m.ledger.active(time.time()) == {}
    # A rule that says so may block a spoofable source.
    meta = {"sekimori_block": ["allow-spoofable"]}
    assert (
        m.handle_alert(alert("203.0.113.1", proto="UDP", metadata=meta), True)[0].status == "done"
    )
    # Alerts that do not block, and detect mode / dry run.
    assert "does not block" in m.handle_alert(alert("203.0.113.9", action="alert"), True)[0].reason
    assert m.handle_alert(alert("203.0.113.9"), False)[0].reason.startswith("would_block")
    dry = manager(redis_server, **{"dry-run": True})
    assert dry.handle_alert(alert("203.0.113.8"), True)[0].reason.startswith("would_block")
    assert set(m.ledger.active(time.time())) == {"203.0.113.1/32"}


def test_manual_remove_pins_an_allow(redis_server: str) -> None:
    m = manager(redis_server, coalesce="0s")
    m.handle_alert(alert("203.0.113.20"), True)
    m.remove("203.0.113.20/32", "false positive", "tester", pin=True)
    out = m.handle_alert(alert("203.0.113.20"), True)
    assert "pinned allow" in out[0].reason
    events = [e["kind"] for e in m.ledger.events()]
    assert "removed" in events and "refused" in events
    added = m.add("203.0.113.20/32", 60, "confirmed by hand", "tester")  # clears the pin
    assert m.ledger.get(added.cidr).origin == "manual"  # type: ignore[union-attr]
    with pytest.raises(Exception, match="protected"):
        m.add("127.0.0.1/32", 60, "no", "tester")


def test_flood_trips_the_per_minute_limit_once(redis_server: str) -> None:
    """100,000 alerts from 1,000 sources (4 /24s): 60 blocks per minute allowed."""
    m = manager(redis_server, **{"max-per-minute": 60, "max-per-subnet": 1000, "pause": "5m"})
    sources = [f"10.{20 + i // 250}.0.{i % 250 + 1}" for i in range(1000)]
    for n in range(100_000):
        m.handle_alert(alert(sources[n % 1000]), True)
    m.reconcile_once()
    active = m.ledger.active(time.time())
    assert len(active) == 60  # one per source, and no more than the limit
    assert all(m.ledger.get(c).hits >= 1 for c in active)  # type: ignore[union-attr]
    assert m.ledger.pause_reason() == "more than 60 new blocks in one minute"
    client: Any = redis.Redis.from_url(redis_server)
    trips = [json.loads(f[b"eve"]) for _i, f in client.xrange("sekimori:alerts")]
    assert len(trips) == 1 and trips[0]["alert"]["severity"] == 1
    assert "blocking paused" in trips[0]["alert"]["signature"]
    # Coalescing folded the repeats of the blocked sources into hit counts.
    hits = [m.ledger.get(c).hits for c in active]  # type: ignore[union-attr]
    assert sum(hits) == 60 * 100


def test_flood_without_limits_blocks_each_source_once(redis_server: str) -> None:
    m = manager(redis_server, **{"max-per-minute": 0, "max-per-subnet": 300})
    sources = [f"10.{30 + i // 250}.1.{i % 250 + 1}" for i in range(1000)]
    for n in range(100_000):
        m.handle_alert(alert(sources[n % 1000]), True)
    active = m.ledger.active(time.time())
    assert len(active) == 1000 and set(active) == {f"{s}/32" for s in sources}


def test_per_subnet_limit_pauses_blocking(redis_server: str) -> None:
    m = manager(redis_server, **{"max-per-subnet": 5, "coalesce": "0s"})
    outcomes = [m.handle_alert(alert(f"203.0.113.{i}"), True)[0] for i in range(1, 10)]
    assert [o.status for o in outcomes[:5]] == ["done"] * 5
    assert "203.0.113.0/24" in outcomes[5].reason and "paused" in outcomes[5].reason
    assert all("paused" in o.reason for o in outcomes[6:])
    # Another process sees the pause too (it lives in Redis).
    other = manager(redis_server, coalesce="0s")
    assert "paused" in other.handle_alert(alert("192.0.2.200"), True)[0].reason


def test_redis_down_queues_and_replays(tmp_path: Any) -> None:
    from test_bus_helpers import RedisServer

    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        cfg = BlockConfig(
            redis=RedisSettings(url=server.url, socket_timeout_s=1.0, connect_timeout_s=0.5),
            protect_self=False,
        )
        m = BlockManager(cfg, {})
        m.handle_alert(alert("203.0.113.50"), True)
        server.kill()
        out = m.handle_alert(alert("203.0.113.51"), True)
        assert out[0].status == "failed" and "queued" in out[0].reason
        assert m.reconcile_once() == {}  # nothing touched while the ledger is away
        server.start()
        m.reconcile_once()
        assert set(m.ledger.active(time.time())) == {"203.0.113.50/32", "203.0.113.51/32"}
        assert not m.queue
    finally:
        server.stop()


def test_config_errors_name_the_key(tmp_path: Any) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[blocks]\nladder = ["10m", "soon"]\n')
    with pytest.raises(ConfigError, match=r"blocks.ladder.*soon"):
        load_block_config(str(path))
    path.write_text("[blocks]\nbogus = 1\n")
    with pytest.raises(ConfigError, match=r"blocks\.bogus: unknown"):
        load_block_config(str(path))
    path.write_text(
        '[outputs.redis]\nurl = "redis://10.1.1.1:6379/0"\n[blocks.nftables]\nhook = "forward"\n'
    )
    cfg = load_block_config(str(path))
    assert (
        cfg.redis.url == "redis://10.1.1.1:6379/0"
        and cfg.target_config("nftables")["hook"] == "forward"
    )


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from cli.common import invoke

    code = invoke(sekimori, args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_add_list_why_remove_flush(
    redis_server: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "s.toml"
    conf.write_text(f'[blocks]\nredis-url = "{redis_server}"\nprotect-self = false\n')
    base = ["--config", str(conf), "blocks"]
    code, out, _ = run_cli(
        [*base, "add", "203.0.113.77", "--ttl", "1h", "--reason", "scanner"], capsys
    )
    assert code == 0 and "blocked 203.0.113.77/32 for 1h" in out
    code, out, _ = run_cli([*base, "list"], capsys)
    assert "1 active block(s)" in out and "203.0.113.77/32" in out and "scanner" in out
    code, out, _ = run_cli([*base, "why", "203.0.113.77"], capsys)
    assert "BLOCKED" in out and "manual" in out
    code, out, _ = run_cli([*base, "remove", "203.0.113.77", "--reason", "oops", "--pin"], capsys)
    assert "unblocked 203.0.113.77/32" in out and "allow pinned" in out
    code, out, _ = run_cli([*base, "why", "203.0.113.77"], capsys)
    assert "REMOVED" in out and "allow pinned" in out and "oops" in out
    run_cli([*base, "add", "203.0.113.78", "--reason", "x"], capsys)
    code, out, _ = run_cli([*base, "flush", "--reason", "maintenance"], capsys)
    assert "1 active block(s) would be removed" in out
    code, out, _ = run_cli([*base, "flush", "--reason", "maintenance", "--yes"], capsys)
    assert "removed 1 block(s)" in out
    code, _, err = run_cli([*base, "add", "not-an-ip", "--reason", "x"], capsys)
    assert code == 2 and err.count("\n") == 1 and "not an IP address" in err
    code, _, err = run_cli([*base, "add", "127.0.0.1", "--reason", "x"], capsys)
    assert code == 6 and "protected" in err
