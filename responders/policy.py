"""Response policy: which alerts trigger the responders, and whether they act or only record.

Scope: :func:`decide` looks at one EVE alert (with sekimori's response context when present)
and returns a :class:`Decision`: whether it triggers a response (by rule action — ``drop``
and the ``reject*`` family by default —, by signature id, by classtype, or by severity) and
whether the responders enforce it. The mode comes from ``respond.mode``: ``prevent``
enforces, ``detect`` never does (responders record ``would_...``), ``sensor`` follows the
alert's own ``sekimori.mode`` and treats a missing one as ``detect``. Suricata writes no
such context, so its alerts are enforced only under ``respond.mode = "prevent"``.

Non-goals: what a responder does (its plugin), rate limits per flow (the responder's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from responders.config import PolicyConfig


@dataclass(frozen=True, slots=True)
class Decision:
    triggered: bool
    enforce: bool
    reason: str  # why it triggers (or why not), for the decisions stream


def _alert(eve: Mapping[str, Any]) -> Mapping[str, Any]:
    alert = eve.get("alert")
    return alert if isinstance(alert, Mapping) else {}


def _context(eve: Mapping[str, Any]) -> Mapping[str, Any]:
    ctx = eve.get("sekimori")
    return ctx if isinstance(ctx, Mapping) else {}


def rule_action(eve: Mapping[str, Any]) -> str | None:
    """The rule's action word: sekimori's context, else inferred from Suricata's alert.action
    (``blocked`` is what Suricata writes for a drop/reject rule in IPS mode)."""
    action = _context(eve).get("rule_action")
    if isinstance(action, str):
        return action.lower()
    return "drop" if _alert(eve).get("action") == "blocked" else None


def matches(policy: PolicyConfig, eve: Mapping[str, Any]) -> str | None:
    """The first criterion the alert meets, as text; None when it meets none."""
    alert = _alert(eve)
    action = rule_action(eve)
    if action is not None and action in policy.actions:
        return f"rule action {action}"
    sid = alert.get("signature_id")
    if isinstance(sid, int) and sid in policy.sids:
        return f"sid {sid}"
    category = alert.get("category")
    if isinstance(category, str) and category and category in policy.classtypes:
        return f"classtype {category}"
    severity = alert.get("severity")
    if policy.max_severity > 0 and isinstance(severity, int) and severity <= policy.max_severity:
        return f"severity {severity} <= {policy.max_severity}"
    return None


def enforcing(mode: str, eve: Mapping[str, Any]) -> bool:
    if mode == "prevent":
        return True
    if mode == "detect":
        return False
    return _context(eve).get("mode") == "prevent"


def decide(policy: PolicyConfig, mode: str, eve: Mapping[str, Any]) -> Decision:
    if eve.get("event_type", "alert") != "alert":
        return Decision(False, False, f"event_type {eve.get('event_type')!r} is not an alert")
    why = matches(policy, eve)
    if why is None:
        return Decision(False, False, "no policy criterion matches")
    enforce = enforcing(mode, eve)
    return Decision(True, enforce, why if enforce else f"{why}; detect mode")
