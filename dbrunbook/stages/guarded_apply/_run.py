"""Plan, then apply: :func:`plan_apply` says what would happen; :func:`apply` does it, guarded.

The upgrade runs the plan run's own Alembic scripts (copied into the apply run's stage folder,
so the record holds exactly what ran) on one connection, bounded by the dialect's session
timeouts, watched by :class:`~dbrunbook.stages.guarded_apply._monitor.Monitor`, while this apply holds the
target's apply lock (:mod:`._lock`: one apply at a time). Only the reviewed SQL runs
(:mod:`._reviewed`). Where DDL is transactional (PostgreSQL, SQLite in a real transaction) the
whole upgrade is ONE transaction: a failure or an abort rolls everything back, and a lock timeout
runs it again (:mod:`._retry`). Elsewhere (MariaDB, MySQL) it runs revision by revision, its SQL
checked on a rendering first, and the outcome names exactly which revisions and statements ran. With
``alembic_isolation_level = "AUTOCOMMIT"`` in ``[tool.dbrunbook]`` (the project's own runner migrates so) the
session runs at that level and the upgrade runs revision by revision on every dialect (:mod:`._upgrade`); the
apply's journal (intent and outcome) says so.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.pool import NullPool

from dbrunbook.alembic_ops.migration import ApplyResult, alembic_config, current_revision, revision_paths, run_alembic
from dbrunbook.core import contract
from dbrunbook.core.archive import load_manifest, record_step
from dbrunbook.core.config import RunSettings, Target, load_run_settings
from dbrunbook.core.db import check_connection, dialect_name, engine_facts, make_engine
from dbrunbook.core.evidence import MigrationEvidence
from dbrunbook.core.notify import Delivery, notify
from dbrunbook.core.secrets import mask_url
from dbrunbook.data.clone import scratch_copy
from dbrunbook.data.fingerprint import fingerprint
from dbrunbook.errors import ApplyRefused, DbrunbookError, UsageError
from dbrunbook.stages.dev_rehearsal import revision_timings
from dbrunbook.stages.guarded_apply._guards import Guard, check_accept, guards, inside, read_plan
from dbrunbook.stages.guarded_apply._history import History, keep_history, project_history
from dbrunbook.stages.guarded_apply._lock import apply_lock, holder
from dbrunbook.stages.guarded_apply._monitor import APPLY_FACTS, ApplyFacts, session_sql, statement_timeout_ms
from dbrunbook.stages.guarded_apply._retry import (
    DEFAULT_BACKOFF_SECONDS,
    DEFAULT_LOCK_RETRIES,
    DEFAULT_LOCK_TIMEOUT_MS,
    RetryPolicy,
)
from dbrunbook.stages.guarded_apply._reviewed import Gate, Shape, compare, reviewed, split
from dbrunbook.stages.guarded_apply._upgrade import ApplyAborted, OnAttempt, upgrade

__all__ = ["ApplyAborted", "ApplyOutcome", "ApplyPlan", "apply", "plan_apply"]


@dataclass
class ApplyPlan:
    """What ``apply`` would do with a plan run, on which target, under which guards. Changes nothing."""

    plan_run: Path
    plan_run_id: str
    target: str
    dialect: str
    guards: list[Guard]
    revision_now: str | None
    revision_from: str | None
    revision_to: str | None
    revisions: list[str]
    script_dir: Path | None
    upgrade_sql: str
    session: list[str]
    abort_after_seconds: float
    lock_timeout_ms: int
    statement_timeout_ms: int
    transactional: bool
    #: Revisions that run statements outside any transaction (``autocommit_block``, e.g. CREATE INDEX
    #: CONCURRENTLY): with them the plan runs revision by revision, as Alembic's env.py opens it.
    outside_transaction: list[str] = field(default_factory=list)
    monitor_queries: list[str] = field(default_factory=list)
    expected_seconds: float | None = None
    restore_command: str | None = None
    accepted: list[str] = field(default_factory=list)
    #: The project's Alembic history: the generated revisions the apply writes into it before the upgrade.
    history: History = field(default_factory=History)
    #: How stage 03 obtained ``upgrade_sql``: ``offline`` or ``captured on a schema-only copy (...)``.
    sql_source: str = "offline"
    #: Attempts in all when lock waits time out, within ``retry_budget_seconds``, backing off from
    #: ``retry_backoff_seconds`` (see :mod:`dbrunbook.stages.guarded_apply._retry`).
    lock_retries: int = DEFAULT_LOCK_RETRIES
    retry_budget_seconds: float = 30.0
    retry_backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    #: Who held the target's apply lock when the plan was made ("" when nobody): the apply would be refused.
    lock_holder: str = ""
    #: ``alembic_isolation_level`` of ``[tool.dbrunbook]``: the level of the session the revisions run on ("" when
    #: not set). ``AUTOCOMMIT`` makes the plan non-transactional: every statement commits on its own.
    isolation_level: str = ""

    @property
    def refused(self) -> list[Guard]:
        """Failed guards the user did not accept: any of them refuses the apply."""
        return [g for g in self.guards if g.blocks]

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw.update(plan_run=str(self.plan_run), script_dir=str(self.script_dir) if self.script_dir else None,
                   guards=[g.to_json() for g in self.guards])
        raw.pop("upgrade_sql")  # a file of the plan run; the sidecar names it, the notebook shows it
        raw["reviewed_statements"] = len(self.reviewed())
        return raw

    @property
    def upgrade_to(self) -> str:
        """What Alembic upgrades to: the plan's head, or ``heads`` when it names several (branches not merged)."""
        return "heads" if "," in (self.revision_to or "") else self.revision_to or "head"

    @property
    def captured(self) -> bool:
        """The reviewed SQL was captured on a schema-only copy (not rendered offline)."""
        return self.sql_source.startswith("captured")

    def reviewed(self) -> list[Shape]:
        """The reviewed statements the apply compares what it runs with (:func:`._reviewed.reviewed`)."""
        return reviewed(self.upgrade_sql, self.dialect)

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.lock_retries, budget_seconds=self.retry_budget_seconds,
                           backoff_seconds=self.retry_backoff_seconds)


