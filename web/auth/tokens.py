"""Bearer tokens (JWT, HS256) for API clients such as AI agents and integrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt

ISSUER = "rmc-dialler"
AUDIENCE = "rmc-dialler-api"
ALGORITHM = "HS256"
LIFETIME = timedelta(hours=1)


def issue_api_token(agent_id: int, role: str, secret: str, now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(agent_id),
        "role": role,
        "iat": issued,
        "exp": issued + LIFETIME,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_api_token(token: str, secret: str) -> int | None:
    """The agent id a valid token names, or None (bad signature, expired, wrong audience)."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.PyJWTError:
        return None
    subject = claims.get("sub")
    return int(subject) if isinstance(subject, str) and subject.isdigit() else None
