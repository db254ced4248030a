"""Two branches pending and not merged (``alembic upgrade heads``): planned, proven and applied to every head.

Alembic's ``get_current_head()`` raises on such scripts: the rollback stage raised on them, and ``apply`` asked
Alembic for the revision "0002a,0002b" (the form a plan records several heads in) and failed. The scripts' head is
now their heads joined as ``current_revision`` joins a database's (``alembic_ops.migration.scripts_head``), and the
apply upgrades to ``heads``.
"""
from __future__ import annotations

import re

import sqlalchemy as sa

from dbrunbook.alembic_ops.migration import current_revision
from dbrunbook.core.db import make_engine
from helpers.projects import EMPTY_BASE, pending_project
from helpers.runs import dbrunbook

BRANCH_A = '''revision = "0002a"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.add_column("items", sa.Column("weight", sa.Integer, nullable=True))
def downgrade():
    op.drop_column("items", "weight")
'''
BRANCH_B = '''revision = "0002b"
down_revision = "0001"
from alembic import op
def upgrade():
    op.create_index("ix_items_name", "items", ["name"])
def downgrade():
    op.drop_index("ix_items_name", table_name="items")
'''


def test_two_pending_heads_are_planned_proven_and_applied(db_url, dialect, tmp_path):
    def fill(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(40))"))
        conn.execute(sa.text("INSERT INTO items VALUES (1, 'a'), (2, 'b')"))

    project = tmp_path / "project"
    pending_project(project, db_url, {"0001.py": EMPTY_BASE, "0002a.py": BRANCH_A, "0002b.py": BRANCH_B}, fill)
    planned = dbrunbook("update", "--db", db_url, "--alembic-config", str(project / "alembic.ini"), "--rollback-plan",
                        "--no-progress", "--out", str(tmp_path / "runs"), cwd=project)
    assert "raised" not in planned.stdout and planned.returncode == 0, planned.stdout + planned.stderr
    assert re.search(r"rollback-plan\s+PASS", planned.stdout), planned.stdout
    assert "MG008" in planned.stdout and "0001 -> 0002a,0002b" in planned.stdout
    [run] = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    applied = dbrunbook("apply", str(run), "--project", str(project), "--db", db_url, "--accept", "plan-ready",
                        "-q", cwd=project)
    assert "applied 0001 -> 0002a,0002b" in applied.stdout, applied.stdout + applied.stderr
    assert re.search(r"12-post-migration\s+PASS", applied.stdout), applied.stdout
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == "0002a,0002b"
    finally:
        engine.dispose()
