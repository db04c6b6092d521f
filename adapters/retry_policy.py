"""How the CDC stream waits out failures that pass by themselves (Temporal, PostgreSQL, the
replica or SQS away): tenacity, with exponential backoff capped at `MAX_WAIT`, forever (the
stream holds where it is rather than lose an event), and stopping as soon as the process
stops: asyncio code by cancellation (it cancels the wait too), the binlog reader thread by
its stop event (the wait is on that event, so setting it ends the wait at once).

What is retryable is the caller's choice, as before: `workflows.outreach_client.is_transient` for
Temporal; any database or socket error (`is_database_error`) for the dialler DB and the
replica. Each retry is logged with a reason that names the failure but carries no SQL
parameters (row values are personal data) and no credentials.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError, StatementError
from structlog import get_logger
from temporalio.service import RPCError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    sleep_using_event,
    stop_never,
    stop_when_event_set,
    wait_exponential,
)

from config.logging import scrub

log = get_logger(__name__)

MAX_WAIT = 10.0  # seconds: the longest wait between two attempts
MAX_REASON = 300  # characters of an error's own message kept in a reason

Retryable = Callable[[BaseException], bool]
OnRetry = Callable[[str], None]


def is_database_error(error: BaseException) -> bool:
    """The dialler DB or the replica failed (connection, statement) or a socket did."""
    return isinstance(error, SQLAlchemyError | OSError)


def retry_reason(error: BaseException | None) -> str:
    """What failed, fit for logs and the status page: the error's type and message, except
    that a failed statement is named by its driver error only (SQLAlchemy's message repeats
    the statement's parameters, which can be a claimant's data)."""
    if error is None:
        return "no error"
    name = type(error).__name__
    if isinstance(error, StatementError):
        original = error.orig
        return f"{name} ({type(original).__name__})" if original is not None else name
    if isinstance(error, RPCError):
        return f"{name} {error.status.name}: {scrub(error.message)[:MAX_REASON]}"
    message = scrub(str(error))[:MAX_REASON]
    return f"{name}: {message}" if message else name


def _report(what: str, on_retry: OnRetry | None) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        failed = state.outcome.exception() if state.outcome is not None else None
        reason = f"{what}: {retry_reason(failed)}"
        log.warning(
            "retrying",
            reason=reason,
            attempt=state.attempt_number,
            retry_in=round(state.upcoming_sleep, 3),
        )
        if on_retry is not None:
            on_retry(reason)

    return before_sleep


def backoff(first_wait: float) -> wait_exponential:
    """first_wait, twice that, four times... up to MAX_WAIT."""
    return wait_exponential(multiplier=first_wait, max=MAX_WAIT)


def retrying(
    what: str, *, retryable: Retryable, first_wait: float, on_retry: OnRetry | None = None
) -> AsyncRetrying:
    """For asyncio code: retry while `retryable(error)`, forever; any other error is raised
    as it is (reraise), and cancellation ends the wait."""
    return AsyncRetrying(
        retry=retry_if_exception(retryable),
        wait=backoff(first_wait),
        stop=stop_never,
        reraise=True,
        before_sleep=_report(what, on_retry),
    )


def retrying_until(
    stopping: threading.Event,
    what: str,
    *,
    retryable: Retryable,
    first_wait: float,
    on_retry: OnRetry | None = None,
) -> Retrying:
    """For a thread: like `retrying`, but the wait is on `stopping` (setting it ends the wait
    at once) and no retry starts once it is set: the last error is raised instead."""
    return Retrying(
        retry=retry_if_exception(retryable),
        wait=backoff(first_wait),
        stop=stop_when_event_set(stopping),
        sleep=sleep_using_event(stopping),
        reraise=True,
        before_sleep=_report(what, on_retry),
    )
