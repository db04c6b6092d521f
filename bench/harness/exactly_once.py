"""Exactly-once, checked after agents have claimed over the API: every claim answer named a
claimant no other answer named, and the database agrees (`calls`, `call_tasks`, the audit
log)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness.agents import Claimed
from bench.harness.seed import task_statuses


@dataclass
class Verification:
    http_duplicates: int
    db_call_duplicates: int
    calls_rows: int
    calls_without_http_claim: int
    http_claims_without_call: int
    wrong_agent: int
    still_claimed: int
    claimed_with_lease: int  # granted by the workflow: lease more than 5 minutes away
    claimed_lease_minutes: float  # the longest lease left
    in_cooldown: int
    task_statuses: dict[str, int]
    outcome_audits_duplicated: int


async def verify(
    engine: AsyncEngine, claims: Sequence[Claimed], agent_ids: set[int]
) -> Verification:
    by_user = Counter(c.user_id for c in claims)
    claimer = {c.user_id: c.agent_id for c in claims}
    recorded = sorted({c.user_id for c in claims if c.outcome_ok})
    async with engine.connect() as conn:
        rows = list(await conn.execute(
            text("SELECT user_id, agent_id, count(*) FROM calls WHERE provider = 'manual' "
                 "AND agent_id = ANY(:agents) GROUP BY user_id, agent_id"),
            {"agents": sorted(agent_ids)},
        ))  # fmt: skip
        held = (await conn.execute(text(
            "SELECT count(*), "
            "count(*) FILTER (WHERE lease_expires_at > now() + interval '5 minutes'), "
            "coalesce(extract(epoch FROM max(lease_expires_at) - now()) / 60, 0) "
            "FROM call_tasks WHERE status = 'claimed'"
        ))).one()  # fmt: skip
        in_cooldown = await conn.scalar(
            text("SELECT count(*) FROM call_tasks WHERE user_id = ANY(:users) "
                 "AND status = 'ready' AND not_before > now() + interval '3 hours'"),
            {"users": recorded},
        )  # fmt: skip
        audits = list(await conn.execute(text(
            "SELECT subject_id, count(*) FROM audit_log WHERE action = 'outcome_recorded' "
            "GROUP BY subject_id HAVING count(*) > 1"
        )))  # fmt: skip
    calls_per_user: Counter[int] = Counter()
    wrong_agent = 0
    for user_id, agent_id, n in rows:
        calls_per_user[int(user_id)] += int(n)
        if claimer.get(int(user_id)) != int(agent_id):
            wrong_agent += int(n)
    return Verification(
        http_duplicates=sum(n - 1 for n in by_user.values() if n > 1),
        db_call_duplicates=sum(n - 1 for n in calls_per_user.values() if n > 1),
        calls_rows=sum(calls_per_user.values()),
        calls_without_http_claim=len(set(calls_per_user) - set(by_user)),
        http_claims_without_call=len(set(recorded) - set(calls_per_user)),
        wrong_agent=wrong_agent,
        still_claimed=int(held[0]),
        claimed_with_lease=int(held[1]),
        claimed_lease_minutes=float(held[2]),
        in_cooldown=int(in_cooldown or 0),
        task_statuses=await task_statuses(engine),
        outcome_audits_duplicated=len(audits),
    )
