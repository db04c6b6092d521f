"""Recordings over HTTP (issue 11): the simulated telephony leaves a real WAV file for each
completed call; `GET /calls/<id>/recording` streams it (byte ranges too) to the agent who
made the call and to supervisors, each playback audited; any other agent gets 403, even one
who now holds the claimant; a recording deleted at the end of retention is 410; the console's
call history shows a player only to those who may play it."""

from __future__ import annotations

import io
import wave
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update

from schemas import dialler_db as db
from schemas.enums import AgentRole
from tests.web.console_fixtures import (
    Agent,
    World,
    calls_of,
    claim,
    ready_claimant,
    signed_in_agent,
    w,
    world,
)

__all__ = ["w", "world"]  # fixtures, imported for pytest


async def _recorded_call(w: World) -> tuple[Agent, int, Any]:
    """An agent's simulated call to a claimant: answered, talked, hung up (recorded)."""
    user_id = await ready_claimant(w)
    agent = await signed_in_agent(w)
    await claim(w, agent, user_id)
    placed = await agent.post(f"/console/claimants/{user_id}/call")
    assert placed.status_code == 200, await agent.text(placed)
    [call] = await calls_of(w, user_id)
    for action in ("answer", "hangup"):
        response = await agent.post(f"/console/calls/{call.id}/simulate", {"action": action})
        assert response.status_code == 200, await agent.text(response)
    [call] = await calls_of(w, user_id)
    return agent, user_id, call


async def _audits(w: World, action: str, actor_id: int) -> list[Any]:
    async with w.dialler.connect() as conn:
        return list(
            (
                await conn.execute(
                    select(db.audit_log)
                    .where(
                        db.audit_log.c.action == action,
                        db.audit_log.c.actor_id == str(actor_id),
                    )
                    .order_by(db.audit_log.c.id)
                )
            ).all()
        )


async def test_a_simulated_call_leaves_a_real_wav_the_caller_can_play(w: World) -> None:
    agent, user_id, call = await _recorded_call(w)
    assert (call.recording_store, call.recording_deleted_at) == ("local", None)
    path = w.settings.recordings_dir / call.recording_key
    data = path.read_bytes()
    with wave.open(io.BytesIO(data)) as audio:  # a valid WAV: a second or two of tone
        seconds = audio.getnframes() / audio.getframerate()
        assert audio.getnchannels() == 1 and audio.getsampwidth() == 2
        assert 1 <= seconds <= 2
        assert any(audio.readframes(audio.getnframes()))  # not silence

    whole = await agent.client.get(f"/calls/{call.id}/recording")
    assert whole.status_code == 200
    assert whole.mimetype == "audio/wav" and whole.headers["Accept-Ranges"] == "bytes"
    assert "no-store" in whole.headers["Cache-Control"]
    assert await whole.get_data() == data

    part = await agent.client.get(f"/calls/{call.id}/recording", headers={"Range": "bytes=4-11"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 4-11/{len(data)}"
    assert await part.get_data() == data[4:12]
    past_end = await agent.client.get(
        f"/calls/{call.id}/recording", headers={"Range": f"bytes={len(data)}-"}
    )
    assert past_end.status_code == 416

    played = await _audits(w, "played_recording", agent.staff.id)
    assert [(a.subject_type, a.subject_id) for a in played] == [("call", str(call.id))] * 2
    assert played[0].detail["user_id"] == str(user_id)
    assert played[1].detail["range"] == "bytes=4-11"
    viewed = await _audits(w, "viewed_personal_data", agent.staff.id)
    routes = [a.detail["route"] for a in viewed if a.detail.get("call_id") == call.id]
    assert routes == ["recordings.play"] * 3  # the 416 was a view of the call too

    # the console's call history offers the caller a player, fetched only on play
    page = await agent.text(await agent.get(f"/console/claimants/{user_id}"))
    assert f'src="/calls/{call.id}/recording"' in page and 'preload="none"' in page


async def test_another_agent_gets_403_even_holding_the_claimant(w: World) -> None:
    _caller, user_id, call = await _recorded_call(w)
    other = await signed_in_agent(w)
    # the other agent now holds the claim: they may see the claimant, not play the call
    async with w.dialler.begin() as conn:
        await conn.execute(
            update(db.call_tasks)
            .where(db.call_tasks.c.user_id == user_id)
            .values(status="claimed", claimed_by=other.staff.id, claimed_at=func.now())
        )
    page = await other.get(f"/console/claimants/{user_id}")
    assert page.status_code == 200
    assert f"/calls/{call.id}/recording" not in await other.text(page)  # no player for them

    refused = await other.client.get(f"/calls/{call.id}/recording")
    assert refused.status_code == 403
    body = await refused.get_json()
    assert body["error"]["code"] == "not_the_caller"
    assert await _audits(w, "played_recording", other.staff.id) == []
    outsider = await signed_in_agent(w)
    assert (await outsider.client.get(f"/calls/{call.id}/recording")).status_code == 403
    assert (await outsider.client.get("/calls/999999999/recording")).status_code == 404


async def test_a_supervisor_and_an_admin_play_it_audited(w: World) -> None:
    _, _, call = await _recorded_call(w)
    for role in (AgentRole.SUPERVISOR, AgentRole.ADMIN):
        boss = await signed_in_agent(w, queue=None, role=role)
        response = await boss.client.get(f"/calls/{call.id}/recording")
        assert response.status_code == 200 and (await response.get_data())[:4] == b"RIFF"
        [played] = await _audits(w, "played_recording", boss.staff.id)
        assert played.subject_id == str(call.id) and played.detail["store"] == "local"


async def test_a_deleted_recording_is_410_and_no_player_is_shown(w: World) -> None:
    agent, user_id, call = await _recorded_call(w)
    async with w.dialler.begin() as conn:
        await conn.execute(
            update(db.calls)
            .where(db.calls.c.id == call.id)
            .values(recording_deleted_at=datetime(2026, 1, 5, tzinfo=UTC))
        )
    gone = await agent.client.get(f"/calls/{call.id}/recording")
    assert gone.status_code == 410
    error = (await gone.get_json())["error"]
    assert error["code"] == "recording_deleted"
    assert "05 January 2026" in error["message"] and "retention" in error["message"]
    browser = await agent.client.get(f"/calls/{call.id}/recording", headers={"Accept": "text/html"})
    assert browser.status_code == 410 and "retention" in await browser.get_data(as_text=True)
    assert await _audits(w, "played_recording", agent.staff.id) == []
    page = await agent.text(await agent.get(f"/console/claimants/{user_id}"))
    assert "Recording deleted" in page and f"/calls/{call.id}/recording" not in page


async def test_a_call_without_a_recording_and_a_missing_file(w: World) -> None:
    agent, _user_id, call = await _recorded_call(w)
    (w.settings.recordings_dir / call.recording_key).unlink()
    missing = await agent.client.get(f"/calls/{call.id}/recording")
    assert missing.status_code == 404
    assert (await missing.get_json())["error"]["code"] == "recording_missing"
    async with w.dialler.begin() as conn:
        await conn.execute(
            update(db.calls)
            .where(db.calls.c.id == call.id)
            .values(recording_store=None, recording_key=None)
        )
    none = await agent.client.get(f"/calls/{call.id}/recording")
    assert none.status_code == 404
    assert (await none.get_json())["error"]["code"] == "no_recording"
