"""The production plan of stage 10: the change window step by step, from the run's evidence."""
from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from dbrunbook.core import contract
from dbrunbook.core.evidence import (
    Criterion,
    DevRehearsalEvidence,
    LockEstimate,
    LockImpact,
    MigrationEvidence,
    PlanStep,
    ProductionPlan,
    RollbackPlanEvidence,
    SchemaAnalysisEvidence,
    StagingEvidence,
)
from dbrunbook.core.secrets import PASSWORD_ENV, mask_url, parse_url
from dbrunbook.errors import UsageError
from dbrunbook.stages.production_plan._checklist import ChecklistItem, absent
from dbrunbook.stages.rollback_plan import decision_criteria

#: The fallback abort limit: this many times the expected duration, never less than the floor.
ABORT_FACTOR, ABORT_FLOOR_SECONDS = 3.0, 30.0

_URL = re.compile(r"\b[a-z][a-z0-9+]*://[^\s'\"]+")
_LONGER_THAN = re.compile(r"longer than (\d+(?:\.\d+)?)s")


def _mask_text(text: str) -> str:
    masked = _URL.sub(lambda m: mask_url(m.group(0)), text)
    secret = os.environ.get(PASSWORD_ENV)
    return masked.replace(secret, "***") if secret and len(secret) >= 3 else masked


def _expected(folder: Path) -> tuple[float | None, str]:
    staging, rehearsal = contract.recorded(folder, StagingEvidence), contract.recorded(folder, DevRehearsalEvidence)
    predicted = staging.evidence.predicted_seconds if staging else None
    if staging and predicted is not None and staging.evidence.points and all(p.ok for p in staging.evidence.points):
        return predicted, f"{staging.stage} prediction"
    if rehearsal and rehearsal.evidence.upgrade.ok:
        return rehearsal.evidence.upgrade.seconds, f"{rehearsal.stage} rehearsal time"
    return None, "unknown: no successful rehearsal or staging run"


def _abort_after(criteria: list[Criterion], expected: float | None) -> float:
    # The rollback plan's own limit wins; it is stated in words, so it is read back from them.
    found = [m for m in (_LONGER_THAN.search(row.threshold) for row in criteria) if m]
    return float(found[0].group(1)) if found else max(ABORT_FLOOR_SECONDS, ABORT_FACTOR * (expected or 0))


def _lock_impact(locks: list[LockEstimate]) -> list[LockImpact]:
    tables: dict[str, LockImpact] = {}
    for row in locks:
        seen = tables.setdefault(row.table, LockImpact(row.table, row.lock, row.blocks, 0, 0.0))
        seen.statements += 1
        seen.blocked_seconds = round(seen.blocked_seconds + row.blocked_seconds, 3)
    return sorted(tables.values(), key=lambda t: -t.blocked_seconds)


def _timeouts(dialect: str, lock_ms: int, abort: float) -> list[str]:
    # Exactly what dbrunbook apply will set, so the plan and the apply cannot disagree.
    from dbrunbook.stages.guarded_apply._monitor import session_for

    return session_for(dialect, lock_ms, abort)


def _no_backup(plan: ProductionPlan) -> str:
    # A rollback plan that raised was asked for: say what happened, not "add --rollback-plan".
    why = plan.raised_stages.get(contract.ROLLBACK_PLAN.key, "run dbrunbook update --rollback-plan")
    return f"no verified backup in this run: {why}"


def _unknown_migration(plan: ProductionPlan) -> str:
    return plan.raised_stages.get(contract.MIGRATION.key, "stage 03 did not run in this run")


