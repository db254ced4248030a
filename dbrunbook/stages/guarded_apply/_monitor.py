"""Session guards, monitoring and abort of the upgrade, from each dialect's facts (:mod:`dbrunbook.dialects`).

While the upgrade runs, :class:`Monitor` samples on its own connection every ~100 ms: the
elapsed time and, where the server tells, the sessions the migration blocks and the lock it
waits on. Past ``abort_after_seconds`` it cancels the migration's statement (the server's own
cancel; SQLite's ``interrupt()``) and raises the abort flag, which stops any further statement.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dbrunbook import dialects
from dbrunbook.core.db import make_engine
from dbrunbook.dialects import Dialect

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class ApplyFacts:
    """What the apply reads of one :class:`~dbrunbook.dialects.Dialect` to bound, watch and cancel a migration."""

    dialect: Dialect
    #: Emitted when the migration's transaction begins (pysqlite does not BEGIN before DDL by itself).
    begin_sql: str | None
    #: The migration session's id on the server (None: cancel through the driver connection).
    backend_id_sql: str | None
    #: Sessions waiting for a lock the migration (``:pid``) holds: id, state, query.
    blocked_sql: str | None
    #: What the migration (``:pid``) is waiting for, one row per lock.
    waiting_sql: str | None
    #: While the migration waits for a lock: the sessions in its way (id, user, application or client, state,
    #: query). PostgreSQL names them exactly; MariaDB/MySQL list the sessions with an open transaction.
    blocker_sql: str | None
    #: The database's error codes of a lock wait that timed out (SQLSTATE, MySQL error number, SQLite
    #: primary result code): the attempt did nothing and may be tried again.
    lock_timeout_codes: tuple[str, ...]

    @classmethod
    def of(cls, dialect: Dialect) -> ApplyFacts:
        """The apply's facts of ``dialect``."""
        return cls(dialect, begin_sql=dialect.begin_write_sql, backend_id_sql=dialect.session_id_sql,
                   blocked_sql=dialect.blocked_sessions_sql, waiting_sql=dialect.lock_waits_sql,
                   blocker_sql=dialect.blocking_sessions_sql, lock_timeout_codes=dialect.lock_timeout_errors)

    def cancel_sql(self, handle: Any) -> str | None:
        """Cancels the running statement of the migration session ``handle`` (None: interrupt the driver)."""
        return self.dialect.cancel_query_sql(int(handle)) if self.backend_id_sql is not None else None


#: Keyed by :func:`dbrunbook.core.db.dialect_name`: every registered dialect.
APPLY_FACTS: dict[str, ApplyFacts] = {d.name: ApplyFacts.of(d) for d in dialects.registered()}


def session_sql(facts: ApplyFacts, lock_timeout_ms: int, statement_timeout_ms: int) -> list[str]:
    """The session statements of ``facts`` with the plan's limits filled in."""
    return facts.dialect.session_timeouts(lock_timeout_ms, statement_timeout_ms)


#: The statement timeout stands one second past the abort limit: a backstop behind the monitor's cancel.
STATEMENT_TIMEOUT_GRACE_MS = 1000


def statement_timeout_ms(abort_after_seconds: float) -> int:
    """The statement timeout the apply sets for a plan aborted after ``abort_after_seconds``."""
    return int(abort_after_seconds * 1000) + STATEMENT_TIMEOUT_GRACE_MS


def session_for(dialect: str, lock_timeout_ms: int, abort_after_seconds: float) -> list[str]:
    """The session statements the apply runs on ``dialect`` (empty for a dialect it does not support)."""
    facts = APPLY_FACTS.get(dialect)
    return session_sql(facts, lock_timeout_ms, statement_timeout_ms(abort_after_seconds)) if facts else []


#: Set in a migration connection's ``info`` once its session is set up: from then on a transaction begins
#: with the dialect's ``begin_sql`` (before, setting the session must not wait for the write lock).
MIGRATING = "dbrunbook_migrating"


def prepare_engine(engine: sa.Engine, facts: ApplyFacts) -> None:
    """Make the migration engine open real transactions (SQLAlchemy's recipe for pysqlite)."""
    if facts.begin_sql is None:
        return
    begin_sql = facts.begin_sql

    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver emits no BEGIN/COMMIT of its own

    def on_begin(conn: sa.Connection) -> None:
        if conn.info.get(MIGRATING):
            conn.exec_driver_sql(begin_sql)

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", on_begin)


