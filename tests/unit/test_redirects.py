"""`safe_next`: whatever it is given, the browser stays on this site."""

from __future__ import annotations

import string
from urllib.parse import urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from web.redirects import DEFAULT_TARGET, safe_next

# Characters that make up the tricky targets: slashes both ways, scheme and host pieces,
# percent escapes, control characters browsers strip (tab, CR, LF) and other whitespace.
_TRICKY = st.sampled_from(
    [
        *["/", "\\", ":", "@", ".", "%", "?", "#", "\t", "\r", "\n", "\x00", " ", "\x7f", "\x85"],
        *["%2f", "%2F", "%5c", "%5C", "%09", "%0a", "%0d", "%00", "evil.com", "http", "https"],
        *(string.ascii_letters[:6] + string.digits[:3]),
    ]
)
_TARGETS = st.one_of(
    st.text(),
    st.lists(_TRICKY, max_size=12).map("".join),
    st.lists(_TRICKY, max_size=12).map(lambda parts: "/" + "".join(parts)),
)


def _assert_same_site(path: str) -> None:
    assert path.startswith("/")
    assert path[1:2] not in ("/", "\\")
    assert "\\" not in path
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in path)
    parts = urlsplit(path)
    assert parts.scheme == "" and parts.netloc == ""


@given(_TARGETS)
@example("/\\evil.com")
@example("//evil.com")
@example("/\t/evil.com")
@example("https://evil.com")
@example("\\\\evil.com")
@example("/%5Cevil.com")
@example("/%2F%2Fevil.com")
def test_any_output_is_a_same_site_path(raw: str) -> None:
    _assert_same_site(safe_next(raw))


@given(_TARGETS)
def test_output_is_the_input_or_the_default(raw: str) -> None:
    assert safe_next(raw) in (raw, DEFAULT_TARGET)


@pytest.mark.parametrize(
    "raw",
    [
        "/\\evil.com",
        "/\\evil.com/",
        "//evil.com",
        "///evil.com",
        "/\t/evil.com",
        "/\n/evil.com",
        "/\r\n/evil.com",
        "https://evil.com",
        "http:evil.com",
        "javascript:alert(1)",
        "\\\\evil.com",
        "\\/evil.com",
        " //evil.com",
        "/%5Cevil.com",
        "/%2F%2Fevil.com",
        "/%09/evil.com",
        "/console\x00",
        "console",
        "",
        None,
    ],
)
def test_known_bad_targets_fall_back_to_the_default(raw: str | None) -> None:
    assert safe_next(raw) == DEFAULT_TARGET


@pytest.mark.parametrize(
    "raw", ["/console", "/sms/42?sent=sms", "/console?q=a%20b#top", "/api/me", "/"]
)
def test_local_paths_are_kept(raw: str) -> None:
    assert safe_next(raw) == raw
