"""Dagster's history on PostgreSQL with ``alembic_isolation_level = "AUTOCOMMIT"``, as Dagster's own runner migrates.

Revisions 045-047 run ``CREATE INDEX CONCURRENTLY`` (and DROP INDEX CONCURRENTLY) outside ``autocommit_block()``:
in a transaction PostgreSQL refuses them, so without the setting every stage that runs them on a copy fails. With
it they run on the copies as on Dagster's AUTOCOMMIT engine, and ``update`` still leaves the target as it was.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dbrunbook.core.db import drop_database
from dbrunbook.core.results import load_result
from helpers.databases import new_database

from ._corpus import prepare, project_url, report, require_package, run_update, target_state
from ._state import state_diff
from .test_dagster import START

pytestmark = [pytest.mark.slow, pytest.mark.realworld]

#: Findings that say a revision's upgrade failed on a copy: stage 03's capture, stage 05's rehearsal, env.py fenced.
UPGRADE_FAILED = {"MG003", "MG007", "RH001"}


def test_update_dagster_history_on_autocommit(tmp_path: Path) -> None:
    require_package("dagster")
    url = project_url("dagster", "postgresql", new_database("postgresql", tmp_path))
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    try:
        prepared = prepare("dagster", "postgresql", url, START, tmp_path / "dagster")
        (prepared.folder / "pyproject.toml").write_text('[tool.dbrunbook]\nalembic_isolation_level = "AUTOCOMMIT"\n')
        before = target_state(url)
        outcome = run_update(prepared, tmp_path / "runs", tmpdir)
        print(report(prepared, outcome), file=sys.stderr)
        assert not outcome.problems, "\n".join(outcome.problems)
        assert state_diff(before, target_state(url)) == []
        assert outcome.run_dir is not None
        found = [(stage["name"], f) for stage in outcome.manifest["stages"]
                 for f in (getattr(load_result(outcome.run_dir, stage["name"]), "findings", None) or [])]
        failed = [f"{name}: {f.code} {f.message[:300]}" for name, f in found
                  if f.code in UPGRADE_FAILED or "inside a transaction block" in f.message]
        assert failed == [], "\n".join(failed)
        # On an AUTOCOMMIT session the BEGIN Alembic renders opens nothing: CONCURRENTLY is in no transaction.
        assert [f.message for _, f in found if f.code == "TX001"] == []
        upgrade_sql = (outcome.run_dir / "03-migration" / "upgrade.sql").read_text()
        assert "CREATE UNIQUE INDEX CONCURRENTLY idx_run_tags_run_id" in upgrade_sql  # 047 ran on the copy
    finally:
        drop_database(url)
