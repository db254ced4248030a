"""Stage 9 grows keys of every type real schemas use, and names the table it cannot grow instead of raising.

MLflow's ``metrics`` has a primary key over text, integers, a DOUBLE PRECISION ``value`` and a
boolean; other schemas key on UUIDs, timestamps, dates, floats or bytes, and PostgreSQL's ``json``
has no equality operator at all.
"""
import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.stages import staging as volume
from dbrunbook.stages.staging import Scale, TimingCurve, TimingPoint

#: Tables and their key columns, whose tuples must stay distinct after growth.
KEYS = {"runs": ["run_uuid"], "metrics": ["key", "timestamp", "step", "run_uuid", "value", "is_nan"],
        "scores": ["value"], "tokens": ["token"], "ticks": ["at"], "days": ["day"], "blobs": ["h"],
        "docs": ["id"]}


def _schema(dialect):
    md = sa.MetaData()
    sa.Table("runs", md, sa.Column("run_uuid", sa.String(32), primary_key=True), sa.Column("name", sa.String(50)))
    sa.Table("metrics", md, sa.Column("key", sa.String(250), primary_key=True),
             sa.Column("timestamp", sa.BigInteger, primary_key=True, autoincrement=False),
             sa.Column("step", sa.BigInteger, primary_key=True, autoincrement=False),
             sa.Column("run_uuid", sa.String(32), sa.ForeignKey("runs.run_uuid"), primary_key=True),
             sa.Column("value", sa.Double, primary_key=True), sa.Column("is_nan", sa.Boolean, primary_key=True))
    sa.Table("scores", md, sa.Column("value", sa.Float, primary_key=True), sa.Column("label", sa.String(10)))
    sa.Table("tokens", md, sa.Column("token", sa.Uuid, primary_key=True), sa.Column("run_uuid", sa.String(32),
                                                                                    sa.ForeignKey("runs.run_uuid")))
    sa.Table("ticks", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("at", sa.DateTime, nullable=False, unique=True))
    sa.Table("days", md, sa.Column("day", sa.Date, primary_key=True), sa.Column("amount", sa.Numeric(10, 2)))
    sa.Table("blobs", md, sa.Column("h", sa.LargeBinary(16) if dialect != "mariadb" else sa.VARBINARY(16),
                                    primary_key=True))
    sa.Table("docs", md, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False), sa.Column("body", sa.JSON))
    # A key of one column that has two values at most: no copy can have more rows.
    flag = sa.Boolean() if dialect == "sqlite" else sa.Enum("on", "off", name="flag_state")
    sa.Table("flags", md, sa.Column("state", flag, primary_key=True))
    return md


def _fill(conn, md, dialect):
    t = md.tables
    start = dt.datetime(2024, 1, 1, 10, 0, 0)
    runs = [f"{i:032x}" for i in range(8)]
    conn.execute(t["runs"].insert(), [{"run_uuid": r, "name": f"run {i}"} for i, r in enumerate(runs)])
    conn.execute(t["metrics"].insert(), [{"key": "loss" if i % 2 else "acc", "timestamp": 1700000000000 + i // 3,
                                          "step": i % 3, "run_uuid": runs[i % 8], "value": i / 7, "is_nan": False}
                                         for i in range(24)])
    conn.execute(t["scores"].insert(), [{"value": i * 0.5, "label": "s"} for i in range(10)])
    conn.execute(t["tokens"].insert(), [{"token": uuid.uuid4(), "run_uuid": runs[i % 8]} for i in range(10)])
    step = dt.timedelta(seconds=1) if dialect == "mariadb" else dt.timedelta(microseconds=1)
    conn.execute(t["ticks"].insert(), [{"id": i, "at": start + i * step} for i in range(10)])
    conn.execute(t["days"].insert(),
                 [{"day": dt.date(2024, 1, 1) + dt.timedelta(days=i), "amount": i} for i in range(10)])
    conn.execute(t["blobs"].insert(), [{"h": bytes([i]) * 16} for i in range(10)])
    conn.execute(t["docs"].insert(), [{"id": i, "body": {"i": i % 2}} for i in range(10)])
    conn.execute(t["flags"].insert(), [{"state": True}, {"state": False}] if dialect == "sqlite"
                 else [{"state": "on"}, {"state": "off"}])


def _distinct_keys(conn, md, table):
    t = md.tables[table]
    keys = [t.c[k] for k in KEYS[table]]
    distinct = sa.select(*keys).distinct().subquery()
    return conn.execute(sa.select(sa.func.count()).select_from(distinct)).scalar_one()


def test_keys_of_every_type_grow_and_a_table_that_cannot_is_named(db_url, dialect):
    md = _schema(dialect)
    engine = make_engine(db_url)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            _fill(conn, md, dialect)
        growth = volume.grow_report(db_url, Scale.parse("2.5x"))
        assert set(growth.skipped) == {"flags"}, growth.skipped
        assert "state" in growth.skipped["flags"] and "fresh values" in growth.skipped["flags"]
        assert growth.rows["flags"] == 2 and growth.rows["runs"] == 20 and growth.rows["ticks"] == 25
        assert growth.rows["metrics"] >= 60 and growth.rows["docs"] == 25
        with engine.connect() as conn:
            for table in KEYS:
                assert _distinct_keys(conn, md, table) == growth.rows[table], table
            t = md.tables
            orphans = sa.select(sa.func.count()).select_from(t["metrics"]).where(
                ~t["metrics"].c.run_uuid.in_(sa.select(t["runs"].c.run_uuid)))
            assert conn.execute(orphans).scalar_one() == 0
            # Copied columns keep their values: metric names and values are not invented.
            assert set(conn.execute(sa.select(t["metrics"].c.key).distinct()).scalars()) == {"acc", "loss"}
            assert conn.execute(sa.select(sa.func.max(t["metrics"].c.value))).scalar_one() == pytest.approx(23 / 7)
            latest = conn.execute(sa.select(sa.func.max(t["ticks"].c.at))).scalar_one()
            assert isinstance(latest, dt.datetime) and latest > dt.datetime(2024, 1, 1, 10, 0, 0)
    finally:
        engine.dispose()


def test_a_table_not_grown_is_a_coded_finding_of_the_curve():
    points = [TimingPoint(1, 100, 0.1, True, skipped={"flags": "no column of unique key can take fresh values"}),
              TimingPoint(2, 190, 0.2, True, skipped={"flags": "no column of unique key can take fresh values"})]
    intercept, slope = volume.fit(points)
    curve = TimingCurve(points, intercept, slope, 1000, 1.0)
    [vl004] = [f for f in volume.findings(curve) if f.code == "VL004"]
    assert (vl004.severity, vl004.object) == ("warn", "flags") and "not grown" in vl004.message


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_growth_sql_reads_a_json_table_and_a_float_key_without_error(db_url):
    md = _schema("postgresql")
    engine = make_engine(db_url)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            _fill(conn, md, "postgresql")
        statements = volume.growth_sql(db_url, Scale.parse("2x"))
        assert any('INSERT INTO scores' in s for s in statements)
        assert any('INSERT INTO docs' in s for s in statements)
        assert not any('INSERT INTO flags' in s for s in statements)
    finally:
        engine.dispose()
