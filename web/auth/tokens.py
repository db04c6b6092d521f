"""Bearer tokens (JWT, HS256) for API clients such as AI agents and integrations.

A token names its issuer, audience, subject, issue and expiry times and a unique id (`jti`);
verification requires every one of them. Tokens can be revoked before they expire: one token
by its id (the client signing out), or every token of an agent issued up to a moment (the
agent signing out). Revocations live in Redis, shared by every web process, each kept only as
long as the tokens it concerns could still be used.

Supervisors also issue long-lived API tokens (`rmc_...`) to AI agents and integrations
(`adapters.api_tokens`, `services.staff`): `api_token_agent` looks one up, in the database,
on every request that presents it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import api_tokens
from schemas.enums import AgentRole, Queue
from web.auth.identity import CurrentAgent
from web.errors import APIError

ISSUER = "rmc-dialler"
AUDIENCE = "rmc-dialler-api"
ALGORITHM = "HS256"
LIFETIME = timedelta(hours=1)
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti"]

_REVOKED_JTI_KEY = "jwt:revoked:"  # + jti
_REVOKED_BEFORE_KEY = "jwt:revoked-before:"  # + agent id: tokens issued up to this time


@dataclass(frozen=True)
class TokenClaims:
    agent_id: int
    jti: str
    issued_at: float  # seconds since the epoch
    expires_at: float


def issue_api_token(agent_id: int, role: str, secret: str, now: datetime | None = None) -> str:
    issued = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(agent_id),
        "role": role,
        # Fractional seconds: a token issued just after its agent signed out is told apart
        # from one issued just before, within the same second.
        "iat": issued.timestamp(),
        "exp": issued + LIFETIME,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_api_token(token: str, secret: str) -> TokenClaims | None:
    """The claims of a well-signed, unexpired token for this API, or None. Revocation is
    checked separately (`TokenRevocations.is_revoked`): it needs Redis."""
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError:
        return None
    subject, jti = claims["sub"], claims["jti"]
    issued, expires = claims["iat"], claims["exp"]
    if not (isinstance(subject, str) and subject.isdigit() and len(subject) <= 18):
        return None
    if not (isinstance(jti, str) and 0 < len(jti) <= 128):
        return None
    if not all(isinstance(t, int | float) and not isinstance(t, bool) for t in (issued, expires)):
        return None
    return TokenClaims(int(subject), jti, float(issued), float(expires))


class TokenRevocations:
    """Revoked tokens, in Redis so every web process refuses them at once."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def revoke(self, claims: TokenClaims, now: datetime | None = None) -> None:
        remaining = claims.expires_at - (now or datetime.now(UTC)).timestamp()
        if remaining > 0:
            await self._redis.set(_REVOKED_JTI_KEY + claims.jti, "1", px=_ms(remaining))

    async def revoke_agent(self, agent_id: int, now: datetime | None = None) -> None:
        """Every token the agent holds now: those issued up to this moment."""
        moment = (now or datetime.now(UTC)).timestamp()
        # Newer than any token this cutoff can concern, so it may expire with the last of them
        await self._redis.set(
            _REVOKED_BEFORE_KEY + str(agent_id), repr(moment), px=_ms(LIFETIME.total_seconds())
        )

    async def is_revoked(self, claims: TokenClaims) -> bool:
        revoked, cutoff = await self._redis.mget(
            _REVOKED_JTI_KEY + claims.jti, _REVOKED_BEFORE_KEY + str(claims.agent_id)
        )
        if revoked is not None:
            return True
        return cutoff is not None and claims.issued_at <= float(cutoff)


async def live_token_claims(token: str, secret: str, redis: Redis) -> TokenClaims | None:
    """The claims of a valid token that has not been revoked, or None. Without Redis the
    revocations cannot be checked: the request fails (503) rather than trust the token."""
    claims = verify_api_token(token, secret)
    if claims is None:
        return None
    try:
        revoked = await TokenRevocations(redis).is_revoked(claims)
    except RedisError:
        raise APIError(
            503, "token_check_unavailable", "Cannot check API tokens right now; try again."
        ) from None
    return None if revoked else claims


async def api_token_agent(engine: AsyncEngine, token: str) -> CurrentAgent | None:
    """The active agent an issued API token (`rmc_...`) belongs to, if the token is neither
    revoked nor expired: one indexed lookup, plus a write at most once a minute to record
    that the token is in use."""
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        found = await api_tokens.live_token(conn, token, now)
    if found is None:
        return None
    if found.last_used_at is None or now - found.last_used_at > api_tokens.TOUCH_EVERY:
        async with engine.begin() as conn:
            await api_tokens.touch_token(conn, found.token_id, now)
    agent = found.agent
    return CurrentAgent(
        id=agent.id,
        email=agent.email,
        display_name=agent.display_name,
        role=AgentRole(agent.role),
        queue=Queue(agent.queue) if agent.queue else None,
        is_ai=agent.is_ai,
        via="bearer",
    )


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000) + 1000)  # a second's grace for clock differences
