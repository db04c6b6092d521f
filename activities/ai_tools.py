"""Activities of the AI contact that check before they act: the `[ai]` limits in force, and
each tool call the model asks for, validated against the claimant's state as the databases
hold it now (`domain.ai_conversation.tool_refusal`) and recorded in the conversation's steps
whether it runs or is refused.

Built with its adapters (no module-level clients); one dataclass in, one out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.outreach import OutreachActivities
from adapters import ai_conversations
from adapters.rules_source import RulesSource, as_source
from domain import ai_conversation as talk
from domain.rules import DiallerRules
from domain.stages import pending_requirements
from schemas.ai import AiLimits, LimitsRequest, StepKind, ToolCheck, ToolVerdict
from schemas.enums import ConsentChannel
from schemas.outreach import ClaimantFacts, LoadFactsRequest


class AiToolActivities:
    def __init__(
        self, dialler: AsyncEngine, replica: AsyncEngine, rules: RulesSource | DiallerRules
    ) -> None:
        self._dialler = dialler
        self._rules = as_source(rules)
        # the claimant's facts are read exactly as the outreach workflow reads them
        self._facts = OutreachActivities(dialler, replica, self._rules)

    @activity.defn(name="ai_limits")
    async def limits(self, request: LimitsRequest) -> AiLimits:
        ai = (await self._rules.current()).ai
        return AiLimits(
            max_turns=ai.max_turns,
            call_time_limit_seconds=int(ai.call_time_limit.total_seconds()),
            sms_reply_window_seconds=int(ai.sms_reply_window.total_seconds()),
            answering_machine=ai.answering_machine,
        )

    @activity.defn(name="ai_check_tool")
    async def check_tool(self, request: ToolCheck) -> ToolVerdict:
        """Parse the call again (the history is not trusted to have held its shape), check it
        against the claimant's state and record it. A `schedule_callback` time comes back as
        a UTC instant."""
        call = request.call
        parsed = talk.parse_tool_call(call.name, json.dumps(call.arguments))
        if isinstance(parsed, talk.ToolProblem):
            verdict = ToolVerdict(call.name, dict(call.arguments), parsed.reason)
        else:
            verdict = await self._judge(parsed, request)
        async with self._dialler.begin() as conn:
            await ai_conversations.add_step(
                conn,
                request.conversation_id,
                StepKind.TOOL.value,
                verdict.refusal or verdict.result or None,
                tool_name=verdict.name[:64],
                detail={"arguments": verdict.arguments, "refused": verdict.refusal is not None},
            )
        return verdict

    async def _judge(self, parsed: talk.ParsedTool, request: ToolCheck) -> ToolVerdict:
        rules = await self._rules.current()
        now = datetime.now(UTC)
        arguments = dict(parsed.arguments)
        needs_state = parsed.name in (talk.SEND_MAGIC_LINK, talk.RECORD_OUTCOME)
        facts = await self._claimant(request.user_id) if needs_state else None
        state = _conversation_facts(facts, request)
        refusal = talk.tool_refusal(parsed, state, rules, now)
        result = ""
        if refusal is None and parsed.name == talk.SCHEDULE_CALLBACK:
            at = talk.callback_instant(parsed, rules.calling_windows)
            assert at is not None  # tool_refusal refuses a time it cannot read
            arguments["at"] = at.isoformat()
            result = f"Callback booked for {parsed.arguments['at']} (UK time)."
        return ToolVerdict(parsed.name, arguments, refusal, result)

    async def _claimant(self, user_id: int) -> ClaimantFacts:
        return await self._facts.load_facts(LoadFactsRequest(user_id))


def _conversation_facts(facts: ClaimantFacts | None, request: ToolCheck) -> talk.ConversationFacts:
    if facts is None:  # a tool that does not depend on the claimant's state
        return talk.ConversationFacts(
            signed=False,
            opted_out=False,
            missing_documents=0,
            magic_links_sent=request.magic_links_sent,
            callback_at=request.callback_at,
        )
    return talk.ConversationFacts(
        signed=facts.signed,
        opted_out=facts.opted_out,
        missing_documents=len(pending_requirements(facts)),
        magic_links_sent=request.magic_links_sent,
        callback_at=request.callback_at,
        sms_allowed=facts.phone_key is not None
        and ConsentChannel.SMS.value in facts.consent_channels,
    )
