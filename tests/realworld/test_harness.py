"""The harness sees what it must: a write to the target, even one rolled back, and a scratch database left behind."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.core.db import create_database, drop_database, scratch_name, with_database

from ._rows import fill
from ._state import left_behind, scratch_databases, state_diff, target_state

pytestmark = pytest.mark.realworld


def _items(url: str) -> sa.Engine:
    engine = sa.create_engine(url)
    md = sa.MetaData()
    sa.Table("items", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)))
    md.create_all(engine)
    fill(url, rows=20)
    return engine


def test_a_committed_update_changes_the_state(db_url: str) -> None:
    engine = _items(db_url)
    before = target_state(db_url)
    assert state_diff(before, target_state(db_url)) == []
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE items SET name = 'changed' WHERE id = (SELECT MIN(id) FROM items)"))
    engine.dispose()
    diff = state_diff(before, target_state(db_url))
    assert [d for d in diff if not d.startswith("file_sha256 changed")] == ["table items: checksum changed"]


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"])
def test_a_rolled_back_insert_still_shows(db_url: str) -> None:
    # The row is gone but the sequence (PostgreSQL) or the auto-increment counter (MariaDB) moved on.
    engine = _items(db_url)
    before = target_state(db_url)
    with engine.connect() as conn:
        conn.execute(sa.text("INSERT INTO items (name) VALUES ('x')"))
        conn.rollback()
    engine.dispose()
    diff = state_diff(before, target_state(db_url))
    assert len(diff) == 1 and diff[0].startswith("catalog changed")


def test_a_leftover_scratch_database_is_seen(db_url: str, tmp_path: Path) -> None:
    dialect = sa.make_url(db_url).get_backend_name()
    beside = tmp_path if dialect == "sqlite" else None
    before = scratch_databases(dialect, beside)
    leftover = with_database(db_url, scratch_name())
    create_database(leftover)
    if dialect == "sqlite":
        sa.create_engine(leftover).connect().close()
    try:
        assert left_behind(dialect, before, beside, wait=0) == {str(leftover.database)}  # a name, or a file path
    finally:
        drop_database(leftover)
    assert left_behind(dialect, before, beside, wait=0) == set()
