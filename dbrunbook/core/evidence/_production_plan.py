"""The evidence of stage 10: the pre-migration checklist and the production plan that ``dbrunbook apply`` follows."""
from __future__ import annotations

from dataclasses import dataclass, field

from dbrunbook.core.evidence._base import Evidence, Record
from dbrunbook.core.evidence._rollback_plan import Criterion


@dataclass
class ChecklistRecord(Record):
    """One pre-migration checklist item as recorded: ticked by a quoted fact, or why not."""

    id: str
    title: str
    ticked: bool
    evidence: str
    stage: str
    waived: str = ""
    #: True when the evidence was not gathered (as opposed to evidence against the item).
    missing: bool = False
    #: The guard of ``dbrunbook apply`` that checks this item instead (approvals sign the finished plan run,
    #: so stage 10 cannot see them); "" for items stage 10 decides.
    deferred: str = ""


@dataclass
class LockImpact(Record):
    """Stage 03's lock estimates summed for one table."""

    table: str
    lock: str
    blocks: str
    statements: int
    blocked_seconds: float


@dataclass
class PlanStep(Record):
    """One step of the change window."""

    step: str
    do: str


@dataclass
class ProductionPlan(Record):
    """The change window, step by step, from the run's evidence: what ``dbrunbook apply`` follows.

    Paths are relative to the plan run folder.
    """

    run_id: str
    #: The target's URL, masked.
    target: str
    dialect: str
    revision_from: str | None
    revision_to: str | None
    revisions: list[str]
    script_dir: str | None
    upgrade_sql: str | None
    downgrade_sql: str | None
    schema_before: str | None
    expected_seconds: float | None
    #: Where ``expected_seconds`` comes from (stage 09's prediction, stage 04's rehearsal), or why it is unknown.
    expected_from: str
    abort_after_seconds: float
    lock_timeout_ms: int
    restore_command: str | None
    window_seconds: float = 300.0
    lock_impact: list[LockImpact] = field(default_factory=list)
    criteria: list[Criterion] = field(default_factory=list)
    steps: list[PlanStep] = field(default_factory=list)
    #: The stages the plan reads that raised (their executed notebook holds the error), and what they raised.
    raised_stages: dict[str, str] = field(default_factory=dict)


@dataclass
class ProductionPlanEvidence(Evidence):
    """What stage 10 concluded: the checklist, the plan, and where the plan is written as Markdown."""

    checklist: list[ChecklistRecord]
    plan: ProductionPlan
    #: ``10-production-plan/plan.md``, relative to the run folder.
    plan_file: str = ""
