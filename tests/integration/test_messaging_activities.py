"""Messaging activities against the real dialler database, the local providers, and the real
Twilio and SendGrid client libraries talking to small fake servers."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import AnyHttpUrl, SecretStr
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.messaging import MessagingActivities
from adapters.messaging import (
    EmailSender,
    OutboxEmail,
    SendGridEmail,
    SimulatedSms,
    SmsSender,
    TwilioSms,
    email_sender,
    sms_sender,
)
from config.settings import Settings
from domain.magic_links import hash_token
from schemas import dialler_db as db
from schemas.enums import LinkChannel
from schemas.messaging import CreateMagicLink, SendSms
from tests.fake_http import serving

PUBLIC = "https://dialler.example.test"
LINK = re.compile(re.escape(PUBLIC) + r"/m/([A-Za-z0-9_-]+)")
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "fake-auth-token-0123456789"

_user_ids = iter(range(910_000, 920_000))


def _new_user() -> int:
    return next(_user_ids)


@pytest.fixture
def messaging_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "public_base_url": AnyHttpUrl(PUBLIC),
            "email_outbox_dir": tmp_path / "outbox",
            "magic_link_ttl_minutes": 45,
        }
    )


def _activities(
    engine: AsyncEngine, settings: Settings, sms: SmsSender, mail: EmailSender | None = None
) -> MessagingActivities:
    mail = mail or OutboxEmail(settings.email_outbox_dir, settings.email_from)
    return MessagingActivities(engine, sms, mail, settings)


async def _agent(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(email=f"{uuid.uuid4().hex}@agents.test", display_name="Test", role="agent")
            .returning(db.agents.c.id)
        )
    assert agent_id is not None
    return int(agent_id)


async def _rows(engine: AsyncEngine, table: Any, *where: Any) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(table).where(*where))
        return [dict(row._mapping) for row in result]


async def _audit(engine: AsyncEngine, link_id: int) -> dict[str, Any]:
    rows = await _rows(
        engine,
        db.audit_log,
        db.audit_log.c.action == "magic_link_sent",
        db.audit_log.c.detail["link_id"].as_integer() == link_id,
    )
    assert len(rows) == 1
    return rows[0]


def _all_text(row: dict[str, Any]) -> str:
    return " ".join(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row.values())


# --- SMS ---------------------------------------------------------------------------------


async def test_send_sms_is_stored_as_outbound(
    dialler_db: AsyncEngine, messaging_settings: Settings
) -> None:
    sms = SimulatedSms(from_number="+447700900001")
    acts = _activities(dialler_db, messaging_settings, sms)
    agent_id, user_id = await _agent(dialler_db), _new_user()

    sent = await ActivityEnvironment().run(
        acts.send_sms, SendSms(user_id, "+447700900123", "Hello from RMC", agent_id)
    )

    assert sent.status == "sent"
    assert sent.provider_sid.startswith("SMsim") and len(sent.provider_sid) == 34
    [row] = await _rows(dialler_db, db.sms_messages, db.sms_messages.c.id == sent.message_id)
    assert row["user_id"] == user_id
    assert row["direction"] == "outbound"
    assert row["to_number"] == "+447700900123"
    assert row["from_number"] == "+447700900001"
    assert row["body"] == "Hello from RMC"
    assert row["status"] == "sent"
    assert row["provider_sid"] == sent.provider_sid
    assert row["agent_id"] == agent_id
    assert [m.body for m in sms.sent] == ["Hello from RMC"]


async def test_nothing_is_sent_to_a_suppressed_claimant(
    dialler_db: AsyncEngine, messaging_settings: Settings
) -> None:
    sms = SimulatedSms()
    acts = _activities(dialler_db, messaging_settings, sms)
    user_id = _new_user()
    async with dialler_db.begin() as conn:
        await conn.execute(
            insert(db.suppressions).values(user_id=user_id, reason="sms_stop", source="test")
        )

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(acts.send_sms, SendSms(user_id, "+447700900124", "Hi"))
    assert raised.value.type == "Suppressed"
    assert raised.value.non_retryable
    with pytest.raises(ApplicationError):
        await ActivityEnvironment().run(
            acts.create_magic_link,
            CreateMagicLink(user_id, LinkChannel.EMAIL, "signature", to_email="a@b.test"),
        )
    assert sms.sent == []
    assert await _rows(dialler_db, db.sms_messages, db.sms_messages.c.user_id == user_id) == []
    assert not messaging_settings.email_outbox_dir.exists()


async def test_a_suppressed_number_blocks_sms_to_any_claimant(
    dialler_db: AsyncEngine, messaging_settings: Settings
) -> None:
    sms = SimulatedSms()
    acts = _activities(dialler_db, messaging_settings, sms)
    async with dialler_db.begin() as conn:
        await conn.execute(
            insert(db.suppressions).values(
                phone_number="+447700900666", reason="sms_stop", source="test"
            )
        )
    with pytest.raises(ApplicationError, match="opted out"):
        await ActivityEnvironment().run(acts.send_sms, SendSms(_new_user(), "+447700900666", "Hi"))
    assert sms.sent == []


async def test_a_start_after_a_stop_lets_messages_through_again(
    dialler_db: AsyncEngine, messaging_settings: Settings
) -> None:
    """Suppressions are append-only: the claimant's START is a later row that lifts their
    STOP (domain.suppressions); it never lifts any other opt-out."""
    sms = SimulatedSms()
    acts = _activities(dialler_db, messaging_settings, sms)
    user_id, number = _new_user(), "+447700900667"

    async def add(reason: str, **subject: Any) -> None:
        async with dialler_db.begin() as conn:
            await conn.execute(
                insert(db.suppressions).values(reason=reason, source="test", **subject)
            )

    await add("sms_stop", user_id=user_id, phone_number=number)
    with pytest.raises(ApplicationError, match="opted out"):
        await ActivityEnvironment().run(acts.send_sms, SendSms(user_id, number, "Hi"))
    await add("sms_start", user_id=user_id, phone_number=number)
    sent = await ActivityEnvironment().run(acts.send_sms, SendSms(user_id, number, "Welcome back"))
    assert sent.status == "sent"
    await add("do_not_call", user_id=user_id)
    await add("sms_start", user_id=user_id, phone_number=number)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(acts.send_sms, SendSms(user_id, number, "Hi"))
    assert raised.value.type == "Suppressed"
    assert [m.body for m in sms.sent] == ["Welcome back"]


# --- magic links ---------------------------------------------------------------------------


async def test_magic_link_by_sms_stores_only_the_hash(
    dialler_db: AsyncEngine, messaging_settings: Settings
) -> None:
    sms = SimulatedSms()
    acts = _activities(dialler_db, messaging_settings, sms)
    agent_id, user_id = await _agent(dialler_db), _new_user()

    created = await ActivityEnvironment().run(
        acts.create_magic_link,
        CreateMagicLink(
            user_id=user_id,
            channel=LinkChannel.SMS,
            purpose="signature",
            created_by=agent_id,
            to_number="+447700900125",
            first_name="Jane",
        ),
    )

    [delivered] = sms.sent
    match = LINK.search(delivered.body)
    assert match, delivered.body
    token = match.group(1)
    assert len(token) >= 43
    assert delivered.body.startswith("Hi Jane,")
    assert delivered.to_number == "+447700900125"
    assert created.delivered_via is LinkChannel.SMS
    assert created.provider_id == delivered.sid

    [link] = await _rows(dialler_db, db.magic_links, db.magic_links.c.id == created.link_id)
    assert link["token_hash"] == hash_token(token)
    assert link["user_id"] == user_id
    assert link["channel"] == "sms"
    assert link["purpose"] == "signature"
    assert link["created_by"] == agent_id
    assert link["used_at"] is None and link["clicks"] == 0
    assert link["expires_at"] == created.expires_at
    assert link["expires_at"] - link["created_at"] == timedelta(minutes=45)
    assert token not in _all_text(link)

    # the kept copy of the SMS is the message as sent, with the link redacted
    [kept] = await _rows(dialler_db, db.sms_messages, db.sms_messages.c.user_id == user_id)
    assert token not in _all_text(kept)
    assert f"/m/[link {created.link_id}]" in kept["body"]
    assert kept["provider_sid"] == delivered.sid
    assert kept["agent_id"] == agent_id

    audit = await _audit(dialler_db, created.link_id)
    assert audit["actor_type"] == "agent" and audit["actor_id"] == str(agent_id)
    assert audit["subject_type"] == "user" and audit["subject_id"] == str(user_id)
    assert audit["detail"]["channel"] == "sms"
    assert audit["detail"]["sms_message_id"] == kept["id"]
    audit_text = _all_text(audit)
    for secret_or_personal in (token, "+447700900125", "7700900125", "Jane"):
        assert secret_or_personal not in audit_text


async def test_magic_link_by_email_goes_to_the_outbox(
    dialler_db: AsyncEngine, messaging_settings: Settings
) -> None:
    acts = _activities(dialler_db, messaging_settings, SimulatedSms())
    user_id = _new_user()

    created = await ActivityEnvironment().run(
        acts.create_magic_link,
        CreateMagicLink(
            user_id=user_id,
            channel=LinkChannel.EMAIL,
            purpose="documents",
            to_email="claimant@example.test",
            first_name="Sam",
        ),
    )

    [path] = list(messaging_settings.email_outbox_dir.glob("*.eml"))
    assert created.provider_id == path.name
    assert path.stat().st_mode & 0o077 == 0  # the file holds a working link
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert message["To"] == "claimant@example.test"
    assert message["From"] == messaging_settings.email_from
    assert "documents" in message["Subject"]
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None and html_part is not None
    text, html = text_part.get_content(), html_part.get_content()
    match = LINK.search(text)
    assert match
    token = match.group(1)
    assert len(token) >= 43
    assert f'href="{PUBLIC}/m/{token}"' in html
    assert text.startswith("Hi Sam,")

    [link] = await _rows(dialler_db, db.magic_links, db.magic_links.c.id == created.link_id)
    assert link["token_hash"] == hash_token(token)
    assert link["channel"] == "email"
    assert link["created_by"] is None
    assert link["expires_at"] - link["created_at"] == timedelta(minutes=45)
    assert token not in _all_text(link)

    audit = await _audit(dialler_db, created.link_id)
    assert audit["actor_type"] == "workflow"
    assert audit["detail"]["provider"] == "outbox"
    audit_text = _all_text(audit)
    for secret_or_personal in (token, "claimant@example.test", "Sam"):
        assert secret_or_personal not in audit_text
    assert await _rows(dialler_db, db.sms_messages, db.sms_messages.c.user_id == user_id) == []


async def test_every_link_gets_a_fresh_token(
    dialler_db: AsyncEngine, messaging_settings: Settings
) -> None:
    sms = SimulatedSms()
    acts = _activities(dialler_db, messaging_settings, sms)
    request = CreateMagicLink(_new_user(), LinkChannel.SMS, "signature", to_number="+447700900126")
    for _ in range(3):
        await ActivityEnvironment().run(acts.create_magic_link, request)
    tokens = {m.group(1) for m in (LINK.search(s.body) for s in sms.sent) if m}
    assert len(tokens) == 3


@pytest.mark.parametrize(
    "request_",
    [
        CreateMagicLink(1, LinkChannel.SMS, "signature"),
        CreateMagicLink(1, LinkChannel.EMAIL, "signature", to_number="+447700900127"),
        CreateMagicLink(1, LinkChannel.SMS, "x" * 33, to_number="+447700900127"),
        CreateMagicLink(1, LinkChannel.SMS, " ", to_number="+447700900127"),
    ],
    ids=["sms-without-number", "email-without-address", "long-purpose", "blank-purpose"],
)
async def test_invalid_requests_fail_without_retry(
    dialler_db: AsyncEngine, messaging_settings: Settings, request_: CreateMagicLink
) -> None:
    sms = SimulatedSms()
    acts = _activities(dialler_db, messaging_settings, sms)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(acts.create_magic_link, request_)
    assert raised.value.type == "InvalidRequest"
    assert raised.value.non_retryable
    assert sms.sent == []


def test_factories_pick_the_local_providers_without_credentials(settings: Settings) -> None:
    assert isinstance(sms_sender(settings), SimulatedSms)
    assert isinstance(email_sender(settings), OutboxEmail)
    configured = settings.model_copy(
        update={
            "twilio_account_sid": TWILIO_SID,
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "sendgrid_api_key": SecretStr("SG.fake"),
        }
    )
    assert isinstance(sms_sender(configured), TwilioSms)
    assert isinstance(email_sender(configured), SendGridEmail)


# --- the real vendor clients against fake servers ------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeApi:
    """A tiny HTTP server in a thread: records requests, answers with a canned response."""

    status: int = 200
    payload: dict[str, Any] = field(default_factory=dict)
    reply_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            fake.requests.append(
                Recorded("POST", self.path, dict(self.headers.items()), self.rfile.read(length))
            )
            body = json.dumps(fake.payload).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in fake.reply_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with serving(Handler) as url:
        fake.url = url
        yield fake


def _twilio_settings(settings: Settings, fake: FakeApi) -> Settings:
    return settings.model_copy(
        update={
            "twilio_account_sid": TWILIO_SID,
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "twilio_from_number": "+447700900002",
            "twilio_base_url": AnyHttpUrl(fake.url),
        }
    )


async def test_twilio_client_posts_the_message_to_the_messages_resource(
    dialler_db: AsyncEngine, messaging_settings: Settings, fake_api: FakeApi
) -> None:
    fake_api.status = 201
    fake_api.payload = {
        "sid": "SM" + "f" * 32,
        "status": "queued",
        "account_sid": TWILIO_SID,
        "to": "+447700900128",
        "from": "+447700900002",
        "body": "Hello via Twilio",
    }
    settings = _twilio_settings(messaging_settings, fake_api)
    sms = sms_sender(settings)
    assert isinstance(sms, TwilioSms)
    acts = _activities(dialler_db, settings, sms)

    sent = await ActivityEnvironment().run(
        acts.send_sms, SendSms(_new_user(), "+447700900128", "Hello via Twilio")
    )

    [request] = fake_api.requests
    assert request.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    form = {key: values[0] for key, values in parse_qs(request.body.decode()).items()}
    assert form["To"] == "+447700900128"
    assert form["From"] == "+447700900002"
    assert form["Body"] == "Hello via Twilio"
    assert form["StatusCallback"] == f"{PUBLIC}/webhooks/twilio/sms-status"
    expected_auth = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"

    assert sent.provider_sid == "SM" + "f" * 32
    assert sent.status == "queued"
    [row] = await _rows(dialler_db, db.sms_messages, db.sms_messages.c.id == sent.message_id)
    assert row["provider_sid"] == sent.provider_sid
    assert row["status"] == "queued"
    assert row["from_number"] == "+447700900002"


async def test_twilio_refusal_fails_without_retry_and_is_kept(
    dialler_db: AsyncEngine, messaging_settings: Settings, fake_api: FakeApi
) -> None:
    fake_api.status = 400
    fake_api.payload = {
        "code": 21211,
        "message": "The 'To' number +447700900129 is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }
    settings = _twilio_settings(messaging_settings, fake_api)
    acts = _activities(dialler_db, settings, TwilioSms(settings))
    user_id = _new_user()

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(acts.send_sms, SendSms(user_id, "+447700900129", "Hi"))

    assert raised.value.type == "DeliveryRejected"
    assert raised.value.non_retryable
    assert "21211" in str(raised.value)
    assert "+447700900129" not in str(raised.value)  # no phone numbers in workflow history
    [row] = await _rows(dialler_db, db.sms_messages, db.sms_messages.c.user_id == user_id)
    assert row["status"] == "failed"
    assert row["provider_sid"] is None


async def test_sendgrid_client_posts_the_link_email(
    dialler_db: AsyncEngine, messaging_settings: Settings, fake_api: FakeApi
) -> None:
    fake_api.status = 202
    fake_api.reply_headers = {"X-Message-Id": "sg-message-1"}
    settings = messaging_settings.model_copy(
        update={
            "sendgrid_api_key": SecretStr("SG.fake-key"),
            "sendgrid_host": AnyHttpUrl(fake_api.url),
        }
    )
    mail = email_sender(settings)
    assert isinstance(mail, SendGridEmail)
    acts = _activities(dialler_db, settings, SimulatedSms(), mail)

    created = await ActivityEnvironment().run(
        acts.create_magic_link,
        CreateMagicLink(
            _new_user(), LinkChannel.EMAIL, "signature", to_email="claimant@example.test"
        ),
    )

    [request] = fake_api.requests
    assert request.path == "/v3/mail/send"
    assert request.headers["Authorization"] == "Bearer SG.fake-key"
    sent = json.loads(request.body)
    assert sent["personalizations"][0]["to"] == [{"email": "claimant@example.test"}]
    assert sent["from"]["email"] == settings.email_from
    contents = {part["type"]: part["value"] for part in sent["content"]}
    assert set(contents) == {"text/plain", "text/html"}
    match = LINK.search(contents["text/plain"])
    assert match and len(match.group(1)) >= 43
    assert created.provider_id == "sg-message-1"
    [link] = await _rows(dialler_db, db.magic_links, db.magic_links.c.id == created.link_id)
    assert link["token_hash"] == hash_token(match.group(1))