@dataclass
class ApplyOutcome:
    """What the apply did: revisions, statements with timings, the monitor's samples, any error."""

    applied: bool
    aborted: bool
    revision_before: str | None
    revision_after: str | None
    fingerprint_before: Path | None
    seconds: float = 0.0
    statements: list[dict[str, Any]] = field(default_factory=list)
    revision_timings: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    error_type: str = ""
    failed_statement: str = ""
    rolled_back: bool = False
    monitor: list[dict[str, Any]] = field(default_factory=list)
    restore_command: str | None = None
    #: Generated revisions written into the project's versions directory before the upgrade.
    written_to_project: list[str] = field(default_factory=list)
    #: Every attempt of the upgrade: ``attempt, step, t, seconds, ok, error, waited, statement, blockers,
    #: backoff`` (and ``gave_up`` on the last of a retried failure).
    attempts: list[dict[str, Any]] = field(default_factory=list)
    #: The first statement that is not the reviewed SQL (``index, reviewed, executed, when``); empty when none.
    sql_mismatch: dict[str, Any] = field(default_factory=dict)
    #: The apply lock this apply held, and the note it left for another apply to read.
    lock: dict[str, Any] = field(default_factory=dict)
    #: Each notification sent (``core.notify.Delivery.to_json``); a failed one is a warning, never a stop.
    notifications: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, run_dir: Path | None = None) -> dict[str, Any]:
        """The outcome for the sidecar; paths relative to the apply run folder ``run_dir``."""
        raw = asdict(self)
        path = self.fingerprint_before
        raw["fingerprint_before"] = (str(path.relative_to(run_dir)) if path and run_dir and path.is_relative_to(run_dir)
                                     else (str(path) if path else None))
        return raw


