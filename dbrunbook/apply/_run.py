"""Plan, then apply: :func:`plan_apply` says what would happen; :func:`apply` does it, guarded.

The upgrade runs the plan run's own Alembic scripts (copied into the apply run's stage folder,
so the record holds exactly what ran) on one connection, bounded by the dialect's session
timeouts, watched by :class:`~dbrunbook.apply._monitor.Monitor`. Where DDL is transactional
(PostgreSQL, SQLite in a real transaction) the whole upgrade is ONE transaction: a failure or an
abort rolls everything back. Elsewhere (MariaDB, MySQL) it runs revision by revision and the
outcome names exactly which revisions and statements ran; nothing is ever retried.
"""
from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import sqlalchemy as sa
from alembic import command
from sqlalchemy.pool import NullPool

from ..config import Target
from ..db import check_connection, dialect_name, engine_facts, make_engine
from ..errors import ApplyRefused, DbrunbookError, UsageError
from ..fingerprint import fingerprint
from ..migration import ApplyResult, alembic_config, current_revision, revision_paths
from ..rehearsal import revision_timings
from ..runbook.archive import load_manifest
from ..secrets import mask_url
from ._guards import Guard, check_accept, guards, inside, read_plan
from ._history import History, keep_history, project_history
from ._monitor import APPLY_FACTS, ApplyFacts, Monitor, prepare_engine, session_sql, statement_timeout_ms

#: Reads Alembic (and reflection) issue around the revisions: not part of the migration's record.
_BOOKKEEPING = re.compile(r"^\s*(PRAGMA|SHOW|BEGIN|COMMIT|ROLLBACK)\b|^\s*SELECT\b.*\b(pg_catalog|information_schema|"
                          r"sqlite_master|sqlite_temp_master|alembic_version|pg_backend_pid|CONNECTION_ID)\b",
                          re.I | re.S)


class ApplyAborted(Exception):
    """Raised inside the migration session when the monitor aborted: no further statement runs."""


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

    @property
    def refused(self) -> list[Guard]:
        """Failed guards the user did not accept: any of them refuses the apply."""
        return [g for g in self.guards if g.blocks]

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw.update(plan_run=str(self.plan_run), script_dir=str(self.script_dir) if self.script_dir else None,
                   guards=[g.to_json() for g in self.guards])
        raw.pop("upgrade_sql")  # a file of the plan run; the sidecar names it, the notebook shows it
        return raw


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

    def to_json(self, run_dir: Path | None = None) -> dict[str, Any]:
        """The outcome for the sidecar; paths relative to the apply run folder ``run_dir``."""
        raw = asdict(self)
        path = self.fingerprint_before
        raw["fingerprint_before"] = (str(path.relative_to(run_dir)) if path and run_dir and path.is_relative_to(run_dir)
                                     else (str(path) if path else None))
        return raw


