"""Stage 10's step: tick the checklist from the run's evidence, write the production plan, build the evidence."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbrunbook.core.config import load_run_settings
from dbrunbook.core.evidence import ProductionPlan, ProductionPlanEvidence
from dbrunbook.core.notify import send_test
from dbrunbook.stages.production_plan._checklist import ChecklistItem, checklist, findings
from dbrunbook.stages.production_plan._plan import production_plan, render_plan, summary

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class ProductionPlanOutcome:
    """The checklist, the plan and its Markdown (for the notebook to show), and stage 10's evidence."""

    items: list[ChecklistItem]
    plan: ProductionPlan
    text: str
    evidence: ProductionPlanEvidence
    summary: str


def run(stage: Stage, *, window_seconds: float = 300.0, lock_timeout_ms: int = 2000,
        waive: dict[str, str] | None = None) -> ProductionPlanOutcome:
    """Tick the checklist of ``stage``'s run (``waive``: item id to reason) and plan the change window; writes
    ``plan.md`` and adds a finding per unticked item to ``stage``. Reads no database."""
    settings = load_run_settings(stage.target.project_dir)
    # The monitoring item is ticked by a delivered test notification (none is sent when none is configured).
    delivery = send_test(settings, f"dbrunbook update: stage 10 of run {stage.run_dir.name}")
    items = checklist(stage.run_dir, window_seconds=window_seconds, waive=waive,
                      required_approvals=settings.required_approvals, delivery=delivery)
    stage.extend(findings(items))
    plan = production_plan(stage.run_dir, db=stage.target.db, lock_timeout_ms=lock_timeout_ms,
                           window_seconds=window_seconds)
    text = render_plan(plan, items)
    (stage.dir / "plan.md").write_text(text)
    evidence = ProductionPlanEvidence(checklist=[item.record() for item in items], plan=plan,
                                      plan_file=stage.path("plan.md"))
    return ProductionPlanOutcome(items, plan, text, evidence, summary(items, plan))
