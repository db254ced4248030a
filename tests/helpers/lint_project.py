"""A small Alembic project whose second revision is unsafe on PostgreSQL (lint, rewrite and reversibility tests).

Write it with :func:`helpers.projects.write_project` (``{"0001_base.py": BASE, "0002_unsafe.py": UNSAFE}``).
"""
from __future__ import annotations

import sqlalchemy as sa

from dbrunbook.core.db import make_engine

BASE = '''
from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None


def upgrade():
    op.create_table("teams", sa.Column("id", sa.Integer(), primary_key=True))
    op.create_table("accounts", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("email", sa.String(100), nullable=True), sa.Column("name", sa.String(50)),
                    sa.Column("notes", sa.Text()))
    op.create_table("members", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("team_id", sa.Integer()), sa.Column("role", sa.String(10)))


def downgrade():
    op.drop_table("members")
    op.drop_table("accounts")
    op.drop_table("teams")
'''

UNSAFE = '''
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"


def upgrade():
    op.create_index("ix_accounts_name", "accounts", ["name"])
    op.alter_column("accounts", "email", existing_type=sa.String(100), nullable=False)
    op.create_unique_constraint("uq_accounts_email", "accounts", ["email"])
    op.create_foreign_key("fk_members_team", "members", "teams", ["team_id"], ["id"])
    op.create_check_constraint("ck_members_role", "members", "role <> ''")
    op.add_column("members", sa.Column("token", sa.String(36), server_default=sa.text("gen_random_uuid()::text"),
                                       nullable=False))
    op.drop_column("accounts", "notes")


def downgrade():
    op.add_column("accounts", sa.Column("notes", sa.Text()))
    op.drop_column("members", "token")
    op.drop_constraint("ck_members_role", "members", type_="check")
    op.drop_constraint("fk_members_team", "members", type_="foreignkey")
    op.drop_constraint("uq_accounts_email", "accounts", type_="unique")
    op.alter_column("accounts", "email", existing_type=sa.String(100), nullable=True)
    op.drop_index("ix_accounts_name", table_name="accounts")
'''


def fill(url: str) -> None:
    """Rows the unsafe revision and its rewrite both run over."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO teams (id) VALUES (1), (2)"))
            conn.execute(sa.text("INSERT INTO accounts (id, email, name, notes) "
                                 "VALUES (1, 'a@x', 'A', 'n1'), (2, 'b@x', 'B', NULL)"))
            conn.execute(sa.text("INSERT INTO members (id, team_id, role) VALUES (1, 1, 'dev'), (2, 2, 'ops')"))
    finally:
        engine.dispose()
