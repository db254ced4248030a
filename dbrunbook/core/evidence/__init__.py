"""What each stage records for the stages after it: one evidence type per stage, the ``data`` of its sidecar.

A stage builds its evidence in its package (``dbrunbook.stages.<name>``) and records it with
``stage.finish(summary, evidence=...)``; a later stage reads it back only through
:func:`dbrunbook.core.contract.load` (or ``Stage.earlier``), which parses it strictly:

- a required key that is missing, a value of the wrong type and a key the type does not declare each raise
  :class:`EvidenceError` (a :class:`~dbrunbook.errors.ConfigError`) naming the stage and the key. Unknown keys
  are **rejected**, not kept: a renamed key must fail where it is read, never read as "not gathered";
- the JSON is the run-folder format, which is public: the same keys as before these types existed, so
  older run folders still load (keys added since then have defaults).

Payloads another module owns the shape of (a schema change, a data check's rows, a query plan) are kept as
``dict[str, Any]`` and parsed by that module.
"""
from __future__ import annotations

from dbrunbook.core.evidence._base import Evidence, EvidenceError, Record
from dbrunbook.core.evidence._code_impact import CodeImpactEvidence
from dbrunbook.core.evidence._data_checks import CheckRun, DataChecksEvidence
from dbrunbook.core.evidence._design_validation import DesignValidationEvidence
from dbrunbook.core.evidence._dev_rehearsal import AlembicRun, DevRehearsalEvidence, RevisionTiming
from dbrunbook.core.evidence._guarded_apply import GuardedApplyEvidence, GuardRecord, HistoryRecord, Refusal
from dbrunbook.core.evidence._migration import (
    LintSummary,
    LockEstimate,
    MigrationEvidence,
    MigrationReview,
    Reversal,
    RewriteSummary,
)
from dbrunbook.core.evidence._performance import BackupTiming, PerformanceEvidence
from dbrunbook.core.evidence._post_migration import CheckRow, PostMigrationEvidence
from dbrunbook.core.evidence._production_plan import (
    ChecklistRecord,
    LockImpact,
    PlanStep,
    ProductionPlan,
    ProductionPlanEvidence,
)
from dbrunbook.core.evidence._rollback_plan import (
    BackupEvidence,
    Criterion,
    DataDifference,
    PlannedBackup,
    RollbackPlanEvidence,
    RollbackSteps,
    RoundTripRecord,
    TakenBackup,
)
from dbrunbook.core.evidence._schema_analysis import SchemaAnalysisEvidence
from dbrunbook.core.evidence._staging import StagingEvidence, TimingPointRecord
from dbrunbook.core.evidence._tests import NPlusOneSuspect, TestCommandRun, TestsEvidence

__all__ = [
    "AlembicRun", "BackupEvidence", "BackupTiming", "CheckRow", "CheckRun", "ChecklistRecord", "CodeImpactEvidence",
    "Criterion", "DataChecksEvidence", "DataDifference", "DesignValidationEvidence", "DevRehearsalEvidence",
    "Evidence", "EvidenceError", "GuardRecord", "GuardedApplyEvidence", "HistoryRecord", "LintSummary",
    "LockEstimate", "LockImpact", "MigrationEvidence", "MigrationReview", "NPlusOneSuspect", "PerformanceEvidence",
    "PlanStep", "PlannedBackup", "PostMigrationEvidence", "ProductionPlan", "ProductionPlanEvidence", "Record",
    "Refusal", "Reversal", "RevisionTiming", "RewriteSummary", "RollbackPlanEvidence", "RollbackSteps",
    "RoundTripRecord", "SchemaAnalysisEvidence", "StagingEvidence", "TakenBackup", "TestCommandRun",
    "TestsEvidence", "TimingPointRecord",
]
