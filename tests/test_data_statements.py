"""The data statements of hand-written revisions, counted on the target in the order the migration runs them.

Real Alembic revisions are applied (in the fenced Alembic process) to a schema-only copy of a real database on every
dialect; stage 05's checks then count each UPDATE / DELETE / INSERT ... SELECT by its own predicate on the target's
rows, and count a later SET NOT NULL on the rows the migration's backfill leaves NULL, with the same codes and
counts on SQLite, PostgreSQL and MariaDB.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.core.config import Target
from dbrunbook.stages.data_checks import CheckReport, change_source, run_checks, settle
from helpers.projects import pending_project

USERS = 300
#: Rows 41..63 have no nickname; of those, rows 41..50 have no name either.
NO_NICKNAME = range(41, 64)
NO_NAME = range(41, 51)

BASE = '''revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(100)),
                    sa.Column("name", sa.String(50)), sa.Column("nickname", sa.String(50)))
def downgrade():
    op.drop_table("users")
'''
HEAD = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def downgrade():
    pass
def upgrade():
'''
ADD_HANDLE = '    op.add_column("users", sa.Column("handle", sa.String(60), nullable=True))\n'


def _not_null(column: str, length: int = 60) -> str:
    return (f'    with op.batch_alter_table("users") as batch:\n'
            f'        batch.alter_column("{column}", existing_type=sa.String({length}), nullable=False)\n')


def _execute(*statements: str) -> str:
    return "".join(f"    op.execute({s!r})\n" for s in statements)


def _project(tmp_path: Path, url: str, upgrade: str) -> Target:
    def fill(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(100), name VARCHAR(50), "
                             "nickname VARCHAR(50))"))
        rows = [{"id": i, "email": f"u{i}@x", "name": None if i in NO_NAME else f"name{i}",
                 "nickname": None if i in NO_NICKNAME else f"n{i}"} for i in range(1, USERS + 1)]
        conn.execute(sa.text("INSERT INTO users VALUES (:id, :email, :name, :nickname)"), rows)

    return pending_project(tmp_path / "project", url, {"0001_base.py": BASE, "0002_change.py": HEAD + upgrade}, fill)


def _checks(tmp_path: Path, url: str, upgrade: str, live: tuple[str, ...] = ()) -> CheckReport:
    """The checks of the pending revision ``upgrade``, on the users table after the ``live`` statements."""
    target = _project(tmp_path, url, upgrade)
    if live:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            for sql in live:
                conn.execute(sa.text(sql))
        engine.dispose()
    source = change_source(target, work_dir=tmp_path / "work")
    assert source.source == "revisions" and source.metadata is not None, source.note
    engine = sa.create_engine(url)
    try:
        report = run_checks(engine, source.metadata, steps=source.steps)
    finally:
        engine.dispose()
    report.results = settle(report.results, source, None)
    return report


def _by_code(report: CheckReport) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for finding in report.findings():
        found.setdefault(finding.code, []).append({"severity": finding.severity, "message": finding.message,
                                                   **finding.evidence})
    return found


def test_a_full_backfill_passes_and_its_update_is_named(db_url, dialect, tmp_path):
    report = _checks(tmp_path, db_url, ADD_HANDLE + _execute("UPDATE users SET handle = email") + _not_null("handle"))
    found = _by_code(report)
    assert not report.blocking, report.summary()
    assert "DC001" not in found, found["DC001"]
    [dc001] = [r for r in report.results if r.code == "DC001"]
    assert dc001.count == 0 and dc001.evidence["counted_before"] == USERS  # every row, before the backfill
    [update] = found["DC110"]
    assert update["count"] == USERS and update["severity"] == "info"
    assert [row["id"] for row in update["sample"]] == list(range(1, 11))
    assert update["sample"][0]["handle (new)"] == "u1@x"
    [unfiltered] = found["DC112"]  # no WHERE on a non-empty table: named
    assert unfiltered["count"] == USERS and unfiltered["severity"] == "warn"
    assert "UPDATE users SET handle = email" in unfiltered["message"]


@pytest.mark.parametrize("backfill, left", [
    (["UPDATE users SET handle = upper(email) WHERE id <= 250"], list(range(251, USERS + 1))),
    (["UPDATE users SET handle = name"], list(NO_NAME)),
    (["UPDATE users SET handle = CASE WHEN id > 5 THEN name END WHERE id <= 280"],
     [*range(1, 6), *NO_NAME, *range(281, USERS + 1)]),
    # The second statement sees the first one's values: its WHERE handle IS NULL skips rows 1..30.
    (["UPDATE users SET handle = email WHERE id <= 30", "UPDATE users SET handle = name WHERE handle IS NULL",
      "UPDATE users SET handle = NULL WHERE id > 295"], [*NO_NAME, *range(296, USERS + 1)]),
])
def test_a_partial_backfill_blocks_with_the_rows_it_leaves_null(db_url, dialect, tmp_path, backfill, left):
    report = _checks(tmp_path, db_url, ADD_HANDLE + _execute(*backfill) + _not_null("handle"))
    [dc001] = _by_code(report)["DC001"]
    assert dc001["severity"] == "block", dc001
    assert dc001["count"] == len(left), dc001["message"]
    assert dc001["problem"] == "null" and dc001["added_by_migration"] is True
    assert [row["id"] for row in dc001["sample"]] == left[:10]
    assert all(row["handle"] is None for row in dc001["sample"])
    assert all(statement in dc001["message"] for statement in backfill)


def test_a_backfill_of_an_existing_column_counts_what_its_where_and_expression_miss(db_url, dialect, tmp_path):
    # nickname is NULL in rows 41..63; the backfill takes name, itself NULL in rows 41..50, and skips 60..63.
    backfill = "UPDATE users SET nickname = name WHERE nickname IS NULL AND id < 60"
    report = _checks(tmp_path, db_url, _execute(backfill) + _not_null("nickname", 50))
    [dc001] = _by_code(report)["DC001"]
    assert dc001["count"] == len(NO_NAME) + 4 and dc001["severity"] == "block"
    assert dc001["counted_before"] == len(NO_NICKNAME) and dc001["added_by_migration"] is False
    assert [row["id"] for row in dc001["sample"]] == [*NO_NAME, 60, 61, 62, 63][:10]
    [update] = _by_code(report)["DC110"]
    assert update["count"] == 19  # rows 41..59


def test_a_delete_reports_how_many_and_which_rows_and_later_checks_see_it(db_url, dialect, tmp_path):
    report = _checks(tmp_path, db_url, _execute("DELETE FROM users WHERE nickname IS NULL OR email LIKE 'u29%'")
                     + _not_null("nickname", 50))
    found = _by_code(report)
    [deleted] = found["DC111"]
    lost = sorted({*NO_NICKNAME, 29, *range(290, 300)})
    assert deleted["count"] == len(lost) and deleted["severity"] == "block"
    assert [row["id"] for row in deleted["sample"]] == lost[:10]
    assert {"id", "email", "name", "nickname"} <= set(deleted["sample"][0])
    assert "DC001" not in found  # the rows with NULL nicknames are gone before SET NOT NULL
    assert "DC112" not in found


def test_a_delete_without_where_is_named(db_url, dialect, tmp_path):
    found = _by_code(_checks(tmp_path, db_url, _execute("DELETE FROM users")))
    assert found["DC111"][0]["count"] == USERS and found["DC112"][0]["count"] == USERS
    assert "removes every one" in found["DC112"][0]["message"]


def test_insert_select_is_counted_and_unreadable_statements_are_named(db_url, dialect, tmp_path):
    upgrade = ('    op.create_table("archive", sa.Column("id", sa.Integer, primary_key=True), '
               'sa.Column("email", sa.String(100)))\n'
               + _execute("INSERT INTO archive (id, email) SELECT id, email FROM users WHERE id <= 40")
               # The driver's own parameters: their values are not recorded (bound SQLAlchemy ones are, see
               # test_data_statements_params.py).
               + '    bind = op.get_bind()\n'
               + '    bind.exec_driver_sql("UPDATE users SET name = " + ("?" if bind.dialect.paramstyle == "qmark" '
                 'else "%s") + " WHERE id = 1", ("x",))\n')
    report = _checks(tmp_path, db_url, upgrade)
    found = _by_code(report)
    [inserted] = found["DC110"]
    assert inserted["count"] == 40 and inserted["verb"] == "insert"
    assert [row["id"] for row in inserted["sample"]] == list(range(1, 11))
    [unread] = found["DC113"]
    assert unread["severity"] == "warn" and "UPDATE users" in unread["message"]
    assert not report.blocking



def test_a_column_renamed_earlier_in_the_migration_keeps_its_values(db_url, dialect, tmp_path):
    # SQLite renames by a batch copy, the others by RENAME COLUMN: either way mail holds the emails.
    rename = ('    with op.batch_alter_table("users") as batch:\n'
              '        batch.alter_column("email", new_column_name="mail", existing_type=sa.String(100))\n')
    report = _checks(tmp_path, db_url, rename + _execute("UPDATE users SET nickname = mail WHERE nickname IS NULL")
                     + _not_null("nickname", 50))
    found = _by_code(report)
    assert "DC001" not in found and "DC113" not in found, found
    [update] = found["DC110"]
    assert update["count"] == len(NO_NICKNAME) and update["sample"][0]["nickname (new)"] == "u41@x"


def test_a_statement_that_cannot_be_counted_is_named_and_the_checks_go_on(db_url, dialect, tmp_path):
    # The UPDATE reads a table the migration creates: the target has no such table, so its values cannot be had.
    upgrade = ('    op.create_table("lookup", sa.Column("id", sa.Integer, primary_key=True), '
               'sa.Column("label", sa.String(50)))\n'
               + _execute("INSERT INTO lookup (id, label) VALUES (1, 'x')",
                          "UPDATE users SET nickname = (SELECT label FROM lookup WHERE lookup.id = 1) "
                          "WHERE nickname IS NULL")
               + _not_null("nickname", 50))
    found = _by_code(_checks(tmp_path, db_url, upgrade))
    [unread] = found["DC113"]
    assert unread["severity"] == "warn" and "counting its rows failed" in unread["message"]
    [dc001] = found["DC001"]  # counted as the schema comparison sees it, saying why
    assert dc001["count"] == len(NO_NICKNAME) and "could not be replayed" in dc001["message"]


#: Rows 1..40 share 8 emails (dup0@x .. dup7@x by id % 8): rows 1..8 hold one of each, 32 rows are surplus.
DUPLICATES = tuple(f"UPDATE users SET email = 'dup{i % 8}@x' WHERE id = {i}" for i in range(1, 41))
UNIQUE_EMAIL = ('    with op.batch_alter_table("users") as batch:\n'
                '        batch.create_unique_constraint("uq_users_email", ["email"])\n')


@pytest.mark.parametrize("dedupe", ["DELETE FROM users WHERE id > 8 AND id <= 40",
                                    "UPDATE users SET email = NULL WHERE id > 8 AND id <= 40"])
def test_a_dedupe_before_unique_is_credited(db_url, dialect, tmp_path, dedupe):
    report = _checks(tmp_path, db_url, _execute(dedupe) + UNIQUE_EMAIL, DUPLICATES)
    [dc002] = [r for r in report.results if r.code == "DC002"]
    assert (dc002.count, dc002.severity) == (0, "info"), dc002.message
    assert dc002.evidence["counted_before"] == 32 and dc002.evidence["after"] == [dedupe]
    assert "leaves no two rows of users sharing (email)" in dc002.message
    found = _by_code(report)
    if dedupe.startswith("DELETE"):  # the rows the dedupe deletes are still data lost, named as such
        assert [(r.code, r.count) for r in report.blocking] == [("DC111", 32)]
    else:
        assert not report.blocking, report.summary()
        assert found["DC110"][0]["count"] == 32


def test_a_dedupe_that_misses_rows_blocks_with_the_duplicates_it_leaves(db_url, dialect, tmp_path):
    dedupe = "DELETE FROM users WHERE id > 16 AND id <= 40"
    report = _checks(tmp_path, db_url, _execute(dedupe) + UNIQUE_EMAIL, DUPLICATES)
    [dc002] = _by_code(report)["DC002"]
    assert dc002["severity"] == "block" and dc002["count"] == 8, dc002["message"]
    assert (dc002["groups"], dc002["rows_in_groups"], dc002["counted_before"]) == (8, 16, 32)
    assert dedupe in dc002["message"] and "8 duplicate rows of users in 8 groups (16 rows)" in dc002["message"]
    # The first groups, whole: dup0@x is rows 8 and 16, dup1@x rows 1 and 9, ...
    assert [(row["email"], row["id"]) for row in dc002["sample"]][:4] == [("dup0@x", 8), ("dup0@x", 16),
                                                                          ("dup1@x", 1), ("dup1@x", 9)]
    assert len(dc002["sample"]) == 16


def test_an_update_that_makes_duplicates_before_unique_blocks(db_url, dialect, tmp_path):
    # The live emails are all distinct: only the migration's own UPDATE makes rows 1..3 share one.
    report = _checks(tmp_path, db_url, _execute("UPDATE users SET email = 'same@x' WHERE id <= 3") + UNIQUE_EMAIL)
    [dc002] = _by_code(report)["DC002"]
    assert (dc002["count"], dc002["counted_before"], dc002["severity"]) == (2, 0, "block")
    assert [row["id"] for row in dc002["sample"]] == [1, 2, 3]


TEAMS = ("CREATE TABLE teams (id INTEGER PRIMARY KEY, label VARCHAR(20))",
         "INSERT INTO teams VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')",
         "CREATE TABLE members (id INTEGER PRIMARY KEY, team_id INTEGER)",
         # team_id = id % 8: 0, 6 and 7 have no team (rows 6, 7, 8, 14, 15, 16, ...); row 40 has none at all.
         *(f"INSERT INTO members VALUES ({i}, {'NULL' if i == 40 else i % 8})" for i in range(1, 41)))
FOREIGN_KEY = ('    with op.batch_alter_table("members") as batch:\n'
               '        batch.create_foreign_key("fk_members_team", "teams", ["team_id"], ["id"])\n')
ORPHANS = [i for i in range(1, 40) if i % 8 in (0, 6, 7)]


@pytest.mark.parametrize("cleanup, left", [
    ("DELETE FROM members WHERE team_id NOT IN (SELECT id FROM teams)", []),
    ("UPDATE members SET team_id = NULL WHERE team_id NOT IN (SELECT id FROM teams)", []),
    ("DELETE FROM members WHERE team_id = 0", [i for i in ORPHANS if i % 8]),
])
def test_orphans_removed_before_the_foreign_key_are_credited(db_url, dialect, tmp_path, cleanup, left):
    report = _checks(tmp_path, db_url, _execute(cleanup) + FOREIGN_KEY, TEAMS)
    [dc003] = [r for r in report.results if r.code == "DC003"]
    assert dc003.count == len(left) and dc003.evidence["counted_before"] == len(ORPHANS), dc003.message
    assert dc003.evidence["after"] == [cleanup] and dc003.evidence["references"] == "teams"
    assert dc003.sample["id"].tolist() == left[:10]
    if left:  # SQLite keeps orphans (keys off): the others refuse the key
        assert dc003.severity == ("warn" if dialect == "sqlite" else "block") and cleanup in dc003.message
    else:
        assert dc003.severity == "info" and "leaves no row of members without its row in teams" in dc003.message
        assert not [r for r in report.blocking if r.code != "DC111"], report.summary()
