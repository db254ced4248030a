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

from dbrunbook.core import fence
from dbrunbook.core.db import create_database, drop_database, make_engine, scratch_name, with_database
from dbrunbook.demo import DemoProject, write_demo

SERVERS = {
    "postgresql": os.environ.get("DBRUNBOOK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
    "mariadb": os.environ.get("DBRUNBOOK_TEST_MARIADB_URL", "mariadb+pymysql://root@127.0.0.1:3306/mysql"),
}
DIALECTS = ["sqlite", "postgresql", "mariadb"]
_reachable: dict[str, str | None] = {}


#: Tests of several seconds each (whole runbooks, real subprocess runs): left out of the fast lane
#: (``pytest -m "not slow"``), run by the full suite and CI. Measured with ``--durations``; keep it current.
SLOW_TESTS = (
    "test_apply.py::test_a_lock_that_stays_fails_after_lock_retries_attempts",
    "test_apply.py::test_apply_writes_the_generated_revision_into_the_project_first",
    "test_apply.py::test_cli_refuses_a_drifted_target_and_records_why",
    "test_apply.py::test_dry_run_changes_nothing_then_apply_moves_to_head",
    "test_apply.py::test_update_names_the_apply_command_only_when_apply_would_accept",
    "test_checks_from_revisions.py::test_a_column_added_with_a_default_needs_no_value",
    "test_checks_from_revisions.py::test_an_expand_contract_revision_is_judged_by_its_backfill",
    "test_checks_from_revisions.py::test_the_revision_alone_gives_the_exact_counts",
    "test_cli.py::test_a_migration_that_raises_is_recorded_with_its_error",
    "test_cli.py::test_a_stage_that_raises_leaves_its_notebook_and_stops_the_run",
    "test_cli.py::test_after_a_stage_raised_stage_10_names_it_and_update_does_not_suggest_apply",
    "test_cli.py::test_password_never_reaches_the_run_folder",
    "test_cli.py::test_project_settings_choose_the_runs_folder_the_stages_and_their_parameters",
    "test_cli.py::test_update_from_pyproject_then_runs_show_verify_export",
    "test_cli.py::test_update_prints_the_run_folder_first_then_each_stage_as_it_starts_and_finishes",
    "test_cli.py::test_verify_detects_tampering",
    "test_cli.py::test_without_dry_run_the_revision_is_written_to_the_project",
    "test_code_impact.py::test_stage_reads_the_changes_recorded_by_stage_01",
    "test_dry_run.py::test_dry_run_with_rollback_plan_leaves_the_target_untouched",
    "test_fence.py::test_update_never_touches_the_target",
    "test_journal.py::test_an_interrupted_run_is_on_the_record",
    "test_migration_shapes.py::test_update_dry_run_reviews_an_unnamed_unique_constraint_and_rehearses_it",
    "test_performance.py::test_stage_on_the_demo_compares_plans_on_a_schema_copy_when_the_data_stops_the_upgrade",
    "test_production.py::test_demo_ticks_only_what_its_sidecars_prove",
    "test_production.py::test_healthy_project_ticks_the_data_items",
    "test_project_shapes.py::test_update_runs_the_pending_revision_on_a_copy_only",
    "test_querycount.py::test_stage_07_records_the_counts_and_stage_08_reports_them",
    "test_rewrite.py::test_type_change_rewrite_keeps_schema_and_values",
    "test_runbook.py::test_demo_run_blocks_on_the_real_data_problems_and_leaves_the_target_untouched",
    "test_validation.py::test_template_after_an_apply_proves_it",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.split("[")[0].removeprefix("tests/") in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


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
