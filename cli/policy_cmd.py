"""``sekimori policy explain|check|org-rules``: why a rule is in its stage, is the policy
file valid, and the organisation policy as rule text.

Scope: thin wrappers over sensor/policy; printing only. The policy file is ``--policy``,
else ``SEKIMORI_POLICY``, else ``[policy] file`` of the configuration file.
"""

from __future__ import annotations

import click

from cli.common import CliState, load
from sensor.config import Config
from sensor.errors import ConfigError
from sensor.policy import Policy, RuleFacts, decide_stage, describe_entry, load_policy, policy_path
from sensor.policy.orgpolicy import compile_org_policy, render_rules
from signatures.ruleset import build_signatures
from signatures.variables import Variables


def resolve_policy(state: CliState, given: str | None) -> str:
    path = given or policy_path(state.config_path)
    if not path:
        raise ConfigError("no policy file: pass --policy FILE, set SEKIMORI_POLICY, or add "
                          "[policy] file = ... to the configuration file")  # fmt: skip
    return path


def rule_facts(config: Config, files: tuple[str, ...]) -> dict[int, RuleFacts]:
    """Facts of every rule in ``files`` by sid (classtype, severity, file, metadata)."""
    if not files:
        return {}
    variables = Variables(address_groups=dict(config.vars.address_groups),
                          port_groups=dict(config.vars.port_groups))  # fmt: skip
    sigs, _report = build_signatures(files, variables, config.detect.classification_file)
    return {s.sid: RuleFacts.from_signature(s) for s in sigs}


@click.group("policy")
def command() -> None:
    """Stages, exceptions and assets of the tuning policy (docs/policy.md).

    \b
    Examples:
      sekimori policy check /etc/sekimori/policy.toml
      sekimori policy explain 2019401 --rules /var/lib/sekimori/rules/current/sekimori.rules
      sekimori policy org-rules org.toml -o /etc/sekimori/org.rules
    """


@command.command("explain")
@click.argument("sid", type=int)
@click.option("--policy", "policy_file", metavar="FILE", help="Policy file (TOML).")
@click.option("--rules", "rule_files", multiple=True, metavar="FILE",
              help="Rule files, to match classtype, severity, file and metadata entries.")  # fmt: skip
@click.pass_obj
def explain(state: CliState, sid: int, policy_file: str | None,
            rule_files: tuple[str, ...]) -> None:  # fmt: skip
    """Which stage rule SID is in and which policy line decided it."""
    config = load(state)
    policy = load_policy(resolve_policy(state, policy_file), dict(config.vars.address_groups))
    facts = rule_facts(config, rule_files).get(sid)
    if facts is None:
        if rule_files:
            click.echo(f"note: sid {sid} is not in the given rule files; matching by sid only")
        facts = RuleFacts(sid=sid)
    decision = decide_stage(policy, facts)
    click.echo(f"sid {sid}: stage {decision.stage} (mode {policy.mode}), "
               f"decided by {decision.origin}")  # fmt: skip
    if facts.msg:
        click.echo(f"  rule: {facts.msg} [classtype {facts.classtype}, severity "
                   f"{facts.severity}, file {facts.file}]")  # fmt: skip
    for index, (entry, (score, _width)) in enumerate(decision.candidates):
        mark = "*" if index == 0 else " "
        who = f" owner {entry.owner}" if entry.owner else ""
        click.echo(f"  {mark} {entry.origin}: {entry.stage:8} {describe_entry(entry)} "
                   f"(specificity {score}){who}")  # fmt: skip
    if not decision.candidates:
        click.echo(f"  no [[stage]] entry matches; default_stage is {policy.default_stage}")
    for exc in _exceptions_for(policy, sid):
        expiry = f", expires {exc.meta.expires}" if exc.meta.expires else ""
        click.echo(f"  exception {exc.meta.kind} at {exc.meta.origin}: owner "
                   f"{exc.meta.owner or '?'}, reason {exc.meta.reason or '?'}{expiry}")  # fmt: skip


def _exceptions_for(policy: Policy, sid: int) -> list:
    out = []
    for exc in policy.exceptions:
        sids = getattr(exc, "sids", None)
        if sids is not None:
            if not sids or sid in sids:
                out.append(exc)
        elif getattr(exc, "sid", -1) in (0, sid):
            out.append(exc)
    return out


@command.command("check")
@click.argument("file", required=False)
@click.pass_obj
def check(state: CliState, file: str | None) -> None:
    """Validate a policy file and summarise it."""
    config = load(state)
    policy = load_policy(resolve_policy(state, file), dict(config.vars.address_groups))
    for warning in policy.warnings:
        click.echo(f"warning: {warning}")
    click.echo(f"{policy.source}: version {policy.version}, mode {policy.mode}, default stage "
               f"{policy.default_stage}, {len(policy.stages)} stage entries, "
               f"{len(policy.exceptions)} exceptions, {len(policy.assets)} assets")  # fmt: skip


@command.command("org-rules")
@click.argument("file")
@click.option("-o", "--output", metavar="FILE", help="Write the rules here (default stdout).")
def org_rules(file: str, output: str | None) -> None:
    """Compile an organisation policy (allowed services per zone) into rules."""
    text = render_rules(compile_org_policy(file), file)
    if output:
        try:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        except OSError as exc:
            raise ConfigError(f"{output}: cannot write: {exc.strerror or exc}") from exc
        click.echo(f"{text.count(chr(10) + 'alert ')} rules written to {output}")
    else:
        click.echo(text, nl=False)
