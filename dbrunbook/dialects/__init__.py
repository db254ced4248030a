"""Facts about each database dialect, in one table keyed by SQLAlchemy dialect name.

Code asks :func:`facts` instead of branching on the dialect name, so supporting a new
dialect means adding one row here (and, where a fact names a strategy, its implementation).
"""
from __future__ import annotations

from dataclasses import dataclass

from dbrunbook.errors import UsageError


@dataclass(frozen=True)
class DialectFacts:
    """What dbrunbook needs to know about one dialect."""

    name: str
    label: str
    #: Alembic must recreate tables for most ALTERs (SQLite): render migrations in batch mode.
    render_as_batch: bool
    #: DDL runs inside a transaction and rolls back with it.
    transactional_ddl: bool
    #: Alembic can render the migration's SQL offline (``upgrade --sql``); SQLite's batch
    #: operations need the live table, so its SQL is captured on a schema-only copy instead.
    offline_sql: bool
    #: Longest identifier the server accepts.
    max_identifier_length: int
    #: How a scratch copy is made: "file" (SQLite backup API), "template" (CREATE DATABASE
    #: ... TEMPLATE), "copy" (recreate each table from SHOW CREATE and INSERT ... SELECT).
    clone_strategy: str
    #: Client program for backups and the Debian package it comes in.
    backup_tool: tuple[str, str]
    #: Statement that bounds how long one query may run, formatted with milliseconds.
    statement_timeout_sql: str | None
    #: Lock taken by DDL in plain words, for reports.
    ddl_lock: str
    #: Database to connect to when creating or dropping another one on the server.
    maintenance_database: str | None = None
    #: Appended to DROP DATABASE so that leftover connections do not keep a scratch copy alive.
    drop_database_suffix: str = ""
    #: The database is a file (created on connect, copied and dropped as a file), not a server's.
    file_based: bool = False
    #: Driver arguments that make an unreachable server fail fast.
    connect_args: tuple[tuple[str, object], ...] = ()
    #: Driver arguments that make every session read-only at the server (the target fence; SQLite uses query_only).
    read_only_connect_args: tuple[tuple[str, object], ...] = ()


_FACTS = {
    "sqlite": DialectFacts(
        name="sqlite",
        label="SQLite",
        render_as_batch=True,
        transactional_ddl=True,
        offline_sql=False,
        max_identifier_length=10_000,
        clone_strategy="file",
        backup_tool=("sqlite3", "sqlite3"),
        statement_timeout_sql=None,
        ddl_lock="whole-database write lock for the length of the transaction",
        file_based=True,
    ),
    "postgresql": DialectFacts(
        name="postgresql",
        label="PostgreSQL",
        render_as_batch=False,
        transactional_ddl=True,
        offline_sql=True,
        max_identifier_length=63,
        clone_strategy="template",
        backup_tool=("pg_dump", "postgresql-client"),
        statement_timeout_sql="SET statement_timeout = {ms}",
        ddl_lock="ACCESS EXCLUSIVE on the table for most ALTER TABLE forms",
        maintenance_database="postgres",
        drop_database_suffix=" WITH (FORCE)",
        connect_args=(("connect_timeout", 5),),
        read_only_connect_args=(("options", "-c default_transaction_read_only=on"),),
    ),
    "mysql": DialectFacts(
        name="mysql",
        label="MySQL",
        render_as_batch=False,
        transactional_ddl=False,
        offline_sql=True,
        max_identifier_length=64,
        clone_strategy="copy",
        backup_tool=("mysqldump", "default-mysql-client"),
        statement_timeout_sql="SET SESSION max_execution_time = {ms}",
        ddl_lock="metadata lock; ALGORITHM=COPY blocks writes for the whole rebuild",
        connect_args=(("connect_timeout", 5),),
        read_only_connect_args=(("init_command", "SET SESSION TRANSACTION READ ONLY"),),
    ),
    "mariadb": DialectFacts(
        name="mariadb",
        label="MariaDB",
        render_as_batch=False,
        transactional_ddl=False,
        offline_sql=True,
        max_identifier_length=64,
        clone_strategy="copy",
        backup_tool=("mariadb-dump", "mariadb-client"),
        statement_timeout_sql="SET SESSION max_statement_time = {seconds}",
        ddl_lock="metadata lock; ALGORITHM=COPY blocks writes for the whole rebuild",
        connect_args=(("connect_timeout", 5),),
        read_only_connect_args=(("init_command", "SET SESSION TRANSACTION READ ONLY"),),
    ),
}


def facts(dialect_name: str) -> DialectFacts:
    """The facts for ``dialect_name`` (an engine's ``dialect.name``)."""
    try:
        return _FACTS[dialect_name]
    except KeyError:
        known = ", ".join(sorted(_FACTS))
        raise UsageError(f"dialect {dialect_name!r} is not supported (supported: {known})") from None


def supported() -> list[str]:
    """Names of the supported dialects."""
    return sorted(_FACTS)
