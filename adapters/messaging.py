"""SMS and email providers: Twilio and SendGrid, or local stand-ins when not configured.

`sms_sender(settings)` gives `TwilioSms` when a Twilio account SID and auth token are set,
otherwise `SimulatedSms`; `email_sender(settings)` gives `SendGridEmail` when a SendGrid key is
set, otherwise `OutboxEmail` (one `.eml` file per message). Both vendor clients are
synchronous, so calls run in a worker thread. Credentials are never logged, and the vendor
libraries' request logging (which would include message bodies and, for SendGrid, the API key
at DEBUG) is held at WARNING.

A provider that refuses a message for good (bad number, unsubscribed address, bad request)
raises `DeliveryRejected`: retrying cannot help. Anything else (network, 5xx, 429) propagates
as is and may be retried.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from python_http_client.exceptions import (  # type: ignore[import-untyped]
    HTTPError as SendGridHTTPError,
)
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail
from structlog import get_logger
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response as TwilioResponse
from twilio.rest import Client as TwilioClient

from config.settings import Settings

log = get_logger(__name__)

PROVIDER_TIMEOUT_SECONDS = 15.0
SMS_STATUS_CALLBACK_PATH = "/webhooks/twilio/sms-status"
_QUIET_LOGGERS = ("twilio.http_client", "python_http_client", "python_http_client.client")


def _quiet_vendor_loggers() -> None:
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))


def _base(url: object) -> str:
    """A configured URL without its trailing slash (pydantic adds one to a bare host)."""
    return str(url).rstrip("/")


class DeliveryRejected(Exception):
    """The provider refused the message for good; sending it again cannot succeed."""

    def __init__(self, provider: str, status: int, reason: str) -> None:
        super().__init__(f"{provider} rejected the message ({status}): {reason}")
        self.provider = provider
        self.status = status
        self.reason = reason


def _permanent(status: int) -> bool:
    return 400 <= status < 500 and status not in (408, 409, 429)


# --- SMS ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmsReceipt:
    provider: str  # "twilio" or "simulated"
    sid: str
    status: str
    from_number: str


class SmsSender(Protocol):
    @property
    def provider(self) -> str: ...

    @property
    def from_number(self) -> str: ...

    async def send(self, to_number: str, body: str) -> SmsReceipt: ...


class RebasedTwilioHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Sends what the Twilio client addresses to `https://*.twilio.com` to another base URL
    (a local fake in tests). Everything else is the stock client."""

    def __init__(self, base_url: str, timeout: float = PROVIDER_TIMEOUT_SECONDS) -> None:
        super().__init__(timeout=timeout)
        self.base_url = _base(base_url)

    def rebase(self, url: str) -> str:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host != "twilio.com" and not host.endswith(".twilio.com"):
            return url
        target = urlsplit(self.base_url)
        path = target.path.rstrip("/") + parts.path
        return urlunsplit((target.scheme, target.netloc, path, parts.query, parts.fragment))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> TwilioResponse:
        return super().request(method, self.rebase(url), *args, **kwargs)


