"""Sample copies keep foreign keys satisfied; every copy is dropped, even on Ctrl-C."""
import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.data.clone import scratch_copy
from dbrunbook.errors import UsageError
from helpers.databases import scalar, scratch_gone
from helpers.demo import ORPHANS


def test_sample_keeps_foreign_keys_satisfied(demo, dialect):
    with scratch_copy(demo.db, mode="sample", rows=50) as url:
        counts = {t: scalar(url, f"SELECT COUNT(*) FROM {t}") for t in ("users", "orders", "order_items", "products")}
        orphans = {name: scalar(url, sql) for name, sql in ORPHANS.items()}
        version = scalar(url, "SELECT version_num FROM alembic_version")
    assert counts["orders"] >= 50 and counts["order_items"] == 50
    # 50 random users plus the owners of the sampled orders, never the whole table of 400.
    assert 50 <= counts["users"] <= 150
    assert orphans == {name: 0 for name in ORPHANS}
    assert version == "0001"
    assert scratch_gone(url, dialect)


def test_sample_accepts_new_rows_with_generated_keys(demo, dialect):
    """Key generators (PostgreSQL sequences) move past the copied keys."""
    with scratch_copy(demo.db, mode="sample", rows=20) as url:
        engine = make_engine(url)
        try:
            users = sa.Table("users", sa.MetaData(), autoload_with=engine)
            with engine.begin() as conn:
                for n in range(3):
                    conn.execute(users.insert().values(email=f"new{n}@example.com", name="new", country="DE",
                                                       created_at=sa.func.current_timestamp()))
                top = conn.execute(sa.select(sa.func.max(users.c.id))).scalar_one()
        finally:
            engine.dispose()
    assert top > 20


@pytest.mark.parametrize("mode", ["full", "schema", "sample"])
def test_copy_is_dropped_on_ctrl_c(demo, dialect, mode):
    with pytest.raises(KeyboardInterrupt):
        with scratch_copy(demo.db, mode=mode, rows=10) as url:
            assert not scratch_gone(url, dialect)
            raise KeyboardInterrupt
    assert scratch_gone(url, dialect)


def test_every_copy_gets_a_fresh_name(demo):
    with scratch_copy(demo.db, mode="schema") as first:
        with scratch_copy(demo.db, mode="schema") as second:
            assert first.database != second.database


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_sample_needs_a_row(demo):
    with pytest.raises(UsageError, match="at least one row"):
        with scratch_copy(demo.db, mode="sample", rows=0):
            pass
