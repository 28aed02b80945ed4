"""Staged enforcement and tuning: which rules only alert, which record what they would do,
which are enforced; exceptions with owners; asset inventory and alert priority.

Scope: the policy file (TOML, docs/policy.md) and how the sensor finds it, the
``AlertPolicy`` that applies it (engine.py), ``explain`` for ``sekimori policy explain``.
The sensor's Config has no policy key, so the file is found here: ``SEKIMORI_POLICY``
(an empty value turns the policy off), else ``[policy] file = ...`` in the configuration
file named by ``SEKIMORI_CONFIG`` (relative to that file).

Non-goals: acting on alerts (responders), organisation policy rules (orgpolicy.py).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any

from sensor.errors import ConfigError
from sensor.policy.engine import Decision, PolicyDecider, PolicyEngine, read_hits
from sensor.policy.loader import load_policy, parse_policy
from sensor.policy.model import STAGES, Policy, RuleFacts
from sensor.policy.stages import StageDecision, decide_stage, describe_entry

POLICY_ENV = "SEKIMORI_POLICY"
HITS_NAME = "policy-hits.json"

__all__ = [
    "STAGES", "Decision", "Policy", "PolicyDecider", "PolicyEngine", "RuleFacts",
    "StageDecision", "decide_stage", "describe_entry", "load_policy", "parse_policy",
    "policy_path", "read_hits", "register", "staged_policy",
]  # fmt: skip


def policy_path(config_path: str | None = None, env: Mapping[str, str] | None = None) -> str | None:
    """The policy file to use, or None (no policy: every alert passes unannotated)."""
    env = os.environ if env is None else env
    if POLICY_ENV in env:
        return env[POLICY_ENV].strip() or None
    config_path = config_path or env.get("SEKIMORI_CONFIG")
    if not config_path:
        return None
    try:
        with open(config_path, "rb") as handle:
            table: Any = tomllib.load(handle).get("policy", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None  # the configuration loader reports a bad config file itself
    name = table.get("file") if isinstance(table, dict) else None
    if not isinstance(name, str) or not name.strip():
        return None
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), name)


def default_hits_file(cache_dir: str | None) -> str | None:
    return os.path.join(cache_dir, HITS_NAME) if cache_dir else None


def register(ext: Any, config: Any) -> None:
    """Add the policy engine (when one is configured) as an alert policy and a ticker."""
    for engine in staged_policy(config):
        ext.policies.append(engine)
        ext.tickers.append(engine)


def staged_policy(config: Any) -> list[PolicyEngine]:
    """The policy engine for ``build_extensions`` (an empty list when no policy is set)."""
    path = policy_path(getattr(config, "path", None))
    configured = getattr(config, "policy_file", None)
    if configured and POLICY_ENV not in os.environ:
        base = (
            os.path.dirname(os.path.abspath(config.path)) if getattr(config, "path", None) else ""
        )
        path = os.path.join(base, configured)
    if path is None:
        return []
    if not os.path.exists(path):
        raise ConfigError(f"{path}: policy file not found ({POLICY_ENV} or [policy] file)")
    groups = dict(config.vars.address_groups)
    return [PolicyEngine(path, address_groups=groups,
                         hits_file=default_hits_file(config.detect.cache_dir))]  # fmt: skip
