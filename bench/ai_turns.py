"""AI agent: the overhead per turn, the time outside the model and the telephony (issue 13).

    .venv/bin/python -m bench.ai_turns [--turns 200] [--model-delay-ms 0] [--users 1000]
        [--no-record]

The product's processes on a stack of their own: a Temporal dev server, scratch PostgreSQL
and MariaDB databases with demo data, the web app (`dialler web`, as in production), an AI
worker (this module with a hidden `--worker`: the product's `build_ai_worker` with
`ai_activities`, as `dialler worker ai` builds it, with calling windows open all day so the
AI may dial at any hour), the outreach worker (`bench.harness.worker`; the AI contact's
outreach task queue), and in this process the scripted fake model (`tests/fake_openai.py`,
the real `openai` client in the worker talks to it over HTTP). Twilio is this process: the
AI's calls are simulated (`adapters.ai_telephony`) and the bench posts the signed webhooks
Twilio would. So no telephony and no model time is in the figures: the fake model answers
at once (or after `--model-delay-ms`), and each model call's time as the fake server saw it
(request read to answer written) is subtracted from the turn's.

One turn at a time, in rounds (so every series sees the same load): each round a bare
Update baseline, then three AI contacts (`AiContact` on the AI task queue, started directly
with the input the outreach workflow gives its child), 10 claimant turns each (the `[ai]`
turn limit is 12), alternately a text reply and a reply after one tool call (`claim_context`:
a model call, `ai_check_tool`, `ai_claim_context`, a model call):

- (a) voice through the webhook: `POST /webhooks/ai/voice/turn?c=<id>&t=<n>`, signed as
  Twilio signs, from the request to the TwiML (checked: the scripted reply and a Gather);
- (b) voice through the Update alone: `AiContactClient.claimant_said`, its round trip;
- SMS: `AiContactClient.claimant_texted` (the signal) to the reply's `sms_messages` row
  written (its `created_at`; the bench polls for it every 5 ms);
- baseline: the same door's `claimant_said` on `BenchNoopUpdate`, an empty workflow whose
  Update of the same name and types returns at once, on the AI worker's process.

Overhead = turn - model time (fake server). Each turn's time is then split with the
workflow's history (server timestamps: activity dispatch, activity execution, workflow
tasks) and the model call as the worker timed it (`ai_steps.latency_ms`), and the rows a
turn writes to `ai_steps` are counted.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import argparse
    import asyncio
    import contextlib
    import functools
    import importlib
    import os
    import shutil
    import signal
    import sys
    import tempfile
    import time
    import uuid
    from collections import Counter
    from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
    from dataclasses import dataclass, field, fields
    from pathlib import Path
    from typing import Any

    import httpx
    from sqlalchemy import insert, text
    from sqlalchemy.ext.asyncio import AsyncEngine
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.history.v1 import HistoryEvent
    from temporalio.client import Client
    from temporalio.worker import Worker

    from adapters.ai_model import ChatModel, model_config
    from adapters.databases import dialler_engine, replica_engine
    from adapters.temporal import DATA_CONVERTER
    from bench.harness.cli import Figure, RunRecord, Table, finish, params, parser, run, say
    from bench.harness.machine import Phase, code_version, load_table, machine_info, stamp
    from bench.harness.seed import open_rules, seed
    from bench.harness.stack import (
        Databases,
        child_process,
        connect_client,
        dev_server,
        dialler,
        free_port,
        keep_logs,
        scratch_databases,
        serving,
        stack_env,
    )
    from bench.harness.stats import LATENCY_COLUMNS, latency_row, ms, percentile
    from bench.harness.worker import METRICS_ENV
    from config.logging import configure_logging
    from config.settings import Settings, load_settings
    from schemas import dialler_db as db
    from schemas.ai import AiChannel, AiContactInput, AiReply, ClaimantTurn
    from schemas.enums import AgentRole, Queue
    from tests.fake_http import serving as serving_fake
    from tests.fake_openai import FakeModel, _handler
    from web.blueprints.webhooks_ai import ANSWER_PATH, TURN_PATH
    from web.twilio_signature import public_url, sign
    from workers.ai_agent import ai_activities, build_ai_worker
    from workflows.ai_contact_client import AiContactClient

AI_QUEUE = "bench-ai-agents"
BASELINE_QUEUE = "bench-ai-baseline"
OUTREACH_QUEUE = "bench-ai-outreach"
REDIS_URL = "redis://127.0.0.1:6379/11"  # this benchmark's own database (BENCH_REDIS_URL)
AI_CONTACT = "AiContact"  # the workflow type, as registered
AI_AGENT_EMAIL = "ai-agent@bench.example"
ACCOUNT = "AC" + "0" * 32
TURNS_PER_CONTACT = 10  # under the [ai] max_turns of 12: no contact hits the turn limit
WARM_UP_TURNS = 4  # per path, on contacts of their own, not measured
PAUSE = 0.05  # seconds between turns: what a turn leaves behind settles first
SMS_POLL = 0.005
WITHIN = 30.0  # seconds any one step may take before the run stops
PATHS = ("webhook", "update", "sms")
KINDS = ("text", "tool")
PATH_NAMES = {
    "webhook": "voice turn, signed webhook → TwiML",
    "update": "voice turn, `claimant_said` Update alone",
    "sms": "SMS turn, signal → reply row written",
}
KIND_NAMES = {"text": "text reply", "tool": "one tool call (claim_context)"}
SPEECH = {
    "text": "Yes, I can upload my bank statements this week.",
    "tool": "Which documents do you still need from me?",
}

_CLAIMANTS = text(
    """
    SELECT u.id FROM users u
    WHERE u.phone_number IS NOT NULL AND u.is_enabled AND NOT u.is_vulnerable
      AND u.status = 'active'
      AND EXISTS (SELECT 1 FROM consents c WHERE c.user_id = u.id
                  AND c.channel = 'automated_call' AND c.withdrawn_at IS NULL)
      AND EXISTS (SELECT 1 FROM consents c WHERE c.user_id = u.id
                  AND c.channel = 'sms' AND c.withdrawn_at IS NULL)
    ORDER BY u.id
    """
)
_CONVERSATION = text(
    "SELECT id, call_id, status FROM ai_conversations WHERE workflow_id = :workflow_id"
)
_STEPS = text("SELECT count(*) FROM ai_steps WHERE conversation_id = :c")
_SMS_STEPS = text(
    "SELECT count(*) FROM ai_steps WHERE conversation_id = :c AND tool_name = 'send_sms'"
)
_REPLY = text(
    "SELECT id, body, extract(epoch FROM created_at) FROM sms_messages "
    "WHERE user_id = :u AND direction = 'outbound' AND id > :after ORDER BY id LIMIT 1"
)
_LAST_SMS = text("SELECT coalesce(max(id), 0) FROM sms_messages WHERE user_id = :u")
_MODEL_STEPS = text(
    "SELECT latency_ms FROM ai_steps WHERE conversation_id = :c AND kind = 'model' ORDER BY id"
)


# --- the baseline: an empty workflow with a no-op Update of the same name and types -----------


@workflow.defn(name="BenchNoopUpdate")
class NoopUpdateWorkflow:
    def __init__(self) -> None:
        self._done = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._done)

    @workflow.update
    async def claimant_said(self, turn: ClaimantTurn) -> AiReply:
        return AiReply(say=turn.text)

    @workflow.signal
    def finish(self) -> None:
        self._done = True


# --- the AI worker process ---------------------------------------------------------------------


async def worker_process() -> int:
    """The AI worker as `dialler worker ai` builds it (`ai_activities`, `build_ai_worker`),
    configured through the environment, with two differences a benchmark needs: calling
    windows open all day (the AI dials at any hour) and no agent-state or floor updates.
    The baseline workflow polls its own task queue in this same process."""
    settings = load_settings()
    configure_logging(settings.log_level)
    config = model_config(settings)
    if config is None:
        raise RuntimeError("OPENAI_MODEL is empty")
    client = await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        identity=f"bench-ai-worker-{os.getpid()}",
    )
    dialler_db = dialler_engine(settings, pool_size=10, pre_ping=False)
    replica = replica_engine(settings, pool_size=5, pre_ping=False)
    model = ChatModel(config)
    activities = ai_activities(settings, client, dialler_db, replica, model, open_rules())
    # the workflow class as the sandbox imports it (this file runs as __main__ here)
    baseline = importlib.import_module("bench.ai_turns").NoopUpdateWorkflow
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with (
        build_ai_worker(client, settings.ai_task_queue, activities),
        Worker(client, task_queue=BASELINE_QUEUE, workflows=[baseline]),
    ):
        print("bench AI worker polling", settings.ai_task_queue, BASELINE_QUEUE, flush=True)
        await stop.wait()
    await model.close()
    await dialler_db.dispose()
    await replica.dispose()
    return 0


# --- the fake model, timed as it sees each call ----------------------------------------------


@contextlib.contextmanager
def timed_fake_model(delay_seconds: float) -> Iterator[tuple[FakeModel, list[float]]]:
    """`tests/fake_openai.py`'s server, each request's time as the server saw it (from its
    request line read to its answer written, `delay_seconds` included) appended to the list."""
    model = FakeModel()
    served: list[float] = []

    class Timed(_handler(model)):  # type: ignore[misc]
        def do_POST(self) -> None:
            began = time.perf_counter()
            if delay_seconds:
                time.sleep(delay_seconds)
            super().do_POST()
            served.append(time.perf_counter() - began)

    with serving_fake(Timed) as url:
        model.base_url = f"{url}/v1"
        yield model, served


# --- what was measured -----------------------------------------------------------------------


@dataclass
class Span:
    """One turn in the workflow's history (server timestamps, epoch seconds): from the
    workflow task that delivered it (Update) or the signal, to the Update's completion or
    the reply's `ai_send_sms` completion."""

    start: float
    end: float = 0.0
    workflow_tasks: float = 0.0  # scheduled → completed, summed
    workflow_code: float = 0.0  # of which started → completed: the worker running the workflow
    dispatch: float = 0.0  # activities scheduled → started, summed
    execution: dict[str, float] = field(default_factory=dict)  # started → closed, by type
    activities: Counter[str] = field(default_factory=Counter)
    started: dict[str, float] = field(default_factory=dict)  # the last start, by type


