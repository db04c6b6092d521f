"""Call outcomes as a typed set, each with its effect on the claimant's outreach."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Disposition(StrEnum):
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    VOICEMAIL_LEFT = "voicemail_left"
    WRONG_NUMBER = "wrong_number"
    CALLBACK_REQUESTED = "callback_requested"
    PROMISED_TO_SIGN = "promised_to_sign"
    PROMISED_DOCUMENTS = "promised_documents"
    MAGIC_LINK_SENT = "magic_link_sent"
    NOT_INTERESTED = "not_interested"
    DO_NOT_CALL = "do_not_call"
    DECEASED = "deceased"
    COMPLETED = "completed"


@dataclass(frozen=True)
class DispositionEffect:
    label: str
    failed_attempt: bool  # counts towards the failed-attempts penalty
    positive: bool  # moved the claim forward (conversion)
    opt_out: bool = False  # final: suppression, never undone automatically
    stops_outreach: bool = False  # nothing more to chase through calls
    needs_callback_time: bool = False
    invalidates_phone: bool = False  # stop dialling this number until it changes


EFFECTS: dict[Disposition, DispositionEffect] = {
    Disposition.NO_ANSWER: DispositionEffect("No answer", True, False),
    Disposition.BUSY: DispositionEffect("Busy", True, False),
    Disposition.VOICEMAIL_LEFT: DispositionEffect("Voicemail left", True, False),
    Disposition.WRONG_NUMBER: DispositionEffect(
        "Wrong number", True, False, invalidates_phone=True
    ),
    Disposition.CALLBACK_REQUESTED: DispositionEffect(
        "Callback requested", False, False, needs_callback_time=True
    ),
    Disposition.PROMISED_TO_SIGN: DispositionEffect("Promised to sign", False, True),
    Disposition.PROMISED_DOCUMENTS: DispositionEffect("Promised documents", False, True),
    Disposition.MAGIC_LINK_SENT: DispositionEffect("Magic link sent", False, True),
    Disposition.NOT_INTERESTED: DispositionEffect("Not interested", False, False),
    Disposition.DO_NOT_CALL: DispositionEffect(
        "Do not call", False, False, opt_out=True, stops_outreach=True
    ),
    Disposition.DECEASED: DispositionEffect(
        "Deceased / bereavement", False, False, stops_outreach=True
    ),
    Disposition.COMPLETED: DispositionEffect("Completed", False, True),
}


def effect_of(disposition: Disposition) -> DispositionEffect:
    return EFFECTS[disposition]
