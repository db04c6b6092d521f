"""Synthetic history for the supervisor pages' benchmark: agents, a million calls over six
months, and the state changes, magic links, conversions and texts that go with them,
written by the database itself (INSERT ... SELECT over generate_series), in about a minute.

The shape (fixed proportions, `setseed` for the draws):

- 100 agents: 90 people over the three queues, 10 AI agents.
- calls: each on a random day of the last `days` (UK), between 08:00 and 21:00 UK time,
  never after now, to a random seeded claimant by a random agent; 3% recorded by hand.
  Outcomes: no answer 35%, busy 5%, voicemail 15%, wrong number 2%, callback 8%, promised
  to sign 8%, promised documents 7%, magic link sent 8%, not interested 6%, do not call 1%,
  completed 4%, none recorded 1%. Spoken calls talk 1-15 minutes (recorded, with notes; AI
  calls keep a transcript), voicemails 20-40 s to a machine, wrong numbers 10-60 s.
- state changes (people): on call, wrap-up, ready around each call they placed, plus a
  working day of signed in / ready / lunch / ready / offline for each agent and day.
- links: one per "magic link sent" call (70% by text), and 10,000 sent by the workflows
  with no call; each sent, 60% opened, 35% used.
- conversions: each claimant who used a link signs an hour later (once per claimant),
  credited to the link's call; 30% of "promised documents" calls bring documents 2 days on.
- texts: after 5% of calls the agent texts the claimant; 40% of those get a reply; and
  20,000 automatic texts.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness.cli import say

PEOPLE, AI_AGENTS = 90, 10
AUTOMATIC_LINKS, AUTOMATIC_TEXTS = 10_000, 20_000
UK_DAY = "date_trunc('day', CAST(:now AS timestamptz) AT TIME ZONE 'Europe/London')"
_COUNTS = re.compile(r":(people|ai|n_users|n_agents|days|calls|links|texts)\b")


def _sql(statement: str) -> TextClause:
    """The statement with its counts typed (asyncpg cannot infer `$1 + $2`)."""
    return text(_COUNTS.sub(r"CAST(:\1 AS int)", statement))


_AGENTS = _sql(
    """
    INSERT INTO agents (email, display_name, role, queue, is_ai)
    SELECT format('history-%s@bench.example', g),
           CASE WHEN g <= :people THEN format('Agent %s', g)
                ELSE format('AI agent %s', g - :people) END,
           'agent', (ARRAY['unsigned', 'outstanding', 'callback'])[1 + g % 3], g > :people
    FROM generate_series(1, :people + :ai) g
    """
)
_AGENT_TABLE = _sql(
    "CREATE TEMP TABLE h_agents ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY id)::int "
    "AS n, id, queue, is_ai FROM agents WHERE email LIKE 'history-%'"
)
_USER_TABLE = _sql(
    "CREATE TEMP TABLE h_users ON COMMIT DROP AS SELECT row_number() OVER (ORDER BY u)::int "
    "AS n, u AS user_id FROM unnest(CAST(:users AS bigint[])) u"
)
_CALLS = _sql(
    f"""
    INSERT INTO calls (
        user_id, agent_id, queue, provider, provider_call_sid, to_number, phone_key,
        from_number, status, started_at, answered_at, ended_at, duration_seconds, answered_by,
        agent_left_at, agent_seconds, disposition, notes, recording_sid, recording_url,
        recording_duration_seconds, recording_notice_played, outcome_key, recording_store,
        recording_key, transcript)
    SELECT user_id, agent_id, queue, CASE WHEN manual THEN 'manual' ELSE 'twilio' END,
           CASE WHEN NOT manual THEN 'CA' || md5('call' || g) END, to_number,
           encode(sha256(convert_to(to_number, 'UTF8')), 'hex'), '+447700900000',
           CASE WHEN manual THEN 'completed' WHEN disposition = 'no_answer' THEN 'no-answer'
                WHEN disposition = 'busy' THEN 'busy' ELSE 'completed' END,
           started,
           CASE WHEN answered THEN started + interval '15 seconds' END,
           started + make_interval(secs => 20 + talk),
           CASE WHEN manual THEN NULL WHEN answered THEN talk + 5 ELSE 0 END,
           CASE WHEN answered THEN answered_by END,
           CASE WHEN answered THEN started + make_interval(secs => 20 + talk) END,
           CASE WHEN manual THEN NULL ELSE talk END,
           disposition,
           CASE WHEN spoke
                THEN 'Spoke with the claimant about their claim; follow up as agreed.' END,
           CASE WHEN answered THEN 'RE' || md5('rec' || g) END,
           CASE WHEN answered THEN 'https://api.twilio.com/recordings/RE' || md5('rec' || g) END,
           CASE WHEN answered THEN talk END, answered,
           CASE WHEN disposition IS NOT NULL THEN 'history:' || g END,
           CASE WHEN answered THEN 'twilio' END,
           CASE WHEN answered THEN 'RE' || md5('rec' || g) END,
           CASE WHEN spoke AND is_ai THEN repeat('AI: Hello, this is Resolve My Claim. ', 8) END
    FROM (
        SELECT s.*, u.user_id, a.id AS agent_id, a.queue, a.is_ai,
               '+447700' || lpad((u.user_id % 1000000)::text, 6, '0') AS to_number,
               NOT s.manual AND coalesce(s.disposition, '') NOT IN ('no_answer', 'busy')
                   AS answered,
               coalesce(s.disposition, '') NOT IN (
                   'no_answer', 'busy', 'voicemail_left', 'wrong_number') AS spoke,
               CASE WHEN s.disposition = 'voicemail_left' THEN 'machine_end_beep'
                    ELSE 'human' END AS answered_by,
               CASE WHEN s.manual OR s.disposition IN ('no_answer', 'busy') THEN 0
                    WHEN s.disposition = 'voicemail_left' THEN 20 + floor(s.r_len * 20)::int
                    WHEN s.disposition = 'wrong_number' THEN 10 + floor(s.r_len * 50)::int
                    ELSE 60 + floor(s.r_len * 840)::int END AS talk
        FROM (
            SELECT g, r_len, random() < 0.03 AS manual,
                   1 + floor(random() * :n_users)::int AS un,
                   1 + floor(random() * :n_agents)::int AS an,
                   CASE WHEN day_time > CAST(:now AS timestamptz)
                        THEN day_time - interval '1 day' ELSE day_time END AS started,
                   CASE WHEN r_outcome < 0.35 THEN 'no_answer' WHEN r_outcome < 0.40 THEN 'busy'
                        WHEN r_outcome < 0.55 THEN 'voicemail_left'
                        WHEN r_outcome < 0.57 THEN 'wrong_number'
                        WHEN r_outcome < 0.65 THEN 'callback_requested'
                        WHEN r_outcome < 0.73 THEN 'promised_to_sign'
                        WHEN r_outcome < 0.80 THEN 'promised_documents'
                        WHEN r_outcome < 0.88 THEN 'magic_link_sent'
                        WHEN r_outcome < 0.94 THEN 'not_interested'
                        WHEN r_outcome < 0.95 THEN 'do_not_call'
                        WHEN r_outcome < 0.99 THEN 'completed' END AS disposition
            FROM (
                SELECT g, random() AS r_outcome, random() AS r_len,
                       (({UK_DAY} - make_interval(days => floor(random() * :days)::int)
                         + make_interval(secs => 28800 + random() * 46800))
                        AT TIME ZONE 'Europe/London') AS day_time
                FROM generate_series(1, :calls) g
            ) drawn
        ) s
        JOIN h_users u ON u.n = s.un
        JOIN h_agents a ON a.n = s.an
    ) c
    """
)
_CALL_STATES = _sql(
    """
    INSERT INTO agent_state_changes (agent_id, state, at)
    SELECT c.agent_id, s.state, s.at
    FROM calls c
    JOIN h_agents a ON a.id = c.agent_id AND NOT a.is_ai
    CROSS JOIN LATERAL (VALUES
        ('on_call', c.started_at),
        ('wrap_up', c.ended_at),
        ('ready', c.ended_at + interval '40 seconds')
    ) s(state, at)
    WHERE c.provider <> 'manual'
    """
)
_DAY_STATES = _sql(
    f"""
    INSERT INTO agent_state_changes (agent_id, state, reason, at)
    SELECT id, state, reason, at FROM (
        SELECT a.id, s.state, s.reason,
               ({UK_DAY} - make_interval(days => d) + s.at_time) AT TIME ZONE 'Europe/London'
                   AS at
        FROM h_agents a
        CROSS JOIN generate_series(0, :days - 1) d
        CROSS JOIN (VALUES
            ('paused', 'signed in', time '07:55'), ('ready', NULL, time '08:00'),
            ('paused', 'Lunch', time '12:30'), ('ready', NULL, time '13:15'),
            ('offline', NULL, time '21:05')
        ) s(state, reason, at_time)
        WHERE NOT a.is_ai
    ) day WHERE at <= CAST(:now AS timestamptz)
    """
)
_CALL_LINKS = _sql(
    """
    INSERT INTO magic_links (user_id, token_hash, channel, purpose, created_by, created_at,
                             expires_at, source_kind, source_ref)
    SELECT user_id, encode(sha256(convert_to('link' || id, 'UTF8')), 'hex'),
           CASE WHEN random() < 0.7 THEN 'sms' ELSE 'email' END,
           CASE queue WHEN 'outstanding' THEN 'documents' ELSE 'signature' END,
           agent_id, ended_at, ended_at + interval '7 days', 'call', id::text
    FROM calls WHERE disposition = 'magic_link_sent'
    """
)
_AUTOMATIC_LINKS = _sql(
    f"""
    INSERT INTO magic_links (user_id, token_hash, channel, purpose, created_at, expires_at)
    SELECT u.user_id, encode(sha256(convert_to('auto-link' || g, 'UTF8')), 'hex'), 'sms',
           'signature', at, at + interval '7 days'
    FROM (SELECT g, 1 + floor(random() * :n_users)::int AS un,
                 LEAST(CAST(:now AS timestamptz), ({UK_DAY} - make_interval(
                     days => floor(random() * :days)::int, secs => -36000)) AT TIME ZONE
                     'Europe/London') AS at
          FROM generate_series(1, :links) g) l
    JOIN h_users u ON u.n = l.un
    """
)
_LINK_EVENTS = _sql(
    """
    INSERT INTO magic_link_events (link_id, event, at)
    SELECT l.id, e.event, l.created_at + e.after
    FROM (SELECT id, created_at, random() AS r FROM magic_links) l
    CROSS JOIN LATERAL (VALUES ('sent', interval '0'), ('opened', interval '1 hour'),
                               ('used', interval '2 hours')) e(event, after)
    WHERE (e.event = 'sent' OR (e.event = 'opened' AND l.r < 0.6)
           OR (e.event = 'used' AND l.r < 0.35))
      AND l.created_at + e.after <= CAST(:now AS timestamptz)
    """
)
_SIGNED = _sql(
    """
    INSERT INTO conversions (event_id, subject_key, user_id, kind, occurred_at, contact_kind,
                             contact_ref, contact_at, agent_id, queue, link_id)
    SELECT DISTINCT ON (l.user_id) 'history:signed:' || l.user_id, 'signature:' || l.user_id,
           l.user_id, 'signed', e.at + interval '1 hour', l.source_kind, l.source_ref,
           c.started_at, l.created_by, c.queue, l.id
    FROM magic_links l
    JOIN magic_link_events e ON e.link_id = l.id AND e.event = 'used'
    LEFT JOIN calls c ON l.source_kind = 'call' AND c.id = CAST(l.source_ref AS bigint)
    WHERE e.at + interval '1 hour' <= CAST(:now AS timestamptz)
    ORDER BY l.user_id, e.at
    """
)
_DOCUMENTS = _sql(
    """
    INSERT INTO conversions (event_id, subject_key, user_id, kind, claim_id, occurred_at,
                             contact_kind, contact_ref, contact_at, agent_id, queue)
    SELECT 'history:documents:' || id, 'requirement:history-' || id, user_id, 'documents',
           user_id, started_at + interval '2 days', 'call', id::text, started_at, agent_id, queue
    FROM calls
    WHERE disposition = 'promised_documents' AND random() < 0.3
      AND started_at + interval '2 days' <= CAST(:now AS timestamptz)
    """
)
_TEXTS = _sql(
    """
    INSERT INTO sms_messages (user_id, direction, provider_sid, from_number, to_number, body,
                              status, agent_id, created_at)
    SELECT user_id, 'outbound', 'SM' || md5('out' || id), '+447700900000', to_number,
           'Resolve My Claim: as promised, here is the link to sign your claim.', 'delivered',
           agent_id, ended_at + interval '1 minute'
    FROM calls WHERE random() < 0.05 AND ended_at + interval '1 minute' <= CAST(:now AS timestamptz)
    """
)
_REPLIES = _sql(
    """
    INSERT INTO sms_messages (user_id, direction, provider_sid, from_number, to_number, body,
                              status, created_at)
    SELECT user_id, 'inbound', 'SM' || md5('in' || id), to_number, from_number,
           'Thanks, will do it tonight', 'received', created_at + interval '30 minutes'
    FROM sms_messages
    WHERE direction = 'outbound' AND random() < 0.4
      AND created_at + interval '30 minutes' <= CAST(:now AS timestamptz)
    """
)
_AUTOMATIC_TEXTS = _sql(
    f"""
    INSERT INTO sms_messages (user_id, direction, provider_sid, from_number, to_number, body,
                              status, created_at)
    SELECT u.user_id, 'outbound', 'SM' || md5('auto' || g), '+447700900000',
           '+447700' || lpad((u.user_id % 1000000)::text, 6, '0'),
           'Resolve My Claim: your claim needs your signature.', 'delivered', at
    FROM (SELECT g, 1 + floor(random() * :n_users)::int AS un,
                 LEAST(CAST(:now AS timestamptz), ({UK_DAY} - make_interval(
                     days => floor(random() * :days)::int, secs => -39600)) AT TIME ZONE
                     'Europe/London') AS at
          FROM generate_series(1, :texts) g) t
    JOIN h_users u ON u.n = t.un
    """
)
TABLES = ("agents", "calls", "agent_state_changes", "magic_links", "magic_link_events",
          "conversions", "sms_messages")  # fmt: skip


@dataclass
class History:
    rows: dict[str, int]
    seconds: float
    table_mib: dict[str, float]


async def write_history(
    dialler: AsyncEngine,
    users: list[int],
    now: datetime,
    calls: int,
    days: int,
    *,
    only: Collection[str] | None = None,
) -> History:
    """The synthetic history (module docstring) in the dialler database, vacuumed and
    analysed as autovacuum would leave it. `only` names the steps to write (by their names
    below; the agents always): a benchmark that needs no state changes or texts skips them."""
    began = time.perf_counter()
    params = {"now": now, "days": days, "calls": calls, "n_users": len(users),
              "n_agents": PEOPLE + AI_AGENTS, "links": AUTOMATIC_LINKS,
              "texts": AUTOMATIC_TEXTS}  # fmt: skip
    steps = [
        ("calls", _CALLS), ("state changes around calls", _CALL_STATES),
        ("working days", _DAY_STATES), ("links from calls", _CALL_LINKS),
        ("automatic links", _AUTOMATIC_LINKS), ("link events", _LINK_EVENTS),
        ("signatures", _SIGNED), ("documents", _DOCUMENTS), ("texts", _TEXTS),
        ("replies", _REPLIES), ("automatic texts", _AUTOMATIC_TEXTS),
    ]  # fmt: skip
    async with dialler.begin() as conn:
        await conn.execute(text("SELECT setseed(0.2026)"))
        await conn.execute(_AGENTS, {"people": PEOPLE, "ai": AI_AGENTS})
        await conn.execute(_AGENT_TABLE)
        await conn.execute(_USER_TABLE, {"users": users})
        for name, statement in steps:
            if only is not None and name not in only:
                continue
            step = time.perf_counter()
            result = await conn.execute(statement, params)
            say(f"  {name}: {result.rowcount:,} rows in {time.perf_counter() - step:.1f}s")
    async with dialler.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in TABLES:
            await conn.execute(text(f"VACUUM (ANALYZE) {table}"))
        rows = {t: int(await conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in TABLES}
        sizes = {
            t: float(await conn.scalar(text(f"SELECT pg_total_relation_size('{t}')")) or 0) / 2**20
            for t in TABLES
        }
    return History(rows, time.perf_counter() - began, sizes)
