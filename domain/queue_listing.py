"""The supervisors' queue lists (`/supervisor/queues/<queue>`): which tasks, in which order,
which page, read from the request's parameters. Pure.

A list is paged by offset, capped at `MAX_PAGE` pages: a supervisor reads the top of a queue
and narrows it with the filters; nobody pages through a hundred thousand claimants, and a
deep offset costs the database a scan of everything before it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.enums import Queue

PAGE_SIZE = 50
MAX_PAGE = 200  # 10,000 tasks deep: a page past it shows the last one allowed


class TaskFilter(StrEnum):
    LIVE = "live"  # ready or claimed: everything in the queue now
    READY = "ready"  # callable now
    WAITING = "waiting"  # in the queue, not callable yet (cooldown, window, callback time)
    CLAIMED = "claimed"  # with an agent
    WITHDRAWN = "withdrawn"  # out of the queue, with the reason (no consent, paused, ...)


class TaskOrder(StrEnum):
    SCORE = "score"  # best first: the order claim-next offers them
    NOT_BEFORE = "not_before"  # callable soonest first
    WAITING_SINCE = "waiting_since"  # longest listed first (the task row's creation)


FILTER_LABELS = {
    TaskFilter.LIVE: "In the queue",
    TaskFilter.READY: "Ready now",
    TaskFilter.WAITING: "Waiting",
    TaskFilter.CLAIMED: "Claimed",
    TaskFilter.WITHDRAWN: "Withdrawn",
}
ORDER_LABELS = {
    TaskOrder.SCORE: "Score",
    TaskOrder.NOT_BEFORE: "Callable from",
    TaskOrder.WAITING_SINCE: "Waiting since",
}


class ListingRefused(ValueError):
    """A parameter no list can be made from; the message says which, for a person."""


@dataclass(frozen=True)
class QueueListing:
    queue: Queue
    status: TaskFilter
    order: TaskOrder
    page: int  # from 1

    @property
    def offset(self) -> int:
        return (self.page - 1) * PAGE_SIZE


def parse_queue(raw: str) -> Queue | None:
    """The queue a path names, or None (no such queue: the page does not exist)."""
    try:
        return Queue(raw)
    except ValueError:
        return None


def parse_listing(
    queue: Queue, status: str | None, order: str | None, page: str | None
) -> QueueListing:
    """The list asked for; absent parameters take their defaults (everything in the queue,
    by score, the first page), a page past `MAX_PAGE` is the last one allowed, anything
    else unknown is refused."""
    try:
        chosen_status = TaskFilter(status or TaskFilter.LIVE.value)
    except ValueError:
        known = ", ".join(f.value for f in TaskFilter)
        raise ListingRefused(f"Unknown status filter; use one of {known}.") from None
    try:
        chosen_order = TaskOrder(order or TaskOrder.SCORE.value)
    except ValueError:
        known = ", ".join(o.value for o in TaskOrder)
        raise ListingRefused(f"Unknown sort order; use one of {known}.") from None
    return QueueListing(queue, chosen_status, chosen_order, _page(page))


def _page(raw: str | None) -> int:
    if not raw:
        return 1
    if not (raw.isascii() and raw.isdigit()):
        raise ListingRefused("The page must be a whole number from 1.")
    if len(raw) > len(str(MAX_PAGE)):  # never parse a thousand-digit number
        return MAX_PAGE
    number = int(raw)
    if number < 1:
        raise ListingRefused("The page must be a whole number from 1.")
    return min(number, MAX_PAGE)
