"""``dbrunbook apply``: the apply templates (stage 11, then 12) run on a plan run, into an apply run beside it.

The stage code (guards, the guarded upgrade, its findings) is :mod:`dbrunbook.stages.guarded_apply`;
this is the engine running its notebooks, as :func:`~dbrunbook.runbook.engine.run_runbook` runs
the planning ones.
"""
from __future__ import annotations

from pathlib import Path

from dbrunbook.core.archive import find_run
from dbrunbook.core.config import load_run_settings, load_target
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
                                     "lock_timeout_ms": lock_timeout_ms, "lock_retries": lock_retries})
    return run_runbook(target, options)
