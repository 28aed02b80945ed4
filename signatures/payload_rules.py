"""Validation and parsing of content modifiers, isdataat and bsize, with Suricata 7's errors.

Scope: applying one content modifier (nocase, offset, depth, distance, within, rawbytes,
fast_pattern, startswith, endswith) to the content it follows, rejecting the combinations
Suricata rejects; parsing isdataat and bsize values; checking bsize against contents; the
per-buffer item list a rule's payload keywords become (:class:`PayloadItem`), linking its
relative matches, validating fixed-format contents and compiling items to steps.

Non-goals: the matching itself (``content``/``inspect``) and keyword dispatch (``payload``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sensor.errors import RuleError
from signatures import pcre
from signatures.bytekw import int_or_var, parse_int
from signatures.content import ContentSpec
from signatures.inspect import BsizeStep, IsDataAtStep, Step
from signatures.payload_plan import ReachItem

VALUE_MAX = 1024 * 1024  # Suricata's DETECT_CONTENT_VALUE_MAX for distance/within
_ABS_VS_REL = (
    "can't use a relative keyword like within/distance with an absolute keyword like depth/offset"
)


def _value(
    cd: ContentSpec, name: str, value: str | None, known: frozenset[str], lo: int, hi: int
) -> tuple[int, str | None]:
    if value is None or value.strip() == "":
        raise RuleError(f"{name}: needs a value")
    number, var = int_or_var(value.strip().strip('"'), name, "value", known)
    if var is None and not lo <= number <= hi:
        raise RuleError(f"{name}: value {number} out of range {lo}-{hi}")
    return number, var


def apply_modifier(cd: ContentSpec, name: str, value: str | None, known: frozenset[str]) -> None:
    """Apply ``name[:value]`` to ``cd`` or raise RuleError naming the conflict."""
    if name == "nocase":
        if cd.nocase:
            raise RuleError("nocase: can't use multiple nocase modifiers with the same content")
        cd.nocase = True
    elif name == "rawbytes":
        pass  # only meaningful for HTTP inspection in Snort; Suricata accepts and ignores it
    elif name == "offset":
        _offset(cd, value, known)
    elif name == "depth":
        _depth(cd, value, known)
    elif name == "distance":
        _relative_ok(cd, name, cd.has_distance)
        cd.distance, cd.distance_var = _value(cd, name, value, known, -VALUE_MAX, VALUE_MAX)
        cd.has_distance = True
    elif name == "within":
        _relative_ok(cd, name, cd.has_within)
        cd.within, cd.within_var = _value(cd, name, value, known, -VALUE_MAX, VALUE_MAX)
        if cd.within_var is None and cd.within < len(cd.pattern):
            raise RuleError(
                f"within: value {cd.within} is less than the content length "
                f"{len(cd.pattern)}, which can never match"
            )
        cd.has_within = True
    elif name == "startswith":
        if cd.startswith:
            raise RuleError("startswith: can't use multiple startswith with the same content")
        if cd.has_depth or cd.has_offset or cd.relative:
            raise RuleError(
                "startswith: can't mix startswith with depth, offset, within or distance"
            )
        cd.startswith = True
        cd.has_depth = True
        cd.depth = len(cd.pattern)
    elif name == "endswith":
        if cd.endswith:
            raise RuleError("endswith: can't use multiple endswith with the same content")
        cd.endswith = True
    elif name == "fast_pattern":
        _fast_pattern(cd, value)
    else:  # pragma: no cover - the caller dispatches only the names above
        raise RuleError(f"unknown content modifier '{name}'")


def _relative_ok(cd: ContentSpec, name: str, already: bool) -> None:
    if already:
        raise RuleError(f"{name}: can't use multiple {name}s for the same content")
    if cd.startswith:
        raise RuleError(f"{name}: can't be combined with startswith")
    if cd.has_depth or cd.has_offset:
        raise RuleError(f"{name}: {_ABS_VS_REL} for the same content")


def _absolute_ok(cd: ContentSpec, name: str, already: bool) -> None:
    if cd.startswith:
        raise RuleError(f"{name}: can't be combined with startswith")
    if already:
        raise RuleError(f"{name}: can't use multiple {name}s for the same content")
    if cd.relative:
        raise RuleError(f"{name}: {_ABS_VS_REL} for the same content")


def _offset(cd: ContentSpec, value: str | None, known: frozenset[str]) -> None:
    _absolute_ok(cd, "offset", cd.has_offset)
    cd.offset, cd.offset_var = _value(cd, "offset", value, known, 0, 65535)
    cd.has_offset = True
    if cd.has_depth and cd.depth_var is None and cd.offset_var is None:
        cd.depth += cd.offset  # depth is stored as an absolute end, as in Suricata


def _depth(cd: ContentSpec, value: str | None, known: frozenset[str]) -> None:
    _absolute_ok(cd, "depth", cd.has_depth)
    depth, cd.depth_var = _value(cd, "depth", value, known, 0, 65535)
    if cd.depth_var is None:
        if depth < len(cd.pattern):
            raise RuleError(f"depth: {depth} is smaller than the content length {len(cd.pattern)}")
        cd.depth = depth + (cd.offset if cd.offset_var is None else 0)
    cd.has_depth = True


def _fast_pattern(cd: ContentSpec, value: str | None) -> None:
    cd.fast_pattern = True
    if value is None or value.strip() == "":
        return
    text = value.strip()
    if text == "only":
        cd.fp_only = True
        return
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise RuleError(f"fast_pattern: expected 'only' or '<offset>,<length>', got {value!r}")
    off = parse_int(parts[0], "fast_pattern", "offset")
    length = parse_int(parts[1], "fast_pattern", "length")
    if off < 0 or length <= 0 or off + length > len(cd.pattern):
        raise RuleError(
            f"fast_pattern: chop {off},{length} does not fit the {len(cd.pattern)}-byte content"
        )
    cd.fp_chop = (off, length)


def parse_isdataat(value: str | None, known: frozenset[str]) -> tuple[IsDataAtStep, ReachItem]:
    """``isdataat:[!]<n|var>[,relative]``."""
    parts = [p.strip() for p in (value or "").split(",")]
    if not parts[0]:
        raise RuleError("isdataat: needs a position")
    negated = parts[0].startswith("!")
    first = parts[0][1:].strip() if negated else parts[0]
    relative = False
    for extra in parts[1:]:
        if extra == "relative":
            relative = True
        elif extra != "rawbytes":
            raise RuleError(f"isdataat: unknown option {extra!r}")
    number, var = int_or_var(first, "isdataat", "position", known)
    if var is None and not 0 <= number <= 65535:
        raise RuleError(f"isdataat: position {number} out of range 0-65535")
    step = IsDataAtStep(number, var, negated, relative)
    if negated or var is not None:
        return step, ReachItem("unbounded", relative)
    if relative:
        return step, ReachItem("bytes", True, length=number)
    return step, ReachItem("bytes", False, length=1, offset=number)


def parse_bsize(value: str | None) -> BsizeStep:
    """``bsize:<n>``, ``=n``, ``!n``, ``!=n``, ``<n``, ``>n``, ``<=n``, ``>=n``, ``a<>b`` or
    ``a-b`` (exclusive bounds), as Suricata 7's integer comparisons."""
    text = (value or "").replace(" ", "")
    if not text:
        raise RuleError("bsize: needs a value")
    try:
        for sep in ("<>", "-"):
            if sep in text and not text.startswith(sep):
                lo_t, hi_t = text.split(sep, 1)
                lo, hi = int(lo_t), int(hi_t)
                if lo < 0 or hi <= lo + 1:
                    raise RuleError(f"bsize: range {value!r} is empty or reversed")
                return BsizeStep("<>", lo, hi)
        for mode in ("<=", ">=", "!=", "!", "<", ">", "="):
            if text.startswith(mode):
                number = _nonneg(int(text[len(mode) :]))
                return BsizeStep("!=" if mode == "!" else mode, number, 0)
        return BsizeStep("=", _nonneg(int(text)), 0)
    except ValueError as exc:
        raise RuleError(f"bsize: invalid value {value!r}") from exc


