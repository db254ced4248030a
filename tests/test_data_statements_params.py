"""Data statements a revision runs with bound parameters, counted by stage 05 like those written with literals.

``op.get_bind().execute(sa.text("UPDATE ... :t"), {...})`` and SQLAlchemy Core (``op.execute(users.delete()
.where(users.c.id > 280))``) reach the driver with placeholders; the Alembic process records each such statement
with its values inlined too, so stage 05 counts the rows it touches on the target, with the same exact counts on
SQLite, PostgreSQL and MariaDB. A statement run through ``exec_driver_sql`` with the driver's own parameters is
still named as not analysed (DC113), with the reason; a ``%`` the revision wrote shows once in the messages,
whatever the driver's paramstyle.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dbrunbook.core.config import Target
from dbrunbook.core.results import StageResult
from helpers.projects import pending_project
from helpers.runs import run_stages

USERS = 300
#: Row i was created on FIRST_DAY + i days.
FIRST_DAY = dt.date(2019, 1, 1)

BASE = '''revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(100)),
                    sa.Column("name", sa.String(50)), sa.Column("created", sa.Date))
def downgrade():
    op.drop_table("users")
'''
HEAD = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String), sa.column("name", sa.String))
def downgrade():
    pass
def upgrade():
'''
BACKFILL = '''    op.add_column("users", sa.Column("tier", sa.String(20), nullable=True))
    op.get_bind().execute(sa.text("UPDATE users SET tier = :t WHERE created < :d"), {{"t": "gold", "d": "{before}"}})
    with op.batch_alter_table("users") as batch:
        batch.alter_column("tier", existing_type=sa.String(20), nullable=False)
'''


def _project(tmp_path: Path, url: str, upgrade: str) -> Target:
    def fill(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(100), name VARCHAR(50), "
                             "created DATE)"))
        rows = [{"id": i, "email": f"u{i}@x", "name": f"name{i}", "created": FIRST_DAY + dt.timedelta(days=i)}
                for i in range(1, USERS + 1)]
        conn.execute(sa.text("INSERT INTO users VALUES (:id, :email, :name, :created)"), rows)

    return pending_project(tmp_path / "project", url, {"0001_base.py": BASE, "0002_change.py": HEAD + upgrade}, fill)


def _stage_05(tmp_path: Path, url: str, upgrade: str) -> tuple[str, StageResult]:
    run, result = run_stages(_project(tmp_path, url, upgrade), tmp_path / "runs", ["05"])
    return run.stages[0].status, result


def _by_code(result: StageResult) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for finding in result.findings:
        found.setdefault(finding.code, []).append({"severity": finding.severity, "message": finding.message,
                                                   **finding.evidence})
    return found


@pytest.mark.parametrize("before, left", [("2020-01-01", 0), ("2019-09-01", USERS - 242)])
def test_a_backfill_with_bound_parameters_is_counted_before_not_null(db_url, dialect, tmp_path, before, left):
    # Row i is covered when FIRST_DAY + i days < before: every row for 2020, rows 1..242 for 2019-09-01.
    status, result = _stage_05(tmp_path, db_url, BACKFILL.format(before=before))
    found = _by_code(result)
    [update] = found["DC110"]
    assert update["count"] == USERS - left, update["message"]
    assert "SET tier = 'gold'" in update["message"] and f"'{before}'" in update["message"]
    assert "DC113" not in found, found.get("DC113")
    if not left:
        assert "DC001" not in found, found["DC001"]
        assert status != "block"
        return
    [dc001] = found["DC001"]
    assert dc001["severity"] == "block" and dc001["count"] == left, dc001["message"]
    assert [row["id"] for row in dc001["sample"]] == list(range(243, 253))
    assert status == "block"


def test_core_statements_with_bound_parameters_are_counted(db_url, dialect, tmp_path):
    upgrade = ('    op.execute(users.update().where(users.c.id < 100).values(name="renamed"))\n'
               # An executemany whose SET columns come from the parameters: one statement per parameter set.
               '    op.get_bind().execute(users.update().where(users.c.id == sa.bindparam("b_id")),\n'
               '                          [{"b_id": 150, "name": "one"}, {"b_id": 151, "name": "two"}])\n'
               '    op.execute(users.delete().where(sa.or_(users.c.id > 280, users.c.email.in_(["u1@x", "u2@x"]))))\n')
    status, result = _stage_05(tmp_path, db_url, upgrade)
    found = _by_code(result)
    updates = found["DC110"]
    assert [u["count"] for u in updates] == [99, 1, 1], [u["message"] for u in updates]
    assert ["'renamed'" in updates[0]["message"], "'one'" in updates[1]["message"], "'two'" in updates[2]["message"]] \
        == [True, True, True]
    assert [row["id"] for row in updates[2]["sample"]] == [151]
    [deleted] = found["DC111"]
    lost = [1, 2, *range(281, USERS + 1)]
    assert deleted["count"] == len(lost) and deleted["severity"] == "block", deleted["message"]
    assert [row["id"] for row in deleted["sample"]] == lost[:10]
    assert "DC113" not in found and status == "block"


def test_a_statement_with_driver_parameters_stays_not_analysed(db_url, dialect, tmp_path):
    upgrade = ('    bind = op.get_bind()\n'
               '    mark = "?" if bind.dialect.paramstyle == "qmark" else "%s"\n'
               '    bind.exec_driver_sql(f"UPDATE users SET name = {mark} WHERE id = 1", ("x",))\n')
    status, result = _stage_05(tmp_path, db_url, upgrade)
    [unread] = _by_code(result)["DC113"]
    assert unread["severity"] == "warn" and "UPDATE users SET name" in unread["message"]
    assert "exec_driver_sql with the driver's own parameters" in unread["message"]
    assert "DC110" not in _by_code(result) and status != "block"


def test_a_percent_the_revision_wrote_shows_once(db_url, dialect, tmp_path):
    upgrade = ('''    op.get_bind().execute(sa.text("UPDATE users SET name = :n WHERE email LIKE 'u29%'"),\n'''
               '''                          {"n": "x%y"})\n'''
               '''    op.execute("DELETE FROM users WHERE email LIKE 'u3%@x' AND id < 40")\n''')
    _, result = _stage_05(tmp_path, db_url, upgrade)
    found = _by_code(result)
    [update] = found["DC110"]
    assert update["count"] == 11, update["message"]  # u29 and u290..u299
    assert "SET name = 'x%y' WHERE email LIKE 'u29%'" in update["message"]
    assert "LIKE 'u29%'" in update["statement"]
    [deleted] = found["DC111"]
    assert deleted["count"] == 11, deleted["message"]  # u3 and u30..u39
    assert "LIKE 'u3%@x'" in deleted["message"]
    assert all("%%" not in f["message"] and "%%" not in f["statement"] for f in [update, deleted])
