"""Suricata's verification corpus (../shared/conformance), scored by its own runner.

Runs ``conformance/run`` against this checkout's ``sekimori`` and holds the pass rates the
issues ask for (tier 1 >= 95%, tier 2 >= 85%) and what the application layer reached
(tier 3 >= 85%). Skipped when ../shared is absent; the exact score is kept in
docs/conformance.md.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.shared

THRESHOLDS = {1: 0.95, 2: 0.85, 3: 0.85}


def test_conformance_tiers(shared_dir: Path) -> None:
    runner = shared_dir / "conformance" / "run"
    if not runner.exists():
        pytest.skip(f"{runner} is absent")
    sekimori = Path(sys.executable).with_name("sekimori")
    proc = subprocess.run(
        [sys.executable, str(runner), "--cmd", str(sekimori), "--jobs", "2"],
        capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    scores = {
        int(m.group(1)): int(m.group(2)) / int(m.group(3))
        for m in re.finditer(r"^tier (\d+): (\d+)/(\d+) passed", proc.stdout, re.M)
    }
    assert set(scores) == set(THRESHOLDS), proc.stdout[-2000:]
    for tier, minimum in THRESHOLDS.items():
        assert scores[tier] >= minimum, f"tier {tier}: {scores[tier]:.1%}\n{proc.stdout}"
