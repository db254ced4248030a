"""Stage 10: the production plan, and its pre-migration checklist ticked by evidence.

:func:`checklist` ticks an item only when an earlier stage's sidecar holds the evidence (quoted
with the stage); an unticked item says what is missing and how to get it, and :func:`findings`
makes it a ``block`` when the evidence says the change is not ready, a ``warn`` when the evidence
was not gathered (a stage or option left out: ``dbrunbook apply`` still refuses until it is) or the
item is waived, with the reason. :func:`production_plan` turns the
same sidecars into the steps of the change window and :func:`render_plan` into Markdown.
Nothing here connects to a database or re-computes what a stage recorded.
"""
from __future__ import annotations

from dbrunbook.core.evidence import ProductionPlan
from dbrunbook.stages.production_plan._checklist import CHECKLIST_IDS, CODES, ChecklistItem, checklist, findings
from dbrunbook.stages.production_plan._plan import (
    ABORT_FACTOR,
    ABORT_FLOOR_SECONDS,
    checklist_table,
    production_plan,
    render_plan,
    summary,
)
from dbrunbook.stages.production_plan._stage import ProductionPlanOutcome, run

__all__ = ["ABORT_FACTOR", "ABORT_FLOOR_SECONDS", "CHECKLIST_IDS", "CODES", "ChecklistItem", "ProductionPlan",
           "ProductionPlanOutcome", "checklist", "checklist_table", "findings", "production_plan", "render_plan",
           "run", "summary"]
