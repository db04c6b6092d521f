"""The AI agent's conversation rules: what the model is told, the tools it may call, how its
tool calls are checked, and the fixed lines it says.

Pure: no I/O, no clock reads (the time is passed in). The activities (`activities.ai_agent`)
and `dialler ai try` build the model's messages, parse its tool calls and check them against
the claimant's state with these same functions, so what an operator tries in the terminal is
what the worker does.

The model sees only this claimant's brief (`ClaimantBrief`: first name, lenders, missing
documents, whether they signed, why we are in touch), never a number, address, date of birth
or another claimant. Whatever it asks for is untrusted: `parse_tool_call` checks the call
against the tool's schema without ever raising, and `tool_refusal` checks a well-formed call
against the claimant's state before anything runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from domain.callback_booking import refuse_callback
from domain.calling_windows import format_local
from domain.rules import CallingWindows, DiallerRules
from domain.sms import requirement_words
from schemas.ai import AiChannel, ConversationStep, HandoffReason, StepKind

COMPANY = "Resolve My Claim"
UK = ZoneInfo("Europe/London")

# --- fixed lines ----------------------------------------------------------------------------

RECORDING_NOTICE = "This call is recorded for quality, training and regulatory purposes."
# An answering machine: who called and nothing else (no name, no claim: anyone may hear it).
MACHINE_MESSAGE = (
    f"Hello, this is a message from {COMPANY}. "
    "Please call us back when it suits you. Thank you, goodbye."
)
# The contact was cut short (the claimant just signed, opted out, or the supervisor paused
# them): a polite end that says nothing about why.
GOODBYE = f"Thank you for your time. {COMPANY} will be in touch if we need anything else. Goodbye."
HANDOFF_LINE = "Thank you. I'll ask a colleague to call you back as soon as they can."
SORRY_LINE = "Sorry, I didn't quite catch that. Could you say it again?"

_PURPOSE = {
    "unsigned": "It's about your claim: we still need your signature to get it started.",
    "outstanding": "It's about your claim: we're still waiting for a few documents from you.",
    "callback": "You asked us to get back to you about your claim.",
}
_DEFAULT_PURPOSE = "It's about your claim with us."


def _purpose(queue: str) -> str:
    return _PURPOSE.get(queue, _DEFAULT_PURPOSE)


def opening_line(channel: AiChannel, queue: str, first_name: str | None) -> str:
    """What the AI says first. A call says it is automated and recorded before anything
    else (PECR regulation 19 and the recording notice), and asks for the claimant by first
    name only; a text says it is automated and how to opt out."""
    name = clean_text(first_name or "", 40)
    purpose = _purpose(queue)
    if channel is AiChannel.VOICE:
        ask = f"Am I speaking with {name}? " if name else ""
        return (
            f"Hello, this is an automated assistant calling for {COMPANY}. "
            f"{RECORDING_NOTICE} {ask}{purpose}"
        )
    greeting = f"Hi {name}, this" if name else "Hello, this"
    return (
        f"{greeting} is the automated assistant of {COMPANY}. {purpose} "
        "Reply here if you have a question. Reply STOP to opt out."
    )


# --- what the model knows ---------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimantBrief:
    """Everything the model may know about the claimant: only this claimant's data."""

    first_name: str
    lenders: list[str]
    missing_documents: list[str]
    signed: bool
    queue: str


def document_label(requirement_type: str) -> str:
    """A requirement type as the claimant-facing texts say it ("bank_statements" ->
    "bank statements", "photo_id" -> "photo ID (passport or driving licence)")."""
    return clean_text(requirement_words(requirement_type), 80)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str, limit: int) -> str:
    """Data from the main app going into the prompt: no control characters, one line,
    capped, so a field cannot pass for instructions of its own."""
    one_line = " ".join(_CONTROL.sub(" ", text).split())
    return one_line[:limit]


