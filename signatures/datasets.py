"""Suricata 7's ``dataset`` keyword: named sets of buffer values shared by rules.

Scope: parsing ``dataset:<set|isset|isnotset|unset>,<name>[, type t, load f, state f,
save f, memcap m, hashsize h]``, the per-ruleset :class:`DatasetRegistry` that shares a set
by name (case-insensitive, like Suricata's ``DatasetSearchByName``) between rules, loading
Suricata's file formats (``string``: one base64 value a line; ``md5``/``sha256``: hex;
``ipv4``/``ip``: addresses; a ``,<number>`` reputation suffix is accepted and ignored),
the :class:`DatasetStep` that runs in a sticky buffer's chain, and writing ``save``/``state``
files at exit (:func:`save_datasets`).

Semantics (``DetectDatasetBufferMatch``): the step looks at the whole buffer, not at the
cursor; an empty buffer never matches; ``set`` matches only when the value was not in the
set yet (and adds it at that moment, whatever later keywords or buffers decide), ``unset``
only when it was there; a failing dataset step ends the buffer's inspection. md5/sha256/ipv4
sets only hold values of 16/32/4 bytes (``to_md5``/``to_sha256`` produce them): another
length is "not in the set".

Non-goals: ``datarep`` (refused), the suricata.yaml ``datasets:`` section and the unix
socket commands, keeping set contents across a rule reload (a reload loads the files
again), sharing sets between forked workers (each worker has its own copy).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sensor.errors import RuleError
from signatures.inspect import DISCONTINUE, BufferProgram, run_next

if TYPE_CHECKING:
    from signatures.inspect import MatchEnv, Step

COMMANDS = ("set", "isset", "isnotset", "unset")
TYPES = ("string", "md5", "sha256", "ipv4", "ip")
NAME_MAX = 63  # Suricata's DATASET_NAME_MAX_LEN
DEFAULT_MEMCAP = 16 * 1024 * 1024
# What one entry costs against the memcap besides its bytes (Suricata charges its hash
# node; the exact figure is not observable, a bound is what matters).
ENTRY_OVERHEAD = 64
_FIXED_LEN = {"md5": 16, "sha256": 32, "ipv4": 4}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30,
          "gb": 1 << 30}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DatasetOptions:
    """One ``dataset`` keyword as written (paths not resolved yet)."""

    cmd: str
    name: str
    type: str | None = None
    load: str | None = None
    save: str | None = None
    state: bool = False  # load and save are the same ``state`` file
    memcap: int | None = None
    hashsize: int | None = None


def _size(key: str, value: str) -> int:
    m = _SIZE.match(value)
    if m is None:
        raise RuleError(f"dataset: invalid value for {key}: {value!r}")
    return int(m.group(1)) * _UNITS[(m.group(2) or "").lower()]


def parse_dataset(value: str | None) -> DatasetOptions:
    """Parse the keyword value with Suricata's tokenisation (comma separated, a key and
    its value split at the first space); unknown options are refused, not ignored."""
    words = [w.strip() for w in (value or "").split(",")]
    words = [w for w in words if w]
    if len(words) < 2:
        raise RuleError("dataset: needs a command and a set name")
    cmd, name = words[0], words[1]
    if cmd not in COMMANDS:
        raise RuleError(f'dataset: action "{cmd}" is not supported')
    if " " in name or "\t" in name:
        raise RuleError("dataset: spaces not allowed in dataset names")
    if len(name) > NAME_MAX:
        raise RuleError(f"dataset: name longer than {NAME_MAX} characters")
    opts: dict[str, str] = {}
    for word in words[2:]:
        key, _, val = word.partition(" ")
        val = val.strip()
        if not val:
            raise RuleError(f"dataset: option {key!r} needs a value")
        if key not in ("type", "load", "save", "state", "memcap", "hashsize"):
            raise RuleError(f"dataset: unknown option {key!r}")
        if key in opts:
            raise RuleError(f"dataset: '{key}' can only appear once")
        opts[key] = val
    if "state" in opts and ("load" in opts or "save" in opts):
        raise RuleError("dataset: 'state' can not be mixed with 'load' and 'save'")
    kind = opts.get("type")
    if kind is not None and kind not in TYPES:
        raise RuleError(f"dataset: bad type {kind!r} (string, md5, sha256, ipv4, ip)")
    state = opts.get("state")
    return DatasetOptions(
        cmd, name, kind,
        load=state or opts.get("load"), save=state or opts.get("save"), state=state is not None,
        memcap=_size("memcap", opts["memcap"]) if "memcap" in opts else None,
        hashsize=_size("hashsize", opts["hashsize"]) if "hashsize" in opts else None,
    )  # fmt: skip


class Dataset:
    """One named set; mutated at match time, bounded by its memcap."""

    __slots__ = ("items", "load", "memcap", "name", "save", "type", "used")

    def __init__(self, name: str, kind: str, load: str | None, save: str | None,
                 memcap: int) -> None:  # fmt: skip
        self.name = name
        self.type = kind
        self.load = load
        self.save = save
        self.memcap = memcap
        self.used = 0
        self.items: set[bytes] = set()

    def _fits(self, data: bytes) -> bool:
        size = _FIXED_LEN.get(self.type)
        if size is not None:
            return len(data) == size
        if self.type == "ip":
            return len(data) in (4, 16)
        return True

    def lookup(self, data: bytes) -> int:
        """1 in the set, 0 not, -1 a value this type cannot hold."""
        if not self._fits(data):
            return -1
        return 1 if data in self.items else 0

    def add(self, data: bytes) -> int:
        """1 added, 0 already there, -1 cannot hold it or the memcap is reached."""
        if not self._fits(data):
            return -1
        if data in self.items:
            return 0
        cost = len(data) + ENTRY_OVERHEAD
        if self.used + cost > self.memcap:
            return -1
        self.items.add(data)
        self.used += cost
        return 1

    def remove(self, data: bytes) -> int:
        if data not in self.items:
            return 0
        self.items.discard(data)
        self.used -= len(data) + ENTRY_OVERHEAD
        return 1

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {self.type}, {len(self.items)} items)"


class DatasetStep:
    """``dataset:<cmd>,<name>`` in a buffer's chain (1 match, else give up)."""

    __slots__ = ("cmd", "dataset")

    def __init__(self, cmd: str, dataset: Dataset) -> None:
        self.cmd = cmd
        self.dataset = dataset

    def run(self, steps: tuple[Step, ...], i: int, buf: bytes, env: MatchEnv) -> int:
        if not buf:
            return DISCONTINUE
        cmd, ds = self.cmd, self.dataset
        if cmd == "isset":
            ok = ds.lookup(buf) == 1
        elif cmd == "isnotset":
            ok = ds.lookup(buf) < 1
        elif cmd == "set":
            ok = ds.add(buf) == 1
        else:
            ok = ds.remove(buf) == 1
        return run_next(steps, i, buf, env) if ok else DISCONTINUE


