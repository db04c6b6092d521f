"""Where call recordings are kept, and the three ways of reading and deleting them.

A call's row says where its recording is (`adapters.call_log.RecordingLocation`):

- `twilio`: at the provider, by its RecordingSid. Played through the REST API's media URL
  (`.../Recordings/<sid>.wav`, the account's credentials), deleted with
  `client.recordings(sid).delete()`. `TWILIO_BASE_URL` points both at a local fake in tests.
- `s3`: a copy in a bucket, key `<bucket>/<object key>`, through aioboto3 (`AWS_*`;
  `AWS_ENDPOINT_URL` for moto in tests).
- `local`: a file under `RECORDINGS_DIR`: the simulated telephony writes a short real WAV
  for each completed call (`write_tone`), so playback and retention work offline.

Reading streams in chunks and honours a single byte range (what `<audio>` asks for).
Deleting something that is already gone succeeds (a retried clean-up deletes it once);
any other failure raises `RecordingStoreError`, and the caller retries another day.
Clients are built per operation from the settings: nothing is held at module level.
"""

from __future__ import annotations

import asyncio
import math
import struct
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aioboto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError
from structlog import get_logger
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient

from adapters.call_log import RecordingLocation
from adapters.messaging import PROVIDER_TIMEOUT_SECONDS, RebasedTwilioHttpClient
from config.settings import Settings
from domain.recordings import RangeNotSatisfiable, requested_range
from schemas.enums import RecordingStore

log = get_logger(__name__)

CHUNK = 64 * 1024
WAV = "audio/wav"
TWILIO_API = "https://api.twilio.com"
_MISSING_S3 = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchBucket"})

__all__ = [
    "Playback",
    "RangeNotSatisfiable",
    "RecordingGone",
    "RecordingStoreError",
    "RecordingStores",
    "local_key_for",
    "write_tone",
]


class RecordingGone(Exception):
    """Nothing is kept at the location any more (deleted, or never written)."""


class RecordingStoreError(Exception):
    """The store failed (network, credentials, 5xx): try again later. The message names the
    store and the error, never personal data."""


@dataclass
class Playback:
    """A recording (or the requested part of it) as a stream of chunks."""

    chunks: AsyncIterator[bytes]
    content_type: str
    length: int | None  # bytes in this response
    content_range: str | None  # "bytes first-last/size" when partial
    partial: bool = False


# --- local files (development) ------------------------------------------------------------


def local_key_for(recording_sid: str) -> str:
    """The file the simulated telephony writes a recording to, under RECORDINGS_DIR."""
    return f"simulated/{recording_sid}.wav"


