"""The upgrade session of ``apply``: one monitored connection; every statement gated, recorded, retried on lock waits.

Each statement passes :class:`~._reviewed.Gate` before it runs (only the next reviewed statement does), is
timed into the outcome, and stops when the monitor aborted. Where DDL is transactional the whole upgrade is
ONE transaction, rolled back on any failure and run again after a lock timeout; elsewhere the revisions run
one by one and a revision is run again only when its first statement timed out (see :mod:`._retry`).

With ``alembic_isolation_level`` in the project's ``[tool.dbrunbook]`` (the plan's ``isolation_level``) the session
is opened at that level before anything else, so the lock and statement timeouts are set (session-wide ``SET``)
on the session the revisions run on, at their level. Under ``AUTOCOMMIT`` every statement commits on its own: no
transaction can be rolled back, so the plan runs revision by revision (``plan_apply`` says so), a revision is
retried only when its first statement timed out, and a failure leaves what ran before it. A plan that still
promises one transaction is refused before anything runs.
"""
from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.pool import NullPool

from dbrunbook.alembic_ops.handed import hand_over
from dbrunbook.alembic_ops.migration import alembic_config
from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.core.secrets import mask_url
from dbrunbook.stages.guarded_apply._monitor import APPLY_FACTS, MIGRATING, ApplyFacts, Monitor, prepare_engine
from dbrunbook.stages.guarded_apply._retry import RetryPolicy, is_lock_timeout
from dbrunbook.stages.guarded_apply._reviewed import BOOKKEEPING, Gate, NotReviewed, shape_source

if TYPE_CHECKING:
    from dbrunbook.stages.guarded_apply._run import ApplyOutcome, ApplyPlan

#: Called with each attempt's record as it is made (tests use it to release a blocker after a failed attempt).
OnAttempt = Callable[[dict[str, Any]], None]


class ApplyAborted(Exception):
    """Raised inside the migration session when the monitor aborted: no further statement runs."""


#: Why a plan that promises one transaction is not run on an AUTOCOMMIT session.
ONE_TRANSACTION_UNDER_AUTOCOMMIT = (
    "the plan runs the upgrade as one transaction, which an AUTOCOMMIT session (alembic_isolation_level in "
    "[tool.dbrunbook]) cannot hold: a failure could not be rolled back and a retry would run committed statements "
    "again; plan the apply again with the setting (it then runs revision by revision); nothing ran")


class OwnConnection(Exception):
    """Raised when env.py opens a connection of its own while the upgrade runs: nothing would guard it."""


#: Why a connection env.py opens itself is refused, and what to do (docs/apply.md, "env.py").
OWN_CONNECTION = ("env.py opened a database connection of its own (engine_from_config / create_engine) instead of "
                  "using the one it is handed in config.attributes['connection']: dbrunbook apply runs a migration "
                  "only on the session it guards (short lock_timeout, the reviewed-SQL gate, the monitor), so it "
                  "refused before any statement ran; make env.py use the connection it is handed when there is one "
                  "(docs/apply.md)")


@contextlib.contextmanager
def _only_through(engine: sa.Engine) -> Iterator[None]:
    """While env.py runs, refuse any connection opened in this thread by another engine than ``engine``.

    The stock env.py builds its own engine from ``sqlalchemy.url`` and ignores the connection it is handed: its
    statements would then run with no lock_timeout, no comparison with the reviewed SQL and no monitor, and the
    record would not know what ran. The monitor's own connection lives in another thread and is not touched.
    """
    thread = threading.get_ident()

    def refuse(conn: sa.Connection) -> None:
        if conn.engine is not engine and threading.get_ident() == thread:
            conn.invalidate()  # the pool must not keep a connection we refused to hand out
            raise OwnConnection(OWN_CONNECTION)

    sa.event.listen(sa.engine.Engine, "engine_connect", refuse)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "engine_connect", refuse)