@dataclass
class Turn:
    path: str  # webhook, update or sms
    kind: str  # text or tool
    index: int  # in its contact, from 0
    total: float  # seconds
    model_server: float  # the fake server's time for this turn's model calls
    model_calls: int
    steps: int  # ai_steps rows written
    done_at: float = 0.0  # epoch: the SMS reply row's created_at
    model_worker: float | None = None  # the worker's own timing (ai_steps.latency_ms)
    span: Span | None = None

    @property
    def overhead(self) -> float:
        return self.total - self.model_server


@dataclass
class Contact:
    path: str
    workflow_id: str
    conversation_id: int
    user_id: int
    call_sid: str = ""
    turns: list[Turn] = field(default_factory=list)


@dataclass
class Result:
    turns: list[Turn] = field(default_factory=list)
    baseline: list[Turn] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)  # answer webhook → opening TwiML
    contacts: list[Contact] = field(default_factory=list)
    unmatched_histories: int = 0


def _at(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


def history_spans(events: Iterable[HistoryEvent], *, sms: bool) -> list[Span]:
    """The turns of an AI contact's (or the baseline's) history, in order: voice turns
    begin at the workflow task that delivered their Update (its scheduled event comes
    before the Update's acceptance) and end at its completion; SMS turns begin at the
    `claimant_texted` signal and end when the reply's `ai_send_sms` completes."""
    spans: list[Span] = []
    current: Span | None = None
    task_scheduled: float | None = None
    task_started: float | None = None
    task_completed: float | None = None
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, float] = {}
    for event in events:
        kind, at = event.event_type, _at(event)
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            task_scheduled = task_started = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            task_started = at
        elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            task_completed = at
            if current is not None and task_scheduled is not None and task_started is not None:
                current.workflow_tasks += at - task_scheduled
                current.workflow_code += at - task_started
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED and not sms:
            if task_scheduled is None or task_started is None or task_completed is None:
                continue
            current = Span(
                start=task_scheduled,
                workflow_tasks=task_completed - task_scheduled,
                workflow_code=task_completed - task_started,
            )
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED and not sms:
            if current is not None:
                current.end = at
                spans.append(current)
                current = None
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and sms:
            if event.workflow_execution_signaled_event_attributes.signal_name == "claimant_texted":
                current = Span(start=at)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = (name, at)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = at
        elif kind in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        ):
            attrs = (
                event.activity_task_completed_event_attributes
                if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                else event.activity_task_failed_event_attributes
            )
            name, queued = scheduled.get(attrs.scheduled_event_id, ("?", at))
            began = started.get(attrs.scheduled_event_id, queued)
            if current is None:
                continue
            current.activities[name] += 1
            current.dispatch += began - queued
            current.execution[name] = current.execution.get(name, 0.0) + at - began
            current.started[name] = began
            if sms and name == "ai_send_sms":
                current.end = at
                spans.append(current)
                current = None
    return spans


