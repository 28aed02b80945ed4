"""Rules Suricata 7.0.10 refuses to load, which sekimori must skip too."""

from __future__ import annotations

from pathlib import Path

from signatures.ruleset import load_ruleset
from signatures.variables import Variables

# Each refused by Suricata 7.0.10 (its error in the comment); sid 100+ are the loaded controls.
RULES = [
    "alert icmp any any -> any any (icmp_seq:>2; sid:1;)",  # detect-icmp-seq: Parse error >2
    "alert icmp any any -> any any (icmp_seq:!4; sid:2;)",
    "alert icmp any any -> any any (icmp_seq:3<>5; sid:3;)",
    "alert icmp any any -> any any (itype:8; icmp_id:!6; sid:4;)",
    # "Signature can use ip_proto keyword only when we use alert ip"
    'alert tcp any any -> any any (ip_proto:6; content:"AAAA"; sid:5;)',
    "alert udp any any -> any any (ip_proto:<10; sid:6;)",
    # "pcre with /R (relative) needs preceding match in the same buffer"
    'alert tcp any any -> any any (pcre:"/world/R"; sid:7;)',
    'alert tcp any any -> any any (pcre:"/world/R"; content:"AAAA"; sid:8;)',
    # detect-detection-filter: pcre_exec parse error (only by_src and by_dst)
    'alert udp any any -> any any (content:"Q"; detection_filter:track by_rule,count 3,seconds 60; sid:9;)',
    'alert udp any any -> any any (content:"Q"; detection_filter:track by_both,count 3,seconds 60; sid:10;)',
    'alert udp any any -> any any (content:"Q"; detection_filter:track by_flow,count 3,seconds 60; sid:11;)',
    # detect-id: invalid id option
    "alert tcp any any -> any any (id:!1; sid:12;)",
    "alert tcp any any -> any any (id:<5; sid:13;)",
    "alert tcp any any -> any any (id:1-5; sid:14;)",
    "alert tcp any any -> any any (id:>=5; sid:15;)",
    "alert icmp any any -> any any (icmp_id: 7 ; icmp_seq:3; sid:100;)",
    "alert tcp any any -> any any (id: 7 ; sid:106;)",
    'alert udp any any -> any any (content:"Q"; detection_filter:track by_dst,count 3,seconds 60; sid:105;)',
    'alert ip any any -> any any (ip_proto:6; content:"AAAA"; sid:101;)',
    'alert ip any any -> any any (ip_proto:!17; content:"AAAA"; sid:102;)',
    'alert tcp any any -> any any (content:"AAAA"; pcre:"/world/R"; sid:103;)',
    'alert tcp any any -> any any (pcre:"/AAAA/"; pcre:"/world/R"; sid:104;)',
]


def test_suricata_refusals(tmp_path: Path) -> None:
    rules = tmp_path / "r.rules"
    rules.write_text("\n".join(RULES) + "\n")
    ruleset, _ = load_ruleset([str(rules)], Variables({}, {}), cache_dir=str(tmp_path / "c"))
    assert sorted(s.sid for s in ruleset.signatures) == [100, 101, 102, 103, 104, 105, 106]
