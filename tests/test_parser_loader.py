"""Rule files: comments, continuations, disabled rules, includes, duplicates, encodings,
and the classification/reference tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.errors import RuleError
from signatures.classification import Classifications, Classtype, References
from signatures.loader import RuleIssue, load_rule_files, load_rule_text
from signatures.variables import Variables

V = Variables.suricata_defaults()


def rule(sid: int, rev: int = 1, extra: str = "") -> str:
    return f'alert tcp any any -> any any (msg:"r{sid}"; {extra}sid:{sid}; rev:{rev};)'


def test_comments_blanks_crlf_and_continuations() -> None:
    text = "\r\n".join(
        [
            "# a comment \\",
            rule(1),
            "",
            'alert tcp any any -> any any (msg:"multi"; \\',
            '  content:"x"; \\',
            " sid:2;)",
            rule(3),
        ]
    )
    result = load_rule_text(text, V, "t.rules")
    assert [(r.sid, r.line) for r in result.rules] == [(1, 2), (2, 4), (3, 7)]
    assert (
        result.rules[1].raw == 'alert tcp any any -> any any (msg:"multi";   content:"x";  sid:2;)'
    )
    assert result.issues == ()


def test_disabled_rules_parsed_and_bad_ones_ignored() -> None:
    text = "\n".join(
        [
            "# " + rule(1),
            "#" + rule(2),
            "   ## " + rule(3),
            "# alert is what we do with this comment",
            '#alert tcp any any -> any any (msg:"broken";)',
        ]
    )
    result = load_rule_text(text, V)
    assert [(r.sid, r.enabled, r.line) for r in result.rules] == [
        (1, False, 1),
        (2, False, 2),
        (3, False, 3),
    ]
    assert result.issues == () and result.enabled == ()


def test_bad_rule_is_an_issue_and_loading_continues() -> None:
    result = load_rule_text(
        "\n".join([rule(1), "alert tcp any any -> any any (sid:2)", rule(3)]), V, "f.rules"
    )
    assert [r.sid for r in result.rules] == [1, 3]
    assert result.issues == (
        RuleIssue(
            "f.rules", 2, "option 'sid' is not terminated by ';'", "invalid options", "error"
        ),
    )


def test_indented_rule_loads_with_warning() -> None:
    result = load_rule_text("  " + rule(5), V, "f.rules")
    assert [r.sid for r in result.rules] == [5]
    assert [(i.line, i.category, i.severity) for i in result.issues] == [
        (1, "indented rule", "warning")
    ]


def test_duplicate_sid_keeps_higher_rev_then_first() -> None:
    text = "\n".join(
        [rule(1, rev=2), rule(1, rev=5), rule(1, rev=5), rule(1, rev=1), "# " + rule(1, rev=9)]
    )
    result = load_rule_text(text, V, "d.rules")
    enabled = result.enabled
    assert [(r.sid, r.rev, r.line) for r in enabled] == [(1, 5, 2)]
    assert [(i.line, i.category, i.severity) for i in result.issues] == [
        (1, "duplicate sid", "warning"),
        (3, "duplicate sid", "warning"),
        (4, "duplicate sid", "warning"),
    ]
    assert result.issues[0].reason == "duplicate sid 1:1 rev 2; kept rev 5 from d.rules:2"
    # different gid is a different rule
    assert len(load_rule_text(rule(1) + "\n" + rule(1, extra="gid:3; "), V).rules) == 2


def test_include_relative_cycle_and_missing(tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    (tmp_path / "main.rules").write_text(f"{rule(1)}\ninclude sub/a.rules\n{rule(4)}\n")
    (sub / "a.rules").write_text(f'{rule(2)}\ninclude: "b.rules"\n')
    (sub / "b.rules").write_text(f"{rule(3)}\ninclude ../main.rules\ninclude a.rules\n")
    result = load_rule_files([str(tmp_path / "main.rules")], V)
    assert [r.sid for r in result.rules] == [1, 2, 3, 4]
    assert [Path(f).name for f in result.files] == ["main.rules", "a.rules", "b.rules"]
    assert [(Path(i.file).name, i.line, i.category) for i in result.issues] == [
        ("b.rules", 2, "include"),
        ("b.rules", 3, "include"),
    ]
    assert result.issues[0].reason.startswith("include cycle: ")

    (tmp_path / "bad.rules").write_text("include nothere.rules\n")
    with pytest.raises(
        RuleError, match=r"bad.rules:1: included rule file .*nothere.rules does not exist"
    ):
        load_rule_files([str(tmp_path / "bad.rules")], V)


def test_missing_file_is_fatal_and_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.rules")
    with pytest.raises(RuleError) as info:
        load_rule_files([missing], V)
    assert info.value.reason == f"rule file {missing} does not exist"


def test_undecodable_line_is_an_issue(tmp_path: Path) -> None:
    path = tmp_path / "latin.rules"
    path.write_bytes(
        b"# Autor: M\xfcller\n" + rule(1).encode()[:-2] + b'content:"\xe9"; )\n' + rule(2).encode()
    )
    result = load_rule_files([str(path)], V)
    assert [r.sid for r in result.rules] == [2]
    assert [(i.line, i.reason, i.category) for i in result.issues] == [
        (2, "line is not valid UTF-8", "encoding")
    ]


def test_classifications_shipped_and_custom(tmp_path: Path) -> None:
    stock = Classifications.load()
    assert len(stock) == 43 and stock.issues == ()
    assert stock.get("Trojan-Activity") == Classtype(
        "trojan-activity", "A Network Trojan was detected", 1
    )
    assert stock.get("nope") is None
    custom = tmp_path / "classification.config"
    custom.write_text(
        "config classification: a-b,Thing, with comma,2\nconfig classification: broken\n"
        "config classification: a-b,Again,3\n"
    )
    table = Classifications.load(str(custom))
    assert table.get("A-B") == Classtype("a-b", "Thing, with comma", 2)
    assert [(i.line, i.severity) for i in table.issues] == [(2, "warning"), (3, "warning")]


def test_references_shipped_and_custom(tmp_path: Path) -> None:
    refs = References.load()
    assert refs.get("CVE") == "https://cve.mitre.org/cgi-bin/cvename.cgi?name="
    assert refs.get("mcafee") == "https://vil.nai.com/vil/content/v_" and refs.get("et") is None
    custom = tmp_path / "reference.config"
    custom.write_text("config reference: x  http://x/\nconfig reference:\n")
    table = References.load(str(custom))
    assert table.get("x") == "http://x/" and [i.line for i in table.issues] == [2]


def test_et_open_classification_config_loads_cleanly(shared_dir: Path) -> None:
    path = shared_dir / "rules" / "et-open" / "classification.config"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    table = Classifications.load(str(path))
    assert len(table) == 42 and table.issues == ()
