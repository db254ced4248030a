"""Lock analysis: the lock per statement and dialect, and write-blocking estimates for the demo migration."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.core.db import drop_database, make_engine
from dbrunbook.lint import locks, parse_sql
from dbrunbook.stages.migration import plan_migration, review_migration
from helpers.databases import new_database

# dialect, statement, lock, blocks writes, rewrite, scan
LOCKS = [
    ("postgresql", "CREATE INDEX ix ON t (c)", "SHARE", True, False, True),
    ("postgresql", "CREATE INDEX CONCURRENTLY ix ON t (c)", "SHARE UPDATE EXCLUSIVE", False, False, True),
    ("postgresql", "ALTER TABLE t ADD COLUMN u uuid DEFAULT gen_random_uuid()", "ACCESS EXCLUSIVE", True, True, False),
    ("postgresql", "ALTER TABLE t ADD COLUMN d int DEFAULT 0", "ACCESS EXCLUSIVE", True, False, False),
    ("postgresql", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES p (id)", "SHARE ROW EXCLUSIVE",
     True, False, True),
    ("postgresql", "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (p) REFERENCES p (id) NOT VALID", "SHARE ROW EXCLUSIVE",
     True, False, False),
    ("postgresql", "ALTER TABLE t VALIDATE CONSTRAINT fk", "SHARE UPDATE EXCLUSIVE", False, False, True),
    ("postgresql", "ALTER TABLE t ALTER COLUMN c TYPE varchar(20)", "ACCESS EXCLUSIVE", True, False, False),
    ("postgresql", "ALTER TABLE t ALTER COLUMN c TYPE integer", "ACCESS EXCLUSIVE", True, True, False),
    ("mariadb", "ALTER TABLE t ADD COLUMN d int", "metadata lock (brief)", False, False, False),
    ("mariadb", "CREATE INDEX ix ON t (c)", "LOCK=NONE; exclusive metadata lock at start and end", False, False, True),
    ("mariadb", "ALTER TABLE t MODIFY c integer", "LOCK=SHARED for the table copy", True, True, False),
    ("sqlite", "ALTER TABLE t ADD COLUMN d int", "database write lock", True, False, False),
]


@pytest.mark.parametrize("dialect,sql,lock,blocks_writes,rewrite,scan", LOCKS)
def test_lock_model(dialect, sql, lock, blocks_writes, rewrite, scan):
    migration = parse_sql(sql, dialect)
    migration.known_columns[("t", "c")] = {"type": "varchar(10)", "not_null": False}
    row = locks.analyse(migration, {"t": (1000, 10_000_000)}, throughput=10_000_000)[0]
    assert (row.lock, row.rewrite, row.scan) == (lock, rewrite, scan)
    expected = (2.0 if rewrite else 1.0 if scan else 0.0) if blocks_writes else 0.0
    assert row.blocked_seconds == pytest.approx(expected)


def _databases(url):
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                return set()
            query = "SELECT datname FROM pg_database" if engine.dialect.name == "postgresql" else "SHOW DATABASES"
            return {r[0] for r in conn.execute(sa.text(query)) if r[0].startswith("dbrunbook_calib")}
    finally:
        engine.dispose()


def test_every_statement_of_the_demo_migration_gets_an_estimate(demo, dialect, tmp_path):
    plan = plan_migration(demo.target(), tmp_path / "plan")
    before = _databases(demo.db)
    review = review_migration(plan, demo.target())
    assert _databases(demo.db) == before  # the calibration database is gone
    assert review.throughput and review.throughput > 0
    migration = parse_sql(plan.upgrade_sql, dialect)
    assert [row.statement for row in review.locks] == [s.index for s in migration.statements]
    assert all(row.lock for row in review.locks)
    sized = [row for row in review.locks if row.table in ("users", "orders")]
    assert sized and all(row.rows and row.bytes for row in sized)
    if dialect == "mariadb":  # online DDL: the NOT NULL change rebuilds in place, writes go on
        country = next(row for row in review.locks if "country" in row.sql)
        assert (country.algorithm, country.blocked_seconds) == ("INPLACE", 0.0)
    else:
        assert any(row.blocked_seconds > 0 for row in review.locks)
    assert locks.chart(review.locks).axes[0].get_xlabel().startswith("estimated seconds")


def test_measure_throughput_on_sqlite_leaves_no_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    make_engine(url).connect().close()
    assert locks.measure_throughput(url, rows=5_000) > 0
    assert [p.name for p in Path(tmp_path).iterdir()] == ["x.db"]


def test_measure_throughput_on_mariadb_behind_a_mysql_url(tmp_path):
    # dagster-mysql names its MariaDB server mysql+pymysql://: the recursion limit must be MariaDB's variable
    # (max_recursive_iterations), not MySQL's cte_max_recursion_depth, which MariaDB refuses.
    url = sa.make_url(new_database("mariadb", tmp_path)).set(drivername="mysql+pymysql")
    try:
        assert locks.measure_throughput(url, rows=2_000) > 0
    finally:
        drop_database(url)