def plan_apply(plan_run: Path | str, target: Target, accept: Iterable[str] = ()) -> ApplyPlan:
    """What applying ``plan_run`` to ``target`` would do, with every guard checked; changes nothing.

    ``accept``: guard ids the user overrides; a failed accepted guard does not refuse the apply.
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
        dialect, transactional, now = dialect_name(engine), engine_facts(engine).transactional_ddl, current_revision(engine)
    finally:
        engine.dispose()
    facts = _facts(dialect)
    script_dir, revisions = inside(folder, plan.get("script_dir")), list(plan.get("revisions") or [])
    outside = _outside_transaction(script_dir, revisions)
    abort_after = float(plan.get("abort_after_seconds") or 30.0)
    lock_ms = int(plan.get("lock_timeout_ms") or 5000)
    statement_ms = statement_timeout_ms(abort_after)
    sql_file = inside(folder, plan.get("upgrade_sql"))
    try:
        manifest_id = str(load_manifest(folder).get("run_id", folder.name))
    except DbrunbookError:  # no or a damaged manifest: the manifest-verified guard says so
        manifest_id = folder.name
    return ApplyPlan(
        plan_run=folder, plan_run_id=manifest_id, target=target.db, dialect=dialect, guards=checked,
        revision_now=now, revision_from=plan.get("revision_from"), revision_to=plan.get("revision_to"),
        revisions=revisions, script_dir=script_dir, outside_transaction=outside,
        upgrade_sql=sql_file.read_text() if sql_file and sql_file.is_file() else "",
        session=session_sql(facts, lock_ms, statement_ms), abort_after_seconds=abort_after,
        lock_timeout_ms=lock_ms, statement_timeout_ms=statement_ms, transactional=transactional and not outside,
        monitor_queries=[q for q in (facts.blocked_sql, facts.waiting_sql) if q],
        expected_seconds=plan.get("expected_seconds"), restore_command=plan.get("restore_command"),
        accepted=[g.id for g in checked if g.accepted],
        history=project_history(folder, target.alembic_config, target.project_dir, plan, script_dir))


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


def apply(plan: ApplyPlan, target: Target, stage_dir: Path) -> ApplyOutcome:
    """Upgrade ``target`` as ``plan`` says, guarded and monitored; artifacts go to ``stage_dir``.

    Raises :class:`ApplyRefused` (and touches nothing) when a guard failed and was not accepted,
    when the target's revision moved since the plan was checked, or when a generated revision
    cannot be written into the project's versions directory: that happens before the target is
    touched, so the target never ends at a revision the project's history lacks. Errors of the
    database are not raised: they are the outcome (with ``rolled_back`` where the dialect's DDL is
    transactional).
    """
    if plan.refused:
        raise ApplyRefused(plan.refused)
    stage_dir = Path(stage_dir).resolve()
    stage_dir.mkdir(parents=True, exist_ok=True)
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
        saved = fingerprint(engine).save(stage_dir / "fingerprint-before.json")
    finally:
        engine.dispose()
    outcome = ApplyOutcome(applied=False, aborted=False, revision_before=before, revision_after=before,
                           fingerprint_before=saved, written_to_project=[str(p) for p in written])
    if not plan.revisions or plan.script_dir is None:
        return outcome
    scripts = stage_dir / "alembic"
    if not scripts.exists():
        shutil.copytree(plan.script_dir, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    _upgrade(plan, target, scripts, outcome)
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
    return outcome


def _upgrade(plan: ApplyPlan, target: Target, scripts: Path, outcome: ApplyOutcome) -> None:
    """Run the upgrade on one monitored session; fills ``outcome``'s statements, error and samples."""
    facts = _facts(plan.dialect)
    cfg = alembic_config(target, scripts)
    engine = make_engine(target.db, poolclass=NullPool)
    prepare_engine(engine, facts)
    steps = [plan.revision_to or "head"] if plan.transactional else list(plan.revisions)
    monitor: Monitor | None = None
    failed: dict[str, Any] = {}

    def before(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if monitor is not None and monitor.aborted.is_set():
            raise ApplyAborted("the monitor stopped the upgrade before its next statement")
        conn.info["dbrunbook_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        started = conn.info.pop("dbrunbook_t0", time.perf_counter())
        if monitor is not None and not _BOOKKEEPING.search(sql):
            outcome.statements.append({"sql": sql, "t": round(started - monitor.started_at, 4),
                                       "seconds": round(time.perf_counter() - started, 6)})

    def on_error(context: Any) -> None:
        started = context.connection.info.pop("dbrunbook_t0", None) if context.connection is not None else None
        if isinstance(context.original_exception, ApplyAborted):
            return  # refused before it ran: the error says why
        if monitor is not None and started is not None and context.statement:
            failed.update(sql=str(context.statement), t=round(started - monitor.started_at, 4),
                          seconds=round(time.perf_counter() - started, 6), failed=True)

    for name, fn in (("before_cursor_execute", before), ("after_cursor_execute", after), ("handle_error", on_error)):
        sa.event.listen(engine, name, fn)
    real_url = engine.url.render_as_string(hide_password=False)
    try:
        with engine.connect() as conn:
            for sql in plan.session:
                conn.exec_driver_sql(sql)
            handle = (conn.exec_driver_sql(facts.backend_id_sql).scalar() if facts.backend_id_sql
                      else conn.connection.driver_connection)
            conn.commit()
            cfg.attributes["connection"] = conn
            # For env.py files that build their own engine: the real URL, in memory only.
            cfg.set_main_option("sqlalchemy.url", real_url.replace("%", "%%"))
            monitor = Monitor(target.db, facts, handle, plan.abort_after_seconds)
            monitor.start()
            if not monitor.ready.wait(timeout=30) or monitor.error:
                # Unwatched, an upgrade could not be aborted: it does not start.
                outcome.error = f"the monitor could not watch the upgrade: {monitor.error or 'timed out'}; nothing ran"
                outcome.rolled_back = True
            else:
                _run_steps(conn, cfg, steps, outcome, plan.transactional)
    finally:
        if monitor is not None:
            outcome.seconds = round(monitor.elapsed(), 3)
            monitor.stop()
            outcome.monitor = monitor.samples
            outcome.aborted = monitor.aborted.is_set() and bool(outcome.error)
        cfg.attributes.pop("connection", None)
        cfg.set_main_option("sqlalchemy.url", mask_url(target.db).replace("%", "%%"))
        engine.dispose()
    if failed:
        outcome.statements.append(failed)
        outcome.failed_statement = failed["sql"]
    if outcome.aborted:
        outcome.error = f"aborted after {plan.abort_after_seconds:g}s: {outcome.error}"


def _run_steps(conn: sa.Connection, cfg: Any, steps: list[str], outcome: ApplyOutcome, transactional: bool) -> None:
    """One transaction around all steps where DDL is transactional; otherwise each step as its env.py runs it.

    Alembic's ``autocommit_block`` only leaves a transaction Alembic opened itself, so a plan that has one
    is never wrapped. Stops at the first error.
    """
    for step in steps:
        transaction = conn.begin() if transactional else None
        try:
            command.upgrade(cfg, step)
            if transaction is not None:
                transaction.commit()
            elif conn.in_transaction():
                conn.commit()
        except Exception as exc:  # the database's own error is the evidence we record
            if transaction is not None and transaction.is_active:
                transaction.rollback()
            elif conn.in_transaction():
                conn.rollback()
            orig = getattr(exc, "orig", None) or exc
            text = str(orig).strip()
            outcome.error = text.splitlines()[0] if text else repr(orig)
            outcome.error_type = type(orig).__name__
            outcome.rolled_back = transactional
            return
