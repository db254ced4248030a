"""MySQL and MariaDB: non-transactional DDL, InnoDB's online-DDL algorithms, SHOW CREATE copies.

MariaDB is MySQL's subclass: it differs in the statement timeout (``max_statement_time``, in seconds),
its client programs and async drivers, and the recursion limit of CTEs.
"""
from __future__ import annotations

import hashlib
import math
import os
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbrunbook.dialects._base import _REGISTRY, Dialect
from dbrunbook.dialects._expressions import Expr
from dbrunbook.dialects._outcomes import LOST_WITH_COLUMN, fails, keeps, loses

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_READ_ONLY = "SET SESSION TRANSACTION READ ONLY"


class MySQL(Dialect):
    """MySQL 8 (and, through :class:`MariaDB`, MariaDB 10.5 and later)."""

    name = "mysql"
    label = "MySQL"
    sqlalchemy_name = "mysql"
    sqlglot = "mysql"
    sql_reader = "sqlglot"
    url_aliases = ()

    render_as_batch = False
    transactional_ddl = False
    offline_sql = True
    max_identifier_length = 64
    ddl_lock = "metadata lock; ALGORITHM=COPY blocks writes for the whole rebuild"
    ddl_lock_model = "online-ddl"
    safe_rewrites = False

    file_based = False
    clone_strategy = "copy"
    maintenance_database = None  # no database at all: URL.set() would keep the old one
    drop_database_suffix = ""
    connect_args = (("connect_timeout", 5),)
    read_only_connect_args = (("init_command", _READ_ONLY),)
    read_only_on_connect = None
    database_env_var = None
    dbapi_modules = ("pymysql", "MySQLdb")
    async_drivers = (("aiomysql", "mysql+aiomysql"), ("asyncmy", "mysql+asyncmy"))

    backup_tool = ("mysqldump", "default-mysql-client")
    restore_tool = "mysql"
    backup_suffix = ".sql"
    password_env = "MYSQL_PWD"
    restore_reads_stdin = True
    restore_replace_options = ()

    # MySQL's max_execution_time bounds SELECT statements only.
    statement_timeout_setting = "max_execution_time"
    statement_timeout_in_seconds = False
    statement_timeout_bounds_ddl = False
    lock_timeout_setting = "lock_wait_timeout"
    read_only_transaction_sql = _READ_ONLY
    sql_mode_sql = "SELECT @@SESSION.sql_mode"
    keepalive_sql = ("SET SESSION wait_timeout = 31536000",)
    enforce_constraints_sql = ()
    fk_checks_off_sql = "SET FOREIGN_KEY_CHECKS = 0"
    fk_checks_on_sql = "SET FOREIGN_KEY_CHECKS = 1"

    begin_write_sql = None
    session_id_sql = "SELECT CONNECTION_ID()"
    blocked_sessions_sql = ("SELECT ID, STATE, LEFT(INFO, 120) FROM information_schema.PROCESSLIST "
                            "WHERE ID <> :pid AND STATE LIKE 'Waiting for%metadata lock'")
    lock_waits_sql = ("SELECT STATE FROM information_schema.PROCESSLIST "
                      "WHERE ID = :pid AND STATE LIKE 'Waiting for%lock'")
    # No metadata-lock holder is named without a plugin: the sessions with an open transaction are the suspects.
    blocking_sessions_sql = ("SELECT t.trx_mysql_thread_id, p.USER, p.HOST, p.COMMAND, LEFT(p.INFO, 120) "
                             "FROM information_schema.INNODB_TRX t "
                             "LEFT JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id "
                             "WHERE t.trx_mysql_thread_id <> :pid")
    #: 1205 ER_LOCK_WAIT_TIMEOUT: lock_wait_timeout (metadata locks) or innodb_lock_wait_timeout (rows) passed.
    lock_timeout_errors = ("1205",)
    advisory_lock_label = "GET_LOCK"
    advisory_lock_sql = "SELECT GET_LOCK(:key, 0)"
    advisory_unlock_sql = "SELECT RELEASE_LOCK(:key)"
    lock_holder_sql = ("SELECT ID, USER, HOST, TIME, INFO FROM information_schema.PROCESSLIST "
                       "WHERE ID = IS_USED_LOCK(:key)")
    # A session's note is seen only while its statement runs: it waits on a gate lock another session holds.
    lock_note_sql = "SELECT GET_LOCK(:gate, :forever) {note}"
    lock_note_waits = True
    gate_lock_sql = "SELECT GET_LOCK(:gate, 0)"
    gate_unlock_sql = "SELECT RELEASE_LOCK(:gate)"
    advisory_lock_name_max = 64  # longer user-level lock names are refused
    statement_paramstyle = "qmark"

    table_sizes_sql = """
        SELECT TABLE_NAME, TABLE_ROWS, DATA_LENGTH + INDEX_LENGTH
        FROM information_schema.TABLES
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'"""
    sequences_sql = None
    # Reflection does not say which index columns are descending (MariaDB 10.8+ stores them so).
    descending_index_columns_sql = """
        SELECT TABLE_NAME, INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = DATABASE() AND COLLATION = 'D'"""
    index_definitions_sql = None
    table_usage_sql = None
    type_aliases = {"BOOL": "BOOLEAN", "TINYINT(1)": "BOOLEAN", "INT": "INTEGER", "NUMERIC": "DECIMAL",
                    "JSON": "LONGTEXT"}
    nulls_sort_first = True
    named_enums = False
    implicit_fk_index = True
    parallel_reflection = True
    varchar_needs_length = True

    volatile_functions = frozenset({"uuid", "rand", "uuid_short", "sysdate"})
    serial_types = ()
    schema_is_database = True
    not_null_uses_check = False
    drop_column_drops_constraints = False

    random_function = "rand"
    checksum_sql = "COALESCE(SUM(CAST(CONV(SUBSTRING(MD5({c}), 1, 15), 16, 10) AS UNSIGNED)), 0)"
    outcomes = {
        "null": loses("non-strict sql_mode: MODIFY replaces NULL with the zero value of the type silently"),
        "required": keeps("existing rows get the zero value of the type (empty string or 0)"),
        "duplicate": fails("ADD UNIQUE fails: duplicate entry"),
        "orphan": fails("ADD FOREIGN KEY fails: a foreign key constraint fails"),
        "check": fails("ADD CHECK fails: check constraint is violated"),
        "too_long": loses("non-strict sql_mode: MODIFY truncates the values silently"),
        "overflow": loses("non-strict sql_mode: MODIFY clamps the values to the range silently"),
        "bad_cast": loses("non-strict sql_mode: MODIFY stores 0 silently"),
        "rounded": loses("MODIFY rounds the values silently"),
        "reformatted": loses("MODIFY keeps the number, not its text: its leading zeros are gone"),
        "enum": loses("non-strict sql_mode: MODIFY stores an empty string silently"),
        "dropped": LOST_WITH_COLUMN,
    }
    strict_outcomes = {
        "null": fails("strict sql_mode: MODIFY fails on NULL values"),
        "too_long": fails("strict sql_mode: MODIFY fails: data too long"),
        "overflow": fails("strict sql_mode: MODIFY fails: out of range value"),
        "bad_cast": fails("strict sql_mode: MODIFY fails: incorrect value"),
        "enum": fails("strict sql_mode: MODIFY fails: data truncated"),
    }
    casts_to_uuid = False  # no CAST to UUID: the text converts on insert
    timestamps_shift_in_days = False

    explain_prefix = "EXPLAIN FORMAT=JSON "
    plan_format = "mysql-json"
    analyze_sql = "ANALYZE TABLE {table}"
    settle_sql = "ANALYZE TABLE {table}"
    online_index_sql = "CREATE INDEX {name} ON {table} ({columns}) ALGORITHM=INPLACE LOCK=NONE"
    health_probes = ("check-table",)
    calibration_fill_sql = ("INSERT INTO calib WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s "
                            "WHERE g < :n) SELECT g, CONCAT(MD5(g), MD5(g)), g FROM s")

    def refine(self, sa_dialect: sa.Dialect) -> Dialect:
        return _REGISTRY[MariaDB.name] if getattr(sa_dialect, "is_mariadb", False) else self

    def refine_url(self, url: URL) -> Dialect:
        # A mysql:// URL says nothing of the server; one that names MariaDB (host, driver) is taken at its word.
        return _REGISTRY[MariaDB.name] if MariaDB.name in str(url) else self

    def statement_compiler(self) -> sa.Dialect:
        from sqlalchemy.dialects.mysql.base import MySQLDialect

        return MySQLDialect(paramstyle=self.statement_paramstyle)

    def _session_scope(self) -> str:
        return "SESSION "

    def lock_timeout(self, ms: float) -> tuple[str, ...]:
        seconds = max(1, math.ceil(ms / 1000))  # whole seconds, and 0 would mean no wait at all
        # lock_wait_timeout bounds metadata locks, innodb_lock_wait_timeout row locks.
        return (f"SET SESSION lock_wait_timeout = {seconds}", f"SET SESSION innodb_lock_wait_timeout = {seconds}")

    def recursion_limit_sql(self, n: int) -> str | None:
        return f"SET SESSION cte_max_recursion_depth = {int(n)}"

    def cancel_query_sql(self, session_id: int) -> str | None:
        return f"KILL QUERY {int(session_id)}"

    def advisory_lock_key(self, scope: str, database: str) -> Any:
        name = f"{scope}:{database}"
        if len(name) <= (self.advisory_lock_name_max or len(name)):
            return name
        return f"{scope}:{hashlib.sha256(database.encode()).hexdigest()[:40]}"

    def connected_identity(self, conn: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> tuple[str | None, bool]:
        name = getattr(conn, "db", None)
        name = os.fsdecode(name) if isinstance(name, bytes) else name
        return (str(name) if name else None), self.params_read_only(cargs, cparams)

    def client_args(self, url: URL) -> list[str]:
        return ["-h", url.host or "localhost", "-P", str(url.port or 3306), "-u", url.username or "root"]

    def dump_command(self, url: URL, path: str) -> list[str] | None:
        return [self.backup_tool[0], *self.client_args(url), "--single-transaction", "--routines", "--triggers",
                "--hex-blob", f"--result-file={path}", url.database or ""]

    def restore_command(self, url: URL, path: str) -> list[str] | None:
        return [self.restore_tool, *self.client_args(url), url.database or ""]

    def estimated_rows(self, conn: sa.Connection, table: sa.Table) -> int | None:
        value = conn.execute(sa.text("SELECT table_rows FROM information_schema.tables "
                                     "WHERE table_schema = DATABASE() AND table_name = :n"), {"n": table.name}).scalar()
        return int(value) if value is not None else None

    def as_text(self, column: Expr) -> Expr:
        return sa.cast(column, sa.CHAR)

    def span_seconds(self, column: Expr) -> Expr | None:
        return sa.func.timestampdiff(sa.literal_column("SECOND"), sa.func.min(column), sa.func.max(column))

    def digest_text(self, column: Expr, k: Expr) -> Expr | None:
        return sa.func.md5(sa.func.concat(column, "-", k), type_=sa.String)

    def fresh_bytes(self, column: Expr, k: Expr) -> Expr | None:
        return sa.func.unhex(sa.func.md5(sa.func.concat(sa.func.hex(column), "-", k)))

    def shift_time(self, column: Expr, steps: Expr, kind: str) -> Expr:
        if kind == "time":
            return sa.func.addtime(column, sa.func.sec_to_time(steps))
        unit = "DAY" if kind == "date" else "SECOND"
        return sa.func.timestampadd(sa.literal_column(unit), steps, column)


class MariaDB(MySQL):
    """MariaDB 10.5 and later."""

    name = "mariadb"
    label = "MariaDB"
    # Any statement, in seconds (MySQL's max_execution_time bounds SELECT only).
    statement_timeout_setting = "max_statement_time"
    statement_timeout_in_seconds = True
    statement_timeout_bounds_ddl = True
    async_drivers = (("aiomysql", "mariadb+aiomysql"), ("asyncmy", "mariadb+asyncmy"))
    backup_tool = ("mariadb-dump", "mariadb-client")
    restore_tool = "mariadb"

    def recursion_limit_sql(self, n: int) -> str | None:
        return f"SET SESSION max_recursive_iterations = {int(n)}"
