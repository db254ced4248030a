"""Fixtures: SQLite always; PostgreSQL and MariaDB when reachable (required when CI is set).

Server URLs come from DBRUNBOOK_TEST_POSTGRES_URL and DBRUNBOOK_TEST_MARIADB_URL (defaults:
the local servers). Each test database is created with a unique name and dropped after.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from dbrunbook import fence
from dbrunbook.db import create_database, drop_database, make_engine, scratch_name, with_database
from dbrunbook.demo import DemoProject, write_demo

SERVERS = {
    "postgresql": os.environ.get("DBRUNBOOK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": os.environ.get("DBRUNBOOK_TEST_MARIADB_URL", "mariadb+pymysql://root@127.0.0.1:3306/mysql"),
}
DIALECTS = ["sqlite", "postgresql", "mariadb"]
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


@pytest.fixture(autouse=True)
def _no_fence_left() -> Iterator[None]:
    """A test that planned or linted fenced this process; the next test starts unfenced."""
    yield
    fence.lift()


@pytest.fixture(autouse=True, scope="session")
def _dbrunbook_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the demo cache of template runs out of the user's home."""
    saved = os.environ.get("DBRUNBOOK_HOME")
    os.environ["DBRUNBOOK_HOME"] = str(tmp_path_factory.mktemp("dbrunbook-home"))
    yield
    if saved is None:
        os.environ.pop("DBRUNBOOK_HOME", None)
    else:
        os.environ["DBRUNBOOK_HOME"] = saved


def new_database(dialect: str, tmp_path: Path) -> str:
    """Create an empty throwaway database; returns its URL."""
    require(dialect)
    if dialect == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url = with_database(SERVERS[dialect], scratch_name("dbrunbook_test")).render_as_string(hide_password=False)
    create_database(url)
    return url


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(dialect: str, tmp_path: Path) -> Iterator[str]:
    """An empty database of each dialect, dropped after the test."""
    url = new_database(dialect, tmp_path)
    if dialect == "sqlite":
        sa.create_engine(url).connect().close()
    yield url
    drop_database(url)


@pytest.fixture
def demo(dialect: str, tmp_path: Path) -> Iterator[DemoProject]:
    """The demo project (a small one) on each dialect."""
    url = new_database(dialect, tmp_path)
    project = write_demo(tmp_path / "demo", db=None if dialect == "sqlite" else url, users=400)
    yield project
    drop_database(project.db)