def twilio_rest_client(settings: Settings, user: str) -> TwilioClient:
    """The Twilio REST client for `user` (the class that needs it, named in the error): at
    TWILIO_BASE_URL when set (the tests' fakes), else Twilio, with the providers' timeout."""
    if not settings.twilio_enabled:
        raise ValueError(f"{user} needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
    _quiet_vendor_loggers()
    http_client = (
        RebasedTwilioHttpClient(str(settings.twilio_base_url))
        if settings.twilio_base_url is not None
        else TwilioHttpClient(timeout=PROVIDER_TIMEOUT_SECONDS)
    )
    return TwilioClient(
        settings.twilio_account_sid,
        settings.twilio_auth_token.get_secret_value(),
        http_client=http_client,
    )


class TwilioSms:
    provider = "twilio"

    def __init__(self, settings: Settings) -> None:
        self._client = twilio_rest_client(settings, "TwilioSms")
        self._from = settings.twilio_from_number
        self.status_callback = _base(settings.public_base_url) + SMS_STATUS_CALLBACK_PATH

    @property
    def from_number(self) -> str:
        return self._from

    def _create(self, to_number: str, body: str) -> SmsReceipt:
        try:
            message = self._client.messages.create(
                to=to_number,
                from_=self._from,
                body=body,
                status_callback=self.status_callback,
            )
        except TwilioRestException as error:
            status = int(error.status)
            if _permanent(status):
                # only the code: Twilio's text can quote the phone number
                reason = f"Twilio error {error.code}"
                raise DeliveryRejected(self.provider, status, reason) from None
            raise
        return SmsReceipt(
            provider=self.provider,
            sid=str(message.sid),
            status=str(message.status or "queued"),
            from_number=self._from,
        )

    async def send(self, to_number: str, body: str) -> SmsReceipt:
        return await asyncio.to_thread(self._create, to_number, body)


@dataclass(frozen=True)
class SimulatedMessage:
    sid: str
    to_number: str
    from_number: str
    body: str


@dataclass
class SimulatedSms:
    """No credentials: the message is recorded here (and by the caller in `sms_messages`) with
    status "sent" and goes nowhere. Nothing claims it was delivered."""

    from_number: str = "+447700900000"
    sent: list[SimulatedMessage] = field(default_factory=list)
    provider: str = "simulated"

    async def send(self, to_number: str, body: str) -> SmsReceipt:
        sid = "SMsim" + secrets.token_hex(15)[:29]  # 34 characters, like a Twilio SID
        self.sent.append(SimulatedMessage(sid, to_number, self.from_number, body))
        log.info("sms simulated (not sent)", provider_sid=sid)
        return SmsReceipt(
            provider=self.provider, sid=sid, status="sent", from_number=self.from_number
        )


# --- email -------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingEmail:
    to: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class EmailReceipt:
    provider: str  # "sendgrid" or "outbox"
    message_id: str | None


class EmailSender(Protocol):
    @property
    def provider(self) -> str: ...

    async def send(self, email: OutgoingEmail) -> EmailReceipt: ...


class SendGridEmail:
    provider = "sendgrid"

    def __init__(self, settings: Settings) -> None:
        if not settings.sendgrid_enabled:
            raise ValueError("SendGridEmail needs SENDGRID_API_KEY")
        _quiet_vendor_loggers()
        host = _base(settings.sendgrid_host or "https://api.sendgrid.com")
        self._client = SendGridAPIClient(settings.sendgrid_api_key.get_secret_value(), host=host)
        self._client.client.timeout = PROVIDER_TIMEOUT_SECONDS
        self._from = settings.email_from

    def _post(self, email: OutgoingEmail) -> EmailReceipt:
        mail = Mail(
            from_email=self._from,
            to_emails=email.to,
            subject=email.subject,
            plain_text_content=email.text,
            html_content=email.html,
        )
        try:
            response = self._client.send(mail)
        except SendGridHTTPError as error:
            status = int(error.status_code)
            if _permanent(status):
                raise DeliveryRejected(self.provider, status, str(error.reason)) from None
            raise
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return EmailReceipt(provider=self.provider, message_id=message_id)

    async def send(self, email: OutgoingEmail) -> EmailReceipt:
        return await asyncio.to_thread(self._post, email)


class OutboxEmail:
    """No SendGrid key: each message becomes an `.eml` file in `EMAIL_OUTBOX_DIR`, readable
    by any mail client. The files hold working links, so they are private to the owner."""

    provider = "outbox"

    def __init__(self, outbox_dir: Path, from_address: str) -> None:
        self.outbox_dir = outbox_dir
        self._from = from_address

    def _write(self, email: OutgoingEmail) -> EmailReceipt:
        now = datetime.now(UTC)
        message = EmailMessage()
        message["From"] = self._from
        message["To"] = email.to
        message["Subject"] = email.subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = make_msgid(domain=self._from.rpartition("@")[2] or None)
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")

        self.outbox_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{now:%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}.eml"
        path = self.outbox_dir / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(message.as_bytes())
        log.info("email written to the outbox (not sent)", file=name)
        return EmailReceipt(provider=self.provider, message_id=name)

    async def send(self, email: OutgoingEmail) -> EmailReceipt:
        return await asyncio.to_thread(self._write, email)


# --- factories ---------------------------------------------------------------------------


def sms_sender(settings: Settings) -> SmsSender:
    if settings.twilio_enabled:
        return TwilioSms(settings)
    log.info("TWILIO_ACCOUNT_SID is empty: SMS are simulated, nothing is sent")
    return SimulatedSms(from_number=settings.twilio_from_number)


def email_sender(settings: Settings) -> EmailSender:
    if settings.sendgrid_enabled:
        return SendGridEmail(settings)
    log.info(
        "SENDGRID_API_KEY is empty: email goes to the local outbox",
        dir=str(settings.email_outbox_dir),
    )
    return OutboxEmail(settings.email_outbox_dir, settings.email_from)