@dataclass(frozen=True)
class Parts:
    """Where one turn's time went (seconds); the parts add up to the turn's total."""

    model_server: float  # the fake model's own time
    model_client: float  # the worker's model call beyond that: the openai client, HTTP
    activity_rest: float  # activity execution beyond the model call: DB reads and writes
    dispatch: float  # activity scheduled → started
    workflow_tasks: float
    other: float  # the Update/signal RPCs, the web app (webhook), gaps between events
    workflow_code: float = 0.0  # of workflow_tasks, started → completed (not added again)

    @property
    def overhead(self) -> float:
        return self.total - self.model_server

    @property
    def total(self) -> float:
        return (self.model_server + self.model_client + self.activity_rest + self.dispatch
                + self.workflow_tasks + self.other)  # fmt: skip


def parts_of(turn: Turn) -> Parts | None:
    """Split a turn with its history span and the worker's model timing; None when either
    is missing. An SMS turn ends at the reply's row, part-way through `ai_send_sms`."""
    span = turn.span
    if span is None or turn.model_worker is None:
        return None
    execution = sum(span.execution.values())
    if turn.path == "sms" and "ai_send_sms" in span.started:
        execution -= span.end - max(turn.done_at, span.started["ai_send_sms"])
    model_client = turn.model_worker - turn.model_server
    rest = execution - turn.model_worker
    other = turn.total - execution - span.dispatch - span.workflow_tasks
    return Parts(
        turn.model_server,
        model_client,
        rest,
        span.dispatch,
        span.workflow_tasks,
        other,
        span.workflow_code,
    )


