"""Consent and the TPS through the real outreach workflow (issue 11's "done when"): no
live-call consent, no task (with the reason); consent arriving by CDC or captured on a call
brings the task; consent withdrawn during a claim withdraws the task when the claim ends;
a TPS-listed number of a service-contact queue is not offered unless consent overrides it;
without automated-call consent the AI voice is refused while SMS stays allowed."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from temporalio.testing import WorkflowEnvironment

from adapters import tps
from config.settings import Settings
from domain.consent import (
    NO_AUTOMATED_CALL_CONSENT,
    NO_LIVE_CALL_CONSENT,
    TPS_LISTED,
)
from domain.rules import ComplianceRules
from schemas.enums import ConsentChannel, Queue
from schemas.outreach import ChangeKind, OutcomeRequest
from services.consents import ConsentService
from tests.factories import add_claimant, add_consent, withdraw_consents
from tests.workflows.conftest import Harness, open_rules, running_harness, scratch_databases
from tests.workflows.helpers import (
    assessment,
    claim_task,
    ensure_agents,
    event,
    eventually,
    start,
    task_in,
    task_row,
)
from workflows.outreach_client import OutreachClient

AGENT = 5


@pytest.fixture(scope="module", autouse=True)
async def agents(harness: Harness) -> None:
    await ensure_agents(harness)


async def test_no_live_call_consent_no_task_and_consent_by_cdc_brings_it(
    harness: Harness,
) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1, consents=())
    handle = await start(harness, user_id)
    row = await task_in(harness, user_id, None)  # a withdrawn row that says why
    assert row.not_before_reason == NO_LIVE_CALL_CONSENT and row.queue == "unsigned"
    found = await assessment(handle)
    assert found is not None and found.not_before is None
    assert found.not_before_reason == NO_LIVE_CALL_CONSENT

    await add_consent(harness.replica, user_id, "live_call")
    await handle.signal("change", event(ChangeKind.CONSENT_CHANGED, user_id))
    await task_in(harness, user_id, "unsigned")


async def test_consent_confirmed_on_a_call_brings_the_task_and_is_audited(
    harness: Harness,
) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1, consents=())
    await start(harness, user_id)
    await task_in(harness, user_id, None)
    service = ConsentService(
        harness.dialler, harness.replica, OutreachClient.over(harness.client, harness.task_queue)
    )
    confirmed = await service.confirm(
        user_id, ConsentChannel.LIVE_CALL, agent_id=AGENT, call_id=None, ip_address="10.0.0.1"
    )
    assert confirmed.workflow_told and "live_call" in confirmed.standing.channels
    await task_in(harness, user_id, "unsigned")


async def test_consent_withdrawn_during_a_claim_withdraws_the_task_when_the_claim_ends(
    harness: Harness,
) -> None:
    user_id = await add_claimant(harness.replica, signed=False, pending=1)
    handle = await start(harness, user_id)
    await claim_task(harness, user_id, Queue.UNSIGNED, agent_id=AGENT)
    await withdraw_consents(harness.replica, user_id, "live_call", datetime(2025, 6, 1))
    await handle.signal("change", event(ChangeKind.CONSENT_CHANGED, user_id))

    # the claim stays until its outcome: the agent is on the call
    found = await eventually(
        lambda: assessment(handle),
        lambda a: a is not None and a.not_before_reason == NO_LIVE_CALL_CONSENT,
    )
    assert found is not None
    assert (await task_row(harness, user_id)).status == "claimed"

    recorded = await harness.claims.record_outcome(
        user_id, OutcomeRequest(agent_id=AGENT, disposition="no_answer")
    )
    assert recorded.not_before is None and recorded.reason == NO_LIVE_CALL_CONSENT
    row = await task_in(harness, user_id, None)
    assert row.not_before_reason == NO_LIVE_CALL_CONSENT and row.claimed_by is None


async def test_without_automated_call_consent_ai_voice_is_refused_and_sms_allowed(
    harness: Harness,
) -> None:
    user_id = await add_claimant(
        harness.replica, signed=False, pending=1, consents=("live_call", "sms")
    )
    handle = await start(harness, user_id)
    await task_in(harness, user_id, "unsigned")
    found = await assessment(handle)
    assert found is not None
    assert found.channel_refusals["automated_call"] == NO_AUTOMATED_CALL_CONSENT
    assert "sms" not in found.channel_refusals and "live_call" not in found.channel_refusals


async def test_a_tps_listed_service_contact_is_not_offered_unless_consent_overrides(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    rules = open_rules().model_copy(
        update={"compliance": ComplianceRules(service_contact_queues=[Queue.OUTSTANDING])}
    )
    async with (
        scratch_databases("tpsgate") as (dialler, replica),
        running_harness(temporal_env, settings, dialler, replica, rules) as h,
    ):
        listed = "+447700900881"
        await tps.import_list(
            dialler, io.BytesIO(b"07700 900881\n"), list_name="tps", replace=True, source="test"
        )
        unconsented = await add_claimant(replica, signed=True, pending=1, phone=listed,
                                         consents=())  # fmt: skip
        consented = await add_claimant(replica, signed=True, pending=1, phone=listed)
        clear = await add_claimant(replica, signed=True, pending=1, consents=())
        for user_id in (unconsented, consented, clear):
            await start(h, user_id)
        row = await task_in(h, unconsented, None)
        assert row.not_before_reason == TPS_LISTED
        await task_in(h, consented, "outstanding")  # consent overrides the listing
        await task_in(h, clear, "outstanding")  # service contact: no consent needed
