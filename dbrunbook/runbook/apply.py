"""``dbrunbook apply``: the apply templates (stage 11, then 12) run on a plan run, into an apply run beside it.

The stage code (guards, the guarded upgrade, its findings) is :mod:`dbrunbook.stages.guarded_apply`;
this is the engine running its notebooks, as :func:`~dbrunbook.runbook.engine.run_runbook` runs
the planning ones.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.pool import NullPool

from dbrunbook.alembic_ops.migration import current_revision
from dbrunbook.core.archive import find_run, read_step, record_step
from dbrunbook.core.config import Target, load_run_settings, load_target
from dbrunbook.core.contract import GUARDED_APPLY
from dbrunbook.core.db import make_engine
from dbrunbook.core.results import sidecar_path
from dbrunbook.runbook.engine import Run, RunOptions, run_runbook, runbook_folder
from dbrunbook.stages.guarded_apply._guards import PLAN_STAGE, check_accept


def apply_run(run: str, *, project: Path | None = None, db: str | None = None, runs_dir: Path | None = None,
              accept: list[str] | None = None, dry_run: bool = False, lock_timeout_ms: int = 0,
              lock_retries: int = 0) -> Run:
    """Run the apply templates on the plan run ``run`` into a new apply run folder beside it."""
    accepted = check_accept(accept or [])  # before a run folder exists, not as a stage error
    plan_run = find_run(run, runs_dir or load_run_settings(project).runs_dir,
                        holding=sidecar_path(Path(), PLAN_STAGE).name)
    target = load_target(project, db=db)
    options = RunOptions(runbooks=runbook_folder("apply"), out=plan_run.parent, dry_run=dry_run,
                         parameters={"plan_run": str(plan_run), "execute": not dry_run, "accept": accepted,
                                     "lock_timeout_ms": lock_timeout_ms, "lock_retries": lock_retries},
                         on_interrupt=settle(target), jobs=1, prestart=False)
    return run_runbook(target, options)


def settle(target: Target) -> Callable[[Run], None]:
    """The apply run's hook for a Ctrl-C: when stage 11 had recorded its intent but no outcome, record the
    revision the target is found at once its kernel was killed (the database rolled back what was not committed)."""
    def found(run: Run) -> None:
        stage_dir = GUARDED_APPLY.dir(run.path)
        steps = read_step(stage_dir) or {}
        intent = steps.get("intent")
        if not intent or steps.get("outcome"):
            return
        engine = make_engine(target.db, poolclass=NullPool)
        try:
            revision = current_revision(engine)
        except Exception as exc:  # unreachable now: the record says so, and what to check
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            record_step(stage_dir, "outcome", {"summary": f"interrupted; the target's revision could not be read "
                                                          f"({first}): check it", "interrupted": True})
            return
        finally:
            engine.dispose()
        which = {intent.get("revision_to"): "the new revision", intent.get("revision_from"): "the old revision"}
        record_step(stage_dir, "outcome", {
            "summary": f"interrupted; the target was at {revision or 'no revision'} "
                       f"({which.get(revision, 'neither the old nor the new revision')}) once the apply was stopped",
            "interrupted": True, "applied": revision == intent.get("revision_to"), "revision_after": revision})
    return found
