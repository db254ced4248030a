"""Reversibility: the downgrade exists, undoes every upgrade operation, and lossy rollbacks are named."""
from __future__ import annotations

import pytest

from dbrunbook.lint import parse_sql, reversibility
from helpers.lint_project import BASE, UNSAFE
from helpers.projects import write_project


def _check(up, down, dialect="postgresql"):
    return reversibility.check(parse_sql(up, dialect), parse_sql(down, dialect))


@pytest.mark.parametrize("up,down,undone,lost", [
    ("ALTER TABLE t ADD COLUMN c int", "ALTER TABLE t DROP COLUMN c", True, ""),
    ("ALTER TABLE t DROP COLUMN c", "ALTER TABLE t ADD COLUMN c int", True, "the values of t.c"),
    ("ALTER TABLE t ALTER COLUMN c TYPE varchar(50)", "ALTER TABLE t ALTER COLUMN c TYPE varchar(10)", True,
     "values of t.c that do not fit varchar(10) (the upgrade made it varchar(50))"),
    ("ALTER TABLE t ALTER COLUMN c TYPE varchar(10)", "ALTER TABLE t ALTER COLUMN c TYPE varchar(50)", True, ""),
    ("CREATE INDEX ix ON t (c)", "SELECT 1", False, ""),
    ("ALTER TABLE t RENAME COLUMN a TO b", "ALTER TABLE t RENAME COLUMN b TO a", True, ""),
    ("ALTER TABLE t RENAME TO u", "ALTER TABLE u RENAME TO t", True, ""),
    ("DROP TABLE t", "CREATE TABLE t (id int)", True, "every row of t"),
    ("TRUNCATE t", "", True, "every row of t"),
])
def test_pairs(up, down, undone, lost):
    [item] = _check(up, down)
    assert (item.undone, item.lost) == (undone, lost)


def test_dropping_the_table_undoes_what_was_done_to_it():
    items = _check("CREATE TABLE t (id int); CREATE INDEX ix ON t (id)", "DROP TABLE t")
    assert [(i.action.kind, i.undone, i.inverse) for i in items] == [
        ("create_table", True, "drop table t"), ("create_index", True, "drop table t")]


def test_temporary_steps_of_the_upgrade_need_no_undo():
    up = ("ALTER TABLE t ADD CONSTRAINT ck CHECK (c IS NOT NULL) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT ck; "
          "ALTER TABLE t ALTER COLUMN c SET NOT NULL; ALTER TABLE t DROP CONSTRAINT ck")
    items = _check(up, "ALTER TABLE t ALTER COLUMN c DROP NOT NULL")
    assert [(i.action.kind, i.undone) for i in items] == [("set_not_null", True)]


def test_revision_operations_are_compared(tmp_path):
    write_project(tmp_path, "postgresql+psycopg://postgres@127.0.0.1/unused",
                  {"0001_base.py": BASE, "0002_unsafe.py": UNSAFE})
    reversals, findings = reversibility.analyse(tmp_path / "migrations", ["0002"])
    assert all(r.undone for r in reversals) and len(reversals) == 7
    assert [(f.code, f.object) for f in findings] == [("RB003", "accounts.notes")]


def test_missing_and_incomplete_downgrades(tmp_path):
    no_down = UNSAFE[:UNSAFE.index("def downgrade")] + "def downgrade():\n    pass\n"
    write_project(tmp_path / "a", "postgresql+psycopg://postgres@127.0.0.1/unused",
                  {"0001_base.py": BASE, "0002_unsafe.py": no_down})
    _, findings = reversibility.analyse(tmp_path / "a" / "migrations", ["0002"])
    assert "RB001" in {f.code for f in findings}
    partial = UNSAFE.replace('    op.drop_index("ix_accounts_name", table_name="accounts")\n', "")
    write_project(tmp_path / "b", "postgresql+psycopg://postgres@127.0.0.1/unused",
                  {"0001_base.py": BASE, "0002_unsafe.py": partial})
    _, findings = reversibility.analyse(tmp_path / "b" / "migrations", ["0002"])
    assert ("RB002", "accounts.ix_accounts_name") in {(f.code, f.object) for f in findings}
