"""What stage 11 records (findings, sidecar data, summary), and the apply run behind ``dbrunbook apply``."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..results import Finding

if TYPE_CHECKING:
    from ..runbook.engine import Run
    from ._run import ApplyOutcome, ApplyPlan

STAGE = "11-guarded-apply"
#: One finding code per guard, in :data:`~dbrunbook.apply._guards.GUARDS` order.
GUARD_CODES = {"manifest-verified": "AP001", "plan-ready": "AP002", "same-target": "AP003",
               "revision-unchanged": "AP004", "no-schema-drift": "AP005", "scripts-present": "AP006",
               "project-history": "AP007"}
_GUARD_FIX = {
    "manifest-verified": "plan again with dbrunbook update: a plan run is evidence only while it is unchanged",
    "plan-ready": "tick the missing items (see the plan run's 10-production-plan) or waive them there with a reason",
    "same-target": "apply the plan run made for this database, or plan this database with dbrunbook update",
    "revision-unchanged": "plan again with dbrunbook update: the database moved since it was planned",
    "no-schema-drift": "plan again with dbrunbook update: the schema changed since it was planned",
    "scripts-present": "plan again with dbrunbook update: the plan run's scripts do not match its plan",
    "project-history": "give the project's alembic.ini (alembic_config) with a writable versions directory, or plan "
                       "again with dbrunbook update (without --dry-run it writes the generated revision there)",
}


def plan_findings(plan: ApplyPlan | None, execute: bool) -> list[Finding]:
    """Findings of the guards (block, or warn when accepted) and of a plan-only run."""
    if plan is None:
        return [Finding("AP000", "info", "no plan run given: nothing planned, nothing applied")]
    out = []
    for guard in plan.guards:
        if not guard.ok:
            accepted = " (accepted with --accept)" if guard.accepted else ""
            out.append(Finding(GUARD_CODES[guard.id], "warn" if guard.accepted else "block",
                               f"guard {guard.id} failed{accepted}: {guard.detail}", guard.id,
                               {"guard": guard.to_json()}, _GUARD_FIX[guard.id]))
    if plan.outside_transaction:
        out.append(Finding("AP016", "warn", f"{', '.join(plan.outside_transaction)} run statements outside a "
                                            "transaction (autocommit_block): the revisions are applied one by one, and "
                                            "a failure leaves the revisions before it applied", "",
                           {"revisions": plan.outside_transaction},
                           "keep non-transactional operations (CREATE INDEX CONCURRENTLY) in a revision of their own"))
    if not plan.revisions:
        out.append(Finding("AP015", "info", "the plan has no revision to apply"))
    elif not execute and not plan.refused:
        out.append(Finding("AP010", "info", f"plan only: {len(plan.revisions)} revision(s) would be applied, "
                                            f"{plan.revision_from or 'base'} -> {plan.revision_to}"))
        out += [Finding("AP017", "info", f"plan only: the generated revision {w['revision']} would be written to "
                                         f"{w['dest']} before the upgrade, so the project's history holds it",
                        w["revision"], {"written_to_project": w["dest"]}) for w in plan.history.write]
    return out


def outcome_findings(plan: ApplyPlan, outcome: ApplyOutcome) -> list[Finding]:
    """Findings of what the apply did: applied, failed (and what is left), aborted, blocking."""
    revision = {w["dest"]: w["revision"] for w in plan.history.write}
    out = [Finding("AP017", "warn", f"the generated revision {revision.get(dest, '')} was written to {dest} before "
                                    "the upgrade: the project's Alembic history holds the revision of the target",
                   revision.get(dest, ""), {"written_to_project": dest}, "commit it with the project")
           for dest in outcome.written_to_project]
    done = [r["revision"] for r in outcome.revision_timings if r["ok"]]
    evidence = {"revision_before": outcome.revision_before, "revision_after": outcome.revision_after,
                "revision_timings": outcome.revision_timings, "failed_statement": outcome.failed_statement.strip()[:500]}
    if outcome.applied:
        out.append(Finding("AP011", "info", f"applied {outcome.revision_before or 'base'} -> {outcome.revision_after} "
                                            f"in {outcome.seconds:.2f}s ({len(outcome.statements)} statements)"))
    elif outcome.error:
        if outcome.rolled_back:
            state = "the transaction was rolled back: the target is as it was"
            fix = "fix the cause, plan again with dbrunbook update, then apply the new plan"
        else:
            state = (f"revisions applied before the failure: {', '.join(done) or 'none'}; the target is at "
                     f"{outcome.revision_after or 'no revision'} and statements of the failed revision may have run")
            fix = ("restore the backup: " + outcome.restore_command if outcome.restore_command
                   else "repair by hand from the statements recorded here, or restore a backup")
        code, what = ("AP013", "the upgrade was aborted") if outcome.aborted else ("AP012", "the upgrade failed")
        out.append(Finding(code, "block", f"{what}: {outcome.error}; {state}", outcome.revision_after or "",
                           {**evidence, "error_type": outcome.error_type}, fix))
    blocked = max((s["blocked"] for s in outcome.monitor), default=0)
    if blocked:
        span = sum(1 for s in outcome.monitor if s["blocked"]) * 0.1
        out.append(Finding("AP014", "warn", f"the migration blocked up to {blocked} other session(s) "
                                            f"for about {span:.1f}s", "", {"max_blocked": blocked}))
    return out


def stage_data(plan: ApplyPlan | None, outcome: ApplyOutcome | None, run_dir: Path) -> dict[str, Any]:
    """The sidecar data of stage 11 (CONTRACT.md)."""
    if plan is None:
        return {"plan_run": "", "plan_run_id": "", "applied": False, "aborted": False, "guards": [],
                "statements": [], "error": "", "monitor": []}
    data = {**plan.to_json(), "applied": False, "aborted": False, "revision_before": plan.revision_now,
            "revision_after": plan.revision_now, "fingerprint_before": None, "statements": [], "error": "",
            "monitor": []}
    if outcome is not None:
        data.update(outcome.to_json(run_dir))
    return data


def summary(plan: ApplyPlan | None, outcome: ApplyOutcome | None) -> str:
    """One line for the stage result."""
    if plan is None:
        return "no plan run given"
    if plan.refused:
        return f"refused: {len(plan.refused)} guard(s) failed ({', '.join(g.id for g in plan.refused)})"
    if outcome is None:
        writes = "".join(f"; would write {Path(w['dest']).name} into the project" for w in plan.history.write)
        return (f"plan only: {plan.revision_from or 'base'} -> {plan.revision_to}, "
                f"{sum(g.ok for g in plan.guards)} of {len(plan.guards)} guards hold{writes}")
    if outcome.applied:
        return (f"applied {outcome.revision_before or 'base'} -> {outcome.revision_after} in {outcome.seconds:.2f}s"
                + "".join(f"; wrote {Path(d).name} into the project" for d in outcome.written_to_project))
    if outcome.aborted:
        return f"aborted after {outcome.seconds:.2f}s; target at {outcome.revision_after or 'no revision'}"
    if outcome.error:
        return f"failed: {outcome.error[:120]}"
    return "nothing applied"


def apply_run(run: str, *, project: Path | None = None, db: str | None = None, runs_dir: Path | None = None,
              accept: list[str] | None = None, dry_run: bool = False) -> Run:
    """Run the apply templates on the plan run ``run`` into a new apply run folder beside it."""
    from ..config import load_run_settings, load_target
    from ..runbook.archive import find_run
    from ..runbook.engine import RunOptions, run_runbook, runbook_folder
    from ..results import sidecar_path
    from ._guards import PLAN_STAGE, check_accept

    accepted = check_accept(accept or [])  # before a run folder exists, not as a stage error
    plan_run = find_run(run, runs_dir or load_run_settings(project).runs_dir,
                        holding=sidecar_path(Path(), PLAN_STAGE).name)
    target = load_target(project, db=db)
    options = RunOptions(runbooks=runbook_folder("apply"), out=plan_run.parent, dry_run=dry_run,
                         parameters={"plan_run": str(plan_run), "execute": not dry_run, "accept": accepted})
    return run_runbook(target, options)