class _Session:
    """The hooks on the migration engine: gate, time and record each statement; remember the one that failed."""

    def __init__(self, outcome: ApplyOutcome, gate: Gate) -> None:
        self.outcome, self.gate = outcome, gate
        self.monitor: Monitor | None = None
        self.failed: dict[str, Any] = {}

    def install(self, engine: sa.Engine) -> None:
        for name, fn in (("before_cursor_execute", self.before), ("after_cursor_execute", self.after),
                         ("handle_error", self.on_error)):
            sa.event.listen(engine, name, fn)

    def before(self, conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        if self.monitor is not None and self.monitor.aborted.is_set():
            raise ApplyAborted("the monitor stopped the upgrade before its next statement")
        if self.monitor is not None and not BOOKKEEPING.search(sql):
            # A captured reference holds the driver's SQL as it ran on the copy: compared as it runs here too.
            self.gate.check(sql, sql if self.gate.captured else shape_source(sql, params, context, self.gate.dialect))
        conn.info["dbrunbook_t0"] = time.perf_counter()

    def after(self, conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        started = conn.info.pop("dbrunbook_t0", time.perf_counter())
        if self.monitor is not None and not BOOKKEEPING.search(sql):
            self.outcome.statements.append({"sql": sql, "t": round(started - self.monitor.started_at, 4),
                                            "seconds": round(time.perf_counter() - started, 6)})

    def on_error(self, context: Any) -> None:
        started = context.connection.info.pop("dbrunbook_t0", None) if context.connection is not None else None
        if isinstance(context.original_exception, (ApplyAborted, NotReviewed)):
            return  # refused before it ran: the error says why
        if self.monitor is not None and started is not None and context.statement:
            self.failed = dict(sql=str(context.statement), t=round(started - self.monitor.started_at, 4),
                               seconds=round(time.perf_counter() - started, 6), failed=True)


def upgrade(plan: ApplyPlan, target: Target, scripts: Path, outcome: ApplyOutcome, gate: Gate,
            policy: RetryPolicy, on_attempt: OnAttempt | None = None) -> None:
    """Run the upgrade on one monitored session; fills ``outcome``'s statements, attempts, error and samples."""
    facts = APPLY_FACTS[plan.dialect]
    unguarded = _unguarded_level(plan, facts)
    if unguarded:  # refused before the target is touched, rather than run without a guard
        outcome.error, outcome.error_type, outcome.rolled_back = unguarded, "ApplyRefused", True
        return
    cfg = alembic_config(target, scripts)
    engine = make_engine(target.db, poolclass=NullPool)
    prepare_engine(engine, facts)
    session = _Session(outcome, gate)
    session.install(engine)
    real_url = engine.url.render_as_string(hide_password=False)
    try:
        with engine.connect() as conn:
            try:
                if plan.isolation_level:
                    # First: the timeouts below are then set on the session as the revisions will run on it.
                    conn.execution_options(isolation_level=plan.isolation_level)
                for sql in plan.session:
                    conn.exec_driver_sql(sql)
                handle = (conn.exec_driver_sql(facts.backend_id_sql).scalar() if facts.backend_id_sql
                          else conn.connection.driver_connection)
                conn.commit()
            except (sa.exc.DBAPIError, sa.exc.ArgumentError) as exc:  # the database's (or the dialect's) answer
                outcome.error = f"the session could not be set up: {_first_line(exc)}; nothing ran"
                orig = getattr(exc, "orig", None) or exc
                outcome.error_type, outcome.rolled_back = type(orig).__name__, True
                return
            conn.info[MIGRATING] = True
            hand_over(cfg, conn)
            # For env.py files that build their own engine: the real URL, in memory only.
            cfg.set_main_option("sqlalchemy.url", real_url.replace("%", "%%"))
            monitor = session.monitor = Monitor(target.db, facts, handle, plan.abort_after_seconds)
            monitor.start()
            if not monitor.ready.wait(timeout=30) or monitor.error:
                # Unwatched, an upgrade could not be aborted: it does not start.
                outcome.error = f"the monitor could not watch the upgrade: {monitor.error or 'timed out'}; nothing ran"
                outcome.rolled_back = True
            else:
                runner = _Runner(conn, cfg, session, monitor, facts, policy, on_attempt)
                with _only_through(engine):
                    if plan.transactional:
                        runner.one_transaction([plan.upgrade_to])
                    else:
                        runner.revision_by_revision(list(plan.revisions))
    finally:
        if session.monitor is not None:
            outcome.seconds = round(session.monitor.elapsed(), 3)
            session.monitor.stop()
            outcome.monitor = session.monitor.samples
            outcome.aborted = session.monitor.aborted.is_set() and bool(outcome.error)
        cfg.attributes.pop("connection", None)
        cfg.set_main_option("sqlalchemy.url", mask_url(target.db).replace("%", "%%"))
        engine.dispose()
    if session.failed:
        outcome.statements.append(session.failed)
        outcome.failed_statement = session.failed["sql"]
    if outcome.aborted:
        outcome.error = f"aborted after {plan.abort_after_seconds:g}s: {outcome.error}"


def _unguarded_level(plan: ApplyPlan, facts: ApplyFacts) -> str:
    """Why the plan's isolation level would leave a guard of the apply unkept ("" when it keeps them all)."""
    if plan.isolation_level == "AUTOCOMMIT" and plan.transactional:
        return ONE_TRANSACTION_UNDER_AUTOCOMMIT
    if plan.isolation_level not in ("", "AUTOCOMMIT") and facts.begin_sql is not None:
        # The driver would open its own transactions again (prepare_engine turns that off) and the apply's
        # write-locking BEGIN could no longer be the one that opens each.
        return (f"alembic_isolation_level {plan.isolation_level} on {plan.dialect}: the apply opens each transaction "
                f"itself ({facts.begin_sql}), which a driver-managed isolation level would undo; use AUTOCOMMIT or "
                "leave the setting out; nothing ran")
    return ""


class _Runner:
    """Runs the steps, records each attempt and decides whether a failed one is tried again."""

    def __init__(self, conn: sa.Connection, cfg: Any, session: _Session, monitor: Monitor, facts: ApplyFacts,
                 policy: RetryPolicy, on_attempt: OnAttempt | None) -> None:
        self.conn, self.cfg, self.session, self.monitor = conn, cfg, session, monitor
        self.facts, self.policy, self.on_attempt = facts, policy, on_attempt
        self.outcome = session.outcome
        self.first = time.perf_counter()

    def one_transaction(self, steps: list[str]) -> None:
        """Every step in ONE transaction; a lock timeout rolls it back and runs it all again."""
        for number in itertools.count(1):
            mark, started = self._begin_attempt(number, 0)
            transaction = None
            try:
                transaction = self.conn.begin()
                for step in steps:
                    command.upgrade(self.cfg, step)
                self.session.gate.finish()  # every reviewed statement ran: only then commit
                transaction.commit()
                self._notify(self._record(number, "all", started, None))
                return
            except Exception as exc:  # the database's own error is the evidence we record
                if transaction is not None and transaction.is_active:
                    transaction.rollback()
                elif self.conn.in_transaction():
                    self.conn.rollback()
                if self._again(exc, number, "all", started, may_retry=True):
                    del self.outcome.statements[mark:]  # rolled back: the attempt's record keeps what it was
                    continue
                self._fail(exc, rolled_back=True)
                return

    def revision_by_revision(self, steps: list[str]) -> None:
        """Each revision as its env.py runs it; one is run again only when its first statement timed out."""
        for step in steps:
            position = self.session.gate.position  # where the revision's statements begin, for each attempt
            for number in itertools.count(1):
                mark, started = self._begin_attempt(number, position)
                try:
                    command.upgrade(self.cfg, step)
                    if self.conn.in_transaction():
                        self.conn.commit()
                    self._notify(self._record(number, step, started, None))
                    break
                except Exception as exc:
                    if self.conn.in_transaction():
                        self.conn.rollback()
                    # Statements of this revision that ran cannot be undone: only a failure on its first is retried.
                    if self._again(exc, number, step, started, may_retry=len(self.outcome.statements) == mark):
                        continue
                    self._fail(exc, rolled_back=False)
                    return
        try:
            self.session.gate.finish()
        except NotReviewed as exc:
            self._fail(exc, rolled_back=False)

    def _begin_attempt(self, number: int, position: int) -> tuple[int, float]:
        self.session.gate.rewind(position)
        self.session.failed = {}
        self.monitor.new_attempt(number)
        return len(self.outcome.statements), self.monitor.elapsed()

    def _record(self, number: int, step: str, started: float, exc: BaseException | None) -> dict[str, Any]:
        ended = self.monitor.elapsed()
        failed = self.session.failed
        record: dict[str, Any] = {
            "attempt": number, "step": step, "t": round(started, 3), "seconds": round(ended - started, 3),
            "ok": exc is None, "error": _first_line(exc) if exc is not None else "",
            "waited": failed.get("seconds", 0.0) if exc is not None else 0.0,
            "statement": str(failed.get("sql", "")).strip()[:300] if exc is not None else "",
            "blockers": self.monitor.blockers(started, ended + 0.2) if exc is not None else [], "backoff": 0.0}
        self.outcome.attempts.append(record)
        return record

    def _notify(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.on_attempt is not None:
            self.on_attempt(dict(record))
        return record

    def _again(self, exc: BaseException, number: int, step: str, started: float, may_retry: bool) -> bool:
        """Record the failed attempt; True (after the backoff) when another attempt follows."""
        record = self._record(number, step, started, exc)
        if not may_retry or self.monitor.aborted.is_set() or not is_lock_timeout(exc, self.facts.lock_timeout_codes):
            self._notify(record)
            return False
        delay = self.policy.backoff(number)
        why = self.policy.stop(number, time.perf_counter() - self.first, delay)
        if why:
            record["gave_up"] = why
            self._notify(record)
            return False
        record["backoff"] = round(delay, 3)
        self._notify(record)
        self.monitor.pause()
        time.sleep(delay)
        return True

    def _fail(self, exc: BaseException, rolled_back: bool) -> None:
        outcome = self.outcome
        if isinstance(exc, NotReviewed):
            outcome.sql_mismatch = {**exc.to_json(), "when": "during the upgrade, before the statement ran",
                                    "message": str(exc), "before_upgrade": False}
            outcome.error, outcome.error_type = f"not the reviewed SQL: {exc}", "NotReviewed"
        else:
            orig = getattr(exc, "orig", None) or exc
            outcome.error, outcome.error_type = _first_line(exc), type(orig).__name__
        failed_attempts = [a for a in outcome.attempts if not a["ok"]]
        if len(failed_attempts) > 1:
            gave_up = failed_attempts[-1].get("gave_up", "")
            outcome.error += f" (attempt {len(failed_attempts)}" + (f"; gave up: {gave_up})" if gave_up else ")")
        outcome.rolled_back = rolled_back


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else repr(orig)
