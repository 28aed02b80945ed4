"""Every fuzz target over its real seeds and its saved crash inputs, without atheris.

The targets (tests/fuzz/targets.py) are the same functions ``make fuzz`` runs under the
coverage-guided fuzzer; here they replay the seed corpus built from the shared and project
captures/rules and every file in tests/fuzz/regressions/<target>/, so a crash found once
stays fixed. A target may only raise its documented error (Target.allowed).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).parent / "fuzz"
sys.path.insert(0, str(FUZZ))
import targets  # noqa: E402

SEEDS_PER_TARGET = 400


@pytest.mark.parametrize("name", sorted(targets.targets()))
def test_target_survives_seeds_and_regressions(name: str) -> None:
    target = targets.targets()[name]()
    inputs = list(itertools.islice(target.seeds(), SEEDS_PER_TARGET))
    saved = FUZZ / "regressions" / name
    inputs += [p.read_bytes() for p in sorted(saved.glob("*"))] if saved.is_dir() else []
    inputs += [b"", b"\x00" * 64, bytes(range(256))]  # also without ../shared
    for data in inputs:
        target.run(data)  # anything but the target's documented error fails the test
