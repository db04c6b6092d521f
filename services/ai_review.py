"""The AI agents' conversations as supervisors read them (issue 13): on the claimant page,
each AI call, SMS conversation and inbound-text triage with its outcome, hand-off and token
counts, and its transcript in order: what the claimant said, what the AI said, each tool
call (name, arguments, result, refused or not) and each model call (latency, tokens).

The rows come from their owner, `adapters.ai_conversations`. A transcript is personal
data: reading one is audited (`viewed_ai_transcripts`, the conversations' ids, never their
text), and nothing of it is logged. Once the recording retention has deleted a transcript,
the conversation says so and shows none of its steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from adapters import ai_conversations
from adapters.ai_conversations import ConversationRow, StepRow
from adapters.audit_log import append_audit
from schemas.ai import HandoffReason
from services.claimant_context import disposition_label

CONVERSATIONS_SHOWN = 20
VIEWED_TRANSCRIPTS = "viewed_ai_transcripts"

CHANNEL_LABELS = {
    "voice": "AI call",
    "sms": "AI SMS conversation",
    "triage": "Inbound text triage",
}
STATUS_LABELS = {
    "active": "In progress",
    "finished": "Finished",
    "handed_off": "Handed to a person",
    "no_contact": "No contact",
    "cancelled": "Cancelled",
}
HANDOFF_LABELS = {
    HandoffReason.ASKED_FOR_PERSON.value: "the claimant asked for a person",
    HandoffReason.SENSITIVE.value: "sensitive (complaint, bereavement or vulnerability): "
    "people only from now on",
    HandoffReason.COULD_NOT_HELP.value: "the AI could not help",
    HandoffReason.MODEL_FAILED.value: "the model failed (malformed output, a refusal or an outage)",
    HandoffReason.LIMIT_REACHED.value: "the turn or time limit was reached",
}
SPEAKERS = {"claimant": "Claimant", "assistant": "AI", "tool": "Tool", "model": "Model call"}


def _label(labels: Mapping[str, str], value: str | None) -> str:
    if value is None:
        return ""
    return labels.get(value, value.replace("_", " ").capitalize())


def channel_label(channel: str) -> str:
    return _label(CHANNEL_LABELS, channel)


def handoff_label(reason: str | None) -> str:
    return _label(HANDOFF_LABELS, reason)


def outcome_label(row: ConversationRow) -> str:
    """The typed outcome the conversation recorded, else how it ended."""
    if row.disposition:
        return disposition_label(row.disposition)
    return _label(STATUS_LABELS, row.status)


def handed_off(row: ConversationRow) -> bool:
    return row.status == "handed_off" or row.handoff_reason is not None


def conversation_anchor(row: ConversationRow) -> str:
    """Where the conversation's transcript is: its section on the claimant page."""
    return f"/supervisor/claimants/{row.user_id}#ai-conversation-{row.id}"


@dataclass(frozen=True)
class ToolUse:
    """A tool call the model asked for and what came of it (a refusal is the reason the
    model was told, and the tool did not run)."""

    name: str
    arguments: dict[str, str]
    result: str | None
    refused: bool


@dataclass(frozen=True)
class TranscriptLine:
    id: int
    kind: str  # "claimant", "assistant", "tool" or "model"
    at: datetime
    text: str | None
    tool: ToolUse | None = None
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def speaker(self) -> str:
        return SPEAKERS.get(self.kind, self.kind.capitalize())


def _arguments(detail: Mapping[str, Any]) -> dict[str, str]:
    raw = detail.get("arguments")
    if not isinstance(raw, Mapping):
        return {}
    return {str(name): "" if value is None else str(value) for name, value in raw.items()}


def transcript_line(step: StepRow) -> TranscriptLine:
    """One step as the page shows it; a tool step's arguments and refusal are in its
    `detail` (its text is the result, or the refusal the model was told)."""
    tool = None
    if step.kind == "tool":
        detail: Mapping[str, Any] = step.detail if isinstance(step.detail, Mapping) else {}
        result = detail.get("result")
        tool = ToolUse(
            name=step.tool_name or "tool",
            arguments=_arguments(detail),
            result=str(result) if result is not None else step.text,
            refused=bool(detail.get("refused")),
        )
    return TranscriptLine(
        id=step.id,
        kind=step.kind,
        at=step.created_at,
        text=step.text,
        tool=tool,
        latency_ms=step.latency_ms,
        prompt_tokens=step.prompt_tokens,
        completion_tokens=step.completion_tokens,
    )


@dataclass(frozen=True)
class AiConversation:
    row: ConversationRow
    lines: list[TranscriptLine]  # empty once the transcript is deleted

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def channel_label(self) -> str:
        return channel_label(self.row.channel)

    @property
    def outcome_label(self) -> str:
        return outcome_label(self.row)

    @property
    def handed_off(self) -> bool:
        return handed_off(self.row)

    @property
    def handoff_label(self) -> str:
        return handoff_label(self.row.handoff_reason)

    @property
    def transcript_deleted(self) -> bool:
        return self.row.transcript_deleted_at is not None

    @property
    def tool_calls(self) -> int:
        return sum(1 for line in self.lines if line.tool is not None)

    @property
    def model_calls(self) -> int:
        return sum(1 for line in self.lines if line.kind == "model")


def conversations(
    rows: Sequence[ConversationRow], steps: Mapping[int, list[StepRow]]
) -> list[AiConversation]:
    """The conversations with their transcripts in order (none for a deleted one)."""
    return [
        AiConversation(
            row,
            []
            if row.transcript_deleted_at is not None
            else [transcript_line(step) for step in sorted(steps.get(row.id, []), key=_order)],
        )
        for row in rows
    ]


def _order(step: StepRow) -> tuple[datetime, int]:
    return step.created_at, step.id


async def conversations_of(
    conn: AsyncConnection, user_id: int, limit: int = CONVERSATIONS_SHOWN
) -> list[AiConversation]:
    """The claimant's latest AI conversations, newest first, with their transcripts."""
    rows = await ai_conversations.conversations_for_user(conn, user_id, limit)
    steps = await ai_conversations.steps_of(conn, [row.id for row in rows]) if rows else {}
    return conversations(rows, steps)


async def audit_transcripts_viewed(
    conn: AsyncConnection,
    shown: Sequence[AiConversation],
    *,
    user_id: int,
    agent_id: int,
    purpose: str,
    ip_address: str | None,
) -> bool:
    """One audit row naming the conversations whose transcripts are about to be shown (none:
    no row). Only ids: the text is the personal data being protected."""
    ids = [conversation.id for conversation in shown if conversation.lines]
    if not ids:
        return False
    await append_audit(
        conn,
        actor_type="agent",
        actor_id=str(agent_id),
        action=VIEWED_TRANSCRIPTS,
        subject_type="user",
        subject_id=str(user_id),
        detail={"purpose": purpose, "conversation_ids": ids},
        ip_address=ip_address,
    )
    return True
