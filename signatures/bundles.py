"""Rule sets as versioned bundles: update, validate, store, activate, roll back, compare.

Scope: ``BundleStore(root)`` keeps every validated rule set as a version named by the hash
of its files::

    root/versions/<hash16>/sekimori.rules   # includes rules/*.rules: what the sensor loads
    root/versions/<hash16>/rules/*.rules    # the source files after the conf filters
    root/versions/<hash16>/cache/           # precompiled Hyperscan databases
    root/versions/<hash16>/manifest.json    # hash, sources, counts, issues
    root/current -> versions/<hash16>       # run the sensor on root/current/sekimori.rules
    root/history.json                       # activation stack (rollback pops it)

``update`` reads the sources (signatures/bundle_sources.py), applies the
suricata-update conf filters, then parses and compiles the result; a rule set with parse
errors (other than keywords sekimori does not support yet) beyond ``max_invalid``, or with
no usable rule, is refused and nothing is stored. ``activate`` checks the stored files
against their hash, copies the databases into the sensor's cache, switches ``current``
atomically and sends SIGHUP to the sensor named by the pidfile; the sensor reloads between
packets, keeps its flows, and keeps the running rules if that reload fails.

Non-goals: rule-source indexes, flowbit dependency resolution, scheduling updates.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sensor.errors import RuleError
from signatures.bundle_sources import RuleLine, apply_filters, parse_rule_line, read_source
from signatures.compiler import compile_ruleset
from signatures.ruleset import build_signatures
from signatures.variables import Variables

ENTRY = "sekimori.rules"
PIDFILE_ENV = "SEKIMORI_PIDFILE"
DEFAULT_PIDFILE = "/run/sekimori/sekimori.pid"


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str
    created: str
    sources: tuple[str, ...]
    files: dict[str, str]  # name -> sha256
    rules: int
    disabled: int
    skipped: int
    issues: tuple[str, ...]  # the first problems, "file:line: reason"

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "created": self.created, "sources": list(self.sources),
                "files": self.files, "rules": self.rules, "disabled": self.disabled,
                "skipped": self.skipped, "issues": list(self.issues)}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        return cls(data["version"], data["created"], tuple(data["sources"]), dict(data["files"]),
                   int(data["rules"]), int(data["disabled"]), int(data["skipped"]),
                   tuple(data.get("issues", ())))  # fmt: skip


@dataclass(frozen=True, slots=True)
class BundleDiff:
    added: tuple[RuleLine, ...]
    removed: tuple[RuleLine, ...]
    changed: tuple[tuple[RuleLine, RuleLine], ...]  # (old, new): rev, text or enabled changed


@dataclass(frozen=True, slots=True)
class Activation:
    version: str
    previous: str | None
    signalled: int | None  # pid that got SIGHUP
    note: str


def _digest(files: dict[str, str]) -> tuple[str, dict[str, str]]:
    total = hashlib.sha256()
    per: dict[str, str] = {}
    for name in sorted(files):
        h = hashlib.sha256(files[name].encode()).hexdigest()
        per[name] = h
        total.update(f"{name}\0{h}\n".encode())
    return total.hexdigest()[:16], per


def default_pidfile() -> str:
    return os.environ.get(PIDFILE_ENV) or DEFAULT_PIDFILE


class BundleStore:
    def __init__(self, root: str) -> None:
        self.root = root
        self.versions_dir = os.path.join(root, "versions")

    # -- update ---------------------------------------------------------------------------

    def update(self, sources: Sequence[str], variables: Variables, *,
               classification_file: str | None = None, conf: dict[str, str | None] | None = None,
               max_invalid: int = 0, timeout: float = 30.0) -> tuple[Manifest, bool]:  # fmt: skip
        """Build, validate and store a version; returns (manifest, newly stored)."""
        if not sources:
            raise RuleError("rules update: no source given")
        files: dict[str, str] = {}
        for source in sources:
            for name, text in read_source(source, timeout).items():
                unique, n = name, 2
                while unique in files:
                    unique, n = f"{name[:-6]}-{n}.rules", n + 1
                files[unique] = text
        if not files:
            raise RuleError(f"rules update: no *.rules file in {', '.join(sources)}")
        files = apply_filters(files, **(conf or {}))
        version, per_file = _digest(files)
        os.makedirs(self.versions_dir, exist_ok=True)
        final = os.path.join(self.versions_dir, version)
        if os.path.exists(os.path.join(final, "manifest.json")):
            return self.manifest(version), False
        staging = tempfile.mkdtemp(prefix=".staging-", dir=self.versions_dir)
        os.chmod(staging, 0o755)  # the sensor may run as another user than `rules update`
        try:
            manifest = self._build(staging, files, per_file, version, tuple(sources), variables,
                                   classification_file, max_invalid)  # fmt: skip
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest, True

    def _build(self, staging: str, files: dict[str, str], per_file: dict[str, str],
               version: str, sources: tuple[str, ...], variables: Variables,
               classification_file: str | None, max_invalid: int) -> Manifest:  # fmt: skip
        os.makedirs(os.path.join(staging, "rules"))
        for name, text in files.items():
            with open(os.path.join(staging, "rules", name), "w", encoding="utf-8") as handle:
                handle.write(text)
        with open(os.path.join(staging, ENTRY), "w", encoding="utf-8") as handle:
            handle.write("".join(f"include rules/{name}\n" for name in sorted(files)))
        sigs, report = build_signatures([os.path.join(staging, ENTRY)], variables,
                                        classification_file)  # fmt: skip
        invalid = [i for i in report.issues if i.severity == "error"
                   and not i.category.startswith("unsupported")]  # fmt: skip
        shown = tuple(f"{os.path.basename(i.file)}:{i.line}: {i.reason}" for i in invalid[:20])
        if len(invalid) > max_invalid:
            raise RuleError(f"rule update refused: {len(invalid)} invalid rule(s) "
                            f"(allowed {max_invalid}); first: {shown[0]}")  # fmt: skip
        if not sigs:
            raise RuleError("rule update refused: no usable rule in the update")
        try:
            compile_ruleset(sigs, os.path.join(staging, "cache"))
        except Exception as exc:  # a Hyperscan compile failure is the update's fault
            raise RuleError(f"rule update refused: compiling failed: {exc}") from exc
        manifest = Manifest(version, dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
                            sources, per_file, len(sigs), report.disabled, report.skipped,
                            shown)  # fmt: skip
        with open(os.path.join(staging, "manifest.json"), "w", encoding="utf-8") as handle:
            json.dump(manifest.to_json(), handle, indent=1)
        return manifest

    # -- versions -------------------------------------------------------------------------

    def manifest(self, version: str) -> Manifest:
        path = os.path.join(self.versions_dir, version, "manifest.json")
        try:
            with open(path, encoding="utf-8") as handle:
                return Manifest.from_json(json.load(handle))
        except (OSError, ValueError, KeyError) as exc:
            raise RuleError(f"rule bundle {version}: no readable manifest ({path})") from exc

    def versions(self) -> list[Manifest]:
        if not os.path.isdir(self.versions_dir):
            return []
        names = [n for n in os.listdir(self.versions_dir) if not n.startswith(".")]
        return sorted((self.manifest(n) for n in names), key=lambda m: m.created)

    def current(self) -> str | None:
        link = os.path.join(self.root, "current")
        return os.path.basename(os.readlink(link)) if os.path.islink(link) else None

    def history(self) -> list[str]:
        try:
            with open(os.path.join(self.root, "history.json"), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return []
        return [str(v) for v in data] if isinstance(data, list) else []

    def _write_history(self, history: list[str]) -> None:
        path = os.path.join(self.root, "history.json")
        with open(path + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(history[-50:], handle)
        os.replace(path + ".tmp", path)

    def resolve(self, ref: str) -> str:
        """A version from its hash (or a unique prefix), ``current`` or ``previous``."""
        if ref == "current":
            found = self.current()
        elif ref == "previous":
            history = self.history()
            found = history[-2] if len(history) >= 2 else None
        else:
            known = os.listdir(self.versions_dir) if os.path.isdir(self.versions_dir) else []
            matches = [v for v in known if v.startswith(ref) and not v.startswith(".")]
            found = matches[0] if len(matches) == 1 else None
            if len(matches) > 1:
                raise RuleError(f"rule bundle {ref!r} is ambiguous: {', '.join(sorted(matches))}")
        if not found:
            raise RuleError(f"no rule bundle {ref!r} in {self.root}")
        return found

    def rule_file(self, version: str = "current") -> str:
        """The file to run the sensor on (through the ``current`` link for ``current``)."""
        if version == "current":
            return os.path.join(self.root, "current", ENTRY)
        return os.path.join(self.versions_dir, self.resolve(version), ENTRY)

    # -- activation -----------------------------------------------------------------------

    def verify(self, version: str) -> Manifest:
        manifest = self.manifest(version)
        rules_dir = os.path.join(self.versions_dir, version, "rules")
        files = {}
        for name in manifest.files:
            path = os.path.join(rules_dir, name)
            try:
                with open(path, encoding="utf-8") as handle:
                    files[name] = handle.read()
            except OSError as exc:
                raise RuleError(f"rule bundle {version}: {name} missing: {exc}") from exc
        if _digest(files)[0] != version:
            raise RuleError(f"rule bundle {version}: files do not match their hash (modified "
                            "after validation); refusing to activate")  # fmt: skip
        return manifest

    def activate(self, ref: str, *, pidfile: str | None = None, sensor_cache: str | None = None,
                 _push: bool = True) -> Activation:  # fmt: skip
        version = self.resolve(ref)
        self.verify(version)
        previous = self.current()
        if sensor_cache:
            _copy_cache(os.path.join(self.versions_dir, version, "cache"), sensor_cache)
        link = os.path.join(self.root, "current")
        tmp = os.path.join(self.root, f".current-{os.getpid()}")
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.path.join("versions", version), tmp)
        os.replace(tmp, link)  # atomic: the sensor sees the old or the new version, never none
        if _push:
            history = self.history()
            if not history or history[-1] != version:
                history.append(version)
            self._write_history(history)
        pid, note = signal_sensor(pidfile or default_pidfile())
        return Activation(version, previous, pid, note)

    def rollback(self, *, pidfile: str | None = None,
                 sensor_cache: str | None = None) -> Activation:  # fmt: skip
        history = self.history()
        if len(history) < 2:
            raise RuleError("nothing to roll back to: fewer than two activations recorded")
        target = history[-2]
        result = self.activate(target, pidfile=pidfile, sensor_cache=sensor_cache, _push=False)
        self._write_history(history[:-1])
        return result

    # -- diff -----------------------------------------------------------------------------

    def rules_of(self, version: str) -> dict[tuple[int, int], RuleLine]:
        rules: dict[tuple[int, int], RuleLine] = {}
        rules_dir = os.path.join(self.versions_dir, version, "rules")
        for name in sorted(self.manifest(version).files):
            with open(os.path.join(rules_dir, name), encoding="utf-8") as handle:
                for line in handle.read().splitlines():
                    rule = parse_rule_line(name, line)
                    if rule is not None:
                        rules[(rule.gid, rule.sid)] = rule
        return rules

    def diff(self, a: str, b: str) -> BundleDiff:
        old, new = self.rules_of(self.resolve(a)), self.rules_of(self.resolve(b))
        return BundleDiff(
            added=tuple(new[k] for k in sorted(new.keys() - old.keys())),
            removed=tuple(old[k] for k in sorted(old.keys() - new.keys())),
            changed=tuple((old[k], new[k]) for k in sorted(old.keys() & new.keys())
                          if (old[k].text, old[k].enabled) != (new[k].text, new[k].enabled)),
        )  # fmt: skip


def _copy_cache(src: str, dst: str) -> None:
    if not os.path.isdir(src):
        return
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        target = os.path.join(dst, name)
        if not os.path.exists(target):
            shutil.copy2(os.path.join(src, name), target)


def signal_sensor(pidfile: str) -> tuple[int | None, str]:
    """SIGHUP the sensor whose pid is in ``pidfile``; (pid or None, what happened)."""
    try:
        with open(pidfile, encoding="ascii") as handle:
            pid = int(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None, f"no running sensor found (pidfile {pidfile} absent or unreadable)"
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return None, f"pidfile {pidfile} names pid {pid}, which is not running"
    except PermissionError:
        return None, f"not allowed to signal pid {pid} (from {pidfile})"
    return pid, f"sent SIGHUP to the sensor (pid {pid})"
