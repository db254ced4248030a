"""The small users project the fence and project-shape tests share: a target at revision 0001 with two rows,
and a pending revision 0002 that deletes one of them (the data a careless env.py would destroy) and adds a column.
"""
from __future__ import annotations

import sqlalchemy as sa

REVISIONS = {
    "0001_users.py": '''revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
def downgrade():
    op.drop_table("users")
''',
    "0002_email.py": '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.execute("DELETE FROM users WHERE id = 1")
    op.add_column("users", sa.Column("email", sa.String(100)))
def downgrade():
    op.drop_column("users", "email")
''',
}
#: The target's state before anything: both rows, revision 0001, no email column.
UNTOUCHED = ([(1, "a"), (2, "b")], "0001", ["id", "name"])


def at_0001_with_two_rows(url: str) -> None:
    """Make the target: the users table with two rows, stamped at 0001 (without running anyone's env.py)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE users (id INTEGER PRIMARY KEY, name VARCHAR(50))"))
        conn.execute(sa.text("INSERT INTO users VALUES (1, 'a'), (2, 'b')"))
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('0001')"))
    engine.dispose()


def users_state(url: str) -> tuple[list[tuple[object, ...]], str, list[str]]:
    """The target's rows, revision and columns, read with a plain engine (not dbrunbook's)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(sa.text("SELECT id, name FROM users ORDER BY id"))]
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        return rows, version, [c["name"] for c in sa.inspect(engine).get_columns("users")]
    finally:
        engine.dispose()
