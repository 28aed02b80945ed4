"""Hyperscan block scans of a bridge window vs streaming mode, on ET Open's pkt_data
fast patterns: the measurement behind docs/detection.md's choice of block scans.

Usage: .venv/bin/python bench/hs_modes.py [RULES ...]   (default: ../shared/rules/et-open)
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import hyperscan

from sensor.pipeline import SENSOR_BUFFERS
from signatures.ruleset import load_ruleset
from signatures.variables import Variables

SEGMENTS, SEGMENT_BYTES, TAIL = 2000, 1460, 511


def patterns(files: list[str]) -> list[tuple[bytes, bool]]:
    ruleset, _ = load_ruleset(files, Variables.suricata_defaults(),
                              supported_buffers=SENSOR_BUFFERS)  # fmt: skip
    seen: dict[tuple[bytes, bool], None] = {}
    for s in ruleset.signatures:
        fp = s.payload.fast_pattern if s.payload is not None else None
        if fp and fp.buffer == "pkt_data" and not fp.negated and fp.pattern:
            seen[(fp.pattern, fp.nocase)] = None
    return list(seen)


def main() -> None:
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "rules" / "et-open"
    files = sys.argv[1:] or sorted(str(p) for p in default.glob("*.rules"))
    pats = patterns(files)
    exprs = [b"".join(b"\\x%02x" % b for b in p) for p, _ in pats]
    flags = [hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if n else 0)
             for _, n in pats]  # fmt: skip
    ids = list(range(len(exprs)))
    block = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    block.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=flags)
    stream = hyperscan.Database(mode=hyperscan.HS_MODE_STREAM)
    stream.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=flags)
    rng = random.Random(1)
    alphabet = b"abcdefghijklmnopqrstuvwxyz /=&?."
    segs = [bytes(rng.choice(alphabet) for _ in range(SEGMENT_BYTES)) for _ in range(SEGMENTS)]
    hits: set[int] = set()

    def on_match(i: int, _f: int, _t: int, _fl: int, _c: object) -> None:
        hits.add(i)

    tail = b""
    t0 = time.perf_counter()
    for s in segs:
        window = tail + s
        block.scan(window, match_event_handler=on_match)
        tail = window[-TAIL:]
    t_block = time.perf_counter() - t0
    t0 = time.perf_counter()
    with stream.stream(match_event_handler=on_match) as st:
        for s in segs:
            st.scan(s)
    t_stream = time.perf_counter() - t0
    mb = SEGMENTS * SEGMENT_BYTES / 1e6
    print(f"{len(pats)} pkt_data fast patterns, {SEGMENTS} segments of {SEGMENT_BYTES} bytes")
    print(f"block scan of tail+segment: {mb / t_block:7.0f} MB/s  "
          f"{t_block / SEGMENTS * 1e6:5.2f} us/segment")  # fmt: skip
    print(f"streaming mode:             {mb / t_stream:7.0f} MB/s  "
          f"{t_stream / SEGMENTS * 1e6:5.2f} us/segment")  # fmt: skip


if __name__ == "__main__":
    main()
