"""The evidence of stage 05 (data checks)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.core.evidence._base import Evidence, Record, optional


@dataclass
class CheckRun(Record):
    """The data checks of one change: the dialect, its strict mode, the tables touched, the results."""

    dialect: str
    strict: bool
    tables: list[str] = field(default_factory=list)
    diffs: list[str] = field(default_factory=list)
    #: Each result as ``dbrunbook.stages.data_checks.CheckResult.to_json`` writes it (rows, sample, remedies).
    results: list[dict[str, Any]] = field(default_factory=list)
    #: The data statements of the pending revisions, in order (``data_checks._statements.DataStatement.to_json``);
    #: absent from sidecars written before they were read.
    statements: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DataChecksEvidence(Evidence):
    """What stage 05 found: the checks (absent when there was nothing to check against), profiles,
    the fingerprint file and the backfill plans."""

    #: Absent from the sidecar when no target schema was known (no models and no revisions): then no check ran.
    checks: CheckRun | None = optional()
    #: Each table's profile (``data_checks.profile.TableProfile.to_json``).
    profile: list[dict[str, Any]] = field(default_factory=list)
    #: ``05-data-checks/fingerprint.json``, relative to the run folder.
    fingerprint: str = ""
    #: Each backfill plan (``data_checks.backfill.BackfillPlan.to_json``).
    backfills: list[dict[str, Any]] = field(default_factory=list)

    def gathered(self) -> bool:
        return self.checks is not None