def mean_parts(parts: Sequence[Parts]) -> Parts:
    n = len(parts)
    return Parts(*(sum(getattr(p, f.name) for p in parts) / n for f in fields(Parts)))


# --- driving the product -------------------------------------------------------------------


async def until(probe: Callable[[], Awaitable[Any]], what: str, interval: float = 0.01) -> Any:
    """Poll `probe` until it returns something truthy (then return it); stop the run after
    WITHIN seconds."""
    deadline = time.monotonic() + WITHIN
    while True:
        found = await probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: nothing after {WITHIN:.0f} s")
        await asyncio.sleep(interval)


@dataclass
class Bench:
    client: Client
    door: AiContactClient
    http: httpx.AsyncClient
    settings: Settings  # what the web app signs with (secret key, public URL)
    engine: AsyncEngine
    model: FakeModel
    served: list[float]
    ai_agent_id: int
    claimants: list[int]
    answers: list[float] = field(default_factory=list)  # answer webhook → opening TwiML

    async def scalar(self, statement: Any, **values: Any) -> Any:
        async with self.engine.connect() as conn:
            return await conn.scalar(statement, values)

    async def start(self, path: str) -> Contact:
        """An AI contact with the next claimant (the outreach workflow's child input), once
        its call is placed (voice: then answered through the signed answer webhook, and the
        workflow has heard of it) or its opening text sent. Claimants the AI may not contact
        after all (an opt-out, say) are skipped."""
        channel = AiChannel.SMS if path == "sms" else AiChannel.VOICE
        while self.claimants:
            user_id = self.claimants.pop(0)
            workflow_id = f"bench-ai-contact-{path}-{user_id}"
            await self.client.start_workflow(
                AI_CONTACT,
                AiContactInput(
                    user_id=user_id,
                    channel=channel,
                    queue=Queue.OUTSTANDING.value,
                    ai_agent_id=self.ai_agent_id,
                    claim_key=f"bench-{uuid.uuid4().hex}",
                    outreach_task_queue=OUTREACH_QUEUE,
                ),
                id=workflow_id,
                task_queue=AI_QUEUE,
            )
            row = await until(
                functools.partial(self._ready, workflow_id, channel), "contact started"
            )
            conversation_id, call_id, status = row
            if status != "active":
                continue
            contact = Contact(path, workflow_id, int(conversation_id), user_id)
            if channel is AiChannel.VOICE:
                contact.call_sid = f"CAbench{call_id:027d}"
                began = time.perf_counter()
                answered = await self.post(
                    f"{ANSWER_PATH}?c={conversation_id}",
                    self._voice(contact, AnsweredBy="human", CallStatus="in-progress"),
                )
                self.answers.append(time.perf_counter() - began)
                if "automated assistant" not in answered:
                    raise RuntimeError(f"the answer webhook said: {answered[:200]}")
                await until(functools.partial(self._heard_answer, workflow_id), "answer signalled")
            return contact
        raise RuntimeError("out of claimants: seed more (--users)")

    async def _ready(self, workflow_id: str, channel: AiChannel) -> Any:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_CONVERSATION, {"workflow_id": workflow_id})).one_or_none()
            if row is None:
                return None
            conversation_id, call_id, status = row
            if status != "active":
                return row
            if channel is AiChannel.VOICE:
                return row if call_id is not None else None
            sent = await conn.scalar(_SMS_STEPS, {"c": conversation_id})
            return row if sent else None

    async def _heard_answer(self, workflow_id: str) -> bool:
        """The workflow has the answer's `call_progress` signal and finished the task."""
        history = await self.client.get_workflow_handle(workflow_id).fetch_history()
        signalled = False
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                signalled = True
            elif signalled and event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                return True
        return False

    def _voice(self, contact: Contact, **values: str) -> dict[str, str]:
        return {"AccountSid": ACCOUNT, "CallSid": contact.call_sid, **values}

    async def post(self, path: str, form: dict[str, str]) -> str:
        """POST as Twilio does: signed for the public URL (signing is Twilio's time, so it
        is done before the clock starts in `turn`)."""
        signature = sign(self.settings, public_url(self.settings, path), form)
        response = await self.http.post(path, data=form, headers={"X-Twilio-Signature": signature})
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
        return response.text

    def script(self, kind: str, reply: str) -> int:
        """The fake model's answers for one turn; how many model calls it takes."""
        if kind == "tool":
            self.model.reply_tool("claim_context", {})
            self.model.reply_text(reply)
            return 2
        self.model.reply_text(reply)
        return 1

    async def turn(self, contact: Contact, kind: str, index: int) -> Turn:
        """One claimant turn, timed from the request (or signal) to the answer (or the
        reply's row); checked to carry the scripted reply."""
        reply = f"Thank you. Noted for turn {index + 1}, {kind}."
        calls = self.script(kind, reply)
        served_before = len(self.served)
        steps_before = int(await self.scalar(_STEPS, c=contact.conversation_id))
        turn_id = f"{contact.call_sid or 'SMbench'}:{index + 1}"
        said = ClaimantTurn(text=SPEECH[kind], turn_id=turn_id)
        done_at = 0.0
        if contact.path == "webhook":
            path = f"{TURN_PATH}?c={contact.conversation_id}&t={index + 1}"
            form = self._voice(contact, SpeechResult=SPEECH[kind], Confidence="0.91")
            signature = sign(self.settings, public_url(self.settings, path), form)
            began = time.perf_counter()
            response = await self.http.post(
                path, data=form, headers={"X-Twilio-Signature": signature}
            )
            total = time.perf_counter() - began
            body = response.text
            if response.status_code != 200 or reply not in body or "<Gather" not in body:
                raise RuntimeError(f"turn {index + 1}: {response.status_code} {body[:300]}")
        elif contact.path == "update":
            began = time.perf_counter()
            answer = await self.door.claimant_said(contact.workflow_id, said)
            total = time.perf_counter() - began
            if answer.say != reply or answer.end:
                raise RuntimeError(f"turn {index + 1}: the Update answered {answer}")
        else:
            after = int(await self.scalar(_LAST_SMS, u=contact.user_id))
            sent_at = time.time()
            await self.door.claimant_texted(contact.workflow_id, said)
            row = await until(lambda: self._reply(contact.user_id, after), "SMS reply", SMS_POLL)
            if row.body != reply:
                raise RuntimeError(f"turn {index + 1}: the reply SMS said {row.body[:200]}")
            done_at = float(row[2])
            total = done_at - sent_at
            sms_steps = 2 + index  # the opening's and each reply's: the activity has ended
            await until(
                lambda: self._sms_steps(contact.conversation_id, sms_steps), "send_sms step"
            )
        await until(lambda: self._served(served_before + calls), "model timing")
        if self.model.remaining:
            raise RuntimeError(f"turn {index + 1}: {self.model.remaining} model replies unused")
        self.model.requests.clear()
        steps = int(await self.scalar(_STEPS, c=contact.conversation_id)) - steps_before
        model_server = sum(self.served[served_before:])
        if len(self.served) != served_before + calls:
            raise RuntimeError(f"turn {index + 1}: {len(self.served) - served_before} model calls")
        return Turn(contact.path, kind, index, total, model_server, calls, steps, done_at)

    async def _reply(self, user_id: int, after: int) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(_REPLY, {"u": user_id, "after": after})).one_or_none()

    async def _sms_steps(self, conversation_id: int, wanted: int) -> bool:
        return int(await self.scalar(_SMS_STEPS, c=conversation_id)) >= wanted

    async def _served(self, wanted: int) -> bool:
        return len(self.served) >= wanted

    async def conversation(self, path: str, turns: int) -> Contact:
        contact = await self.start(path)
        for index in range(turns):
            await asyncio.sleep(PAUSE)
            contact.turns.append(await self.turn(contact, KINDS[index % 2], index))
        await self.client.get_workflow_handle(contact.workflow_id).terminate("bench: measured")
        return contact

    async def baseline(self, label: str, updates: int) -> Contact:
        """The bare Update round trip: the same door, on an empty workflow."""
        workflow_id = f"bench-noop-{label}-{uuid.uuid4().hex[:8]}"
        handle = await self.client.start_workflow(
            NoopUpdateWorkflow.run, id=workflow_id, task_queue=BASELINE_QUEUE
        )
        contact = Contact("baseline", workflow_id, 0, 0)
        for n in range(updates):
            await asyncio.sleep(PAUSE)
            said = ClaimantTurn(text=SPEECH[KINDS[n % 2]], turn_id=f"noop:{n}")
            began = time.perf_counter()
            answer = await self.door.claimant_said(workflow_id, said)
            took = time.perf_counter() - began
            if answer.say != said.text:
                raise RuntimeError(f"the no-op Update answered {answer}")
            contact.turns.append(Turn("baseline", "no-op", n, took, 0.0, 0, 0))
        await handle.signal(NoopUpdateWorkflow.finish)
        return contact


