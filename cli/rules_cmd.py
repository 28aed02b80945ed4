"""``sekimori rules check|stats|test``: validate rule files, describe the compiled set, and
see which rules fire on a capture (the first tool of tuning).

Scope: thin wrappers over signatures/ruleset.py and the sensor pipeline; printing only.
"""

from __future__ import annotations

from collections import Counter

import click

from cli.common import CliState, load
from sensor.config import Config
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
        cache_dir=None,
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
        cache_dir=None,
    )  # fmt: skip
    names = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmpv6", 132: "sctp", -1: "other"}
    click.echo(f"ruleset {ruleset.version}: {report.loaded} rules, "
               f"compile {report.compile_seconds:.2f}s, stream window {ruleset.max_reach} bytes")  # fmt: skip
    click.echo(f"{'group':8} {'rules':>7} {'prefiltered':>11} {'patterns':>8} {'always':>7} "
               f"{'ip-only':>7} {'db bytes':>10}")  # fmt: skip
    for key, g in ruleset.groups.items():
        pre = sum(len(u) for u in g.pattern_rules)
        size = len(g.prefilter.dumps()) if g.prefilter is not None else 0
        total = pre + len(g.always) + len(g.ip_only)
        click.echo(f"{names.get(key, str(key)):8} {total:7d} {pre:11d} {len(g.pattern_rules):8d} "
                   f"{len(g.always):7d} {len(g.ip_only):7d} {size:10d}")  # fmt: skip


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
            a = orjson.loads(line).get("alert") or {}
            counts[(a.get("gid", 1), a.get("signature_id", 0), a.get("signature", ""))] += 1
    click.echo(f"{summary.packets} packets, {summary.alerts} alerts from {len(counts)} rules")
    for (gid, sid, msg), n in counts.most_common():
        click.echo(f"{n:7d}  {gid}:{sid}  {msg}")
