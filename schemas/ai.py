"""Messages of the AI agent: the routing decision, the AI contact workflow's input, Updates,
signals and result, and its activities' requests and replies.

Like `schemas.outreach`, every workflow message and activity takes one of these dataclasses
and returns one. What a claimant says does pass through the AI contact's history (a
supervisor reads the conversation's steps in the Temporal UI); their name, number and claim
details do not: the activities read those from the databases themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

AI_TASK_QUEUE = "ai-agents"


class AiChannel(StrEnum):
    VOICE = "voice"  # an automated call (PECR regulation 19: automated-call consent)
    SMS = "sms"


class ContactEnd(StrEnum):
    """How an AI contact ended."""

    FINISHED = "finished"  # the AI recorded an outcome
    HANDED_OFF = "handed_off"  # a person takes over, with the AI's summary
    NO_CONTACT = "no_contact"  # no answer, busy, an answering machine, no reply in time
    CANCELLED = "cancelled"  # the outreach workflow stopped it (signed, opted out, paused...)


class HandoffReason(StrEnum):
    ASKED_FOR_PERSON = "asked_for_person"
    SENSITIVE = "sensitive"  # bereavement, complaint, vulnerability: people only from now on
    COULD_NOT_HELP = "could_not_help"
    MODEL_FAILED = "model_failed"  # malformed output twice, a refusal, a model outage
    LIMIT_REACHED = "limit_reached"  # the turn or time limit


# --- routing (domain.ai_routing) ------------------------------------------------------------


@dataclass
class AiAvailability:
    """What the routing policy needs to know beyond the claimant: is there an AI agent on
    duty (its agent id), may it call (the telephony is real), and how many AI contacts each
    queue started in the last hour (the hourly cap)."""

    agent_id: int | None = None
    voice_possible: bool = False
    sms_possible: bool = True
    started_last_hour: dict[str, int] = field(default_factory=dict)
    unavailable_reason: str = "no AI agent on duty"
    task_queue: str = AI_TASK_QUEUE


@dataclass
class Routing:
    """Who makes the next contact, explained like the score."""

    to_ai: bool
    reason: str
    channel: AiChannel | None = None
    ai_agent_id: int | None = None
    task_queue: str = AI_TASK_QUEUE  # where the AI worker listens


@dataclass
class AiHandoff:
    """The AI handed the claimant to a person: the next attempt is a person's, with the
    summary in the claimant's notes and the priority raised. A person's outcome clears it."""

    summary: str
    reason: HandoffReason
    at: datetime
    ai_agent_id: int


# --- the AI contact workflow --------------------------------------------------------------


@dataclass
class AiContactInput:
    user_id: int
    channel: AiChannel
    queue: str
    ai_agent_id: int
    # the outreach claim this contact works under (its outcome key)
    claim_key: str
    # where the outreach activities run (a magic link is sent by the outreach worker's
    # messaging activity, the same one an agent's click runs)
    outreach_task_queue: str = "outreach"


@dataclass
class ClaimantTurn:
    """What the claimant just said (voice: Twilio's speech result) or texted."""

    text: str
    # the provider's id of the utterance or message: a retried webhook is answered once
    turn_id: str


@dataclass
class AiReply:
    """What the AI says back; `end` closes the call (or the SMS conversation)."""

    say: str
    end: bool = False


class CallProgressKind(StrEnum):
    ANSWERED_HUMAN = "answered_human"
    ANSWERED_MACHINE = "answered_machine"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"
    COMPLETED = "completed"  # the call ended (the claimant hung up, or we did)


@dataclass
class CallProgress:
    kind: CallProgressKind
    # how long after Twilio reported the answer the claimant heard the opening (abandonment)
    answered_after_ms: int | None = None


@dataclass
class AiContactProgress:
    conversation_id: int | None
    turns: int
    ended: bool
    outcome: str | None


@dataclass
class AiContactResult:
    """What the outreach workflow applies: the same typed outcome a person records (a
    `domain.dispositions.Disposition` value), or a hand-off, or nothing (cancelled)."""

    conversation_id: int
    end: ContactEnd
    disposition: str | None = None
    callback_at: datetime | None = None
    summary: str = ""
    handoff_reason: HandoffReason | None = None
    call_id: int | None = None
    magic_links_sent: int = 0
    abandoned: bool = False


# --- activities ----------------------------------------------------------------------------


@dataclass
class OpenConversation:
    user_id: int
    channel: AiChannel
    queue: str
    ai_agent_id: int
    workflow_id: str


@dataclass
class ConversationOpened:
    conversation_id: int


@dataclass
class PlaceAiCall:
    conversation_id: int
    user_id: int
    ai_agent_id: int
    queue: str
    workflow_id: str


@dataclass
class AiCallPlaced:
    call_id: int | None  # None: the claimant has no usable number
    call_sid: str | None
    # why no call was placed (no usable number, opted out, no automated-call consent, the
    # calling window closed, Twilio refused it); empty when it was
    refused: str = ""


@dataclass
class SendAiSms:
    conversation_id: int
    user_id: int
    ai_agent_id: int
    body: str
    # one message per key, however often the activity is retried
    idempotency_key: str


@dataclass
class AiSmsSent:
    message_id: int | None  # None: not sent (no number, no consent)


class StepKind(StrEnum):
    CLAIMANT = "claimant"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass
class ConversationStep:
    """One line of the conversation the model sees (the system prompt is rebuilt by the
    activity from the claimant's context, never carried in the history)."""

    kind: StepKind
    text: str
    tool_call_id: str | None = None
    tool_name: str | None = None
    # an assistant step's tool calls, as the model sent them: {"id", "name", "arguments"}
    tool_calls: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ModelTurn:
    conversation_id: int
    user_id: int
    channel: AiChannel
    queue: str
    steps: list[ConversationStep]
    # a second attempt after malformed output says so to the model
    correction: str | None = None


@dataclass
class ToolCall:
    call_id: str
    name: str
    arguments: dict[str, str]


@dataclass
class ModelReply:
    say: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    malformed: str | None = None  # why the output failed its schema (None: it passed)
    refused: bool = False
    latency_ms: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class ContextQuestion:
    user_id: int
    conversation_id: int


@dataclass
class ContextAnswer:
    """The claimant's own claims, for the model to answer from: lenders and what is missing."""

    lenders: list[str]
    missing_documents: list[str]
    signed: bool


@dataclass
class EndAiCall:
    call_sid: str
    goodbye: str


@dataclass
class AiCallEnded:
    ended: bool


@dataclass
class CloseConversation:
    conversation_id: int
    end: ContactEnd
    disposition: str | None
    summary: str
    handoff_reason: HandoffReason | None
    transcript: list[ConversationStep]
    call_id: int | None
    turns: int
    abandoned: bool = False  # the claimant answered and waited over 2 s for the AI


@dataclass
class ConversationClosed:
    conversation_id: int


@dataclass
class ToolStep:
    """A tool call and its result, recorded against the conversation (`ai_steps`)."""

    conversation_id: int
    tool_name: str
    arguments: dict[str, str]
    result: str
    refused: bool


@dataclass
class ToolStepRecorded:
    step_id: int


@dataclass
class LimitsRequest:
    queue: str


@dataclass
class AiLimits:
    """The `[ai]` rules in force when the contact starts (`domain.rules.AiRules`)."""

    max_turns: int
    call_time_limit_seconds: int
    sms_reply_window_seconds: int
    answering_machine: str  # "hang_up" or "message"


@dataclass
class ToolCheck:
    """A tool call the model asked for, to validate against the claimant's state (and
    record) before it runs."""

    conversation_id: int
    user_id: int
    call: ToolCall
    magic_links_sent: int
    callback_at: datetime | None


@dataclass
class ToolVerdict:
    """`refusal` None: the tool may run, with `arguments` as parsed; otherwise the text the
    model is told instead."""

    name: str
    arguments: dict[str, str]
    refusal: str | None
    # claim_context's answer, ready for the model
    result: str = ""


# --- inbound SMS triage --------------------------------------------------------------------


class TriageIntent(StrEnum):
    CALLBACK_REQUEST = "callback_request"
    DOCUMENTS_QUESTION = "documents_question"
    OTHER = "other"


@dataclass
class TriageInput:
    message_id: int
    user_id: int


@dataclass
class ClassifyMessage:
    message_id: int
    user_id: int


@dataclass
class TriageDecision:
    intent: TriageIntent
    callback_at: datetime | None = None
    answer: str = ""
    latency_ms: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class TriageResult:
    message_id: int
    intent: TriageIntent
    action: str  # what was done: "callback booked", "answered", "left for a person"
