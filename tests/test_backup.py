"""Backups with the dialects' own tools, restored into scratch databases and compared by fingerprint."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dbrunbook.cli.commands.backup import command
from dbrunbook.core.db import make_engine
from dbrunbook.data.fingerprint import compare, fingerprint
from dbrunbook.errors import ToolMissing, UsageError
from dbrunbook.stages.rollback_plan.backup import backup_and_verify, findings, plan_backup, take_backup, verify_backup
from helpers.databases import SERVERS, assert_no_new_databases, list_databases, require


def test_backup_restores_to_the_same_fingerprint(demo, tmp_path):
    before = list_databases(demo.db)
    check = backup_and_verify(demo.db, tmp_path / "backups")
    assert check.ok, [d.message for d in check.diffs]
    assert check.rows > 2000 and check.backup.size > 0 and len(check.backup.sha256) == 64
    assert check.backup.plan.path.exists() and check.backup.plan.path.parent == tmp_path / "backups"
    assert [f.code for f in findings(check)] == ["BK000"]
    assert_no_new_databases(demo.db, before)  # the scratch restore was dropped


def test_restore_check_fails_when_data_differs(demo, tmp_path):
    backup = take_backup(demo.db, tmp_path)
    engine = make_engine(demo.db)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM order_items WHERE id <= 5"))
    engine.dispose()
    check = verify_backup(demo.db, backup)
    assert not check.ok
    rows = next(d for d in check.diffs if d.what == "rows")
    assert (rows.table, rows.before - rows.after) == ("order_items", -5)  # the target lost 5 the backup has
    assert {f.code for f in findings(check)} == {"BK001"}


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_tampered_backup_is_refused(demo, tmp_path):
    backup = take_backup(demo.db, tmp_path)
    data = bytearray(backup.plan.path.read_bytes())
    data[-100] ^= 1
    backup.plan.path.write_bytes(bytes(data))
    with pytest.raises(UsageError, match="does not match its recorded sha256"):
        verify_backup(demo.db, backup)


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_missing_client_tool_names_the_package(dialect, tmp_path, monkeypatch):
    require(dialect)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match=r"(postgresql-client|mariadb-client) package"):
        take_backup(SERVERS[dialect], tmp_path)


def test_password_goes_through_the_environment_only(tmp_path):
    require("postgresql")
    url = sa.make_url(SERVERS["postgresql"]).set(password="not-a-real-s3cret")
    plan = plan_backup(url, tmp_path)
    assert "not-a-real-s3cret" not in plan.command + plan.restore_command
    assert plan.command.startswith("pg_dump ") and "-Fc" in plan.command
    assert "--clean --if-exists" in plan.restore_command  # the target still holds its objects
    backup = take_backup(url, tmp_path)  # trust auth ignores the password; the tool still gets it via PGPASSWORD
    assert backup.size > 0 and "not-a-real-s3cret" not in str(backup.to_json())


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_cli_backup_verify(demo, tmp_path):
    result = CliRunner().invoke(command, ["--db", demo.db, "--out", str(tmp_path / "b"), "--verify"])
    assert result.exit_code == 0, result.output
    assert "restores to the same data" in result.output and "restore with:" in result.output
    assert len(list((tmp_path / "b").iterdir())) == 1
    engine = make_engine(demo.db)
    assert fingerprint(engine).rows > 0
    engine.dispose()


def test_cli_backup_bad_url_is_one_line(tmp_path):
    from dbrunbook.cli import main

    result = CliRunner().invoke(main, ["backup", "--db", f"sqlite:///{tmp_path}/missing.db", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert result.output.count("\n") == 1


def test_interrupted_restore_drops_the_scratch_database(demo, tmp_path):
    from dbrunbook.stages.rollback_plan.backup import restored

    backup = take_backup(demo.db, tmp_path)
    databases = list_databases(demo.db)
    with pytest.raises(KeyboardInterrupt):
        with restored(backup, demo.db) as scratch:
            assert scratch.database and fingerprint_rows(scratch) > 0
            raise KeyboardInterrupt
    assert_no_new_databases(demo.db, databases)


def fingerprint_rows(url) -> int:
    engine = make_engine(url)
    try:
        return fingerprint(engine).rows
    finally:
        engine.dispose()


def test_recorded_restore_command_restores_the_target(demo, tmp_path):
    import subprocess

    engine = make_engine(demo.db)
    original = fingerprint(engine)
    backup = take_backup(demo.db, tmp_path)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM order_items WHERE quantity = 1"))
        conn.execute(sa.text("UPDATE users SET name = 'changed' WHERE id < 50"))
    engine.dispose()
    assert fingerprint(engine).tables["order_items"].rows < original.tables["order_items"].rows
    engine.dispose()
    # The command exactly as recorded for the operator (the local servers need no password).
    done = subprocess.run(["bash", "-c", backup.plan.restore_command], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    restored_print = fingerprint(engine)
    engine.dispose()
    assert [d.message for d in compare(original, restored_print)] == []
