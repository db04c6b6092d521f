"""`dialler queue depth` as a subprocess: callable now and waiting (with the reasons) per
queue, claimed, and the abandoned-call rate over 24 hours."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from schemas import dialler_db as db
from tests.workflows.conftest import scratch_databases

DIALLER = str(Path(sys.executable).parent / "dialler")


def _task(
    user_id: int, queue: str, not_before: datetime, reason: str, status: str = "ready"
) -> Any:
    return {"user_id": user_id, "workflow_id": f"outreach-{user_id}", "queue": queue,
            "score": 50, "not_before": not_before, "not_before_reason": reason,
            "status": status, "version": 1}  # fmt: skip


def _call(user_id: int, *, answered: bool, abandoned: bool = False, by: str | None = None) -> Any:
    return {"user_id": user_id, "provider": "twilio", "to_number": "+447700900001",
            "status": "completed", "abandoned": abandoned, "answered_by": by,
            "answered_at": datetime.now(UTC) if answered else None}  # fmt: skip


async def test_queue_depth_shows_callable_waiting_with_reasons_and_the_abandon_rate() -> None:
    now = datetime.now(UTC)
    later, earlier = now + timedelta(hours=3), now - timedelta(minutes=5)
    async with scratch_databases("queue_depth") as (dialler, _):
        async with dialler.begin() as conn:
            await conn.execute(
                insert(db.call_tasks),
                [
                    _task(1, "unsigned", earlier, "can call now (calling window open)"),
                    _task(2, "unsigned", later, "cooldown after no_answer until 14:00 Thu 3 Dec"),
                    _task(3, "unsigned", later, "cooldown after no_answer until 15:00 Thu 3 Dec"),
                    _task(4, "unsigned", later, "abandoned call: 72-hour lock until 09:00 Sun 6"),
                    _task(5, "unsigned", earlier, "can call now", status="claimed"),
                    _task(6, "callback", later, "callback scheduled for 16:00"),
                ],
            )
            # 20 live calls, 1 abandoned (5 %); a machine and an unanswered call do not count
            await conn.execute(
                insert(db.calls),
                [_call(10 + i, answered=True) for i in range(19)]
                + [_call(40, answered=True, abandoned=True, by="human"),
                   _call(41, answered=True, by="machine_end_beep"), _call(42, answered=False)],
            )  # fmt: skip
        environment = {
            **os.environ,
            "DATABASE_URL": dialler.url.render_as_string(hide_password=False),
        }
        process = await asyncio.create_subprocess_exec(
            DIALLER, "queue", "depth", env=environment,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 120)
    text = out.decode()
    assert process.returncode == 0, text
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "unsigned callable now 1 waiting 3 claimed 1" in lines, text
    assert "waiting: cooldown after no_answer 2" in lines, text
    assert "waiting: abandoned call: 72-hour lock 1" in lines, text
    assert "callback callable now 0 waiting 1 claimed 0" in lines, text
    assert "waiting: callback scheduled 1" in lines, text
    assert "outstanding callable now 0 waiting 0 claimed 0" in lines, text
    assert "abandoned calls (24 h): 1 of 20 live calls, 5.0% (OVER the 3% limit)" in lines, text
