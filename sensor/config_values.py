"""Value parsers for the sensor's settings (sensor/config.py).

Scope: each parser takes a TOML value or a string from the environment / ``--set`` and returns
the typed value, or raises ValueError with a message that completes "KEY: <message>".

Non-goals: knowing which key uses which parser (the settings table in sensor/config.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]{2})?\s*$")
_SIZE_UNITS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int) and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise ValueError(f"expected a boolean (true/false/yes/no/1/0), got {value!r}")


def parse_size(value: object) -> int:
    """A non-negative integer, optionally with Suricata's size suffix (kb/mb/gb, 1024-based)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE_RE.match(value) if isinstance(value, str) else None
    unit = (match.group(2) or "").lower() if match else ""
    if match is None or (unit and unit not in _SIZE_UNITS):
        raise ValueError(f"expected a non-negative integer or size like 64mb, got {value!r}")
    return int(float(match.group(1)) * _SIZE_UNITS.get(unit, 1))


def parse_rt_priority(value: object) -> int:
    """0 (normal scheduling) or a SCHED_FIFO priority 1-99."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected 0 or a real-time priority 1-99, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected 0 or a real-time priority 1-99, got {value!r}") from None
    if not 0 <= number <= 99:
        raise ValueError(f"expected 0 or a real-time priority 1-99, got {value!r}")
    return number


def parse_alert_max(value: object) -> int:
    """Suricata's packet-alert-max: 1-255 (Suricata warns and keeps 15 for anything else;
    sekimori refuses it, like every other bad value)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected an integer 1-255, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected an integer 1-255, got {value!r}") from None
    if not 1 <= number <= 255:
        raise ValueError(f"expected an integer 1-255, got {value!r}")
    return number


def parse_str(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a string, got {value!r}")
    return str(value)


def parse_opt_str(value: object) -> str | None:
    text = parse_str(value)
    return text or None  # an empty string unsets an optional path/URL


def parse_opt_size(value: object) -> int | None:
    return None if value == "" else parse_size(value)


def parse_str_list(value: object) -> tuple[str, ...]:
    if isinstance(value, str):  # environment / --set: comma-separated
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"expected a list of strings, got {value!r}")


def parse_enabled(value: object) -> bool:
    # app-layer.protocols.*.enabled also takes Suricata's "detection-only".
    if isinstance(value, str) and value.strip().lower() == "detection-only":
        return True
    return parse_bool(value)


def choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = parse_str(value).strip().lower()
        if text not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return text

    return parse


def parse_inline(value: object) -> str:
    """Suricata's stream.inline: ``auto`` or a boolean, kept as auto/yes/no."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return "yes" if parse_bool(value) else "no"
    except ValueError:
        raise ValueError(f"expected auto or a boolean, got {value!r}") from None


def parse_mode(value: object) -> str:
    mode = str(value).strip().lower()
    if mode not in ("detect", "prevent"):
        raise ValueError(f"expected detect or prevent, got {value!r}")
    return mode


def parse_redis_url(value: object) -> str | None:
    url = parse_opt_str(value)
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return url


# ---------------------------------------------------------------- the key table