def _list(items: Sequence[str]) -> str:
    items = [i for i in items if i]
    if not items:
        return "none"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def brief_facts(brief: ClaimantBrief) -> str:
    """The claimant's claims in a few lines: the prompt's facts and `claim_context`'s answer."""
    lenders = _list([clean_text(lender, 80) for lender in brief.lenders[:20]])
    missing = _list([clean_text(doc, 60) for doc in brief.missing_documents[:20]])
    signed = "yes" if brief.signed else "no (they still need to sign)"
    return (
        f"- Claims against: {lenders}\n"
        f"- Documents still missing: {missing}\n"
        f"- Signed the letter of authority: {signed}"
    )


def context_answer(lenders: Sequence[str], missing_documents: Sequence[str], signed: bool) -> str:
    """The `claim_context` tool's result, as the model reads it."""
    brief = ClaimantBrief("", list(lenders), list(missing_documents), signed, "")
    return brief_facts(brief)


def system_prompt(brief: ClaimantBrief, channel: AiChannel, now: datetime) -> str:
    """The model's instructions for one contact. Built from the brief and the time only:
    nothing else about the claimant can reach the model through it."""
    local = now.astimezone(UK)
    today = f"{local:%A} {local.day} {local:%B %Y}, {local:%H:%M}"
    name = clean_text(brief.first_name, 40) or "the claimant"
    if channel is AiChannel.VOICE:
        medium = (
            "You are on a phone call. Keep every reply to one or two short sentences, "
            "plain spoken English, no lists, links, emojis or abbreviations."
        )
    else:
        medium = (
            "You are texting by SMS. Keep every reply short (at most about 300 characters), "
            "plain text, no links (a magic link is sent by the send_magic_link tool)."
        )
    return f"""You are an automated assistant for {COMPANY} (RMC), a claims management \
company that helps people claim back money from car finance lenders. You are in touch with \
{name}. {_purpose(brief.queue)}

{medium}

Rules:
- Say you are an automated assistant if asked. Never pretend to be a person.
- Never give legal or financial advice, and never promise an amount or an outcome.
- Talk only about this claimant's own claims, using the facts below or the claim_context \
tool. Never invent facts; if you do not know, say a colleague will help and hand off.
- Hand off to a person (hand_off tool) straight away when the claimant asks for a person, \
makes a complaint, mentions a bereavement, or seems vulnerable (illness, distress, money \
worries, difficulty understanding): reason "sensitive" for a complaint, bereavement or \
vulnerability, "asked_for_person" when they ask for someone, "could_not_help" otherwise. \
Give a short, factual summary for the colleague.
- Use the tools to act: send_magic_link (at most once) for signing or uploading documents, \
schedule_callback for a time the claimant chooses (UK time, within calling hours), \
record_outcome once the conversation has reached an outcome. If a tool is refused, tell the \
claimant plainly and carry on.
- If the claimant says it is the wrong number or asks not to be contacted, record_outcome \
wrong_number or do_not_call and say goodbye.

Now: {today} UK time.

What you know about {name}:
{brief_facts(brief)}"""


# --- the tools ------------------------------------------------------------------------------

SEND_MAGIC_LINK = "send_magic_link"
SCHEDULE_CALLBACK = "schedule_callback"
RECORD_OUTCOME = "record_outcome"
HAND_OFF = "hand_off"
CLAIM_CONTEXT = "claim_context"

LINK_PURPOSES = ("signature", "documents")
LINK_CHANNELS = ("sms", "email")
OUTCOMES = (
    "promised_documents",
    "promised_to_sign",
    "not_interested",
    "do_not_call",
    "wrong_number",
    "callback_requested",
    "completed",
)
HANDOFF_REASONS = (
    HandoffReason.ASKED_FOR_PERSON.value,
    HandoffReason.SENSITIVE.value,
    HandoffReason.COULD_NOT_HELP.value,
)

MAX_ARGUMENTS_CHARS = 4_000  # the raw JSON of one call
CALLBACK_DAYS = 30  # a callback is booked within this many local days, today the first


@dataclass(frozen=True)
class _Field:
    description: str
    max_length: int
    enum: tuple[str, ...] = ()
    datetime: bool = False