def _nonneg(n: int) -> int:
    if n < 0:
        raise RuleError(f"bsize: value {n} is negative")
    return n


def check_bsize(buffer: str, items: Sequence[Any]) -> None:
    """Reject a rule whose bsize leaves no room for one of its contents in that buffer."""
    longest = max(
        (
            len(it.content.pattern)
            for it in items
            if it.content is not None and not it.content.negated
        ),
        default=0,
    )
    for it in items:
        step = it.step
        if not isinstance(step, BsizeStep):
            continue
        cap = {"=": step.lo, "<": step.lo - 1, "<=": step.lo, "<>": step.hi - 1}.get(step.mode)
        if cap is not None and longest > cap:
            raise RuleError(
                f"bsize: a {longest}-byte content in {buffer} can never fit "
                f"a buffer of at most {cap} bytes"
            )


@dataclass
class PayloadItem:
    """One payload keyword in rule order: a content (spec) or another precompiled step."""

    buffer: str
    content: ContentSpec | None = None
    step: Any = None
    relation: str | None = None  # "within", "distance", "relative" (to the previous anchor)
    reach: ReachItem | None = None


def link_relatives(items: list[PayloadItem]) -> None:
    """Set Suricata's WITHIN_NEXT / DISTANCE_NEXT / RELATIVE_NEXT on the anchors."""
    anchor: PayloadItem | None = None
    for it in items:
        if it.relation is not None and anchor is not None:
            if anchor.content is not None:
                if anchor.content.fp_only:
                    raise RuleError(
                        "fast_pattern:only content cannot be followed by a relative keyword"
                    )
                if it.relation in ("within", "both", "relative"):
                    anchor.content.within_next = True
                if it.relation in ("distance", "both", "relative"):
                    anchor.content.distance_next = True
            else:
                anchor.step.relative_next = True
        if it.content is not None or isinstance(it.step, pcre.PcreStep):
            anchor = it


