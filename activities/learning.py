"""The activities of the nightly learned rates (`workflows/learning.py`, issue 14): gather the
counts, learn the rates, save the version. Each takes one dataclass of
`schemas.learned_rates` and returns one.

`gather` lets the database count: the calls (`call_log.attempt_counts`) and the AI's SMS
conversations (`ai_conversations.sms_attempt_counts`) of the window, each converted when a
conversion was credited to it (`conversions.converted_calls` / `converted_texts`), in one
scan each, grouped by queue, quarter hour and claimant. Only the claimant's attributes come
from the replica (postcode, birth date, lenders: `ReplicaReader.claimant_attributes`), and
`domain.learned_rates.segment_counts` adds the claimants' counts up by region, lender and age
band. So what crosses to the workflow is a few hundred counts, whatever the history's size.

`run_now` runs the same three steps in this process, for `dialler scoring learn` and the
benchmark.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from adapters import ai_conversations, call_log, conversions, learned_rates
from adapters.databases import for_reports
from adapters.replica_reader import ReplicaReader
from domain.learned_rates import AttemptSource, learn_rates, segment_counts
from schemas.learned_rates import (
    GatheredCounts,
    GatherRequest,
    LearnedRates,
    LearnRatesInput,
    LearnRatesResult,
    RateInput,
    SavedRates,
    SaveRates,
)


def gather_request(given: LearnRatesInput, now: datetime) -> GatherRequest:
    """The window ending `now` (or the input's own `now`), `window_days` long."""
    if given.window_days < 1:
        raise ValueError("the window must be at least a day")
    ZoneInfo(given.zone)  # an unknown zone fails here, before any work
    end = given.now or now
    return GatherRequest(end - timedelta(days=given.window_days), end, given.zone)


def save_request(gathered: GatheredCounts, learned: LearnedRates, seconds: float) -> SaveRates:
    overall = gathered.overall
    return SaveRates(
        window_start=gathered.window_start,
        window_end=gathered.window_end,
        attempts=overall.attempts,
        reached=overall.reached,
        conversions=overall.conversions,
        seconds=seconds,
        rates=learned.rates,
    )


def learn_result(
    gathered: GatheredCounts, learned: LearnedRates, saved: SavedRates, seconds: float
) -> LearnRatesResult:
    overall = gathered.overall
    return LearnRatesResult(
        version_id=saved.version_id,
        window_start=gathered.window_start,
        window_end=gathered.window_end,
        attempts=overall.attempts,
        reached=overall.reached,
        conversions=overall.conversions,
        claimants=gathered.claimants,
        segments=saved.segments,
        seconds=seconds,
        priors=learned.priors,
    )


class LearningActivities:
    def __init__(self, dialler: AsyncEngine, replica: AsyncEngine) -> None:
        self._dialler = dialler
        self._replica = replica

    @activity.defn(name="learning_gather")
    async def gather(self, request: GatherRequest) -> GatheredCounts:
        """The counts per segment of the window's attempts."""
        start, end = request.window_start, request.window_end
        # one transaction: both channels and the conversions seen at the same moment
        async with self._dialler.begin() as conn:
            await for_reports(conn)
            calls = await call_log.attempt_counts(
                conn, start, end, conversions.converted_calls(start)
            )
            texts = await ai_conversations.sms_attempt_counts(
                conn, start, end, conversions.converted_texts(start)
            )
        attempted = set(calls.by_user) | set(texts.by_user)
        claimants = await ReplicaReader(self._replica).claimant_attributes(sorted(attempted))
        on = end.astimezone(ZoneInfo(request.zone)).date()
        return segment_counts(AttemptSource(start, end, calls, texts, claimants, on, request.zone))

    @activity.defn(name="learning_learn")
    async def learn(self, given: RateInput) -> LearnedRates:
        """The rates with their intervals and shrunk rates (pure; a few hundred segments)."""
        return learn_rates(given)

    @activity.defn(name="learning_save")
    async def save(self, request: SaveRates) -> SavedRates:
        """A new version, once per window: a retry after a lost reply finds the version the
        first attempt saved."""
        async with self._dialler.begin() as conn:
            found = await learned_rates.version_for_window(
                conn, request.window_start, request.window_end
            )
            if found is not None:
                return SavedRates(found, len(request.rates), new=False)
            version_id = await learned_rates.save_version(
                conn,
                window_start=request.window_start,
                window_end=request.window_end,
                attempts=request.attempts,
                reached=request.reached,
                conversions=request.conversions,
                seconds=request.seconds,
                rates=request.rates,
            )
        return SavedRates(version_id, len(request.rates), new=True)

    async def run_now(self, given: LearnRatesInput, now: datetime) -> LearnRatesResult:
        """The workflow's three steps in this process (the CLI and the benchmark): the
        window ends at `now`; the seconds are this process's."""
        began = time.perf_counter()
        gathered = await self.gather(gather_request(given, now))
        given_counts = RateInput(gathered.overall, gathered.counts, given.prior_strength)
        learned = await self.learn(given_counts)
        seconds = time.perf_counter() - began
        saved = await self.save(save_request(gathered, learned, seconds))
        return learn_result(gathered, learned, saved, seconds)
