"""Consent confirmed on a call, in the console and through the API: only the agent holding
the claimant, only during a call they placed; audited; the task appears; bad input is a
clear error and writes nothing."""

from __future__ import annotations

from sqlalchemy import select

from schemas import dialler_db as db
from tests.web.console_fixtures import (
    World,
    calls_of,
    claim,
    signed_in_agent,
    w,
    world,
)
from tests.workflows.helpers import task_in, task_row

__all__ = ["w", "world"]  # fixtures, imported for pytest


async def _records(w: World, user_id: int) -> list[str]:
    async with w.dialler.connect() as conn:
        found = await conn.scalars(
            select(db.consent_records.c.channel).where(db.consent_records.c.user_id == user_id)
        )
        return list(found)


async def _audited(w: World, user_id: int) -> int:
    async with w.dialler.connect() as conn:
        return len(
            (
                await conn.execute(
                    select(db.audit_log.c.id).where(
                        db.audit_log.c.action == "consent_confirmed",
                        db.audit_log.c.subject_id == str(user_id),
                    )
                )
            ).all()
        )


async def test_the_console_records_consent_on_the_call_and_the_task_follows(w: World) -> None:
    agent = await signed_in_agent(w)
    page = await claim(w, agent)
    assert 'id="consent"' in page and "Phone calls from an agent" in page
    user_id = int(page.split('data-user-id="')[1].split('"')[0])

    # before dialling: refused with the reason, nothing written
    early = await agent.post(f"/console/claimants/{user_id}/consent", {"channel": "sms"})
    assert early.status_code == 422
    assert "call the claimant first" in await agent.text(early)
    assert await _records(w, user_id) == []

    called = await agent.post(f"/console/claimants/{user_id}/call")
    assert called.status_code == 200, await agent.text(called)
    [call] = await calls_of(w, user_id)

    for bad in ("", "fax", "sms\x00", "x" * 10_000):
        refused = await agent.post(f"/console/claimants/{user_id}/consent", {"channel": bad})
        assert refused.status_code in (400, 422), bad
    assert await _records(w, user_id) == []

    saved = await agent.post(f"/console/claimants/{user_id}/consent", {"channel": "sms"})
    body = await agent.text(saved)
    assert saved.status_code == 200, body
    assert "Consent recorded: text messages." in body
    assert await _records(w, user_id) == ["sms"]
    assert await _audited(w, user_id) == 1
    async with w.dialler.connect() as conn:
        record = (
            await conn.execute(
                select(db.consent_records).where(db.consent_records.c.user_id == user_id)
            )
        ).one()
    assert (record.agent_id, record.call_id, record.given) == (agent.staff.id, call.id, True)
    assert "text you" in record.wording  # the statement read out is the evidence

    # another agent cannot record consent for this claimant (and learns nothing)
    other = await signed_in_agent(w)
    stranger = await other.post(f"/console/claimants/{user_id}/consent", {"channel": "email"})
    assert stranger.status_code == 404
    assert await _records(w, user_id) == ["sms"]
    assert (await task_row(w.harness, user_id)).status == "claimed"


async def test_the_api_records_consent_only_on_the_holders_call(
    w: World,
) -> None:
    from tests.factories import add_claimant
    from tests.workflows.helpers import start

    # a claimant whose consent is missing has no task; an agent holding another claimant's
    # call cannot record it for them: the route is claimant-scoped
    unconsented = await add_claimant(w.replica, signed=False, pending=1, consents=())
    await start(w.harness, unconsented)
    await task_in(w.harness, unconsented, None)
    agent = await signed_in_agent(w)
    await claim(w, agent)
    refused = await agent.client.post(
        f"/api/claimants/{unconsented}/consents",
        json={"channel": "live_call"},
        headers={"X-CSRF-Token": agent.token},
    )
    assert refused.status_code == 404
    assert await _records(w, unconsented) == []

    held = await agent.client.get("/console", headers={"Accept": "text/html"})
    held_page = await held.get_data(as_text=True)
    user_id = int(held_page.split('data-user-id="')[1].split('"')[0])
    no_call = await agent.client.post(
        f"/api/claimants/{user_id}/consents",
        json={"channel": "live_call"},
        headers={"X-CSRF-Token": agent.token},
    )
    assert no_call.status_code == 409
    assert (await no_call.get_json())["error"]["code"] == "no_call"
    await agent.post(f"/console/claimants/{user_id}/call")
    bad = await agent.client.post(
        f"/api/claimants/{user_id}/consents",
        json={"channel": "carrier_pigeon", "extra": 1},
        headers={"X-CSRF-Token": agent.token},
    )
    assert bad.status_code == 400
    ok = await agent.client.post(
        f"/api/claimants/{user_id}/consents",
        json={"channel": "automated_call"},
        headers={"X-CSRF-Token": agent.token},
    )
    body = await ok.get_json()
    assert ok.status_code == 201, body
    assert body["workflow_told"] is True and "automated_call" in body["channels"]
    assert await _audited(w, user_id) == 1
