"""Engines, connections and scratch databases, with passwords kept out of sight.

Every engine dbrunbook makes goes through :func:`make_engine`: the URL's masked password is
resolved from the environment, ``hide_parameters=True`` keeps bound values out of error
messages, and a failed connection becomes one masked line (:class:`DatabaseUnreachable`).
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import InterfaceError, NoSuchModuleError, OperationalError

from dbrunbook.core import fence
from dbrunbook.core.secrets import mask_url, parse_url, resolve_url
from dbrunbook.dialects import Dialect, facts, name_of, of_engine
from dbrunbook.errors import DatabaseUnreachable, UsageError


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def make_engine(url: str | URL, *, admin: bool = False, **kwargs: Any) -> Engine:
    """An engine for ``url`` (masked or not) that never prints bound parameters.

    In a fenced process (:mod:`dbrunbook.core.fence`) an engine on the target is read-only at the database.
    ``admin`` marks dbrunbook's own server-maintenance engines (creating and dropping scratch copies).
    """
    real = resolve_url(url)
    connect_args = dict(facts(real.get_backend_name()).connect_args)
    read_only = fence.is_fenced(real)
    if read_only:
        connect_args.update(fence.read_only_connect_args(real))
    connect_args.update(kwargs.pop("connect_args", {}))
    try:
        engine = sa.create_engine(real, hide_parameters=True, connect_args=connect_args, **kwargs)
    except NoSuchModuleError:
        raise UsageError(f"no SQLAlchemy dialect for {mask_url(real)}") from None
    except ModuleNotFoundError as exc:
        raise UsageError(f"the driver for {mask_url(real)} is not installed ({exc.name}); "
                         "install dbrunbook[postgres] or dbrunbook[mysql]") from None
    if admin:
        setattr(engine.dialect, fence.ADMIN_MARK, True)
    return fence.make_read_only(engine) if read_only else engine


def dialect_name(engine: Engine) -> str:
    """The dialect's name, telling MariaDB apart even behind a ``mysql://`` URL."""
    return name_of(engine.dialect)


def engine_facts(engine: Engine) -> Dialect:
    """The :class:`~dbrunbook.dialects.Dialect` of ``engine``."""
    return of_engine(engine)


def check_connection(engine: Engine) -> None:
    """Connect once; raise :class:`DatabaseUnreachable` with a masked, one-line reason."""
    if engine_facts(engine).file_based:
        path = engine.url.database
        if path and path != ":memory:" and not path.startswith("file:") and not Path(path).exists():
            raise DatabaseUnreachable(mask_url(engine.url), f"no such database file {path}")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (OperationalError, InterfaceError) as exc:
        raise DatabaseUnreachable(mask_url(engine.url), _first_line(exc)) from None


def scratch_name(prefix: str = "dbrunbook") -> str:
    """A unique, lower-case name for a scratch database."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def server_url(url: URL) -> URL:
    """A URL on the same server pointing at its maintenance database."""
    # URL.set() ignores None, and None (no database) is what MariaDB wants.
    return url._replace(database=facts(url.get_backend_name()).maintenance_database)


def create_database(url: str | URL) -> None:
    """Create the (empty) database named in ``url`` on its server."""
    real = resolve_url(url)
    if facts(real.get_backend_name()).file_based:
        return
    engine = make_engine(server_url(real), admin=True, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            name = conn.dialect.identifier_preparer.quote(real.database or "")
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    finally:
        engine.dispose()


def drop_database(url: str | URL) -> None:
    """Drop the database named in ``url`` if it exists (SQLite: delete the file)."""
    real = resolve_url(url)
    if facts(real.get_backend_name()).file_based:
        if real.database and real.database != ":memory:":
            for suffix in ("", "-journal", "-wal", "-shm"):
                Path(real.database + suffix).unlink(missing_ok=True)
        return
    engine = make_engine(server_url(real), admin=True, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            name = conn.dialect.identifier_preparer.quote(real.database or "")
            suffix = facts(real.get_backend_name()).drop_database_suffix
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}{suffix}"))
    finally:
        engine.dispose()


def with_database(url: str | URL, database: str) -> URL:
    """``url`` pointing at another database on the same server (SQLite: a file beside it)."""
    real = parse_url(url)
    if facts(real.get_backend_name()).file_based:
        base = Path(real.database or "scratch.db")
        return real.set(database=str(base.with_name(f"{database}.db")))
    return real.set(database=database)
