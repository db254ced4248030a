"""Stage 05 without models: the data checks come from the pending revisions, on every dialect.

A users table with duplicated emails and NULL nicknames, and a hand-written revision that adds UNIQUE(email) and
sets nickname NOT NULL: stage 05 blocks with the exact counts, from the revision alone. An expand/contract revision
(nullable column, backfill UPDATE, SET NOT NULL) is judged by its backfill, counted on the real rows: it passes
when the UPDATE fills every row and blocks with the exact count of rows it leaves NULL; a rename is not a drop.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.core.config import Target
from helpers.projects import pending_project
from helpers.runs import run_stages

USERS, DUPLICATED_ROWS, GROUPS, NULL_NICKNAMES = 300, 40, 8, 23

UNIQUE_AND_NOT_NULL = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.create_unique_constraint("uq_users_email", ["email"])
        batch.alter_column("nickname", existing_type=sa.String(50), nullable=False)
def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.alter_column("nickname", existing_type=sa.String(50), nullable=True)
        batch.drop_constraint("uq_users_email", type_="unique")
'''
EXPAND_CONTRACT = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.add_column("users", sa.Column("handle", sa.String(60), nullable=True))
    op.execute("UPDATE users SET handle = {backfill}")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("handle", existing_type=sa.String(60), nullable=False)
        batch.alter_column("email", new_column_name="mail", existing_type=sa.String(100))
def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.alter_column("mail", new_column_name="email", existing_type=sa.String(100))
    op.drop_column("users", "handle")
'''
BASE = '''revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("email", sa.String(100)),
                    sa.Column("nickname", sa.String(50)))
def downgrade():
    op.drop_table("users")
'''


def _project(tmp_path: Path, url: str, pending: str) -> Target:
    def fill(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(100), nickname VARCHAR(50))"))
        rows = [{"id": i, "email": f"dup{i % GROUPS}@x" if i <= DUPLICATED_ROWS else f"u{i}@x",
                 "nickname": None if DUPLICATED_ROWS < i <= DUPLICATED_ROWS + NULL_NICKNAMES else f"n{i}"}
                for i in range(1, USERS + 1)]
        conn.execute(sa.text("INSERT INTO users VALUES (:id, :email, :nickname)"), rows)

    return pending_project(tmp_path / "project", url, {"0001_base.py": BASE, "0002_change.py": pending}, fill)


def test_the_revision_alone_gives_the_exact_counts(db_url, dialect, tmp_path):
    target = _project(tmp_path, db_url, UNIQUE_AND_NOT_NULL)
    run, result = run_stages(target, tmp_path / "runs", ["04", "05"])
    assert [s.status for s in run.stages] == ["block", "block"], run.stages
    by_code = {f.code: f for f in result.findings}
    assert by_code["DC001"].evidence["count"] == NULL_NICKNAMES and by_code["DC001"].severity == "block"
    assert by_code["DC002"].evidence["groups"] == GROUPS and by_code["DC002"].severity == "block"
    assert by_code["DC002"].evidence["count"] == DUPLICATED_ROWS - GROUPS  # surplus rows: all but one per group


@pytest.mark.parametrize("backfill, blocks", [("email", False), ("CASE WHEN id > 5 THEN email END", True)])
def test_an_expand_contract_revision_is_judged_by_its_backfill(db_url, dialect, tmp_path, backfill, blocks):
    target = _project(tmp_path, db_url, EXPAND_CONTRACT.format(backfill=backfill))
    run, result = run_stages(target, tmp_path / "runs", ["04", "05"])
    rehearsal, checks = run.stages
    codes = {f.code: f for f in result.findings}
    assert "DC006" not in codes, result.findings  # email is renamed to mail, not dropped
    if blocks:
        assert rehearsal.status == "block"
        # Counted after the revision's own backfill: rows 1..5 stay NULL, so SET NOT NULL fails on every dialect
        # (seen from the live schema alone, every row of the new column would have needed a value).
        assert codes["DC001"].evidence["count"] == 5 and codes["DC001"].evidence["counted_before"] == USERS
        assert codes["DC001"].severity == "block" and checks.status == "block"
        assert [row["id"] for row in codes["DC001"].evidence["sample"]] == [1, 2, 3, 4, 5]
        assert "DC103" not in codes  # no backfill plan is attempted for the column the revision adds itself
    else:
        assert rehearsal.status != "block", run.stages
        assert checks.status != "block", result.findings
        assert "DC001" not in codes or codes["DC001"].severity != "block"
    # The backfill itself is counted on the real rows, and named for having no WHERE.
    assert codes["DC110"].evidence["count"] == USERS and codes["DC110"].severity == "info"
    assert codes["DC112"].severity == "warn" and "UPDATE users SET handle" in codes["DC112"].message


DEFAULT_THEN_DROPPED = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("kind", sa.String(20), nullable=False, server_default="FINITE"))
    with op.batch_alter_table("users") as batch:
        batch.alter_column("kind", existing_type=sa.String(20), server_default=None)
def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("kind")
'''


def test_a_column_added_with_a_default_needs_no_value(db_url, dialect, tmp_path):
    # Optuna's v3.0.0.c shape: the default fills existing rows, then the revision drops it.
    target = _project(tmp_path, db_url, DEFAULT_THEN_DROPPED)
    run, result = run_stages(target, tmp_path / "runs", ["05"])
    assert "DC001" not in {f.code for f in result.findings}, result.findings
    assert run.stages[0].status != "block"


BOOKS_BASE = '''revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_table("books", sa.Column("id", sa.Integer, primary_key=True), sa.Column("price", sa.String(20)))
def downgrade():
    op.drop_table("books")
'''
TO_INTEGER = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    with op.batch_alter_table("books") as batch:
        batch.alter_column("price", type_=sa.Integer, existing_type=sa.String(20){using})
def downgrade():
    pass
'''
BOOKS_MODELS = '''import sqlalchemy as sa
metadata = sa.MetaData()
sa.Table("books", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("price", sa.Integer))
'''
#: Only digits: each converts as it stands.
CAST = ', postgresql_using="price::integer"'
#: Turns what is no number into NULL: every value converts, "x" too.
GUARDED = ''', postgresql_using="CASE WHEN price ~ '^[0-9]+$' THEN price::integer END"'''


@pytest.mark.parametrize("using, prices, blocks", [
    (CAST, ["12", "7", None], False),
    (CAST, ["12", "x", None], True),
    (GUARDED, ["12", "x", None], False),
    ("", ["12", "7", None], True),
])
def test_a_type_change_with_models_is_judged_by_the_revisions_own_using(db_url, dialect, tmp_path, using, prices,
                                                                        blocks):
    from dbrunbook.stages.data_checks import change_source, run_checks, settle

    project = tmp_path / "project"
    versions = project / "migrations" / "versions"
    versions.mkdir(parents=True)
    (project / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (project / "migrations" / "env.py").write_text(
        "from alembic import context\nconn = context.config.attributes['connection']\n"
        "context.configure(connection=conn)\nwith context.begin_transaction():\n    context.run_migrations()\n")
    (versions / "0001_base.py").write_text(BOOKS_BASE)
    (versions / "0002_change.py").write_text(TO_INTEGER.format(using=using))
    (project / "books_models.py").write_text(BOOKS_MODELS)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE books (id INTEGER PRIMARY KEY, price VARCHAR(20))"))
        conn.execute(sa.text("INSERT INTO books VALUES (:id, :price)"),
                     [{"id": i, "price": p} for i, p in enumerate(prices, 1)])
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('0001')"))
    target = Target.from_url(db_url, alembic_config=str(project / "alembic.ini"), project_dir=project,
                             models="books_models:metadata")
    source = change_source(target, tmp_path / "work" / "alembic")
    # Without USING the revision fails on PostgreSQL's empty copy too: then nothing of it is known but the models.
    assert source.source == "models" and (source.steps is not None or not using), source.note
    converted = source.steps.converted if source.steps is not None else {}
    try:
        report = run_checks(engine, source.metadata, steps=source.steps)
    finally:
        engine.dispose()
    report.results = settle(report.results, source, None)
    dc005 = {r.problem: r for r in report.results if r.code == "DC005"}
    if dialect != "postgresql":  # postgresql_using is PostgreSQL's: the others convert each value as it is
        assert "no_cast" not in dc005 and "using" not in dc005 and converted == {}
        assert dc005["bad_cast"].count == prices.count("x")
        return
    declared = converted.get("books.price", "")
    assert bool(declared) == bool(using) and (dc005.get("no_cast") is not None) == (using == "")
    assert (bool(report.blocking), [r.code for r in report.blocking if r.code != "DC005"]) == (blocks, [])
    if not using:
        assert dc005["no_cast"].count == len(prices) and dc005["no_cast"].severity == "block"
    elif blocks:  # the revision's USING fails on "x": the value that does not cast is counted, under that USING
        assert dc005["bad_cast"].count == 1 and dc005["bad_cast"].sample["id"].tolist() == [2]
        assert f"under USING {declared}" in dc005["bad_cast"].message and "using" not in dc005
    else:
        assert set(dc005) == {"using"} and dc005["using"].count == 0 and dc005["using"].evidence["using"] == declared
    # And the server agrees: the revision's ALTER passes exactly where the check does.
    alter = "ALTER TABLE books ALTER COLUMN price TYPE INTEGER" + (f" USING {declared}" if declared else "")
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            if blocks:
                with pytest.raises(sa.exc.DBAPIError):
                    conn.exec_driver_sql(alter)
            else:
                conn.exec_driver_sql(alter)
    finally:
        engine.dispose()


NOTE_ADDED = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.add_column("children", sa.Column("note", sa.String(20), nullable=True))
def downgrade():
    op.drop_column("children", "note")
'''


def test_what_the_server_made_or_rewrote_is_no_change(db_url, dialect, tmp_path):
    # Read from the copy the revisions ran on, each of these was a change the revisions never made:
    # InnoDB's own index for each foreign key, an "index added" (20 on JupyterHub's history); a default
    # PostgreSQL stores with a cast ('0'::smallint), a "default changed" (12 on Buildbot's); SQLite's bare INTEGER
    # PRIMARY KEY, "nullable changed".
    def fill(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE parents (id INTEGER PRIMARY KEY, flag SMALLINT DEFAULT '0', "
                             "tag VARCHAR(20) DEFAULT '')"))
        conn.execute(sa.text("CREATE TABLE children (id INTEGER PRIMARY KEY, parent_id INTEGER, other_id INTEGER, "
                             "CONSTRAINT fk_children_parent_id FOREIGN KEY (parent_id) REFERENCES parents (id), "
                             "FOREIGN KEY (other_id) REFERENCES parents (id))"))

    target = pending_project(tmp_path / "project", db_url, {"0001_base.py": BASE, "0002_note.py": NOTE_ADDED}, fill)
    run, result = run_stages(target, tmp_path / "runs", ["01"])
    assert [(c["op"], c["object"]) for c in result.data["changes"]] == [("add_column", "children.note")], run.stages


UNIQUE_LOWER = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_index("uq_members_lower_email", "members", [sa.text("lower(email)")], unique=True)
def downgrade():
    op.drop_index("uq_members_lower_email", table_name="members")
'''
UNIQUE_LIVE = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_index("uq_members_email_live", "members", ["email"], unique=True,
                    postgresql_where=sa.text("deleted = 0"), sqlite_where=sa.text("deleted = 0"))
def downgrade():
    op.drop_index("uq_members_email_live", table_name="members")
'''


def _members(conn: sa.Connection) -> None:
    # Six pairs differ only in case (Dup0@x, dup0@x, ...); u13@x once live and three times deleted.
    conn.execute(sa.text("CREATE TABLE members (id INTEGER PRIMARY KEY, email VARCHAR(100), deleted INTEGER NOT NULL)"))
    rows = [{"id": i, "email": (f"Dup{i % 3}@x" if i % 2 else f"dup{i % 3}@x") if i <= 12 else f"u{i}@x",
             "deleted": 0} for i in range(1, 101)]
    rows += [{"id": 200 + i, "email": "u13@x", "deleted": 1} for i in range(3)]
    conn.execute(sa.text("INSERT INTO members VALUES (:id, :email, :deleted)"), rows)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_a_partial_unique_index_counts_only_the_rows_it_covers(db_url, dialect, tmp_path):
    # Soft deletes: the three deleted u13@x rows are outside the index and cannot make it fail.
    target = pending_project(tmp_path / "project", db_url, {"0001_base.py": BASE, "0002_live.py": UNIQUE_LIVE},
                             _members)
    run, result = run_stages(target, tmp_path / "runs", ["05"])
    [found] = [f for f in result.findings if f.code == "DC002"]
    assert (found.evidence["count"], found.evidence["groups"], found.severity) == (6, 6, "block"), found
    assert "deleted = 0" in found.message and 13 not in [row["id"] for row in found.evidence["sample"]]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_a_unique_index_on_an_expression_counts_what_the_expression_makes_equal(db_url, dialect, tmp_path):
    # lower(email) makes each case pair one value, and u13@x four rows of one: 16 rows in 4 groups. (SQLite's
    # reflection skips such an index: it was no change at all. MariaDB has no index on an expression.)
    target = pending_project(tmp_path / "project", db_url, {"0001_base.py": BASE, "0002_lower.py": UNIQUE_LOWER},
                             _members)
    run, result = run_stages(target, tmp_path / "runs", ["05"])
    [found] = [f for f in result.findings if f.code == "DC002"]
    assert (found.evidence["count"], found.evidence["groups"], found.severity) == (12, 4, "block"), found
    assert found.evidence["rows_in_groups"] == 16


RENAMED_THEN_UNIQUE = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.rename_table("users", "members")
    with op.batch_alter_table("members") as batch:
        batch.alter_column("email", new_column_name="mail", existing_type=sa.String(100))
    with op.batch_alter_table("members") as batch:
        batch.create_unique_constraint("uq_members_mail", ["mail"])
def downgrade():
    with op.batch_alter_table("members") as batch:
        batch.drop_constraint("uq_members_mail", type_="unique")
        batch.alter_column("mail", new_column_name="email", existing_type=sa.String(100))
    op.rename_table("members", "users")
'''


def test_a_key_on_a_renamed_table_and_column_is_counted_on_their_live_names(db_url, dialect, tmp_path):
    # The key is on members.mail, which is users.email today: its duplicates are counted there.
    target = _project(tmp_path, db_url, RENAMED_THEN_UNIQUE)
    run, result = run_stages(target, tmp_path / "runs", ["05"])
    [found] = [f for f in result.findings if f.code == "DC002"]
    assert (found.object, found.evidence["groups"], found.evidence["count"]) == \
        ("users.email", GROUPS, DUPLICATED_ROWS - GROUPS), found
    assert found.severity == "block" and "DC006" not in {f.code for f in result.findings}


RENAMED_THEN_KEYED = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.rename_table("people", "members")
    with op.batch_alter_table("members") as batch:
        batch.alter_column("team_ref", new_column_name="team_id", existing_type=sa.Integer)
    with op.batch_alter_table("members") as batch:
        batch.create_foreign_key("fk_members_team", "teams", ["team_id"], ["id"])
def downgrade():
    with op.batch_alter_table("members") as batch:
        batch.drop_constraint("fk_members_team", type_="foreignkey")
        batch.alter_column("team_id", new_column_name="team_ref", existing_type=sa.Integer)
    op.rename_table("members", "people")
'''


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"], indirect=True)
def test_a_foreign_key_on_a_renamed_table_and_column_is_checked_on_their_live_names(db_url, dialect, tmp_path):
    # (SQLite adds no key to existing rows: its batch copy keeps orphans, which DC003 reports at warn there.)
    def fill(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE teams (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO teams VALUES (1), (2)"))
        conn.execute(sa.text("CREATE TABLE people (id INTEGER PRIMARY KEY, team_ref INTEGER)"))
        conn.execute(sa.text("INSERT INTO people VALUES (:id, :team)"),
                     [{"id": i, "team": 1 + i % 3} for i in range(1, 31)])

    target = pending_project(tmp_path / "project", db_url, {"0001_base.py": BASE, "0002_keyed.py": RENAMED_THEN_KEYED},
                             fill)
    run, result = run_stages(target, tmp_path / "runs", ["05"])
    # Every third person is in team 3, which does not exist: 10 orphans, counted on people.team_ref.
    [found] = [f for f in result.findings if f.code == "DC003"]
    assert (found.object, found.evidence["count"], found.severity) == ("people.team_ref", 10, "block"), found
