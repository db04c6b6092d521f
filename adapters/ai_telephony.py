"""The AI agent's telephone: outbound calls placed through Twilio's REST API, and a live call
told to say goodbye and hang up. A simulated stand-in when Twilio is not configured.

Unlike an agent's browser call (`web.voice`), nobody's browser starts these: the AI worker
asks Twilio to dial the claimant, and Twilio fetches the conversation's TwiML from the AI
voice webhooks (`/webhooks/ai/voice/...?c=<conversation id>`), which speak the AI's lines and
gather what the claimant says. The calls are recorded, with answering-machine detection.

The Twilio client is synchronous, so its calls run in a worker thread; in tests it targets a
local fake through the same rebasing HTTP client as SMS (`adapters.messaging`). Errors carry
Twilio's code, never its message (which can quote the number).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode

from structlog import get_logger
from twilio.base.exceptions import TwilioRestException
from twilio.twiml.voice_response import VoiceResponse

from adapters.messaging import twilio_rest_client
from config.settings import Settings

log = get_logger(__name__)

AI_ANSWER_PATH = "/webhooks/ai/voice/answer"
AI_STATUS_PATH = "/webhooks/ai/voice/status"
RECORDING_PATH = "/webhooks/twilio/recording"  # shared with agents' calls (web.blueprints.calls)
STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]
VOICE = "Polly.Amy"  # British English, as agents' calls' notices
LANGUAGE = "en-GB"
RING_SECONDS = 30


class CallRejected(Exception):
    """Twilio refused the call for good (a bad number, a blocked destination...)."""

    def __init__(self, status: int, code: int | None) -> None:
        super().__init__(f"Twilio refused the call ({status}, error {code})")
        self.status = status
        self.code = code


class CallFailed(Exception):
    """Twilio answered with an error a retry may get past (5xx, 429): the call was not
    placed."""

    def __init__(self, status: int, code: int | None) -> None:
        super().__init__(f"Twilio could not place the call ({status}, error {code})")
        self.status = status
        self.code = code


@dataclass(frozen=True)
class CallUrls:
    answer: str
    status: str
    recording: str


def call_urls(settings: Settings, conversation_id: int, call_id: int) -> CallUrls:
    """The webhooks Twilio calls for this conversation's call (signed by Twilio against
    these public URLs)."""
    base = str(settings.public_base_url).rstrip("/")
    conversation = urlencode({"c": conversation_id})
    return CallUrls(
        answer=f"{base}{AI_ANSWER_PATH}?{conversation}",
        status=f"{base}{AI_STATUS_PATH}?{conversation}",
        recording=f"{base}{RECORDING_PATH}?{urlencode({'call_id': call_id})}",
    )


def goodbye_twiml(goodbye: str) -> str:
    response = VoiceResponse()
    response.say(goodbye, voice=VOICE, language=LANGUAGE)
    response.hangup()
    return str(response)


class CallPlacer(Protocol):
    @property
    def provider(self) -> str: ...

    @property
    def from_number(self) -> str: ...

    async def dial(self, to_number: str, urls: CallUrls) -> str:
        """Place the call; its SID. Raises `CallRejected` when Twilio refuses it for good,
        `CallFailed` when it answered with an error a retry may get past; anything else
        (the network) leaves unknown whether the call was placed."""
        ...

    async def say_goodbye(self, call_sid: str, goodbye: str) -> bool:
        """Make a live call say `goodbye` and hang up; False when it had already ended."""
        ...


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 409, 429)


class TwilioCalls:
    provider = "twilio"

    def __init__(self, settings: Settings) -> None:
        self._client = twilio_rest_client(settings, "TwilioCalls")
        self._from = settings.twilio_from_number

    @property
    def from_number(self) -> str:
        return self._from

    def _create(self, to_number: str, urls: CallUrls) -> str:
        try:
            call = self._client.calls.create(
                to=to_number,
                from_=self._from,
                url=urls.answer,
                method="POST",
                status_callback=urls.status,
                status_callback_event=STATUS_EVENTS,
                status_callback_method="POST",
                machine_detection="Enable",
                record=True,
                recording_status_callback=urls.recording,
                recording_status_callback_method="POST",
                timeout=RING_SECONDS,
            )
        except TwilioRestException as error:
            status = int(error.status)
            if _retryable(status):
                raise CallFailed(status, error.code) from None
            raise CallRejected(status, error.code) from None
        return str(call.sid)

    async def dial(self, to_number: str, urls: CallUrls) -> str:
        return await asyncio.to_thread(self._create, to_number, urls)

    def _update(self, call_sid: str, twiml: str) -> bool:
        try:
            self._client.calls(call_sid).update(twiml=twiml)
        except TwilioRestException as error:
            if _retryable(int(error.status)):
                raise
            # 21220: the call is not in progress (it ended); 404: no such call
            log.info("AI call already ended", status=int(error.status), code=error.code)
            return False
        return True

    async def say_goodbye(self, call_sid: str, goodbye: str) -> bool:
        return await asyncio.to_thread(self._update, call_sid, goodbye_twiml(goodbye))


@dataclass(frozen=True)
class SimulatedDial:
    sid: str
    to_number: str
    urls: CallUrls


@dataclass
class SimulatedCalls:
    """No Twilio: a call is recorded here and rings nowhere (the routing policy gives the
    AI no voice calls then; this serves development and tests)."""

    from_number: str = "+447700900000"
    dialled: list[SimulatedDial] = field(default_factory=list)
    goodbyes: list[tuple[str, str]] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    provider: str = "simulated"

    async def dial(self, to_number: str, urls: CallUrls) -> str:
        sid = "CAsim" + secrets.token_hex(15)[:29]  # 34 characters, like a Twilio SID
        self.dialled.append(SimulatedDial(sid, to_number, urls))
        log.info("AI call simulated (not dialled)", provider_sid=sid)
        return sid

    async def say_goodbye(self, call_sid: str, goodbye: str) -> bool:
        if call_sid in self.ended:
            return False
        self.goodbyes.append((call_sid, goodbye))
        self.ended.add(call_sid)
        return True


def call_placer(settings: Settings) -> CallPlacer:
    if settings.twilio_enabled:
        return TwilioCalls(settings)
    return SimulatedCalls(from_number=settings.twilio_from_number)