async def add_ai_agent(engine: AsyncEngine) -> int:
    async with engine.begin() as conn:
        agent_id = await conn.scalar(
            insert(db.agents)
            .values(
                email=AI_AGENT_EMAIL,
                display_name="AI agent (bench)",
                role=AgentRole.AGENT.value,
                queue="outstanding",
                is_ai=True,
            )
            .returning(db.agents.c.id)
        )
    return int(agent_id)


async def contactable(dbs: Databases) -> list[int]:
    """Claimants with a number, automated-call and SMS consent, not vulnerable."""
    async with dbs.replica.connect() as conn:
        return [int(u) for (u,) in await conn.execute(_CLAIMANTS)]


async def attach_histories(bench: Bench, result: Result) -> None:
    """Each measured turn's history span and the worker's own model timing."""
    for contact in result.contacts:
        history = await bench.client.get_workflow_handle(contact.workflow_id).fetch_history()
        spans = history_spans(history.events, sms=contact.path == "sms")
        latencies: list[int] = []
        if contact.path != "baseline":
            async with bench.engine.connect() as conn:
                latencies = [int(r[0] or 0) for r in await conn.execute(
                    _MODEL_STEPS, {"c": contact.conversation_id})]  # fmt: skip
        if len(spans) != len(contact.turns) or len(latencies) != sum(
            t.model_calls for t in contact.turns
        ):
            result.unmatched_histories += 1
            continue
        position = 0
        for turn, span in zip(contact.turns, spans, strict=True):
            turn.span = span
            if contact.path == "baseline":
                turn.model_worker = 0.0
                continue
            turn.model_worker = sum(latencies[position : position + turn.model_calls]) / 1000
            position += turn.model_calls


