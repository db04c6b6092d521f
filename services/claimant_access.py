"""Who may see or act on a claimant: the one rule behind every claimant-scoped route (declared
with `web.auth.claimants.claimant_scoped`) and the SMS inbox.

Supervisors and admins may see every claimant. An agent (a person or an AI) may see a claimant
when the agent

- holds the claimant's claim (their call task is claimed by this agent), or
- owns the claimant's pending personal callback, or
- has the claimant's SMS conversation assigned. The dialler keeps no assignment table, so a
  conversation is assigned to the agent who last worked the claimant: whoever placed the
  latest call or sent the latest text to them (an outcome recorded without a call counts as
  a call). A claimant who texts back reaches whoever last spoke to them; a later call or
  text by another agent moves the conversation to that agent.

Everyone else, however senior in their own queue, is refused, and the routes answer as if
the claimant did not exist.
"""

from __future__ import annotations

from sqlalchemy import Select, Subquery, literal_column, select, union, union_all
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import call_log, sms_outbox, task_store
from schemas.enums import AgentRole

SEES_EVERY_CLAIMANT = frozenset({AgentRole.SUPERVISOR, AgentRole.ADMIN})
# The largest id PostgreSQL's BIGINT holds: a bigger one names nobody (and must not reach SQL).
MAX_ID = 2**63 - 1


def _agent_contacts() -> Subquery:
    """Every call placed and text sent by an agent: (user_id, agent_id, at)."""
    calls = call_log.calls_by_agents_query()
    texts = sms_outbox.texts_by_agents_query()
    return union_all(calls, texts).subquery("contacts")


def visible_claimants(agent_id: int) -> Select[tuple[int]]:
    """The user ids an agent may see, as a query to filter by (`user_id IN (...)`)."""
    claimed = task_store.claimed_by_query(agent_id)
    personal_callbacks = call_log.personal_callbacks_query(agent_id)
    # Only claimants this agent ever contacted can have their conversation assigned to them.
    contacted = union(
        call_log.called_by_query(agent_id),
        sms_outbox.texted_by_query(agent_id),
    ).subquery("contacted")
    contacts = _agent_contacts()
    last_worker = (
        select(contacts.c.user_id, contacts.c.agent_id)
        .where(contacts.c.user_id.in_(select(contacted.c.user_id)))
        .ext(distinct_on(contacts.c.user_id))
        .order_by(contacts.c.user_id, contacts.c.at.desc())
        .subquery("last_worker")
    )
    assigned = select(last_worker.c.user_id).where(last_worker.c.agent_id == agent_id)
    return select(literal_column("user_id")).select_from(
        union(claimed, personal_callbacks, assigned).subquery("visible")
    )


async def may_see(engine: AsyncEngine, role: AgentRole, agent_id: int, user_id: int) -> bool:
    """Whether this member of staff may see (and act on) the claimant `user_id`."""
    if not 0 < user_id <= MAX_ID:
        return False
    if role in SEES_EVERY_CLAIMANT:
        return True
    contacts = _agent_contacts()
    last_worker = (
        select(contacts.c.agent_id)
        .where(contacts.c.user_id == user_id)
        .order_by(contacts.c.at.desc())
        .limit(1)
        .scalar_subquery()
    )
    holds_claim = task_store.holds_claim_query(user_id, agent_id)
    owns_callback = call_log.owns_callback_query(user_id, agent_id)
    query = select(holds_claim.exists() | owns_callback.exists() | (last_worker == agent_id))
    async with engine.connect() as conn:
        return bool(await conn.scalar(query))


async def claimant_of_call(engine: AsyncEngine, call_id: int) -> int | None:
    """The claimant a call was made to (None: no such call)."""
    if not 0 < call_id <= MAX_ID:
        return None
    return await call_log.claimant_of_call(engine, call_id)


async def call_parties(engine: AsyncEngine, call_id: int) -> call_log.CallParties | None:
    """The claimant a call was made to and the agent who made it (None: no such call)."""
    if not 0 < call_id <= MAX_ID:
        return None
    return await call_log.parties_of_call(engine, call_id)