def plan_apply(plan_run: Path | str, target: Target, accept: Iterable[str] = (), *,
               lock_timeout_ms: int | None = None, lock_retries: int | None = None,
               retry_budget_seconds: float | None = None) -> ApplyPlan:
    """What applying ``plan_run`` to ``target`` would do, with every guard checked; changes nothing.

    ``accept``: guard ids the user overrides; a failed accepted guard does not refuse the apply.
    ``lock_timeout_ms``, ``lock_retries`` and ``retry_budget_seconds`` override the plan's (stage 10's)
    and the defaults (2000 ms; 5 attempts; the plan's ``abort_after_seconds``).
    """
    accepted = check_accept(accept)
    folder = Path(plan_run).resolve()
    if not folder.is_dir():
        raise UsageError(f"plan run {plan_run} is not a folder")
    checked = guards(folder, target)
    for guard in checked:
        guard.accepted = guard.id in accepted and not guard.ok
    plan = read_plan(folder)
    engine = make_engine(target.db)
    try:
        check_connection(engine)
        dialect, now = dialect_name(engine), current_revision(engine)
        transactional = engine_facts(engine).transactional_ddl
    finally:
        engine.dispose()
    facts = _facts(dialect)
    isolation = load_run_settings(target.project_dir).alembic_isolation_level
    script_dir, revisions = inside(folder, plan.script_dir), list(plan.revisions)
    outside = _outside_transaction(script_dir, revisions)
    abort_after = plan.abort_after_seconds or 30.0
    lock_ms = _positive("lock_timeout_ms", lock_timeout_ms, plan.lock_timeout_ms, DEFAULT_LOCK_TIMEOUT_MS)
    # The plan holds no retry count: the apply's own, else the default.
    retries = _positive("lock_retries", lock_retries, None, DEFAULT_LOCK_RETRIES)
    budget = float(_positive("retry_budget_seconds", retry_budget_seconds, None, abort_after))
    statement_ms = statement_timeout_ms(abort_after)
    sql_file = inside(folder, plan.upgrade_sql)
    try:
        manifest_id = str(load_manifest(folder).get("run_id", folder.name))
    except DbrunbookError:  # no or a damaged manifest: the manifest-verified guard says so
        manifest_id = folder.name
    migration = contract.load(folder, MigrationEvidence)
    found = holder(target.db)
    return ApplyPlan(
        plan_run=folder, plan_run_id=manifest_id, target=target.db, dialect=dialect, guards=checked,
        revision_now=now, revision_from=plan.revision_from, revision_to=plan.revision_to,
        revisions=revisions, script_dir=script_dir, outside_transaction=outside,
        upgrade_sql=sql_file.read_text() if sql_file and sql_file.is_file() else "",
        session=session_sql(facts, int(lock_ms), statement_ms), abort_after_seconds=abort_after,
        lock_timeout_ms=int(lock_ms), statement_timeout_ms=statement_ms,
        # On AUTOCOMMIT each statement commits on its own: nothing could be rolled back as one transaction.
        transactional=transactional and not outside and isolation != "AUTOCOMMIT", isolation_level=isolation,
        monitor_queries=[q for q in (facts.blocked_sql, facts.waiting_sql) if q],
        expected_seconds=plan.expected_seconds, restore_command=plan.restore_command,
        accepted=[g.id for g in checked if g.accepted],
        history=project_history(folder, target.alembic_config, target.project_dir, plan, script_dir),
        sql_source=(migration.sql_source if migration else "") or "offline",
        lock_retries=int(retries), retry_budget_seconds=budget, lock_holder=found.describe() if found else "")


