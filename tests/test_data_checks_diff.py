"""Stage 05 judges the change the project's one diff engine (``dbrunbook.schema``) gives, on every dialect.

The typed changes (stage 01's when given, else computed the same way) are translated into what each check reads;
a declared rename is a rename, never a drop and an add, so it loses no data (no DC006), and a later change of the
renamed column is checked on the column under its live name.
"""
from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.core.results import load_result
from dbrunbook.schema import Change, as_changes, diff, snapshot, snapshot_metadata
from dbrunbook.stages.data_checks import _diff, change_source, run_checks
from helpers.projects import pending_project
from helpers.runs import run_stages

USERS, WITH_EMAIL = 30, 25

BASE = '''revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(100)))
def downgrade():
    op.drop_table("users")
'''
RENAME = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.alter_column("users", "email", new_column_name="mail", existing_type=sa.String(100))
def downgrade():
    op.alter_column("users", "mail", new_column_name="email", existing_type=sa.String(100))
'''


def _project(tmp_path: Path, url: str) -> Target:
    def fill(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(100))"))
        conn.execute(sa.text("INSERT INTO users VALUES (:id, :email)"),
                     [{"id": i, "email": f"u{i}@x" if i <= WITH_EMAIL else None} for i in range(1, USERS + 1)])

    return pending_project(tmp_path / "project", url, {"0001_base.py": BASE, "0002_rename.py": RENAME}, fill)


def test_a_revision_that_renames_a_column_loses_no_data(db_url, dialect, tmp_path):
    target = _project(tmp_path, db_url)
    source = change_source(target, work_dir=tmp_path)
    assert source.renames == {"users.email": "users.mail"}
    engine = make_engine(db_url)
    try:
        renamed = run_checks(engine, source.metadata, renames=source.renames, models=False)
        # What the rename would be taken for without the declaration: a drop of every email.
        unrenamed = run_checks(engine, source.metadata, models=False)
    finally:
        engine.dispose()
    assert "rename_column users.mail" in renamed.diffs and not any("remove_column" in d for d in renamed.diffs)
    assert [r for r in renamed.results if r.code == "DC006"] == []  # before any settling: no drop was checked
    dropped = {r.object: r.count for r in unrenamed.results if r.code == "DC006"}
    assert dropped == {"users.email": WITH_EMAIL}


def test_stage_05_judges_the_change_stage_01_recorded(db_url, dialect, tmp_path):
    target = _project(tmp_path, db_url)
    run, result = run_stages(target, tmp_path / "runs", ["01", "05"])
    assert run.stages[-1].status != "block", result.findings
    assert "DC006" not in {f.code for f in result.findings}, result.findings
    recorded = load_result(run.path, "01-schema-analysis")
    assert recorded is not None
    changes = [_diff.describe(c) for c in as_changes(recorded.data["changes"])]
    checks = json.loads((run.path / "05-data-checks" / "checks.json").read_text())
    assert checks["diffs"] == changes and "rename_column users.mail" in changes, (checks["diffs"], changes)


def _table(meta: sa.MetaData, column: str, nullable: bool) -> sa.Table:
    return sa.Table("people", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                    sa.Column(column, sa.String(20), nullable=nullable))


def test_a_renamed_column_set_not_null_is_counted_under_its_live_name(db_url, dialect):
    engine = make_engine(db_url)
    live = sa.MetaData()
    people = _table(live, "nick", True)
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(people.insert(), [{"id": 1, "nick": "a"}, {"id": 2, "nick": None}, {"id": 3, "nick": None}])
    target = sa.MetaData()
    _table(target, "handle", False)
    try:
        report = run_checks(engine, target, renames={"people.nick": "people.handle"})
    finally:
        engine.dispose()
    counts = {(r.code, r.object): r.count for r in report.results}
    assert counts == {("DC001", "people.nick"): 2}, report.results
    assert report.diffs == ["rename_column people.handle", "modify_nullable people.handle"]


def test_given_changes_are_the_ones_checked(db_url, dialect):
    engine = make_engine(db_url)
    live = sa.MetaData()
    people = _table(live, "nick", True)
    sa.Table("old stuff", live, sa.Column("id", sa.Integer, primary_key=True))
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(people.insert(), [{"id": 1, "nick": None}, {"id": 2, "nick": "b"}, {"id": 3, "nick": "b"}])
    target = sa.MetaData()
    goal = _table(target, "nick", False)
    goal.append_constraint(sa.UniqueConstraint("nick", name="uq_people_nick"))
    try:
        computed = diff(snapshot(engine), snapshot_metadata(target, engine.dialect)).changes
        assert {c.op for c in computed} == {"modify_nullable", "add_unique", "remove_table"}
        only_unique = [c for c in computed if c.op == "add_unique"]
        from_json = [c.to_json() for c in computed]  # as stage 01 records them
        chosen = run_checks(engine, target, changes=only_unique)
        nothing = run_checks(engine, target, changes=[])
        everything = run_checks(engine, target, changes=[Change(**c) for c in from_json])
        again = run_checks(engine, target)
    finally:
        engine.dispose()
    assert {(r.code, r.count) for r in chosen.results} == {("DC002", 1)}
    assert nothing.results == [] and nothing.diffs == []
    found = {(r.code, r.object): r.count for r in everything.results}
    assert found == {("DC001", "people.nick"): 1, ("DC002", "people.nick"): 1, ("DC006", "old stuff.id"): 0}
    assert {(r.code, r.object): r.count for r in again.results} == found
    assert sorted(again.diffs) == sorted(everything.diffs) and "remove_table old stuff" in again.diffs
    assert set(again.tables) == {"old stuff", "people"}


def test_stage_05_no_longer_uses_alembic_autogenerate():
    text = Path(_diff.__file__).read_text()
    assert "compare_metadata" not in text and "alembic" not in text.split('"""', 2)[2]
