"""The :class:`Dialect` base class: every fact dbrunbook knows about a database, and the registry of dialects.

A dialect is a subclass that sets ``name`` and every fact annotated here; creating the class registers one
instance of it under its name (a second class with the same name fails at import, as does one that leaves a
fact unset). Small SQL-producing methods have a default here (and in :mod:`._expressions`) that the dialects
override where they differ, as Alembic's ``DefaultImpl`` does for its per-dialect implementations.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

from dbrunbook.dialects._expressions import Expressions
from dbrunbook.dialects._outcomes import FAILS, PROBLEMS, Outcome

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

_REGISTRY: dict[str, Dialect] = {}


def _seconds(ms: float) -> str:
    """Milliseconds as seconds, without a trailing ``.0`` (``1.5``, ``60``)."""
    return f"{ms / 1000:.3f}".rstrip("0").rstrip(".")


class Dialect(Expressions):
    """One database dialect: its facts (class attributes) and the SQL pieces that differ (methods)."""

    # -- who it is ------------------------------------------------------------------------------
    #: SQLAlchemy's name for the dialect (an engine's ``dialect.name``; MariaDB told apart).
    name: ClassVar[str]
    label: ClassVar[str]
    #: The SQLAlchemy dialect module and server family (MariaDB: ``mysql``); the fence's identity family.
    sqlalchemy_name: ClassVar[str]
    #: sqlglot's name for the dialect.
    sqlglot: ClassVar[str]
    #: Which parser reads its SQL: ``pglast`` (PostgreSQL's own) or ``sqlglot``.
    sql_reader: ClassVar[str]
    #: Other names a URL may give the dialect (``postgres://``), read as this one.
    url_aliases: ClassVar[tuple[str, ...]]

    # -- migrations -----------------------------------------------------------------------------
    #: Alembic must recreate tables for most ALTERs (SQLite): render migrations in batch mode.
    render_as_batch: ClassVar[bool]
    #: DDL runs inside a transaction and rolls back with it.
    transactional_ddl: ClassVar[bool]
    #: Alembic can render the migration's SQL offline (``upgrade --sql``); SQLite's batch
    #: operations need the live table, so its SQL is captured on a schema-only copy instead.
    offline_sql: ClassVar[bool]
    #: Longest identifier the server accepts.
    max_identifier_length: ClassVar[int]
    #: Lock taken by DDL in plain words, for reports.
    ddl_lock: ClassVar[str]
    #: How lock analysis models a statement's lock: ``lock-modes`` (PostgreSQL's table lock modes),
    #: ``online-ddl`` (InnoDB's INSTANT/INPLACE/COPY algorithms), ``database-lock`` (one write lock).
    ddl_lock_model: ClassVar[str]
    #: dbrunbook writes safe rewrites of unsafe revisions (else: the lint advice only).
    safe_rewrites: ClassVar[bool]

    # -- databases and connections ----------------------------------------------------------------
    #: The database is a file (created on connect, copied and dropped as a file), not a server's.
    file_based: ClassVar[bool]
    #: How a scratch copy is made: "file" (SQLite backup API), "template" (CREATE DATABASE
    #: ... TEMPLATE), "copy" (recreate each table from SHOW CREATE and INSERT ... SELECT).
    clone_strategy: ClassVar[str]
    #: Database to connect to when creating or dropping another one on the server.
    maintenance_database: ClassVar[str | None]
    #: Appended to DROP DATABASE so that leftover connections do not keep a scratch copy alive.
    drop_database_suffix: ClassVar[str]
    #: Driver arguments that make an unreachable server fail fast.
    connect_args: ClassVar[tuple[tuple[str, object], ...]]
    #: Driver arguments that make every session read-only at the server (the target fence).
    read_only_connect_args: ClassVar[tuple[tuple[str, object], ...]]
    #: Statement run on every new connection to make it read-only, where no connect argument can.
    read_only_on_connect: ClassVar[str | None]
    #: Environment variable the client library reads the database name from (PostgreSQL: PGDATABASE).
    database_env_var: ClassVar[str | None]
    #: DBAPI modules of the family whose ``connect`` the fence wraps.
    dbapi_modules: ClassVar[tuple[str, ...]]
    #: Async drivers, in order of preference: (module to find, SQLAlchemy drivername).
    async_drivers: ClassVar[tuple[tuple[str, str], ...]]

    # -- client programs ------------------------------------------------------------------------
    #: Client program for backups and the Debian package it comes in.
    backup_tool: ClassVar[tuple[str, str]]
    #: Client program that restores a backup.
    restore_tool: ClassVar[str]
    #: File suffix of a backup.
    backup_suffix: ClassVar[str]
    #: Environment variable the client programs read the password from.
    password_env: ClassVar[str | None]
    #: The restore program reads the backup on standard input.
    restore_reads_stdin: ClassVar[bool]
    #: Restore options for a database that still holds the objects (the target, not a fresh scratch one).
    restore_replace_options: ClassVar[tuple[str, ...]]

    # -- sessions and timeouts -------------------------------------------------------------------
    #: The session setting that bounds a statement's run time (None: the dialect has none).
    statement_timeout_setting: ClassVar[str | None]
    #: The statement timeout is set in seconds (MariaDB), not milliseconds.
    statement_timeout_in_seconds: ClassVar[bool]
    #: The statement timeout bounds DDL too (MySQL's ``max_execution_time`` bounds SELECT only).
    statement_timeout_bounds_ddl: ClassVar[bool]
    #: The session setting that bounds lock waits (None: the dialect has none).
    lock_timeout_setting: ClassVar[str | None]
    #: Makes the current session (or transaction) read-only.
    read_only_transaction_sql: ClassVar[str]
    #: Reads the session's SQL mode, whose strictness decides what happens to bad values (None: no such mode).
    sql_mode_sql: ClassVar[str | None]
    #: Settings that keep an idle session (one holding a lock) from being ended by the server.
    keepalive_sql: ClassVar[tuple[str, ...]]
    #: Session statements that make the database enforce every constraint the schema declares.
    enforce_constraints_sql: ClassVar[tuple[str, ...]]
    #: Session statements that let rows arrive in any order (cycles, self-references), and back.
    fk_checks_off_sql: ClassVar[str | None]
    fk_checks_on_sql: ClassVar[str | None]

    # -- the guarded apply -----------------------------------------------------------------------
    #: Opens the migration's transaction where the driver does not (SQLite: take the write lock at once).
    begin_write_sql: ClassVar[str | None]
    #: The session's id on the server (None: cancel through the driver connection).
    session_id_sql: ClassVar[str | None]
    #: Sessions waiting for a lock the session ``:pid`` holds: id, state, query.
    blocked_sessions_sql: ClassVar[str | None]
    #: What the session ``:pid`` waits for, one row per lock.
    lock_waits_sql: ClassVar[str | None]
    #: The sessions in the way of ``:pid``: id, user, application or client, state, query.
    blocking_sessions_sql: ClassVar[str | None]
    #: Error codes of a lock wait that timed out (SQLSTATE, MySQL error number, SQLite result code).
    lock_timeout_errors: ClassVar[tuple[str, ...]]
    #: The apply lock: what it is called, and how it is taken (``:key``, at once or false) and given back.
    advisory_lock_label: ClassVar[str]
    advisory_lock_sql: ClassVar[str | None]
    advisory_unlock_sql: ClassVar[str | None]
    #: The lock holder's session (``:key``): id, user, client, seconds since its last statement, text.
    lock_holder_sql: ClassVar[str | None]
    #: Carries the holder's note (``{note}``, a comment): PostgreSQL in the session's last statement
    #: (``:app``), MariaDB/MySQL in a statement that keeps waiting on a gate lock (``:gate``, ``:forever``).
    lock_note_sql: ClassVar[str | None]
    lock_note_waits: ClassVar[bool]
    gate_lock_sql: ClassVar[str | None]
    gate_unlock_sql: ClassVar[str | None]
    #: Longest name a named lock may have (None: locks are keyed by number).
    advisory_lock_name_max: ClassVar[int | None]
    #: Bound-parameter style in which a compiled statement reads back through ``sql_reader``.
    statement_paramstyle: ClassVar[str]

    # -- catalog and schema ----------------------------------------------------------------------
    #: (table, estimated rows, bytes) for the tables of the current schema (None: see table_sizes()).
    table_sizes_sql: ClassVar[str | None]
    #: Sequences not owned by a column: name, start, increment.
    sequences_sql: ClassVar[str | None]
    #: Index columns stored in descending order, where reflection does not say: table, index, column.
    descending_index_columns_sql: ClassVar[str | None]
    #: Each index's CREATE statement, where reflection skips expression indexes: table, index, sql.
    index_definitions_sql: ClassVar[str | None]
    #: Per-table scan statistics: table, sequential scans, rows read by them, index scans, live rows.
    table_usage_sql: ClassVar[str | None]
    #: Spellings that mean the same type (after upper-casing and display widths removed).
    type_aliases: ClassVar[Mapping[str, str]]
    #: NULLs sort before every value in ascending order (PostgreSQL: after).
    nulls_sort_first: ClassVar[bool]
    #: Enums are named types of their own.
    named_enums: ClassVar[bool]
    #: The server creates an index for each foreign key that lacks one, named after the key.
    implicit_fk_index: ClassVar[bool]
    #: The server answers two catalog queries at once faster than one after the other.
    parallel_reflection: ClassVar[bool]
    #: VARCHAR must declare a length.
    varchar_needs_length: ClassVar[bool]

    # -- reading SQL -----------------------------------------------------------------------------
    #: Functions whose value differs per row: a default using one makes ADD COLUMN rewrite the table.
    #: Stable functions (now(), current_timestamp) give one value per statement and are not listed.
    volatile_functions: ClassVar[frozenset[str]]
    #: Types that are shorthand for an integer with a sequence default.
    serial_types: ClassVar[tuple[str, ...]]
    #: A SCHEMA is a database (DROP SCHEMA drops a database).
    schema_is_database: ClassVar[bool]
    #: A validated CHECK (col IS NOT NULL) lets SET NOT NULL skip its full-table scan.
    not_null_uses_check: ClassVar[bool]
    #: DROP COLUMN drops the constraints on that column with it (elsewhere a foreign key stops the drop).
    drop_column_drops_constraints: ClassVar[bool]

    # -- data ------------------------------------------------------------------------------------
    #: SQL function drawing a random number.
    random_function: ClassVar[str]
    #: One column's checksum (``{c}``: the quoted column): a sum of 60-bit slices of each value's MD5.
    checksum_sql: ClassVar[str]
    #: What a migration does to offending rows, per problem; ``strict_outcomes`` override them under a
    #: strict SQL mode.
    outcomes: ClassVar[Mapping[str, Outcome]]
    strict_outcomes: ClassVar[Mapping[str, Outcome]]

    def can_fail_on(self, *problems: str) -> bool:
        """Whether rows with one of ``problems`` can make the migration fail on this dialect, in any sql_mode (a
        change that cannot fail here may still lose or keep the values: the outcomes say which)."""
        return any(outcome.effect == FAILS for table in (self.outcomes, self.strict_outcomes)
                   for problem, outcome in table.items() if problem in problems)

    # -- plans, statistics, health ---------------------------------------------------------------
    #: Put before a query to get its plan.
    explain_prefix: ClassVar[str]
    #: The shape of the plan rows: ``postgresql-json``, ``mysql-json``, ``sqlite-query-plan``.
    plan_format: ClassVar[str]
    #: Refreshes the planner's statistics of ``{table}``.
    analyze_sql: ClassVar[str]
    #: Makes a freshly grown ``{table}`` look settled (statistics, visibility hints).
    settle_sql: ClassVar[str]
    #: Adds an index without blocking writes: ``{name}``, ``{table}``, ``{columns}``.
    online_index_sql: ClassVar[str]
    #: What DDL can leave behind, checked after an upgrade (names of the post-migration probes).
    health_probes: ClassVar[tuple[str, ...]]
    #: Fills ``calib (id, payload, n)`` with ``:n`` rows of about 80 bytes, to time the server.
    calibration_fill_sql: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return  # an intermediate class: registered through its subclasses only
        missing = [fact for fact in facts_of(Dialect) if not hasattr(cls, fact)]
        if missing:
            raise ValueError(f"dialect {cls.name!r} leaves facts unset: {', '.join(missing)}")
        unsaid = [p for p in PROBLEMS if p not in cls.outcomes]
        if unsaid:
            raise ValueError(f"dialect {cls.name!r} gives no outcome for {', '.join(unsaid)}")
        if cls.name in _REGISTRY:
            raise ValueError(f"dialect {cls.name!r} registered twice "
                             f"({type(_REGISTRY[cls.name]).__qualname__} and {cls.__qualname__})")
        _REGISTRY[cls.name] = cls()

    def __repr__(self) -> str:
        return f"<dialect {self.name}>"

    # -- which dialect -------------------------------------------------------------------------

    def refine(self, sa_dialect: sa.Dialect) -> Dialect:
        """The dialect a connected SQLAlchemy dialect object really speaks (MariaDB behind ``mysql://``)."""
        return self

    def refine_url(self, url: URL) -> Dialect:
        """The dialect a URL names, judged without connecting."""
        return self

    def sqlalchemy_dialect(self) -> sa.Dialect:
        """A SQLAlchemy dialect object to render SQL and types for (no driver is loaded)."""
        dialect: sa.Dialect = sa.engine.make_url(f"{self.name}://").get_dialect()()
        return dialect

    def statement_compiler(self) -> sa.Dialect:
        """A dialect that compiles statements with bound parameters in :attr:`statement_paramstyle`."""
        factory: Any = type(self.sqlalchemy_dialect())
        dialect: sa.Dialect = factory(paramstyle=self.statement_paramstyle)
        return dialect

    # -- timeouts: the one place their SQL is written ---------------------------------------------

    @property
    def statement_timeout_sql(self) -> str | None:
        """The statement timeout as a template with ``{ms}`` or ``{seconds}`` (see :meth:`statement_timeout`)."""
        if self.statement_timeout_setting is None:
            return None
        unit = "{seconds}" if self.statement_timeout_in_seconds else "{ms}"
        return f"SET {self._session_scope()}{self.statement_timeout_setting} = {unit}"

    def statement_timeout(self, ms: float) -> str | None:
        """The statement that bounds each later statement of the session to ``ms`` (0: no limit)."""
        template = self.statement_timeout_sql
        return template.format(ms=int(ms), seconds=_seconds(ms)) if template else None

    def lock_timeout(self, ms: float) -> tuple[str, ...]:
        """The statements that bound each lock wait of the session to ``ms``."""
        if self.lock_timeout_setting is None:
            return ()
        return (f"SET {self._session_scope()}{self.lock_timeout_setting} = {int(ms)}",)

    def session_timeouts(self, lock_ms: float, statement_ms: float) -> list[str]:
        """Lock and statement timeouts of a session that changes the schema.

        A statement timeout that does not bound DDL is left out: it would claim a limit the session does not have.
        """
        statement = self.statement_timeout(statement_ms) if self.statement_timeout_bounds_ddl else None
        return [*self.lock_timeout(lock_ms), *([statement] if statement else [])]

    def long_session_sql(self) -> list[str]:
        """Settings of a session that holds a lock for as long as an apply runs: no statement or idle limit."""
        unlimited = self.statement_timeout(0)
        return [*([unlimited] if unlimited else []), *self.keepalive_sql]

    def _session_scope(self) -> str:
        return ""

    def cancel_query_sql(self, session_id: int) -> str | None:
        """Cancels the running statement of session ``session_id`` from another session."""
        return None

    def advisory_lock_key(self, scope: str, database: str) -> Any:
        """The key of the advisory lock ``scope`` on ``database`` (bound as ``:key``)."""
        return None

    def recursion_limit_sql(self, n: int) -> str | None:
        """Raises the session's limit on recursive CTE steps to ``n``, where one would stop a fill."""
        return None

    # -- the fence: which database a connection reaches -------------------------------------------

    def database_key(self, url: URL) -> str | None:
        """What identifies the database ``url`` names (None: nothing, e.g. an in-memory database)."""
        return url.database or None

    def params_key(self, cargs: tuple[Any, ...] | list[Any], cparams: dict[str, Any]) -> str | None:
        """What identifies the database a DBAPI ``connect(*cargs, **cparams)`` reaches."""
        key = cparams.get("dbname") or cparams.get("database") or cparams.get("db")
        key = os.fsdecode(key) if isinstance(key, bytes) else key
        return str(key) if key else None

    def params_read_only(self, cargs: tuple[Any, ...] | list[Any], cparams: dict[str, Any]) -> bool:
        """Whether the connect arguments make the session read-only at the database."""
        return bool(self.read_only_connect_args) and all(
            str(value) in str(cparams.get(key, "")) for key, value in self.read_only_connect_args)

    def connected_identity(self, conn: Any, cargs: tuple[Any, ...], cparams: dict[str, Any]) -> tuple[str | None, bool]:
        """The database a raw DBAPI connection reached, and whether it is read-only, as the server says."""
        return self.params_key(cargs, cparams), self.params_read_only(cargs, cparams)

    # -- client programs -----------------------------------------------------------------------

    def client_args(self, url: URL) -> list[str]:
        """Host, port and user options of the client programs."""
        return []

    def client_env(self, url: URL) -> dict[str, str]:
        """The environment for the client programs, with the password where they read it."""
        env = dict(os.environ)
        if self.password_env and url.password:
            env[self.password_env] = str(url.password)
        return env

    def dump_command(self, url: URL, path: str) -> list[str] | None:
        """The program and arguments that back ``url`` up into ``path`` (None: no program needed)."""
        return None

    def restore_command(self, url: URL, path: str) -> list[str] | None:
        """The program and arguments that restore ``path`` into ``url``."""
        return None

    # -- catalog ---------------------------------------------------------------------------------

    def table_sizes(self, conn: sa.Connection, tables: list[str]) -> dict[str, tuple[int | None, int | None]]:
        """Row estimate and bytes per table, from the catalog in one or a few queries."""
        if self.table_sizes_sql is None:
            return {}
        return {name: (_int(rows), _int(size)) for name, rows, size in conn.execute(sa.text(self.table_sizes_sql))}

    def estimated_rows(self, conn: sa.Connection, table: sa.Table) -> int | None:
        """Rows the catalog believes ``table`` has (cheap, approximate); None: count them."""
        return None

    # -- data --------------------------------------------------------------------------------------

    def prepare_checksum(self, conn: sa.Connection) -> None:
        """What a connection needs before :attr:`checksum_sql` runs on it."""

    def sync_key_generators(self, conn: sa.Connection, tables: list[sa.Table]) -> None:
        """Move key generators (sequences) past rows inserted with explicit keys."""

    def casts_automatically(self, conn: sa.Connection, table: str, column: str, type_sql: str) -> bool | None:
        """Whether ALTER ... TYPE ``type_sql`` converts ``table.column`` with no USING clause (None: cannot tell).
        By default it does (MariaDB's MODIFY, SQLite's batch copy): each value converts, fails, or is cut alone."""
        return True

    def using_option(self) -> str | None:
        """Alembic's ``alter_column`` option for the conversion expression of ALTER ... TYPE (None: it takes none)."""
        return None

    def not_valid_option(self) -> str | None:
        """Alembic's option that adds a foreign key or CHECK without checking existing rows (None: no such thing)."""
        return None

    def outcome(self, problem: str, strict: bool = False) -> Outcome:
        """What a migration does to rows with ``problem`` (under a strict SQL mode if ``strict``)."""
        return (self.strict_outcomes if strict else {}).get(problem) or self.outcomes[problem]

    def is_strict(self, conn: sa.Connection) -> bool:
        """Whether the session's SQL mode makes bad values fail rather than change silently."""
        if self.sql_mode_sql is None:
            return False
        mode = str(conn.execute(sa.text(self.sql_mode_sql)).scalar_one() or "").upper()
        return any(word in mode for word in ("STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"))


def facts_of(cls: type[Dialect]) -> list[str]:
    """The names of the facts a dialect class must set (the annotated class attributes)."""
    names = [name for klass in reversed(cls.__mro__) for name in vars(klass).get("__annotations__", {})]
    return [name for name in dict.fromkeys(names) if not name.startswith("_")]


def _int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]

