"""On-disk cache of compiled rulesets, so a restart with unchanged rules skips parsing
and compiling.

Scope: after a ruleset is compiled, it (its signatures minus the packet-keyword
predicates, which are closures rebuilt from ``check_specs``; its indexes; its Hyperscan
databases as serialised blobs) and its load report are pickled
under the cache directory, keyed by everything that changes the result: engine version,
the rule file paths, variables, classification file and the buffers the sensor supports.
Every file the load read (includes too) is recorded with its SHA-256; a cache entry is
used only when all of them still hash the same, so an edited include is never missed.

Non-goals: sharing entries between machines (pickle is trusted local state: the cache
directory must not be writable by anyone the sensor does not trust, like any code path).
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from signatures.build import packet_check
from signatures.compiler import CompiledRuleset

log = logging.getLogger(__name__)

CACHE_VERSION = "sekimori-rules-4"  # 4: file rules belong to no app protocol


def _digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _code_digest() -> str:
    """A digest of the code that builds rules: an upgraded sekimori never reuses an entry
    built by another version (the signatures package's sources, read in a millisecond)."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.rglob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def cache_key(files: Sequence[str], variables: Any, classification_file: str | None,
              supported_buffers: frozenset[str]) -> str:  # fmt: skip
    h = hashlib.sha256(CACHE_VERSION.encode())
    h.update(_code_digest().encode())
    for f in files:
        h.update(os.path.abspath(f).encode() + b"\0")
    h.update(repr(sorted(variables.address_groups.items())).encode())
    h.update(repr(sorted(variables.port_groups.items())).encode())
    h.update(repr(classification_file).encode())
    if classification_file:
        h.update((_digest(classification_file) or "").encode())
    h.update(repr(sorted(supported_buffers)).encode())
    return h.hexdigest()[:32]


def load(cache_dir: str, key: str) -> tuple[CompiledRuleset, Any] | None:
    """The cached (compiled ruleset, load report) when every file read is unchanged.

    The whole compiled ruleset is cached — signatures, indexes, Hyperscan databases (as
    serialised blobs) — so a warm start does no parsing and no compiling. Cached
    signatures carry no rule text (``raw`` is empty; the version hash is kept).
    """
    path = Path(cache_dir) / f"rules-{key}.pkl"
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            entry = pickle.load(fh)
        digests: dict[str, str] = entry["files"]
        if any(_digest(f) != d for f, d in digests.items()):
            return None
        compiled: CompiledRuleset = entry["compiled"]
        sigs = tuple(
            replace(s, checks=tuple(packet_check(n, v) for n, v in s.check_specs))
            if s.check_specs
            else s
            for s in compiled.signatures
        )
        return replace(compiled, signatures=sigs), entry["report"]
    except Exception as exc:  # a damaged or foreign entry is rebuilt, never fatal
        log.warning("ignoring unreadable rule cache %s: %s", path, exc)
        return None


def store(cache_dir: str, key: str, files: Sequence[str], compiled: CompiledRuleset,
          report: Any) -> None:  # fmt: skip
    digests = {f: d for f in files if (d := _digest(f)) is not None}
    sigs = tuple(replace(s, checks=(), raw="") for s in compiled.signatures)
    entry = {"files": digests, "compiled": replace(compiled, signatures=sigs), "report": report}
    path = Path(cache_dir) / f"rules-{key}.pkl"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            pickle.dump(entry, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    except (OSError, pickle.PicklingError, TypeError, AttributeError) as exc:
        log.warning("cannot write rule cache %s: %s", path, exc)
