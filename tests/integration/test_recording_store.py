"""Reading recordings where they are kept: the S3 bucket (moto, aioboto3) and Twilio's media
URL (a fake, the account's credentials), whole or a byte range; what is missing is
`RecordingGone`, a broken key or an unreachable store `RecordingStoreError`."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.call_log import RecordingLocation
from adapters.recording_store import (
    Playback,
    RangeNotSatisfiable,
    RecordingGone,
    RecordingStoreError,
    RecordingStores,
)
from config.settings import Settings
from domain.recordings import requested_range
from schemas.enums import RecordingStore
from tests.recording_fakes import (
    FakeTwilioRecordings,
    fake_twilio,  # noqa: F401  (fixture)
    new_bucket,
    recording_settings,
    s3_endpoint,  # noqa: F401  (fixture)
)

AUDIO = bytes(range(256)) * 40  # 10,240 bytes


async def _read(playback: Playback) -> bytes:
    return b"".join([chunk async for chunk in playback.chunks])


def test_byte_ranges() -> None:
    assert requested_range(None, 100) is None
    assert requested_range("bytes=0-", 100) == (0, 99)
    assert requested_range("bytes=10-19", 100) == (10, 19)
    assert requested_range("bytes=90-500", 100) == (90, 99)
    assert requested_range("bytes=-10", 100) == (90, 99)
    for ignored in ("items=0-1", "bytes=0-1,5-6", "bytes=x-", "bytes=5-2", "bytes=-"):
        assert requested_range(ignored, 100) is None, ignored
    for unsatisfiable in ("bytes=100-", "bytes=-0"):
        with pytest.raises(RangeNotSatisfiable):
            requested_range(unsatisfiable, 100)


async def test_s3_whole_and_a_range(
    settings: Settings,
    tmp_path: Path,
    s3_endpoint: str,  # noqa: F811
) -> None:
    stores = RecordingStores(
        recording_settings(settings, recordings_dir=tmp_path, s3_endpoint=s3_endpoint)
    )
    bucket = await new_bucket(s3_endpoint)
    await stores.s3.put(f"{bucket}/calls/1.wav", AUDIO)
    where = RecordingLocation(RecordingStore.S3, f"{bucket}/calls/1.wav")
    whole = await stores.open(where, None)
    assert (whole.partial, whole.length, whole.content_type) == (False, len(AUDIO), "audio/wav")
    assert await _read(whole) == AUDIO
    part = await stores.open(where, "bytes=100-199")
    assert part.partial and part.content_range == f"bytes 100-199/{len(AUDIO)}"
    assert await _read(part) == AUDIO[100:200]
    with pytest.raises(RecordingGone):
        await stores.open(RecordingLocation(RecordingStore.S3, f"{bucket}/nothing.wav"), None)
    with pytest.raises(RecordingStoreError):
        await stores.open(RecordingLocation(RecordingStore.S3, "no-slash"), None)


async def test_twilio_media_whole_and_a_range(
    settings: Settings,
    tmp_path: Path,
    fake_twilio: FakeTwilioRecordings,  # noqa: F811
) -> None:
    stores = RecordingStores(
        recording_settings(settings, recordings_dir=tmp_path, twilio=fake_twilio)
    )
    sid = "RE" + "a" * 32
    fake_twilio.media[sid] = AUDIO
    where = RecordingLocation(RecordingStore.TWILIO, sid)
    assert await _read(await stores.open(where, None)) == AUDIO
    part = await stores.open(where, "bytes=10-29")
    assert part.partial and part.content_range == f"bytes 10-29/{len(AUDIO)}"
    assert await _read(part) == AUDIO[10:30]
    with pytest.raises(RecordingGone):
        await stores.open(RecordingLocation(RecordingStore.TWILIO, "RE" + "b" * 32), None)
    # without credentials Twilio cannot be asked
    with pytest.raises(RecordingStoreError):
        await RecordingStores(settings).open(where, None)


async def test_a_local_key_cannot_leave_the_recordings_folder(
    settings: Settings, tmp_path: Path
) -> None:
    stores = RecordingStores(recording_settings(settings, recordings_dir=tmp_path / "rec"))
    (tmp_path / "secret.txt").write_text("not a recording")
    for key in ("../secret.txt", "/etc/passwd", ""):
        with pytest.raises(RecordingStoreError):
            await stores.open(RecordingLocation(RecordingStore.LOCAL, key), None)
        with pytest.raises(RecordingStoreError):
            await stores.delete(RecordingLocation(RecordingStore.LOCAL, key))
    assert (tmp_path / "secret.txt").exists()
