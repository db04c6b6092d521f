"""Magic-link tokens: hashing, the hand-off JWT, and the claimant-facing messages."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from domain.magic_links import (
    HANDOFF_ALGORITHM,
    HANDOFF_AUDIENCE,
    HANDOFF_ISSUER,
    HANDOFF_LEEWAY,
    HANDOFF_TTL,
    TOKEN_BYTES,
    TOKEN_PATTERN,
    HandoffError,
    email_message,
    hash_token,
    issue_handoff,
    redact_link,
    sms_text,
    verify_handoff,
)

SECRET = "a-test-secret-long-enough-even-for-hs512-0123456789abcdefghijklmnop"
NOW = datetime(2026, 3, 2, 10, 30, tzinfo=UTC)


def test_tokens_carry_at_least_128_bits_and_fit_the_url_pattern() -> None:
    assert TOKEN_BYTES * 8 >= 128
    token = secrets.token_urlsafe(TOKEN_BYTES)
    assert len(token) >= 43
    assert re.fullmatch(TOKEN_PATTERN, token)


def test_hash_is_sha256_hex_and_deterministic() -> None:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    digest = hash_token(token)
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert hash_token(token) == digest
    assert hash_token(token + "x") != digest
    assert token not in digest


def test_handoff_round_trip() -> None:
    token = issue_handoff(42, 7, SECRET, NOW, jti="abc123")
    claims = verify_handoff(token, SECRET, NOW + timedelta(seconds=10))
    assert claims.user_id == 42
    assert claims.link_id == 7
    assert claims.jti == "abc123"
    assert claims.issued_at == NOW
    assert claims.expires_at == NOW + HANDOFF_TTL


def test_handoff_claims_and_header_match_the_documented_contract() -> None:
    token = issue_handoff(42, 7, SECRET, NOW)
    assert jwt.get_unverified_header(token)["alg"] == HANDOFF_ALGORITHM == "HS256"
    raw = jwt.decode(token, options={"verify_signature": False})
    assert raw["iss"] == HANDOFF_ISSUER == "rmc-dialler"
    assert raw["aud"] == HANDOFF_AUDIENCE == "rmc-main-app"
    assert raw["sub"] == "42"
    assert raw["lid"] == 7
    assert raw["iat"] == int(NOW.timestamp())
    assert raw["exp"] - raw["iat"] == 300
    assert isinstance(raw["jti"], str) and raw["jti"]


def test_default_jti_differs_per_link() -> None:
    first = verify_handoff(issue_handoff(1, 1, SECRET, NOW), SECRET, NOW)
    second = verify_handoff(issue_handoff(1, 2, SECRET, NOW), SECRET, NOW)
    assert first.jti != second.jti


def test_custom_lifetime() -> None:
    token = issue_handoff(1, 1, SECRET, NOW, ttl=timedelta(minutes=1))
    assert verify_handoff(token, SECRET, NOW).expires_at == NOW + timedelta(minutes=1)


def test_expired_handoff_is_rejected_after_the_leeway() -> None:
    token = issue_handoff(1, 1, SECRET, NOW)
    expiry = NOW + HANDOFF_TTL
    verify_handoff(token, SECRET, expiry + HANDOFF_LEEWAY - timedelta(seconds=1))
    with pytest.raises(HandoffError, match="expired"):
        verify_handoff(token, SECRET, expiry + HANDOFF_LEEWAY)
    with pytest.raises(HandoffError):
        verify_handoff(token, SECRET, NOW + timedelta(hours=1))


def test_handoff_from_the_future_is_rejected() -> None:
    token = issue_handoff(1, 1, SECRET, NOW + timedelta(minutes=2))
    with pytest.raises(HandoffError, match="future"):
        verify_handoff(token, SECRET, NOW)


def test_wrong_secret_is_rejected() -> None:
    token = issue_handoff(1, 1, SECRET, NOW)
    with pytest.raises(HandoffError):
        verify_handoff(token, "another-secret-that-is-long-enough-987654321", NOW)


def test_tampered_payload_is_rejected() -> None:
    header, _payload, signature = issue_handoff(1, 1, SECRET, NOW).split(".")
    forged_payload = jwt.encode(
        {
            "iss": HANDOFF_ISSUER,
            "aud": HANDOFF_AUDIENCE,
            "sub": "999",
            "jti": "x",
            "iat": int(NOW.timestamp()),
            "exp": int(NOW.timestamp()) + 300,
            "lid": 1,
        },
        SECRET,
        algorithm="HS256",
    ).split(".")[1]
    with pytest.raises(HandoffError):
        verify_handoff(f"{header}.{forged_payload}.{signature}", SECRET, NOW)


def _claims(**changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": HANDOFF_ISSUER,
        "aud": HANDOFF_AUDIENCE,
        "sub": "1",
        "jti": "j",
        "iat": int(NOW.timestamp()),
        "exp": int(NOW.timestamp()) + 300,
        "lid": 1,
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def test_unsigned_token_is_rejected() -> None:
    token = jwt.encode(_claims(), key="", algorithm="none")
    with pytest.raises(HandoffError):
        verify_handoff(token, SECRET, NOW)


def test_other_hmac_algorithm_is_rejected() -> None:
    token = jwt.encode(_claims(), SECRET, algorithm="HS512")
    with pytest.raises(HandoffError):
        verify_handoff(token, SECRET, NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "someone-else"},
        {"iss": "not-the-dialler"},
        {"lid": None},
        {"jti": None},
        {"sub": None},
        {"sub": "not-a-number"},
        {"exp": None},
    ],
    ids=["audience", "issuer", "no-lid", "no-jti", "no-sub", "bad-sub", "no-exp"],
)
def test_wrong_or_missing_claims_are_rejected(changes: dict[str, object]) -> None:
    token = jwt.encode(_claims(**changes), SECRET, algorithm="HS256")
    with pytest.raises(HandoffError):
        verify_handoff(token, SECRET, NOW)


def test_garbage_is_rejected() -> None:
    with pytest.raises(HandoffError):
        verify_handoff("not.a.jwt", SECRET, NOW)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        issue_handoff(1, 1, SECRET, datetime(2026, 1, 1))


# --- messages ------------------------------------------------------------------------------

URL = "https://dialler.example/m/abcDEF_123-xyzabcDEF_123-xyzabcDEF_123-xyz"


def test_sms_text_has_the_link_the_lifetime_and_opt_out() -> None:
    text = sms_text(URL, "signature", 60, "Jane")
    assert text.startswith("Hi Jane, this is Resolve My Claim.")
    assert "sign your claim documents" in text
    assert URL in text
    assert "1 hour" in text
    assert "Reply STOP" in text
    assert sms_text(URL, "something-new", 90).startswith("Hello,")
    assert "90 minutes" in sms_text(URL, "something-new", 90)


def test_email_message_escapes_html() -> None:
    message = email_message(URL + "&x=<y>", "documents", 120, "<b>Jo</b>")
    assert "send the documents we still need" in message.subject
    assert "&lt;b&gt;Jo&lt;/b&gt;" in message.html
    assert "<b>Jo</b>" not in message.html
    assert "&amp;x=&lt;y&gt;" in message.html
    assert URL in message.text
    assert "2 hours" in message.text


def test_redaction_removes_the_token() -> None:
    token = URL.rsplit("/", 1)[1]
    kept = redact_link(sms_text(URL, "signature", 60), token, 17)
    assert token not in kept
    assert "/m/[link 17]" in kept


# --- the test vector published in docs/magic-link-handoff.md -------------------------------

DOC = Path(__file__).resolve().parents[2] / "docs" / "magic-link-handoff.md"
VECTOR_SECRET = "example-secret-for-tests-only-0123456789abcdef"
VECTOR_AT = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
VECTOR = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJybWMtZGlhbGxlciIsImF1ZCI6InJtYy1tYWluLWFw"
    "cCIsInN1YiI6IjEyMzQ1IiwianRpIjoiM3EyLTd3RVhBTVBMRWp0aSIsImlhdCI6MTc2NzYxNDQwMCwiZXhwIjoxNz"
    "Y3NjE0NzAwLCJsaWQiOjY3OH0.Jc9QBNKrBFFHEDUAYgQncLxzfYszg1ynBpLMNcA5yrE"
)


def test_documented_test_vector_matches_the_code() -> None:
    doc = DOC.read_text()
    assert VECTOR in doc and VECTOR_SECRET in doc
    assert issue_handoff(12345, 678, VECTOR_SECRET, VECTOR_AT, jti="3q2-7wEXAMPLEjti") == VECTOR
    claims = verify_handoff(VECTOR, VECTOR_SECRET, VECTOR_AT)
    assert (claims.user_id, claims.link_id, claims.jti) == (12345, 678, "3q2-7wEXAMPLEjti")
    assert int(claims.expires_at.timestamp()) == 1767614700
    with pytest.raises(HandoffError):
        verify_handoff(VECTOR, VECTOR_SECRET, datetime.fromtimestamp(1767614731, UTC))
