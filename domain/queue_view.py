"""How a queue reads to an operator: tasks callable now, and those waiting, by reason.

A task's `not_before_reason` names its binding constraint with a time ("cooldown after
no_answer until 14:00 Thu 3 Dec"); `reason_kind` drops the time so that waiting tasks group
by why they wait. Pure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

# The first of these ends the kind of a reason: what follows is a time, or the next reason.
_CUTS = (", then ", " until ", " for ", "; ", " (")


def reason_kind(reason: str) -> str:
    """E.g. "abandoned call: 72-hour lock until 09:00 Sun 6 Dec" -> "abandoned call: 72-hour
    lock"; "callback scheduled for 14:00" -> "callback scheduled"."""
    text = " ".join(reason.split())
    ends = [at for at in (text.find(cut) for cut in _CUTS) if at > 0]
    kind = text[: min(ends)] if ends else text
    return kind or "no reason recorded"


def waiting_by_reason(counts: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """(reason, count) rows folded by `reason_kind`, most first (then by name)."""
    folded: Counter[str] = Counter()
    for reason, count in counts:
        folded[reason_kind(reason)] += count
    return sorted(folded.items(), key=lambda item: (-item[1], item[0]))
