"""Agent management: people and AI agents, their passwords, roles and queues, signing them
out, API tokens, and their session history. The supervisor's agent pages
(web/blueprints/supervisor_agents.py) and `dialler agents` (cli/agents.py) both come here,
so the rules (domain/staff_rules.py) and the audit are in one place.

Every change is audited in the transaction that makes it; a refusal by the rules is audited
too (someone tried to climb above their station), bad input is not (it changed nothing and
says nothing about intent). Secrets never reach the audit or the logs: a password is hashed
(Argon2id) before it is stored, an API token is shown once and kept as its SHA-256.

Ending someone's access has two halves: their sessions are rows in the database, their
short-lived bearer tokens (JWTs) are revoked in Redis (`BearerRevoker`, which the caller
passes in: web/auth/tokens.py's `TokenRevocations`). Disabling an account and resetting a
password end both, so that enabling the account again later does not bring old sessions
back. Issued API tokens (`rmc_...`) are separate: each is revoked on its own, and all of an
account's stop working while it is disabled.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, NoReturn, Protocol, TypeVar

from redis.exceptions import RedisError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from structlog import get_logger

from adapters import agent_store, api_tokens
from adapters.audit_log import append_audit
from adapters.passwords import hash_password
from domain.staff_rules import (
    OPERATOR,
    Actor,
    InvalidStaffInput,
    Member,
    check_password,
    refuse_create,
    refuse_disable,
    refuse_manage,
    refuse_password_reset,
    refuse_role_and_queue,
    refuse_token,
    validate_new_member,
    validate_role_and_queue,
    validate_token_request,
)
from schemas.enums import AgentRole, AgentState
from services.agent_states import AgentStateService, AgentStatus

log = get_logger(__name__)

T = TypeVar("T")

SUBJECT = "agent"
TAKEN = "An account with this email address already exists."
GENERATED_PASSWORD_BYTES = 12  # 16 characters of base64url


class StaffRefused(Exception):
    """The rules refuse this actor this change; the message says why (403)."""


class StaffNotFound(LookupError):
    """No such account (or token of that account): 404."""


class BearerRevoker(Protocol):
    """Revokes every short-lived bearer token (JWT) an agent holds now, in every process."""

    async def revoke_agent(self, agent_id: int, now: datetime | None = None) -> None: ...


@dataclass(frozen=True)
class Acting:
    """Who acts, as the rules see them and as the audit names them."""

    actor: Actor
    audit_type: str  # "agent" (a signed-in supervisor or admin) or "operator" (the CLI)
    audit_id: str
    ip_address: str | None = None

    @classmethod
    def staff(cls, agent_id: int, role: AgentRole, ip_address: str | None) -> Acting:
        return cls(Actor(role, agent_id), "agent", str(agent_id), ip_address)

    @classmethod
    def operator(cls, by: str) -> Acting:
        """The operator at the command line: acts as an admin."""
        return cls(OPERATOR, "operator", by[:64])


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    number: int  # from 1
    has_more: bool


@dataclass(frozen=True)
class StaffRow:
    record: agent_store.StaffRecord
    status: AgentStatus


@dataclass(frozen=True)
class Access:
    """What ending someone's access did."""

    sessions_ended: int
    bearer_tokens_revoked: bool  # False: Redis was unavailable, their JWTs still work


@dataclass(frozen=True)
class IssuedToken:
    record: api_tokens.TokenRecord
    token: str  # shown once, never stored


def _member(record: agent_store.StaffRecord) -> Member:
    return Member(record.id, AgentRole(record.role), record.is_ai, record.is_active)


def generate_password() -> str:
    """A password for a supervisor to hand over once (it passes `check_password`)."""
    while True:
        candidate = secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)
        errors: dict[str, str] = {}
        check_password(candidate, "", errors)
        if not errors:
            return candidate


