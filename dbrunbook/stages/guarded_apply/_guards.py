"""The guards of ``dbrunbook apply``: what must hold before a plan run may change its target.

Each guard reads the plan run folder (written by ``dbrunbook update``) and the target, and
answers ok or not with a one-line detail. Nothing is written anywhere.
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbrunbook.alembic_ops.migration import current_revision, scripts_head
from dbrunbook.core import contract
from dbrunbook.core.archive import load_manifest, verify_run
from dbrunbook.core.config import Target, load_run_settings
from dbrunbook.core.db import check_connection, make_engine
from dbrunbook.core.evidence import (
    EvidenceError,
    MigrationEvidence,
    ProductionPlan,
    ProductionPlanEvidence,
    SchemaAnalysisEvidence,
)
from dbrunbook.core.project import copied_scripts
from dbrunbook.core.signing import approvals, author_signed, trusted_keys
from dbrunbook.errors import DatabaseUnreachable, DbrunbookError, UsageError, VerificationFailed
from dbrunbook.schema import diff, load_snapshot, snapshot
from dbrunbook.stages.guarded_apply._history import project_history
from dbrunbook.stages.guarded_apply._retry import DEFAULT_LOCK_TIMEOUT_MS

#: The guards, in the order they are checked (later ones read files the first one verified).
GUARDS = ("manifest-verified", "signed", "approved", "plan-ready", "same-target", "revision-unchanged",
          "no-schema-drift", "scripts-present", "project-history")
#: Guards ``--accept`` cannot override: applying anyway would leave the project's history pointing at a
#: revision it does not have, or skip the reviewers the project requires.
NOT_ACCEPTABLE = ("project-history", "approved")
#: Names ``--accept`` takes for a guard besides its id: ``--accept unsigned`` applies a plan nobody signed.
ACCEPT_ALIASES = {"unsigned": "signed"}
PLAN_STAGE = contract.PRODUCTION_PLAN.name
#: Used when the plan run has no stage 10 (plan-ready fails then, but the other guards still tell).
DEFAULT_ABORT_AFTER_SECONDS = 30.0


@dataclass
class Guard:
    """One precondition of the apply: its id, whether it holds, and why."""

    id: str
    ok: bool
    detail: str
    accepted: bool = False

    @property
    def blocks(self) -> bool:
        """The guard failed and the user did not accept it."""
        return not self.ok and not self.accepted

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def check_accept(accept: Iterable[str]) -> list[str]:
    """The guard ids to accept, each once; an unknown id is a usage error."""
    accepted = list(dict.fromkeys(ACCEPT_ALIASES.get(a, a) for a in accept))
    unknown = [a for a in accepted if a not in GUARDS]
    if unknown:
        raise UsageError(f"unknown guard {', '.join(unknown)} (guards: {', '.join(GUARDS)})")
    fixed = [a for a in accepted if a in NOT_ACCEPTABLE]
    if fixed:
        why = {"project-history": "the project's Alembic history must hold the revision the target is moved to",
               "approved": "the approvals the project requires cannot be waived by whoever applies"}
        raise UsageError(f"guard {', '.join(fixed)} cannot be accepted: "
                         + "; ".join(why[f] for f in fixed))
    return accepted


def read_plan(plan_run: Path) -> ProductionPlan:
    """The plan of stage 10, or what stages 01 and 03 of the run say when stage 10 is absent (or breaks its
    contract: the plan-ready guard then refuses, naming what is wrong)."""
    try:
        production = contract.load(plan_run, ProductionPlanEvidence)
    except EvidenceError:
        production = None
    if production is not None:
        return production.plan
    migration, analysis = contract.load(plan_run, MigrationEvidence), contract.load(plan_run, SchemaAnalysisEvidence)
    return ProductionPlan(
        run_id=plan_run.name, target="", dialect="", revision_from=migration.current if migration else None,
        revision_to=migration.head if migration else None, revisions=list(migration.revisions) if migration else [],
        script_dir=migration.script_dir if migration else None,
        upgrade_sql=contract.MIGRATION.path("upgrade.sql") if migration else None,
        downgrade_sql=contract.MIGRATION.path("downgrade.sql") if migration else None,
        schema_before=analysis.snapshot if analysis else None, expected_seconds=None,
        expected_from="unknown: the plan run has no production plan", abort_after_seconds=DEFAULT_ABORT_AFTER_SECONDS,
        lock_timeout_ms=DEFAULT_LOCK_TIMEOUT_MS, restore_command=None)


def inside(plan_run: Path, relative: str | None) -> Path | None:
    """``relative`` resolved inside the plan run, or None when absent or pointing outside it."""
    if not relative:
        return None
    path = (plan_run / relative).resolve()
    return path if path.is_relative_to(plan_run.resolve()) else None


def _manifest_verified(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    try:
        manifest = verify_run(plan_run)
    except VerificationFailed as exc:
        shown = exc.problems[:3] + ([f"{len(exc.problems) - 3} more"] if len(exc.problems) > 3 else [])
        return Guard("manifest-verified", False, "; ".join(shown))
    return Guard("manifest-verified", True, f"{len(manifest.get('files', {}))} files match the manifest")


def _signed(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    settings = load_run_settings(target.project_dir)
    if settings.trusted_keys is None:  # signatures are required once a project says whose it trusts
        return Guard("signed", True, "no trusted keys configured (trusted_keys in [tool.dbrunbook]): "
                                     "signatures not required")
    check = author_signed(plan_run, trusted_keys(settings))
    return Guard("signed", check.ok, check.detail)


def _approved(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    settings = load_run_settings(target.project_dir)
    if settings.required_approvals <= 0:
        return Guard("approved", True, "no approvals required (required_approvals in [tool.dbrunbook] is 0)")
    if settings.trusted_keys is None:
        return Guard("approved", False, f"{settings.required_approvals} approval(s) required but no trusted keys "
                                        "configured (trusted_keys in [tool.dbrunbook])")
    check = approvals(plan_run, trusted_keys(settings), settings.required_approvals)
    return Guard("approved", check.ok, check.detail)


def _plan_ready(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    return plan_ready(plan_run)


def plan_ready(plan_run: Path) -> Guard:
    """The plan-ready guard: stage 10 ran and every checklist item is ticked or waived; reads its evidence only."""
    try:
        production = contract.load(plan_run, ProductionPlanEvidence)
    except EvidenceError as exc:  # a plan run whose stage 10 breaks the contract is not ready: said on the record
        return Guard("plan-ready", False, str(exc))
    if production is None:
        return Guard("plan-ready", False, "the plan run has no production plan (stage 10 did not run)")
    items = production.checklist
    if not items:
        return Guard("plan-ready", False, "the production plan has no checklist")
    # A deferred item (team approval) is checked by its own guard, on the signatures of the finished plan run.
    open_items = [i.id for i in items if not i.ticked and not i.waived and not i.deferred]
    if open_items:
        return Guard("plan-ready", False, f"{len(open_items)} of {len(items)} checklist items not ticked: "
                                          + ", ".join(open_items))
    waived = sum(1 for i in items if not i.ticked and i.waived)
    return Guard("plan-ready", True, f"{len(items)} checklist items ticked"
                 + (f" ({waived} waived in stage 10)" if waived else ""))


def _same_target(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    planned = load_manifest(plan_run).get("target")
    if planned != target.db:
        return Guard("same-target", False, f"the plan is for {planned}, not {target.db}")
    return Guard("same-target", True, f"the plan is for {target.db}")


def _revision_unchanged(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    now, planned = current_revision(engine), plan.revision_from
    if now != planned:
        already = " (already at the plan's head: applied before?)" if now and now == plan.revision_to else ""
        return Guard("revision-unchanged", False, f"the target is at {now or 'no revision'}, "
                                                  f"the plan starts at {planned or 'no revision'}{already}")
    return Guard("revision-unchanged", True, f"the target is at {now or 'no revision'}, as planned")


def _no_schema_drift(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    path = inside(plan_run, plan.schema_before)
    if path is None or not path.is_file():
        return Guard("no-schema-drift", False, "the plan run holds no schema snapshot (stage 01 did not save one)")
    changes = diff(load_snapshot(path), snapshot(engine, sizes=False)).changes
    if changes:
        shown = "; ".join(f"{c.op} {c.object}" for c in changes[:5])
        more = f" and {len(changes) - 5} more" if len(changes) > 5 else ""
        return Guard("no-schema-drift", False, f"the schema changed since it was planned: {shown}{more}")
    return Guard("no-schema-drift", True, "the schema is as planned")


def planned_revisions(script_dir: Path, start: str | None) -> tuple[str | None, list[str]]:
    """Head and the revisions after ``start`` of the scripts in ``script_dir``, read from a copy.

    A copy, so that importing the revisions leaves no bytecode cache in a verified run folder.
    """
    with tempfile.TemporaryDirectory(prefix="dbrunbook-scripts-") as scratch:
        copy = Path(scratch) / "alembic"
        shutil.copytree(script_dir, copy, ignore=shutil.ignore_patterns("__pycache__"))
        scripts = copied_scripts(copy)  # every version location the copy recorded, not only versions/
        head = scripts_head(scripts)
        steps = list(scripts.iterate_revisions("heads", start or "base"))
    return head, [s.revision for s in reversed(steps)]


def _scripts_present(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    path = inside(plan_run, plan.script_dir)
    if path is None or not (path / "versions").is_dir():
        return Guard("scripts-present", False, f"no Alembic scripts at {plan.script_dir} in the plan run")
    try:
        head, revisions = planned_revisions(path, plan.revision_from)
    except Exception as exc:  # a damaged script folder is the guard's answer
        return Guard("scripts-present", False, f"the plan's scripts cannot be read: {type(exc).__name__}: {exc}")
    wanted = list(plan.revisions)
    if revisions != wanted or head != plan.revision_to:
        return Guard("scripts-present", False, f"the scripts lead to {head} through {revisions}, "
                                               f"the plan names {plan.revision_to} through {wanted}")
    return Guard("scripts-present", True, f"{len(revisions)} revision(s) to {head} in {plan.script_dir}")


def _project_history(plan_run: Path, target: Target, engine: sa.Engine, plan: ProductionPlan) -> Guard:
    history = project_history(plan_run, target.alembic_config, target.project_dir, plan,
                              inside(plan_run, plan.script_dir))
    return Guard("project-history", not history.problem, history.detail())


_CHECKS: dict[str, Callable[[Path, Target, sa.Engine, ProductionPlan], Guard]] = {
    "manifest-verified": _manifest_verified, "signed": _signed, "approved": _approved, "plan-ready": _plan_ready,
    "same-target": _same_target,
    "revision-unchanged": _revision_unchanged, "no-schema-drift": _no_schema_drift,
    "scripts-present": _scripts_present, "project-history": _project_history,
}


def guards(plan_run: Path, target: Target) -> list[Guard]:
    """Check every guard of applying ``plan_run`` to ``target``; only reads."""
    plan_run = Path(plan_run).resolve()
    plan = read_plan(plan_run)
    engine = make_engine(target.db)
    found = []
    try:
        check_connection(engine)
        for name in GUARDS:
            try:
                found.append(_CHECKS[name](plan_run, target, engine, plan))
            except DatabaseUnreachable:
                raise
            except DbrunbookError as exc:  # a damaged file in the plan run fails this guard only
                found.append(Guard(name, False, str(exc)))
    finally:
        engine.dispose()
    return found


def offline_guards(plan_run: Path) -> list[Guard]:
    """The guards that need no database (plan-ready, project-history), with the plan run's own settings.

    What ``dbrunbook update`` can tell before suggesting ``dbrunbook apply``; the apply checks all of them.
    """
    plan_run = Path(plan_run).resolve()
    plan = read_plan(plan_run)
    try:
        project = Path(str(load_manifest(plan_run).get("project", {}).get("path") or "."))
    except DbrunbookError:  # no manifest: the apply's manifest-verified guard says so
        project = Path.cwd()
    history = project_history(plan_run, "", project, plan, inside(plan_run, plan.script_dir))
    return [plan_ready(plan_run), Guard("project-history", not history.problem, history.detail())]