def first_turns(events: Sequence[HistoryEvent], turns: int = 2) -> list[str]:
    """The events of a voice contact's first `turns` turns, workflow tasks included, each
    with its time since the first (ms): where a turn's time goes, event by event."""
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    first = next((i for i, e in enumerate(events) if e.event_type == accepted), None)
    if first is None:
        return []
    while first > 0 and events[first].event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        first -= 1
    lines, names, done = [], {}, 0
    origin = _at(events[first])
    for event in events[first:]:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
        detail = ""
        if event.HasField("activity_task_scheduled_event_attributes"):
            detail = event.activity_task_scheduled_event_attributes.activity_type.name
            names[event.event_id] = detail
        elif event.HasField("activity_task_completed_event_attributes"):
            detail = names.get(
                event.activity_task_completed_event_attributes.scheduled_event_id, ""
            )
        lines.append(f"{(_at(event) - origin) * 1000:8.1f} ms  {kind} {detail}".rstrip())
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            done += 1
            if done == turns:
                break
    return lines


def logged(path: Path, line: str) -> Callable[[], Awaitable[bool]]:
    """A readiness probe: `line` appears in the child's log."""

    async def probe() -> bool:
        with contextlib.suppress(OSError):
            return line in await asyncio.to_thread(path.read_text, errors="replace")
        return False

    return probe


