"""Browser calling: Twilio Voice, or a simulated provider that drives the same webhooks.

With Twilio (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN set, plus an API key and a TwiML App
whose voice URL is `{PUBLIC_BASE_URL}/webhooks/twilio/voice`), the agent's browser gets an
access token (`access_token`) and connects with the Voice JS SDK, passing only the id of the
`calls` row the console created. Twilio then asks `/webhooks/twilio/voice` what to do: the
answer (`dial_twiml`) dials the number stored on that row (the claimant's phone, read from
the replica on the server), records from answer in two channels, and plays the recording
notice to the claimant when they pick up (FCA CMCOB 2.3) through the `<Number url>` hook
(`notice_twiml`), before the two sides are connected. Status and recording callbacks carry
the call id in their (signed) URLs.

Both legs report their progress to `/webhooks/twilio/call-status`: the claimant's leg
through the `<Number statusCallback>` (its `ParentCallSid` is the agent's leg), the agent's
leg through the TwiML App's Status Callback URL, which must be set to
`{PUBLIC_BASE_URL}/webhooks/twilio/call-status` (that callback carries no call id: the call
is found by the agent's leg's `CallSid`). The two legs together tell an abandoned call
(`domain.abandoned_calls`).

Without Twilio, `SimulatedVoice` plays Twilio's part: it POSTs the same webhooks, signed with
`web.twilio_signature.sign`, through the app itself (in process, over ASGI), so the
signature checks, the TwiML and the status bookkeeping are the very code that runs in
production. The agent picks what the claimant does (answers, does not answer, is busy) in
the simulated softphone. A completed call leaves a real recording: a WAV file of a second or
two of tone under RECORDINGS_DIR (ignored by git), played back like any other.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.twiml.voice_response import Dial, VoiceResponse

from adapters.recording_store import local_key_for, write_tone
from config.settings import Settings
from web.twilio_signature import public_url, sign

VOICE_PATH = "/webhooks/twilio/voice"
NOTICE_PATH = "/webhooks/twilio/voice/notice"
STATUS_PATH = "/webhooks/twilio/call-status"
RECORDING_PATH = "/webhooks/twilio/recording"

RECORDING_NOTICE = (
    "This call is recorded for quality, training and regulatory purposes. "
    "You are speaking with Resolve My Claim."
)
VOICE = "Polly.Amy"  # British English
LANGUAGE = "en-GB"
RING_SECONDS = 30
TOKEN_SECONDS = 3600
SIMULATED_RECORDING_SECONDS = 2  # the simulated provider's recordings: a short tone

# Twilio's call statuses in the order a call moves through them; the four endings share a
# rank, so a call that has ended never changes again (late or repeated callbacks are no-ops).
STATUS_RANK: dict[str, int] = {
    "initiated": 0,
    "queued": 1,
    "ringing": 2,
    "in-progress": 3,
    "completed": 4,
    "busy": 4,
    "no-answer": 4,
    "failed": 4,
    "canceled": 4,
}
ENDED = frozenset(s for s, rank in STATUS_RANK.items() if rank == 4)
STATUS_LABELS = {
    "initiated": "Dialling…",
    "queued": "Dialling…",
    "ringing": "Ringing…",
    "in-progress": "Connected",
    "completed": "Call ended",
    "busy": "Line busy",
    "no-answer": "No answer",
    "failed": "Call failed",
    "canceled": "Call cancelled",
}


AGENT_LEG = "agent"
CLAIMANT_LEG = "claimant"


def leg_of(form: dict[str, str], agent_leg_sid: str | None) -> str | None:
    """Which leg of the call a status callback is about (`agent_leg_sid`: the call's
    `provider_call_sid`, None until the voice webhook recorded it); None when it is about
    another call."""
    parent, sid = form.get("ParentCallSid"), form.get("CallSid")
    if parent:
        return CLAIMANT_LEG if agent_leg_sid in (None, parent) else None
    if sid and sid == agent_leg_sid:
        return AGENT_LEG
    return None


def identity_for(agent_id: int) -> str:
    """The agent's Voice SDK identity; Twilio reports it as `From=client:<identity>`."""
    return f"agent-{agent_id}"


def webhook_url(settings: Settings, path: str, call_id: int) -> str:
    return public_url(settings, f"{path}?{urlencode({'call_id': call_id})}")


