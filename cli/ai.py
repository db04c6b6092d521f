"""`dialler ai try USER_ID`: an SMS-style conversation with the configured model in the
terminal, a person typing the claimant's replies, so an operator sees how the AI agent behaves
before enabling it.

The same system prompt (this claimant's brief only), tools, parsing and refusal rules as the
AI worker (`domain.ai_conversation`, `activities.ai_agent.reply_of`): malformed output is
retried once with the problem named, then the conversation would go to a person. Tool calls
are shown and not carried out ("would send a magic link ..."): nothing is sent, dialled,
booked or recorded, and no conversation is written. `claim_context` reads the claimant's
claims, as it does for real.

Exit codes: 0 the conversation ended; 1 the model failed (unreachable, timed out, refused
the request); 2 bad input (no model configured, no such claimant).
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import click
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.ai_agent import brief_of, context_of, reply_of
from adapters import consents
from adapters.ai_model import ChatModel, ModelConfig, ModelRejected, ModelUnavailable, model_config
from adapters.databases import dialler_engine, replica_engine
from adapters.replica_reader import ClaimantRows, ReplicaReader
from adapters.rules_file import rules_source
from adapters.suppressions import suppression_status
from cli.common import settings_or_exit
from config.settings import Settings
from domain import ai_conversation as talk
from domain.phones import to_e164
from domain.rules import DiallerRules
from domain.sms import Keyword, keyword_of
from schemas.ai import AiChannel, ConversationStep, ModelReply, StepKind
from schemas.enums import ConsentChannel, Queue

EXIT_MODEL_FAILED = 1
EXIT_BAD_INPUT = 2
MAX_TOOL_ROUNDS = 4  # model -> tools -> model within one claimant turn, as the workflow
NOT_CONFIGURED = (
    "no AI model configured: set OPENAI_MODEL (and OPENAI_BASE_URL and OPENAI_API_KEY for "
    "the server) to try the AI agent"
)


class _Ended(Exception):
    """The conversation reached its end; the message says how."""


@dataclass
class _Session:
    """The state the real contact keeps: the conversation so far and what its tools did."""

    rows: ClaimantRows
    facts: talk.ConversationFacts
    rules: DiallerRules
    system: str
    steps: list[ConversationStep] = field(default_factory=list)
    turns: int = 0


@click.group()
def ai() -> None:
    """The AI agent: try it on a claimant before enabling it."""


@ai.command("try")
@click.argument("user_id", type=click.IntRange(min=1))
@click.option(
    "--queue",
    type=click.Choice([q.value for q in Queue]),
    default=None,
    help="Why we are in touch (default: unsigned, or outstanding once signed).",
)
def try_ai(user_id: int, queue: str | None) -> None:
    """Talk to the AI agent as claimant USER_ID would, by SMS. Nothing is sent or kept."""
    settings = settings_or_exit()
    config = model_config(settings)
    if config is None:
        click.echo(f"Error: {NOT_CONFIGURED}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    sys.exit(asyncio.run(_try(settings, config, user_id, queue)))


async def _try(settings: Settings, config: ModelConfig, user_id: int, queue: str | None) -> int:
    dialler = dialler_engine(settings, pool_size=1)
    replica = replica_engine(settings, pool_size=1)
    model = ChatModel(config)
    try:
        session = await _load(settings, dialler, replica, user_id, queue)
        if session is None:
            click.echo(f"Error: claimant {user_id} is not in the replica", err=True)
            return EXIT_BAD_INPUT
        click.echo(
            f"Trying the AI agent ({config.model}) with claimant {user_id} by SMS. Type the "
            "claimant's replies; an empty line or Ctrl-D ends. Tool calls are shown, not "
            "carried out: nothing is sent, booked or recorded.\n"
        )
        return await _converse(session, model)
    finally:
        await model.close()
        await dialler.dispose()
        await replica.dispose()


async def _load(
    settings: Settings, dialler: AsyncEngine, replica: AsyncEngine, user_id: int, queue: str | None
) -> _Session | None:
    rows = await ReplicaReader(replica).claimant_with_claims(user_id)
    if rows.user is None:
        return None
    user = rows.user
    context = context_of(rows)
    queue = queue or (Queue.OUTSTANDING.value if context.signed else Queue.UNSIGNED.value)
    number = to_e164(user.phone_number)
    now = datetime.now(UTC)
    async with dialler.connect() as conn:
        status = await suppression_status(conn, user_id, number, user.email)
        records = await consents.records_of(conn, user_id, rows.consents)
    in_force = consents.in_force(records, now)
    facts = talk.ConversationFacts(
        signed=context.signed,
        opted_out=status.suppressed,
        missing_documents=len(context.missing_documents),
        sms_allowed=number is not None and ConsentChannel.SMS.value in in_force,
        email_known=bool(user.email),
    )
    rules = await rules_source(dialler, settings.rules_file).current()
    brief = brief_of(rows, queue)
    session = _Session(rows, facts, rules, talk.system_prompt(brief, AiChannel.SMS, now))
    opening = talk.opening_line(AiChannel.SMS, queue, brief.first_name)
    session.steps.append(ConversationStep(StepKind.ASSISTANT, opening))
    click.echo(f"AI: {opening}")
    return session


async def _converse(session: _Session, model: ChatModel) -> int:
    while True:
        try:
            said = click.prompt("Claimant", default="", show_default=False, prompt_suffix="> ")
        except click.Abort:  # Ctrl-D / end of input
            said = ""
        if not said.strip():
            click.echo("(conversation ended)")
            return 0
        if keyword_of(said) is Keyword.STOP:
            click.echo(
                "(STOP: the claimant is opted out by the fixed rules, without a model call; "
                "the conversation ends)"
            )
            return 0
        session.turns += 1
        session.steps.append(ConversationStep(StepKind.CLAIMANT, said))
        if session.turns > session.rules.ai.max_turns:
            click.echo(f"AI: {talk.HANDOFF_LINE}")
            click.echo("(the turn limit is reached: a person would take over)")
            return 0
        try:
            await _answer(session, model)
        except _Ended as ended:
            click.echo(f"({ended})")
            return 0
        except (ModelUnavailable, ModelRejected) as error:
            click.echo(f"Error: {error} (a person would take over)", err=True)
            return EXIT_MODEL_FAILED


async def _answer(session: _Session, model: ChatModel) -> None:
    """One claimant turn: the model, its tools, the model again... as the workflow runs it."""
    correction: str | None = None
    for _ in range(MAX_TOOL_ROUNDS):
        messages = talk.model_messages(session.system, session.steps, correction)
        completion = await model.complete(messages, tools=talk.TOOLS)
        reply = reply_of(completion)
        click.echo(
            f"  · model: {completion.latency_ms} ms, "
            f"{completion.prompt_tokens} + {completion.completion_tokens} tokens"
        )
        if reply.refused:
            click.echo(f"AI: {talk.HANDOFF_LINE}")
            raise _Ended("the model refused: a person would take over")
        if reply.malformed is not None:
            click.echo(f"  · malformed output: {reply.malformed}")
            if correction is not None:
                click.echo(f"AI: {talk.HANDOFF_LINE}")
                raise _Ended("malformed twice: a person would take over")
            correction = talk.correction_for(reply.malformed)
            continue
        correction = None
        _keep_reply(session, reply)
        if reply.say:
            click.echo(f"AI: {reply.say}")
        if not reply.tool_calls:
            return
        ending: _ToolUse | None = None
        for call in reply.tool_calls:
            use = _use(session, talk.ParsedTool(call.name, call.arguments))
            session.steps.append(
                ConversationStep(StepKind.TOOL, use.result, call.call_id, call.name)
            )
            ending = ending or (use if use.ends else None)
        if ending is not None:
            if not reply.say:
                click.echo(f"AI: {talk.HANDOFF_LINE if ending.hands_off else talk.GOODBYE}")
            raise _Ended(ending.ends)
    click.echo(f"AI: {talk.HANDOFF_LINE}")
    raise _Ended("the model went round in circles: a person would take over")


def _keep_reply(session: _Session, reply: ModelReply) -> None:
    session.steps.append(
        ConversationStep(
            StepKind.ASSISTANT,
            reply.say,
            tool_calls=[
                {
                    "id": c.call_id,
                    "name": c.name,
                    "arguments": json.dumps(c.arguments, sort_keys=True),
                }
                for c in reply.tool_calls
            ],
        )
    )


@dataclass(frozen=True)
class _ToolUse:
    result: str  # what the model is told
    ends: str = ""  # how the conversation ends (empty: it goes on)
    hands_off: bool = False


def _use(session: _Session, tool: talk.ParsedTool) -> _ToolUse:
    """A tool call checked with the real rules and carried out only in words."""
    refusal = talk.tool_refusal(tool, session.facts, session.rules, datetime.now(UTC))
    if refusal is not None:
        click.echo(f"  · tool {tool.name} refused: {refusal}")
        return _ToolUse(f"Refused: {refusal}")
    if tool.name == talk.CLAIM_CONTEXT:
        context = context_of(session.rows)
        answer = talk.context_answer(context.lenders, context.missing_documents, context.signed)
        click.echo(f"  · tool {tool.name}: looked up the claimant's claims")
        return _ToolUse(answer)
    click.echo(f"  · tool {tool.name}: would {talk.tool_effect(tool)} (not done)")
    args = tool.arguments
    if tool.name == talk.SEND_MAGIC_LINK:
        session.facts = replace(session.facts, magic_links_sent=session.facts.magic_links_sent + 1)
        return _ToolUse(f"A {args['purpose']} link was sent by {args['channel']}.")
    if tool.name == talk.SCHEDULE_CALLBACK:
        at = talk.callback_instant(tool, session.rules.calling_windows)
        session.facts = replace(session.facts, callback_at=at)
        return _ToolUse(f"Callback booked for {args['at']} (UK time).")
    if tool.name == talk.RECORD_OUTCOME:
        outcome = args["outcome"]
        return _ToolUse(f"Outcome recorded: {outcome}.", f"outcome {outcome} recorded")
    reason = args["reason"]
    return _ToolUse(
        "A colleague will take over.", f"handed off to a person ({reason})", hands_off=True
    )
