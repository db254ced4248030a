"""Backfill plans: keyset batches that together fill exactly the NULLs, timed on a copy only."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.errors import UsageError
from dbrunbook.stages.data_checks.backfill import plan_backfill, time_backfill
from helpers.databases import create_filled

TABLE = 'my "orders" group'


@pytest.fixture
def table(engine):
    t = sa.Table(TABLE, sa.MetaData(), sa.Column("key id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("cur rency", sa.String(3)))
    create_filled(engine, t, [{"key id": i * 3, "cur rency": None if i % 5 < 2 else "USD"} for i in range(1, 26)])
    return engine, t


def _nulls(engine, t):
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(t.c["cur rency"].is_(None))).scalar_one()


def test_batches_cover_exactly_the_rows_to_fill(table, dialect):
    engine, t = table
    plan = plan_backfill(engine, TABLE, "cur rency", "'EUR'", batch_size=4)
    assert plan.rows == 10 and plan.batches == 3 and len(plan.boundaries) == 2
    assert ":last_key" in plan.template and plan.script(1).count("UPDATE") == 1
    with engine.begin() as conn:  # what the user does with the reviewed script, here on a throwaway database
        for statement in plan.statements:
            conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        values = conn.execute(sa.select(t.c["cur rency"], sa.func.count()).group_by(t.c["cur rency"])).all()
    assert dict(values) == {"EUR": 10, "USD": 15}


def test_timing_runs_on_a_scratch_copy_and_leaves_the_target_alone(table, dialect, db_url):
    engine, t = table
    plan = plan_backfill(engine, TABLE, "cur rency", "'EUR'", batch_size=4)
    engine.dispose()
    time_backfill(db_url, plan, batches=2)
    assert plan.timed_batches == 2 and plan.timed_rows == 8
    assert plan.estimated_seconds is not None and plan.estimated_seconds >= plan.timed_seconds * 0
    assert _nulls(engine, t) == 10


def test_bad_input_is_a_clear_error(table, dialect):
    engine, _ = table
    with pytest.raises(UsageError, match="no column"):
        plan_backfill(engine, TABLE, "nope", "1")
    with pytest.raises(UsageError, match="batch size"):
        plan_backfill(engine, TABLE, "cur rency", "1", batch_size=0)


def test_a_new_required_column_is_added_filled_and_tightened(db_url, dialect):
    from dbrunbook.stages.data_checks import run_checks
    from dbrunbook.stages.data_checks.backfill import backfill_plans

    engine = make_engine(db_url)
    live = sa.MetaData()
    t = sa.Table("select", live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i} for i in range(1, 8)])
    target = sa.MetaData()
    sa.Table("select", target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("level no", sa.Integer, nullable=False))
    report = run_checks(engine, target)
    required = next(r for r in report.results if r.problem == "required")
    assert (required.count, required.columns) == (7, ["level no"])
    plans = backfill_plans(engine, db_url, report, {"select.level no": "id * 2"}, batch_size=3, metadata=target)
    assert len(plans) == 1
    plan = plans[0]
    assert (plan.rows, plan.batches, plan.timed_rows) == (7, 3, 3)
    assert plan.before and "nullable=True" in plan.before[0] and "nullable=False" in plan.after[0]
    assert "level no" in plan.script() and plan.estimated_seconds is not None
    with engine.connect() as conn:  # the target still has no such column
        assert [c["name"] for c in sa.inspect(conn).get_columns("select")] == ["id"]
    engine.dispose()


def test_a_lossy_type_change_gets_a_conversion_through_a_new_column(db_url, dialect):
    from dbrunbook.stages.data_checks import run_checks
    from dbrunbook.stages.data_checks.backfill import backfill_plans

    engine = make_engine(db_url)
    live = sa.MetaData()
    t = sa.Table("prices", live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("amount", sa.Numeric(10, 4)))
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i, "amount": i + 0.125} for i in range(1, 6)])
    target = sa.MetaData()
    sa.Table("prices", target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("amount", sa.Numeric(10, 2)))
    report = run_checks(engine, target)
    assert next(r for r in report.results if r.problem == "rounded").count == 5
    plans = backfill_plans(engine, db_url, report, {"prices.amount": "ROUND(amount, 2)"}, batch_size=2,
                           metadata=target)
    engine.dispose()
    assert [(p.column, p.rows, p.batches, p.timed_rows) for p in plans] == [("amount_new", 5, 3, 2)]
    assert "ROUND(amount, 2)" in plans[0].statements[0] and "drop_column" in plans[0].after[0]