def _steps(plan: ProductionPlan) -> list[PlanStep]:
    tables = ", ".join(f"{t.table} ({t.blocked_seconds}s)" for t in plan.lock_impact) or "none estimated"
    expected = f"{plan.expected_seconds:.2f}s" if plan.expected_seconds is not None else "unknown"
    restore = plan.restore_command or _no_backup(plan)
    timeouts = "; ".join(_timeouts(plan.dialect, plan.lock_timeout_ms, plan.abort_after_seconds))
    abort, back = f"{plan.abort_after_seconds:g}s", plan.revision_from or "base"
    known = plan.revision_to is not None or bool(plan.revisions)
    change = f"{back} -> {plan.revision_to}" if known else f"an unknown migration ({_unknown_migration(plan)})"
    again = "fix stage 03 and run dbrunbook update again" if contract.MIGRATION.key in plan.raised_stages \
        else "run dbrunbook update with stage 03"
    apply = f"dbrunbook apply {plan.run_id} (guarded apply, then post-migration validation)" if known else \
        f"nothing to apply from this run: {again}, then dbrunbook apply on that run"
    return [PlanStep(step, do) for step, do in [
        ("announce", f"announce the change window: {change} on {plan.target}; "
                     f"expected {expected}, abort after {abort}; writes blocked on: {tables}"),
        ("back up", f"take a fresh verified backup (dbrunbook backup --db <target> --verify); it restores like "
                    f"the rehearsed one: {restore}"),
        ("set timeouts", f"lock timeout {plan.lock_timeout_ms} ms, statement timeout {abort}: "
                         f"{timeouts or 'set them in the session'}"),
        ("apply", apply),
        ("watch", f"lock waits on the migrated tables and the elapsed time; abort on any criterion below "
                  f"(longer than {abort}, a failing statement, piling lock waits)"),
        ("validate", f"post-migration validation: revision {plan.revision_to or 'at head'}, the schema matches the "
                     f"models, data fingerprints and row counts hold, the application's smoke tests pass"),
        ("roll back", f"only on an abort criterion: downgrade to {back} with {plan.downgrade_sql or 'no downgrade SQL'}"
                      f" (alembic downgrade {back}); if data was lost, restore: {restore}"),
    ]]


def _raised(folder: Path, stages: tuple[contract.StageSpec[Any], ...]) -> dict[str, str]:
    why = {stage.key: absent(folder, stage.key) for stage in stages if stage.recorded_name(folder) is None}
    return {key: text for key, (text, raised) in why.items() if raised}


def production_plan(run_dir: str | Path, *, db: str = "", lock_timeout_ms: int = 2000,
                    window_seconds: float = 300.0) -> ProductionPlan:
    """The production plan of the run in ``run_dir``, from its evidence and artifacts; reads no database."""
    if lock_timeout_ms <= 0:
        raise UsageError(f"lock_timeout_ms must be a positive number of milliseconds, not {lock_timeout_ms!r}")
    folder = Path(run_dir)
    migration = contract.load(folder, MigrationEvidence)
    analysis = contract.load(folder, SchemaAnalysisEvidence)
    rollback = contract.load(folder, RollbackPlanEvidence)

    def artifact(*candidates: str) -> str | None:
        return next((c for c in candidates if (folder / c).is_file()), None)

    criteria = list(rollback.decision_criteria) if rollback else []
    expected, source = _expected(folder)
    abort = _abort_after(criteria, expected)
    # One limit everywhere: a threshold left in words (no rehearsal then) gets the number used here.
    criteria = [replace(c, threshold=f"longer than {abort:g}s") if c.threshold.startswith("longer than") else c
                for c in criteria or [Criterion(**row) for row in decision_criteria(None, abort)]]
    restore = rollback.backup.restore_command if rollback else None
    dialect = parse_url(db).get_backend_name() if db else ""
    plan = ProductionPlan(
        run_id=folder.name, target=mask_url(db) if db else "", dialect=dialect,
        revision_from=migration.current if migration else None, revision_to=migration.head if migration else None,
        revisions=list(migration.revisions) if migration else [],
        script_dir=migration.script_dir if migration else None,
        upgrade_sql=artifact(contract.MIGRATION.path("upgrade.sql")),
        downgrade_sql=artifact(contract.MIGRATION.path("downgrade.sql"), contract.ROLLBACK_PLAN.path("downgrade.sql")),
        schema_before=analysis.snapshot if analysis else None, expected_seconds=expected,
        expected_from=source, abort_after_seconds=abort, lock_timeout_ms=int(lock_timeout_ms),
        restore_command=_mask_text(restore) if restore else None, window_seconds=float(window_seconds),
        lock_impact=_lock_impact(migration.review.locks if migration else []), criteria=criteria,
        raised_stages=_raised(folder, (contract.SCHEMA_ANALYSIS, contract.MIGRATION, contract.DEV_REHEARSAL,
                                       contract.STAGING, contract.ROLLBACK_PLAN)))
    plan.steps = _steps(plan)
    return plan


