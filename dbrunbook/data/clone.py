"""Scratch copies of a database, made with each dialect's own means and always dropped.

:func:`scratch_copy` is a context manager yielding the URL of a uniquely named copy: full,
schema only, or a sample (``rows`` random rows per table, plus every row those rows reference,
so foreign keys hold). The copy is dropped when the block exits, whether it succeeded, raised
or was interrupted with Ctrl-C; a leftover from a killed process is never reused because every
copy gets a fresh name. How the copy is made is a dialect fact (``clone_strategy``).
"""
from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from dbrunbook.core.db import create_database, drop_database, make_engine, scratch_name, server_url, with_database
from dbrunbook.core.fence import sqlite_read_only_connect
from dbrunbook.core.secrets import mask_url, resolve_url
from dbrunbook.dialects import of_engine, of_url
from dbrunbook.errors import DatabaseUnreachable, ToolMissing, UsageError

MODES = ("full", "schema", "sample")
#: Rows fetched or inserted per round trip when a sample is copied.
_CHUNK = 500


def _copy_sqlite(source: URL, clone: URL, mode: str) -> None:
    if not Path(source.database or "").exists():  # a copy is never a reason to create the target
        raise DatabaseUnreachable(mask_url(source), f"no such database file {source.database}")
    src = sqlite_read_only_connect(source.database or "")
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


