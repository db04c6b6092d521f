"""Claimants ringing back (issue 14): the TwiML for a call to the dialler's number, and the
simulated provider's side of such a call.

Twilio calls `/webhooks/twilio/inbound` when someone rings the number (set it as the
number's "A call comes in" webhook, `{PUBLIC_BASE_URL}/webhooks/twilio/inbound`, POST).
The answer (`web.blueprints.inbound_calls`) either says a message and hangs up, or rings an
agent's browser (`ring_agent_twiml`): the recording notice first (FCA CMCOB 2.3, the same
words as on our calls), then `<Dial record><Client>` to the agent's Voice SDK identity,
recording from answer in two channels. The agent's leg reports its progress to
`/webhooks/twilio/inbound/status`, the recording goes to the recording webhook every call
uses, and when the dial ends Twilio asks `/webhooks/twilio/inbound/dial-ended` what next (an
agent who did not answer: a message, and a shared callback). Every URL carries the call's
id and is signed with the rest of the request.

The agent's browser takes the call with the Voice SDK (softphone.js registers the device, so
its token allows incoming calls). Without Twilio, `SimulatedInbound` plays Twilio's part
against the same webhooks, signed the same way, in process: `dialler dev ring-back USER_ID`
rings, and the agent answers, lets it ring out or hangs up in the console.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from twilio.twiml.voice_response import Dial, VoiceResponse

from config.settings import Settings
from web.twilio_signature import public_url
from web.voice import (
    ENDED,
    LANGUAGE,
    RECORDING_NOTICE,
    RECORDING_PATH,
    RING_SECONDS,
    VOICE,
    SimulatedVoice,
    SimulationError,
    child_sid,
    identity_for,
    webhook_url,
)

INBOUND_PATH = "/webhooks/twilio/inbound"
INBOUND_STATUS_PATH = "/webhooks/twilio/inbound/status"
INBOUND_DIAL_PATH = "/webhooks/twilio/inbound/dial-ended"
# What Twilio reports in DialCallStatus when the agent never took the call.
NOT_TAKEN = frozenset({"no-answer", "busy", "failed"})


def ring_agent_twiml(settings: Settings, call_id: int, agent_id: int) -> str:
    """The notice, then the agent's browser rung, recording from when they answer."""
    response = VoiceResponse()
    response.say(RECORDING_NOTICE, voice=VOICE, language=LANGUAGE)
    dial = Dial(
        action=webhook_url(settings, INBOUND_DIAL_PATH, call_id),
        method="POST",
        record="record-from-answer-dual",
        recording_status_callback=webhook_url(settings, RECORDING_PATH, call_id),
        recording_status_callback_event="completed",
        recording_status_callback_method="POST",
        timeout=RING_SECONDS,
    )
    dial.client(
        identity_for(agent_id),
        status_callback=webhook_url(settings, INBOUND_STATUS_PATH, call_id),
        status_callback_event="initiated ringing answered completed",
        status_callback_method="POST",
    )
    response.append(dial)
    return str(response)


def message_twiml(message: str) -> str:
    """Say `message`, then hang up: no voicemail, nothing recorded."""
    response = VoiceResponse()
    response.say(message, voice=VOICE, language=LANGUAGE)
    response.hangup()
    return str(response)


def hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


@dataclass(frozen=True)
class RingPlan:
    """What an inbound call's TwiML told the provider to do."""

    said: list[str]  # the <Say> texts, in order
    client: str | None  # the Voice SDK identity rung, if any
    status_url: str | None  # the agent leg's status callback
    action_url: str | None  # where to ask when the dial ends
    recording_url: str | None  # the recording status callback


def read_ring(twiml: str) -> RingPlan:
    root = ET.fromstring(twiml)  # noqa: S314  (our own TwiML)
    said = [(say.text or "").strip() for say in root.iter("Say")]
    dial = root.find("Dial")
    client = dial.find("Client") if dial is not None else None
    if dial is None or client is None:
        return RingPlan(said, None, None, None, None)
    return RingPlan(
        said,
        (client.text or "").strip() or None,
        client.get("statusCallback"),
        dial.get("action"),
        dial.get("recordingStatusCallback"),
    )


@dataclass(frozen=True)
class SimulatedRing:
    call_sid: str  # the caller's leg
    plan: RingPlan


class SimulatedInbound(SimulatedVoice):
    """Twilio's side of a claimant's call to the dialler's number, against the app's own
    webhooks (in process, signed: `SimulatedVoice`'s posting). The caller's leg is the
    parent; the agent's browser leg its child (`web.voice.child_sid`)."""

    async def ring(self, from_number: str) -> SimulatedRing:
        """Someone rings the dialler's number from `from_number`: the inbound webhook says
        what happens; when it rings an agent, their leg starts ringing."""
        sid = "CA" + secrets.token_hex(16)
        ours = self._settings.twilio_from_number
        params = self._common() | {
            "CallSid": sid,
            "From": from_number,
            "Caller": from_number,
            "To": ours,
            "Called": ours,
            "CallStatus": "ringing",
            "Direction": "inbound",
        }
        answer = await self._post(public_url(self._settings, INBOUND_PATH), params)
        plan = read_ring(answer.text)
        if plan.status_url is not None:
            await self._agent(plan.status_url, sid, "initiated")
            await self._agent(plan.status_url, sid, "ringing")
        return SimulatedRing(sid, plan)

    async def agent_answers(self, call_id: int, parent_sid: str) -> None:
        """The agent takes the call in their browser."""
        url = webhook_url(self._settings, INBOUND_STATUS_PATH, call_id)
        await self._agent(url, parent_sid, "in-progress")

    async def agent_leg_ends(
        self, call_id: int, parent_sid: str, status: str, duration_seconds: int = 0
    ) -> str:
        """The agent's leg ends: `completed` (answered; the call leaves a recording),
        `no-answer` (it rang out), `canceled` (the caller hung up first). Then the dial
        ends and Twilio asks what next: that TwiML is returned."""
        if status not in ENDED:
            raise SimulationError(f"not an ending status: {status}")
        status_url = webhook_url(self._settings, INBOUND_STATUS_PATH, call_id)
        extra = {"CallDuration": str(duration_seconds)} if status == "completed" else {}
        await self._agent(status_url, parent_sid, status, extra)
        if status == "completed":
            await self._recording(call_id, parent_sid, duration_seconds)
        params = self._common() | {
            "CallSid": parent_sid,
            "CallStatus": "in-progress" if status != "canceled" else "completed",
            "Direction": "inbound",
            "DialCallSid": child_sid(parent_sid),
            "DialCallStatus": status,
            "DialCallDuration": str(duration_seconds),
        }
        answer = await self._post(webhook_url(self._settings, INBOUND_DIAL_PATH, call_id), params)
        return answer.text

    async def _agent(
        self, url: str, parent_sid: str, status: str, extra: dict[str, str] | None = None
    ) -> None:
        params = self._common() | {
            "CallSid": child_sid(parent_sid),
            "ParentCallSid": parent_sid,
            "CallStatus": status,
            "Direction": "outbound-dial",
            "Timestamp": format_datetime(datetime.now(UTC), usegmt=True),
            "CallbackSource": "call-progress-events",
        }
        await self._post(url, params | (extra or {}))
