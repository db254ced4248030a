"""PostgreSQL: transactional DDL, table lock modes, template copies, pglast reads its SQL."""
from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbrunbook.dialects._base import Dialect
from dbrunbook.dialects._expressions import Expr, round_text
from dbrunbook.dialects._outcomes import LOST_WITH_COLUMN, fails, loses

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


#: Whether the column ``:column`` of ``:table`` converts to the type ``:type`` by an implicit or assignment cast.
_AUTOMATIC_CAST = """
    SELECT CASE
             WHEN s.oid IS NULL OR t.oid IS NULL OR 'A' IN (s.typcategory, t.typcategory)
                  OR 'd' IN (s.typtype, t.typtype) THEN NULL
             WHEN s.oid = t.oid OR t.typcategory = 'S' THEN true
             ELSE EXISTS (SELECT 1 FROM pg_cast c WHERE c.castsource = s.oid AND c.casttarget = t.oid
                          AND c.castcontext IN ('i', 'a'))
           END
    FROM (SELECT 1) AS one
    LEFT JOIN pg_type s ON s.oid = (SELECT a.atttypid FROM pg_attribute a
                                    WHERE a.attrelid = to_regclass(:table) AND a.attname = :column
                                      AND NOT a.attisdropped)
    LEFT JOIN pg_type t ON t.oid = to_regtype(:type)"""


