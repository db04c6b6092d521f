"""Subject access: everything the dialler holds on one claimant, as one JSON document
(`dialler compliance export USER_ID`).

Each part is read through its table's owner module only: the replica's user, claims,
requirements and consents (`adapters.replica_reader`), the task (`adapters.task_store`),
calls with their recordings' metadata and transcripts, callbacks and notes
(`adapters.call_log`), texts (`adapters.sms_outbox`), magic links without their token hash
(`adapters.magic_links`), consents captured by agents (`adapters.consents`), suppressions
naming the claimant, their number or their address, with removals
(`adapters.suppressions`), the AI conversations with their steps (`adapters.ai_conversations`),
and the audit entries about the claimant, their calls
(recording playbacks), links and suppressions (`adapters.audit_log`).

The export is itself audited, in the transaction that read the dialler's part: no
document leaves without its audit row, whose id the document carries.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from adapters import (
    ai_conversations,
    call_log,
    consents,
    magic_links,
    sms_outbox,
    suppressions,
    task_store,
)
from adapters.audit_log import append_audit, entries_about
from adapters.replica_reader import ReplicaReader
from domain.sms import number_spellings

FORMAT_VERSION = 1
ACTOR_TYPE = "operator"


class UnknownClaimant(LookupError):
    """Neither the replica nor the dialler has anything on this user id."""

    def __init__(self, user_id: int) -> None:
        super().__init__(f"no claimant {user_id}: the replica and the dialler hold nothing on them")
        self.user_id = user_id


def _plain(value: object) -> Any:
    """JSON for what the databases return: instants and dates in ISO 8601, money exact."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not exported")


def to_json(document: dict[str, Any]) -> str:
    return json.dumps(document, default=_plain, indent=2, ensure_ascii=False, sort_keys=False)


def _row(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


def _recordings(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The recordings' metadata, one per recorded call (also in the calls themselves)."""
    recorded = [c for c in calls if c.get("recording_sid") or c.get("recording_key")]
    fields = ("recording_sid", "recording_duration_seconds", "recording_notice_played",
              "recording_store", "recording_key", "recording_deleted_at")  # fmt: skip
    return [{"call_id": c["id"], **{f: c.get(f) for f in fields if f in c}} for c in recorded]


class SubjectAccess:
    def __init__(self, dialler: AsyncEngine, replica_db: AsyncEngine) -> None:
        self._dialler = dialler
        self._replica = ReplicaReader(replica_db)

    async def export(
        self, user_id: int, *, by: str, reason: str | None = None, now: datetime | None = None
    ) -> dict[str, Any]:
        """The claimant's document; raises `UnknownClaimant` (nothing audited) when
        neither database knows the id."""
        now = now or datetime.now(UTC)
        replica = await self._replica.claimant_with_claims(user_id)
        user = _row(replica.user) if replica.user is not None else None
        number = user.get("phone_number") if user else None
        email = user.get("email") if user else None
        async with self._dialler.begin() as conn:
            kept = await call_log.subject_access(conn, user_id)
            task = await task_store.task_of(conn, user_id)
            texts = await sms_outbox.subject_access(conn, user_id, sorted(number_spellings(number)))
            links = await magic_links.subject_access(conn, user_id)
            captured = (await consents.captured(conn, [user_id])).get(user_id, [])
            ai = await ai_conversations.subject_access(conn, user_id)
            suppressed = await suppressions.about_claimant(conn, user_id, number, email)
            held = [kept["calls"], kept["callbacks"], kept["notes"], texts, links, captured,
                    suppressed, [task] if task else [], ai]  # fmt: skip
            if user is None and not any(held):
                raise UnknownClaimant(user_id)
            subjects = [("user", str(user_id))]
            subjects += [("call", str(c["id"])) for c in kept["calls"]]
            subjects += [("magic_link", str(link["id"])) for link in links]
            subjects += [("suppression", str(s["id"])) for s in suppressed]
            audit = await entries_about(conn, subjects, user_id)
            counts = {
                "calls": len(kept["calls"]), "callbacks": len(kept["callbacks"]),
                "notes": len(kept["notes"]), "sms": len(texts), "magic_links": len(links),
                "consents_captured": len(captured), "suppressions": len(suppressed),
                "ai_conversations": len(ai), "audit": len(audit),
            }  # fmt: skip
            audit_id = await append_audit(
                conn,
                actor_type=ACTOR_TYPE,
                actor_id=by[:64],
                action="subject_access_export",
                subject_type="user",
                subject_id=str(user_id),
                detail={"route": "dialler compliance export", "reason": reason, "counts": counts},
            )
        claims: dict[int, dict[str, Any]] = {}
        for row in replica.claims:
            r = _row(row)
            claim = claims.setdefault(
                r["id"],
                {k: r[k] for k in ("id", "status", "created_at", "estimated_value", "lender")}
                | {"requirements": []},
            )
            if r.get("requirement_id") is not None:
                claim["requirements"].append(
                    {"id": r["requirement_id"], "type": r["requirement_type"],
                     "status": r["requirement_status"]}
                )  # fmt: skip
        return {
            "format_version": FORMAT_VERSION,
            "user_id": user_id,
            "exported_at": now,
            "exported_by": by,
            "export_audit_id": audit_id,
            "claimant": user,
            "claims": list(claims.values()),
            "consents": {
                "main_app": [_row(c) for c in replica.consents],
                "captured_by_agents": [asdict(c) for c in captured],
            },
            "task": asdict(task) if task else None,
            "calls": kept["calls"],
            "recordings": _recordings(kept["calls"]),
            "callbacks": kept["callbacks"],
            "notes": kept["notes"],
            "sms": texts,
            "ai_conversations": ai,
            "magic_links": links,
            "suppressions": suppressed,
            "audit": audit,
        }