class Monitor(threading.Thread):
    """Samples the migration session until stopped; cancels it past ``abort_after`` seconds."""

    def __init__(self, url: str, facts: ApplyFacts, handle: Any, abort_after: float) -> None:
        super().__init__(name="dbrunbook-apply-monitor", daemon=True)
        self.url, self.facts, self.handle, self.abort_after = url, facts, handle, abort_after
        self.samples: list[dict[str, Any]] = []
        self.aborted = threading.Event()
        #: Set once the monitor watches; the upgrade starts then, and elapsed time counts from there.
        self.ready = threading.Event()
        self.started_at = time.perf_counter()
        #: When the running attempt began (None between attempts, while backing off: nothing runs to abort).
        self.attempt_started_at: float | None = None
        self.attempt = 0
        self.cancel_error = ""
        #: Why the monitor could not watch (then the upgrade must not start).
        self.error = ""
        self._stop_event = threading.Event()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started_at

    def new_attempt(self, attempt: int) -> None:
        """An attempt begins: the abort limit counts from now (each attempt of a retried upgrade gets all of it)."""
        self.attempt, self.attempt_started_at = attempt, time.perf_counter()

    def pause(self) -> None:
        """Between attempts nothing runs: no abort while the upgrade backs off."""
        self.attempt_started_at = None

    def _over_limit(self) -> bool:
        started = self.attempt_started_at
        return started is not None and time.perf_counter() - started > self.abort_after

    def blockers(self, since: float, until: float) -> list[dict[str, Any]]:
        """The sessions seen in the migration's way between ``since`` and ``until`` (seconds), each once."""
        seen: dict[str, dict[str, Any]] = {}
        for sample in list(self.samples):
            if since <= sample["t"] <= until:
                for blocker in sample.get("blockers", []):
                    seen.setdefault(str(blocker["session"]), blocker)
        return list(seen.values())[:5]

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def run(self) -> None:
        watch = self.facts.blocked_sql is not None
        engine = make_engine(self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT") if watch else None
        try:
            try:
                conn = engine.connect() if engine is not None else None
            except sa.exc.DBAPIError as exc:
                self.error = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                return
            self.started_at = time.perf_counter()
            self.ready.set()
            try:
                while True:  # at least one sample, however quick the upgrade
                    self.samples.append(self._sample(conn))
                    if not self.aborted.is_set() and self._over_limit():
                        self._cancel(conn)
                    if self._stop_event.wait(SAMPLE_SECONDS):
                        break
            finally:
                if conn is not None:
                    conn.close()
        finally:
            self.ready.set()  # never leave the upgrade waiting, even when the monitor could not connect
            if engine is not None:
                engine.dispose()

    def _sample(self, conn: sa.Connection | None) -> dict[str, Any]:
        sample: dict[str, Any] = {"t": round(self.elapsed(), 3), "attempt": self.attempt, "blocked": 0,
                                  "blocked_sessions": [], "waiting_for": "", "blockers": []}
        if conn is None or self.facts.blocked_sql is None:
            return sample
        try:
            blocked = conn.execute(sa.text(self.facts.blocked_sql), {"pid": self.handle}).all()
            waiting = conn.execute(sa.text(self.facts.waiting_sql or "SELECT NULL WHERE 1 = 0"),
                                   {"pid": self.handle}).all()
        except sa.exc.DBAPIError as exc:  # a failed sample is recorded, the migration goes on
            sample["error"] = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            return sample
        sample.update(blocked=len(blocked), blocked_sessions=[int(r[0]) for r in blocked[:10]],
                      waiting_for=", ".join(str(r[0]) for r in waiting if r[0]))
        if sample["waiting_for"] and self.facts.blocker_sql:
            try:
                rows = conn.execute(sa.text(self.facts.blocker_sql), {"pid": self.handle}).all()
            except sa.exc.DBAPIError as exc:
                sample["error"] = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                return sample
            sample["blockers"] = [{"session": r[0], "user": r[1], "application": r[2], "state": r[3],
                                   "query": r[4]} for r in rows[:5]]
        return sample

    def _cancel(self, conn: sa.Connection | None) -> None:
        # The flag first: a statement starting after it is refused, one running now is cancelled.
        self.aborted.set()
        try:
            if conn is not None and (cancel := self.facts.cancel_sql(self.handle)) is not None:
                conn.exec_driver_sql(cancel)
            elif self.handle is not None:
                self.handle.interrupt()  # sqlite3: documented as callable from another thread
        except Exception as exc:  # the abort flag still stops the next statement
            self.cancel_error = f"{type(exc).__name__}: {exc}"


def plot(samples: list[dict[str, Any]], statements: list[dict[str, Any]], abort_after: float,
         aborted: bool) -> Figure:
    """Timeline of the apply: sessions blocked by the migration, and each statement's span."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    times = [s["t"] for s in samples]
    top.step(times, [s["blocked"] for s in samples], where="post", label="sessions blocked by the migration")
    waiting = [s["t"] for s in samples if s.get("waiting_for")]
    if waiting:
        top.plot(waiting, [0] * len(waiting), "|", color="orange", markersize=12, label="migration waits for a lock")
    end = max([*times, *(s.get("t", 0) + s["seconds"] for s in statements), 0.1])
    if aborted or abort_after <= end * 1.5:
        for ax in (top, bottom):
            ax.axvline(abort_after, color="red", linestyle="--")
        top.plot([], [], color="red", linestyle="--", label=f"abort after {abort_after:g}s"
                 + (" (aborted)" if aborted else ""))
    top.set_ylabel("blocked sessions")
    top.set_ylim(bottom=0, top=max([1, *(s["blocked"] for s in samples)]) + 0.5)
    top.legend(loc="upper left", fontsize="small")
    spans = [(s.get("t", 0.0), max(s["seconds"], end / 500)) for s in statements]
    colors = ["red" if s.get("failed") else "tab:green" for s in statements]
    bottom.broken_barh(spans, (0, 1), facecolors=colors)
    bottom.set_yticks([])
    bottom.set_ylabel("statements")
    bottom.set_xlabel("seconds since the upgrade started")
    top.set_title("Guarded apply: monitor timeline")
    figure.tight_layout()
    return figure