def _run_pipe(dump: list[str], load: list[str], env: dict[str, str], package: str) -> None:
    for tool in (dump[0], load[0]):
        if shutil.which(tool) is None:
            raise ToolMissing(tool, package)
    producer = subprocess.Popen(dump, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    consumer = subprocess.run(load, stdin=producer.stdout, capture_output=True, env=env)
    _, dump_err = producer.communicate()
    if producer.returncode or consumer.returncode:
        message = (dump_err or consumer.stderr).decode(errors="replace").strip().splitlines()
        raise UsageError(f"copying the database failed: {message[-1] if message else 'unknown error'}")


def _copy_postgres(source: URL, clone: URL, mode: str) -> None:
    create_template = mode == "full"
    if create_template:
        engine = make_engine(server_url(source), admin=True, isolation_level="AUTOCOMMIT")
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
    dialect = of_url(source)
    args = dialect.client_args(source)
    dump = [dialect.backup_tool[0], *args, "-Fc", "--no-owner", "--no-acl", *(["-s"] if mode == "schema" else []),
            source.database or ""]
    load = [dialect.restore_tool, *args, "--no-owner", "--no-acl", "-d", clone.database or ""]
    _run_pipe(dump, load, dialect.client_env(source), dialect.backup_tool[1])


def _copy_mysql(source: URL, clone: URL, mode: str) -> None:
    create_database(clone)
    engine = make_engine(server_url(source))
    src, dst = source.database or "", clone.database or ""
    try:
        with engine.begin() as conn:
            q = conn.dialect.identifier_preparer.quote
            disable_fk_checks(conn)
            rows = conn.execute(sa.text(f"SHOW FULL TABLES FROM {q(src)}")).fetchall()
            tables = [r[0] for r in rows if r[1] == "BASE TABLE"]
            views = [r[0] for r in rows if r[1] == "VIEW"]
            for table in tables:
                ddl = conn.execute(sa.text(f"SHOW CREATE TABLE {q(src)}.{q(table)}")).one()[1]
                conn.execute(sa.text(f"USE {q(dst)}"))
                conn.execute(sa.text(ddl.replace(":", "\\:")))
            _server_made_fk_indexes(conn, src, dst, tables)
            if mode == "full":
                for table in tables:
                    conn.execute(sa.text(f"INSERT INTO {q(dst)}.{q(table)} SELECT * FROM {q(src)}.{q(table)}"))
            for view in views:
                ddl = conn.execute(sa.text(f"SHOW CREATE VIEW {q(src)}.{q(view)}")).one()[1]
                conn.execute(sa.text(f"USE {q(dst)}"))
                conn.execute(sa.text(ddl.replace(f"{q(src)}.", f"{q(dst)}.").replace(":", "\\:")))
            on = of_engine(conn).fk_checks_on_sql
            if on:
                conn.execute(sa.text(on))
    finally:
        engine.dispose()


def _server_made_fk_indexes(conn: sa.Connection, src: str, dst: str, tables: list[str]) -> None:
    """Make the indexes InnoDB made itself for foreign keys in ``src`` server-made in the copy ``dst`` too.

    SHOW CREATE TABLE lists such an index as a plain KEY, so the copy holds it as one its author made. The two
    behave differently: InnoDB drops its own index once another index can serve the key (an upgrade's CREATE
    INDEX on the key's columns), but keeps an author's. A downgrade that drops that new index then fails on the
    target ("needed in a foreign key constraint") and passes on a copy that kept the KEY: the rollback would be
    called proven when it is not. Each such key is dropped with its index and added again, which lets InnoDB
    make the index itself (named after the constraint). Run on the new, empty tables: nothing to rebuild.
    """
    inspector = sa.inspect(conn)
    redo: dict[str, dict[str, str]] = {}
    for table in tables:
        indexes = {ix["name"]: tuple(ix["column_names"]) for ix in inspector.get_indexes(table, schema=src)}
        for fk in inspector.get_foreign_keys(table, schema=src):
            columns = tuple(fk["constrained_columns"])
            # InnoDB names its index after the constraint, or after the first column of an unnamed one.
            made = next((n for n in (fk["name"], columns[0]) if n and indexes.get(n) == columns), None)
            if made and fk["name"]:
                redo.setdefault(table, {})[fk["name"]] = made
    if not redo:
        return
    copy = sa.MetaData(schema=dst)
    copy.reflect(conn, only=sorted(redo))
    for table, keys in redo.items():
        reflected = copy.tables[f"{dst}.{table}"]
        for constraint in [c for c in reflected.foreign_key_constraints if c.name in keys]:
            index = next((ix for ix in reflected.indexes if ix.name == keys[str(constraint.name)]), None)
            conn.execute(sa.schema.DropConstraint(constraint))
            if index is not None:
                conn.execute(sa.schema.DropIndex(index))
            conn.execute(sa.schema.AddConstraint(constraint))


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


def sync_key_generators(conn: sa.Connection, tables: list[sa.Table]) -> None:
    """Move key generators (sequences) past rows inserted with explicit keys.

    Otherwise the database's own key generator could hand out a key that is already taken.
    """
    of_engine(conn).sync_key_generators(conn, tables)


def disable_fk_checks(conn: sa.Connection) -> None:
    """Let rows arrive in any order on this connection (cycles, self-references), where the dialect allows it.

    The sample copy's keys are consistent by construction.
    """
    statement = of_engine(conn).fk_checks_off_sql
    if statement:
        conn.execute(sa.text(statement))


def _row_key(table: sa.Table, row: dict[str, Any]) -> Any:
    columns = [c.name for c in table.primary_key.columns] or list(row)
    return repr(tuple(row[c] for c in columns))


def _chunks(items: list[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _missing_parents(conn: sa.Connection, fk: sa.ForeignKeyConstraint, children: Iterable[dict[str, Any]],
                     parents: dict[Any, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the referred table that sampled ``children`` point at and the sample lacks."""
    local = [c.name for c in fk.columns]
    parent = fk.referred_table
    remote = [parent.c[e.column.name] for e in fk.elements]
    needed = {tuple(row[c] for c in local) for row in children}
    have = {tuple(row[c.name] for c in remote) for row in parents.values()}
    missing = [k for k in needed - have if None not in k]
    found: list[dict[str, Any]] = []
    for chunk in _chunks(missing):
        where = (remote[0].in_([k[0] for k in chunk]) if len(remote) == 1
                 else sa.tuple_(*remote).in_(chunk))
        found.extend(dict(r) for r in conn.execute(sa.select(parent).where(where)).mappings())
    return found


def _pick_sample(conn: sa.Connection, tables: list[sa.Table], rows: int) -> dict[str, dict[Any, dict[str, Any]]]:
    """``rows`` random rows per table, then the rows they reference, until nothing is missing."""
    random = getattr(sa.func, of_engine(conn).random_function)
    picked: dict[str, dict[Any, dict[str, Any]]] = {}
    for table in tables:
        result = conn.execute(sa.select(table).order_by(random()).limit(rows)).mappings()
        picked[table.name] = {_row_key(table, dict(r)): dict(r) for r in result}
    changed = True
    while changed:  # a parent added for one child may itself reference rows not yet picked
        changed = False
        for table in reversed(tables):
            for fk in table.foreign_key_constraints:
                parents = picked.get(fk.referred_table.name)
                if parents is None or fk.referred_table.schema != table.schema:
                    continue
                for row in _missing_parents(conn, fk, list(picked[table.name].values()), parents):
                    parents[_row_key(fk.referred_table, row)] = row
                    changed = True
    return picked


def _copy_sample(source: URL, clone: URL, rows: int) -> None:
    """Fill the schema-only ``clone`` with a sample of ``source`` whose foreign keys hold."""
    src, dst = make_engine(source), make_engine(clone)
    try:
        meta = sa.MetaData()
        meta.reflect(src)
        tables = [t for t in meta.sorted_tables if t.name != "alembic_version"]
        with src.connect() as conn:
            picked = _pick_sample(conn, tables, rows)
        with dst.begin() as conn:
            disable_fk_checks(conn)
            for table in tables:  # parents first, so databases that check row by row agree
                for chunk in _chunks(list(picked[table.name].values())):
                    conn.execute(table.insert(), chunk)
            sync_key_generators(conn, tables)
    finally:
        src.dispose()
        dst.dispose()


@contextlib.contextmanager
def scratch_copy(url: str | URL, mode: str = "full", rows: int = 1000) -> Iterator[URL]:
    """Yield the URL of a fresh copy of ``url``; drop it afterwards, whatever happened.

    ``mode`` is "full", "schema" or "sample"; a sample holds ``rows`` random rows of each
    table plus every row they reference through foreign keys.
    """
    if mode not in MODES:
        raise UsageError(f"clone mode must be one of {', '.join(MODES)}, not {mode!r}")
    if mode == "sample" and rows < 1:
        raise UsageError(f"a sample copy needs at least one row per table, not {rows}")
    source = resolve_url(url)
    engine = make_engine(source)
    dialect = of_engine(engine)
    engine.dispose()
    strategy = _STRATEGIES[dialect.clone_strategy]
    workdir = tempfile.mkdtemp(prefix="dbrunbook-") if dialect.file_based else None
    clone = with_database(source, scratch_name())
    if workdir:
        clone = source.set(database=str(Path(workdir) / f"{scratch_name()}.db"))
    try:
        strategy(source, clone, "full" if mode == "full" else "schema")
        if mode == "sample":
            _copy_sample(source, clone, rows)
        if mode != "full":
            _copy_version_table(source, clone)
        yield clone
    finally:
        drop_database(clone)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
