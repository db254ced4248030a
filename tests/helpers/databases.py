"""The test servers, throwaway databases on them, and what a test reads back from a database.

Server URLs come from DBRUNBOOK_TEST_POSTGRES_URL and DBRUNBOOK_TEST_MARIADB_URL (defaults: the local servers).
A server that does not answer skips its tests on a user's machine and fails them in CI.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

from dbrunbook.core.db import create_database, dialect_name, make_engine, scratch_name, server_url, with_database
from dbrunbook.core.secrets import resolve_url
from dbrunbook.data.fingerprint import Fingerprint, fingerprint, schema_snapshot

SERVERS = {
    "postgresql": os.environ.get("DBRUNBOOK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": os.environ.get("DBRUNBOOK_TEST_MARIADB_URL", "mariadb+pymysql://root@127.0.0.1:3306/mysql"),
}
DIALECTS = ["sqlite", "postgresql", "mariadb"]
#: Prefix of the databases tests make; a run's scratch databases never start with it.
TEST_PREFIX = "dbrunbook_test"
_reachable: dict[str, str | None] = {}


def _unreachable_reason(dialect: str) -> str | None:
    if dialect not in _reachable:
        engine = make_engine(SERVERS[dialect])
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            _reachable[dialect] = None
        except Exception as exc:  # any failure means: no server here
            _reachable[dialect] = f"{dialect} server not reachable: {str(exc).splitlines()[0]}"
        finally:
            engine.dispose()
    return _reachable[dialect]


def require(dialect: str) -> None:
    """Skip (on a user's machine) or fail (in CI) when the dialect's server is missing."""
    if dialect == "sqlite":
        return
    reason = _unreachable_reason(dialect)
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI requires the {dialect} server: {reason}")
        pytest.skip(reason)


def new_database(dialect: str, tmp_path: Path) -> str:
    """Create an empty throwaway database; returns its URL."""
    require(dialect)
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url = with_database(SERVERS[dialect], scratch_name(TEST_PREFIX)).render_as_string(hide_password=False)
    create_database(url)
    return url


# -- reading back ----------------------------------------------------------------------------------------------------

def query(url: str | URL, sql: str) -> list[tuple[Any, ...]]:
    """The rows ``sql`` returns at ``url``, read with a connection of its own."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


def row(url: str | URL, sql: str) -> tuple[Any, ...]:
    """The one row ``sql`` returns at ``url``."""
    [only] = query(url, sql)
    return only


def scalar(url: str | URL, sql: str) -> Any:
    """The one value ``sql`` returns at ``url``."""
    [value] = row(url, sql)
    return value


def create_filled(engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> sa.Table:
    """Create ``table`` (with the rest of its metadata) and insert ``rows`` into it."""
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    return table


class DbState(NamedTuple):
    """Schema and data of a database: what "the target is untouched" is checked against."""

    schema: dict[str, Any]
    data: Fingerprint


def db_state(url: str | URL) -> DbState:
    """The schema snapshot and the fingerprint of the database at ``url``."""
    engine = make_engine(url)
    try:
        return DbState(schema_snapshot(engine), fingerprint(engine))
    finally:
        engine.dispose()


# -- which databases exist -------------------------------------------------------------------------------------------

#: How each server lists its databases.
_LIST_SQL = {
    "postgresql": "SELECT datname FROM pg_database",
    "mariadb": "SHOW DATABASES",
    "mysql": "SHOW DATABASES",
}
#: Databases someone is connected to right now, per server.
_BUSY_SQL = {
    "postgresql": "SELECT DISTINCT datname FROM pg_stat_activity WHERE datname IS NOT NULL",
    "mariadb": "SELECT DISTINCT db FROM information_schema.PROCESSLIST WHERE db IS NOT NULL",
    "mysql": "SELECT DISTINCT db FROM information_schema.PROCESSLIST WHERE db IS NOT NULL",
}
#: Made by test fixtures and benchmarks running beside a test, never by a run.
_NOT_SCRATCH = (f"{TEST_PREFIX}_", "dbrunbook_bench_")


def _on_server(url: str | URL, sql: dict[str, str]) -> set[str]:
    engine = make_engine(server_url(resolve_url(url)))
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.text(sql[dialect_name(engine)]))}
    finally:
        engine.dispose()


def list_databases(url: str | URL) -> set[str]:
    """The databases on the server of ``url`` (SQLite: database files beside it and in scratch folders)."""
    real = resolve_url(url)
    if real.get_backend_name() == "sqlite":
        beside = Path(real.database or "").parent.glob("*.db")
        return {str(p) for p in [*beside, *Path(tempfile.gettempdir()).glob("dbrunbook*/**/*.db")]}
    return _on_server(real, _LIST_SQL)


def _new(url: str | URL, before: set[str]) -> set[str]:
    # Once a run has returned nothing of it is connected anywhere: a database in use belongs to
    # another process working beside this test (helpers, benchmarks), and a leftover sits idle.
    new = {name for name in list_databases(url) - before if not name.startswith(_NOT_SCRATCH)}
    if not new or resolve_url(url).get_backend_name() == "sqlite":
        return new
    return new - _on_server(url, _BUSY_SQL)


def assert_no_new_databases(url: str | URL, before: set[str], wait: float = 30.0) -> None:
    """Fail if a database appeared since ``before`` and stays; others' short-lived test databases may come and go."""
    deadline = time.monotonic() + wait
    while (new := _new(url, before)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not new, f"left behind: {sorted(new)}"


def scratch_gone(url: str | URL, dialect: str) -> bool:
    """True when the copy at ``url`` no longer exists on its server (SQLite: its file)."""
    real = resolve_url(url)
    if dialect == "sqlite":
        return not Path(real.database or "").exists()
    return real.database not in _on_server(real, _LIST_SQL)
