"""The one place sekimori touches Hyperscan.

Scope: compile a set of literal fast patterns into a block-mode database, scan a buffer for
which patterns occur, and (de)serialise databases for the on-disk cache.

Why a wrapper: the Python binding can take the whole process down when misused (seen here:
entering a stream's context after opening it explicitly segfaults). Everything else in the
project goes through :class:`LiteralSet`, which only ever uses block mode, owns its scratch
space, and never hands the raw ``hyperscan.Database`` out.

Non-goals: streaming mode (stream inspection scans a bounded window of reassembled data in
block mode: see docs/detection.md for the measurement behind that choice), regular
expressions (pcre is verified in Python after a literal prefilter hit).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import hyperscan

from sensor.errors import RuleError

ENGINE_VERSION = "sekimori-hs-1"


def _literal_regex(pattern: bytes) -> bytes:
    # Every byte escaped as \xHH: exact, and immune to regex metacharacters and NULs.
    return b"".join(b"\\x%02x" % b for b in pattern)


class LiteralSet:
    """A compiled set of literal patterns; ``scan`` returns the ids of those present.

    Each pattern is reported at most once per scan (HS_FLAG_SINGLEMATCH): the prefilter only
    needs to know *whether* a rule's fast pattern occurs, the verifier finds where.
    """

    __slots__ = ("_db", "_hits", "_on_match", "count")

    def __init__(self, db: hyperscan.Database, count: int) -> None:
        self._db = db
        self.count = count
        hits: set[int] = set()
        self._hits = hits
        add = hits.add

        def on_match(pid: int, _from: int, _to: int, _flags: int, _ctx: object) -> None:
            add(pid)

        self._on_match = on_match

    @classmethod
    def compile(cls, patterns: Sequence[tuple[bytes, bool]]) -> LiteralSet:
        """Compile ``(pattern, nocase)`` pairs; pattern *i* reports id *i*."""
        if not patterns:
            raise ValueError("LiteralSet needs at least one pattern")
        exprs = [_literal_regex(p) for p, _ in patterns]
        flags = [
            hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if nocase else 0)
            for _, nocase in patterns
        ]
        db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        try:
            db.compile(
                expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags
            )
        except hyperscan.HyperscanError as exc:
            raise RuleError(
                f"Hyperscan could not compile {len(exprs)} fast patterns: {exc}"
            ) from exc
        return cls(db, len(exprs))

    def scan(self, data: bytes) -> set[int]:
        """Ids of the patterns that occur in ``data``. The returned set is reused: copy to keep."""
        hits = self._hits
        hits.clear()
        if data:
            self._db.scan(data, match_event_handler=self._on_match)
        return hits

    def dumps(self) -> bytes:
        return bytes(hyperscan.dumpb(self._db))

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled as its serialised database (the rule cache stores whole rulesets).
        return (LiteralSet.loads, (self.dumps(), self.count))

    @classmethod
    def loads(cls, blob: bytes, count: int) -> LiteralSet:
        db = hyperscan.loadb(blob, hyperscan.HS_MODE_BLOCK)
        # A deserialised database has no scratch yet; allocate it here, once.
        try:
            db.scratch = hyperscan.Scratch(db)
        except Exception:  # binding versions differ in how scratch is attached
            pass
        return cls(db, count)


def compile_literals(patterns: Iterable[tuple[bytes, bool]]) -> LiteralSet | None:
    """Compile, or return None for an empty pattern list (nothing to prefilter)."""
    pats = list(patterns)
    return LiteralSet.compile(pats) if pats else None
