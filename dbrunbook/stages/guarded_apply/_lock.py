"""One apply at a time per target: an advisory lock held for the whole apply, the holder named.

A second ``dbrunbook apply`` on the same database is refused at once with :class:`ApplyLocked`, which names
the holder: its host, user, process id, apply run, plan run and since when. The holder leaves that note where
another apply can read it, as each dialect allows. The way is a fact of the dialect (:mod:`dbrunbook.dialects`:
``advisory_lock_*``, ``lock_holder_sql``, ``lock_note_*``, ``gate_*``), gathered in :data:`LOCK_FACTS`:

- **SQLite**: an exclusive ``flock`` on ``<db>.dbrunbook-apply.lock`` beside the database; the note is the
  file's content (emptied on release; the file stays, as lock files must, or two processes could lock two files).
- **PostgreSQL**: ``pg_try_advisory_lock`` on a key derived from the database name, on a session of its own. Its
  ``application_name`` becomes ``dbrunbook apply <run id>`` and its last statement carries the note in a
  comment, which ``pg_stat_activity.query`` keeps showing while the session idles.
- **MariaDB/MySQL**: ``GET_LOCK(name, 0)`` on a session of its own. The processlist shows a session's statement
  only while it runs, so that session then waits, in a statement carrying the note, on a second lock that a
  third session holds until release. ``IS_USED_LOCK`` and the processlist read it.

Every lock belongs to a session or an open file: released on every exit path, and by the server or the kernel
when the process dies. Without a note (another tool holding the lock, or an apply just starting) the refusal
still names the server session, its database user and client, and since when.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import getpass
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dbrunbook import dialects
from dbrunbook.core.db import dialect_name, make_engine
from dbrunbook.core.secrets import parse_url
from dbrunbook.dialects import Dialect
from dbrunbook.errors import ApplyRefused
from dbrunbook.stages.guarded_apply._guards import Guard

#: Marks the note in a statement's text: the JSON object after it is the holder's note.
NOTE_MARK = "dbrunbook-apply-note"
LOCK_SUFFIX = ".dbrunbook-apply.lock"
#: How long the MariaDB note statement may wait: longer than any apply (the release ends it).
_FOREVER_SECONDS = 31536000
#: What the lock is of: its key or name is derived from this and the database name.
_SCOPE = "dbrunbook-apply"


class ApplyLocked(ApplyRefused):
    """Another apply holds the target's apply lock: refused at once, the target untouched; ``holder`` names it."""

    def __init__(self, database: str, holder: Holder) -> None:
        super().__init__([Guard("one-apply", False, f"another apply holds {database}: {holder.describe()}")])
        self.holder = holder


@dataclass
class Holder:
    """Who holds the apply lock: the note it left (user, host, pid, runs, since) and its server session."""

    run_id: str = ""
    plan_run: str = ""
    user: str = ""
    host: str = ""
    pid: int | None = None
    since: str = ""
    #: The server session that holds the lock (PostgreSQL pid, MariaDB connection id); "" for a lock file.
    session: str = ""
    db_user: str = ""
    client: str = ""

    def describe(self) -> str:
        """One line naming the holder, from its note where it left one."""
        if self.run_id or self.pid is not None:
            who = f"dbrunbook apply run {self.run_id or '?'} (plan {self.plan_run or '?'}) by " \
                  f"{self.user or '?'}@{self.host or '?'} pid {self.pid if self.pid is not None else '?'}"
        else:
            who = "a session that left no note (another tool, or an apply still starting)"
        since = f", since {self.since}" if self.since else ""
        server = f"; server session {self.session} ({self.db_user or '?'} from {self.client or '?'})" \
            if self.session else ""
        return " ".join(f"{who}{since}{server}".split())  # one line, whatever the note held

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def note(run_id: str, plan_run: str) -> dict[str, Any]:
    """The note this process leaves while it holds the lock."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (a container without one): still a note
        user = str(os.getuid()) if hasattr(os, "getuid") else ""
    return {"run_id": run_id, "plan_run": plan_run, "user": user, "host": socket.gethostname(), "pid": os.getpid(),
            "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _comment(payload: dict[str, Any]) -> str:
    """The note as a SQL block comment for ``sa.text``: no ``*/`` or nested ``/*`` inside, colons escaped."""
    # "/" only occurs inside JSON strings here, where "\/" is a valid escape of it.
    body = json.dumps(payload, sort_keys=True).replace("/", "\\/").replace(":", "\\:")
    return f"/* {NOTE_MARK} {body} */"


