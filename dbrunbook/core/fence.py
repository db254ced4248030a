"""The target fence: while ``update``, ``lint`` and ``rehearse`` run, nothing dbrunbook starts can change the target.

A user's ``env.py``, settings module or models may reach for the database on their own (the URL in
``DATABASE_URL``, in ``alembic.ini``, in application settings). A convention ("env.py should use the
connection it is handed") is not a guarantee, so every process dbrunbook controls installs a fence, in one
of two modes:

``guard``   (the CLI process, every stage kernel) a connection to the *target* is allowed only when it is
            read-only at the database: PostgreSQL ``default_transaction_read_only``, MariaDB/MySQL
            ``SET SESSION TRANSACTION READ ONLY``, SQLite ``mode=ro`` / ``PRAGMA query_only``.
            :func:`dbrunbook.core.db.make_engine` makes dbrunbook's own engines on the target so; any other
            connection to it is refused with :class:`~dbrunbook.errors.TargetFenced`.
``sandbox`` (the child process that runs Alembic and the user's ``env.py`` on a scratch copy, see
            :mod:`dbrunbook.alembic_ops._child`) only the scratch copy may be reached; every other database is
            refused, before a single statement runs.

Both modes hold two layers, so that no way of connecting slips through: SQLAlchemy's ``do_connect`` event
on every engine (sync or async, however it was made), and the DBAPI modules' own ``connect`` functions
(``sqlite3``, ``psycopg``, ``psycopg2``, ``pymysql``, ``MySQLdb``) for raw connections.

A database is known by its :class:`Identity`: the resolved file of a SQLite database, or the database name
on a server (any host: refusing a same-named database elsewhere is the safe mistake).
"""
from __future__ import annotations

import contextlib
import importlib
import sqlite3
import threading
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from dbrunbook import dialects
from dbrunbook.core.secrets import parse_url
from dbrunbook.dialects import Dialect
from dbrunbook.errors import TargetFenced

#: Set on the dialect of an engine :func:`read_only` made (SQLite has no connect parameter that says it).
READ_ONLY_MARK = "_dbrunbook_read_only"
#: Set on dbrunbook's own server-maintenance engines (CREATE/DROP DATABASE of scratch copies), which may connect
#: to the maintenance database even when the target happens to be that database.
ADMIN_MARK = "_dbrunbook_admin"


@dataclass(frozen=True)
class Identity:
    """Which database a URL or a connection reaches: a file, or a database name on a server.

    ``family`` is the dialect's :attr:`~dbrunbook.dialects.Dialect.sqlalchemy_name`: MariaDB and MySQL share one.
    """

    family: str
    key: str

    def __str__(self) -> str:
        kind = "file" if dialects.facts(self.family).file_based else "database"
        return f"{self.family} {kind} {self.key}"


def _identity(dialect: Dialect, key: str | None) -> Identity | None:
    return Identity(dialect.sqlalchemy_name, key) if key else None


def identity(url: str | URL) -> Identity | None:
    """The identity of the database ``url`` names (None for in-memory SQLite or no database)."""
    parsed = parse_url(url)
    dialect = dialects.get(parsed.get_backend_name())
    return _identity(dialect, dialect.database_key(parsed)) if dialect else None


@dataclass
class _State:
    mode: str = ""                       # "" (not installed) | "guard" | "sandbox"
    fenced: frozenset[Identity] = frozenset()
    allowed: frozenset[Identity] = frozenset()


_state = _State()
_originals: dict[str, Callable[..., Any]] = {}
_lock = threading.Lock()


def installed() -> str:
    """The fence's mode in this process ("" when no fence is installed)."""
    return _state.mode


def is_fenced(url: str | URL) -> bool:
    """True when ``url`` names a database this process may only read."""
    found = identity(url)
    return _state.mode == "guard" and found is not None and found in _state.fenced


def _decide(found: Identity | None, read_only: bool, dialect: Dialect) -> None:
    """Raise :class:`TargetFenced` unless this process's fence lets ``found`` be reached."""
    if _state.mode == "guard":
        if found is not None and found in _state.fenced and not read_only:
            raise TargetFenced(str(found), _state.mode)
    elif _state.mode == "sandbox":
        if found is None and dialect.file_based:
            return  # an in-memory database is nobody's target
        if found not in _state.allowed:
            named = str(found) if found else f"a {dialect.sqlalchemy_name} database named by defaults"
            raise TargetFenced(named, _state.mode)


