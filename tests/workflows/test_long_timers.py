"""Long durable timers on the time-skipping test server: a callback booked days ahead
fires at its time, inside the calling window, with nobody waiting in real time."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from functools import partial

from sqlalchemy import insert
from temporalio.testing import WorkflowEnvironment

from config.settings import Settings
from domain.calling_windows import is_open, next_open
from domain.rules import DiallerRules
from schemas import dialler_db as db
from schemas.outreach import Stage
from tests.factories import add_claimant
from tests.workflows.conftest import running_harness, scratch_databases
from tests.workflows.helpers import assessment, eventually, start


async def test_callbacks_fire_at_their_time_inside_the_calling_window(
    skipping_env: WorkflowEnvironment, settings: Settings, default_rules: DiallerRules
) -> None:
    """Real UK calling windows: a callback booked for an open time fires then; one that
    falls due while calling is closed waits for the window to open."""
    windows = default_rules.calling_windows
    async with (
        scratch_databases("skip") as (dialler, replica),
        running_harness(skipping_env, settings, dialler, replica, default_rules) as h,
    ):
        server_now = await skipping_env.get_current_time()
        open_time = next_open(server_now + timedelta(days=3), windows)
        local_day = (server_now + timedelta(days=4)).astimezone(windows.zone).date()
        closed_time = datetime.combine(local_day, time(22, 30), windows.zone).astimezone(UTC)
        assert not is_open(closed_time, windows)

        handles = {}
        for at in (open_time, closed_time):
            user_id = await add_claimant(replica, signed=False, pending=1)
            async with dialler.begin() as conn:
                await conn.execute(insert(db.callbacks).values(user_id=user_id, scheduled_for=at))
            handles[at] = await start(h, user_id)
            handle = handles[at]
            before = await eventually(partial(assessment, handle), lambda a: a is not None)
            assert before is not None and before.stage is Stage.UNSIGNED
            assert before.not_before == next_open(at, windows)  # never before the agreed time
            assert "callback" in before.not_before_reason

        await skipping_env.sleep(open_time - server_now + timedelta(minutes=1))
        fired = await eventually(
            lambda: assessment(handles[open_time]),
            lambda a: a is not None and a.stage is Stage.CALLBACK,
        )
        assert fired is not None and fired.not_before is not None
        assert fired.not_before <= open_time + timedelta(minutes=1)

        await skipping_env.sleep(closed_time - open_time + timedelta(minutes=1))
        waiting = await eventually(
            lambda: assessment(handles[closed_time]),
            lambda a: a is not None and a.stage is Stage.CALLBACK,
        )
        assert waiting is not None and waiting.not_before is not None
        assert waiting.not_before == next_open(closed_time, windows)
        assert waiting.not_before > closed_time
        assert "calling window" in waiting.not_before_reason