class StaffService:
    def __init__(
        self,
        engine: AsyncEngine,
        bearer_tokens: BearerRevoker,
        *,
        on_state_change: Callable[[], None] | None = None,
    ) -> None:
        """`on_state_change` is told when an action records someone's state (signed out
        by a supervisor, disabled): the wallboard's publisher, in the web app."""
        self._engine = engine
        self._bearer_tokens = bearer_tokens
        self._on_state_change = on_state_change

    # --- reading ------------------------------------------------------------------------------

    async def page(self, number: int, per_page: int = 50) -> Page[StaffRow]:
        async with self._engine.connect() as conn:
            records = await agent_store.staff_page(
                conn, limit=per_page + 1, offset=(number - 1) * per_page
            )
        shown = records[:per_page]
        states = await AgentStateService(self._engine).current_for(r.id for r in shown)
        rows = [StaffRow(r, states[r.id]) for r in shown]
        return Page(rows, number, len(records) > per_page)

    async def get(self, agent_id: int) -> agent_store.StaffRecord:
        async with self._engine.connect() as conn:
            record = await agent_store.staff_record(conn, agent_id)
        if record is None:
            raise StaffNotFound(f"No account {agent_id}.")
        return record

    async def find(self, email_or_id: str) -> agent_store.StaffRecord:
        """An account by its email or its id (the CLI's way of naming one)."""
        wanted = email_or_id.strip()
        if wanted.isascii() and wanted.isdigit() and len(wanted) <= 18:
            return await self.get(int(wanted))
        async with self._engine.connect() as conn:
            record = await agent_store.staff_by_email(conn, wanted.lower())
        if record is None:
            raise StaffNotFound("No account with that email address or id.")
        return record

    async def status(self, agent_id: int) -> AgentStatus:
        return await AgentStateService(self._engine).current(agent_id)

    async def tokens(self, agent_id: int) -> list[api_tokens.TokenRecord]:
        async with self._engine.connect() as conn:
            return await api_tokens.tokens_of(conn, agent_id)

    async def sessions(
        self, agent_id: int, number: int, per_page: int = 20
    ) -> Page[agent_store.SessionRecord]:
        async with self._engine.connect() as conn:
            found = await agent_store.sessions_of(
                conn, agent_id, limit=per_page + 1, offset=(number - 1) * per_page
            )
        return Page(found[:per_page], number, len(found) > per_page)

    async def state_changes(
        self, agent_id: int, number: int, per_page: int = 20
    ) -> Page[agent_store.StateChange]:
        async with self._engine.connect() as conn:
            found = await agent_store.state_changes_of(
                conn, agent_id, limit=per_page + 1, offset=(number - 1) * per_page
            )
        return Page(found[:per_page], number, len(found) > per_page)

    # --- creating -----------------------------------------------------------------------------

    async def create(
        self,
        acting: Acting,
        *,
        email: str,
        display_name: str,
        role: str,
        queue: str,
        is_ai: bool,
        password: str | None,
    ) -> agent_store.StaffRecord:
        """A new person (with their first password) or AI agent (no password: it is given
        API tokens). `InvalidStaffInput` for bad fields or a taken email, `StaffRefused`
        for an admin created by a supervisor."""
        new = validate_new_member(
            email=email,
            display_name=display_name,
            role=role,
            queue=queue,
            is_ai=is_ai,
            password=password,
        )
        refused = refuse_create(acting.actor, new.role)
        if refused:
            await self._refused(acting, "create", None, refused, {"role": new.role.value})
        password_hash = (
            await asyncio.to_thread(hash_password, new.password) if new.password else None
        )
        try:
            async with self._engine.begin() as conn:
                if await agent_store.email_taken(conn, new.email):
                    raise InvalidStaffInput({"email": TAKEN})
                agent_id = await agent_store.create_agent(
                    conn,
                    agent_store.NewAgent(
                        email=new.email,
                        display_name=new.display_name,
                        role=new.role.value,
                        queue=new.queue.value if new.queue else None,
                        password_hash=password_hash,
                    ),
                    is_ai=new.is_ai,
                )
                await self._audit(
                    conn,
                    acting,
                    "agent_created",
                    agent_id,
                    {
                        "email": new.email,
                        "display_name": new.display_name,
                        "role": new.role.value,
                        "queue": new.queue.value if new.queue else None,
                        "is_ai": new.is_ai,
                    },
                )
        except IntegrityError:  # the same email created at the same moment elsewhere
            raise InvalidStaffInput({"email": TAKEN}) from None
        log.info("agent created", agent_id=agent_id, is_ai=new.is_ai, by=acting.audit_type)
        return await self.get(agent_id)

    # --- changing -----------------------------------------------------------------------------

    async def set_role_and_queue(
        self, acting: Acting, agent_id: int, *, role: str, queue: str
    ) -> agent_store.StaffRecord:
        target = await self.get(agent_id)
        new_role, new_queue = validate_role_and_queue(role, queue)
        refused = refuse_role_and_queue(acting.actor, _member(target), new_role, new_queue)
        if refused:
            detail = {"role": new_role.value, "queue": new_queue.value if new_queue else None}
            await self._refused(acting, "set_role_and_queue", agent_id, refused, detail)
        changes = {"role": new_role.value, "queue": new_queue.value if new_queue else None}
        before = {"role": target.role, "queue": target.queue}
        if changes == before:
            return target
        async with self._engine.begin() as conn:
            await agent_store.update_agent(conn, agent_id, **changes)
            await self._audit(
                conn, acting, "agent_role_queue_changed", agent_id, {"from": before, "to": changes}
            )
        return await self.get(agent_id)

    async def set_active(self, acting: Acting, agent_id: int, active: bool) -> Access | None:
        """Enable or disable an account. Disabling ends its sessions and bearer tokens (its
        API tokens stop working while it stays disabled); the answer says what ended."""
        target = await self.get(agent_id)
        action = "enable" if active else "disable"
        refused = (
            refuse_manage(acting.actor, _member(target))
            if active
            else refuse_disable(acting.actor, _member(target))
        )
        if refused:
            await self._refused(acting, action, agent_id, refused, {})
        if target.is_active == active:
            return None
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            await agent_store.update_agent(conn, agent_id, is_active=active)
            ended = 0 if active else await agent_store.revoke_sessions_of(conn, agent_id, now)
            if not active:
                await agent_store.record_state(conn, agent_id, AgentState.OFFLINE.value, "disabled")
            await self._audit(
                conn,
                acting,
                "agent_enabled" if active else "agent_disabled",
                agent_id,
                {} if active else {"sessions_ended": ended},
            )
        if active:
            return None
        self._state_changed()
        return Access(ended, await self._revoke_bearer_tokens(agent_id, now))

    async def reset_password(
        self, acting: Acting, agent_id: int, password: str | None
    ) -> tuple[str | None, Access]:
        """Set a person's password (`None`: generate one, returned to be shown once) and
        end their sessions and bearer tokens (whoever knew the old one is signed out)."""
        target = await self.get(agent_id)
        refused = refuse_password_reset(acting.actor, _member(target))
        if refused:
            await self._refused(acting, "reset_password", agent_id, refused, {})
        generated = None
        if password is None:
            generated = password = generate_password()
        else:
            errors: dict[str, str] = {}
            check_password(password, target.email, errors, name="new_password")
            if errors:
                raise InvalidStaffInput(errors)
        password_hash = await asyncio.to_thread(hash_password, password)
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            await agent_store.update_agent(conn, agent_id, password_hash=password_hash)
            ended = await agent_store.revoke_sessions_of(conn, agent_id, now)
            await self._audit(
                conn,
                acting,
                "agent_password_reset",
                agent_id,
                {"generated": generated is not None, "sessions_ended": ended},
            )
        return generated, Access(ended, await self._revoke_bearer_tokens(agent_id, now))

    async def force_logout(self, acting: Acting, agent_id: int) -> Access:
        """End every session and every bearer token (JWT) of the account now. Its issued
        API tokens are left alone: revoke those one by one."""
        target = await self.get(agent_id)
        refused = refuse_manage(acting.actor, _member(target))
        if refused:
            await self._refused(acting, "force_logout", agent_id, refused, {})
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            ended = await agent_store.revoke_sessions_of(conn, agent_id, now)
            await agent_store.record_state(
                conn, agent_id, AgentState.OFFLINE.value, "signed out by a supervisor"
            )
            await self._audit(conn, acting, "agent_signed_out", agent_id, {"sessions_ended": ended})
        self._state_changed()
        return Access(ended, await self._revoke_bearer_tokens(agent_id, now))

    # --- API tokens ---------------------------------------------------------------------------

    async def issue_token(
        self, acting: Acting, agent_id: int, *, label: str, expires_days: str = ""
    ) -> IssuedToken:
        target = await self.get(agent_id)
        clean_label, days = validate_token_request(label, expires_days)
        refused = refuse_token(acting.actor, _member(target))
        if refused:
            await self._refused(acting, "issue_token", agent_id, refused, {"label": clean_label})
        token = api_tokens.new_token()
        expires_at = datetime.now(UTC) + timedelta(days=days) if days else None
        async with self._engine.begin() as conn:
            record = await api_tokens.add_token(
                conn,
                agent_id=agent_id,
                label=clean_label,
                token=token,
                issued_by=acting.actor.id,
                expires_at=expires_at,
            )
            await self._audit(
                conn,
                acting,
                "api_token_issued",
                agent_id,
                {
                    "token_id": record.id,
                    "label": record.label,
                    "prefix": record.prefix,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
        return IssuedToken(record, token)

    async def revoke_token(
        self, acting: Acting, agent_id: int, token_id: int
    ) -> api_tokens.TokenRecord:
        """Revoke one of the account's API tokens: the next request with it is refused, in
        every web process (each request looks the token up)."""
        target = await self.get(agent_id)
        async with self._engine.connect() as conn:
            record = await api_tokens.token_record(conn, token_id)
        if record is None or record.agent_id != agent_id:
            raise StaffNotFound(f"Account {agent_id} has no token {token_id}.")
        refused = refuse_manage(acting.actor, _member(target))
        if refused:
            await self._refused(acting, "revoke_token", agent_id, refused, {"token_id": token_id})
        async with self._engine.begin() as conn:
            if await api_tokens.revoke_token(conn, token_id, datetime.now(UTC)):
                await self._audit(
                    conn,
                    acting,
                    "api_token_revoked",
                    agent_id,
                    {"token_id": token_id, "label": record.label, "prefix": record.prefix},
                )
            refreshed = await api_tokens.token_record(conn, token_id)
        assert refreshed is not None
        return refreshed

    # --- helpers ------------------------------------------------------------------------------

    def _state_changed(self) -> None:
        if self._on_state_change is not None:
            self._on_state_change()

    async def _revoke_bearer_tokens(self, agent_id: int, now: datetime) -> bool:
        try:
            await self._bearer_tokens.revoke_agent(agent_id, now)
        except RedisError as error:
            log.error("bearer tokens not revoked: Redis unavailable", error=str(error))
            return False
        return True

    async def _audit(
        self,
        conn: AsyncConnection,
        acting: Acting,
        action: str,
        agent_id: int | None,
        detail: Mapping[str, object],
    ) -> None:
        await append_audit(
            conn,
            actor_type=acting.audit_type,
            actor_id=acting.audit_id,
            action=action,
            subject_type=SUBJECT,
            subject_id=None if agent_id is None else str(agent_id),
            detail=detail,
            ip_address=acting.ip_address,
        )

    async def _refused(
        self,
        acting: Acting,
        attempted: str,
        agent_id: int | None,
        reason: str,
        detail: Mapping[str, object],
    ) -> NoReturn:
        """Audit the refusal, then raise it."""
        async with self._engine.begin() as conn:
            await self._audit(
                conn,
                acting,
                "staff_change_refused",
                agent_id,
                {"attempted": attempted, "reason": reason, **detail},
            )
        raise StaffRefused(reason)
