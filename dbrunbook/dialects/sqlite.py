"""SQLite: a file, one write lock for the whole database, batch migrations that recreate tables."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from dbrunbook.dialects._base import Dialect
from dbrunbook.dialects._expressions import Expr, round_text
from dbrunbook.dialects._outcomes import LOST_WITH_COLUMN, fails, keeps, loses

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: The aggregate behind :attr:`SQLite.checksum_sql`, registered on each connection that computes one.
CHECKSUM_AGGREGATE = "dbrunbook_checksum"
#: Most terms SQLite takes in one compound SELECT.
_COMPOUND_LIMIT = 400
#: dbstat (when compiled in) sums the pages of each table and its indexes.
_BYTES_SQL = """
    SELECT m.tbl_name, SUM(d.pgsize) FROM dbstat d JOIN sqlite_master m ON m.name = d.name
    GROUP BY m.tbl_name"""


def file_key(database: str | bytes | os.PathLike[str] | None, uri: bool = False) -> str | None:
    """The resolved path of a database file (None for an in-memory database)."""
    if database is None:
        return None
    path = os.fsdecode(database)
    if uri or path.startswith("file:"):
        parts = urlsplit(path)
        if parts.scheme == "file":
            if parse_qs(parts.query).get("mode") == ["memory"]:
                return None
            path = parts.path
    if path in ("", ":memory:"):
        return None
    return str(Path(path).resolve())


def opened_read_only(database: Any, uri: bool) -> bool:
    """Whether a database is opened read-only (``file:...?mode=ro``)."""
    text = os.fsdecode(database) if database is not None else ""
    return (uri or text.startswith("file:")) and parse_qs(urlsplit(text).query).get("mode") == ["ro"]


class _Checksum:
    """SQLite has no MD5: the checksum's sum, computed in the driver."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: Any) -> None:
        if value is None:
            return
        raw = value if isinstance(value, bytes) else str(value).encode()
        self.total += int(hashlib.md5(raw).hexdigest()[:15], 16)

    def finalize(self) -> str:
        # As text: the sum can outgrow SQLite's 64-bit integers.
        return str(self.total)