class PostgreSQL(Dialect):
    """PostgreSQL 12 and later."""

    name = "postgresql"
    label = "PostgreSQL"
    sqlalchemy_name = "postgresql"
    sqlglot = "postgres"
    sql_reader = "pglast"
    url_aliases = ("postgres",)

    render_as_batch = False
    transactional_ddl = True
    offline_sql = True
    max_identifier_length = 63
    ddl_lock = "ACCESS EXCLUSIVE on the table for most ALTER TABLE forms"
    ddl_lock_model = "lock-modes"
    safe_rewrites = True

    file_based = False
    clone_strategy = "template"
    maintenance_database = "postgres"
    drop_database_suffix = " WITH (FORCE)"
    connect_args = (("connect_timeout", 5),)
    read_only_connect_args = (("options", "-c default_transaction_read_only=on"),)
    read_only_on_connect = None
    database_env_var = "PGDATABASE"
    dbapi_modules = ("psycopg", "psycopg2")
    async_drivers = (("psycopg", "postgresql+psycopg"), ("asyncpg", "postgresql+asyncpg"))

    backup_tool = ("pg_dump", "postgresql-client")
    restore_tool = "pg_restore"
    backup_suffix = ".dump"
    password_env = "PGPASSWORD"
    restore_reads_stdin = False
    restore_replace_options = ("--clean", "--if-exists")

    statement_timeout_setting = "statement_timeout"
    statement_timeout_in_seconds = False
    statement_timeout_bounds_ddl = True
    lock_timeout_setting = "lock_timeout"
    read_only_transaction_sql = "SET TRANSACTION READ ONLY"
    sql_mode_sql = None
    keepalive_sql = ("SET idle_session_timeout = 0", "SET idle_in_transaction_session_timeout = 0")
    enforce_constraints_sql = ()
    fk_checks_off_sql = None
    fk_checks_on_sql = None

    begin_write_sql = None
    session_id_sql = "SELECT pg_backend_pid()"
    blocked_sessions_sql = (
        "SELECT a.pid, a.wait_event_type || ':' || a.wait_event, LEFT(a.query, 120) "
        "FROM pg_stat_activity a WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(a.pid))")
    lock_waits_sql = (
        "SELECT l.locktype || COALESCE(' ' || CAST(CAST(l.relation AS regclass) AS text), '') || ' ' || l.mode "
        "FROM pg_locks l WHERE l.pid = :pid AND NOT l.granted")
    blocking_sessions_sql = (
        "SELECT a.pid, a.usename, a.application_name, a.state, LEFT(a.query, 120) FROM pg_stat_activity a "
        "WHERE a.pid = ANY(pg_blocking_pids(CAST(:pid AS integer)))")
    #: 55P03 lock_not_available: lock_timeout passed (a statement_timeout, 57014, is not retried).
    lock_timeout_errors = ("55P03",)
    advisory_lock_label = "pg_try_advisory_lock"
    advisory_lock_sql = "SELECT pg_try_advisory_lock(:key)"
    advisory_unlock_sql = "SELECT pg_advisory_unlock(:key)"
    lock_holder_sql = (
        "SELECT a.pid, a.usename, COALESCE(host(a.client_addr), 'local socket'), "
        "EXTRACT(EPOCH FROM now() - a.state_change), a.query "
        "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND ((CAST(l.classid AS bigint) << 32) | CAST(l.objid AS bigint)) = :key")
    lock_note_sql = "SELECT set_config('application_name', :app, false) {note}"
    lock_note_waits = False
    gate_lock_sql = None
    gate_unlock_sql = None
    advisory_lock_name_max = None
    statement_paramstyle = "numeric_dollar"

    # Analysed tables: page counts from pg_class (no file access); others: measured exactly.
    table_sizes_sql = """
        SELECT c.relname,
               CASE WHEN c.reltuples < 0 THEN pg_stat_get_live_tuples(c.oid) ELSE c.reltuples::bigint END,
               CASE WHEN c.reltuples < 0 THEN pg_total_relation_size(c.oid)
                    ELSE (c.relpages + COALESCE(t.relpages, 0) + COALESCE(i.pages, 0))::bigint
                         * current_setting('block_size')::bigint END
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_class t ON t.oid = c.reltoastrelid
        LEFT JOIN (SELECT x.indrelid, SUM(ic.relpages) AS pages
                   FROM pg_index x JOIN pg_class ic ON ic.oid = x.indexrelid GROUP BY x.indrelid) i
               ON i.indrelid = c.oid
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"""
    # Serial and identity sequences belong to their column: only free-standing ones are listed.
    sequences_sql = """
        SELECT c.relname, s.seqstart, s.seqincrement
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_sequence s ON s.seqrelid = c.oid
        WHERE n.nspname = current_schema() AND c.relkind = 'S'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype IN ('a', 'i'))"""
    descending_index_columns_sql = None
    index_definitions_sql = None
    table_usage_sql = """
        SELECT relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0), n_live_tup
        FROM pg_stat_user_tables WHERE schemaname = current_schema()"""
    type_aliases = {"FLOAT": "DOUBLE PRECISION", "FLOAT(53)": "DOUBLE PRECISION", "DECIMAL": "NUMERIC",
                    "INT": "INTEGER", "TIMESTAMP": "TIMESTAMP WITHOUT TIME ZONE",
                    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP WITH TIME ZONE", "BOOL": "BOOLEAN"}
    nulls_sort_first = False
    named_enums = True
    implicit_fk_index = False
    parallel_reflection = True
    varchar_needs_length = False

    volatile_functions = frozenset({
        "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "uuidv4", "uuidv7",
        "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4", "gen_random_bytes", "nextval", "setval",
        "currval", "lastval", "txid_current", "pg_current_xact_id", "uuid"})
    serial_types = ("serial", "bigserial", "smallserial")
    schema_is_database = False
    not_null_uses_check = True
    drop_column_drops_constraints = True

    random_function = "random"
    checksum_sql = "COALESCE(SUM(('x' || SUBSTR(MD5(CAST({c} AS TEXT)), 1, 15))::BIT(60)::BIGINT), 0)"
    outcomes = {
        "null": fails("ALTER COLUMN SET NOT NULL fails"),
        "required": fails("ADD COLUMN NOT NULL without a default fails on a non-empty table"),
        "duplicate": fails("creating the unique index fails"),
        "orphan": fails("ADD FOREIGN KEY fails while validating existing rows"),
        "check": fails("ADD CHECK fails while validating existing rows"),
        "too_long": fails("ALTER TYPE fails: value too long for type character varying"),
        "overflow": fails("ALTER TYPE fails: value out of range"),
        "bad_cast": fails("ALTER TYPE fails: invalid input syntax"),
        "rounded": loses("ALTER TYPE rounds the values silently"),
        "reformatted": loses("ALTER TYPE keeps the number, not its text: its leading zeros are gone"),
        "enum": fails("ALTER TYPE fails: invalid input value for enum"),
        "dropped": LOST_WITH_COLUMN,
    }
    strict_outcomes = {}
    casts_to_uuid = True
    timestamps_shift_in_days = False

    explain_prefix = "EXPLAIN (FORMAT JSON) "
    plan_format = "postgresql-json"
    analyze_sql = "ANALYZE {table}"
    settle_sql = "VACUUM ANALYZE {table}"  # sets the visibility hints a settled table has too
    online_index_sql = "CREATE INDEX CONCURRENTLY {name} ON {table} ({columns})"
    health_probes = ("invalid-indexes", "not-valid-constraints", "sequences-behind")
    calibration_fill_sql = "INSERT INTO calib SELECT g, md5(g::text) || md5(g::text), g FROM generate_series(1, :n) g"

    def statement_compiler(self) -> sa.Dialect:
        from sqlalchemy.dialects.postgresql.base import PGDialect

        return PGDialect(paramstyle=self.statement_paramstyle)  # type: ignore[no-untyped-call]

    def cancel_query_sql(self, session_id: int) -> str | None:
        return f"SELECT pg_cancel_backend({int(session_id)})"

    def advisory_lock_key(self, scope: str, database: str) -> Any:
        # Advisory locks take a bigint: the first 8 bytes of a hash of the name.
        return int.from_bytes(hashlib.sha256(f"{scope}:{database}".encode()).digest()[:8], "big", signed=True)

    def connected_identity(self, conn: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> tuple[str | None, bool]:
        status = conn.info.parameter_status("default_transaction_read_only")
        return conn.info.dbname or None, status in ("on", b"on")

    def client_args(self, url: URL) -> list[str]:
        return ["-h", url.host or "localhost", "-p", str(url.port or 5432), "-U", url.username or "postgres"]

    def dump_command(self, url: URL, path: str) -> list[str] | None:
        return ["pg_dump", *self.client_args(url), "-Fc", "--no-owner", "--no-acl", "-f", path, url.database or ""]

    def restore_command(self, url: URL, path: str) -> list[str] | None:
        return ["pg_restore", *self.client_args(url), "--no-owner", "--no-acl", "--exit-on-error",
                "-d", url.database or "", path]

    def estimated_rows(self, conn: sa.Connection, table: sa.Table) -> int | None:
        name = conn.dialect.identifier_preparer.format_table(table)
        value = conn.execute(sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:n)"),
                             {"n": name}).scalar()
        return int(value) if value is not None and value >= 0 else None

    def sync_key_generators(self, conn: sa.Connection, tables: list[sa.Table]) -> None:
        # Sequences do not follow rows inserted with explicit keys.
        q = conn.dialect.identifier_preparer.quote
        for table in tables:
            for column in table.primary_key.columns:
                name = q(table.name) if table.schema is None else f"{q(table.schema)}.{q(table.name)}"
                seq = conn.execute(sa.select(sa.func.pg_get_serial_sequence(name, column.name))).scalar()
                if seq:
                    top = sa.select(sa.func.max(column)).scalar_subquery()
                    conn.execute(sa.select(sa.func.setval(seq, sa.func.coalesce(top, 1), top.is_not(None))))

    def casts_automatically(self, conn: sa.Connection, table: str, column: str, type_sql: str) -> bool | None:
        # ALTER ... TYPE without USING converts through an implicit or assignment cast only (pg_cast castcontext
        # 'i' or 'a', or the I/O conversion into a string type, which counts as an assignment cast); otherwise it
        # refuses the whole ALTER, "column cannot be cast automatically", whatever the rows hold. A change of
        # length or precision within one type is a length coercion. Arrays and domains convert through their
        # elements and base types, which pg_cast does not list: not judged here.
        found = conn.execute(sa.text(_AUTOMATIC_CAST), {"table": table, "column": column, "type": type_sql}).scalar()
        return None if found is None else bool(found)

    def using_option(self) -> str | None:
        return "postgresql_using"

    def not_valid_option(self) -> str | None:
        return "postgresql_not_valid"

    def octets(self, column: Expr) -> Expr:
        return sa.func.octet_length(sa.cast(column, sa.Text))

    def round(self, column: Expr, scale: int) -> Expr:
        # ROUND(x, s) exists for numeric only, not for double precision.
        return sa.func.round(sa.cast(column, sa.Numeric), scale)

    def sample(self, table: sa.Table, fraction: float, size: int) -> sa.FromClause:
        return sa.tablesample(table, sa.func.system(min(100.0, 100 * fraction)), seed=sa.literal(7))

    def span_seconds(self, column: Expr) -> Expr | None:
        return sa.extract("epoch", sa.func.max(column)) - sa.extract("epoch", sa.func.min(column))

    def digest_text(self, column: Expr, k: Expr) -> Expr | None:
        return sa.func.md5(sa.cast(column, sa.Text) + "-" + round_text(k), type_=sa.String)

    def fresh_bytes(self, column: Expr, k: Expr) -> Expr | None:
        hexed = sa.func.encode(column, "hex", type_=sa.Text)
        return sa.func.decode(sa.func.md5(hexed + "-" + round_text(k)), "hex")

    def shift_time(self, column: Expr, steps: Expr, kind: str) -> Expr:
        if kind == "date":
            return column + steps  # date + integer days
        return column + steps * sa.literal_column("INTERVAL '1 second'", sa.Interval())