def _read_note(text: str | None) -> dict[str, Any]:
    """The note in a statement's text or a lock file (empty when there is none)."""
    if not text or NOTE_MARK not in text:
        return {}
    start = text.find("{", text.index(NOTE_MARK))
    try:
        found, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _holder(found: dict[str, Any], **server: Any) -> Holder:
    pid = found.get("pid")
    return Holder(run_id=str(found.get("run_id") or ""), plan_run=str(found.get("plan_run") or ""),
                  user=str(found.get("user") or ""), host=str(found.get("host") or ""),
                  pid=int(pid) if isinstance(pid, int) else None, since=str(found.get("since") or ""), **server)


@dataclass(frozen=True)
class LockFacts:
    """How one dialect holds the apply lock and shows its holder (from its :class:`~dbrunbook.dialects.Dialect`)."""

    #: ``file`` (a lock file beside the database) or ``server`` (a lock of a server session).
    strategy: str
    #: What the lock is, for the record (``pg_try_advisory_lock``, ``GET_LOCK``, ``flock``).
    label: str = ""
    #: The lock's key or name for a database name (bound as ``:key``).
    key: Callable[[str], Any] | None = None
    #: Takes the lock at once or answers false (``:key``).
    acquire_sql: str = ""
    release_sql: str = ""
    #: Best-effort settings of the lock session, so the server does not end it while the apply runs.
    session_sql: tuple[str, ...] = ()
    #: Carries the note (``{note}``, a comment). PostgreSQL: the session's last statement (``:app``);
    #: MariaDB/MySQL: a statement that keeps running, waiting on the gate lock (``:gate``, ``:forever``).
    note_sql: str = ""
    #: The note is seen only while its statement runs: it waits on a gate lock another session holds.
    note_waits: bool = False
    gate_sql: str = ""
    gate_release_sql: str = ""
    #: The holder's session (``:key``): id, database user, client, seconds since its last statement began, text.
    holder_sql: str = ""
    #: The dialect, which cancels the note statement from another session and bounds lock names.
    dialect: Dialect | None = None


def lock_facts(dialect: Dialect) -> LockFacts:
    """The apply lock of ``dialect``: a lock file where the database is a file, else its advisory lock."""
    if dialect.file_based:
        return LockFacts(strategy="file", label=dialect.advisory_lock_label, dialect=dialect)
    if dialect.advisory_lock_sql is None or dialect.advisory_unlock_sql is None or dialect.lock_holder_sql is None:
        return LockFacts(strategy="none", label=dialect.advisory_lock_label, dialect=dialect)
    return LockFacts(
        strategy="server", label=dialect.advisory_lock_label, key=functools.partial(dialect.advisory_lock_key, _SCOPE),
        acquire_sql=dialect.advisory_lock_sql, release_sql=dialect.advisory_unlock_sql,
        session_sql=tuple(dialect.long_session_sql()), note_sql=dialect.lock_note_sql or "",
        note_waits=dialect.lock_note_waits, gate_sql=dialect.gate_lock_sql or "",
        gate_release_sql=dialect.gate_unlock_sql or "", holder_sql=dialect.lock_holder_sql, dialect=dialect)


#: Keyed by :func:`dbrunbook.core.db.dialect_name`: every registered dialect.
LOCK_FACTS: dict[str, LockFacts] = {d.name: lock_facts(d) for d in dialects.registered()}


def lock_file(url: str) -> Path | None:
    """The lock file beside a SQLite database (None for an in-memory one, which no other process reaches)."""
    parsed = parse_url(url)
    database = parsed.database or ""
    if not database or database == ":memory:" or parsed.query.get("mode") == "memory":
        return None
    if database.startswith("file:"):  # a URI filename: the path without its query
        database = database[5:].split("?", 1)[0]
    path = Path(database).expanduser().resolve()
    return path.with_name(path.name + LOCK_SUFFIX)


def _dialect(url: str) -> str:
    engine = make_engine(url, poolclass=NullPool)
    try:
        return dialect_name(engine)
    finally:
        engine.dispose()


def _facts(dialect: str) -> LockFacts:
    return LOCK_FACTS.get(dialect, LockFacts(strategy="none"))


def holder(url: str) -> Holder | None:
    """Who holds the apply lock of the database at ``url`` now, or None; takes nothing and writes nothing."""
    dialect = _dialect(url)
    facts = _facts(dialect)
    if facts.strategy == "file":
        path = lock_file(url)
        return _file_holder(path) if path is not None and path.exists() else None
    if facts.strategy != "server" or facts.key is None:
        return None
    database = parse_url(url).database or ""
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return _server_holder(conn, facts, facts.key(database))
    finally:
        engine.dispose()


def _server_holder(conn: sa.Connection, facts: LockFacts, key: Any) -> Holder | None:
    row = conn.execute(sa.text(facts.holder_sql), {"key": key}).first()
    if row is None:
        return None
    session, db_user, client, seconds, text = row
    since = ""
    if seconds is not None:  # when the lock session's current (or last) statement began: the note's, or the lock
        started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=float(seconds))
        since = started.strftime("%Y-%m-%dT%H:%M:%SZ")
    found = _read_note(text)
    return _holder({"since": since, **found}, session=str(session), db_user=str(db_user or ""),
                   client=str(client or ""))


