"""Messages of the recording retention activity (the daily clean-up, issue 11)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass
class RecordingRetentionRequest:
    now: datetime  # the workflow's clock: recordings of calls started before now less the
    # rules file's compliance.recording_retention_months are deleted


@dataclass
class RecordingRetentionResult:
    cutoff: datetime
    deleted: int  # recordings (and transcripts) deleted and audited by this run
    failed: int  # the store failed: the row stays undeleted and the next run tries again
    # AI conversations (issue 13) started before the cut-off whose transcripts were deleted
    ai_transcripts_deleted: int = 0
