"""Simulated agents over the product's HTTP API: bearer tokens, the login form, the console,
and the claim → outcome loop (`POST /api/queue/next`, `POST /api/claimants/<id>/outcome`).

Each agent connects from its own loopback address (127.x.y.z), as agents at their own desks
do: the login and token routes limit attempts per address."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.passwords import hash_password
from schemas import dialler_db as db
from schemas.enums import AgentRole, Queue

PASSWORD = "bench-agents-password"  # noqa: S105 (scratch accounts in a scratch database)
REQUEST_TIMEOUT = 120.0
EMPTY_RETRY_SECONDS = 0.2  # claim-next said none but the queue still has claimable rows
ERROR_RETRY_SECONDS = 0.5  # after a 5xx, as a person would click again
CSRF = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
IDLE_MARKER = 'id="next-call"'
CLAIM_MARKER = 'id="claimant-context"'


def address(n: int) -> str:
    """The loopback address agent `n` connects from (Linux routes all of 127/8 locally)."""
    return f"127.{1 + n // 62_500}.{(n // 250) % 250}.{1 + n % 250}"


@dataclass
class Agent:
    n: int  # index: its source address
    id: int
    email: str
    queue: Queue
    token: str = ""


async def create_agents(
    engine: AsyncEngine, queues: Sequence[Queue], prefix: str, first_n: int
) -> list[Agent]:
    """One agent account (role agent, password PASSWORD) per queue given."""
    password_hash = hash_password(PASSWORD)
    rows = [
        {"email": f"{prefix}{i}@bench.example", "display_name": f"Bench {prefix}{i}",
         "role": AgentRole.AGENT.value, "queue": queue.value, "password_hash": password_hash}
        for i, queue in enumerate(queues)
    ]  # fmt: skip
    async with engine.begin() as conn:
        result = await conn.execute(insert(db.agents).returning(db.agents.c.id), rows)
        ids = [int(r[0]) for r in result]
    return [
        Agent(first_n + i, agent_id, str(row["email"]), queue)
        for i, (agent_id, row, queue) in enumerate(zip(ids, rows, queues, strict=True))
    ]


def client_for(base: str, n: int, token: str = "") -> httpx.AsyncClient:
    """One agent's client: its own source address and connection, its bearer token."""
    transport = httpx.AsyncHTTPTransport(
        local_address=address(n),
        limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        base_url=base, transport=transport, headers=headers, timeout=REQUEST_TIMEOUT
    )


