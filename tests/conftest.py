"""Fixtures: SQLite always; PostgreSQL and MariaDB when reachable (required when CI is set).

Server URLs come from DBRUNBOOK_TEST_POSTGRES_URL and DBRUNBOOK_TEST_MARIADB_URL (defaults:
the local servers). Each test database is created with a unique name and dropped after.
The helpers behind these fixtures, and the ones test modules import, are in ``tests/helpers``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.core import fence
from dbrunbook.core.db import drop_database, make_engine
from dbrunbook.demo import DemoProject
from helpers.databases import DIALECTS, SERVERS, new_database, require
from helpers.demo import COPIED, build_demo, copy_demo

# Imported from here by modules written before tests/helpers (tests/test_apply.py, tests/test_backup.py, ...).
__all__ = ["DIALECTS", "SERVERS", "new_database", "require"]


#: The fast lane (``pytest -m "not slow"``, under 3 minutes on a 2-core machine) runs what is left when three
#: kinds of tests are marked slow; the full suite (``pytest``, what CI runs) runs everything:
#:
#: - the PostgreSQL and MariaDB variants of a test that also runs on SQLite (see :func:`_server_variant`): the
#:   fast lane runs each such test on SQLite only, so it needs no server (tests written for a server stay in it);
#: - the stage templates as nbval runs them (``runbooks/``, ``notebooks/``): whole papermill runs of every cell;
#: - the tests below, of several seconds each: whole runbooks and stages run with papermill, the user's
#:   test suite in a child process, timing curves, rehearsals on copies. Measured with ``--durations``; keep it
#:   current. Each module they test keeps quick tests in the fast lane.
SLOW_TESTS = (
    "test_apply.py::test_a_lock_that_stays_fails_after_lock_retries_attempts",
    "test_apply.py::test_a_project_without_an_alembic_config_cannot_hold_the_revision",
    "test_apply.py::test_a_revision_that_leaves_the_transaction_is_applied_as_its_env_py_runs_it",
    "test_apply.py::test_apply_refuses_when_the_project_cannot_hold_the_generated_revision",
    "test_apply.py::test_apply_writes_the_generated_revision_into_the_project_first",
    "test_apply.py::test_cli_refuses_a_drifted_target_and_records_why",
    "test_apply.py::test_dry_run_changes_nothing_then_apply_moves_to_head",
    "test_apply.py::test_update_names_the_apply_command_only_when_apply_would_accept",
    "test_apply.py::test_an_env_py_that_connects_on_the_handed_connection_is_applied_on_it",
    "test_checks_from_revisions.py::test_a_column_added_with_a_default_needs_no_value",
    "test_checks_from_revisions.py::test_a_foreign_key_on_a_renamed_table_and_column_is_checked_on_their_live_names",
    "test_checks_from_revisions.py::test_a_key_on_a_renamed_table_and_column_is_counted_on_their_live_names",
    "test_checks_from_revisions.py::test_a_partial_unique_index_counts_only_the_rows_it_covers",
    "test_checks_from_revisions.py::test_a_unique_index_on_an_expression_counts_what_the_expression_makes_equal",
    "test_checks_from_revisions.py::test_what_the_server_made_or_rewrote_is_no_change",
    "test_checks_from_revisions.py::test_an_expand_contract_revision_is_judged_by_its_backfill",
    "test_checks_from_revisions.py::test_the_revision_alone_gives_the_exact_counts",
    "test_cli.py::test_a_migration_that_raises_is_recorded_with_its_error",
    "test_cli.py::test_a_stage_that_raises_leaves_its_notebook_and_stops_the_run",
    "test_cli.py::test_after_a_stage_raised_stage_10_names_it_and_update_does_not_suggest_apply",
    "test_cli.py::test_apply_as_json",
    "test_cli.py::test_password_never_reaches_the_run_folder",
    "test_cli.py::test_project_settings_choose_the_runs_folder_the_stages_and_their_parameters",
    "test_cli.py::test_update_from_pyproject_then_runs_show_verify_export",
    "test_cli.py::test_update_prints_the_run_folder_first_then_each_stage_as_it_starts_and_finishes",
    "test_cli.py::test_verify_detects_tampering",
    "test_cli.py::test_without_dry_run_the_revision_is_written_to_the_project",
    "test_code_impact.py::test_stage_reads_the_changes_recorded_by_stage_01",
    "test_dry_run.py::test_dry_run_with_rollback_plan_leaves_the_target_untouched",
    "test_fence.py::test_update_never_touches_the_target",
    "test_handed.py::test_the_cookbook_env_py_runs_the_revisions_on_a_copy",
    "test_interrupts_apply.py::test_an_apply_stopped_anywhere_is_on_the_record_and_leaves_the_target_old_or_new",
    "test_docs.py::test_the_readme_sample_output_is_what_the_demo_prints",
    "test_journal.py::test_an_interrupted_run_is_on_the_record",
    "test_migration_shapes.py::test_lint_renders_both_branches_pending_on_each_dialect",
    "test_migration_shapes.py::test_update_dry_run_reviews_an_unnamed_unique_constraint_and_rehearses_it",
    "test_models_vs_migrations.py::test_mlflow_revisions_differ_from_mlflow_models_only_where_alembic_says_so",
    "test_performance.py::test_stage_on_the_demo_compares_plans_on_a_schema_copy_when_the_data_stops_the_upgrade",
    "test_post_migration_partial.py::test_stage_12_says_which_revisions_applied_and_which_failed",
    "test_post_migration_partial.py::test_stage_12_lists_the_statements_of_the_failed_revision",
    "test_post_migration_partial.py::test_stage_12_names_what_the_failed_revision_left_with_the_sql_to_remove_it",
    "test_post_migration_partial.py::test_the_sql_given_removes_the_leftovers_and_the_version_row_is_checked",
    "test_post_migration_partial.py::test_a_transactional_failure_still_proves_the_target_unchanged",
    "test_production.py::test_demo_ticks_only_what_its_sidecars_prove",
    "test_production.py::test_healthy_project_ticks_the_data_items",
    "test_project_shapes.py::test_update_runs_the_pending_revision_on_a_copy_only",
    "test_querycount.py::test_stage_07_records_the_counts_and_stage_08_reports_them",
    "test_querycount.py::test_the_plugin_changes_no_exit_code_and_logs_nothing_when_off",
    "test_rehearsal.py::test_a_sample_copy_rehearses_too",
    "test_rehearsal.py::test_rehearse_command",
    "test_rehearsal.py::test_the_users_tests_run_against_the_migrated_copy",
    "test_rewrite.py::test_rewrite_applies_passes_lint_and_gives_the_same_schema",
    "test_rewrite.py::test_type_change_rewrite_keeps_schema_and_values",
    "test_rollback.py::test_data_bound_failure_still_proves_the_schema_half",
    "test_runbook.py::test_demo_run_blocks_on_the_real_data_problems_and_leaves_the_target_untouched",
    "test_runbook.py::test_verify_fails_after_one_byte_changes",
    "test_schema_snapshot.py::test_stages_1_and_2_record_snapshot_impact_and_design",
    "test_several_heads.py::test_two_pending_heads_are_planned_proven_and_applied",
    "test_stage_tests.py::test_failing_tests_block_with_their_output",
    "test_stage_tests.py::test_passing_tests_are_recorded",
    "test_stage_tests.py::test_tests_are_not_run_on_an_upgrade_that_fails",
    "test_validation.py::test_template_after_a_refused_apply_proves_nothing_changed",
    "test_validation.py::test_template_after_an_apply_proves_it",
    "test_validation.py::test_template_without_plan_run_validates_the_target_as_it_is",
    "test_volume.py::test_a_failing_upgrade_blocks_the_curve",
    "test_volume.py::test_staging_stage_draws_the_curve",
    "test_volume.py::test_timing_curve_on_a_safe_migration",
)
#: Dialects a test may be given (by the ``dialect`` fixture or a fixture of its own) that need a server.
SERVER_DIALECTS = ("postgresql", "mariadb")


def _dialects(item: pytest.Function) -> set[str]:
    """The dialects among the parameters of ``item`` (``dialect``, or a module fixture parametrised by dialect)."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec else ()
    return {value for value in params if isinstance(value, str) and value in DIALECTS}