def checklist_table(items: list[ChecklistItem]) -> list[dict[str, str]]:
    """Rows for showing the checklist: a check mark for ticked items."""
    return [{"": "[x]" if i.ticked else ("[~]" if i.waived else "[ ]"), "item": i.id, "stage": i.stage,
             "evidence": i.evidence} for i in items]


def render_plan(plan: ProductionPlan, items: list[ChecklistItem], with_checklist: bool = True) -> str:
    """The production plan and its checklist as Markdown (``10-production-plan/plan.md``).

    ``with_checklist=False``: the plan alone, for a notebook that shows the checklist as its own table.
    """
    def _cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    ticked, unticked = sum(i.ticked for i in items), sum(not i.ticked and not i.waived for i in items)
    ready = f"NOT READY: {unticked} item(s) unticked" if unticked else "READY"
    rows = "\n".join(f"| {r['']} | {r['item']} | {r['stage']} | {_cell(r['evidence'])} |"
                     for r in checklist_table(items))
    if plan.revision_to is None and not plan.revisions:  # stage 03 did not name a migration
        change = f"The migration is unknown: {_unknown_migration(plan)}, so there is nothing to apply yet."
    else:
        change = (f"Revision {plan.revision_from or 'base'} -> {plan.revision_to} "
                  f"({', '.join(plan.revisions) or 'nothing to apply'}); scripts `{plan.script_dir}`, "
                  f"upgrade SQL `{plan.upgrade_sql}`, downgrade SQL `{plan.downgrade_sql}`.")
    expected = plan.expected_from if plan.expected_seconds is None else \
        f"{plan.expected_seconds:.2f}s ({plan.expected_from})"
    locks = "\n".join(f"| {t.table} | {_cell(t.lock)} | {_cell(t.blocks)} | {t.statements} | "
                      f"{t.blocked_seconds} |" for t in plan.lock_impact) or "| (none estimated) | | | | |"
    steps = "\n".join(f"{n}. **{s.step}**: {s.do}" for n, s in enumerate(plan.steps, start=1))
    criteria = "\n".join(f"| {_cell(c.signal)} | {_cell(c.threshold)} | {_cell(c.action)} |"
                         for c in plan.criteria)
    return (f"# Production plan: run {plan.run_id}\n\n{ready} ({ticked} of {len(items)} ticked)\n\n"
            f"Target: `{plan.target or 'unknown'}`\n\n{change}\n\n"
            f"Expected duration: {expected}; window {plan.window_seconds:g}s; "
            f"abort after {plan.abort_after_seconds:g}s; lock timeout {plan.lock_timeout_ms} ms.\n\n"
            + (f"## Pre-migration checklist\n\n|  | item | stage | evidence |\n|---|---|---|---|\n{rows}\n\n"
               if with_checklist else "")
            + f"## Steps\n\n{steps}\n\n"
            f"## Lock impact (stage 03)\n\n| table | lock | blocks | statements | blocked seconds |\n"
            f"|---|---|---|---|---|\n{locks}\n\n"
            f"## Abort criteria\n\n| signal | threshold | action |\n|---|---|---|\n{criteria}\n\n"
            f"## Rollback\n\nDowngrade SQL: `{plan.downgrade_sql or 'none'}`\n\n"
            f"Restore command:\n\n```\n{plan.restore_command or _no_backup(plan)}\n```\n")


def summary(items: list[ChecklistItem], plan: ProductionPlan) -> str:
    """One line for the stage result."""
    ticked, waived = sum(i.ticked for i in items), sum(bool(i.waived) for i in items)
    change = f"{plan.revision_from} -> {plan.revision_to}" if plan.revision_to else "migration unknown"
    return (f"{ticked} of {len(items)} checklist items ticked" + (f", {waived} waived" if waived else "")
            + f"; plan {change}, abort after {plan.abort_after_seconds:g}s")