def dial_twiml(settings: Settings, call_id: int, to_number: str) -> str:
    response = VoiceResponse()
    dial = Dial(
        caller_id=settings.twilio_from_number,
        record="record-from-answer-dual",
        recording_status_callback=webhook_url(settings, RECORDING_PATH, call_id),
        recording_status_callback_event="completed",
        recording_status_callback_method="POST",
        timeout=RING_SECONDS,
        answer_on_bridge=True,
    )
    dial.number(
        to_number,
        url=webhook_url(settings, NOTICE_PATH, call_id),
        method="POST",
        status_callback=webhook_url(settings, STATUS_PATH, call_id),
        status_callback_event="initiated ringing answered completed",
        status_callback_method="POST",
    )
    response.append(dial)
    return str(response)


def notice_twiml() -> str:
    """Played to the claimant when they answer, before the agent is connected."""
    response = VoiceResponse()
    response.say(RECORDING_NOTICE, voice=VOICE, language=LANGUAGE)
    return str(response)


def refuse_twiml(message: str) -> str:
    response = VoiceResponse()
    response.say(message, voice=VOICE, language=LANGUAGE)
    response.hangup()
    return str(response)


def access_token(settings: Settings, agent_id: int) -> str:
    """A Voice SDK token for this agent: outgoing calls through the TwiML App, and
    incoming calls to their identity (claimants ringing back, rung by the inbound webhook)."""
    token = AccessToken(
        settings.twilio_account_sid,
        settings.twilio_api_key_sid,
        settings.twilio_api_key_secret.get_secret_value(),
        identity=identity_for(agent_id),
        ttl=TOKEN_SECONDS,
    )
    token.add_grant(
        VoiceGrant(outgoing_application_sid=settings.twilio_twiml_app_sid, incoming_allow=True)
    )
    return str(token.to_jwt())


def parse_twilio_time(value: str | None) -> datetime:
    """Twilio's `Timestamp` (RFC 2822), or now when absent or malformed."""
    if value:
        try:
            parsed = parsedate_to_datetime(value)
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
        except (TypeError, ValueError):
            pass
    return datetime.now(UTC)