def validate_content(cd: ContentSpec) -> None:
    # Suricata's validation of fixed-format buffers (32 hex digits, 20 colon-hex bytes)
    if cd.buffer in ("ja3.hash", "ja3s.hash") and (cd.nocase or len(cd.pattern) != 32):
        raise RuleError(f"{cd.buffer}: a content must be a 32-character hash, without nocase")
    if cd.buffer == "tls.cert_fingerprint" and len(cd.pattern) != 59:
        raise RuleError("tls.cert_fingerprint: a content must be a 59-character fingerprint")
    if cd.buffer == "http.host" and (cd.nocase or cd.pattern != cd.pattern.lower()):
        # Suricata's http.host validation: the buffer is lower-cased, so an upper-case
        # pattern could never match and nocase is "redundant" -- both refuse the rule
        raise RuleError("http.host: contents must be lower case, without nocase")
    positional = cd.relative or cd.has_depth or cd.has_offset
    if cd.fp_only and (positional or cd.negated or cd.startswith or cd.endswith):
        raise RuleError("fast_pattern:only cannot be combined with negation or position modifiers")
    if cd.fast_pattern and cd.negated and (positional or cd.startswith or cd.endswith):
        raise RuleError(
            "fast_pattern: a negated content with position modifiers cannot be the fast pattern"
        )


def compile_item(it: PayloadItem) -> Step:
    if it.content is not None:
        return it.content.compile()
    step: Step = it.step
    return step


def reach_of(it: PayloadItem) -> ReachItem:
    if it.content is None:
        return it.reach if it.reach is not None else ReachItem("bytes", False)
    cd = it.content
    if cd.offset_var or cd.depth_var or cd.distance_var or cd.within_var:
        return ReachItem("unbounded", cd.relative)
    if cd.relative:
        within = cd.within if cd.has_within else None
        return ReachItem(
            "content",
            True,
            length=len(cd.pattern),
            distance=cd.distance,
            within=within,
            negated=cd.negated,
        )
    depth = cd.depth if (cd.has_depth or cd.startswith) else None
    return ReachItem(
        "content", False, length=len(cd.pattern), offset=cd.offset, depth=depth, negated=cd.negated
    )