def _server_variant(item: pytest.Function, on_sqlite: set[tuple[str, str]]) -> bool:
    """True for the PostgreSQL or MariaDB variant of a test that has a SQLite variant too."""
    return bool(_dialects(item) & set(SERVER_DIALECTS)) and (str(item.path), item.originalname) in on_sqlite


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tests (see :data:`SLOW_TESTS`)."""
    tests = [item for item in items if isinstance(item, pytest.Function)]
    on_sqlite = {(str(item.path), item.originalname) for item in tests if "sqlite" in _dialects(item)}
    for item in items:
        if (item.nodeid.split("[")[0].removeprefix("tests/") in SLOW_TESTS or item.path.suffix == ".ipynb"
                or (isinstance(item, pytest.Function) and _server_variant(item, on_sqlite))):
            item.add_marker(pytest.mark.slow)


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
def engine(db_url: str) -> Iterator[sa.Engine]:
    """An engine on the empty database of each dialect."""
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], DemoProject]]:
    """The demo project of a dialect, built on first use and kept for the session; tests get copies (``demo``)."""
    built: dict[str, DemoProject] = {}

    def template(dialect: str) -> DemoProject:
        if dialect not in built:
            built[dialect] = build_demo(dialect, tmp_path_factory.mktemp(f"demo-{dialect}"))
        return built[dialect]

    yield template
    for project in built.values():
        drop_database(project.db)


@pytest.fixture
def demo(dialect: str, tmp_path: Path, demo_template: Callable[[str], DemoProject]) -> Iterator[DemoProject]:
    """The demo project (a small one) on each dialect, the test's own to change (see ``helpers/demo.py``)."""
    require(dialect)
    if dialect in COPIED:
        project = copy_demo(demo_template(dialect), dialect, tmp_path / "demo")
    else:
        project = build_demo(dialect, tmp_path)
    yield project
    drop_database(project.db)


@pytest.fixture
def sqlite_demo(tmp_path: Path, demo_template: Callable[[str], DemoProject]) -> DemoProject:
    """The demo project on SQLite alone: for tests of what a user does with a project, whatever its database."""
    return copy_demo(demo_template("sqlite"), "sqlite", tmp_path / "demo")
