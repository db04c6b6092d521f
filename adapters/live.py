"""Live updates for staff pages: events published on Redis pub/sub, fanned out to browsers
over Server-Sent Events by `GET /events` (web/blueprints/live.py, htmx-ext-sse).

Channels (`channel_for_*` build them):

    live:staff            every signed-in member of staff
    live:queue:<queue>    agents working that queue (unsigned, outstanding, callback)
    live:agent:<id>       one member of staff (all their open pages)
    live:supervisors      supervisors and admins (the wallboard)

Events (name, where, data). A page listens to one with `sse-swap="<name>"`:

    queue-depth     live:queue:<q>   {"queue", "ready", "waiting", "claimed"}
                    after every claim, outcome and release (services.live_updates), and
                    sent once when a stream opens
    task-released   live:queue:<q>   {"queue", "task_id", "agent_id", "at"}
                    an agent gave a claimant back to the queue
    call-status     live:agent:<id>  {"call_id", "status", "duration_seconds"}
                    the claimant's leg of a call changed (Twilio status callbacks)
    inbound-call    live:agent:<id>  {"call_id", "user_id"}
                    a claimant ringing back is ringing this agent (issue 14): the console
                    loads the claimant's context for the call
    sms-inbound     live:staff       reserved for the SMS inbox, e.g.
                    {"user_id", "message_id", "unread"}
    floor-changed   live:supervisors {"at"}: something the wallboard shows changed (a claim,
                    an outcome, a release, an agent's state, a task written by a worker);
                    the page fetches its figures again (services.live_updates.FloorPublisher)

Adding an event: publish `LiveEvent("<name>", {...})` to a channel with `LiveBus.publish`,
and add the template `web/templates/live/<name>.html`; the stream renders it with `data`
and sends the HTML as the event's data (what htmx swaps in). Without a template the data
goes out as JSON, for scripts. Names are lower-case words joined by hyphens. Data must not
carry personal data (names, numbers, message bodies): ids and counts only, since every
listener on a channel receives it.

Publishing never fails the caller: with Redis away, the event is logged and dropped (pages
catch up on their next load or reconnect).

Redis pub/sub channels are shared by every database of a Redis server, so a bus prefixes the
channels it uses with its namespace (the web app uses the Redis database number, "db0:"):
two deployments, or a developer's stack and a test run, on one Redis never hear each other.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError
from structlog import get_logger

from schemas.enums import Queue

log = get_logger(__name__)

PREFIX = "live"
STAFF_CHANNEL = f"{PREFIX}:staff"
SUPERVISORS_CHANNEL = f"{PREFIX}:supervisors"

QUEUE_DEPTH = "queue-depth"
TASK_RELEASED = "task-released"
CALL_STATUS = "call-status"
INBOUND_CALL = "inbound-call"
SMS_INBOUND = "sms-inbound"
FLOOR_CHANGED = "floor-changed"

_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


def channel_for_queue(queue: Queue) -> str:
    return f"{PREFIX}:queue:{queue.value}"


def channel_for_agent(agent_id: int) -> str:
    return f"{PREFIX}:agent:{agent_id}"


@dataclass(frozen=True)
class LiveEvent:
    name: str
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"event names are lower-case words joined by hyphens: {self.name!r}")

    def encode(self) -> str:
        return json.dumps({"name": self.name, "data": self.data}, default=str)

    @classmethod
    def decode(cls, raw: str | bytes) -> LiveEvent | None:
        """The event in a pub/sub message, or None when it is not one of ours."""
        try:
            parsed = json.loads(raw)
            name, data = parsed["name"], parsed.get("data") or {}
            if not isinstance(name, str) or not isinstance(data, dict):
                return None
            return cls(name, data)
        except (ValueError, KeyError, TypeError):
            return None


class Subscription:
    """Events from some channels, one at a time, with a timeout (so a stream can send
    keep-alives between events)."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub

    async def next(self, wait_seconds: float) -> LiveEvent | None:
        """The next event, or None if none arrived within `wait_seconds`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while (left := deadline - loop.time()) > 0:
            # Subscription confirmations and foreign payloads also end a wait: keep waiting.
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is None or message.get("type") != "message":
                continue
            event = LiveEvent.decode(message["data"])
            if event is not None:
                return event
        return None


def namespace_for(redis: Redis) -> str:
    """The default namespace of a bus on this client: its Redis database number."""
    return f"db{redis.connection_pool.connection_kwargs.get('db', 0)}:"


class LiveBus:
    def __init__(self, redis: Redis, namespace: str | None = None) -> None:
        self._redis = redis
        self._namespace = namespace_for(redis) if namespace is None else namespace

    async def publish(self, channel: str, event: LiveEvent) -> int:
        """Send `event` to everyone listening on `channel`; returns how many listeners got it
        (0 when Redis is unavailable: live updates are best effort)."""
        try:
            return int(await self._redis.publish(self._namespace + channel, event.encode()))
        except RedisError as error:
            log.warning(
                "live event dropped", live_event=event.name, channel=channel, error=str(error)
            )
            return 0

    @asynccontextmanager
    async def subscribe(self, channels: Sequence[str]) -> AsyncIterator[Subscription]:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(*(self._namespace + c for c in channels))
            yield Subscription(pubsub)
        finally:
            with suppress(RedisError):
                await pubsub.unsubscribe()
            await pubsub.aclose()  # type: ignore[no-untyped-call]
