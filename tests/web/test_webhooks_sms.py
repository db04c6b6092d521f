"""Twilio SMS webhooks over HTTP: signatures, inbound messages filed per claimant, delivery
status, each SID applied once, STOP opting the claimant out at once (the workflow withdraws
the task), START re-subscribing only where the rules allow."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from temporalio.client import WorkflowHandle

from adapters.live import SMS_INBOUND, STAFF_CHANNEL
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue
from schemas.outreach import OutreachResult
from tests.factories import add_claimant
from tests.web.sms_fixtures import (
    World,
    add_message,
    claimant_in_queue,
    inbound_params,
    new_sid,
    post_signed,
    rows,
    signed_in,
    suppress,
    world,
)
from tests.workflows.helpers import eventually, start, task_in, task_row
from web.blueprints.webhooks_sms import EMPTY_TWIML
from web.twilio_signature import public_url, sign
from workflows.outreach import OutreachWorkflow, workflow_id_for

__all__ = ["world"]  # the module's fixture

INBOUND = "/webhooks/twilio/sms-inbound"
STATUS = "/webhooks/twilio/sms-status"


def phone(n: int) -> str:
    return f"+4477009{n % 100000:05d}"


async def messages_of(w: World, user_id: int | None, number: str | None = None) -> list[object]:
    where = [db.sms_messages.c.direction == "inbound"]
    where.append(
        db.sms_messages.c.user_id == user_id
        if user_id is not None
        else db.sms_messages.c.from_number == number
    )
    return await rows(w.dialler, db.sms_messages, *where)


async def reasons(w: World, user_id: int) -> list[str]:
    found = await rows(w.dialler, db.suppressions, db.suppressions.c.user_id == user_id)
    return [r.reason for r in found]


# --- signatures -------------------------------------------------------------------------------


async def test_unsigned_or_forged_requests_are_refused(world: World) -> None:
    number = "+447700911001"
    for path in (INBOUND, STATUS):
        params = inbound_params(number, "hello") | {"MessageStatus": "delivered"}
        unsigned = await post_signed(world, path, params, signature="")
        assert unsigned.status_code == 403
        assert (await unsigned.get_json())["error"]["code"] == "bad_signature"
        forged = await post_signed(world, path, params, signature="bm90IGEgc2lnbmF0dXJl")
        assert forged.status_code == 403
    # signed for other parameters than those sent: a tampered body
    params = inbound_params(number, "hello")
    good = sign(world.settings, public_url(world.settings, INBOUND), params)
    tampered = await post_signed(world, INBOUND, params | {"Body": "STOP"}, signature=good)
    assert tampered.status_code == 403
    assert await messages_of(world, None, number) == []


# --- inbound -----------------------------------------------------------------------------------


async def test_inbound_is_filed_under_the_claimant_and_announced(world: World) -> None:
    user_id = await add_claimant(world.replica, phone=phone(11002))
    async with world.services.live().subscribe([STAFF_CHANNEL]) as subscription:
        response = await post_signed(world, INBOUND, inbound_params(phone(11002), "Got it, thanks"))
        deadline = asyncio.get_running_loop().time() + 5
        event = None
        while event is None and asyncio.get_running_loop().time() < deadline:
            event = await subscription.next(1.0)  # None for the subscribe confirmation
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert await response.get_data(as_text=True) == EMPTY_TWIML
    [message] = await messages_of(world, user_id)
    assert message.body == "Got it, thanks" and message.read_at is None  # type: ignore[attr-defined]
    assert message.status == "received"  # type: ignore[attr-defined]
    assert event is not None and event.name == SMS_INBOUND
    assert event.data == {"user_id": user_id, "message_id": message.id, "unread": 1}  # type: ignore[attr-defined]
    assert "Got it" not in str(event.data)  # no message bodies on the staff channel


async def test_a_national_spelling_of_the_number_still_matches(world: World) -> None:
    user_id = await add_claimant(world.replica, phone="07700911003")
    response = await post_signed(world, INBOUND, inbound_params("+447700911003", "Hi"))
    assert response.status_code == 200
    assert len(await messages_of(world, user_id)) == 1


async def test_unknown_senders_are_kept_without_a_claimant(world: World) -> None:
    number = "+447700911004"
    response = await post_signed(world, INBOUND, inbound_params(number, "Who is this?"))
    assert response.status_code == 200
    [message] = await messages_of(world, None, number)
    assert message.user_id is None  # type: ignore[attr-defined]


async def test_a_repeated_sid_is_stored_once(world: World) -> None:
    user_id = await add_claimant(world.replica, phone=phone(11005))
    params = inbound_params(phone(11005), "Once only")
    first, second = await asyncio.gather(
        post_signed(world, INBOUND, params), post_signed(world, INBOUND, params)
    )
    third = await post_signed(world, INBOUND, params)
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert len(await messages_of(world, user_id)) == 1


async def test_missing_fields_are_a_400_not_a_500(world: World) -> None:
    params = {"From": "+447700911006", "Body": "no sid"}
    response = await post_signed(world, INBOUND, params)
    assert response.status_code == 400
    assert set((await response.get_json())["error"]["fields"]) == {"MessageSid"}


# --- delivery status -----------------------------------------------------------------------------


async def test_status_moves_forward_once_per_status(world: World) -> None:
    message_id = await add_message(world, None, "Outbound", inbound=False)
    [row] = await rows(world.dialler, db.sms_messages, db.sms_messages.c.id == message_id)
    sid = row.provider_sid
    async with world.dialler.begin() as conn:
        await conn.execute(
            db.sms_messages.update()
            .where(db.sms_messages.c.id == message_id)
            .values(status="queued")
        )

    async def status_now() -> str:
        async with world.dialler.connect() as conn:
            return str(
                await conn.scalar(
                    select(db.sms_messages.c.status).where(db.sms_messages.c.id == message_id)
                )
            )

    for status, expected in [
        ("sent", "sent"),
        ("delivered", "delivered"),
        ("delivered", "delivered"),  # a repeat
        ("sent", "delivered"),  # late: an earlier stage never overwrites a later one
    ]:
        response = await post_signed(world, STATUS, {"MessageSid": sid, "MessageStatus": status})
        assert response.status_code == 204
        assert await status_now() == expected
    unknown = await post_signed(world, STATUS, {"MessageSid": new_sid(), "MessageStatus": "sent"})
    assert unknown.status_code == 204
    forged = await post_signed(
        world, STATUS, {"MessageSid": sid, "MessageStatus": "failed"}, signature="x"
    )
    assert forged.status_code == 403
    assert await status_now() == "delivered"


# --- STOP and START -------------------------------------------------------------------------------


async def test_stop_opts_the_claimant_out_at_once_and_the_task_goes(world: World) -> None:
    number = phone(11010)
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=number)
    sid = new_sid()
    response = await post_signed(world, INBOUND, inbound_params(number, "  Stop \n", sid))
    assert response.status_code == 200
    # recorded before the response: nobody can text or call them from here on
    [row] = await rows(world.dialler, db.suppressions, db.suppressions.c.user_id == user_id)
    assert (row.reason, row.phone_number, row.source) == ("sms_stop", number, f"sms:{sid}")
    # the workflow heard it and withdrew the task; the run ends with nothing to chase
    await task_in(world.harness, user_id, None)
    handle: WorkflowHandle[OutreachWorkflow, OutreachResult] = (
        world.harness.client.get_workflow_handle_for(OutreachWorkflow.run, workflow_id_for(user_id))
    )
    assert (await handle.result()).final_stage == "done"
    assert await reasons(world, user_id) == ["sms_stop"]  # the workflow did not add a second
    # and no further task appears, even when something changes and a new run starts
    await start(world.harness, user_id)
    await asyncio.sleep(1.0)
    task = await task_row(world.harness, user_id)
    assert task.status == "withdrawn"
    # a repeat of the same webhook changes nothing
    again = await post_signed(world, INBOUND, inbound_params(number, "STOP", sid))
    assert again.status_code == 200
    assert await reasons(world, user_id) == ["sms_stop"]
    assert len(await messages_of(world, user_id)) == 1
    # the agent sees it and cannot text them
    # nobody has worked this claimant: only a supervisor may open their thread
    agent = await signed_in(world, AgentRole.SUPERVISOR, None)
    page = await agent.post(f"/sms/{user_id}/reply", {"body": "Are you sure?"})
    assert page.status_code == 409
    assert "opted out" in await page.get_data(as_text=True)


async def test_stop_from_an_unknown_number_suppresses_the_number(world: World) -> None:
    number = "+447700911011"
    response = await post_signed(world, INBOUND, inbound_params(number, "unsubscribe"))
    assert response.status_code == 200
    found = await rows(world.dialler, db.suppressions, db.suppressions.c.phone_number == number)
    assert [(r.user_id, r.reason) for r in found] == [(None, "sms_stop")]


async def test_start_after_stop_resubscribes_and_the_task_returns(world: World) -> None:
    number = phone(11012)
    user_id = await claimant_in_queue(world, Queue.UNSIGNED, phone=number)
    assert (await post_signed(world, INBOUND, inbound_params(number, "STOP"))).status_code == 200
    await task_in(world.harness, user_id, None)
    handle: WorkflowHandle[OutreachWorkflow, OutreachResult] = (
        world.harness.client.get_workflow_handle_for(OutreachWorkflow.run, workflow_id_for(user_id))
    )
    await handle.result()  # ended opted out

    response = await post_signed(world, INBOUND, inbound_params(number, "start"))
    assert response.status_code == 200
    assert await reasons(world, user_id) == ["sms_stop", "sms_start"]
    # the START restarted the claimant's workflow, which rebuilt its facts: back in the queue
    await task_in(world.harness, user_id, "unsigned")
    # nobody has worked this claimant: only a supervisor may open their thread
    agent = await signed_in(world, AgentRole.SUPERVISOR, None)
    reply = await agent.post(f"/sms/{user_id}/reply", {"body": "Welcome back"})
    assert reply.status_code == 303
    assert [m.body for m in world.sent_sms().sent if m.to_number == number] == ["Welcome back"]


async def test_start_never_lifts_do_not_call(world: World) -> None:
    number = phone(11013)
    user_id = await add_claimant(world.replica, phone=number)
    await suppress(world, "do_not_call", user_id=user_id)
    assert (await post_signed(world, INBOUND, inbound_params(number, "STOP"))).status_code == 200
    assert (await post_signed(world, INBOUND, inbound_params(number, "START"))).status_code == 200
    assert await reasons(world, user_id) == ["do_not_call", "sms_stop"]  # no sms_start
    refused = await rows(
        world.dialler,
        db.audit_log,
        db.audit_log.c.action == "sms_start_refused",
        db.audit_log.c.subject_id == str(user_id),
    )
    assert len(refused) == 1 and "do_not_call" in refused[0].detail["why"]
    # nobody has worked this claimant: only a supervisor may open their thread
    agent = await signed_in(world, AgentRole.SUPERVISOR, None)
    page = await agent.get(f"/sms/{user_id}")
    assert 'id="sms-opted-out"' in await page.get_data(as_text=True)


async def test_start_without_a_stop_changes_nothing(world: World) -> None:
    number = phone(11014)
    user_id = await add_claimant(world.replica, phone=number)
    assert (await post_signed(world, INBOUND, inbound_params(number, "START"))).status_code == 200
    assert await reasons(world, user_id) == []
    await eventually(lambda: messages_of(world, user_id), lambda found: len(found) == 1)
