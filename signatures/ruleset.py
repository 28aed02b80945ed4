"""From rule files to a compiled ruleset, with an honest account of what was skipped.

Scope: load files (signatures/loader.py), build each enabled rule (signatures/build.py),
report every rule that could not be used with file, line and reason (never silently), and
compile the rest (signatures/compiler.py). ``strict`` turns any skipped rule into an error.
This is the one entry point the sensor, ``rules check`` and ``rules test`` share.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sensor.errors import RuleError
from signatures import rulecache
from signatures.buffers import HEADER_BUFFERS, PKT_DATA
from signatures.build import SignatureBuilder
from signatures.classification import Classifications
from signatures.compiler import CompiledRuleset, compile_ruleset, ruleset_version
from signatures.loader import RuleIssue, load_rule_files
from signatures.rule import Signature
from signatures.variables import Variables

SUPPORTED_BUFFERS = frozenset({PKT_DATA, *HEADER_BUFFERS})


@dataclass(frozen=True, slots=True)
class RulesetReport:
    files: tuple[str, ...]
    loaded: int
    disabled: int
    issues: tuple[RuleIssue, ...]  # every rule or line not used, and warnings
    skipped_by_reason: dict[str, int]
    parse_seconds: float
    compile_seconds: float

    @property
    def skipped(self) -> int:
        return sum(1 for i in self.issues if i.severity == "error")


def build_signatures(
    files: Sequence[str],
    variables: Variables,
    classification_file: str | None = None,
    supported_buffers: frozenset[str] = SUPPORTED_BUFFERS,
    default_rule_path: str | None = None,
) -> tuple[list[Signature], RulesetReport]:
    t0 = time.perf_counter()
    loaded = load_rule_files(files, variables)
    classes = Classifications.load(classification_file)
    builder = SignatureBuilder(classes, supported_buffers, default_rule_path)
    issues = list(loaded.issues)
    sigs: list[Signature] = []
    seen: set[tuple[int, int]] = set()
    disabled = 0
    for parsed in loaded.rules:
        if not parsed.enabled:
            disabled += 1
            continue
        try:
            sig = builder.build(parsed)
        except RuleError as exc:
            issues.append(RuleIssue(parsed.file, parsed.line, exc.reason, exc.category, "error"))
            continue
        if (sig.gid, sig.sid) in seen:
            issues.append(RuleIssue(parsed.file, parsed.line, f"duplicate sid {sig.sid}",
                                    "duplicate sid", "error"))  # fmt: skip
            continue
        seen.add((sig.gid, sig.sid))
        sigs.append(sig)
    by_reason = Counter(i.category for i in issues if i.severity == "error")
    report = RulesetReport(
        # dataset files count as read: the rule cache re-checks their digests too
        files=(*loaded.files, *builder.datasets.files), loaded=len(sigs), disabled=disabled, issues=tuple(issues),
        skipped_by_reason=dict(by_reason), parse_seconds=time.perf_counter() - t0,
        compile_seconds=0.0,
    )  # fmt: skip
    return sigs, report


def load_ruleset(
    files: Sequence[str],
    variables: Variables,
    *,
    classification_file: str | None = None,
    cache_dir: str | None = None,
    strict: bool = False,
    supported_buffers: frozenset[str] = SUPPORTED_BUFFERS,
    default_rule_path: str | None = None,
) -> tuple[CompiledRuleset, RulesetReport]:
    """Load, build and compile; through the rule cache when ``cache_dir`` is given."""
    t0 = time.perf_counter()
    key = ""
    if cache_dir is not None:
        key = rulecache.cache_key(files, variables, classification_file, supported_buffers)
        hit = rulecache.load(cache_dir, key)
        if hit is not None:
            compiled, report = hit
            _check_strict(report, strict)
            return compiled, replace(report, parse_seconds=time.perf_counter() - t0,
                                     compile_seconds=0.0)  # fmt: skip
    sigs, report = build_signatures(files, variables, classification_file, supported_buffers,
                                    default_rule_path)  # fmt: skip
    _check_strict(report, strict)
    t0 = time.perf_counter()
    compiled = compile_ruleset(sigs, cache_dir, version=ruleset_version(sigs))
    report = replace(report, compile_seconds=time.perf_counter() - t0)
    if cache_dir is not None:
        rulecache.store(cache_dir, key, report.files, compiled, report)
    return compiled, report


def _check_strict(report: RulesetReport, strict: bool) -> None:
    if strict and report.skipped:
        first = next(i for i in report.issues if i.severity == "error")
        raise RuleError(f"{report.skipped} rule(s) not loaded (strict mode); first: "
                        f"{first.file}:{first.line}: {first.reason}")  # fmt: skip
