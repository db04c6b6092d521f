"""What the SMS pages show: the wording of their notices and refusals, the magic-link
purposes and reply templates offered, and message times as UK wall time. What the routes do
is `web.actions.sms`."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
MAGIC_LINK_PURPOSES = {
    "signature": "Sign the claim documents",
    "documents": "Upload outstanding documents",
    "callback": "Pick up where we left off",
}
TEMPLATES = {"documents": "Document reminder"}
NOTICES = {
    "sms": "Message sent.",
    "link": "Magic link sent by SMS.",
    "simulated": "Simulated reply received.",
}
OPTED_OUT_MESSAGE = (
    "This claimant has opted out of contact (they replied STOP, or are on a do-not-call or "
    "suppression list). You cannot text them."
)


def sms_time(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(LONDON).strftime("%d %b %Y, %H:%M")