def child_sid(parent_sid: str) -> str:
    """The simulated claimant leg's SID, derived from the agent leg's."""
    return "CA" + hashlib.sha256(f"child:{parent_sid}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DialPlan:
    """The number the TwiML told the provider to dial (the simulator calls the webhooks by
    their own URLs)."""

    number: str


def read_dial(twiml: str) -> DialPlan | None:
    """The `<Dial><Number>` of a TwiML answer, or None if it does not dial (refused)."""
    root = ET.fromstring(twiml)  # noqa: S314  (our own TwiML)
    dial = root.find("Dial")
    number = dial.find("Number") if dial is not None else None
    if dial is None or number is None or not (number.text or "").strip():
        return None
    return DialPlan(number=(number.text or "").strip())


class SimulationError(Exception):
    """The simulated provider could not do what was asked; the message says why."""


class SimulatedVoice:
    """Twilio's side of a call, played against the app's own webhooks (in process)."""

    ACCOUNT_SID = "AC" + "0" * 32
    APPLICATION_SID = "AP" + "0" * 32

    def __init__(self, app: Any, settings: Settings) -> None:
        self._app = app
        self._settings = settings

    async def _post(self, url: str, params: dict[str, str]) -> httpx.Response:
        base = public_url(self._settings, "")
        if not url.startswith(base):
            raise SimulationError(f"webhook URL outside this app: {url}")
        path = url[len(base) :] or "/"
        headers = {"X-Twilio-Signature": sign(self._settings, url, params)}
        transport = httpx.ASGITransport(app=self._app, client=("simulated-twilio", 0))
        async with httpx.AsyncClient(transport=transport, base_url="http://simulated") as client:
            response = await client.post(path, data=params, headers=headers)
        if response.status_code >= 400:
            raise SimulationError(f"webhook {path} answered {response.status_code}")
        return response

    def _common(self) -> dict[str, str]:
        return {"AccountSid": self.ACCOUNT_SID, "ApiVersion": "2010-04-01"}

    async def place(self, call_id: int, agent_id: int) -> DialPlan:
        """The browser connects: ask the voice webhook what to do, start dialling."""
        parent = "CA" + secrets.token_hex(16)
        params = self._common() | {
            "ApplicationSid": self.APPLICATION_SID,
            "CallSid": parent,
            "CallStatus": "ringing",
            "Direction": "inbound",
            "From": f"client:{identity_for(agent_id)}",
            "Caller": f"client:{identity_for(agent_id)}",
            "To": "",
            "callId": str(call_id),
        }
        answer = await self._post(public_url(self._settings, VOICE_PATH), params)
        plan = read_dial(answer.text)
        if plan is None:
            raise SimulationError("the voice webhook refused to dial")
        await self._status(call_id, parent, "initiated")
        await self._status(call_id, parent, "ringing")
        return plan

    async def answer(self, call_id: int, parent_sid: str) -> None:
        """The claimant picks up: the notice plays to them, then the call is connected."""
        child = child_sid(parent_sid)
        params = self._common() | {
            "CallSid": child,
            "ParentCallSid": parent_sid,
            "CallStatus": "in-progress",
            "Direction": "outbound-dial",
        }
        await self._post(webhook_url(self._settings, NOTICE_PATH, call_id), params)
        await self._status(call_id, parent_sid, "in-progress")
        await self._agent_leg(call_id, parent_sid, "in-progress")

    async def end(
        self, call_id: int, parent_sid: str, status: str, duration_seconds: int = 0
    ) -> None:
        """The call ends (completed, no-answer, busy, canceled); a completed call that was
        answered leaves a recording."""
        if status not in ENDED:
            raise SimulationError(f"not an ending status: {status}")
        extra = {"CallDuration": str(duration_seconds)} if status == "completed" else {}
        await self._status(call_id, parent_sid, status, extra)
        # The agent's leg ends with the claimant's, bridged for as long as they talked (a
        # started second counts: the simulated notice takes no time, the bridge is at once).
        bridged = max(duration_seconds, 1) if status == "completed" else 0
        await self._agent_leg(call_id, parent_sid, "completed", {"CallDuration": str(bridged)})
        if status == "completed":
            await self._recording(call_id, parent_sid, duration_seconds)

    async def _recording(self, call_id: int, parent_sid: str, duration_seconds: int) -> None:
        """The call's recording, as Twilio's recording webhook reports it: a real, short
        audio file, so playback and retention work offline."""
        recording = "RE" + secrets.token_hex(16)
        path = self._settings.recordings_dir / local_key_for(recording)
        seconds = min(max(duration_seconds, 1), SIMULATED_RECORDING_SECONDS)
        try:
            await asyncio.to_thread(write_tone, path, seconds)
        except OSError as error:
            raise SimulationError(f"could not write the recording: {error}") from None
        params = self._common() | {
            "CallSid": parent_sid,
            "RecordingSid": recording,
            "RecordingUrl": f"https://simulated.invalid/recordings/{recording}",
            "RecordingStatus": "completed",
            "RecordingDuration": str(duration_seconds),
            "RecordingChannels": "2",
            "RecordingSource": "DialVerb",
        }
        await self._post(webhook_url(self._settings, RECORDING_PATH, call_id), params)

    async def drop(self, call_id: int, parent_sid: str) -> None:
        """The agent's leg ends before it was bridged (a browser closed, a network lost),
        and Twilio hangs up on the claimant, who had answered: an abandoned call."""
        await self._agent_leg(call_id, parent_sid, "completed", {"CallDuration": "0"})
        await self._status(call_id, parent_sid, "completed", {"CallDuration": "3"})

    async def _agent_leg(
        self, call_id: int, parent_sid: str, status: str, extra: dict[str, str] | None = None
    ) -> None:
        params = self._common() | {
            "CallSid": parent_sid,
            "CallStatus": status,
            "Direction": "inbound",
            "Timestamp": format_datetime(datetime.now(UTC), usegmt=True),
        }
        await self._post(webhook_url(self._settings, STATUS_PATH, call_id), params | (extra or {}))

    async def _status(
        self, call_id: int, parent_sid: str, status: str, extra: dict[str, str] | None = None
    ) -> None:
        params = self._common() | {
            "CallSid": child_sid(parent_sid),
            "ParentCallSid": parent_sid,
            "CallStatus": status,
            "Direction": "outbound-dial",
            "Timestamp": format_datetime(datetime.now(UTC), usegmt=True),
            "CallbackSource": "call-progress-events",
        }
        await self._post(webhook_url(self._settings, STATUS_PATH, call_id), params | (extra or {}))
