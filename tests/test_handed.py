"""The connection handed to a project's env.py answers ``connect()`` as SQLAlchemy 1.x did (alembic_ops/handed.py).

JupyterHub's env.py, copied from Alembic's older cookbook, calls ``.connect()`` on the connection it is handed, and
its revisions inspect ``op.get_bind().engine``: every stage that runs the revisions on a copy failed on it
("'Connection' object has no attribute 'connect'") before one statement ran, on every dialect.
"""
from __future__ import annotations

import sqlalchemy as sa

from helpers.projects import COOKBOOK_ENV, EMPTY_BASE, pending_project
from helpers.runs import run_stages

#: JupyterHub's shape: the revision asks the bind's engine which tables exist before it alters them.
INSPECTS = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    tables = sa.inspect(op.get_bind().engine).get_table_names()
    if "roles" in tables:
        op.add_column("roles", sa.Column("managed_by_auth", sa.Boolean(), server_default=sa.sql.false(),
                                         nullable=False))
def downgrade():
    op.drop_column("roles", "managed_by_auth")
'''


def test_the_cookbook_env_py_runs_the_revisions_on_a_copy(db_url, dialect, tmp_path):
    def fill(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE roles (id INTEGER PRIMARY KEY, name VARCHAR(40))"))
        conn.execute(sa.text("INSERT INTO roles VALUES (1, 'admin'), (2, 'user')"))

    revisions = {"0001_base.py": EMPTY_BASE, "0002_roles.py": INSPECTS}
    target = pending_project(tmp_path / "project", db_url, revisions, fill)
    (tmp_path / "project" / "migrations" / "env.py").write_text(COOKBOOK_ENV)
    run, result = run_stages(target, tmp_path / "runs", ["01", "04"])
    analysis, rehearsal = run.stages
    assert analysis.status == "pass" and rehearsal.status == "pass", run.stages
    assert "no attribute 'connect'" not in str(result.findings)
