"""The row generator honours what the database reflects: keys, foreign keys, CHECKs, enums, one-row tables."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from ._rows import fill

pytestmark = pytest.mark.realworld


def _schema() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table("parent", md,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("code", sa.String(6), nullable=False, unique=True),
             sa.Column("status", sa.String(10), sa.CheckConstraint("status IN ('open', 'closed')"), nullable=False),
             sa.Column("n", sa.Integer, sa.CheckConstraint("n >= 5 AND n <= 9"), nullable=False),
             sa.Column("kind", sa.Enum("x", "y", name="kind"), nullable=False),
             sa.Column("flag", sa.Boolean, nullable=False),
             sa.Column("price", sa.Numeric(5, 2)),
             sa.Column("seen", sa.DateTime(timezone=True)),
             sa.Column("doc", sa.JSON),
             # a second, wider CHECK on status (as MariaDB keeps after MLflow widens one): both must pass
             sa.CheckConstraint("status IN ('open', 'closed', 'archived')", name="status_wide"))
    sa.Table("settings", md, sa.Column("id", sa.Integer, sa.CheckConstraint("id = 1"), primary_key=True,
                                          autoincrement=False),
             sa.Column("value", sa.Text))
    sa.Table("child", md,
             sa.Column("parent_id", sa.ForeignKey("parent.id"), primary_key=True),
             sa.Column("tag", sa.String(20), primary_key=True))
    sa.Table("grandchild", md,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id"), nullable=False),
             sa.Column("tag", sa.String(20), nullable=False),
             sa.ForeignKeyConstraint(["parent_id", "tag"], ["child.parent_id", "child.tag"]))
    sa.Table("link", md,
             sa.Column("a", sa.ForeignKey("parent.id"), nullable=False),
             sa.Column("b", sa.ForeignKey("parent.id"), nullable=False),
             sa.UniqueConstraint("a", "b"))
    sa.Table("tree", md,
             sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("up", sa.ForeignKey("tree.id")))
    # A CHECK the generator cannot read: the database refuses some rows, which are counted, not raised.
    sa.Table("picky", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("word", sa.String(20), sa.CheckConstraint("length(word) > 10"), nullable=False))
    return md


def test_every_table_is_filled_within_its_constraints(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    _schema().create_all(engine)
    try:
        filled = fill(db_url, rows=50)
        with engine.connect() as conn:
            counts = {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar() for t in filled.rows}
            grandchildren_orphaned = conn.execute(sa.text(
                "SELECT COUNT(*) FROM grandchild g LEFT JOIN child c ON c.parent_id = g.parent_id AND c.tag = g.tag "
                "WHERE c.tag IS NULL")).scalar()
    finally:
        engine.dispose()
    assert counts == filled.rows
    assert {t: n for t, n in counts.items() if t not in ("settings", "picky")} == \
        {"parent": 50, "child": 50, "grandchild": 50, "link": 50, "tree": 50}
    assert counts["settings"] == 1
    assert grandchildren_orphaned == 0
    assert 0 < filled.refused["picky"] < 50 and counts["picky"] == 50 - filled.refused["picky"]
    assert list(filled.refused) == ["picky"] and any(n.startswith("picky: the database refused") for n in filled.notes)