@dataclass(frozen=True)
class _Tool:
    name: str
    description: str
    fields: dict[str, _Field] = field(default_factory=dict)


_TOOLS = (
    _Tool(
        SEND_MAGIC_LINK,
        "Send the claimant a single-use secure link: to sign (purpose signature) or to "
        "upload their missing documents (purpose documents), by SMS or email. At most once.",
        {
            "purpose": _Field("What the link is for", 16, LINK_PURPOSES),
            "channel": _Field("How to send it", 8, LINK_CHANNELS),
        },
    ),
    _Tool(
        SCHEDULE_CALLBACK,
        "Book a call back at a time the claimant chose, within calling hours and the next 30 days.",
        {
            "at": _Field(
                "The time in UK local time, ISO 8601, e.g. 2026-03-14T10:30", 40, datetime=True
            )
        },
    ),
    _Tool(
        RECORD_OUTCOME,
        "Record how the conversation ended, once it has reached an outcome.",
        {
            "outcome": _Field("The outcome", 32, OUTCOMES),
            "note": _Field("A short factual note for the claimant's record", 500),
        },
    ),
    _Tool(
        HAND_OFF,
        "Pass the claimant to a person, with a short factual summary for them.",
        {
            "summary": _Field("What the colleague needs to know", 1_000),
            "reason": _Field("Why", 32, HANDOFF_REASONS),
        },
    ),
    _Tool(
        CLAIM_CONTEXT,
        "Look up the claimant's own claims: the lenders, which documents are missing, "
        "whether they have signed.",
    ),
)
_BY_NAME = {tool.name: tool for tool in _TOOLS}


def _schema(tool: _Tool) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, spec in tool.fields.items():
        prop: dict[str, Any] = {"type": "string", "description": spec.description}
        if spec.enum:
            prop["enum"] = list(spec.enum)
        properties[name] = prop
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": properties,
                "required": list(tool.fields),
                "additionalProperties": False,
            },
        },
    }


# OpenAI function tools with strict JSON schemas (every field required, nothing else allowed).
TOOLS: list[dict[str, Any]] = [_schema(tool) for tool in _TOOLS]


@dataclass(frozen=True)
class ParsedTool:
    """A tool call that passed its schema."""

    name: str
    arguments: dict[str, str]


@dataclass(frozen=True)
class ToolProblem:
    """Why a tool call failed its schema, in words the model is told."""

    reason: str


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def parse_tool_call(name: str, raw_arguments: str) -> ParsedTool | ToolProblem:
    """Check a tool call as the model sent it against the tool's schema. Never raises:
    anything wrong (unknown tool, bad JSON, missing or extra fields, a wrong type or enum
    value, oversized or NUL-bearing text) comes back as a `ToolProblem`."""
    if not isinstance(name, str) or name not in _BY_NAME:
        shown = clean_text(str(name), 64)
        return ToolProblem(f"unknown tool {shown!r}; the tools are {', '.join(_BY_NAME)}")
    tool = _BY_NAME[name]
    if not isinstance(raw_arguments, str):
        return ToolProblem(f"{name}: the arguments must be a JSON object")
    if len(raw_arguments) > MAX_ARGUMENTS_CHARS:
        limit = MAX_ARGUMENTS_CHARS
        return ToolProblem(f"{name}: the arguments are longer than {limit} characters")
    if "\x00" in raw_arguments:
        return ToolProblem(f"{name}: the arguments contain a NUL character")
    text = raw_arguments.strip() or "{}"  # some servers send "" for a call without arguments
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError):  # JSONDecodeError, int digit limits, deep nesting
        return ToolProblem(f"{name}: the arguments are not valid JSON")
    if not isinstance(value, dict):
        return ToolProblem(f"{name}: the arguments must be a JSON object")
    extra = sorted(str(key) for key in value if key not in tool.fields)
    if extra:
        shown = ", ".join(clean_text(key, 40) for key in extra[:5])
        return ToolProblem(f"{name}: unexpected field(s) {shown}")
    arguments: dict[str, str] = {}
    for field_name, spec in tool.fields.items():
        problem = _field_problem(value.get(field_name), field_name in value, spec)
        if problem is not None:
            return ToolProblem(f"{name}.{field_name}: {problem}")
        arguments[field_name] = str(value[field_name]).strip()
    return ParsedTool(name, arguments)


