import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.data.clone import scratch_copy
from dbrunbook.errors import UsageError


def _count(url, table="users"):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def _exists(url):
    engine = make_engine(url)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


def test_full_copy_has_the_data_and_is_dropped(demo, dialect):
    with scratch_copy(demo.db) as url:
        assert url.database != make_engine(demo.db).url.database
        assert _count(url) == _count(demo.db) == 400
        assert _count(url, "order_items") == 800
    if dialect == "sqlite":
        from pathlib import Path
        assert not Path(url.database).exists()
    else:
        assert not _exists(url)


def test_schema_copy_is_empty_but_knows_its_revision(demo):
    with scratch_copy(demo.db, mode="schema") as url:
        assert _count(url) == 0
        assert _count(url, "alembic_version") == 1


def test_copy_is_dropped_when_the_block_raises(demo, dialect):
    with pytest.raises(RuntimeError):
        with scratch_copy(demo.db) as url:
            raise RuntimeError("boom")
    if dialect != "sqlite":
        assert not _exists(url)


def test_unknown_mode_is_rejected(demo):
    with pytest.raises(UsageError):
        with scratch_copy(demo.db, mode="half"):
            pass
