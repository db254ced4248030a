"""The evidence of stage 12 (post-migration validation)."""
from __future__ import annotations

from dataclasses import dataclass, field

from dbrunbook.core.evidence._base import Evidence, Record


@dataclass
class CheckRow(Record):
    """One post-migration check: its code, what it proves, how it went, how many findings it made."""

    code: str
    title: str
    status: str
    detail: str
    findings: int = 0


@dataclass
class PostMigrationEvidence(Evidence):
    """What stage 12 proved: whether the apply happened, the revision now, each check, the fingerprint now."""

    #: True after an apply, False when stage 11 did not apply, None when there is no apply record.
    applied: bool | None
    plan_run: str = ""
    revision: str | None = None
    checks: list[CheckRow] = field(default_factory=list)
    #: ``12-post-migration/fingerprint-after.json``, relative to the run folder.
    fingerprint_after: str = ""
