"""The AI agent's conversations and their steps (`ai_conversations`, `ai_steps`): every read
and write of the two tables.

Writers: the AI contact's activities (a conversation opened once per workflow, its call, each
step: what the claimant said, what the AI said, each model call with its latency and tokens,
each tool call with its arguments and result; the close with its outcome or hand-off), the
inbound-text triage, and the retention clean-up (the steps' text deleted with the
recordings'). Readers: the Twilio webhooks (a conversation by id), the routing policy (AI
contacts started in the last hour; claimants who raised something sensitive with the AI),
and the supervisor's claimant page.

Each function takes the caller's connection, so the caller decides the transaction. Text
from a model or a claimant can hold a NUL character, which PostgreSQL refuses in text and
JSON: it is dropped on the way in. Nothing here logs what was said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.learned_rates import count_attempts, slot_of
from schemas import dialler_db as db
from schemas.ai import AiChannel, ContactEnd, HandoffReason
from schemas.learned_rates import AttemptCounts

_A = db.ai_conversations.c
_S = db.ai_steps.c

ACTIVE = "active"  # status of a conversation still going
CLOSED_STATUSES = frozenset(end.value for end in ContactEnd)
SENSITIVE_EXCLUSION = "a complaint, bereavement or vulnerability raised with the AI"
# AI contacts count towards a queue's hourly cap; the triage of an inbound text does not
_CONTACT_CHANNELS = (AiChannel.VOICE.value, AiChannel.SMS.value)
STEP_KEY = "key"  # detail's field naming a step recorded once (`add_step_once`)


@dataclass(frozen=True)
class ConversationRow:
    """One `ai_conversations` row (every column)."""

    id: int
    user_id: int
    agent_id: int | None
    channel: str
    queue: str | None
    workflow_id: str
    call_id: int | None
    status: str
    disposition: str | None
    handoff_reason: str | None
    summary: str | None
    turns: int
    prompt_tokens: int
    completion_tokens: int
    started_at: datetime
    ended_at: datetime | None
    transcript_deleted_at: datetime | None


@dataclass(frozen=True)
class StepRow:
    """One `ai_steps` row (every column)."""

    id: int
    conversation_id: int
    kind: str
    text: str | None
    tool_name: str | None
    detail: dict[str, Any] | None
    latency_ms: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: datetime


def _conversation(row: Row[Any] | None) -> ConversationRow | None:
    return None if row is None else ConversationRow(**row._mapping)


def _step(row: Row[Any]) -> StepRow:
    return StepRow(**row._mapping)


def _no_nul(text: str | None) -> str | None:
    return None if text is None else text.replace("\x00", "")


def _clean(value: Any) -> Any:
    """A JSON value without NUL characters (PostgreSQL's jsonb refuses \\u0000)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


# --- a conversation ---------------------------------------------------------------------------


async def open_conversation(
    conn: AsyncConnection,
    *,
    user_id: int,
    agent_id: int | None,
    channel: str,
    queue: str | None,
    workflow_id: str,
) -> int:
    """The conversation of this workflow: created once, its id however often it is asked
    (a retried activity finds the row it made)."""
    opened = await conn.scalar(
        pg_insert(db.ai_conversations)
        .values(
            user_id=user_id,
            agent_id=agent_id,
            channel=channel,
            queue=queue,
            workflow_id=workflow_id,
        )
        # a no-op update, so RETURNING gives the existing row's id in the same statement
        .on_conflict_do_update(index_elements=[_A.workflow_id], set_={"workflow_id": workflow_id})
        .returning(_A.id)
    )
    assert opened is not None
    return int(opened)


async def attach_call(conn: AsyncConnection, conversation_id: int, call_id: int) -> None:
    await conn.execute(
        update(db.ai_conversations).where(_A.id == conversation_id).values(call_id=call_id)
    )


async def close_conversation(
    conn: AsyncConnection,
    conversation_id: int,
    *,
    status: str,
    disposition: str | None,
    handoff_reason: str | None,
    summary: str,
    turns: int,
) -> None:
    """End the conversation once: its ending (`schemas.ai.ContactEnd`), outcome, hand-off
    and the tokens its model calls used. Closing it again changes nothing."""
    if status not in CLOSED_STATUSES:
        raise ValueError(f"status must be one of {', '.join(sorted(CLOSED_STATUSES))}")
    if handoff_reason is not None:
        HandoffReason(handoff_reason)  # ValueError for a reason that is not one

    def total(column: Any) -> Any:
        return (
            select(func.coalesce(func.sum(column), 0))
            .where(_S.conversation_id == conversation_id)
            .scalar_subquery()
        )

    await conn.execute(
        update(db.ai_conversations)
        .where(_A.id == conversation_id, _A.status == ACTIVE)
        .values(
            status=status,
            disposition=disposition,
            handoff_reason=handoff_reason,
            summary=_no_nul(summary) or None,
            turns=max(0, turns),
            ended_at=func.now(),
            prompt_tokens=total(_S.prompt_tokens),
            completion_tokens=total(_S.completion_tokens),
        )
    )


async def conversation_by_id(conn: AsyncConnection, conversation_id: int) -> ConversationRow | None:
    row = (
        await conn.execute(select(db.ai_conversations).where(_A.id == conversation_id))
    ).one_or_none()
    return _conversation(row)


async def active_conversation(
    conn: AsyncConnection, user_id: int, channel: str
) -> ConversationRow | None:
    """The claimant's conversation still going on this channel (the newest, should there be
    two), e.g. for an inbound text to reach."""
    row = (
        await conn.execute(
            select(db.ai_conversations)
            .where(_A.user_id == user_id, _A.status == ACTIVE, _A.channel == channel)
            .order_by(_A.started_at.desc(), _A.id.desc())
            .limit(1)
        )
    ).one_or_none()
    return _conversation(row)


async def conversations_for_user(
    conn: AsyncConnection, user_id: int, limit: int = 20
) -> list[ConversationRow]:
    """The claimant's conversations, newest first."""
    rows = await conn.execute(
        select(db.ai_conversations)
        .where(_A.user_id == user_id)
        .order_by(_A.started_at.desc(), _A.id.desc())
        .limit(max(0, limit))
    )
    return [ConversationRow(**row._mapping) for row in rows]


# --- steps ------------------------------------------------------------------------------------


async def add_step(
    conn: AsyncConnection,
    conversation_id: int,
    kind: str,
    text: str | None,
    *,
    tool_name: str | None = None,
    detail: dict[str, Any] | None = None,
    latency_ms: int | None = None,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
) -> int:
    """One step of the conversation ("claimant", "assistant", "tool" or "model"); its id."""
    step_id = await conn.scalar(
        insert(db.ai_steps)
        .values(
            conversation_id=conversation_id,
            kind=kind,
            text=_no_nul(text),
            tool_name=None if tool_name is None else tool_name.replace("\x00", "")[:64],
            detail=None if detail is None else _clean(detail),
            latency_ms=latency_ms,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
        .returning(_S.id)
    )
    assert step_id is not None
    return int(step_id)


async def step_with_key(conn: AsyncConnection, conversation_id: int, key: str) -> StepRow | None:
    """The step recorded under `key` (`add_step_once`), if there is one."""
    row = (
        await conn.execute(
            select(db.ai_steps)
            .where(_S.conversation_id == conversation_id, _S.detail[STEP_KEY].astext == key)
            .order_by(_S.id)
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else _step(row)


async def recorded_keys(conn: AsyncConnection, conversation_id: int) -> set[str]:
    """The keys of the conversation's steps recorded once (`add_step_once`). Locks the
    conversation's row for the caller's transaction, so that a second recorder (a retried
    activity whose first attempt still runs) waits and then sees what the first added."""
    await conn.execute(select(_A.id).where(_A.id == conversation_id).with_for_update())
    rows = await conn.execute(
        select(_S.detail[STEP_KEY].astext).where(
            _S.conversation_id == conversation_id, _S.detail.has_key(STEP_KEY)
        )
    )
    return {str(key) for (key,) in rows}


async def add_step_once(
    conn: AsyncConnection,
    conversation_id: int,
    key: str,
    kind: str,
    text: str | None,
    *,
    tool_name: str | None = None,
    detail: dict[str, Any] | None = None,
) -> int:
    """A step recorded once under `key`, however often a retried activity records it: the
    id of the step already there, or of the one added. The conversation's row is locked
    meanwhile, so two recorders cannot both add it."""
    await conn.execute(select(_A.id).where(_A.id == conversation_id).with_for_update())
    found = await step_with_key(conn, conversation_id, key)
    if found is not None:
        return found.id
    return await add_step(
        conn,
        conversation_id,
        kind,
        text,
        tool_name=tool_name,
        detail={**(detail or {}), STEP_KEY: key},
    )


async def steps_of(conn: AsyncConnection, conversation_ids: list[int]) -> dict[int, list[StepRow]]:
    """Each conversation's steps in the order they were recorded (every id asked for is a
    key, with an empty list when it has none)."""
    found: dict[int, list[StepRow]] = {cid: [] for cid in conversation_ids}
    if not conversation_ids:
        return found
    rows = await conn.execute(
        select(db.ai_steps)
        .where(_S.conversation_id.in_(conversation_ids))
        .order_by(_S.conversation_id, _S.id)
    )
    for row in rows:
        step = _step(row)
        found[step.conversation_id].append(step)
    return found


# --- the routing policy's questions -----------------------------------------------------------


async def started_last_hour(conn: AsyncConnection, now: datetime) -> dict[str, int]:
    """AI contacts (calls and SMS conversations) started in (now - 1 h, now], by queue."""
    rows = await conn.execute(
        select(_A.queue, func.count())
        .where(
            _A.channel.in_(_CONTACT_CHANNELS),
            _A.started_at > now - timedelta(hours=1),
            _A.started_at <= now,
            _A.queue.is_not(None),
        )
        .group_by(_A.queue)
    )
    return {str(queue): int(count) for queue, count in rows}


async def excluded_reason(conn: AsyncConnection, user_id: int) -> str | None:
    """Why the claimant is people-only because of what they told the AI (a complaint,
    bereavement or vulnerability: a hand-off for a sensitive reason), or None."""
    found = await conn.scalar(
        select(_A.id)
        .where(_A.user_id == user_id, _A.handoff_reason == HandoffReason.SENSITIVE.value)
        .limit(1)
    )
    return None if found is None else SENSITIVE_EXCLUSION


# --- retention --------------------------------------------------------------------------------


async def delete_transcripts_before(conn: AsyncConnection, cutoff: datetime) -> int:
    """The end of the recording retention for conversations started before `cutoff`: what
    was said (the steps' text, and their detail, which holds tool arguments such as a
    hand-off summary) is deleted; the steps' kinds, times, latencies and tokens stay. Once
    per conversation; how many were deleted now."""
    expired = (
        await conn.execute(
            update(db.ai_conversations)
            .where(_A.started_at < cutoff, _A.transcript_deleted_at.is_(None))
            .values(transcript_deleted_at=func.now())
            .returning(_A.id)
        )
    ).scalars()
    ids = [int(i) for i in expired]
    if ids:
        await conn.execute(
            update(db.ai_steps).where(_S.conversation_id.in_(ids)).values(text=None, detail=None)
        )
    return len(ids)


# --- the supervisor's views (services.call_review, services.wallboard) -------------------------


@dataclass(frozen=True)
class ConversationSearch:
    """Which conversations the calls list's "AI SMS conversations" shows (None: any)."""

    channels: tuple[str, ...]
    agent_ids: list[int] | None = None
    disposition: str | None = None
    without_outcome: bool = False  # only conversations that recorded no outcome
    queue: str | None = None
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before


async def search_conversations(
    conn: AsyncConnection,
    search: ConversationSearch,
    *,
    limit: int,
    older_than: tuple[datetime, int] | None = None,
    newer_than: tuple[datetime, int] | None = None,
) -> list[ConversationRow]:
    """Up to `limit` conversations matching `search`, newest first (by start, then id): the
    newest, those just older than `older_than`, or those just newer than `newer_than` (a
    keyset, as `call_log.search_calls` pages the calls)."""
    where: list[Any] = [_A.channel.in_(search.channels)]
    if search.agent_ids is not None:
        where.append(_A.agent_id.in_(sorted(set(search.agent_ids))))
    if search.disposition is not None:
        where.append(_A.disposition == search.disposition)
    if search.without_outcome:
        where.append(_A.disposition.is_(None))
    if search.queue is not None:
        where.append(_A.queue == search.queue)
    if search.since is not None:
        where.append(_A.started_at >= search.since)
    if search.until is not None:
        where.append(_A.started_at < search.until)
    if older_than is not None:
        at, conversation_id = older_than
        where += [_A.started_at <= at, (_A.started_at < at) | (_A.id < conversation_id)]
    if newer_than is not None:
        at, conversation_id = newer_than
        where += [_A.started_at >= at, (_A.started_at > at) | (_A.id > conversation_id)]
    ascending = newer_than is not None and older_than is None
    order = (
        [_A.started_at.asc(), _A.id.asc()] if ascending else [_A.started_at.desc(), _A.id.desc()]
    )
    rows = await conn.execute(
        select(db.ai_conversations).where(*where).order_by(*order).limit(max(0, limit))
    )
    found = [ConversationRow(**row._mapping) for row in rows]
    return found[::-1] if ascending else found


async def conversations_of_calls(
    conn: AsyncConnection, call_ids: list[int]
) -> dict[int, ConversationRow]:
    """The AI conversation of each of these calls that had one (call id -> conversation)."""
    if not call_ids:
        return {}
    rows = await conn.execute(
        select(db.ai_conversations).where(_A.call_id.in_(sorted(set(call_ids)))).order_by(_A.id)
    )
    return {int(row.call_id): ConversationRow(**row._mapping) for row in rows}


async def contacts_since(conn: AsyncConnection, since: datetime) -> dict[str, tuple[int, int]]:
    """Conversations started at or after `since`, by channel: (started, handed to a
    person)."""
    rows = await conn.execute(
        select(
            _A.channel,
            func.count(),
            func.count().filter(_A.status == ContactEnd.HANDED_OFF.value),
        )
        .where(_A.started_at >= since)
        .group_by(_A.channel)
    )
    return {str(channel): (int(started), int(handed)) for channel, started, handed in rows}


# --- subject access (services.subject_access) ---------------------------------------------------


async def subject_access(conn: AsyncConnection, user_id: int) -> list[dict[str, Any]]:
    """Every AI conversation with the claimant, oldest first, each with its steps (what was
    said, the tool calls, the model calls' figures): the claimant's right of access covers
    what the AI said to them and what it did."""
    rows = await conn.execute(
        select(db.ai_conversations).where(_A.user_id == user_id).order_by(_A.id)
    )
    conversations = [dict(row._mapping) for row in rows]
    steps = await steps_of(conn, [int(c["id"]) for c in conversations])
    for conversation in conversations:
        conversation["steps"] = [
            {k: v for k, v in asdict(step).items() if k != "conversation_id"}
            for step in steps[int(conversation["id"])]
        ]
    return conversations


# --- the learned rates (issue 14): the AI's SMS conversations of a window, counted -------------


async def sms_attempt_counts(
    conn: AsyncConnection, start: datetime, end: datetime, converted: Select[Any]
) -> AttemptCounts:
    """The AI's SMS conversations started in [start, end), counted in one scan by queue, by
    the quarter hour they started in and by claimant: how many, how many the claimant
    replied to (a claimant's turn), how many converted: a text credited with a conversion
    (`converted`: user_id, agent_id, contact_at, from `conversions.converted_texts`) sent to
    the claimant by the conversation's agent while it was going (to `end` while it still
    is). Those are found by a join (hashed on claimant and agent), not a look-up per row."""
    sms = (_A.channel == AiChannel.SMS.value, _A.started_at >= start, _A.started_at < end)
    credited = converted.subquery("credited")
    c = credited.c
    converted_ids = (
        select(_A.id)
        .join(
            credited,
            and_(
                c.user_id == _A.user_id,
                c.agent_id == _A.agent_id,
                c.contact_at >= _A.started_at,
                c.contact_at <= func.coalesce(_A.ended_at, end),
            ),
        )
        .where(*sms)
        .distinct()
        .subquery("converted_ids")
    )
    attempts = (
        select(
            _A.queue,
            _A.user_id,
            slot_of(_A.started_at).label("slot"),
            (_A.turns > 0).label("reached"),
            converted_ids.c.id.is_not(None).label("converted"),
        )
        .select_from(db.ai_conversations.outerjoin(converted_ids, converted_ids.c.id == _A.id))
        .where(*sms)
        .subquery("attempts")
    )
    return await count_attempts(conn, attempts)
