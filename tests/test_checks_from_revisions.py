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
    project = tmp_path / "project"
    versions = project / "migrations" / "versions"
    versions.mkdir(parents=True)
    (project / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (project / "migrations" / "env.py").write_text(
        "from alembic import context\nconn = context.config.attributes['connection']\n"
        "context.configure(connection=conn)\nwith context.begin_transaction():\n    context.run_migrations()\n")
    (versions / "0001_base.py").write_text(BASE)
    (versions / "0002_change.py").write_text(pending)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, email VARCHAR(100), nickname VARCHAR(50))"))
        rows = [{"id": i, "email": f"dup{i % GROUPS}@x" if i <= DUPLICATED_ROWS else f"u{i}@x",
                 "nickname": None if DUPLICATED_ROWS < i <= DUPLICATED_ROWS + NULL_NICKNAMES else f"n{i}"}
                for i in range(1, USERS + 1)]
        conn.execute(sa.text("INSERT INTO users VALUES (:id, :email, :nickname)"), rows)
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('0001')"))
    engine.dispose()
    return Target.from_url(url, alembic_config=str(project / "alembic.ini"), project_dir=project)


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
