"""Bad rule input never escapes as anything but RuleError, and programs never raise."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.errors import RuleError
from signatures.buffers import APP_BUFFERS
from signatures.payload import MatchEnv, PayloadBuilder

KEYWORDS = [
    "content", "nocase", "offset", "depth", "distance", "within", "fast_pattern", "startswith",
    "endswith", "isdataat", "pcre", "byte_test", "byte_jump", "byte_extract", "byte_math",
    "bsize", "base64_decode", "base64_data", "pkt_data", "http.uri", "http_uri", "rawbytes",
]  # fmt: skip
TOKENS = st.sampled_from(
    ["1", "0", "-3", "2", "x", "relative", "string", "dec", "hex", "!", "=", ">", "<>", "|41|",
     "bytes 2", "offset 1", "oper +", "rvalue 3", "result r", "only", "/a(b)?/R", "/[/", "\\;",
     "big", "little", "align", "bitmask 0xf0", "multiplier 2", "post_offset -1", '"', "a"]
)  # fmt: skip
VALUES = st.one_of(st.none(), st.lists(TOKENS, max_size=6).map(",".join), st.text(max_size=12))


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.lists(st.tuples(st.sampled_from(KEYWORDS), VALUES, st.booleans()), max_size=6),
    st.binary(max_size=40),
)
def test_only_rule_errors_and_no_crash_while_matching(
    opts: list[tuple[str, str | None, bool]], payload: bytes
) -> None:
    builder = PayloadBuilder(APP_BUFFERS)
    try:
        for name, value, quoted in opts:
            builder.add(name, value, quoted)
        spec = builder.finish()
    except RuleError:
        return
    env = MatchEnv()
    env.reset()
    results = [program.match(payload, env) for program in spec.programs.values()]
    assert all(isinstance(r, bool) for r in results)
