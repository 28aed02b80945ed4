"""The requires keyword, evaluated as Suricata 7.0.10."""

from __future__ import annotations

import pytest

from sensor.errors import RuleError
from signatures.requires import check_requires


@pytest.mark.parametrize(
    "value", ["version >= 7", "version >= 7.0.3 < 8 | >= 8.0.1", "version = 7.0.10", "other x"]
)
def test_requirements_that_hold(value: str) -> None:
    check_requires(value)  # raises when the rule would be skipped


@pytest.mark.parametrize(
    "value", ["version >= 8", "version >= 7.0.11", "feature lua", "version < 7 | >= 9"]
)
def test_requirements_that_fail_skip_the_rule(value: str) -> None:
    with pytest.raises(RuleError) as info:
        check_requires(value)
    assert info.value.category == "requirements not met"


@pytest.mark.parametrize("value", ["", "version >= x"])
def test_malformed_requirements_are_invalid(value: str) -> None:
    with pytest.raises(RuleError) as info:
        check_requires(value)
    assert info.value.category == "invalid"