async def main() -> int:
    cli = parser(__doc__)
    cli.add_argument(
        "--turns", type=int, default=200,
        help=f"turns measured per path, in whole contacts of {TURNS_PER_CONTACT}",
    )  # fmt: skip
    cli.add_argument(
        "--model-delay-ms", type=float, default=0.0,
        help="the fake model answers after this long (subtracted with its other time)",
    )  # fmt: skip
    cli.add_argument("--users", type=int, default=1000, help="demo claimants seeded")
    cli.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = cli.parse_args()
    if args.worker:
        return await worker_process()

    rounds = max(1, -(-args.turns // TURNS_PER_CONTACT))
    result = Result()
    state = Path(tempfile.mkdtemp(prefix="bench-ai-turns-"))
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}"
    redis_url = os.environ.get("BENCH_REDIS_URL", REDIS_URL)
    details: list[str] = []
    try:
        with timed_fake_model(args.model_delay_ms / 1000) as (model, served):
            async with (
                dev_server() as server,
                scratch_databases("ai", pg_pool=5, pg_overflow=5, mysql_pool=5) as dbs,
                contextlib.AsyncExitStack() as stack,
            ):
                machine = await machine_info(dbs)
                await seed(dbs, args.users)
                claimants = await contactable(dbs)
                needed = 3 * (rounds + 1)
                say(f"{len(claimants)} claimants the AI may call and text; {needed} needed")
                ai_agent_id = await add_ai_agent(dbs.dialler)
                settings = dbs.settings(server.address, OUTREACH_QUEUE, public_base_url=base)
                env = stack_env(
                    dbs, server.address, OUTREACH_QUEUE, redis_url, ENVIRONMENT="test",
                    WEB_HOST="127.0.0.1", WEB_PORT=str(web_port), PUBLIC_BASE_URL=base,
                    SECRET_KEY=settings.secret_key.get_secret_value(),
                    COOKIE_SECURE="false", CDC_SOURCE="none", RATE_LIMIT_PER_SECOND="100000",
                    RATE_LIMIT_PER_MINUTE="1000000", RATE_LIMIT_ADDRESS_PER_MINUTE="1000000",
                    DEV_STATE_DIR=str(state), EMAIL_OUTBOX_DIR=str(state / "outbox"),
                    OPENAI_MODEL="fake-model", OPENAI_BASE_URL=model.base_url,
                    OPENAI_API_KEY="bench", AI_TASK_QUEUE=AI_QUEUE, AI_AGENT_EMAIL=AI_AGENT_EMAIL,
                    **{METRICS_ENV: f"127.0.0.1:{free_port()}"},
                )  # fmt: skip
                outreach = await stack.enter_async_context(child_process(
                    "outreach-worker", [sys.executable, "-m", "bench.harness.worker"], env,
                    state, ready=logged(state / "outreach-worker.log", "bench worker polling"),
                ))  # fmt: skip
                ai = await stack.enter_async_context(child_process(
                    "ai-worker", [sys.executable, "-m", "bench.ai_turns", "--worker"], env,
                    state, ready=logged(state / "ai-worker.log", "bench AI worker polling"),
                ))  # fmt: skip
                web = await stack.enter_async_context(child_process(
                    "web", dialler("web", "--port", str(web_port)), env, state,
                    ready=serving(base),
                ))  # fmt: skip
                client = await connect_client(server.address)
                async with httpx.AsyncClient(base_url=base, timeout=WITHIN) as http:
                    bench = Bench(
                        client, AiContactClient.over(client, AI_QUEUE), http, settings,
                        dbs.dialler, model, served, ai_agent_id, claimants,
                    )  # fmt: skip
                    say("warming up (not measured)")
                    await bench.baseline("warm-up", 2 * WARM_UP_TURNS)
                    for path in PATHS:
                        await bench.conversation(path, WARM_UP_TURNS)
                    bench.answers.clear()
                    children = {"web": web.pid, "ai worker": ai.pid, "outreach": outreach.pid}
                    async with Phase("turns", server.pid, children) as phase:
                        for n in range(rounds):
                            noop = await bench.baseline(str(n), TURNS_PER_CONTACT)
                            result.baseline += noop.turns
                            result.contacts.append(noop)
                            for path in PATHS:
                                contact = await bench.conversation(path, TURNS_PER_CONTACT)
                                result.contacts.append(contact)
                                result.turns += contact.turns
                            say(f"round {n + 1}/{rounds}: {len(result.turns)} turns")
                    result.answers = list(bench.answers)
                    await attach_histories(bench, result)
                    first = next(c for c in result.contacts if c.path == "webhook")
                    history = await client.get_workflow_handle(first.workflow_id).fetch_history()
                    details += [
                        f"**The first two turns of a measured voice contact** ({first.workflow_id},"
                        " through the webhook: a text reply, then one tool call), every history "
                        "event with its server time since the first:", "", "```",
                        *first_turns(history.events), "```", "",
                    ]  # fmt: skip
    finally:
        say(f"worker and web logs kept in {keep_logs(state, 'bench-ai-turns-logs-')}")
        shutil.rmtree(state, ignore_errors=True)

    record = report(args, result, [phase.load], details)
    record.machine = machine
    finish(record, no_record=args.no_record)
    return 0 if result.turns else 1


# --- the report -----------------------------------------------------------------------------


def _of(turns: Iterable[Turn], path: str, kind: str | None = None) -> list[Turn]:
    return [t for t in turns if t.path == path and (kind is None or t.kind == kind)]


def _ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.1f}x" if baseline > 0 else ""


