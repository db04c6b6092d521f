"""A small fake of Twilio's Calls resource for the AI's calls: the real Twilio client
creates calls (`POST .../Calls.json`) and updates live ones (`POST .../Calls/CA....json`, e.g.
the goodbye TwiML of a call the workflow stops); texts (`POST .../Messages.json`) are
accepted too. Every request is kept, as Twilio's form."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

from pydantic import AnyHttpUrl, SecretStr

from config.settings import Settings
from tests.fake_http import serving

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "fake-auth-token-0123456789"
PUBLIC = "https://dialler.example.test"


@dataclass
class FakeCalls:
    url: str = ""
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    create_status: int = 201
    ended: set[str] = field(default_factory=set)
    count: int = 0
    created: list[str] = field(default_factory=list)  # the SIDs, in order

    def creates(self) -> list[dict[str, list[str]]]:
        """The create requests' forms, e.g. to read their Url or MachineDetection."""
        return [form for path, form in self.requests if path.endswith("/Calls.json")]

    def updates_of(self, sid: str) -> list[dict[str, list[str]]]:
        return [form for path, form in self.requests if path.endswith(f"/Calls/{sid}.json")]


def twilio_settings(settings: Settings, fake: FakeCalls, **values: Any) -> Settings:
    return settings.model_copy(
        update={
            "public_base_url": AnyHttpUrl(PUBLIC),
            "twilio_account_sid": TWILIO_SID,
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "twilio_from_number": "+447700900002",
            "twilio_base_url": AnyHttpUrl(fake.url),
            **values,
        }
    )


@contextmanager
def fake_twilio_calls() -> Iterator[FakeCalls]:
    fake = FakeCalls()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            fake.requests.append((self.path, form))
            prefix = f"/2010-04-01/Accounts/{TWILIO_SID}/Calls"
            if self.path == f"{prefix}.json":
                if fake.create_status != 201:
                    self._send(fake.create_status, {"code": 21210, "message": "refused"})
                    return
                fake.count += 1
                sid = f"CA{uuid.uuid4().hex}"  # unique across the tests' shared database
                fake.created.append(sid)
                self._send(201, {"sid": sid, "status": "queued", "account_sid": TWILIO_SID})
            elif self.path.startswith(f"{prefix}/CA"):
                sid = self.path.rsplit("/", 1)[1].removesuffix(".json")
                if sid in fake.ended:
                    self._send(400, {"code": 21220, "message": "Call is not in-progress."})
                    return
                self._send(200, {"sid": sid, "status": "in-progress", "account_sid": TWILIO_SID})
            elif self.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json":
                sid = f"SM{uuid.uuid4().hex}"  # texts go through too (the AI's SMS)
                self._send(201, {"sid": sid, "status": "queued", "account_sid": TWILIO_SID})
            else:
                self._send(404, {"code": 20404, "message": "not found"})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with serving(Handler) as url:
        fake.url = url
        yield fake
