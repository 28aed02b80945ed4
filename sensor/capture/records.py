"""Definitions shared by the capture readers: the record tuple and sanity bounds.

Scope: constants only, so ``pcapfile`` and ``pcapng`` can both import them without
importing each other. Non-goals: any reading logic.
"""

from __future__ import annotations

from typing import Final

# One record as handed to the decoder: seconds, microseconds, DLT, bytes, original length.
Record = tuple[int, int, int, bytes, int]

# A caplen above this is not a real packet but a damaged length field (tcpdump and
# Suricata use bounds of the same order of magnitude).
MAX_CAPLEN: Final = 256 * 1024

PCAPNG_SHB_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
