"""The dataset keyword: parsing, refusals, shared sets, load files and set-at-match-time."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import dpkt
import pytest
from pcapgen import TcpSession, udp
from pcapgen import alerts_of as _alerts

from sensor.errors import RuleError
from sensor.pipeline import sensor_buffers
from signatures.datasets import Dataset, DatasetRegistry, encode_value, parse_dataset
from signatures.ruleset import build_signatures
from signatures.variables import Variables


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _http(ua: str, uri: str, cport: int) -> list[bytes]:
    req = f"GET {uri} HTTP/1.1\r\nHost: example.com\r\nUser-Agent: {ua}\r\n\r\n".encode()
    s = TcpSession(cport=cport).handshake().send(True, req)
    return s.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").close().frames


def _dns(name: str, ident: int) -> bytes:
    q = dpkt.dns.DNS(id=ident, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    return udp("192.168.1.10", "192.0.2.53", 30000 + ident, 53, bytes(q))


def _by_sid(alerts: list[dict]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for a in alerts:
        out.setdefault(a["alert"]["signature_id"], []).append(a["src_port"])
    return {sid: sorted(ports) for sid, ports in out.items()}


def test_parse_options() -> None:
    o = parse_dataset("isset, ua, type string, load ua.lst, memcap 10mb, hashsize 1024")
    assert (o.cmd, o.name, o.type, o.load, o.save) == ("isset", "ua", "string", "ua.lst", None)
    assert o.memcap == 10 << 20 and o.hashsize == 1024
    s = parse_dataset("set,seen,type md5,state seen.lst")
    assert s.state and s.load == s.save == "seen.lst"


@pytest.mark.parametrize(
    ("value", "match"),
    [("isset", "command and a set name"), ("check,x", "not supported"),
     ("isset,x,type foo", "bad type"), ("isset,x,load a,load b", "only appear once"),
     ("isset,x,state a,load b", "can not be mixed"), ("isset,x,colour red", "unknown option"),
     ("isset,x,memcap lots", "invalid value for memcap"), ("isset,x,type", "needs a value"),
     ("isset," + "n" * 64 + ",type string", "longer than")],
)  # fmt: skip
def test_bad_options_are_refused(value: str, match: str) -> None:
    with pytest.raises(RuleError, match=match):
        parse_dataset(value)


def test_set_semantics_and_memcap() -> None:
    ds = Dataset("x", "string", None, None, memcap=2 * (64 + 3))
    assert ds.add(b"abc") == 1 and ds.add(b"abc") == 0 and ds.lookup(b"abc") == 1
    assert ds.add(b"def") == 1 and ds.add(b"ghi") == -1  # memcap: the set stays bounded
    assert ds.remove(b"abc") == 1 and ds.remove(b"abc") == 0 and ds.add(b"ghi") == 1
    md5 = Dataset("m", "md5", None, None, memcap=1 << 20)
    assert md5.lookup(b"short") == -1 and md5.add(b"short") == -1  # wrong size: never held
    for kind, value in (("ipv4", b"\xc0\x00\x02\x01"), ("ip", bytes(15) + b"\x01"),
                        ("sha256", bytes(32)), ("string", b"a,b\n")):  # fmt: skip
        reg_line = encode_value(kind, value)
        assert "\n" not in reg_line


def _build(tmp_path: Path, rules: str) -> tuple[list, list]:
    path = tmp_path / "t.rules"
    path.write_text(rules)
    sigs, report = build_signatures([str(path)], Variables({}, {}), None, sensor_buffers())
    return sigs, [(i.line, i.reason) for i in report.issues if i.severity == "error"]


def test_refusals_name_the_rule_and_the_file_line(tmp_path: Path) -> None:
    (tmp_path / "bad.lst").write_text(_b64("ok") + "\n" + "not base64!\n")
    (tmp_path / "h.lst").write_text("abcd\n")
    sigs, errors = _build(tmp_path, "\n".join([
        'alert http any any -> any any (http.user_agent; dataset:isset,a,type string; sid:1;)',
        'alert http any any -> any any (http.uri; dataset:isset,A,type md5; sid:2;)',
        'alert http any any -> any any (http.uri; dataset:isset,b; sid:3;)',
        'alert http any any -> any any (dataset:isset,a,type string; sid:4;)',
        'alert http any any -> any any (http.uri; dataset:isset,c,type string,load bad.lst; sid:5;)',
        'alert http any any -> any any (http.uri; dataset:isset,d,type string,load none.lst; sid:6;)',
        'alert http any any -> any any (http.uri; dataset:isset,e,type md5,load h.lst; sid:7;)',
        'alert http any any -> any any (http.uri; dataset:set,f,type string,save /tmp/x; sid:8;)',
        'alert http any any -> any any (http.uri; dataset:set,f,type string,save ../x; sid:9;)',
        'alert http any any -> any any (http.uri; dataset:isset,a; sid:10;)',  # shared by name
    ]) + "\n")  # fmt: skip
    assert [s.sid for s in sigs] == [1, 10]
    reasons = dict(errors)
    assert "already exists and is of type string" in reasons[2]  # names are case-insensitive
    assert "dataset b not defined" in reasons[3]
    assert "only supported for sticky buffers" in reasons[4]
    assert "bad.lst:2: bad string value" in reasons[5]
    assert "none.lst: no such file" in reasons[6]
    assert "h.lst:1: bad md5 value" in reasons[7]
    assert "must be relative" in reasons[8] and "must be relative" in reasons[9]


def test_load_path_falls_back_to_default_rule_path(tmp_path: Path) -> None:
    rules_dir, data_dir = tmp_path / "r", tmp_path / "d"
    rules_dir.mkdir()
    data_dir.mkdir()
    (data_dir / "x.lst").write_text(_b64("v") + "\n")
    reg = DatasetRegistry(str(data_dir))
    ds = reg.get(parse_dataset("isset,x,type string,load x.lst"), str(rules_dir / "t.rules"))
    assert ds.items == {b"v"} and reg.files == [str(data_dir / "x.lst")]
    (rules_dir / "x.lst").write_text(_b64("w") + "\n")  # next to the rule file wins
    ds2 = DatasetRegistry(str(data_dir)).get(parse_dataset("isset,x,type string,load x.lst"),
                                             str(rules_dir / "t.rules"))  # fmt: skip
    assert ds2.items == {b"w"}


def test_http_user_agents_uris_and_dns_queries(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "ua.lst").write_text(f"{_b64('evil-bot/1.0')}\n\n{_b64('x')},7\n")
    md5 = hashlib.md5(b"/admin.php").hexdigest()
    (tmp_path / "uri-md5.lst").write_text(md5 + "\n")
    (tmp_path / "dom.lst").write_text(_b64("bad.example") + "\r\n")
    frames = [*_http("evil-bot/1.0", "/admin.php", 40001), *_http("curl/8.0", "/", 40002),
              *_http("evil-bot/1.0", "/index.html", 40003),
              _dns("bad.example", 1), _dns("good.example", 2)]  # fmt: skip
    rules = "\n".join([
        'alert http any any -> any any (msg:"bad ua"; http.user_agent; '
        "dataset:isset,ua-bad,type string,load lists/ua.lst; sid:1;)",
        'alert http any any -> any any (msg:"new ua"; http.user_agent; '
        "dataset:set,ua-seen,type string; sid:2;)",
        'alert http any any -> any any (msg:"not bad"; http.user_agent; dataset:isnotset,ua-bad; '
        "sid:3;)",
        'alert http any any -> any any (msg:"uri md5"; http.uri; to_md5; '
        "dataset:isset,uris,type md5,load uri-md5.lst; sid:4;)",
        'alert dns any any -> any any (msg:"bad domain"; dns.query; '
        "dataset:isset,doms,type string,load dom.lst; sid:5;)",
        # the prefilter passes, set runs, a later keyword fails: the value stays added
        'alert http any any -> any any (msg:"set then fail"; http.user_agent; content:"0"; '
        "dataset:set,late,type string; isdataat:100; sid:6;)",
        'alert http any any -> any any (msg:"was set"; http.user_agent; dataset:isset,late; '
        "sid:7;)",
    ]) + "\n"  # fmt: skip
    got = _by_sid(_alerts(tmp_path, frames, rules))
    assert got[1] == [40001, 40003]
    assert got[2] == [40001, 40002]  # only the first sight of each user agent
    assert got[3] == [40002]
    assert got[4] == [40001]
    assert got[5] == [30001]
    assert 6 not in got and got[7] == [40001, 40002, 40003]


def test_state_file_is_loaded_and_written_at_exit(tmp_path: Path) -> None:
    state = tmp_path / "seen.lst"
    state.write_text(_b64("curl/8.0") + "\n")
    frames = [*_http("evil-bot/1.0", "/", 40001), *_http("curl/8.0", "/", 40002)]
    rules = ('alert http any any -> any any (http.user_agent; '
             "dataset:set,seen,type string,state seen.lst; sid:1;)\n")  # fmt: skip
    got = _by_sid(_alerts(tmp_path, frames, rules))
    assert got[1] == [40001]
    assert sorted(state.read_text().split()) == sorted([_b64("curl/8.0"), _b64("evil-bot/1.0")])


def test_rule_cache_shares_one_set_and_rebuilds_when_a_list_changes(tmp_path: Path) -> None:
    from signatures.datasets import datasets_of
    from signatures.ruleset import load_ruleset

    (tmp_path / "l.lst").write_text(_b64("v") + "\n")
    rules = tmp_path / "t.rules"
    rules.write_text(
        "alert http any any -> any any (http.user_agent; "
        "dataset:isset,a,type string,load l.lst; sid:1;)\n"
        "alert http any any -> any any (http.uri; dataset:isset,a; sid:2;)\n"
    )
    sizes = []
    for step in range(3):
        if step == 2:
            with open(tmp_path / "l.lst", "a") as fh:
                fh.write(_b64("w") + "\n")
        rs, _ = load_ruleset([str(rules)], Variables({}, {}), cache_dir=str(tmp_path / "c"),
                             supported_buffers=sensor_buffers())  # fmt: skip
        sets = datasets_of(
            p for s in rs.signatures if s.payload for p in s.payload.programs.values()
        )
        assert len(sets) == 1  # one object behind both rules, cache hit or not
        sizes.append(len(sets[0].items))
    assert sizes == [1, 1, 2]
