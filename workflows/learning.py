"""LearnRatesWorkflow (`learn-rates`, nightly at 02:30 UK time by its schedule in
`workers/schedules.py`; issue 14): the contact and conversion rates per segment learned from
the last `window_days` of attempts and their attributed conversions, saved as a new version
that the scorer reads (`adapters.learned_rates.newest_rates`).

Three activities (`activities/learning.py`): gather the counts (the databases count), learn
the rates (intervals and shrinkage, `domain.learned_rates`), save the version (once per
window, so a retried save writes nothing twice). The window ends at the workflow's own clock
when the run starts; the seconds saved with the version are the workflow's too.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.learning import (
        LearningActivities,
        gather_request,
        learn_result,
        save_request,
    )
    from schemas.learned_rates import LearnRatesInput, LearnRatesResult, RateInput

LEARN_RATES_ID = "learn-rates"
# a failing night is retried a few times, then left to the next night (a retry without end
# would hold the schedule's next run back: overlap SKIP)
RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), maximum_attempts=5)
# wrong counts or settings do not get better by retrying
NO_RETRY_ON_BAD_INPUT = RetryPolicy(
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["ValueError"],
)


@workflow.defn(name="LearnRates")
class LearnRatesWorkflow:
    @workflow.run
    async def run(self, input: LearnRatesInput) -> LearnRatesResult:
        began = workflow.now()
        try:
            window = gather_request(input, began)
        except (ValueError, KeyError) as error:  # a window under a day, an unknown zone
            raise ApplicationError(str(error), non_retryable=True) from None
        workflow.set_current_details(
            f"counting the attempts from {window.window_start:%Y-%m-%d %H:%M} "
            f"to {window.window_end:%Y-%m-%d %H:%M} UTC"
        )
        gathered = await workflow.execute_activity_method(
            LearningActivities.gather,
            window,
            # one scan of each channel's attempts: minutes at ten times the seed's scale
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RETRY,
        )
        learned = await workflow.execute_activity_method(
            LearningActivities.learn,
            RateInput(gathered.overall, gathered.counts, input.prior_strength),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=NO_RETRY_ON_BAD_INPUT,
        )
        seconds = (workflow.now() - began).total_seconds()
        saved = await workflow.execute_activity_method(
            LearningActivities.save,
            save_request(gathered, learned, seconds),
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RETRY,
        )
        workflow.set_current_details(
            f"version {saved.version_id}: {len(learned.rates)} segments from "
            f"{gathered.overall.attempts} attempts of {gathered.claimants} claimants"
        )
        return learn_result(gathered, learned, saved, seconds)
