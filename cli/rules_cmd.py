"""``sekimori rules check|stats|test``: validate rule files, describe the compiled set, and
see which rules fire on a capture (the first tool of tuning).

Scope: thin wrappers over signatures/ruleset.py and the sensor pipeline; printing only.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import click

from cli.common import CliState, load
from sensor.config import Config
from sensor.pipeline import sensor_buffers
from signatures.ruleset import load_ruleset
from signatures.variables import Variables


def _variables(config: Config) -> Variables:
    return Variables(address_groups=dict(config.vars.address_groups),
                     port_groups=dict(config.vars.port_groups))  # fmt: skip


@click.group("rules")
def command() -> None:
    """Check, describe and try out rule files."""


@command.command("check")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting.")
@click.option("--quiet", "-q", is_flag=True, help="Only the summary table.")
@click.pass_obj
def check(state: CliState, files: tuple[str, ...], sets: tuple[str, ...], quiet: bool) -> None:
    """Load FILE... and report every rule that cannot be used, with file:line and why.

    Exit status 1 when any rule failed to load.
    """
    config = load(state, sets)
    _ruleset, report = load_ruleset(
        files, _variables(config), classification_file=config.detect.classification_file,
        cache_dir=None, supported_buffers=sensor_buffers(),
    )  # fmt: skip
    errors = [i for i in report.issues if i.severity == "error"]
    if not quiet:
        for issue in report.issues:
            click.echo(f"{issue.file}:{issue.line}: {issue.severity}: {issue.reason}")
    click.echo(f"\n{report.loaded} rules loaded, {len(errors)} skipped, {report.disabled} disabled "
               f"(parse {report.parse_seconds:.2f}s, compile {report.compile_seconds:.2f}s)")  # fmt: skip
    if report.skipped_by_reason:
        click.echo("\nskipped by reason:")
        for reason, n in sorted(report.skipped_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            click.echo(f"  {n:7d}  {reason}")
    if errors:
        raise SystemExit(1)


@command.command("stats")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting.")
@click.pass_obj
def stats(state: CliState, files: tuple[str, ...], sets: tuple[str, ...]) -> None:
    """Rules per group, fast patterns, compile time and database size."""
    config = load(state, sets)
    ruleset, report = load_ruleset(
        files, _variables(config), classification_file=config.detect.classification_file,
        cache_dir=None, supported_buffers=sensor_buffers(),
    )  # fmt: skip
    names = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", -1: "other"}
    click.echo(f"ruleset {ruleset.version}: {report.loaded} rules, "
               f"compile {report.compile_seconds:.2f}s, stream window {ruleset.max_reach} bytes")  # fmt: skip
    click.echo(f"{'group':8} {'rules':>7} {'prefiltered':>11} {'patterns':>8} {'always':>7} "
               f"{'ip-only':>7} {'db bytes':>10}")  # fmt: skip
    for key, g in ruleset.groups.items():
        prefilters = [pf for pf in (g.to_server, g.to_client) if pf is not None]
        pre = len({o for pf in prefilters for u in pf.pattern_rules for o in u})
        patterns = sum(len(pf.pattern_rules) for pf in prefilters)
        size = sum(len(pf.db.dumps()) for pf in prefilters)
        always = len({*g.always.broad, *(o for v in g.always.by_dport.values() for o in v),
                      *(o for v in g.always.by_sport.values() for o in v)})  # fmt: skip
        ip_only = 0
        if g.ip_only is not None:
            idx = g.ip_only
            ip_only = len({*idx.broad4, *idx.broad6,
                           *(o for seg in (idx.src4, idx.dst4, idx.src6, idx.dst6)
                             for rules in seg.rules for o in rules)})  # fmt: skip
        total = pre + always + ip_only
        click.echo(f"{names.get(key, str(key)):8} {total:7d} {pre:11d} {patterns:8d} "
                   f"{always:7d} {ip_only:7d} {size:10d}")  # fmt: skip


@command.command("test")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--pcap", required=True, type=click.Path(dir_okay=False), help="Capture file.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a setting.")
@click.pass_obj
def test(state: CliState, files: tuple[str, ...], pcap: str, sets: tuple[str, ...]) -> None:
    """Run FILE... over a capture and list which rules fire, most frequent first."""
    import tempfile
    from pathlib import Path

    import orjson

    from sensor.pipeline import RunRequest, run

    config = load(state, sets)
    with tempfile.TemporaryDirectory(prefix="sekimori-rules-test-") as tmp:
        eve = str(Path(tmp) / "eve.json")
        summary = run(config, RunRequest(pcap=pcap, iface=None, rule_files=files, eve=eve))
        counts: Counter[tuple[int, int, str]] = Counter()
        for line in Path(eve).read_bytes().splitlines():
            record = orjson.loads(line)
            if record.get("event_type") != "alert":
                continue
            a = record.get("alert") or {}
            counts[(a.get("gid", 1), a.get("signature_id", 0), a.get("signature", ""))] += 1
    click.echo(f"{summary.packets} packets, {summary.alerts} alerts from {len(counts)} rules")
    for (gid, sid, msg), n in counts.most_common():
        click.echo(f"{n:7d}  {gid}:{sid}  {msg}")


# -- versioned bundles (signatures/bundles.py, docs/policy.md) ---------------------------

if TYPE_CHECKING:
    from signatures.bundles import Activation

_STORE = click.option("--store", envvar="SEKIMORI_RULE_STORE", default="/var/lib/sekimori/rules",
                      show_default=True, help="Bundle store directory (env SEKIMORI_RULE_STORE).")  # fmt: skip
_PIDFILE = click.option("--pidfile", default=None, metavar="FILE",
                        help="Sensor pidfile to SIGHUP (default $SEKIMORI_PIDFILE or "
                             "/run/sekimori/sekimori.pid).")  # fmt: skip


def _show_activation(result: Activation) -> None:
    click.echo(f"active: {result.version} (was {result.previous}); {result.note}")


@command.command("update")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@_STORE
@click.option("--disable-conf", type=click.Path(dir_okay=False), help="suricata-update syntax.")
@click.option("--enable-conf", type=click.Path(dir_okay=False))
@click.option("--drop-conf", type=click.Path(dir_okay=False))
@click.option("--modify-conf", type=click.Path(dir_okay=False))
@click.option("--max-invalid", type=click.IntRange(min=0), default=0, show_default=True,
              help="Invalid rules tolerated (unsupported keywords never count).")  # fmt: skip
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Download timeout.")
@click.option("--activate", "then_activate", is_flag=True, help="Activate the new version.")
@_PIDFILE
@click.pass_obj
def update(state: CliState, sources: tuple[str, ...], store: str, disable_conf: str | None,
           enable_conf: str | None, drop_conf: str | None, modify_conf: str | None,
           max_invalid: int, timeout: float, then_activate: bool, pidfile: str | None) -> None:  # fmt: skip
    """Build a rule bundle from files, directories, tarballs or URLs; validate and store it."""
    from signatures.bundles import BundleStore

    config = load(state)
    conf = {"disable": disable_conf, "enable": enable_conf, "drop": drop_conf,
            "modify": modify_conf}  # fmt: skip
    bundles = BundleStore(store)
    manifest, new = bundles.update(sources, _variables(config), conf=conf, max_invalid=max_invalid,
                                   classification_file=config.detect.classification_file,
                                   timeout=timeout)  # fmt: skip
    click.echo(f"{'stored' if new else 'unchanged'}: version {manifest.version}, "
               f"{manifest.rules} rules, {manifest.disabled} disabled, "
               f"{manifest.skipped} skipped")  # fmt: skip
    for issue in manifest.issues:
        click.echo(f"  {issue}")
    if then_activate:
        _show_activation(bundles.activate(manifest.version, pidfile=pidfile,
                                          sensor_cache=config.detect.cache_dir))  # fmt: skip


@command.command("activate")
@click.argument("version")
@_STORE
@_PIDFILE
@click.pass_obj
def activate(state: CliState, version: str, store: str, pidfile: str | None) -> None:
    """Make VERSION (hash prefix) current and tell the running sensor to reload."""
    from signatures.bundles import BundleStore

    config = load(state)
    _show_activation(BundleStore(store).activate(version, pidfile=pidfile,
                                                 sensor_cache=config.detect.cache_dir))  # fmt: skip


@command.command("rollback")
@_STORE
@_PIDFILE
@click.pass_obj
def rollback(state: CliState, store: str, pidfile: str | None) -> None:
    """Go back to the previously active version."""
    from signatures.bundles import BundleStore

    config = load(state)
    _show_activation(BundleStore(store).rollback(pidfile=pidfile,
                                                 sensor_cache=config.detect.cache_dir))  # fmt: skip


@command.command("versions")
@_STORE
def versions(store: str) -> None:
    """Stored versions, oldest first; * marks the current one."""
    from signatures.bundles import BundleStore

    bundles = BundleStore(store)
    current = bundles.current()
    for m in bundles.versions():
        mark = "*" if m.version == current else " "
        click.echo(f"{mark} {m.version}  {m.created}  {m.rules:6d} rules  {', '.join(m.sources)}")


@command.command("diff")
@click.argument("a")
@click.argument("b")
@_STORE
def diff(a: str, b: str, store: str) -> None:
    """Rules added, removed and changed from version A to B (hash, current, previous)."""
    from signatures.bundles import BundleStore

    result = BundleStore(store).diff(a, b)
    for rule in result.added:
        click.echo(f"+ {rule.gid}:{rule.sid} rev {rule.rev} ({rule.file})")
    for rule in result.removed:
        click.echo(f"- {rule.gid}:{rule.sid} rev {rule.rev} ({rule.file})")
    for old, new in result.changed:
        what = [] if old.enabled == new.enabled else ["enabled" if new.enabled else "disabled"]
        if old.text != new.text:
            what.append(f"rev {old.rev} -> {new.rev}" if old.rev != new.rev else "text changed")
        click.echo(f"~ {new.gid}:{new.sid} {', '.join(what)} ({new.file})")
    click.echo(f"{len(result.added)} added, {len(result.removed)} removed, "
               f"{len(result.changed)} changed")  # fmt: skip
