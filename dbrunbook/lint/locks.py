"""Lock analysis: what each migration statement locks, what that blocks, and for how long.

For every statement: the lock per dialect (PostgreSQL lock mode; MariaDB/MySQL online-DDL
algorithm and lock; SQLite's whole-database write lock), whether it rewrites or scans the
table, and an estimate of how long writes are blocked: the bytes it must rewrite or scan
(from the table's size in the schema snapshot) divided by a throughput measured on a scratch
database of the target's server (:func:`measure_throughput`).
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dbrunbook import dialects
from dbrunbook.core.db import create_database, drop_database, make_engine, scratch_name, with_database
from dbrunbook.core.evidence import LockEstimate
from dbrunbook.core.secrets import parse_url
from dbrunbook.lint.runner import DEFAULT_PG_VERSION
from dbrunbook.sql.model import Action, Migration
from dbrunbook.sql.types import binary_compatible

#: Lock modes (PostgreSQL) that make writers wait; reads wait only for ACCESS EXCLUSIVE.
_PG_BLOCKS = {"ACCESS EXCLUSIVE": "reads and writes", "EXCLUSIVE": "writes", "SHARE ROW EXCLUSIVE": "writes",
              "SHARE": "writes", "SHARE UPDATE EXCLUSIVE": "other DDL and VACUUM only",
              "ROW EXCLUSIVE": "conflicting row writes"}
#: Rewriting reads and writes every byte (and rebuilds indexes); a scan only reads.
_REWRITE_FACTOR, _SCAN_FACTOR = 2.0, 1.0
#: Used when no throughput was measured, flagged as assumed in the result.
ASSUMED_THROUGHPUT = 50_000_000.0


@dataclass
class LockInfo:
    """The lock one action takes and what it costs."""

    lock: str
    blocks: str
    rewrite: bool = False
    scan: bool = False
    algorithm: str = ""

    @property
    def blocks_writes(self) -> bool:
        return "writes" in self.blocks and "no writes" not in self.blocks


def _pg(action: Action, migration: Migration) -> LockInfo:
    d, kind = action.details, action.kind
    if kind == "create_index":
        return LockInfo("SHARE UPDATE EXCLUSIVE", _PG_BLOCKS["SHARE UPDATE EXCLUSIVE"], scan=True) \
            if d.get("concurrently") else LockInfo("SHARE", "writes", scan=True)
    if kind == "drop_index" and d.get("concurrently"):
        return LockInfo("SHARE UPDATE EXCLUSIVE", _PG_BLOCKS["SHARE UPDATE EXCLUSIVE"])
    if kind == "validate_constraint":
        return LockInfo("SHARE UPDATE EXCLUSIVE", _PG_BLOCKS["SHARE UPDATE EXCLUSIVE"], scan=True)
    if kind == "add_constraint":
        ctype, not_valid = d.get("type"), d.get("not_valid") or d.get("using_index")
        mode = "SHARE ROW EXCLUSIVE" if ctype == "foreign_key" else "ACCESS EXCLUSIVE"
        return LockInfo(mode, _PG_BLOCKS[mode], scan=not not_valid)
    if kind == "add_column":
        # Before PostgreSQL 11 any default but NULL is written into every row; since, only a volatile one is.
        old_server = (migration.server_version or DEFAULT_PG_VERSION) < 11
        default = d.get("default")
        rewrite = bool(d.get("volatile_default")) or d.get("generated") == "stored" or (
            old_server and default is not None and str(default).upper() != "NULL")
        return LockInfo("ACCESS EXCLUSIVE", _PG_BLOCKS["ACCESS EXCLUSIVE"], rewrite=rewrite)
    if kind == "reindex":
        mode = "SHARE UPDATE EXCLUSIVE" if d.get("concurrently") else "SHARE"
        return LockInfo(mode, _PG_BLOCKS.get(mode, "writes"), scan=True)
    if kind in ("vacuum", "cluster"):
        if kind == "cluster" or d.get("full"):
            return LockInfo("ACCESS EXCLUSIVE", _PG_BLOCKS["ACCESS EXCLUSIVE"], rewrite=True)
        return LockInfo("SHARE UPDATE EXCLUSIVE", _PG_BLOCKS["SHARE UPDATE EXCLUSIVE"], scan=True)
    if kind == "detach_partition" and d.get("concurrently"):
        return LockInfo("SHARE UPDATE EXCLUSIVE", _PG_BLOCKS["SHARE UPDATE EXCLUSIVE"])
    if kind == "alter_type":
        old = migration.known_columns.get((action.table, action.column), {}).get("type", "")
        return LockInfo("ACCESS EXCLUSIVE", _PG_BLOCKS["ACCESS EXCLUSIVE"],
                        rewrite=not (old and binary_compatible(old, d.get("type", ""))))
    if kind == "set_not_null":
        return LockInfo("ACCESS EXCLUSIVE", _PG_BLOCKS["ACCESS EXCLUSIVE"], scan=True)
    if kind == "dml":
        return LockInfo("ROW EXCLUSIVE", _PG_BLOCKS["ROW EXCLUSIVE"], scan=action.table != "alembic_version")
    if kind in ("create_table", "set", "begin", "commit", "create_type", "other", "rename_enum_value",
                "rename_schema", "create_domain", "drop_database", "add_enum_value"):
        return LockInfo("none", "nothing")
    return LockInfo("ACCESS EXCLUSIVE", _PG_BLOCKS["ACCESS EXCLUSIVE"])


def mysql_algorithm(action: Action, migration: Migration) -> str:
    """The online-DDL algorithm MariaDB needs for ``action``: INSTANT, INPLACE, COPY, or '' (not DDL)."""
    kind, d = action.kind, action.details
    if kind == "modify_column":
        # CHANGE old new ...: the old definition is the renamed column's (a rename alone is INSTANT).
        old = migration.known_columns.get((action.table, d.get("renamed_from") or action.column))
        if old is None:
            return "COPY"
        if old.get("type") == d.get("type"):
            return "INPLACE" if old.get("not_null") != d.get("not_null") else "INSTANT"
        return "INSTANT" if binary_compatible(old.get("type", ""), d.get("type", "")) else "COPY"
    if kind == "add_constraint":
        return {"foreign_key": "COPY", "check": "COPY"}.get(d.get("type", ""), "INPLACE")
    if kind == "add_column":
        return "COPY" if d.get("volatile_default") else "INSTANT"
    return _MYSQL_ALGORITHMS.get(kind, "")


_MYSQL_ALGORITHMS = {"drop_column": "INSTANT", "rename_column": "INSTANT", "rename_table": "INSTANT",
                     "set_default": "INSTANT", "drop_default": "INSTANT", "create_index": "INPLACE",
                     "drop_index": "INPLACE", "drop_constraint": "INPLACE", "alter_type": "COPY",
                     "set_not_null": "INPLACE", "drop_not_null": "INPLACE"}
_MYSQL_LOCKS = {"INSTANT": LockInfo("metadata lock (brief)", "nothing after the brief metadata lock"),
                "INPLACE": LockInfo("LOCK=NONE; exclusive metadata lock at start and end",
                                    "no writes after the brief metadata lock", scan=True),
                "COPY": LockInfo("LOCK=SHARED for the table copy", "writes", rewrite=True),
                "": LockInfo("metadata lock", "nothing after the brief metadata lock")}


def _mysql(action: Action, migration: Migration) -> LockInfo:
    algorithm = action.details.get("algorithm") or mysql_algorithm(action, migration)
    if action.kind in ("dml",):
        return LockInfo("row locks", "conflicting row writes", scan=action.table != "alembic_version")
    info = _MYSQL_LOCKS.get(algorithm, _MYSQL_LOCKS[""])
    return LockInfo(info.lock, info.blocks, info.rewrite, info.scan, algorithm)


def _sqlite(action: Action, migration: Migration) -> LockInfo:
    if action.kind in ("set", "begin", "commit", "other"):
        return LockInfo("none", "nothing")
    copy = action.kind == "dml" and action.table.startswith("_alembic_tmp_")
    return LockInfo("database write lock", "writes to the whole database", rewrite=copy,
                    scan=action.kind == "create_index")


#: Each lock model a dialect can name as its ``ddl_lock_model``.
_MODELS: dict[str, Callable[[Action, Migration], LockInfo]] = {
    "lock-modes": _pg, "online-ddl": _mysql, "database-lock": _sqlite}


#: One statement's lock and its estimated write-blocking time: the record stage 03 keeps of it.
LockRow = LockEstimate


def _sized_table(action: Action) -> str:
    return action.table.removeprefix("_alembic_tmp_")


def analyse(migration: Migration, sizes: dict[str, tuple[int | None, int | None]],
            throughput: float | None = None) -> list[LockRow]:
    """One row per statement: its worst lock and the seconds writes are blocked."""
    speed = throughput or ASSUMED_THROUGHPUT
    model = _MODELS[dialects.facts(migration.dialect).ddl_lock_model]
    rows = []
    for stmt in migration.statements:
        # A column's old definition is the one it has just before this statement (it may be new in this migration).
        infos = [(a, model(a, migration.as_of(stmt) if a.kind in ("alter_type", "modify_column") else migration))
                 for a in stmt.actions]
        action, info = max(infos, key=lambda p: (p[1].blocks_writes, p[1].rewrite, p[1].scan))
        table = _sized_table(action)
        nrows, nbytes = sizes.get(table, (None, None))
        factor = _REWRITE_FACTOR if info.rewrite else _SCAN_FACTOR if info.scan else 0.0
        seconds = factor * (nbytes or 0) / speed if info.blocks_writes else 0.0
        rows.append(LockRow(stmt.index, stmt.text[:200], table, action.kind, info.lock, info.blocks,
                            info.algorithm, info.rewrite, info.scan, nrows, nbytes, round(seconds, 6)))
    return rows


def table_sizes(url: str | URL) -> dict[str, tuple[int | None, int | None]]:
    """Rows and bytes of every table, from the schema snapshot's catalog queries (read-only)."""
    from dbrunbook.schema.snapshot import snapshot

    engine = make_engine(url)
    try:
        snap = snapshot(engine)
    finally:
        engine.dispose()
    return {name: (t.rows, t.bytes) for name, t in snap.tables.items()}


