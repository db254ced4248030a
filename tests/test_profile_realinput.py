"""Stage 5 on real projects' input: tables a revision creates, column names SQL uses as aliases, composite keys.

MLflow's and Optuna's schemas raised here: the profile of a table the pending revision creates
(``no table 'assessments'``), ``ORDER BY c`` meeting a column named ``c``, a backfill on a
composite primary key.
"""
import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.data.fingerprint import fingerprint
from dbrunbook.stages import data_checks as checks
from dbrunbook.stages.data_checks import backfill, profile
from helpers.databases import create_filled

#: Names the generated SQL used (or could use) as aliases.
HOSTILE = ["c", "n", "count", "value", "key", "total", "rows", "groups", "b", "v", "k", "g"]


def _hostile(meta, name="earlier", key=("id",)):
    keys = [sa.Column(k, sa.Integer, primary_key=True, autoincrement=False) for k in key]
    return sa.Table(name, meta, *keys, *[sa.Column(n, sa.Integer) for n in HOSTILE if n not in key])


@pytest.fixture
def engine(engine):
    """The engine of the empty database (conftest), with the table of hostile names filled."""
    rows = [{"id": i, **{n: (None if n == "c" and i % 5 == 0 else i % 4) for n in HOSTILE}} for i in range(1, 41)]
    create_filled(engine, _hostile(sa.MetaData()), rows)
    return engine


def test_hostile_column_names_profile_exactly_and_sampled(engine, dialect):
    exact = profile.profile_table(engine, "earlier", top=3, buckets=4)
    sampled = profile.profile_table(engine, "earlier", exact_limit=5, sample_rows=10)
    for p in (exact, sampled):  # (PostgreSQL's page sample of a one-page table may hold no row)
        cols = {c.name: c for c in p.columns}
        assert set(HOSTILE) <= set(cols) and not any(c.note for c in p.columns)
        assert cols["c"].nulls == 8 and cols["b"].histogram
    cols = {c.name: c for c in exact.columns}
    assert cols["n"].top and cols["k"].top
    assert cols["c"].top[0] == (1, 8) or cols["c"].top[0][1] == 8  # most common value first, counted right
    assert sum(n for _, _, n in cols["value"].histogram) == 40 and cols["count"].distinct == 4


def test_hostile_column_names_in_checks_backfill_and_fingerprint(engine, dialect, db_url):
    target = sa.MetaData()
    t = _hostile(target)
    t.c.c.nullable = False
    t.append_constraint(sa.UniqueConstraint("c", "n", "count", "value", name="uq_earlier_mix"))
    for name in ("n", "rows", "groups", "total"):
        t.append_constraint(sa.UniqueConstraint(name, name=f"uq_earlier_{name}"))
    report = checks.run_checks(engine, target)
    assert not [r for r in report.results if r.effect == "unknown"], [r.message for r in report.results]
    dup = {tuple(r.columns): r for r in report.results if r.problem == "duplicate"}
    assert dup[("n",)].count == 36 and dup[("n",)].evidence["groups"] == 4
    assert dup[("rows",)].count == 36 and dup[("c", "n", "count", "value")].count > 0
    assert next(r for r in report.results if r.problem == "null").count == 8
    plans = backfill.backfill_plans(engine, db_url, report, {"earlier.c": "0"}, batch_size=3, metadata=target)
    [plan] = plans
    assert (plan.rows, plan.batches, plan.skipped) == (8, 3, "") and plan.timed_rows == 3
    printed = fingerprint(engine, tables=["earlier"])
    assert printed.tables["earlier"].rows == 40 and printed.tables["earlier"].columns["c"].non_null == 32


def test_a_table_the_change_creates_is_noted_not_profiled(engine, dialect, db_url):
    target = sa.MetaData()
    _hostile(target)
    sa.Table("assessments", target, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("earlier_id", sa.Integer, sa.ForeignKey("earlier.id"), nullable=False))
    report = checks.run_checks(engine, target)
    assert "assessments" in report.tables  # what the notebook hands to the profile
    profiles = profile.profile_tables(engine, ["earlier", *report.tables])
    by_table = {p.table: p for p in profiles}
    assert by_table["earlier"].exists and by_table["earlier"].rows == 40
    assert not by_table["assessments"].exists and by_table["assessments"].columns == []
    [found] = profile.findings(profiles)
    assert (found.code, found.severity, found.object) == ("DC101", "info", "assessments")
    assert backfill.backfill_plans(engine, db_url, report, metadata=target, timed_batches=0) == []


def test_composite_and_missing_primary_keys_get_backfill_plans(db_url, dialect):
    engine = make_engine(db_url)
    meta = sa.MetaData()
    pair = _hostile(meta, "pairs", key=("key", "value"))
    loose = sa.Table("loose", meta, sa.Column("value", sa.Integer), sa.Column("c", sa.String(5)))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(pair.insert(), [{"key": i % 3, "value": i, **{n: None if i % 2 else i for n in HOSTILE
                                                                  if n not in ("key", "value")}} for i in range(20)])
        conn.execute(loose.insert(), [{"value": i, "c": None if i % 2 else "x"} for i in range(6)])
    target = sa.MetaData()
    t = _hostile(target, "pairs", key=("key", "value"))
    t.c.total.nullable = False
    sa.Table("loose", target, sa.Column("value", sa.Integer), sa.Column("c", sa.String(5), nullable=False))
    report = checks.run_checks(engine, target)
    plans = {p.table: p for p in backfill.backfill_plans(engine, db_url, report, {"pairs.total": "1", "loose.c": "'y'"},
                                                          batch_size=4, timed_batches=2, metadata=target)}
    assert not any(p.skipped for p in plans.values())
    pairs, loose_plan = plans["pairs"], plans["loose"]
    assert (pairs.key, pairs.rows, pairs.batches, pairs.timed_rows) == ("key, value", 10, 3, 8)
    assert (loose_plan.rows, loose_plan.batches) == (3, 1) and "no primary key" in " ".join(loose_plan.notes)
    with engine.begin() as conn:  # the reviewed scripts, run here on a throwaway database, fill every NULL
        for statement in pairs.statements + loose_plan.statements:
            conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(pair.c.total.is_(None))).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).where(loose.c.c.is_(None))).scalar_one() == 0
    codes = [f.code for f in backfill.findings(list(plans.values()))]
    assert codes == ["DC100", "DC100"]
    engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_enum_and_json_columns_profile_without_error(db_url):
    engine = make_engine(db_url)
    meta = sa.MetaData()
    from sqlalchemy.dialects import postgresql

    t = sa.Table("moods", meta, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("mood", sa.Enum("sad", "ok", name="mood")), sa.Column("doc", postgresql.JSON),
                 sa.Column("tags", postgresql.JSONB))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i, "mood": "ok" if i % 2 else "sad", "doc": {"i": i}, "tags": [i]}
                                  for i in range(1, 30)])
    p = profile.profile_table(engine, "moods")
    cols = {c.name: c for c in p.columns}
    assert not any(c.note for c in p.columns)
    assert (cols["mood"].min_length, cols["mood"].max_length, cols["mood"].distinct) == (2, 3, 2)
    assert cols["doc"].nulls == 0
    engine.dispose()
