"""Sample copies keep foreign keys satisfied; every copy is dropped, even on Ctrl-C."""
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.data.clone import scratch_copy
from dbrunbook.core.db import make_engine, server_url
from dbrunbook.errors import UsageError
from dbrunbook.core.secrets import resolve_url

_LIST_DATABASES = {"postgresql": "SELECT datname FROM pg_database", "mariadb": "SHOW DATABASES"}
_ORPHANS = {
    "orders": "SELECT COUNT(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id "
              "WHERE o.user_id IS NOT NULL AND u.id IS NULL",
    "order_items.order_id": "SELECT COUNT(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id "
                            "WHERE o.id IS NULL",
    "order_items.product_id": "SELECT COUNT(*) FROM order_items i LEFT JOIN products p ON p.id = i.product_id "
                              "WHERE p.id IS NULL",
}


def scratch_gone(url, dialect) -> bool:
    """True when the copy at ``url`` no longer exists on its server (SQLite: its file)."""
    url = resolve_url(url)
    if dialect == "sqlite":
        return not Path(url.database).exists()
    engine = make_engine(server_url(url))
    try:
        with engine.connect() as conn:
            names = set(conn.execute(sa.text(_LIST_DATABASES[dialect])).scalars())
    finally:
        engine.dispose()
    return url.database not in names


def _scalars(url, sql):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()


def test_sample_keeps_foreign_keys_satisfied(demo, dialect):
    with scratch_copy(demo.db, mode="sample", rows=50) as url:
        counts = {t: _scalars(url, f"SELECT COUNT(*) FROM {t}") for t in ("users", "orders", "order_items", "products")}
        orphans = {name: _scalars(url, sql) for name, sql in _ORPHANS.items()}
        version = _scalars(url, "SELECT version_num FROM alembic_version")
    assert counts["orders"] >= 50 and counts["order_items"] == 50
    # 50 random users plus the owners of the sampled orders, never the whole table of 400.
    assert 50 <= counts["users"] <= 150
    assert orphans == {name: 0 for name in _ORPHANS}
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
