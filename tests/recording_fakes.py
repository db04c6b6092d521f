"""Stand-ins for where recordings are kept, for the retention and playback tests: a small
fake of Twilio's Recordings resource (DELETE, and the `.wav` media with byte ranges), and a
moto S3 server with a bucket. The real Twilio client and aioboto3 talk to them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import aioboto3
import pytest
from moto.server import ThreadedMotoServer
from pydantic import AnyHttpUrl, SecretStr

from config.settings import Settings
from tests.conftest import free_port
from tests.fake_http import serving

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "fake-auth-token-0123456789"
AWS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
_RECORDING = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Recordings/(RE\w+)\.(json|wav)$")


@dataclass
class FakeTwilioRecordings:
    """Recordings by SID; `failing` SIDs answer 500 to a DELETE (a provider outage)."""

    media: dict[str, bytes] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    deleted: list[str] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilioRecordings]:
    fake = FakeTwilioRecordings()

    class Handler(BaseHTTPRequestHandler):
        def _found(self) -> tuple[str, str] | None:
            match = _RECORDING.match(self.path)
            return (match.group(2), match.group(3)) if match else None

        def _reply(
            self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_DELETE(self) -> None:
            found = self._found()
            if found is None or found[1] != "json":
                return self._reply(404, b'{"status": 404, "code": 20404}')
            sid = found[0]
            if sid in fake.failing:
                return self._reply(500, b'{"status": 500, "code": 20500}')
            if sid not in fake.media:
                return self._reply(404, b'{"status": 404, "code": 20404}')
            del fake.media[sid]
            fake.deleted.append(sid)
            return self._reply(204)

        def do_GET(self) -> None:
            found = self._found()
            if found is None or found[1] != "wav" or found[0] not in fake.media:
                return self._reply(404, b'{"status": 404}')
            data = fake.media[found[0]]
            wanted = self.headers.get("Range", "")
            match = re.match(r"bytes=(\d+)-(\d*)$", wanted)
            if match:
                first = int(match.group(1))
                last = min(int(match.group(2) or len(data) - 1), len(data) - 1)
                headers = {"Content-Type": "audio/x-wav",
                           "Content-Range": f"bytes {first}-{last}/{len(data)}"}  # fmt: skip
                return self._reply(206, data[first : last + 1], headers)
            return self._reply(200, data, {"Content-Type": "audio/x-wav"})

        def log_message(self, format: str, *args: Any) -> None:
            return None

    with serving(Handler) as url:
        fake.url = url
        yield fake


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


async def new_bucket(endpoint: str) -> str:
    bucket = f"recordings-{uuid.uuid4().hex[:12]}"
    async with aioboto3.Session().client(
        "s3", endpoint_url=endpoint, region_name="eu-west-2", **AWS
    ) as s3:
        await s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}
        )
    return bucket


async def s3_keys(endpoint: str, bucket: str) -> set[str]:
    async with aioboto3.Session().client(
        "s3", endpoint_url=endpoint, region_name="eu-west-2", **AWS
    ) as s3:
        listed = await s3.list_objects_v2(Bucket=bucket)
    return {item["Key"] for item in listed.get("Contents", [])}


def recording_settings(
    settings: Settings, *, recordings_dir: Any, twilio: FakeTwilioRecordings | None = None,
    s3_endpoint: str | None = None,
) -> Settings:  # fmt: skip
    update: dict[str, Any] = {"recordings_dir": recordings_dir}
    if twilio is not None:
        update |= {
            "twilio_account_sid": TWILIO_SID,
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "twilio_base_url": AnyHttpUrl(twilio.url),
        }
    if s3_endpoint is not None:
        update |= {
            "aws_endpoint_url": AnyHttpUrl(s3_endpoint),
            "aws_access_key_id": AWS["aws_access_key_id"],
            "aws_secret_access_key": SecretStr(AWS["aws_secret_access_key"]),
        }
    return settings.model_copy(update=update)
