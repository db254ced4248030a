"""The target's state, to prove a run left it alone, and the scratch databases a run may leave behind.

:func:`target_state` reads what a write would move: every table's reflected schema, its row count and
an order-independent checksum of its data, ``alembic_version``, and catalog state no reflection shows
(PostgreSQL sequences and enum labels, MariaDB auto-increment counters and column CHECKs, SQLite's
schema table and the file's own bytes). It is plain SQLAlchemy, so it does not trust the library it checks.
"""
from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from helpers.databases import SERVERS

#: Names of databases made by test fixtures and benchmarks beside a run, never by the run itself.
NOT_SCRATCH = ("dbrunbook_test_", "dbrunbook_bench_")


def _canon(value: Any) -> Any:
    """A JSON-able form of a value that compares equal exactly when the values do."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "b:" + bytes(value).hex()
    if isinstance(value, float):
        return "f:" + repr(value)
    if isinstance(value, decimal.Decimal):
        return "d:" + str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time, dt.timedelta)):
        return "t:" + str(value)
    if isinstance(value, (dict, list)):
        return "j:" + json.dumps(value, sort_keys=True, default=str)
    return value if value is None or isinstance(value, (int, str, bool)) else f"{type(value).__name__}:{value}"


def _sorted(items: Iterable[Mapping[str, object]]) -> list[str]:
    return sorted(json.dumps(i, sort_keys=True, default=str) for i in items)


def _table_state(conn: sa.Connection, inspector: sa.Inspector, name: str) -> dict[str, Any]:
    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    rows = sorted(json.dumps([_canon(v) for v in row]) for row in conn.execute(sa.select(table)))
    try:
        checks = _sorted(inspector.get_check_constraints(name))
    except NotImplementedError:
        checks = []
    return {
        "columns": [json.dumps(c, sort_keys=True, default=str) for c in inspector.get_columns(name)],
        "primary_key": json.dumps(inspector.get_pk_constraint(name), sort_keys=True, default=str),
        "foreign_keys": _sorted(inspector.get_foreign_keys(name)),
        "indexes": _sorted(inspector.get_indexes(name)),
        "unique": _sorted(inspector.get_unique_constraints(name)),
        "checks": checks,
        "rows": len(rows),
        "checksum": hashlib.sha256("\n".join(rows).encode()).hexdigest(),
    }


#: Catalog state no reflection shows but a write would move: sequences, counters, the file itself.
_CATALOG = {
    "postgresql": ["SELECT schemaname, sequencename, last_value FROM pg_sequences ORDER BY 1, 2",
                   "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid "
                   "ORDER BY 1, e.enumsortorder"],
    "mariadb": ["SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY 1",
                # column-level CHECKs, which SQLAlchemy's reflection misses on MariaDB
                "SELECT TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE() ORDER BY 1, 2"],
    "sqlite": ["SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name", "PRAGMA user_version"],
}
_CATALOG["mysql"] = _CATALOG["mariadb"]


def target_state(url: str) -> dict[str, Any]:
    """Schema, row counts, an order-independent checksum of every table's data, and alembic_version."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            names = sorted(inspector.get_table_names())
            state: dict[str, Any] = {
                "tables": {name: _table_state(conn, inspector, name) for name in names},
                "views": sorted(inspector.get_view_names()),
                "alembic_version": (sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
                                    if "alembic_version" in names else None),
                "catalog": [[list(map(_canon, r)) for r in conn.execute(sa.text(sql))]
                            for sql in _CATALOG[engine.dialect.name]],
            }
    finally:
        engine.dispose()
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        state["file_sha256"] = hashlib.sha256(Path(engine.url.database).read_bytes()).hexdigest()
    return state


def state_diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Each way ``after`` differs from ``before``, one line each."""
    diffs = []
    for name in sorted(set(before["tables"]) | set(after["tables"])):
        old, new = before["tables"].get(name), after["tables"].get(name)
        if old is None or new is None:
            diffs.append(f"table {name} {'appeared' if old is None else 'disappeared'}")
            continue
        for key in old:
            if old[key] != new.get(key):
                detail = f": {old[key]} -> {new.get(key)}" if key == "rows" else ""
                diffs.append(f"table {name}: {key} changed{detail}")
    for key in ("views", "alembic_version", "catalog", "file_sha256"):
        if before.get(key) != after.get(key):
            diffs.append(f"{key} changed: {before.get(key)} -> {after.get(key)}"[:500])
    return diffs


_LIST_SQL = {"postgresql": "SELECT datname FROM pg_database", "mariadb": "SHOW DATABASES"}
#: Databases someone is connected to right now: another process's run, not a leftover.
_BUSY_SQL = {
    "postgresql": "SELECT DISTINCT datname FROM pg_stat_activity WHERE datname IS NOT NULL",
    "mariadb": "SELECT DISTINCT db FROM information_schema.PROCESSLIST WHERE db IS NOT NULL",
}


def _server_names(dialect: str, sql: str) -> set[str]:
    engine = sa.create_engine(SERVERS[dialect])
    try:
        with engine.connect() as conn:
            return {str(r[0]) for r in conn.execute(sa.text(sql))}
    finally:
        engine.dispose()


def scratch_databases(dialect: str, beside: Path | None = None, tmpdir: Path | None = None) -> set[str]:
    """Scratch databases now present, by name: ``dbrunbook_*`` on the server of ``dialect``.

    For SQLite: ``dbrunbook_*`` files beside the target (``beside``) and anywhere under the run's temp folder.
    """
    if dialect == "sqlite":
        found = set(beside.glob("dbrunbook_*")) if beside else set()
        found |= {p for p in tmpdir.rglob("dbrunbook_*") if p.is_file()} if tmpdir else set()
        return {str(p) for p in found}
    return {name for name in _server_names(dialect, _LIST_SQL[dialect])
            if name.startswith("dbrunbook_") and not name.startswith(NOT_SCRATCH)}


def left_behind(dialect: str, before: set[str], beside: Path | None = None, tmpdir: Path | None = None,
                wait: float = 30.0) -> set[str]:
    """Scratch databases that appeared since ``before`` and stay; others' live runs may come and go."""
    deadline = time.monotonic() + wait
    while True:
        new = scratch_databases(dialect, beside, tmpdir) - before
        if new and dialect != "sqlite":
            new -= _server_names(dialect, _BUSY_SQL[dialect])
        if not new or time.monotonic() >= deadline:
            return new
        time.sleep(1)
