"""The whole ET Open snapshot: every rule line parses or becomes an issue, never an exception."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from signatures.loader import load_rule_files
from signatures.variables import Variables


def test_et_open_loads(shared_dir: Path) -> None:
    files = sorted(str(p) for p in (shared_dir / "rules" / "et-open").glob("*.rules"))
    if not files:
        pytest.skip("no ET Open rules in the shared folder")
    start = time.perf_counter()
    result = load_rule_files(files, Variables.suricata_defaults())
    elapsed = time.perf_counter() - start
    enabled = result.enabled
    print(
        f"ET Open: {len(enabled)} enabled + {len(result.rules) - len(enabled)} disabled rules, "
        f"{len(result.issues)} issues, {len(result.rules) / elapsed:.0f} rules/s"
    )
    # Suricata 7.0.10 loads all 24,827 enabled rules of this snapshot with stock vars.
    errors = [i for i in result.issues if i.severity == "error"]
    assert len(enabled) == 24_827, errors[:5]
    assert errors == []
    assert len(result.files) == len(files)


def test_et_open_negated_any_fails_like_suricata(shared_dir: Path) -> None:
    # With HOME_NET=any, EXTERNAL_NET=any Suricata rejects exactly sids 2000328, 2002087, 2011802.
    files = sorted(str(p) for p in (shared_dir / "rules" / "et-open").glob("*.rules"))
    if not files:
        pytest.skip("no ET Open rules in the shared folder")
    variables = Variables.suricata_defaults().with_overrides(
        addresses={"HOME_NET": "any", "EXTERNAL_NET": "any"}
    )
    result = load_rule_files(files, variables)
    errors = [i for i in result.issues if i.severity == "error"]
    assert len(result.enabled) == 24_824
    assert len(errors) == 3 and all("negates the complete IP space" in i.reason for i in errors)
