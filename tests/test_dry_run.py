"""A full dry run with the rollback plan writes nothing to the target and leaves no scratch database."""
from __future__ import annotations

import json
import tempfile

import pytest

from dbrunbook import RunOptions, run_runbook
from dbrunbook.core.db import create_database, drop_database, make_engine, scratch_name, with_database
from dbrunbook.data.fingerprint import compare, compare_schema
from helpers.databases import assert_no_new_databases, db_state, list_databases


def test_dry_run_with_rollback_plan_leaves_the_target_untouched(demo, tmp_path, monkeypatch):
    # A private temp folder (kernels inherit TMPDIR), so SQLite scratch files of this run alone are counted.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    schema_before, data_before = db_state(demo.db)
    databases = list_databases(demo.db)

    run = run_runbook(demo.target(), RunOptions(out=tmp_path / "runs", dry_run=True, rollback_plan=True))

    assert [s.name for s in run.stages][-2:] == ["rollback-plan", "10-production-plan"]
    assert not [s.name for s in run.stages if s.status == "error" or (s.status == "skipped" and not s.notebook)], \
        run.stages
    schema_after, data_after = db_state(demo.db)
    assert compare_schema(schema_before, schema_after) == []
    assert [d.message for d in compare(data_before, data_after)] == []
    assert_no_new_databases(demo.db, databases)
    backup = json.loads((run.path / "manifest.json").read_text())["backup"]
    assert backup["backup"]["sha256"] and backup["backup"]["size"] > 0 and backup["backup"]["restore_command"]


def test_a_leftover_scratch_database_is_seen(db_url):
    before = list_databases(db_url)
    leftover = with_database(db_url, scratch_name())
    create_database(leftover)
    if leftover.get_backend_name() == "sqlite":
        make_engine(leftover).connect().close()
    try:
        with pytest.raises(AssertionError, match="left behind"):
            assert_no_new_databases(db_url, before, wait=0)
    finally:
        drop_database(leftover)
    assert_no_new_databases(db_url, before)