def measure_throughput(url: str | URL, rows: int = 50_000) -> float:
    """Bytes per second the server rewrites, timed on a scratch database (the target is untouched)."""
    engine = make_engine(url)
    try:
        # On a connection: MariaDB behind a mysql:// URL is told apart only once the server has answered
        # (its recursion limit is another variable; MySQL's is unknown to it).
        with engine.connect() as conn:
            dialect = dialects.of_engine(conn)
    finally:
        engine.dispose()
    with tempfile.TemporaryDirectory(prefix="dbrunbook-calib-") as tmp:
        # A file database is timed in a file of its own, not beside the target.
        scratch = parse_url(url).set(database=str(Path(tmp) / "calib.db"), query={}) if dialect.file_based \
            else with_database(url, scratch_name("dbrunbook_calib"))
        if not dialect.file_based:
            create_database(scratch)
        calib = make_engine(scratch)
        try:
            with calib.begin() as conn:
                conn.execute(sa.text("CREATE TABLE calib (id INTEGER PRIMARY KEY, payload VARCHAR(80), n INTEGER)"))
                # The fill query's recursion would hit the session's limit: raised on the scratch connection only.
                limit = dialect.recursion_limit_sql(int(rows) + 1)
                if limit:
                    conn.execute(sa.text(limit))
                conn.execute(sa.text(dialect.calibration_fill_sql), {"n": rows})
                nbytes = conn.execute(sa.text("SELECT SUM(LENGTH(payload)) + 16 * COUNT(*) FROM calib")).scalar_one()
            with calib.begin() as conn:
                started = time.perf_counter()
                conn.execute(sa.text("CREATE TABLE calib_copy AS SELECT * FROM calib"))
                conn.execute(sa.text("CREATE INDEX ix_calib_copy ON calib_copy (payload)"))
                elapsed = time.perf_counter() - started
        finally:
            calib.dispose()
            if not dialect.file_based:
                drop_database(scratch)
    return float(nbytes) * _REWRITE_FACTOR / max(elapsed, 1e-6)


def chart(rows: list[LockRow]) -> Any:
    """A horizontal bar chart of estimated write-blocking seconds per statement."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 0.4 * max(len(rows), 3) + 1))
    labels = [f"#{r.statement} {r.action} {r.table}"[:50] for r in rows]
    ax.barh(labels, [r.blocked_seconds for r in rows], color=["#c0392b" if r.rewrite else "#e67e22" if r.scan
                                                               else "#95a5a6" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("estimated seconds writes are blocked")
    ax.set_title("Lock impact per statement")
    fig.tight_layout()
    return fig