def _positive(name: str, given: float | None, planned: Any, default: float) -> float:
    """The apply's own setting, else the plan's, else the default; each must be a positive number."""
    value = given if given is not None else (planned if planned else default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a positive number, not {value!r}") from None
    if number <= 0:
        raise UsageError(f"{name} must be a positive number, not {value!r}")
    return number


def _outside_transaction(script_dir: Path | None, revisions: list[str]) -> list[str]:
    """The revisions whose code leaves the transaction (``op.get_context().autocommit_block()``)."""
    if script_dir is None or not script_dir.is_dir():
        return []
    try:
        paths = revision_paths(script_dir, revisions)
    except Exception:  # unreadable scripts: the scripts-present guard reports them
        return []
    return [path.name for path in paths if "autocommit_block" in path.read_text()]


def _facts(dialect: str) -> ApplyFacts:
    try:
        return APPLY_FACTS[dialect]
    except KeyError:
        raise UsageError(f"dbrunbook apply does not support {dialect}") from None


def apply(plan: ApplyPlan, target: Target, stage_dir: Path, *, on_attempt: OnAttempt | None = None) -> ApplyOutcome:
    """Upgrade ``target`` as ``plan`` says, guarded and monitored; artifacts go to ``stage_dir``.

    Raises :class:`ApplyRefused` (and touches nothing) when a guard failed and was not accepted,
    when another apply holds the target (:class:`~._lock.ApplyLocked`, naming it), when the
    target's revision moved since the plan was checked, or when a generated revision cannot be
    written into the project's versions directory: that happens before the target is touched, so
    the target never ends at a revision the project's history lacks. Errors of the database, and
    SQL that is not the reviewed SQL, are not raised: they are the outcome (with ``rolled_back``
    where the dialect's DDL is transactional). ``on_attempt`` is called with each attempt's record.
    """
    stage_dir = Path(stage_dir).resolve()
    tell = _Notifier(load_run_settings(target.project_dir), plan, target, stage_dir.parent.name)
    try:
        if plan.refused:
            raise ApplyRefused(plan.refused)
        # The apply run's id (the stage folder's run folder) is the note another apply reads while this one holds.
        with apply_lock(target.db, run_id=stage_dir.parent.name, plan_run=plan.plan_run_id) as held:
            outcome = _apply_locked(plan, target, stage_dir, held, tell.attempts(on_attempt), tell)
    except ApplyRefused as refused:
        tell("apply-aborted", {"summary": f"refused: {refused}", "refused": [g.id for g in refused.guards]})
        raise
    ended = "apply-finished" if outcome.applied or not plan.revisions else "apply-aborted"
    tell(ended, {"summary": _ended(outcome), "revision_after": outcome.revision_after,
                 "seconds": round(outcome.seconds, 3), "error": outcome.error})
    outcome.notifications = [d.to_json() for d in tell.deliveries]
    return outcome


def _ended(outcome: ApplyOutcome) -> str:
    if outcome.applied:
        return f"applied {outcome.revision_before or 'base'} -> {outcome.revision_after} in {outcome.seconds:.2f}s"
    return f"not applied ({outcome.error or 'nothing to apply'}); target at {outcome.revision_after or 'no revision'}"


class _Notifier:
    """Sends the apply's events to the project's notification targets and keeps what became of each.

    A target that is down never stops the apply: the delivery is recorded (AP023) and the apply goes on.
    """

    def __init__(self, settings: RunSettings, plan: ApplyPlan, target: Target, run_id: str) -> None:
        self.settings = settings
        self.deliveries: list[Delivery] = []
        self.base = {"run": run_id, "plan_run": plan.plan_run_id, "target": target.db,
                     "revision_from": plan.revision_now, "revision_to": plan.revision_to}

    def __call__(self, event: str, payload: dict[str, Any]) -> None:
        self.deliveries.append(notify(event, {**self.base, **payload}, self.settings))

    def attempts(self, on_attempt: OnAttempt | None) -> OnAttempt:
        """``on_attempt`` that also says when a lock wait timed out and the apply backs off to try again."""
        def seen(record: dict[str, Any]) -> None:
            if not record.get("ok") and record.get("backoff"):  # a lock wait timed out; another attempt follows
                self("apply-blocked", {"summary": f"attempt {record.get('attempt')} waited on a lock: "
                                                  f"{record.get('error', '')}"[:300],
                                       "blockers": record.get("blockers", [])})
            if on_attempt is not None:
                on_attempt(record)
        return seen


def _apply_locked(plan: ApplyPlan, target: Target, stage_dir: Path, held: dict[str, Any],
                  on_attempt: OnAttempt | None, tell: _Notifier) -> ApplyOutcome:
    engine = make_engine(target.db, poolclass=NullPool)
    try:
        check_connection(engine)
        before = current_revision(engine)
        if before != plan.revision_now and "revision-unchanged" not in plan.accepted:
            raise ApplyRefused([Guard("revision-unchanged", False, f"the target moved to {before or 'no revision'} "
                                                                   "after the guards were checked")])
        written, problem = keep_history(plan.history)
        if problem:
            raise ApplyRefused([Guard("project-history", False, problem)])
        stage_dir.mkdir(parents=True, exist_ok=True)
        # With each table's largest key: stage 12 tells the rows that existed now from those the application
        # inserts while the migration runs.
        saved = fingerprint(engine, keys=True).save(stage_dir / "fingerprint-before.json")
    finally:
        engine.dispose()
    outcome = ApplyOutcome(applied=False, aborted=False, revision_before=before, revision_after=before,
                           fingerprint_before=saved, written_to_project=[str(p) for p in written], lock=held)
    if not plan.revisions or plan.script_dir is None:
        return outcome
    scripts = stage_dir / "alembic"
    if not scripts.exists():
        shutil.copytree(plan.script_dir, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    gate = Gate(plan.reviewed(), plan.dialect, plan.captured)
    if not plan.transactional:
        # Statements run here commit one by one: the SQL is checked on a rendering before the first one runs.
        mismatch = _rendered_mismatch(plan, target, scripts)
        if mismatch is not None:
            outcome.sql_mismatch, outcome.error_type = mismatch, "NotReviewed"
            outcome.error = f"not the reviewed SQL: {mismatch['message']}; nothing ran"
            return outcome
    # The intent is on disk before the target is touched, the outcome once it is known: a run killed in between
    # still says what it set out to do (`dbrunbook runs`, `show` and `verify` read it).
    level = f", at isolation level {plan.isolation_level}" if plan.isolation_level else ""
    record_step(stage_dir, "intent", {
        "summary": f"apply {', '.join(plan.revisions)} ({before or 'base'} -> {plan.revision_to}) to "
                   f"{mask_url(target.db)}" + ("" if plan.transactional else ", revision by revision") + level,
        "plan_run": plan.plan_run_id, "target": mask_url(target.db), "revision_from": before,
        "revision_to": plan.revision_to, "revisions": plan.revisions, "transactional": plan.transactional,
        "isolation_level": plan.isolation_level or None, "pid": os.getpid()})
    tell("apply-started", {"summary": f"applying {', '.join(plan.revisions)} to {target.db}",
                           "revisions": plan.revisions, "abort_after_seconds": plan.abort_after_seconds})
    upgrade(plan, target, scripts, outcome, gate, plan.retry_policy(), on_attempt)
    engine = make_engine(target.db, poolclass=NullPool)
    try:
        outcome.revision_after = current_revision(engine)
    finally:
        engine.dispose()
    outcome.applied = not outcome.error and outcome.revision_after == plan.revision_to
    outcome.revision_timings = revision_timings(
        ApplyResult(ok=not outcome.error, seconds=outcome.seconds, statements=outcome.statements), plan.revisions)
    if outcome.error and not outcome.rolled_back:
        outcome.restore_command = plan.restore_command
    record_step(stage_dir, "outcome", {"summary": _ended(outcome) + level, "applied": outcome.applied,
                                       "revision_after": outcome.revision_after, "rolled_back": outcome.rolled_back,
                                       "aborted": outcome.aborted, "error": outcome.error[:300],
                                       "isolation_level": plan.isolation_level or None})
    return outcome


def _rendered_mismatch(plan: ApplyPlan, target: Target, scripts: Path) -> dict[str, Any] | None:
    """Render the apply's scripts as stage 03 did (offline, or on a schema-only copy) and compare with the review."""
    cfg = alembic_config(target, scripts)
    if plan.captured:
        how = "captured on a schema-only copy before the upgrade"
        with scratch_copy(target.db, mode="schema") as url:
            result = run_alembic(cfg, url, [("upgrade", plan.upgrade_to)])[-1]
        statements = [str(s["sql"]) for s in result.statements]
    else:
        how = "rendered offline before the upgrade"
        span = f"{plan.revision_from}:{plan.upgrade_to}" if plan.revision_from else plan.upgrade_to
        result = run_alembic(cfg, target.db, [("upgrade", span)], sql=True)[-1]
        statements = split(result.output, plan.dialect)
    if not result.ok:
        return {"index": 0, "reviewed": None, "executed": None, "when": how, "before_upgrade": True,
                "message": f"the scripts could not be rendered to compare them: {result.error}"}
    found = compare(plan.reviewed(), statements, plan.dialect, plan.captured)
    return None if found is None else {**found.to_json(), "when": how, "message": str(found), "before_upgrade": True}