def _on_do_connect(sa_dialect: Any, conn_rec: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
    dialect = dialects.get(sa_dialect.name)
    if dialect is None or not _state.mode or getattr(sa_dialect, ADMIN_MARK, False):
        return None
    found = _identity(dialect, dialect.params_key(cargs, cparams))
    read_only = getattr(sa_dialect, READ_ONLY_MARK, False) or dialect.params_read_only(cargs, cparams)
    _decide(found, read_only, dialect)
    module = getattr(sa_dialect, "loaded_dbapi", None)
    # Async dialects wrap the driver in an adapter that forwards attributes (even __name__): only a real module's
    # connect is ours to call.
    original = _originals.get(module.__name__) if isinstance(module, types.ModuleType) else None
    # Checked here already: connect with the unwrapped function so the raw layer does not judge twice
    # (it cannot see what SQLAlchemy knows, e.g. which engine asked).
    return original(*cargs, **cparams) if original else None


def _checked_file(original: Callable[..., Any], dialect: Dialect) -> Callable[..., Any]:
    # A file is judged by its path before it is opened: opening may create it.
    def connect(*args: Any, **kwargs: Any) -> Any:
        found = _identity(dialect, dialect.params_key(args, kwargs))
        _decide(found, dialect.params_read_only(args, kwargs), dialect)
        return original(*args, **kwargs)
    return connect


def _checked_server(original: Callable[..., Any], dialect: Dialect) -> Callable[..., Any]:
    # A raw server connection is judged by what the server says it reached, after connecting (connecting
    # changes nothing); the database name may come from defaults or PG* variables the arguments do not show.
    def connect(*args: Any, **kwargs: Any) -> Any:
        conn = original(*args, **kwargs)
        try:
            name, read_only = dialect.connected_identity(conn, args, kwargs)
            _decide(_identity(dialect, name), read_only, dialect)
        except BaseException:
            conn.close()
            raise
        return conn
    return connect


def _wrap_dbapi() -> None:
    for dialect in dialects.registered():
        for name in dialect.dbapi_modules:
            if name in _originals:
                continue  # MariaDB shares MySQL's drivers
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            original = getattr(module, "connect", None)
            if original is None:
                continue
            _originals[name] = original
            wrapped = _checked_file(original, dialect) if dialect.file_based else _checked_server(original, dialect)
            setattr(module, "connect", wrapped)  # noqa: B010  (a module attribute mypy cannot see)


def _install(mode: str, fenced: frozenset[Identity], allowed: frozenset[Identity]) -> None:
    with _lock:
        if not sa.event.contains(Engine, "do_connect", _on_do_connect):
            sa.event.listen(Engine, "do_connect", _on_do_connect)
        _wrap_dbapi()
        _state.mode, _state.fenced, _state.allowed = mode, fenced, allowed


def guard(*targets: str | URL) -> None:
    """Fence this process: the ``targets`` may only be read (see the module docstring)."""
    found = frozenset(i for i in (identity(t) for t in targets) if i is not None)
    _install("guard", found | (_state.fenced if _state.mode == "guard" else frozenset()), frozenset())


@contextlib.contextmanager
def guarding(*targets: str | URL) -> Iterator[None]:
    """Fence this process (:func:`guard`) for the length of a block, then restore what was before."""
    saved = (_state.mode, _state.fenced, _state.allowed)
    guard(*targets)
    try:
        yield
    finally:
        with _lock:
            _state.mode, _state.fenced, _state.allowed = saved


def sandbox(*allowed: str | URL) -> None:
    """Fence this process: only the ``allowed`` databases (scratch copies) may be reached at all."""
    found = frozenset(i for i in (identity(a) for a in allowed) if i is not None)
    _install("sandbox", frozenset(), found)


def lift() -> None:
    """Remove the fence from this process (tests, and ``dbrunbook apply``, which is meant to change the target)."""
    with _lock:
        _state.mode, _state.fenced, _state.allowed = "", frozenset(), frozenset()


def read_only_connect_args(url: URL) -> dict[str, Any]:
    """Connect arguments that make every session on ``url`` read-only at the server (none for SQLite)."""
    return dict(dialects.facts(url.get_backend_name()).read_only_connect_args)


def make_read_only(engine: Engine) -> Engine:
    """Mark ``engine`` as dbrunbook's read-only reader; where no connect argument says it (SQLite's
    ``query_only``), every connection runs the dialect's read-only statement."""
    setattr(engine.dialect, READ_ONLY_MARK, True)
    dialect = dialects.get(dialects.name_of(engine.dialect))
    statement = dialect.read_only_on_connect if dialect else None
    if statement:
        def read_only(dbapi_conn: Any, record: Any) -> None:
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(statement)
            finally:
                cursor.close()
        sa.event.listen(engine, "connect", read_only)
    return engine


def sqlite_read_only_connect(path: str | Path) -> sqlite3.Connection:
    """A raw SQLite connection that can only read ``path`` (for the backup API and other raw reads)."""
    return sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)


#: Environment variables that applications and env.py files commonly read the database URL from.
URL_VARIABLES = ("DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "SQLALCHEMY_DATABASE_URL", "SQLALCHEMY_URL",
                 "DATABASE_URI", "DB_URL", "ALEMBIC_DATABASE_URL")


def _names_target(value: str, target: Identity | None) -> URL | None:
    if "://" not in value or target is None:
        return None
    try:
        parsed = parse_url(value)
    except Exception:  # not a URL after all: leave it alone
        return None
    return parsed if identity(parsed) == target else None


def sandbox_environment(base: dict[str, str], target: str | URL | None, copy: URL, *,
                        names: tuple[str, ...] = ()) -> dict[str, str]:
    """``base`` with every URL variable pointed at ``copy`` instead of the target.

    The usual variables (:data:`URL_VARIABLES` and ``names``) are set even when absent, and any other
    variable whose value is a URL of the target is rewritten; each keeps its own driver (an async
    ``postgresql+asyncpg://`` stays async). The client library's database variable (``PGDATABASE``) follows the copy.
    """
    env = dict(base)
    wanted = identity(target) if target is not None else None
    rendered = copy.render_as_string(hide_password=False)
    for name, value in base.items():
        found = _names_target(value, wanted)
        if found is not None:
            env[name] = copy.set(drivername=found.drivername).render_as_string(hide_password=False)
    for name in (*URL_VARIABLES, *names):
        found = _names_target(base.get(name, ""), wanted) or None
        env[name] = copy.set(drivername=found.drivername).render_as_string(hide_password=False) \
            if found is not None else rendered
    dialect = dialects.get(copy.get_backend_name())
    if dialect and dialect.database_env_var and copy.database:
        env[dialect.database_env_var] = copy.database
    return env