def report(args: Any, result: Result, phases: list[Any], details: list[str]) -> RunRecord:
    baseline = [t.total for t in result.baseline]
    base50 = percentile(baseline, 50)
    base95 = percentile(baseline, 95)
    columns = [*LATENCY_COLUMNS, "p50 ÷ baseline p50", "p95 ÷ baseline p95"]

    def row(name: str, values: list[float]) -> list[str]:
        if not values:
            return [*latency_row(name, values), "", ""]
        return [*latency_row(name, values), _ratio(percentile(values, 50), base50),
                _ratio(percentile(values, 95), base95)]  # fmt: skip

    rows = [row("**baseline**: bare Update round trip (no-op Update, empty workflow)",
                baseline)]  # fmt: skip
    for path in PATHS:
        for kind in KINDS:
            turns = _of(result.turns, path, kind)
            name = f"{PATH_NAMES[path]}, {KIND_NAMES[kind]}"
            rows.append(row(f"{name}: whole turn", [t.total for t in turns]))
            rows.append(row(f"{name}: model time (fake server)",
                            [t.model_server for t in turns]))  # fmt: skip
            rows.append(row(f"**{name}: overhead** (turn - model)",
                            [t.overhead for t in turns]))  # fmt: skip
    firsts = [t.overhead for t in _of(result.turns, "webhook", "text") if t.index == 0]
    later = [t.overhead for t in _of(result.turns, "webhook", "text") if t.index > 0]
    rows.append(row("voice webhook, text reply, overhead: first turn (reads the brief)", firsts))
    rows.append(row("voice webhook, text reply, overhead: later turns", later))
    rows.append(row("answer webhook → opening TwiML (no model call)", result.answers))
    latency = Table("Per turn (one at a time; overhead = turn - the fake model's own time)",
                    columns, rows)  # fmt: skip

    where_rows = []
    series = [("**baseline**: bare Update (no-op)", result.baseline)]
    series += [(f"{PATH_NAMES[path]}, {KIND_NAMES[kind]}", _of(result.turns, path, kind))
               for path in PATHS for kind in KINDS]  # fmt: skip
    for name, turns in series:
        parts = [p for p in (parts_of(t) for t in turns) if p is not None]
        if not parts:
            continue
        mean = mean_parts(parts)
        activities = Counter[str]()
        for t in turns:
            if t.span is not None:
                activities.update(t.span.activities)
        per_turn = ", ".join(
            f"{activity} x{count / len(parts):g}" for activity, count in sorted(activities.items())
        )
        steps = sum(t.steps for t in turns) / len(turns)
        where_rows.append([
            name, str(len(parts)), ms(mean.total), ms(mean.model_server), ms(mean.overhead),
            ms(mean.model_client), ms(mean.activity_rest), ms(mean.dispatch),
            f"{ms(mean.workflow_tasks)} ({ms(mean.workflow_code)})", ms(mean.other),
            per_turn or "none", f"{steps:g}",
        ])  # fmt: skip
    where = Table(
        "Where a turn's time goes (means per turn, so the parts add up; from the histories' "
        "server timestamps, the fake model's own time and the worker's ai_steps.latency_ms)",
        ["turn", "turns", "whole turn", "model (fake server)", "overhead",
         "model call in the worker beyond the server (openai client, HTTP)",
         "activities beyond the model call (DB reads and writes)",
         "activity dispatch (scheduled → started)",
         "workflow tasks, scheduled → completed (in brackets started → completed: the worker)",
         "the rest: Update/signal RPCs, the web app, gaps", "activities per turn",
         "ai_steps rows per turn"],
        where_rows,
    )  # fmt: skip

    def p(path: str, kind: str, pct: int) -> float:
        return percentile([t.overhead for t in _of(result.turns, path, kind)], pct)

    webhook_update = percentile([t.total for t in _of(result.turns, "webhook", "text")], 50) - (
        percentile([t.total for t in _of(result.turns, "update", "text")], 50)
    )
    figures = [
        Figure("AI voice turn overhead (webhook → TwiML - model), text reply, p50",
               ms(p("webhook", "text", 50))),
        Figure("AI voice turn overhead (webhook → TwiML - model), text reply, p95",
               ms(p("webhook", "text", 95))),
        Figure("AI voice turn overhead, one tool call, p50", ms(p("webhook", "tool", 50))),
        Figure("AI voice turn overhead, one tool call, p95", ms(p("webhook", "tool", 95))),
        Figure("AI SMS turn overhead (signal → reply row - model), text reply, p95",
               ms(p("sms", "text", 95))),
        Figure("bare Update round trip (baseline), p50", ms(base50)),
        Figure("AI voice turn overhead, text reply: p50 ÷ bare Update p50",
               _ratio(p("webhook", "text", 50), base50)),
    ]  # fmt: skip
    measured = len(_of(result.turns, "webhook"))
    notes = [
        f"Sizes: {measured} voice turns through the webhook, {len(_of(result.turns, 'update'))} "
        f"through the Update alone and {len(_of(result.turns, 'sms'))} by SMS, in contacts of "
        f"{TURNS_PER_CONTACT} turns (text reply and one tool call alternately), and "
        f"{len(result.baseline)} baseline Updates, in {len(result.contacts) // 4} rounds; "
        f"{WARM_UP_TURNS} turns per path and {2 * WARM_UP_TURNS} baseline Updates first as "
        f"warm-up, not measured. {PAUSE * 1000:.0f} ms between turns. Demo data: "
        f"{args.users:,} claimants. The fake model's added delay: {args.model_delay_ms:g} ms.",
        "Processes: `dialler web` (Hypercorn, one process), the AI worker (this module's "
        "`--worker`: `build_ai_worker` + `ai_activities`, and the baseline workflow's worker), "
        "the outreach worker (`bench.harness.worker`), the Temporal dev server, PostgreSQL, "
        "MariaDB; this process plays Twilio (signed webhooks; simulated calls and texts) and "
        "serves the fake model from a thread.",
        f"The web app's share of a voice turn (webhook p50 - Update p50, text replies): "
        f"{ms(webhook_update)}.",
        "Model time = each model call's time as the fake server saw it; the worker's own "
        "timing of the call (ai_steps.latency_ms) is in whole milliseconds, truncated, so "
        "'beyond the server' reads about 0.5 ms low per call and 'activities beyond the "
        "model call' as much high.",
    ]
    if result.unmatched_histories:
        notes.append(f"{result.unmatched_histories} contacts' histories did not match their "
                     "turns and are left out of the split.")  # fmt: skip
    return RunRecord(
        "ai_turns", "AI agent: overhead per turn", stamp(), code_version(), {}, params(args),
        figures, notes, [latency, where, load_table(phases)], details,
    )  # fmt: skip


if __name__ == "__main__":
    run(main)
