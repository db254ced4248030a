"""Stage 03's step: plan the migration, review its SQL, write the safe rewrite, check that the plan makes stage
01's change (:mod:`._agreement`), and build the evidence."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbrunbook.core import contract
from dbrunbook.core.db import dialect_name
from dbrunbook.core.evidence import MigrationEvidence, MigrationReview, RewriteSummary
from dbrunbook.stages.migration import MigrationPlan, Review, findings, plan_migration, review_migration
from dbrunbook.stages.migration._agreement import PlanAgreement, agreement_findings, check_plan
from dbrunbook.stages.migration.rewrite import RewriteResult, rewrite_planned

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class MigrationOutcome:
    """The plan, its review and its safe rewrite (for the notebook to show), and the evidence stage 03 records."""

    plan: MigrationPlan
    review: Review
    rewrite: RewriteResult
    evidence: MigrationEvidence
    summary: str
    #: What the planned revisions leave, against the models; None when stage 01 or the models were not there.
    agreement: PlanAgreement | None = None


def planned(plan: MigrationPlan, run_dir: Path, review: Review | None = None,
            rewrite: RewriteResult | None = None, agreement: PlanAgreement | None = None) -> MigrationEvidence:
    """Stage 03's evidence of ``plan`` (and its review and rewrite); paths relative to the run folder."""
    def rel(path: Path | None) -> str | None:
        if path and path.is_relative_to(run_dir):
            return str(path.relative_to(run_dir))
        return str(path) if path else None

    stage = contract.MIGRATION.name
    return MigrationEvidence(
        # "head" stays one string (several heads comma-joined); "heads" lists them for readers that want each.
        current=plan.current, head=plan.head, heads=plan.head.split(",") if plan.head else [],
        revisions=plan.revisions, script_dir=rel(plan.script_dir), generated=rel(plan.generated),
        written_to_project=str(plan.written_to_project) if plan.written_to_project else None,
        sql_source=plan.sql_source,
        review=MigrationReview.from_json(review.summary(), stage=stage) if review else MigrationReview(),
        rewrite=RewriteSummary(files=[str(p.relative_to(run_dir)) for p in rewrite.files], advice=rewrite.advice,
                               remaining=[f.code for f in rewrite.findings]) if rewrite else RewriteSummary(),
        disagreements=None if agreement is None or agreement.note else [c.to_json() for c in agreement.differences],
        comparison_note=agreement.note if agreement is not None and agreement.note else None)


def run(stage: Stage, *, message: str = "dbrunbook update", dry_run: bool = True,
        measure_throughput: bool = True) -> MigrationOutcome:
    """Plan the revisions of ``stage``'s target (written to the project unless ``dry_run``), review their SQL
    (``measure_throughput``: time a table copy for the lock estimates) and write the safe rewrite; adds the
    findings to ``stage``."""
    plan = plan_migration(stage.target, stage.dir, message=message, write_to_project=not dry_run)
    stage.extend(findings(plan))
    review = review_migration(plan, stage.target, measure=measure_throughput)
    stage.extend(review.findings)
    safe = rewrite_planned(plan.script_dir, plan.revisions, dialect_name(stage.engine), stage.dir / "rewrite",
                           review.findings, url=stage.target.db)
    agreement = check_plan(stage, plan)
    stage.extend(agreement_findings(agreement, plan))
    worst = max((row.blocked_seconds for row in review.locks), default=0.0)
    summary = (f"{len(plan.revisions)} revision(s) to apply" + (", generated from the models" if plan.generated else "")
               + f"; {len(review.findings)} lint finding(s); writes blocked up to {worst:.2f}s")
    if agreement is not None and agreement.differences:
        summary += f"; the plan does not make the models ({len(agreement.differences)} difference(s))"
    return MigrationOutcome(plan, review, safe, planned(plan, stage.run_dir, review, safe, agreement), summary,
                            agreement)