def _decode_line(kind: str, text: str) -> bytes:
    """One load-file line (without its newline) -> the stored value; ValueError if bad."""
    if kind == "string":
        value = text.split(",", 1)[0]  # "<base64>,<reputation>": the datarep format
        return base64.b64decode(value.encode("ascii"), validate=True)
    if kind in ("md5", "sha256"):
        digits = 32 if kind == "md5" else 64
        value = text[:digits]
        if len(text) != digits and (len(text) < digits + 2 or text[digits] != ","):
            raise ValueError(f"{kind} line must be {digits} hex digits")
        return binascii.unhexlify(value)
    value = text.split(",", 1)[0].strip()
    if kind == "ipv4":
        return ipaddress.IPv4Address(value).packed
    return ipaddress.ip_address(value).packed


def encode_value(kind: str, data: bytes) -> str:
    """A stored value as a save-file line (the format :func:`_decode_line` reads)."""
    if kind == "string":
        return base64.b64encode(data).decode("ascii")
    if kind in ("md5", "sha256"):
        return data.hex()
    return str(ipaddress.ip_address(data))


def load_file(ds: Dataset, path: str, create: bool) -> None:
    """Fill ``ds`` from ``path``; ``create``: a missing state file is an empty set."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        if create:
            return
        raise RuleError(f"dataset {ds.name}: cannot read {path}: no such file") from None
    except OSError as exc:
        raise RuleError(f"dataset {ds.name}: cannot read {path}: {exc.strerror}") from None
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        text = line.rstrip(b"\r").decode("ascii", "replace")
        if not text:
            continue
        try:
            value = _decode_line(ds.type, text)
        except (ValueError, binascii.Error) as exc:
            raise RuleError(f"dataset {ds.name}: {path}:{lineno}: bad {ds.type} value "
                            f"{text[:80]!r} ({exc})") from None  # fmt: skip
        if ds.add(value) < 0:
            raise RuleError(f"dataset {ds.name}: {path}:{lineno}: memcap {ds.memcap} reached")


class DatasetRegistry:
    """The sets of one ruleset build, by lower-cased name (Suricata compares names
    case-insensitively). Files are read when a set is first declared."""

    def __init__(self, default_rule_path: str | None = None) -> None:
        self._sets: dict[str, Dataset] = {}
        self._default_rule_path = default_rule_path
        self.files: list[str] = []  # every file loaded, for the rule cache's digests

    def get(self, opts: DatasetOptions, rule_file: str) -> Dataset:
        load, save = self._paths(opts, rule_file)
        existing = self._sets.get(opts.name.lower())
        if existing is not None:
            if opts.type is not None and existing.type != opts.type:
                raise RuleError(f"dataset {opts.name} already exists and is of type "
                                f"{existing.type}")  # fmt: skip
            if (load or save) and (load != existing.load or save != existing.save):
                raise RuleError(f"dataset {opts.name}: load/save differ from its first "
                                "declaration")  # fmt: skip
            return existing
        if opts.type is None:
            raise RuleError(f"dataset {opts.name} not defined (add 'type <type>')")
        ds = Dataset(opts.name, opts.type, load, save, opts.memcap or DEFAULT_MEMCAP)
        if load is not None:
            load_file(ds, load, create=opts.state)
            self.files.append(os.path.abspath(load))  # the cache checks it from any cwd
        self._sets[opts.name.lower()] = ds
        return ds

    def _paths(self, opts: DatasetOptions, rule_file: str) -> tuple[str | None, str | None]:
        rule_dir = os.path.dirname(rule_file)
        save = None
        if opts.save is not None:
            # Suricata: save/state paths are relative to its data directory, never absolute
            # and without "..". sekimori has no data directory: the rule file's directory.
            if os.path.isabs(opts.save) or ".." in opts.save.split("/"):
                raise RuleError(f"dataset {opts.name}: save/state path {opts.save!r} must be "
                                "relative and without '..'")  # fmt: skip
            save = os.path.join(rule_dir, opts.save)
            if opts.state:
                return save, save
        if opts.load is None or os.path.isabs(opts.load):
            return opts.load, save
        # SetupLoadPath: next to the rule file first, then under default-rule-path
        candidates = [os.path.join(rule_dir, opts.load)]
        if self._default_rule_path:
            candidates.append(os.path.join(self._default_rule_path, opts.load))
        for path in candidates:
            if os.path.exists(path):
                return path, save
        return candidates[0], save


def datasets_of(programs: Iterable[BufferProgram]) -> list[Dataset]:
    """The distinct sets the given buffer programs use (base64_data chains included)."""
    found: dict[int, Dataset] = {}
    pending: list[tuple[object, ...]] = [p.steps for p in programs]
    while pending:
        for step in pending.pop():
            if isinstance(step, DatasetStep):
                found.setdefault(id(step.dataset), step.dataset)
            sub = getattr(step, "sub", None)
            if isinstance(sub, tuple):
                pending.append(sub)
    return list(found.values())


def save_datasets(datasets: list[Dataset]) -> None:
    """Write every set with a save/state file, atomically (a forked worker writing the
    same file at the same moment leaves one whole copy, never a mix)."""
    for ds in datasets:
        if ds.save is None:
            continue
        tmp = f"{ds.save}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="ascii") as fh:
            for value in sorted(ds.items):
                fh.write(encode_value(ds.type, value) + "\n")
        os.replace(tmp, ds.save)
