"""Subject access (`dialler compliance export USER_ID`): a claimant with rows in every table
the dialler keeps comes out whole, with no token or token hash, and the export is audited;
an unknown id is refused with exit 2 and audits nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from schemas import dialler_db as db
from services.subject_access import SubjectAccess, UnknownClaimant, to_json
from tests.factories import add_claimant

DIALLER = str(Path(sys.executable).parent / "dialler")


def _token(user_id: int) -> tuple[str, str]:
    token = f"a-secret-token-that-must-never-leave-{user_id}"
    return token, hashlib.sha256(token.encode()).hexdigest()


async def _insert(conn: Any, table: Any, **values: Any) -> int:
    return int(await conn.scalar(insert(table).values(**values).returning(table.c.id)))


async def _claimant_everywhere(dialler: AsyncEngine, replica: AsyncEngine) -> dict[str, Any]:
    """A claimant with a row in each of the dialler's tables about claimants."""
    user_id = await add_claimant(replica, pending=1, consents=("live_call", "sms"))
    number = f"+4477009{user_id % 100000:05d}"
    national = "0" + number[3:]
    now = datetime.now(UTC)
    async with dialler.begin() as conn:
        agent = await _insert(conn, db.agents, email=f"sar{user_id}@agents.test",
                              display_name="Agent Smith", role="agent")  # fmt: skip
        call = await _insert(
            conn, db.calls, user_id=user_id, agent_id=agent, provider="simulated",
            to_number=number, status="completed", disposition="callback_requested",
            notes="asked for a call on Friday", recording_sid="RE" + "1" * 32,
            recording_duration_seconds=95, recording_notice_played=True,
        )  # fmt: skip
        callback = await _insert(conn, db.callbacks, user_id=user_id, owner_agent_id=agent,
                                 scheduled_for=now + timedelta(days=1),
                                 notes="Friday am")  # fmt: skip
        note = await _insert(conn, db.claimant_notes, user_id=user_id, agent_id=agent,
                             body="prefers mornings")  # fmt: skip
        sms = await _insert(conn, db.sms_messages, user_id=user_id, direction="outbound",
                            from_number="+447700900000", to_number=number, body="Hello",
                            status="delivered", agent_id=agent)  # fmt: skip
        unfiled = await _insert(conn, db.sms_messages, user_id=None, direction="inbound",
                                from_number=national, to_number="+447700900000",
                                body="who is this?", status="received")  # fmt: skip
        link = await _insert(conn, db.magic_links, user_id=user_id,
                             token_hash=_token(user_id)[1],
                             channel="sms", purpose="signature", created_by=agent,
                             expires_at=now + timedelta(minutes=45))  # fmt: skip
        consent = await _insert(conn, db.consent_records, user_id=user_id, channel="email",
                                given=True, agent_id=agent, call_id=call, source="console",
                                wording="May we email you about your claim? Yes")  # fmt: skip
        suppression = await _insert(conn, db.suppressions, phone_number=number, reason="list",
                                    source="import:sar.csv", note="complaint")  # fmt: skip
        viewed = await _insert(conn, db.audit_log, actor_type="agent", actor_id=str(agent),
                               action="view", subject_type="user",
                               subject_id=str(user_id))  # fmt: skip
        played = await _insert(conn, db.audit_log, actor_type="agent", actor_id=str(agent),
                               action="played_recording", subject_type="call",
                               subject_id=str(call), detail={"user_id": str(user_id)})  # fmt: skip
        ai = await _insert(conn, db.ai_conversations, user_id=user_id, channel="sms",
                           queue="outstanding", workflow_id=f"ai-contact-{user_id}-1",
                           status="handed_off", summary="asked for a person")  # fmt: skip
        await _insert(conn, db.ai_steps, conversation_id=ai, kind="claimant",
                      text="can I talk to someone?")  # fmt: skip
    return {"user_id": user_id, "call": call, "callback": callback, "note": note, "sms": sms,
            "unfiled": unfiled, "link": link, "consent": consent, "suppression": suppression,
            "viewed": viewed, "played": played, "ai": ai}  # fmt: skip


def _ids(rows: list[dict[str, Any]]) -> set[int]:
    return {int(r["id"]) for r in rows}


