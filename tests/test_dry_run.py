"""A full dry run with the rollback plan writes nothing to the target and leaves no scratch database."""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook import RunOptions, run_runbook
from dbrunbook.core.db import (create_database, dialect_name, drop_database, make_engine, scratch_name, server_url,
                          with_database)
from dbrunbook.data.fingerprint import compare, compare_schema, fingerprint, schema_snapshot
from dbrunbook.core.secrets import resolve_url

#: How each server lists its databases (SQLite: database files beside it and in scratch folders).
_LIST_SQL = {
    "postgresql": "SELECT datname FROM pg_database",
    "mariadb": "SHOW DATABASES",
    "mysql": "SHOW DATABASES",
}


def list_databases(url: str) -> set[str]:
    """The databases on the server of ``url`` (SQLite: database files beside it and in scratch folders)."""
    real = resolve_url(url)
    if real.get_backend_name() == "sqlite":
        beside = Path(real.database).parent.glob("*.db")
        return {str(p) for p in [*beside, *Path(tempfile.gettempdir()).glob("dbrunbook*/**/*.db")]}
    engine = make_engine(server_url(real))
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.text(_LIST_SQL[dialect_name(engine)]))}
    finally:
        engine.dispose()


#: Databases someone is connected to right now, per server.
_BUSY_SQL = {
    "postgresql": "SELECT DISTINCT datname FROM pg_stat_activity WHERE datname IS NOT NULL",
    "mariadb": "SELECT DISTINCT db FROM information_schema.PROCESSLIST WHERE db IS NOT NULL",
    "mysql": "SELECT DISTINCT db FROM information_schema.PROCESSLIST WHERE db IS NOT NULL",
}
#: Made by test fixtures and benchmarks running beside this test, never by a run.
_NOT_SCRATCH = ("dbrunbook_test_", "dbrunbook_bench_")


def _busy(url: str) -> set[str]:
    real = resolve_url(url)
    if real.get_backend_name() == "sqlite":
        return set()
    engine = make_engine(server_url(real))
    try:
        with engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.text(_BUSY_SQL[dialect_name(engine)]))}
    finally:
        engine.dispose()


def _new(url: str, before: set[str]) -> set[str]:
    # Once a run has returned nothing of it is connected anywhere: a database in use belongs to
    # another process working beside this test (helpers, benchmarks), and a leftover sits idle.
    new = {name for name in list_databases(url) - before if not name.startswith(_NOT_SCRATCH)}
    return new - _busy(url) if new else new


def assert_no_new_databases(url: str, before: set[str], wait: float = 30.0) -> None:
    """Fail if a database appeared since ``before`` and stays; others' short-lived test databases may come and go."""
    deadline = time.monotonic() + wait
    while (new := _new(url, before)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not new, f"left behind: {sorted(new)}"


def _state(url: str):
    engine = make_engine(url)
    try:
        return schema_snapshot(engine), fingerprint(engine)
    finally:
        engine.dispose()


def test_dry_run_with_rollback_plan_leaves_the_target_untouched(demo, tmp_path, monkeypatch):
    # A private temp folder (kernels inherit TMPDIR), so SQLite scratch files of this run alone are counted.
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    schema_before, data_before = _state(demo.db)
    databases = list_databases(demo.db)

    run = run_runbook(demo.target(), RunOptions(out=tmp_path / "runs", dry_run=True, rollback_plan=True))

    assert [s.name for s in run.stages][-2:] == ["rollback-plan", "10-production-plan"]
    assert not [s.name for s in run.stages if s.status in ("error", "skipped")], run.stages
    schema_after, data_after = _state(demo.db)
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
