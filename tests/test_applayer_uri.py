"""URI normalisation as Suricata 7 with libhtp's IDS personality (lower-casing switched off)."""

from __future__ import annotations

import pytest

from sensor.applayer.uri import normalize_hostname, normalize_uri, remove_dot_segments


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        (b"/", b"/"),
        (b"/index.html", b"/index.html"),
        (b"/a/./b", b"/a/b"),
        (b"/a/../b", b"/b"),
        (b"/../../../../etc/passwd", b"/etc/passwd"),
        (b"//a///b", b"/a/b"),
        (b"/a\\b\\..\\c", b"/a/c"),  # backslash is a separator
        (b"/%2e%2e/%2e%2e/etc/passwd", b"/etc/passwd"),  # decoded before dot removal
        (b"/cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd", b"/etc/passwd"),  # CVE-2021-41773
        (b"/a%2fb", b"/a/b"),  # encoded separators are decoded
        (b"/a%5cb", b"/a/b"),
        (b"/%u0041%U0042", b"/AB"),  # %u encoding
        (b"/%uff0e%uff0e/x", b"/x"),  # full-width dots best-fit to '.'
        (b"/%u1234", b"/?"),  # no best-fit mapping
        (b"/..%c0%af..%c0%afetc/passwd", b"/etc/passwd"),  # overlong UTF-8 '/'
        (b"/%zz%4", b"/%zz%4"),  # invalid escapes keep their percent sign
        (b"/%00x", b"/\x00x"),
        (b"/MiXeD/Case", b"/MiXeD/Case"),  # case is preserved
        (b"/a/b?c=%2e%2e/../d&e=f+g", b"/a/b?c=../../d&e=f+g"),  # query: %HH only, no dots
        (b"/p?q=%u0041", b"/p?q=%u0041"),  # no %u decoding in the query
        (b"/p#frag%41", b"/p#fragA"),
        (b"/\xc3\xa9", b"/\xe9"),  # UTF-8 folded to one byte
        (b"/\xff", b"/?"),  # invalid UTF-8 replaced
    ],
)
def test_normalize_uri(raw: bytes, normalised: bytes) -> None:
    assert normalize_uri(raw)[0] == normalised


@pytest.mark.parametrize(
    ("path", "expected"),
    [  # RFC 3986 section 5.2.4 examples
        (b"/a/b/c/./../../g", b"/a/g"),
        (b"mid/content=5/../6", b"mid/6"),
        (b"../x", b"x"),
        # libhtp drops the "/" a final "/." or "/.." leaves (Suricata 7.0.10's http.uri)
        (b"/.", b""),
        (b"/a/..", b""),
        (b"/a/b/.", b"/a/b"),
        (b"/a/b/./", b"/a/b"),
        (b"/a/b/..", b"/a"),
        (b"/a/../b/", b"/b/"),
    ],
)
def test_remove_dot_segments(path: bytes, expected: bytes) -> None:
    assert remove_dot_segments(path) == expected


def test_absolute_form_reports_its_authority() -> None:
    assert normalize_uri(b"http://h:8/x/../y?z") == (b"/y?z", b"h:8")


@pytest.mark.parametrize(
    ("raw", "host"),
    [(b"Example.COM:8080", b"example.com"), (b"[::1]:80", b"[::1]"), (b"a.b.", b"a.b")],
)
def test_normalize_hostname(raw: bytes, host: bytes) -> None:
    assert normalize_hostname(raw) == host
