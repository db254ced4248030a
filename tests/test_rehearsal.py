"""Rehearsals on real databases: the real error, per-revision timing, probes, the user's tests."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.data.fingerprint import compare
from dbrunbook.demo import repair_demo_data
from dbrunbook.stages import dev_rehearsal as rehearsal
from dbrunbook.stages.migration import plan_migration
from helpers.databases import db_state, scratch_gone
from helpers.projects import scripts_project

_BASE = '''
revision = "0001"
down_revision = None

def upgrade():
    op.create_table("authors", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("name", sa.String(80)))
    op.create_table("books", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("author_id", sa.Integer(), nullable=True), sa.Column("isbn", sa.String(20)))

def downgrade():
    op.drop_table("books")
    op.drop_table("authors")
'''

#: Two revisions: a foreign key and a unique ISBN, then a required name.
_FK = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    with op.batch_alter_table("books") as batch:
        batch.create_foreign_key("fk_books_author_id", "authors", ["author_id"], ["id"])
        batch.create_unique_constraint("uq_books_isbn", ["isbn"])

def downgrade():
    with op.batch_alter_table("books") as batch:
        batch.drop_constraint("uq_books_isbn", type_="unique")
        batch.drop_constraint("fk_books_author_id", type_="foreignkey")
'''
_NAME = '''
revision = "0003"
down_revision = "0002"

def upgrade():
    with op.batch_alter_table("authors") as batch:
        batch.alter_column("name", existing_type=sa.String(80), nullable=False)

def downgrade():
    with op.batch_alter_table("authors") as batch:
        batch.alter_column("name", existing_type=sa.String(80), nullable=True)
'''


def books_project(tmp_path: Path, url: str) -> tuple[Target, Path]:
    """A database at 0001 with authors and books, and scripts adding 0002 and 0003."""
    target, scripts = scripts_project(tmp_path, url, {"0001_base": _BASE, "0002_fk": _FK, "0003_name": _NAME})
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO authors (id, name) VALUES (1, 'Ann'), (2, 'Bob')"))
            conn.execute(sa.text("INSERT INTO books (id, author_id, isbn) VALUES (1, 1, 'A-1'), (2, 2, 'B-1')"))
    finally:
        engine.dispose()
    return target, scripts


def test_unsafe_demo_fails_with_the_real_error_and_the_target_is_untouched(demo, dialect, tmp_path):
    plan = plan_migration(demo.target(), tmp_path / "plan")
    before = db_state(demo.db)
    result = rehearsal.rehearse(demo.target(), plan.script_dir)
    assert not result.upgrade.ok
    assert any(word in result.upgrade.error.lower() for word in ("null", "unique", "duplicate", "truncated"))
    assert result.revisions[-1]["ok"] is False and result.revisions[-1]["revision"] == plan.revisions[0]
    assert result.target_revision_unchanged and result.revision_before == "0001"
    after = db_state(demo.db)
    assert compare(before.data, after.data) == [] and before.schema == after.schema
    failure = next(f for f in rehearsal.findings(result) if f.code == "RH001")
    assert failure.severity == "block" and failure.evidence["error"] == result.upgrade.error
    assert scratch_gone(result.clone, dialect)


def test_safe_demo_rehearses_and_its_new_constraints_reject_bad_rows(demo, dialect, tmp_path):
    repair_demo_data(demo.db)
    plan = plan_migration(demo.target(), tmp_path / "plan")
    result = rehearsal.rehearse(demo.target(), plan.script_dir)
    assert result.upgrade.ok, result.upgrade.error
    assert result.revision_after == plan.revisions[-1]
    [timing] = result.revisions
    assert timing["ok"] and timing["statements"] >= 3 and timing["seconds"] > 0
    probes = {(p.kind, p.table, tuple(p.columns)): p for p in result.probes}
    assert {("unique", "users", ("email",)), ("not-null", "users", ("country",)),
            ("not-null", "orders", ("currency",))} <= set(probes)
    assert all(p.status == "rejected" and p.error for p in probes.values()), [p for p in probes.values()]
    codes = {f.code for f in rehearsal.findings(result)}
    assert "RH000" in codes and "RH010" in codes and "RH011" not in codes
    assert scratch_gone(result.clone, dialect)


def test_each_revision_is_timed_and_a_new_foreign_key_is_probed(db_url, dialect, tmp_path):
    target, scripts = books_project(tmp_path, db_url)
    result = rehearsal.rehearse(target, scripts)
    assert result.upgrade.ok, result.upgrade.error
    assert [r["revision"] for r in result.revisions] == ["0002", "0003"]
    assert all(r["ok"] and r["statements"] >= 1 for r in result.revisions)
    probes = {(p.kind, tuple(p.columns)): p for p in result.probes}
    assert probes[("foreign-key", ("author_id",))].status == "rejected"
    assert probes[("unique", ("isbn",))].status == "rejected"
    assert probes[("not-null", ("name",))].status == "rejected"


_CHECK_SCRIPT = textwrap.dedent('''
    import os, sys
    import sqlalchemy as sa
    url = os.environ["DATABASE_URL"]
    assert os.environ["DBRUNBOOK_CLONE_URL"] == url
    engine = sa.create_engine(url)
    columns = [c["name"] for c in sa.inspect(engine).get_columns("orders")]
    print("clone columns:", columns)
    sys.exit(0 if "currency" in columns else 1)
''')


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_the_users_tests_run_against_the_migrated_copy(demo, dialect, tmp_path):
    repair_demo_data(demo.db)
    (tmp_path / "check_clone.py").write_text(_CHECK_SCRIPT)
    plan = plan_migration(demo.target(), tmp_path / "plan")
    command = f"{sys.executable} {tmp_path / 'check_clone.py'}"
    result = rehearsal.rehearse(demo.target(), plan.script_dir, probes=False, test_cmd=command)
    assert result.tests.passed and result.tests.returncode == 0
    assert "currency" in result.tests.output
    assert [f.code for f in rehearsal.findings_for_tests(result)] == ["RH020"]
    # The target itself was not migrated: the same script fails against it.
    failing = rehearsal.run_tests(command, make_engine(demo.db).url)
    assert not failing.passed and failing.returncode == 1
    assert "currency" not in failing.output.split("clone columns:")[-1]


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_tests_are_not_run_when_the_upgrade_fails(demo, tmp_path):
    plan = plan_migration(demo.target(), tmp_path / "plan")
    result = rehearsal.rehearse(demo.target(), plan.script_dir, test_cmd="true")
    assert result.tests is None and "fails" in result.tests_skipped
    assert [f.code for f in rehearsal.findings_for_tests(result)] == ["RH022"]


def test_recorded_output_masks_the_password():
    url = sa.make_url("postgresql+psycopg://app:s3cr%40t-pw@db.example:5432/shop")
    run = rehearsal.run_tests('echo "$DATABASE_URL"; echo "$DBRUNBOOK_CLONE_URL" >&2; exit 4', url)
    assert not run.passed and run.returncode == 4
    assert "s3cr" not in run.output and run.output.count("***") == 2
    assert rehearsal.finding_for_test_run(run).severity == "block"


def test_a_slow_test_command_is_stopped():
    run = rehearsal.run_tests("sleep 30", sa.make_url("sqlite:///x.db"), timeout=0.5)
    assert run.timed_out and not run.passed and run.seconds < 10


def test_copy_is_dropped_when_the_rehearsal_is_interrupted(demo, dialect, tmp_path, monkeypatch):
    plan = plan_migration(demo.target(), tmp_path / "plan")
    seen = []

    def interrupted(cfg, url, revision="head"):
        seen.append(url)
        raise KeyboardInterrupt

    monkeypatch.setattr(rehearsal, "apply_upgrade", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rehearsal.rehearse(demo.target(), plan.script_dir)
    assert seen and not scratch_gone(demo.db, dialect)
    assert scratch_gone(seen[0], dialect)


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_a_sample_copy_rehearses_too(demo, tmp_path):
    repair_demo_data(demo.db)
    plan = plan_migration(demo.target(), tmp_path / "plan")
    result = rehearsal.rehearse(demo.target(), plan.script_dir, mode="sample", rows=30)
    assert result.upgrade.ok and result.mode == "sample"
    assert all(p.status == "rejected" for p in result.probes)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_rehearse_command(demo, monkeypatch):
    from click.testing import CliRunner

    from dbrunbook.cli import main

    monkeypatch.chdir(demo.path)  # the demo's pyproject names its database relative to the project
    runner = CliRunner()
    blocked = runner.invoke(main, ["rehearse", "--project", str(demo.path), "--scale", "2x", "--test-cmd", "true"])
    assert blocked.exit_code == 1, blocked.output
    assert "grown to 4,020 rows" in blocked.output and "block RH001" in blocked.output and "RH022" in blocked.output
    bad = runner.invoke(main, ["rehearse", "--project", str(demo.path), "--scale", "lots"])
    assert bad.exit_code == 2 and "--scale" in bad.output and "Traceback" not in bad.output
    repair_demo_data(demo.db)
    passed = runner.invoke(main, ["rehearse", "--project", str(demo.path), "--mode", "sample", "--rows", "50"])
    assert passed.exit_code == 0, passed.output
    assert "info RH010" in passed.output