def _file_holder(path: Path) -> Holder | None:
    import fcntl

    with open(path, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(_read_note(handle.read().decode(errors="replace")))
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


@contextlib.contextmanager
def apply_lock(url: str, run_id: str, plan_run: str = "") -> Iterator[dict[str, Any]]:
    """Hold the apply lock of the database at ``url`` for the block; yields the note it left.

    Raises :class:`ApplyLocked` at once, naming the holder, when another apply holds it.
    """
    dialect = _dialect(url)
    facts = _facts(dialect)
    left = note(run_id, plan_run)
    if facts.strategy == "file":
        path = lock_file(url)
        if path is None:
            yield {**left, "lock": "none (an in-memory database)"}
            return
        with _file_lock(path, left):
            yield {**left, "lock": str(path)}
    elif facts.strategy == "server" and facts.key is not None:
        database = parse_url(url).database or ""
        with _server_lock(url, facts, facts.key(database), left, database):
            yield {**left, "lock": f"{facts.label} {facts.key(database)}"}
    else:  # a dialect apply does not support fails later, with its own message
        yield {**left, "lock": "none"}


@contextlib.contextmanager
def _file_lock(path: Path, left: dict[str, Any]) -> Iterator[None]:
    import fcntl

    handle = open(path, "a+b")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise ApplyLocked(path.name[: -len(LOCK_SUFFIX)],
                              _holder(_read_note(handle.read().decode(errors="replace")))) from None
        handle.seek(0)
        handle.truncate()
        handle.write((NOTE_MARK + " " + json.dumps(left, sort_keys=True) + "\n").encode())
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()  # no stale note for the next reader
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        handle.close()


@contextlib.contextmanager
def _server_lock(url: str, facts: LockFacts, key: Any, left: dict[str, Any], database: str) -> Iterator[None]:
    engine = make_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for sql in facts.session_sql:
                with contextlib.suppress(sa.exc.DBAPIError):  # a server without the setting keeps its default
                    conn.exec_driver_sql(sql)
            if not conn.execute(sa.text(facts.acquire_sql), {"key": key}).scalar():
                found = _server_holder(conn, facts, key)
                raise ApplyLocked(database, found or Holder(since="", session="?"))
            try:
                if facts.note_waits:
                    with _waiting_note(engine, conn, facts, key, left):
                        yield
                else:
                    conn.execute(sa.text(facts.note_sql.format(note=_comment(left))),
                                 {"app": f"dbrunbook apply {left['run_id']}"[:63]})
                    yield
            finally:
                conn.execute(sa.text(facts.release_sql), {"key": key})
    finally:
        engine.dispose()


@contextlib.contextmanager
def _waiting_note(engine: sa.Engine, conn: sa.Connection, facts: LockFacts, key: Any,
                  left: dict[str, Any]) -> Iterator[None]:
    """Keep the note statement running on ``conn`` (waiting on a gate lock held on another session) for the block."""
    gate = f"{_SCOPE}-gate:{left['pid']}:{time.time_ns()}"
    limit = facts.dialect.advisory_lock_name_max if facts.dialect else None
    gate = gate[:limit] if limit else gate
    with engine.connect() as keeper:
        keeper.execute(sa.text(facts.gate_sql), {"gate": gate})

        def wait() -> None:
            with contextlib.suppress(sa.exc.DBAPIError):  # killed: the lock stays held, only the note is gone
                conn.execute(sa.text(facts.note_sql.format(note=_comment(left))),
                             {"gate": gate, "forever": _FOREVER_SECONDS})
                conn.execute(sa.text(facts.gate_release_sql), {"gate": gate})

        waiter = threading.Thread(target=wait, name="dbrunbook-apply-lock-note", daemon=True)
        waiter.start()
        try:
            # Until the processlist shows the note, a reader would find the lock without it: wait (briefly).
            deadline, shown = time.monotonic() + 10, None
            while waiter.is_alive() and time.monotonic() < deadline:
                shown = _server_holder(keeper, facts, key)
                if shown is not None and shown.run_id:
                    break
                time.sleep(0.005)
            yield
        finally:
            keeper.execute(sa.text(facts.gate_release_sql), {"gate": gate})
            waiter.join(timeout=10)
            if waiter.is_alive() and shown is not None and facts.dialect is not None:  # never leave it busy
                cancel = facts.dialect.cancel_query_sql(int(shown.session))
                with contextlib.suppress(sa.exc.DBAPIError):
                    if cancel:
                        keeper.exec_driver_sql(cancel)
                waiter.join(timeout=10)