def write_tone(
    path: Path, seconds: float, *, frequency: float = 440.0, rate: int = 8000, volume: float = 0.3
) -> Path:
    """A real, short WAV file (16-bit mono PCM): a tone of `seconds`, with the file's
    folders created. Written to a temporary name and renamed, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = max(int(rate * seconds), 1)
    amplitude = int(32767 * volume)
    samples = b"".join(
        struct.pack("<h", int(amplitude * math.sin(2 * math.pi * frequency * n / rate)))
        for n in range(frames)
    )
    partial = path.with_suffix(path.suffix + ".part")
    with wave.open(str(partial), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples)
    partial.replace(path)
    return path


class LocalRecordings:
    def __init__(self, root: Path) -> None:
        self._root = root

    def path_of(self, key: str) -> Path:
        """The file of `key`, which must stay under the root (no absolute path, no `..`)."""
        root = self._root.resolve()
        path = (root / key).resolve()
        if not key or Path(key).is_absolute() or not path.is_relative_to(root):
            raise RecordingStoreError("local recording key outside RECORDINGS_DIR")
        return path

    async def open(self, key: str, range_header: str | None) -> Playback:
        path = self.path_of(key)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except FileNotFoundError:
            raise RecordingGone(key) from None
        span = requested_range(range_header, size)
        first, last = span or (0, size - 1)
        return Playback(
            chunks=self._read(path, first, last),
            content_type=WAV,
            length=last - first + 1 if size else 0,
            content_range=f"bytes {first}-{last}/{size}" if span else None,
            partial=span is not None,
        )

    @staticmethod
    async def _read(path: Path, first: int, last: int) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(path.open, "rb")
        try:
            await asyncio.to_thread(handle.seek, first)
            remaining = last - first + 1
            while remaining > 0:
                chunk = await asyncio.to_thread(handle.read, min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def delete(self, key: str) -> None:
        path = self.path_of(key)
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        except OSError as error:
            raise RecordingStoreError(f"local: {type(error).__name__}") from None


# --- S3 (aioboto3) ------------------------------------------------------------------------------


def _bucket_and_key(key: str) -> tuple[str, str]:
    bucket, _, name = key.partition("/")
    if not bucket or not name:
        raise RecordingStoreError("s3 recording key is not <bucket>/<key>")
    return bucket, name


class S3Recordings:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session = aioboto3.Session()

    def _client(self) -> Any:
        s = self._settings
        options: dict[str, Any] = {"region_name": s.aws_region}
        if s.aws_endpoint_url is not None:
            options["endpoint_url"] = str(s.aws_endpoint_url).rstrip("/")
        if s.aws_access_key_id:
            options["aws_access_key_id"] = s.aws_access_key_id
            options["aws_secret_access_key"] = s.aws_secret_access_key.get_secret_value()
        return self._session.client("s3", **options)

    @staticmethod
    def _failure(error: Exception) -> Exception:
        code = (
            error.response.get("Error", {}).get("Code", "")
            if isinstance(error, ClientError)
            else ""
        )
        if code in _MISSING_S3:
            return RecordingGone(code)
        return RecordingStoreError(f"s3: {code or type(error).__name__}")

    async def put(self, key: str, body: bytes, content_type: str = WAV) -> None:
        bucket, name = _bucket_and_key(key)
        try:
            async with self._client() as s3:
                await s3.put_object(Bucket=bucket, Key=name, Body=body, ContentType=content_type)
        except (ClientError, BotoCoreError) as error:
            raise self._failure(error) from None

    async def open(self, key: str, range_header: str | None) -> Playback:
        bucket, name = _bucket_and_key(key)
        try:
            async with self._client() as s3:
                head = await s3.head_object(Bucket=bucket, Key=name)
        except (ClientError, BotoCoreError) as error:
            raise self._failure(error) from None
        size = int(head["ContentLength"])
        span = requested_range(range_header, size)
        first, last = span or (0, size - 1)
        return Playback(
            chunks=self._read(bucket, name, first, last),
            content_type=str(head.get("ContentType") or WAV),
            length=last - first + 1 if size else 0,
            content_range=f"bytes {first}-{last}/{size}" if span else None,
            partial=span is not None,
        )

    async def _read(self, bucket: str, name: str, first: int, last: int) -> AsyncIterator[bytes]:
        if last < first:
            return
        async with self._client() as s3:
            found = await s3.get_object(Bucket=bucket, Key=name, Range=f"bytes={first}-{last}")
            body = found["Body"]
            try:
                async for chunk in body.iter_chunks(CHUNK):
                    yield chunk
            finally:
                body.close()

    async def delete(self, key: str) -> None:
        bucket, name = _bucket_and_key(key)
        try:
            async with self._client() as s3:
                await s3.delete_object(Bucket=bucket, Key=name)  # a missing key is no error
        except (ClientError, BotoCoreError) as error:
            failure = self._failure(error)
            if not isinstance(failure, RecordingGone):
                raise failure from None


# --- Twilio -------------------------------------------------------------------------------------


class TwilioRecordings:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def _base(self) -> str:
        base = self._settings.twilio_base_url
        return str(base).rstrip("/") if base is not None else TWILIO_API

    def _auth(self) -> tuple[str, str]:
        s = self._settings
        if not s.twilio_enabled:
            raise RecordingStoreError("twilio: no TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN")
        return s.twilio_account_sid, s.twilio_auth_token.get_secret_value()

    def _delete(self, sid: str) -> None:
        account, token = self._auth()
        base = self._settings.twilio_base_url
        http_client = (
            RebasedTwilioHttpClient(str(base))
            if base is not None
            else TwilioHttpClient(timeout=PROVIDER_TIMEOUT_SECONDS)
        )
        client = TwilioClient(account, token, http_client=http_client)
        try:
            client.recordings(sid).delete()
        except TwilioRestException as error:
            if int(error.status) == 404:
                return  # already deleted
            raise RecordingStoreError(f"twilio: {error.status} error {error.code}") from None
        except Exception as error:  # the HTTP client's own (connection, timeout)
            raise RecordingStoreError(f"twilio: {type(error).__name__}") from None

    async def delete(self, sid: str) -> None:
        await asyncio.to_thread(self._delete, sid)

    async def open(self, sid: str, range_header: str | None) -> Playback:
        account, token = self._auth()
        url = f"{self._base()}/2010-04-01/Accounts/{account}/Recordings/{sid}.wav"
        headers = {"Range": range_header} if range_header else {}
        client = httpx.AsyncClient(auth=(account, token), timeout=PROVIDER_TIMEOUT_SECONDS)
        try:
            response = await client.send(
                client.build_request("GET", url, headers=headers), stream=True
            )
        except httpx.HTTPError as error:
            await client.aclose()
            raise RecordingStoreError(f"twilio: {type(error).__name__}") from None
        if response.status_code not in (200, 206):
            await response.aclose()
            await client.aclose()
            if response.status_code == 404:
                raise RecordingGone(sid)
            if response.status_code == 416:
                raise RangeNotSatisfiable(range_header or "")
            raise RecordingStoreError(f"twilio: media answered {response.status_code}")
        length = response.headers.get("Content-Length")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes(CHUNK):
                    yield chunk
            finally:
                await response.aclose()
                await client.aclose()

        return Playback(
            chunks=chunks(),
            content_type=response.headers.get("Content-Type", WAV),
            length=int(length) if length and length.isdigit() else None,
            content_range=response.headers.get("Content-Range"),
            partial=response.status_code == 206,
        )


# --- all three ----------------------------------------------------------------------------------


class RecordingStores:
    """Reads and deletes a recording wherever its row says it is kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.local = LocalRecordings(settings.recordings_dir)
        self.s3 = S3Recordings(settings)
        self.twilio = TwilioRecordings(settings)

    def _store(
        self, location: RecordingLocation
    ) -> LocalRecordings | S3Recordings | TwilioRecordings:
        match location.store:
            case RecordingStore.LOCAL:
                return self.local
            case RecordingStore.S3:
                return self.s3
            case RecordingStore.TWILIO:
                return self.twilio

    async def open(self, location: RecordingLocation, range_header: str | None) -> Playback:
        """Raises `RecordingGone`, `RangeNotSatisfiable` or `RecordingStoreError`."""
        return await self._store(location).open(location.key, range_header)

    async def delete(self, location: RecordingLocation) -> None:
        """Deleted, or already gone; raises `RecordingStoreError` when the store failed."""
        await self._store(location).delete(location.key)