async def test_the_export_holds_every_table_no_secret_and_is_audited(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    fixture = await _claimant_everywhere(dialler_db, replica)
    user_id = fixture["user_id"]

    document = await SubjectAccess(dialler_db, replica).export(
        user_id, by="Dana Ops", reason="SAR-2026-17"
    )
    text = to_json(document)
    parsed = json.loads(text)

    assert parsed["claimant"]["id"] == user_id and parsed["claimant"]["first_name"] == "Test"
    assert [c["id"] for c in parsed["claims"]] == [user_id]
    assert len(parsed["claims"][0]["requirements"]) == 1
    assert {c["channel"] for c in parsed["consents"]["main_app"]} == {"live_call", "sms"}
    assert [c["channel"] for c in parsed["consents"]["captured_by_agents"]] == ["email"]
    assert _ids(parsed["calls"]) == {fixture["call"]}
    assert parsed["calls"][0]["disposition"] == "callback_requested"
    assert parsed["recordings"] == [
        {"call_id": fixture["call"], "recording_sid": "RE" + "1" * 32,
         "recording_duration_seconds": 95, "recording_notice_played": True}
        | {k: v for k, v in parsed["recordings"][0].items() if k.startswith("recording_")
           and k not in ("recording_sid", "recording_duration_seconds",
                         "recording_notice_played")}
    ]  # fmt: skip
    assert _ids(parsed["callbacks"]) == {fixture["callback"]}
    assert _ids(parsed["notes"]) == {fixture["note"]}
    assert _ids(parsed["sms"]) == {fixture["sms"], fixture["unfiled"]}
    assert _ids(parsed["magic_links"]) == {fixture["link"]}
    assert _ids(parsed["suppressions"]) == {fixture["suppression"]}
    assert {fixture["viewed"], fixture["played"]} <= _ids(parsed["audit"])
    # what the AI said with the claimant, step by step
    assert _ids(parsed["ai_conversations"]) == {fixture["ai"]}
    assert parsed["ai_conversations"][0]["summary"] == "asked for a person"
    assert [s["text"] for s in parsed["ai_conversations"][0]["steps"]] == ["can I talk to someone?"]
    # never a token, nor its hash
    token, token_hash = _token(user_id)
    assert token_hash not in text and token not in text
    assert "token_hash" not in text

    async with dialler_db.connect() as conn:
        audit = (
            await conn.execute(
                select(db.audit_log).where(db.audit_log.c.id == document["export_audit_id"])
            )
        ).one()
    assert (audit.actor_type, audit.actor_id, audit.action, audit.subject_id) == (
        "operator", "Dana Ops", "subject_access_export", str(user_id),
    )  # fmt: skip
    assert audit.detail["reason"] == "SAR-2026-17"
    assert audit.detail["counts"]["calls"] == 1
    assert audit.detail["counts"]["ai_conversations"] == 1


async def _audit_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(db.audit_log)) or 0)


async def test_an_unknown_claimant_is_refused_and_nothing_is_audited(
    dialler_db: AsyncEngine, replica: AsyncEngine
) -> None:
    before = await _audit_count(dialler_db)
    with pytest.raises(UnknownClaimant, match="no claimant 987654321"):
        await SubjectAccess(dialler_db, replica).export(987_654_321, by="ops")
    assert await _audit_count(dialler_db) == before


async def _dialler(pg_url: str, replica_url: str, *args: str) -> tuple[int, str, str]:
    environment = {**os.environ, "DATABASE_URL": pg_url, "REPLICA_DATABASE_URL": replica_url}
    process = await asyncio.create_subprocess_exec(
        DIALLER, *args, env=environment,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_the_command_writes_a_private_file_and_refuses_an_unknown_id(
    dialler_db: AsyncEngine, replica: AsyncEngine, migrated_pg: str, replica_db: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    fixture = await _claimant_everywhere(dialler_db, replica)
    out_file = tmp_path / "sar.json"
    rc, out, err = await _dialler(
        migrated_pg, replica_db, "compliance", "export", str(fixture["user_id"]),
        "--out", str(out_file), "--by", "Dana Ops",
    )  # fmt: skip
    assert rc == 0, out + err
    assert f"claimant {fixture['user_id']} exported to {out_file}" in out
    assert out_file.stat().st_mode & 0o077 == 0
    assert json.loads(out_file.read_text())["user_id"] == fixture["user_id"]

    rc, out, err = await _dialler(migrated_pg, replica_db, "compliance", "export", "987654321")
    assert rc == 2
    assert "no claimant 987654321" in err and out == ""
