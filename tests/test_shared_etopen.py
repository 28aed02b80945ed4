"""ET Open on the labelled attack captures, against Suricata 7.0.10's alerts on them.

The captures and Suricata's alerts come from ../shared/pcaps/attacks (skipped when
absent). As there, HOME_NET and EXTERNAL_NET are ``any`` (both lab hosts are private
addresses). sekimori must raise the same signatures on every capture, and at least 95%
of Suricata's alerts counted per signature (stream alerts may land on other packets).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

from sensor.config import load_config
from sensor.pipeline import SENSOR_BUFFERS, RunRequest, run
from signatures.ruleset import load_ruleset
from signatures.variables import Variables

pytestmark = pytest.mark.shared

ANY = ["vars.address-groups.HOME_NET=any", "vars.address-groups.EXTERNAL_NET=any"]


SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


@pytest.fixture(scope="module")
def et_open(tmp_path_factory: pytest.TempPathFactory):
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent")
    files = sorted(str(p) for p in (SHARED / "rules" / "et-open").glob("*.rules"))
    config, _ = load_config(None, env={}, sets=ANY)
    variables = Variables(address_groups=dict(config.vars.address_groups),
                          port_groups=dict(config.vars.port_groups))  # fmt: skip
    cache = tmp_path_factory.mktemp("rule-cache")
    rules = load_ruleset(files, variables, cache_dir=str(cache),
                         supported_buffers=SENSOR_BUFFERS)  # fmt: skip
    return config, rules


def _sids(records: list[dict]) -> collections.Counter[int]:
    return collections.Counter(r["sid"] for r in records)


def test_et_open_loads_nearly_every_enabled_rule(et_open) -> None:
    _, (_ruleset, report) = et_open
    assert report.loaded >= 24_500  # of 24,827 enabled; each skipped one has a reason
    assert all(issue.reason for issue in report.issues)


def test_attack_captures_raise_suricatas_signatures(et_open, shared_dir: Path,
                                                    tmp_path: Path) -> None:  # fmt: skip
    config, rules = et_open
    total = common = 0
    for pcap in sorted((shared_dir / "pcaps" / "attacks").glob("*.pcap")):
        expected = _sids(json.loads(pcap.with_suffix(".suricata-alerts.json").read_text()))
        eve = tmp_path / f"{pcap.stem}.json"
        run(config, RunRequest(pcap=str(pcap), iface=None, rule_files=(), eve=str(eve)), rules)
        got = _sids([
            {"sid": r["alert"]["signature_id"]}
            for r in map(json.loads, eve.read_text().splitlines())
            if r.get("event_type") == "alert"
        ])  # fmt: skip
        assert set(got) == set(expected), pcap.name
        total += sum(expected.values())
        common += sum((expected & got).values())
    assert total > 300 and common >= 0.95 * total
