"""Activities of the batch schedules that back up the CDC stream: the 15-minute catch-up,
hourly cache warming, the 6-hourly integrity check and the daily clean-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog import get_logger
from temporalio import activity
from temporalio.client import Client

from activities.reconcile import expected_queues
from adapters import ai_conversations, call_log, task_store
from adapters.agent_store import delete_ended_sessions
from adapters.audit_log import append_audit
from adapters.cdc_store import CdcStore
from adapters.context_cache import ContextCache
from adapters.conversions import delete_before as delete_conversions_before
from adapters.magic_links import delete_links_created_before, purge_expired_secrets
from adapters.queue_queries import due_callback_user_ids, outstanding_user_ids, unsigned_user_ids
from adapters.recording_store import RecordingStoreError, RecordingStores
from adapters.replica_reader import ReplicaReader
from adapters.rules_source import RulesSource, as_source
from config.settings import Settings
from domain.attribution import months_before
from domain.recordings import retention_cutoff
from domain.rules import DiallerRules
from schemas.cdc import (
    CacheWarmInput,
    CacheWarmResult,
    CatchUpScan,
    CatchUpScanRequest,
    CdcSourceName,
    CleanupRequest,
    CleanupResult,
    IntegrityPlan,
    IntegrityPlanRequest,
    WatermarkUpdate,
)
from schemas.enums import Queue
from schemas.recordings import RecordingRetentionRequest, RecordingRetentionResult
from schemas.search_attributes import OUTREACH_QUEUE

log = get_logger(__name__)

CATCH_UP_OVERLAP = timedelta(minutes=2)  # rows committed late with an earlier updated_at
CATCH_UP_FIRST_WINDOW = timedelta(minutes=15)  # no watermark yet: look this far back
MAX_REFRESH = 100_000  # claimants per integrity repair (the list travels in history)
RECORDINGS_PAGE = 200  # recordings read per page by the retention clean-up


class MaintenanceActivities:
    def __init__(
        self,
        settings: Settings,
        dialler: AsyncEngine,
        replica_db: AsyncEngine,
        client: Client,
        task_queue: str,
        rules: RulesSource | DiallerRules,
        redis: Redis | None = None,
        recordings: RecordingStores | None = None,
    ) -> None:
        self._settings = settings
        self._recordings = recordings or RecordingStores(settings)
        self._dialler = dialler
        self._replica = replica_db
        self._client = client
        self._task_queue = task_queue
        self._rules = as_source(rules)
        self._redis = redis
        self._store = CdcStore(dialler)
        self._replica_reader = ReplicaReader(replica_db)

    @contextlib.asynccontextmanager
    async def _cache(self) -> AsyncIterator[ContextCache]:
        """The worker's Redis client when it was given one, else one for this call."""
        redis = self._redis or Redis.from_url(self._settings.redis_url)
        try:
            yield ContextCache(redis, self._replica, self._settings.context_cache_ttl_seconds)
        finally:
            if self._redis is None:
                await redis.aclose()

    # --- catch-up ----------------------------------------------------------------------------

    @activity.defn
    async def catch_up_scan(self, request: CatchUpScanRequest) -> CatchUpScan:
        """Claimants (with at least one claim) whose users, claims or requirements rows
        changed since the watermark, by the replica's own clock."""
        stored = await self._store.load_position(CdcSourceName.CATCH_UP.value)
        watermark = datetime.fromisoformat(stored["updated_at"]) if stored else None
        limit = request.max_claimants
        changed = await self._replica_reader.changed_claimants(
            watermark, overlap=CATCH_UP_OVERLAP, first_window=CATCH_UP_FIRST_WINDOW, limit=limit
        )
        return CatchUpScan(
            user_ids=sorted(changed.user_ids)[: limit * 3],
            scanned_from=changed.scanned_from,
            new_watermark=changed.new_watermark,
            capped=changed.capped,
        )

    @activity.defn
    async def save_watermark(self, update: WatermarkUpdate) -> WatermarkUpdate:
        await self._store.save_position(
            CdcSourceName.CATCH_UP.value,
            {"updated_at": update.watermark.replace(tzinfo=None).isoformat()},
            applied=update.refreshed,
        )
        return update

    # --- cache warming -------------------------------------------------------------------------

    @activity.defn
    async def warm_cache(self, request: CacheWarmInput) -> CacheWarmResult:
        """Load the contexts of the claimants at the top of each queue into the cache."""
        per_queue: dict[str, list[int]] = {}
        async with self._dialler.connect() as conn:
            for queue in Queue:
                per_queue[queue.value] = await task_store.top_ready_user_ids(
                    conn, queue, request.per_queue
                )
        warmed: dict[str, int] = {}
        async with self._cache() as cache:
            for queue_name, user_ids in per_queue.items():
                warmed[queue_name] = await cache.warm(user_ids)
                activity.heartbeat()
        return CacheWarmResult(warmed=sum(warmed.values()), per_queue=warmed)

    # --- integrity check -------------------------------------------------------------------------

    @activity.defn
    async def integrity_plan(self, request: IntegrityPlanRequest) -> IntegrityPlan:
        """Replica (the seed's queue queries) vs running workflows (their OutreachQueue)
        vs the queue projection (`call_tasks`)."""
        unsigned, outstanding, callback = await asyncio.gather(
            unsigned_user_ids(self._replica),
            outstanding_user_ids(self._replica),
            due_callback_user_ids(self._dialler, self._replica, request.now),
        )
        priority = (await self._rules.current()).stage_priority
        expected = expected_queues(callback, unsigned, outstanding, priority)
        live = await task_store.live_tasks(self._dialler)
        published = {task.user_id: task.queue for task in live}
        running = await self._running_workflows()
        drift_replica = {
            u for u in expected.keys() | published.keys() if expected.get(u) != published.get(u)
        }
        missing = {u for u in expected if u not in running}
        orphans = {u for u in published if u not in running}
        mismatched = {u for u, queue in running.items() if u in published and published[u] != queue}
        to_refresh = sorted(drift_replica | missing | orphans | mismatched)[:MAX_REFRESH]
        return IntegrityPlan(
            expected=len(expected),
            running_workflows=len(running),
            published_tasks=len(published),
            replica_vs_projection=len(drift_replica),
            missing_workflows=len(missing),
            orphan_tasks=len(orphans),
            workflow_vs_projection=len(mismatched),
            to_refresh=to_refresh,
        )

    async def _running_workflows(self) -> dict[int, str | None]:
        """Running outreach workflows of this task queue: user id -> OutreachQueue."""
        query = (
            "WorkflowType = 'Outreach' AND ExecutionStatus = 'Running' "
            f"AND TaskQueue = '{self._task_queue}'"
        )
        running: dict[int, str | None] = {}
        seen = 0
        async for execution in self._client.list_workflows(query, page_size=1000):
            prefix, _, user = execution.id.partition("outreach-")
            if prefix or not user.isdigit():
                continue
            running[int(user)] = execution.typed_search_attributes.get(OUTREACH_QUEUE)
            seen += 1
            if seen % 1000 == 0:
                activity.heartbeat()
        return running

    # --- clean-up -----------------------------------------------------------------------------

    @activity.defn
    async def cleanup(self, request: CleanupRequest) -> CleanupResult:
        """Retention: revoked or expired agent sessions and replayed dead letters older than
        their retention (settings, in days); the token hashes of magic links expired more
        than `magic_link_retention_days` ago; and the attribution records (magic links, their
        events, conversions) older than `compliance.recording_retention_months`, the
        retention the calls they credit are kept for."""
        settings = self._settings
        secrets_before = request.now - timedelta(days=settings.magic_link_retention_days)
        retention_months = (await self._rules.current()).compliance.recording_retention_months
        attribution_before = months_before(request.now, retention_months)
        sessions_before = request.now - timedelta(days=settings.session_retention_days)
        letters_before = request.now - timedelta(days=settings.dead_letter_retention_days)
        async with self._dialler.begin() as conn:
            purged_secrets = await purge_expired_secrets(conn, secrets_before)
            removed_links = await delete_links_created_before(conn, attribution_before)
            removed_conversions = await delete_conversions_before(conn, attribution_before)
            removed_sessions = await delete_ended_sessions(conn, sessions_before)
        removed_letters = await self._store.purge_replayed(letters_before)
        return CleanupResult(
            magic_links=removed_links,
            agent_sessions=removed_sessions,
            dead_letters=removed_letters,
            magic_link_secrets=purged_secrets,
            conversions=removed_conversions,
        )

    @activity.defn
    async def expire_recordings(
        self, request: RecordingRetentionRequest
    ) -> RecordingRetentionResult:
        """Delete the recordings and transcripts of calls started before the retention
        cut-off (the rules file's `compliance.recording_retention_months`) wherever they are
        kept (Twilio, the bucket, a local file), mark each call's recording deleted and audit
        it, one by one. A store that fails leaves that call undeleted (the next run tries
        again) and does not stop the others; a rerun finds nothing left to do. The AI
        conversations' transcripts (issue 13) started before the same cut-off go too."""
        months = (await self._rules.current()).compliance.recording_retention_months
        cutoff = retention_cutoff(request.now, months)
        ai_transcripts = await self._expire_ai_transcripts(cutoff, months)
        deleted = failed = 0
        after_id = 0
        while True:
            page = await call_log.recordings_started_before(
                self._dialler, cutoff, after_id=after_id, limit=RECORDINGS_PAGE
            )
            if not page:
                break
            for recording in page:
                if await self._expire(recording, request, months):
                    deleted += 1
                else:
                    failed += 1
            after_id = page[-1].call_id
            activity.heartbeat(after_id)
        return RecordingRetentionResult(
            cutoff=cutoff, deleted=deleted, failed=failed, ai_transcripts_deleted=ai_transcripts
        )

    async def _expire_ai_transcripts(self, cutoff: datetime, months: int) -> int:
        """What the AI conversations started before `cutoff` said is deleted (their outcome,
        hand-off and token counts stay), audited once with how many: no claimant is named,
        as no personal data remains to be named by."""
        async with self._dialler.begin() as conn:
            deleted = await ai_conversations.delete_transcripts_before(conn, cutoff)
            if deleted:
                await append_audit(
                    conn,
                    actor_type="system",
                    actor_id="retention",
                    action="ai_transcripts_deleted",
                    subject_type="ai_conversations",
                    subject_id=None,
                    detail={
                        "conversations": deleted,
                        "started_before": cutoff.isoformat(),
                        "retention_months": months,
                    },
                )
        return deleted

    async def _expire(
        self, recording: call_log.ExpiringRecording, request: RecordingRetentionRequest, months: int
    ) -> bool:
        """Whether the call's recording is gone now (False: its store failed)."""
        location = recording.location
        if location is not None:
            try:
                await self._recordings.delete(location)
            except RecordingStoreError as error:
                log.warning(
                    "recording not deleted; retried tomorrow",
                    call_id=recording.call_id,
                    store=location.store.value,
                    error=str(error),
                )
                return False
        async with self._dialler.begin() as conn:
            if await call_log.mark_recording_deleted(conn, recording.call_id, request.now):
                await append_audit(
                    conn,
                    actor_type="system",
                    actor_id="retention",
                    action="recording_deleted",
                    subject_type="call",
                    subject_id=str(recording.call_id),
                    detail={
                        "user_id": str(recording.user_id),
                        "store": location.store.value if location is not None else None,
                        "transcript": recording.has_transcript,
                        "call_started_at": recording.started_at.isoformat(),
                        "retention_months": months,
                    },
                )
        return True