def _field_problem(value: Any, present: bool, spec: _Field) -> str | None:
    if not present:
        return "missing"
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > spec.max_length:
        return f"longer than {spec.max_length} characters"
    if "\x00" in value:
        return "contains a NUL character"
    if spec.enum and value not in spec.enum:
        return f"must be one of {', '.join(spec.enum)}"
    if spec.datetime and _local_datetime(value, UK) is None:
        return "must be a date and time in ISO 8601, e.g. 2026-03-14T10:30"
    if not spec.enum and not value.strip():
        return "must not be empty"
    return None


def _local_datetime(text: str, zone: tzinfo) -> datetime | None:
    """An ISO 8601 time: with an offset as given, without one on the UK wall clock."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 or 9999 shifted past the calendar's ends
        return None


def callback_instant(tool: ParsedTool, windows: CallingWindows) -> datetime | None:
    """A `schedule_callback` call's time as a UTC instant (naive times are the rules' wall
    clock), or None when it has none."""
    if tool.name != SCHEDULE_CALLBACK:
        return None
    return _local_datetime(tool.arguments.get("at", ""), windows.zone)


@dataclass(frozen=True)
class ConversationFacts:
    """The claimant's state a tool call is checked against, as the conversation stands."""

    signed: bool
    opted_out: bool
    missing_documents: int
    magic_links_sent: int = 0
    callback_at: datetime | None = None  # a callback booked in this conversation
    sms_allowed: bool = True  # a number, and SMS consent
    email_known: bool = True


def tool_refusal(
    tool: ParsedTool, state: ConversationFacts, rules: DiallerRules, now: datetime
) -> str | None:
    """Why this call may not run now (told to the model instead), or None when it may."""
    if tool.name == SEND_MAGIC_LINK:
        return _link_refusal(tool.arguments, state)
    if tool.name == SCHEDULE_CALLBACK:
        return _callback_refusal(tool, rules.calling_windows, now)
    if tool.name == RECORD_OUTCOME:
        return _outcome_refusal(tool.arguments, state)
    return None  # hand_off and claim_context are always allowed


def _link_refusal(arguments: dict[str, str], state: ConversationFacts) -> str | None:
    if state.opted_out:
        return "The claimant has opted out of contact: no link can be sent."
    if state.magic_links_sent > 0:
        return "A link was already sent in this conversation; another cannot be sent."
    purpose, channel = arguments.get("purpose"), arguments.get("channel")
    if purpose == "signature" and state.signed:
        return "The claimant has already signed: no signature link is needed."
    if purpose == "documents" and state.missing_documents <= 0:
        return "No documents are missing: no documents link is needed."
    if channel == "sms" and not state.sms_allowed:
        return "A link cannot be sent by SMS to this claimant; offer email instead."
    if channel == "email" and not state.email_known:
        return "There is no email address for this claimant; offer SMS instead."
    return None


def _callback_refusal(tool: ParsedTool, windows: CallingWindows, now: datetime) -> str | None:
    """The agents' rule (`domain.callback_booking`): in the future, within the days
    offered, inside the calling windows; the refusal names the next times allowed."""
    at = callback_instant(tool, windows)
    if at is None:
        return "That is not a date and time."
    refused = refuse_callback(at, now, windows, days_ahead=CALLBACK_DAYS)
    if refused is None:
        return None
    times = [format_local(t, windows.zone, now) for t in refused.next_allowed]
    suggestion = f" Times that work: {_list(times)} (UK time)." if times else ""
    return refused.reason + suggestion