def error_code(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(response.json()["error"]["code"])
    return ""


def retry_after(answer: httpx.Response) -> float:
    with contextlib.suppress(ValueError):
        return max(0.1, min(float(answer.headers.get("retry-after", "1")), 10.0))
    return 1.0


async def issue_tokens(base: str, agents: Sequence[Agent], concurrency: int = 8) -> list[float]:
    """A bearer token for each agent from `POST /api/auth/token`; returns the latencies."""
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(agent: Agent) -> None:
        async with gate, client_for(base, agent.n) as http:
            began = time.perf_counter()
            answer = await http.post(
                "/api/auth/token", json={"email": agent.email, "password": PASSWORD}
            )
            latencies.append(time.perf_counter() - began)
            if answer.status_code != 200:
                raise RuntimeError(f"token for {agent.email}: {answer.status_code} {answer.text}")
            agent.token = str(answer.json()["access_token"])

    await asyncio.gather(*(one(a) for a in agents))
    return latencies


async def sign_in(http: httpx.AsyncClient, agent: Agent) -> None:
    """The login form as a browser submits it: GET (CSRF token + anonymous cookie), POST."""
    page = await http.get("/login")
    found = CSRF.search(page.text)
    if found is None:
        raise RuntimeError("no CSRF token on the login page")
    answer = await http.post(
        "/login",
        data={"email": agent.email, "password": PASSWORD, "csrf_token": found.group(1),
              "next": ""},
    )  # fmt: skip
    if answer.status_code != 303 or "rmc_session" not in http.cookies:
        raise RuntimeError(f"sign-in of {agent.email}: {answer.status_code} {answer.text[:200]}")


# --- the console ------------------------------------------------------------------------------


@dataclass
class ConsoleTiming:
    latency: list[float] = field(default_factory=list)
    server_timing: list[str] = field(default_factory=list)
    wrong: Counter[str] = field(default_factory=Counter)  # unexpected status or panel


async def get_console(http: httpx.AsyncClient, marker: str, timing: ConsoleTiming) -> None:
    """GET /console as a browser does; `marker` names the panel that should show."""
    began = time.perf_counter()
    answer = await http.get("/console", headers={"Accept": "text/html"})
    timing.latency.append(time.perf_counter() - began)
    if header := answer.headers.get("server-timing"):
        timing.server_timing.append(header)
    if answer.status_code != 200:
        timing.wrong[f"status {answer.status_code}"] += 1
    elif marker not in answer.text:
        timing.wrong["other panel shown"] += 1


async def time_console(
    clients: Sequence[httpx.AsyncClient], requests: int, marker: str
) -> ConsoleTiming:
    """`requests` GETs, one at a time, round robin over the signed-in agents."""
    timing = ConsoleTiming()
    for i in range(requests):
        await get_console(clients[i % len(clients)], marker, timing)
    return timing


# --- the claim → outcome loop -----------------------------------------------------------------


@dataclass
class Claimed:
    user_id: int
    agent_id: int
    queue: str
    at: float  # seconds since the drain began
    outcome_ok: bool = False


@dataclass
class Drain:
    """What the agents of one drain saw."""

    began: float = field(default_factory=time.monotonic)
    claim_latency: list[float] = field(default_factory=list)
    empty_latency: list[float] = field(default_factory=list)
    claim_failed_latency: list[float] = field(default_factory=list)  # 5xx answers
    outcome_latency: list[float] = field(default_factory=list)
    outcome_failed_latency: list[float] = field(default_factory=list)
    claimed: list[Claimed] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    throttled: Counter[str] = field(default_factory=Counter)
    empty_with_work_left: int = 0
    finished: Counter[str] = field(default_factory=Counter)
    requests_at: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def since(self) -> float:
        return time.monotonic() - self.began

    def updates_sent(self) -> int:
        """Claim and outcome requests that reached a workflow Update (answered or not)."""
        return sum(map(len, (self.claim_latency, self.claim_failed_latency,
                             self.outcome_latency, self.outcome_failed_latency)))  # fmt: skip


async def record_no_answer(
    http: httpx.AsyncClient, claim: Claimed, drain: Drain, attempts: int = 10
) -> None:
    """`POST /api/claimants/<id>/outcome` no_answer (a 4-hour cooldown), retried on 429."""
    for _ in range(attempts):
        began = time.perf_counter()
        try:
            answer = await http.post(
                f"/api/claimants/{claim.user_id}/outcome", json={"disposition": "no_answer"}
            )
        except httpx.HTTPError as error:
            drain.errors[f"outcome {type(error).__name__}"] += 1
            return
        took = time.perf_counter() - began
        if answer.status_code == 429:
            drain.throttled["outcome"] += 1
            await asyncio.sleep(retry_after(answer))
            continue
        if answer.status_code != 200:
            drain.errors[f"outcome {answer.status_code} {error_code(answer)}"] += 1
            drain.outcome_failed_latency.append(took)
            return
        drain.outcome_latency.append(took)
        claim.outcome_ok = True
        return
    drain.errors[f"outcome throttled {attempts} times"] += 1


async def agent_loop(
    agent: Agent,
    http: httpx.AsyncClient,
    deadline: float,
    queue_left: Callable[[Queue], Awaitable[int]],
    drain: Drain,
    talk: Callable[[], float] | None = None,
    start_delay: float = 0.0,
) -> None:
    """Claim → no_answer → repeat, like an agent clicking "Next call" straight after each
    outcome (or, with `talk`, after a call lasting `talk()` seconds), until its queue has
    nothing claimable or the deadline passes; after an error, try again a little later."""
    await asyncio.sleep(start_delay)
    while time.monotonic() < deadline:
        drain.requests_at[agent.id].append(drain.since())
        began = time.perf_counter()
        try:
            answer = await http.post("/api/queue/next", json={})
        except httpx.HTTPError as error:
            drain.errors[f"claim {type(error).__name__}"] += 1
            await asyncio.sleep(1.0)
            continue
        took = time.perf_counter() - began
        if answer.status_code == 429:
            drain.throttled["claim"] += 1
            await asyncio.sleep(retry_after(answer))
            continue
        if answer.status_code != 200:
            drain.errors[f"claim {answer.status_code} {error_code(answer)}"] += 1
            drain.claim_failed_latency.append(took)
            await asyncio.sleep(ERROR_RETRY_SECONDS)
            continue
        task = answer.json()["task"]
        if task is None:
            drain.empty_latency.append(took)
            if await queue_left(agent.queue):
                drain.empty_with_work_left += 1
                await asyncio.sleep(EMPTY_RETRY_SECONDS)
                continue
            drain.finished["its queue had nothing claimable"] += 1
            return
        drain.claim_latency.append(took)
        claim = Claimed(int(task["user_id"]), agent.id, str(task["queue"]), drain.since())
        drain.claimed.append(claim)
        if talk is not None:  # the call runs its course even past the deadline: cutting
            # every call short at once would end the drain with all outcomes in one burst
            await asyncio.sleep(talk())
        await record_no_answer(http, claim, drain)
    drain.finished["time budget ended"] += 1


def exponential_calls(mean: float, seed: int = 2026) -> Callable[[], float]:
    """Call lengths of the given mean, the same sequence each run."""
    rng = random.Random(seed)
    return lambda: rng.expovariate(1 / mean)


def spread(agents: Sequence[Agent], count: int) -> list[Agent]:
    """`count` of the agents, evenly over the list (so every queue keeps its share)."""
    if count >= len(agents):
        return list(agents)
    return [agents[i * len(agents) // count] for i in range(count)]


async def every(call: Callable[[], Awaitable[None]], seconds: float, stop: asyncio.Event) -> None:
    """Run `call` every `seconds` until `stop` is set."""
    while not stop.is_set():
        began = time.monotonic()
        await call()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(seconds - (time.monotonic() - began), 0.0))


@contextlib.asynccontextmanager
async def loop_probe(base: str, into: list[float], seconds: float) -> AsyncIterator[None]:
    """GET a static file every `seconds` while the block runs: it does no database or
    Temporal work (only the rate limiter's Redis round trip), so its latency is mostly the
    time the request waits for the web process's event loop."""
    stop = asyncio.Event()
    async with client_for(base, 60_000) as http:

        async def probe() -> None:
            began = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get("/static/favicon.svg")).status_code == 200:
                    into.append(time.perf_counter() - began)

        task = asyncio.create_task(every(probe, seconds, stop))
        try:
            yield
        finally:
            stop.set()
            await task
