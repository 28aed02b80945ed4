"""Payload keywords of one rule -> a :class:`PayloadSpec` of per-buffer programs.

Scope: the builder the rule builder feeds every option it does not own, in rule order
(content and its modifiers, pcre, isdataat, byte_*, bsize, base64_decode/base64_data,
pkt_data, sticky buffers and legacy modifiers). It tracks the active buffer like
Suricata's ``s->init_data->list``, validates modifier combinations with Suricata 7's
errors, derives the "relative next" links that drive backtracking, and freezes the
result into precompiled steps. Keyword details live in ``content``, ``pcre``,
``bytekw``/``bytesteps``, ``inspect`` and ``payload_plan``.

Non-goals: ``prefilter`` and ``dsize`` (the lead's builder), producing buffers. (A byte_*
keyword's ``dce`` option only flags the rule as DCERPC when it reads pkt_data: ``dce_pkt``.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sensor.errors import RuleError, UnsupportedKeyword
from signatures import bytesteps, pcre
from signatures.asn1 import Asn1Step, parse_asn1
from signatures.buffers import (
    ALIASES,
    APP_BUFFERS,
    BASE64_DATA,
    HEADER_BUFFERS,
    LEGACY_MODIFIERS,
    PKT_DATA,
    SAME_LIST,
    sticky_buffer_name,
)
from signatures.bytekw import parse_int
from signatures.content import ContentSpec, parse_pattern
from signatures.datasets import DatasetRegistry, DatasetStep, parse_dataset
from signatures.inspect import (
    Base64DecodeStep,
    BufferProgram,
    MatchEnv,
    Step,
)
from signatures.payload_plan import (
    FastPattern,
    ReachItem,
    choose_fast_pattern,
    make_fast_pattern,
    max_reach,
)
from signatures.payload_rules import (
    PayloadItem,
    apply_modifier,
    check_bsize,
    compile_item,
    link_relatives,
    parse_bsize,
    parse_isdataat,
    reach_of,
    validate_content,
)
from signatures.pcre_vars import cut_capture_names, parse_captures
from signatures.transforms import (
    SEPARATOR,
    check_content,
    parse_transform,
    split_name,
    transformed_name,
)

__all__ = ["BufferProgram", "FastPattern", "MatchEnv", "PayloadBuilder", "PayloadSpec"]

_CONTENT_MODIFIERS = frozenset(
    {
        "nocase",
        "offset",
        "depth",
        "distance",
        "within",
        "rawbytes",
        "fast_pattern",
        "startswith",
        "endswith",
    }
)
_OTHER = frozenset(
    {
        "content",
        "pcre",
        "isdataat",
        "asn1",
        "byte_test",
        "byte_jump",
        "byte_extract",
        "byte_math",
        "bsize",
        "base64_decode",
        "base64_data",
        "pkt_data",
        "dataset",
    }
)
_CLAIMED = (
    _CONTENT_MODIFIERS
    | _OTHER
    | frozenset(LEGACY_MODIFIERS)
    | frozenset(ALIASES)
    | APP_BUFFERS
    | HEADER_BUFFERS
)
_BYTE_PARSERS: dict[str, Callable[[str | None, frozenset[str]], Any]] = {
    "byte_test": bytesteps.parse_byte_test,
    "byte_jump": bytesteps.parse_byte_jump,
    "byte_extract": bytesteps.parse_byte_extract,
    "byte_math": bytesteps.parse_byte_math,
}
_MAX_B64 = 1 << 24


@dataclass(frozen=True)
class PayloadSpec:
    programs: Mapping[str, BufferProgram]  # buffer name -> program, in first-use order
    fast_pattern: FastPattern | None  # None: the rule has no content usable as fast pattern
    max_reach: int | None  # bytes one pkt_data match can span; None = unbounded
    var_kinds: frozenset[str] = frozenset()  # "flow"/"pkt" variables its pcre captures set
    # a pkt_data content has depth or offset: Suricata then inspects a TCP rule on the
    # packet payload as well as on the stream (see signatures.rule.INSPECT_BOTH)
    positional_pkt: bool = False
    # a byte_* keyword with the dce option reads pkt_data: the rule becomes a DCERPC rule
    dce_pkt: bool = False


class PayloadBuilder:
    """Accumulates one rule's payload keywords; :meth:`finish` returns the PayloadSpec."""

    def __init__(self, supported_buffers: frozenset[str],
                 datasets: DatasetRegistry | None = None, rule_file: str = "") -> None:  # fmt: skip
        self._datasets = datasets
        self._rule_file = rule_file
        self._supported = supported_buffers | {PKT_DATA, BASE64_DATA}
        self._buffer = PKT_DATA
        self._sticky = False  # a sticky buffer (not pkt_data) is active
        self._items: list[PayloadItem] = []
        self._last_content: ContentSpec | None = None
        self._vars: dict[str, set[str]] = {}
        self._b64: PayloadItem | None = None
        self._fast_pattern_seen = False
        self._fresh = False  # the active sticky buffer has no keyword yet (transforms go here)
        self._unfilled = False  # a sticky buffer was named and no keyword inspects it yet
        self._var_kinds: set[str] = set()  # "flow"/"pkt": variables its pcre captures set
        self._dce_pkt = False  # a byte_* dce keyword on pkt_data

    def claims(self, name: str) -> bool:
        return name in _CLAIMED

    # --- adding keywords -------------------------------------------------------------

    def add(self, name: str, value: str | None, quoted: bool) -> None:
        if name in _CONTENT_MODIFIERS:
            self._modifier(name, value)
        elif name == "content":
            self._content(value, quoted)
        elif name in LEGACY_MODIFIERS:
            self._legacy(name)
        elif name == "pcre":
            self._pcre(value, quoted)
        elif name in _BYTE_PARSERS:
            self._byte(name, value)
        elif name == "isdataat":
            step, reach = parse_isdataat(value, self._known())
            self._append(
                PayloadItem(
                    self._buffer,
                    step=step,
                    reach=reach,
                    relation="relative" if step.relative else None,
                )
            )
        elif name == "asn1":
            self._append(PayloadItem(self._buffer, step=Asn1Step(parse_asn1(value)),
                               reach=ReachItem("unbounded", False)))  # fmt: skip
        elif name == "bsize":
            if not self._sticky or self._buffer == BASE64_DATA:
                raise RuleError("bsize: needs a sticky buffer (e.g. http.uri) before it")
            self._append(PayloadItem(self._buffer, step=parse_bsize(value)))
        elif name == "base64_decode":
            self._base64_decode(value)
        elif name == "dataset":
            self._dataset(value)
        elif name == "base64_data":
            if self._b64 is None:
                raise RuleError("base64_data: needs a preceding base64_decode")
            self._switch(BASE64_DATA, "base64_data")
        elif name == "pkt_data":
            self._check_filled()
            self._buffer, self._sticky, self._fresh = PKT_DATA, False, False
        else:
            target = sticky_buffer_name(name)
            if target is None:  # pragma: no cover - claims() guards this
                raise RuleError(f"unknown payload keyword '{name}'")
            self._switch(target, name)

    def _switch(self, buffer: str, written: str) -> None:
        self._require(buffer, written)
        self._check_filled()
        self._buffer, self._sticky = buffer, True
        self._unfilled = buffer != BASE64_DATA
        self._fresh = buffer != BASE64_DATA

    def _require(self, buffer: str, written: str) -> None:
        if buffer == "file.magic" and buffer not in self._supported:
            raise RuleError(f"{written}: needs libmagic, which this process cannot load "
                            "(install libmagic1)", category="needs libmagic")  # fmt: skip
        if buffer not in self._supported:
            raise UnsupportedKeyword(written)

    def transform(self, name: str, value: str | None, quoted: bool) -> None:
        """A transform keyword: the active sticky buffer becomes its transformed version.

        As in Suricata 7.0: transforms directly after the sticky buffer apply to all its
        matches; a transform after matches of an untransformed sticky buffer starts the
        transformed buffer for the matches that follow (those before stay on the plain
        one); once matches ran on a transformed buffer, another transform is an error."""
        base, chain = split_name(self._buffer)
        usable = self._sticky and self._buffer != BASE64_DATA and self._buffer not in HEADER_BUFFERS
        if not usable or (not self._fresh and chain):
            raise RuleError(f"{name}: transforms must directly follow a sticky buffer")
        self._buffer = transformed_name(base, (*chain, parse_transform(name, value, quoted)))
        self._fresh = True  # more transforms may follow directly

    def content_in(self, buffer: str, written: str, value: str | None, quoted: bool) -> None:
        """A nocase content in ``buffer`` that leaves the sticky buffer alone: Suricata 7's
        legacy ``filemagic:"x"`` is ``content:"x"; nocase;`` moved into ``file.magic``."""
        self._require(buffer, written)
        self._content(value, quoted)
        cd = self._need_content(written)
        cd.buffer, cd.moved_by = buffer, written
        self._items[-1].buffer = buffer
        apply_modifier(cd, "nocase", None, self._known())

    def _known(self) -> frozenset[str]:
        # Variables are rule-wide: Suricata lets a byte_math result from ipv4.hdr feed a
        # byte_test in tcp.hdr (buffers are inspected in the order the rule names them).
        return frozenset().union(*self._vars.values())

    def _append(self, item: PayloadItem) -> None:
        self._items.append(item)
        self._fresh = self._unfilled = False

    def _content(self, value: str | None, quoted: bool) -> None:
        pattern, negated = parse_pattern(value, quoted)
        if self._buffer in ("ja3.hash", "ja3s.hash"):  # Suricata lower-cases these contents
            pattern = pattern.lower()
        if SEPARATOR in self._buffer:
            check_content(split_name(self._buffer)[1], pattern)
        cd = ContentSpec(pattern, negated, self._buffer, len(self._items))
        self._last_content = cd
        self._append(PayloadItem(self._buffer, content=cd))

    def _need_content(self, keyword: str) -> ContentSpec:
        if self._last_content is None:
            raise RuleError(f"{keyword}: needs a preceding content")
        return self._last_content

    def _modifier(self, name: str, value: str | None) -> None:
        cd = self._need_content(name)
        if name == "fast_pattern":
            if self._fast_pattern_seen:
                raise RuleError("fast_pattern: only one content per rule can be the fast pattern")
            self._fast_pattern_seen = True
        apply_modifier(cd, name, value, self._known())
        item = next(it for it in reversed(self._items) if it.content is cd)
        if cd.has_within and cd.has_distance:
            item.relation = "both"
        elif cd.has_within:
            item.relation = "within"
        elif cd.has_distance:
            item.relation = "distance"

    def _legacy(self, name: str) -> None:
        cd = self._need_content(name)
        if self._sticky:
            raise RuleError(
                f"{name}: content modifier used while sticky buffer is active; "
                "reset it with pkt_data first"
            )
        if cd.buffer != PKT_DATA:
            raise RuleError(f"{name}: the previous content is already in {cd.buffer}")
        target = LEGACY_MODIFIERS[name]
        if target not in self._supported:
            raise UnsupportedKeyword(name)
        cd.buffer, cd.moved_by = target, name
        for it in self._items:
            if it.content is cd:
                it.buffer = target

    def _pcre(self, value: str | None, quoted: bool) -> None:
        value, names = cut_capture_names(value or "")
        expression, flags, negated = pcre.split_pcre(value, quoted)
        buffer = self._buffer
        flagged = pcre.pcre_buffer(flags)
        if flagged is not None:
            # Suricata refuses a buffer flag only when it names another buffer than the
            # active sticky one (http.uri; ... pcre:"/x/U" is fine). In Suricata 7
            # http.response_body is the file_data list, so /Q is that buffer too.
            if self._sticky and flagged in SAME_LIST.get(self._buffer, ()):
                flagged = self._buffer
            if self._sticky and flagged != self._buffer:
                raise RuleError(
                    f"pcre: buffer flag in {flags!r} names another buffer than the active "
                    f"sticky buffer {self._buffer}"
                )
            if flagged not in self._supported:
                raise UnsupportedKeyword(f"pcre /{''.join(f for f in flags if f.isupper())}")
            buffer = flagged
        if (
            "R" in flags
            and not self._sticky
            and not any(
                it.buffer == buffer
                and (it.content is not None or isinstance(it.step, pcre.PcreStep))
                for it in self._items
            )
        ):
            # Suricata: "pcre with /R (relative) needs preceding match in the same buffer"
            raise RuleError("pcre: /R needs a preceding content or pcre in the same buffer")
        regex = pcre.compile_pcre(expression, flags)
        captures = parse_captures(names, expression, regex.groups) if not negated else ()
        step = pcre.PcreStep(regex, negated, "R" in flags, "A" in flags, captures)
        self._var_kinds.update("flow" if kind == "flow" else "pkt" for kind, _ in captures)
        self._append(
            PayloadItem(
                buffer,
                step=step,
                relation="relative" if step.relative else None,
                reach=ReachItem("unbounded", step.relative),
            )
        )

    def _byte(self, name: str, value: str | None) -> None:
        step = _BYTE_PARSERS[name](value, self._known())
        relative = bool(step.relative)
        if step.ext.dce and self._buffer == PKT_DATA:
            self._dce_pkt = True
        reach: ReachItem
        if name == "byte_jump" or getattr(step.ext, "nbytes_var", None) is not None:
            reach = ReachItem("unbounded", relative)
        else:
            offset = getattr(step, "offset", 0)
            if getattr(step, "offset_var", None) is not None:
                reach = ReachItem("unbounded", relative)
            else:
                reach = ReachItem(
                    "bytes",
                    relative,
                    length=step.ext.nbytes,
                    offset=offset,
                    moves_cursor=name == "byte_extract",
                )
        if name == "byte_extract":
            self._vars.setdefault(self._buffer, set()).add(step.name)
        elif name == "byte_math":
            self._vars.setdefault(self._buffer, set()).add(step.result)
        self._append(
            PayloadItem(
                self._buffer, step=step, reach=reach, relation="relative" if relative else None
            )
        )

    def _dataset(self, value: str | None) -> None:
        # Suricata: "datasets are only supported for sticky buffers" (not pkt_data)
        if not self._sticky:
            raise RuleError("dataset: datasets are only supported for sticky buffers")
        opts = parse_dataset(value)
        if self._datasets is None:
            self._datasets = DatasetRegistry()  # a lone rule: a set of its own
        step = DatasetStep(opts.cmd, self._datasets.get(opts, self._rule_file))
        self._append(PayloadItem(self._buffer, step=step, reach=ReachItem("unbounded", False)))

    def _base64_decode(self, value: str | None) -> None:
        if self._b64 is not None:
            raise RuleError("base64_decode: only one per rule")
        if self._buffer == BASE64_DATA:
            raise RuleError("base64_decode: not allowed after base64_data")
        nbytes, offset, relative = 0, 0, False
        for word in (value or "").split(","):
            parts = word.split()
            if not parts:
                continue
            if parts == ["relative"]:
                relative = True
            elif len(parts) == 2 and parts[0] in ("bytes", "offset"):
                number = parse_int(parts[1], "base64_decode", parts[0])
                if not (0 < number <= _MAX_B64 if parts[0] == "bytes" else 0 <= number <= _MAX_B64):
                    raise RuleError(f"base64_decode: {parts[0]} {number} out of range")
                if parts[0] == "bytes":
                    nbytes = number
                else:
                    offset = number
            else:
                raise RuleError(f"base64_decode: unknown option {word.strip()!r}")
        # Without a sticky buffer, Suricata attaches the decode to the list of the last
        # payload keyword (content ... http_uri; base64_decode works on the URI).
        buffer = self._buffer
        if not self._sticky and self._items:
            buffer = self._items[-1].buffer
        self._b64 = PayloadItem(
            buffer,
            step=(nbytes, offset, relative),
            relation="relative" if relative else None,
            reach=ReachItem("unbounded", relative),
        )
        self._append(self._b64)

    # --- finishing -------------------------------------------------------------------

    def _check_filled(self) -> None:
        """Suricata refuses a sticky buffer that no keyword inspects ("setup buffer X but
        didn't add matches to it"), e.g. ``content:"x"; dns_query;``."""
        if self._unfilled:
            raise RuleError(f"sticky buffer {self._buffer} has no keyword to inspect it")

    def finish(self) -> PayloadSpec:
        self._check_filled()
        by_buffer: dict[str, list[PayloadItem]] = {}
        for it in self._items:
            by_buffer.setdefault(it.buffer, []).append(it)
        contents = [it.content for it in self._items if it.content is not None]
        for items in by_buffer.values():
            link_relatives(items)
        for cd in contents:
            validate_content(cd)
        for buffer, items in by_buffer.items():
            check_bsize(buffer, items)
        sub: tuple[Step, ...] = ()
        if BASE64_DATA in by_buffer:
            sub = tuple(compile_item(it) for it in by_buffer.pop(BASE64_DATA))
        if self._b64 is not None and not sub:
            raise RuleError("base64_decode: needs base64_data followed by keywords to inspect")
        if self._b64 is not None:
            nbytes, offset, relative = self._b64.step
            self._b64.step = Base64DecodeStep(nbytes, offset, relative, sub)
        programs = {
            b: BufferProgram(b, tuple(compile_item(it) for it in items))
            for b, items in by_buffer.items()
        }
        mpm_buffers = frozenset(programs)
        chosen = choose_fast_pattern([c for c in contents if c.buffer != BASE64_DATA], mpm_buffers)
        fp = make_fast_pattern(chosen) if chosen is not None else None
        pkt_items = by_buffer.get(PKT_DATA, [])
        reach = max_reach([reach_of(it) for it in pkt_items])
        positional = any(
            it.content is not None and (it.content.has_depth or it.content.has_offset)
            for it in pkt_items
        )
        return PayloadSpec(programs, fp, reach, frozenset(self._var_kinds), positional,
                           self._dce_pkt)  # fmt: skip
