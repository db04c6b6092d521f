"""The clients a web process uses, built once by `create_app` and reached through `services()`."""

from __future__ import annotations

from dataclasses import dataclass, field

from quart import current_app
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.context_cache import ContextCache
from adapters.live import LiveBus
from adapters.messaging import SmsSender, sms_sender
from adapters.rules_file import load_rules_file
from adapters.rules_source import RulesSource
from adapters.sms_outbox import SmsOutbox
from adapters.temporal import TemporalConnection
from config.settings import Settings
from domain.rules import DiallerRules
from services.agent_states import AgentStateService
from services.claimant_context import ClaimantContextService
from services.claimant_loader import ClaimantLoader
from services.claims import ClaimService
from services.consents import ConsentService
from services.live_split import LiveSplits
from services.live_updates import DepthPublisher, FloorPublisher, LiveQueueEvents
from services.rules_editing import RulesEditor
from services.rules_preview import RulesPreview
from services.work_waiters import WorkWaiters
from workflows.ai_contact_client import AiContactClient
from workflows.outreach_client import OutreachClient
from workflows.rules_rollout_client import RulesRolloutClient

EXTENSION_KEY = "dialler"


@dataclass
class WebServices:
    settings: Settings
    dialler_db: AsyncEngine
    replica_db: AsyncEngine
    redis: Redis
    temporal: TemporalConnection
    # Live events are namespaced by the Redis database unless set (tests use their own).
    live_namespace: str | None = None
    _rules: RulesSource | None = field(default=None, init=False, repr=False)
    _sms: SmsSender | None = field(default=None, init=False, repr=False)
    _depths: DepthPublisher | None = field(default=None, init=False, repr=False)
    _floor: FloorPublisher | None = field(default=None, init=False, repr=False)
    _waiters: WorkWaiters | None = field(default=None, init=False, repr=False)
    _outreach: OutreachClient | None = field(default=None, init=False, repr=False)
    _ai_contact: AiContactClient | None = field(default=None, init=False, repr=False)

    def outreach(self) -> OutreachClient:
        """The one door to the claimants' workflows (it connects on first use, so the app
        starts, and recovers, while Temporal is down); built once per app."""
        if self._outreach is None:
            self._outreach = OutreachClient(self.temporal.client, self.settings.temporal_task_queue)
        return self._outreach

    def ai_contact(self) -> AiContactClient:
        """The one door to the AI agent's workflows (AI contacts, SMS triage) on the AI task
        queue; it connects on first use, like `outreach`."""
        if self._ai_contact is None:
            self._ai_contact = AiContactClient(self.temporal.client, self.settings.ai_task_queue)
        return self._ai_contact

    def claim_service(self) -> ClaimService:
        return ClaimService(
            self.dialler_db,
            self.outreach(),
            lease_seconds=self.settings.claim_lease_minutes * 60,
            session_idle_seconds=self.settings.session_idle_minutes * 60,
            events=LiveQueueEvents(
                self.dialler_db, self.live(), self.depth_publisher(), self.floor_publisher()
            ),
        )

    def depth_publisher(self) -> DepthPublisher:
        """One per app: it coalesces the queue-depth updates of all requests."""
        if self._depths is None:
            self._depths = DepthPublisher(self.dialler_db, self.live())
        return self._depths

    def floor_publisher(self) -> FloorPublisher:
        """One per app: it coalesces the wallboards' `floor-changed` events of all requests."""
        if self._floor is None:
            self._floor = FloorPublisher(self.live())
        return self._floor

    def work_waiters(self) -> WorkWaiters:
        """One per app: requests long-polling for work, and the one subscriber waking them."""
        if self._waiters is None:
            self._waiters = WorkWaiters(self.live())
        return self._waiters

    def rules_source(self) -> RulesSource:
        """The rules in force: the newest version saved on the rules page, else RULES_FILE
        (read once per app)."""
        if self._rules is None:
            self._rules = RulesSource(self.dialler_db, load_rules_file(self.settings.rules_file))
        return self._rules

    def rules(self) -> DiallerRules:
        """The business rules in force (calling windows, ...) as last checked: the hook
        `keep_rules_current` checks for a newer version before each request."""
        return self.rules_source().cached()

    async def keep_rules_current(self) -> None:
        """Before each request: the newest version, checked every few seconds and at once
        when a save is announced (never fails a request: the rules in force stay)."""
        await self.rules_source().current()

    async def listen_for_rules(self) -> None:
        """At start: hear of versions saved by other processes at once."""
        self.rules_source().listen_in_background(self.redis)

    def use_rules(self, rules: DiallerRules) -> None:
        """Pin the rules, whatever version is saved (tests)."""
        self._rules = RulesSource.fixed(rules)

    def use_rules_source(self, source: RulesSource) -> None:
        """Read the rules in force from `source` (tests: file rules of their own)."""
        self._rules = source

    def rules_editor(self) -> RulesEditor:
        rollout = RulesRolloutClient(self.temporal.client, self.settings.temporal_task_queue)
        return RulesEditor(
            self.dialler_db,
            self.rules_source(),
            self.settings.rules_file,
            redis=self.redis,
            rollout=rollout,
        )

    def live_splits(self) -> LiveSplits:
        """The live split of the score (the rules page), re-scoring through the rollout."""
        rollout = RulesRolloutClient(self.temporal.client, self.settings.temporal_task_queue)
        return LiveSplits(self.dialler_db, self.rules_source(), rollout=rollout)

    def rules_preview(self) -> RulesPreview:
        return RulesPreview(self.dialler_db, self.replica_db)

    def live(self) -> LiveBus:
        return LiveBus(self.redis, self.live_namespace)

    def context_cache(self) -> ContextCache:
        return ContextCache(
            self.redis, self.replica_db, ttl_seconds=self.settings.context_cache_ttl_seconds
        )

    def claimant_loader(self) -> ClaimantLoader:
        """The one loader of a claimant (replica part cached, dialler part fresh)."""
        return ClaimantLoader(self.context_cache(), self.dialler_db)

    def claimant_context(self) -> ClaimantContextService:
        return ClaimantContextService(self.dialler_db, self.claimant_loader(), self.outreach())

    def consents(self) -> ConsentService:
        return ConsentService(self.dialler_db, self.replica_db, self.outreach())

    def sms_sender(self) -> SmsSender:
        """Twilio, or the simulated provider without credentials; built once per app."""
        if self._sms is None:
            self._sms = sms_sender(self.settings)
        return self._sms

    def sms_outbox(self) -> SmsOutbox:
        """The one way an SMS leaves the web app (suppression check, kept row, provider)."""
        return SmsOutbox(self.dialler_db, self.sms_sender())

    def agent_states(self) -> AgentStateService:
        return AgentStateService(self.dialler_db, on_change=self.floor_publisher().changed)

    async def close(self) -> None:
        if self._rules is not None:
            await self._rules.close()
        if self._depths is not None:
            await self._depths.close()
        if self._floor is not None:
            await self._floor.close()
        if self._waiters is not None:
            await self._waiters.close()
        await self.dialler_db.dispose()
        await self.replica_db.dispose()
        await self.redis.aclose()


def services() -> WebServices:
    value = current_app.extensions[EXTENSION_KEY]
    assert isinstance(value, WebServices)
    return value
