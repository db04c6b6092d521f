"""Search attributes of outreach workflows: what supervisors filter by in the Temporal UI.

No personal data here (names, phone numbers): only stage, queue, score, agent, time.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

OUTREACH_STAGE = SearchAttributeKey.for_keyword("OutreachStage")
OUTREACH_QUEUE = SearchAttributeKey.for_keyword("OutreachQueue")
OUTREACH_SCORE = SearchAttributeKey.for_float("OutreachScore")
ASSIGNED_AGENT = SearchAttributeKey.for_keyword("AssignedAgent")
NEXT_CALLBACK_AT = SearchAttributeKey.for_datetime("NextCallbackAt")

ALL = (OUTREACH_STAGE, OUTREACH_QUEUE, OUTREACH_SCORE, ASSIGNED_AGENT, NEXT_CALLBACK_AT)

# Names of the types as the `temporal` CLI spells them for --search-attribute NAME=TYPE.
_CLI_TYPE_NAMES = {"KEYWORD": "Keyword", "DOUBLE": "Double", "DATETIME": "Datetime"}


def cli_flags() -> list[str]:
    flags: list[str] = []
    for key in ALL:
        flags += [
            "--search-attribute",
            f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type.name]}",
        ]
    return flags
