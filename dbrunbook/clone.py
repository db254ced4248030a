"""Scratch copies of a database, made with each dialect's own means and always dropped.

:func:`scratch_copy` is a context manager yielding the URL of a uniquely named copy (full, or
schema only). The copy is dropped when the block exits, whether it succeeded, raised or was
interrupted with Ctrl-C; a leftover from a killed process is never reused because every copy
gets a fresh name. How the copy is made is a dialect fact (``clone_strategy``).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .db import create_database, drop_database, engine_facts, make_engine, scratch_name, server_url, with_database
from .errors import ToolMissing, UsageError
from .secrets import resolve_url

MODES = ("full", "schema")


def _copy_sqlite(source: URL, clone: URL, mode: str) -> None:
    src = sqlite3.connect(source.database or "")
    dst = sqlite3.connect(clone.database or "")
    try:
        if mode == "full":
            src.backup(dst)
        else:
            rows = src.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                               "AND name NOT LIKE 'sqlite_%' ORDER BY type = 'table' DESC, rowid").fetchall()
            for (ddl,) in rows:
                dst.execute(ddl)
            dst.commit()
    finally:
        src.close()
        dst.close()


def _run_pipe(dump: list[str], load: list[str], env: dict[str, str]) -> None:
    for tool, package in ((dump[0], "postgresql-client"), (load[0], "postgresql-client")):
        if shutil.which(tool) is None:
            raise ToolMissing(tool, package)
    producer = subprocess.Popen(dump, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    consumer = subprocess.run(load, stdin=producer.stdout, capture_output=True, env=env)
    _, dump_err = producer.communicate()
    if producer.returncode or consumer.returncode:
        message = (dump_err or consumer.stderr).decode(errors="replace").strip().splitlines()
        raise UsageError(f"copying the database failed: {message[-1] if message else 'unknown error'}")


def _pg_args(url: URL) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    args = ["-h", url.host or "localhost", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    return args, env


def _copy_postgres(source: URL, clone: URL, mode: str) -> None:
    create_template = mode == "full"
    if create_template:
        engine = make_engine(server_url(source), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                q = conn.dialect.identifier_preparer.quote
                conn.execute(sa.text(f"CREATE DATABASE {q(clone.database or '')} TEMPLATE {q(source.database or '')}"))
            return
        except DBAPIError:
            # Someone else is connected to the source: fall back to dump and restore.
            pass
        finally:
            engine.dispose()
    create_database(clone)
    args, env = _pg_args(source)
    dump = ["pg_dump", *args, "-Fc", "--no-owner", "--no-acl", *(["-s"] if mode == "schema" else []),
            source.database or ""]
    load = ["pg_restore", *args, "--no-owner", "--no-acl", "-d", clone.database or ""]
    _run_pipe(dump, load, env)


def _copy_mysql(source: URL, clone: URL, mode: str) -> None:
    create_database(clone)
    engine = make_engine(server_url(source))
    src, dst = source.database or "", clone.database or ""
    try:
        with engine.begin() as conn:
            q = conn.dialect.identifier_preparer.quote
            conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
            rows = conn.execute(sa.text(f"SHOW FULL TABLES FROM {q(src)}")).fetchall()
            tables = [r[0] for r in rows if r[1] == "BASE TABLE"]
            views = [r[0] for r in rows if r[1] == "VIEW"]
            for table in tables:
                ddl = conn.execute(sa.text(f"SHOW CREATE TABLE {q(src)}.{q(table)}")).fetchone()[1]
                conn.execute(sa.text(f"USE {q(dst)}"))
                conn.execute(sa.text(ddl.replace(":", "\\:")))
                if mode == "full":
                    conn.execute(sa.text(f"INSERT INTO {q(dst)}.{q(table)} SELECT * FROM {q(src)}.{q(table)}"))
            for view in views:
                ddl = conn.execute(sa.text(f"SHOW CREATE VIEW {q(src)}.{q(view)}")).fetchone()[1]
                conn.execute(sa.text(f"USE {q(dst)}"))
                conn.execute(sa.text(ddl.replace(f"{q(src)}.", f"{q(dst)}.").replace(":", "\\:")))
            conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))
    finally:
        engine.dispose()


_STRATEGIES: dict[str, Callable[[URL, URL, str], None]] = {
    "file": _copy_sqlite,
    "template": _copy_postgres,
    "copy": _copy_mysql,
}


def _copy_version_table(source: URL, clone: URL) -> None:
    """A schema-only copy still needs to know which Alembic revision it is at."""
    src, dst = make_engine(source), make_engine(clone)
    try:
        if not sa.inspect(src).has_table("alembic_version"):
            return
        table = sa.Table("alembic_version", sa.MetaData(), autoload_with=src)
        with src.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(table))]
        if rows:
            with dst.begin() as conn:
                conn.execute(table.insert(), rows)
    finally:
        src.dispose()
        dst.dispose()


@contextlib.contextmanager
def scratch_copy(url: str | URL, mode: str = "full") -> Iterator[URL]:
    """Yield the URL of a fresh copy of ``url``; drop it afterwards, whatever happened."""
    if mode not in MODES:
        raise UsageError(f"clone mode must be one of {', '.join(MODES)}, not {mode!r}")
    source = resolve_url(url)
    engine = make_engine(source)
    strategy = _STRATEGIES[engine_facts(engine).clone_strategy]
    engine.dispose()
    workdir = tempfile.mkdtemp(prefix="dbrunbook-") if source.get_backend_name() == "sqlite" else None
    clone = with_database(source, scratch_name())
    if workdir:
        clone = source.set(database=str(Path(workdir) / f"{scratch_name()}.db"))
    try:
        strategy(source, clone, mode)
        if mode == "schema":
            _copy_version_table(source, clone)
        yield clone
    finally:
        drop_database(clone)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