def _outcome_refusal(arguments: dict[str, str], state: ConversationFacts) -> str | None:
    outcome = arguments.get("outcome")
    if outcome == "callback_requested" and state.callback_at is None:
        return "Book the callback with schedule_callback first, then record callback_requested."
    if outcome == "promised_to_sign" and state.signed:
        return "The claimant has already signed."
    if outcome == "promised_documents" and state.missing_documents <= 0:
        return "No documents are missing."
    return None


def tool_effect(tool: ParsedTool) -> str:
    """What a tool call would do, in words (`dialler ai try` shows it instead of doing it)."""
    args = tool.arguments
    if tool.name == SEND_MAGIC_LINK:
        return f"send a magic link for {args['purpose']} by {args['channel']}"
    if tool.name == SCHEDULE_CALLBACK:
        return f"book a callback at {args['at']} (UK time)"
    if tool.name == RECORD_OUTCOME:
        return f"record the outcome {args['outcome']} ({args['note']})"
    if tool.name == HAND_OFF:
        return f"hand off to a person ({args['reason']}): {args['summary']}"
    return "look up the claimant's claims"


# --- the model's messages -------------------------------------------------------------------


def model_messages(
    system: str, steps: Sequence[ConversationStep], correction: str | None = None
) -> list[dict[str, Any]]:
    """The chat messages for one model call: the system prompt, the conversation so far and,
    on a second attempt after malformed output, the correction."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for step in steps:
        if step.kind is StepKind.CLAIMANT:
            messages.append({"role": "user", "content": step.text})
        elif step.kind is StepKind.ASSISTANT:
            message: dict[str, Any] = {"role": "assistant", "content": step.text or None}
            if step.tool_calls:
                message["tool_calls"] = [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                    for call in step.tool_calls
                ]
            elif message["content"] is None:
                message["content"] = ""
            messages.append(message)
        else:
            messages.append(
                {"role": "tool", "tool_call_id": step.tool_call_id or "", "content": step.text}
            )
    if correction:
        messages.append({"role": "system", "content": correction})
    return messages


def correction_for(problem: str) -> str:
    """What the model is told after output that failed its schema (it gets one more try)."""
    return (
        f"Your last reply could not be used: {problem}. Reply again, calling the tools "
        "exactly as their schemas say, or reply with text only."
    )


def transcript_text(steps: Sequence[ConversationStep]) -> str:
    """The conversation as the call's transcript: one line per thing said or done."""
    lines: list[str] = []
    for step in steps:
        if step.kind is StepKind.CLAIMANT:
            lines.append(f"Claimant: {step.text}")
        elif step.kind is StepKind.ASSISTANT:
            if step.text.strip():
                lines.append(f"AI: {step.text}")
        else:
            lines.append(f"[{step.tool_name or 'tool'}] {step.text}")
    return "\n".join(lines)


def summarise_for_person(
    steps: Sequence[ConversationStep], reason: HandoffReason, model_summary: str | None = None
) -> str:
    """The summary a person reads when they take over: the model's own when it gave one,
    otherwise why the AI stopped and the claimant's last words."""
    why = {
        HandoffReason.ASKED_FOR_PERSON: "the claimant asked for a person",
        HandoffReason.SENSITIVE: "a complaint, bereavement or vulnerability came up",
        HandoffReason.COULD_NOT_HELP: "the AI could not help",
        HandoffReason.MODEL_FAILED: "the AI model failed",
        HandoffReason.LIMIT_REACHED: "the conversation reached its turn or time limit",
    }[reason]
    parts = [f"Handed over by the AI: {why}."]
    if model_summary and model_summary.strip():
        parts.append(clean_text(model_summary, 1_000))
    said = [s.text for s in steps if s.kind is StepKind.CLAIMANT and s.text.strip()]
    if said:
        parts.append(f'The claimant last said: "{clean_text(said[-1], 300)}"')
    turns = sum(1 for s in steps if s.kind is StepKind.CLAIMANT)
    parts.append(f"({turns} claimant turn{'s' if turns != 1 else ''}.)")
    return " ".join(parts)