class SQLite(Dialect):
    """SQLite 3.35 and later."""

    name = "sqlite"
    label = "SQLite"
    sqlalchemy_name = "sqlite"
    sqlglot = "sqlite"
    sql_reader = "sqlglot"
    url_aliases = ()

    render_as_batch = True
    transactional_ddl = True
    offline_sql = False
    max_identifier_length = 10_000
    ddl_lock = "whole-database write lock for the length of the transaction"
    ddl_lock_model = "database-lock"
    safe_rewrites = False

    file_based = True
    clone_strategy = "file"
    maintenance_database = None
    drop_database_suffix = ""
    connect_args = ()
    read_only_connect_args = ()  # no connect parameter says it: see read_only_on_connect
    read_only_on_connect = "PRAGMA query_only = ON"
    database_env_var = None
    dbapi_modules = ("sqlite3", "sqlite3.dbapi2")
    async_drivers = (("aiosqlite", "sqlite+aiosqlite"),)

    backup_tool = ("sqlite3", "sqlite3")
    restore_tool = "sqlite3"
    backup_suffix = ".sqlite3"
    password_env = None
    restore_reads_stdin = False
    restore_replace_options = ()

    statement_timeout_setting = None
    statement_timeout_in_seconds = False
    statement_timeout_bounds_ddl = False
    lock_timeout_setting = None  # busy_timeout is a PRAGMA, not a setting a migration SETs
    read_only_transaction_sql = "PRAGMA query_only = ON"
    sql_mode_sql = None
    keepalive_sql = ()
    # Foreign keys are enforced only when asked, per connection.
    enforce_constraints_sql = ("PRAGMA foreign_keys = ON",)
    fk_checks_off_sql = None
    fk_checks_on_sql = None

    # pysqlite does not BEGIN before DDL; IMMEDIATE takes the write lock at once.
    begin_write_sql = "BEGIN IMMEDIATE"
    session_id_sql = None
    blocked_sessions_sql = None
    lock_waits_sql = None
    blocking_sessions_sql = None
    lock_timeout_errors = ("5",)  # SQLITE_BUSY: the busy timeout passed while another connection held the lock
    advisory_lock_label = "flock"  # a lock file beside the database
    advisory_lock_sql = None
    advisory_unlock_sql = None
    lock_holder_sql = None
    lock_note_sql = None
    lock_note_waits = False
    gate_lock_sql = None
    gate_unlock_sql = None
    advisory_lock_name_max = None
    statement_paramstyle = "qmark"

    table_sizes_sql = None  # no row estimate is kept: see table_sizes()
    sequences_sql = None
    descending_index_columns_sql = None
    # Reflection skips expression indexes: their CREATE INDEX statements are read instead.
    index_definitions_sql = "SELECT tbl_name, name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    table_usage_sql = None
    type_aliases = {"INT": "INTEGER", "BOOL": "BOOLEAN"}
    nulls_sort_first = True
    named_enums = False
    implicit_fk_index = False
    parallel_reflection = False
    varchar_needs_length = False

    volatile_functions = frozenset({"random", "randomblob"})
    serial_types = ()
    schema_is_database = False
    not_null_uses_check = False
    drop_column_drops_constraints = False

    random_function = "random"
    checksum_sql = f"COALESCE({CHECKSUM_AGGREGATE}({{c}}), '0')"
    outcomes = {
        "null": fails("the batch copy fails: NOT NULL constraint failed"),
        "required": fails("ADD COLUMN fails: cannot add a NOT NULL column with default value NULL"),
        "duplicate": fails("the batch copy fails: UNIQUE constraint failed"),
        "orphan": keeps("the orphans stay: SQLite checks foreign keys only with PRAGMA foreign_keys=ON"),
        "check": fails("the batch copy fails: CHECK constraint failed"),
        "too_long": keeps("the values stay whole: SQLite does not enforce VARCHAR lengths"),
        "overflow": loses("the batch copy CASTs and clamps the values silently"),
        "bad_cast": loses("the batch copy CASTs the values to 0 silently"),
        "rounded": loses("the batch copy CASTs and cuts the fraction silently"),
        "reformatted": loses("the batch copy CASTs to the number: its leading zeros are gone"),
        "enum": keeps("the values stay: SQLite has no enum type and SQLAlchemy adds no CHECK by default"),
        "dropped": LOST_WITH_COLUMN,
    }
    strict_outcomes = {}
    casts_to_uuid = False
    timestamps_shift_in_days = True

    explain_prefix = "EXPLAIN QUERY PLAN "
    plan_format = "sqlite-query-plan"
    analyze_sql = "ANALYZE {table}"
    settle_sql = "ANALYZE {table}"
    online_index_sql = "CREATE INDEX {name} ON {table} ({columns})"  # none blocks less: one writer anyway
    health_probes = ("foreign-key-check", "quick-check")
    calibration_fill_sql = ("INSERT INTO calib WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
                            "WHERE g < :n) SELECT g, hex(randomblob(32)), g FROM s")

    def statement_compiler(self) -> sa.Dialect:
        from sqlalchemy.dialects.sqlite.base import SQLiteDialect

        return SQLiteDialect(paramstyle=self.statement_paramstyle)

    def lock_timeout(self, ms: float) -> tuple[str, ...]:
        return (f"PRAGMA busy_timeout = {int(ms)}",)

    def database_key(self, url: URL) -> str | None:
        return file_key(url.database, uri=bool(url.query.get("uri")))

    def params_key(self, cargs: tuple[Any, ...] | list[Any], cparams: dict[str, Any]) -> str | None:
        return file_key(cargs[0] if cargs else cparams.get("database"), uri=bool(cparams.get("uri")))

    def params_read_only(self, cargs: tuple[Any, ...] | list[Any], cparams: dict[str, Any]) -> bool:
        return opened_read_only(cargs[0] if cargs else cparams.get("database"), bool(cparams.get("uri")))

    def table_sizes(self, conn: sa.Connection, tables: list[str]) -> dict[str, tuple[int | None, int | None]]:
        rows: dict[str, int] = {}
        for start in range(0, len(tables), _COMPOUND_LIMIT):
            chunk = tables[start:start + _COMPOUND_LIMIT]
            query = sa.union_all(*[sa.select(sa.literal(t), sa.func.count()).select_from(sa.table(t)) for t in chunk])
            rows.update({name: int(n) for name, n in conn.execute(query)})
        try:
            nbytes = {name: int(n) for name, n in conn.execute(sa.text(_BYTES_SQL))}
        except sa.exc.OperationalError:  # SQLite built without dbstat: sizes unknown
            conn.rollback()
            nbytes = {}
        return {t: (rows.get(t), nbytes.get(t)) for t in tables}

    def prepare_checksum(self, conn: sa.Connection) -> None:
        raw = conn.connection.driver_connection
        raw.create_aggregate(CHECKSUM_AGGREGATE, 1, _Checksum)  # type: ignore[union-attr]

    def chars(self, column: Expr) -> Expr:
        return sa.func.length(column)

    def octets(self, column: Expr) -> Expr:
        # octet_length() arrived in 3.43: the length of the value as a blob is its bytes.
        return sa.func.length(sa.cast(column, sa.LargeBinary))

    def span_seconds(self, column: Expr) -> Expr | None:
        return (sa.func.julianday(sa.func.max(column)) - sa.func.julianday(sa.func.min(column))) * 86400

    def fresh_bytes(self, column: Expr, k: Expr) -> Expr | None:
        # No MD5: a prefix keeps the values apart.
        return sa.cast(sa.literal("r") + round_text(k) + "-" + sa.func.hex(column), sa.LargeBinary)

    def shift_time(self, column: Expr, steps: Expr, kind: str) -> Expr:
        if kind == "time":
            return sa.func.time(column, sa.literal("+") + round_text(steps) + " seconds", type_=sa.String)
        moved = sa.func.date(column, sa.literal("+") + round_text(steps) + " days", type_=sa.String)
        # The date part moves; the time text (fractions, 'T' or not) stays exactly as it was.
        return moved if kind == "date" else moved + sa.func.substr(column, 11, type_=sa.String)
