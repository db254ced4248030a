"""Every data check kind finds its offending rows, and reports zero on a clean look-alike table.

Both tables have the same hostile names (quotes, spaces, keywords) and the same change; only
the data differs. Nothing is written to the database by the checks.
"""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.stages.data_checks import run_checks

PARENT = 'parent "table"'
NAMES = {"bad": 'bad "Table" select', "good": 'good "Table" select'}


def _live(meta: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(
        name, meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("select", sa.String(20), nullable=True),
        sa.Column('e "mail"', sa.String(50)),
        sa.Column("parent id", sa.Integer),
        sa.Column("order qty", sa.Integer),
        sa.Column("status", sa.String(10)),
        sa.Column("code", sa.String(10)),
        sa.Column("amount", sa.Numeric(10, 4)),
        sa.Column("num text", sa.String(20)),
        sa.Column("big", sa.BigInteger),
        sa.Column("notes", sa.Text),
    )


def _target(meta: sa.MetaData, name: str) -> sa.Table:
    return sa.Table(
        name, meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("select", sa.String(20), nullable=False),
        sa.Column('e "mail"', sa.String(50), unique=True),
        sa.Column("parent id", sa.Integer, sa.ForeignKey(f"{PARENT}.id")),
        sa.Column("order qty", sa.Integer),
        sa.Column("status", sa.Enum("new", "paid", name="status_kind", native_enum=False, create_constraint=False,
                                    length=10)),
        sa.Column("code", sa.String(3)),
        sa.Column("amount", sa.Numeric(6, 2)),
        sa.Column("num text", sa.Integer),
        sa.Column("big", sa.Integer),
        sa.CheckConstraint(sa.column("order qty") >= 0, name=f"qty_ok_{name[:3]}"),
    )


_BAD = [
    dict(id=1, select=None, parent=1, qty=1, status="new", code="abc", amount=Decimal("1.5"), num="12", big=1,
         notes="keep me", mail="a@x"),
    dict(id=2, select="s", parent=99, qty=-1, status="gone", code="abcdef", amount=Decimal("12345.5"), num="x1",
         big=2**40, notes=None, mail="a@x"),
    dict(id=3, select="t", parent=None, qty=None, status=None, code=None, amount=Decimal("1.234"), num=None,
         big=None, notes=None, mail="b@x"),
]
_GOOD = [
    dict(id=1, select="a", parent=1, qty=1, status="new", code="abc", amount=Decimal("1.5"), num="12", big=1,
         notes=None, mail="a@x"),
    dict(id=2, select="b", parent=None, qty=0, status="paid", code="ab", amount=Decimal("9999.99"), num=" -3 ",
         big=-5, notes=None, mail="b@x"),
    dict(id=3, select="c", parent=2, qty=None, status=None, code=None, amount=None, num=None, big=None,
         notes=None, mail=None),
]
EXPECTED_BAD = {("DC001", "null"): 1, ("DC002", "duplicate"): 1, ("DC003", "orphan"): 1, ("DC004", "check"): 1,
                ("DC004", "enum"): 1, ("DC005", "too_long"): 1, ("DC005", "rounded"): 1, ("DC005", "bad_cast"): 1,
                ("DC006", "dropped"): 1}


def _row(values: dict) -> dict:
    return {"id": values["id"], "select": values["select"], 'e "mail"': values["mail"],
            "parent id": values["parent"], "order qty": values["qty"], "status": values["status"],
            "code": values["code"], "amount": values["amount"], "num text": values["num"], "big": values["big"],
            "notes": values["notes"]}


@pytest.fixture
def change(db_url):
    engine = make_engine(db_url)
    live = sa.MetaData()
    parent = sa.Table(PARENT, live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    tables = {kind: _live(live, name) for kind, name in NAMES.items()}
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(parent.insert(), [{"id": 1}, {"id": 2}])
        conn.execute(tables["bad"].insert(), [_row(r) for r in _BAD])
        conn.execute(tables["good"].insert(), [_row(r) for r in _GOOD])
    target = sa.MetaData()
    sa.Table(PARENT, target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
    for name in NAMES.values():
        _target(target, name)
    yield engine, target
    engine.dispose()


def _counts(report, table):
    counts: dict = {}
    for r in report.results:
        if r.table == table:
            counts[(r.code, r.problem)] = counts.get((r.code, r.problem), 0) + r.count
    return counts


def _snapshot(engine):
    with engine.connect() as conn:
        return {t: conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one()
                for t in [PARENT, *NAMES.values()]}, sorted(sa.inspect(conn).get_table_names())


def test_every_check_kind_finds_the_bad_rows_and_none_in_the_look_alike(change, dialect):
    engine, target = change
    before = _snapshot(engine)
    report = run_checks(engine, target, sample=5)
    bad, good = _counts(report, NAMES["bad"]), _counts(report, NAMES["good"])
    for key, count in EXPECTED_BAD.items():
        assert bad.get(key) == count, (key, bad)
        assert good.get(key) == 0, (key, good)
    overflow = [r for r in report.results if r.table == NAMES["bad"] and r.problem == "overflow"]
    assert sorted((r.columns[0], r.count) for r in overflow) == [("amount", 1), ("big", 1)]
    assert all(r.count == 0 for r in report.results if r.table == NAMES["good"])
    assert not any(r.effect == "unknown" for r in report.results)
    assert _snapshot(engine) == before


def test_samples_show_the_key_and_the_columns_involved(change, dialect):
    engine, target = change
    report = run_checks(engine, target, sample=5)
    by_kind = {(r.table, r.problem): r for r in report.results}
    null = by_kind[(NAMES["bad"], "null")]
    assert list(null.sample.columns) == ["id", "select"] and null.sample["id"].tolist() == [1]
    dup = by_kind[(NAMES["bad"], "duplicate")]
    assert dup.evidence["groups"] == 1 and dup.evidence["rows_in_groups"] == 2
    assert sorted(dup.sample["id"].tolist()) == [1, 2]
    dropped = by_kind[(NAMES["bad"], "dropped")]
    assert dropped.evidence["bytes"] == len("keep me")
    assert dropped.severity == "block" and "quarantine" not in " ".join(dropped.remedies)
    assert by_kind[(NAMES["bad"], "orphan")].sample["parent id"].tolist() == [99]


def test_remedies_are_sql_that_the_database_accepts(change, dialect):
    """The quarantine SQL runs (on this throwaway database) and removes exactly the offending rows."""
    engine, target = change
    report = run_checks(engine, target)
    dup = next(r for r in report.results if r.table == NAMES["bad"] and r.problem == "duplicate")
    sql = dup.remedies["move all but the first row of each group to a quarantine table"]
    with engine.begin() as conn:
        for statement in sql.split(";\n"):
            conn.exec_driver_sql(statement.rstrip(";").replace("%", "%%"))
    again = run_checks(engine, target)
    assert next(r for r in again.results if r.table == NAMES["bad"] and r.problem == "duplicate").count == 0


def test_required_column_needs_a_value_for_existing_rows(db_url, dialect):
    engine = make_engine(db_url)
    live = sa.MetaData()
    full = sa.Table("full", live, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("empty", live, sa.Column("id", sa.Integer, primary_key=True))
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(full.insert(), [{"id": i} for i in range(1, 4)])
    target = sa.MetaData()
    for name in ("full", "empty"):
        sa.Table(name, target, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("level", sa.Integer, nullable=False))
    report = run_checks(engine, target)
    counts = {r.table: r.count for r in report.results if r.problem == "required"}
    engine.dispose()
    assert counts == {"full": 3, "empty": 0}


def test_every_check_is_documented():
    from pathlib import Path

    from dbrunbook.stages.data_checks import registry

    doc = (Path(__file__).resolve().parents[1] / "docs" / "data-checks.md").read_text()
    rules = list(registry)
    assert [r.code for r in rules] == ["DC001", "DC002", "DC003", "DC004", "DC005", "DC006"]
    for rule in rules:
        assert f"| {rule.code} | {rule.name} |" in doc, rule.code


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_cli_checks_and_profile_are_thin_and_fail_cleanly(demo, dialect):
    import json

    from click.testing import CliRunner

    from dbrunbook.cli import main
    from dbrunbook.demo import DUPLICATE_EMAILS, MISSING_COUNTRY

    runner = CliRunner()
    args = ["checks", "--db", demo.db, "--models", demo.models, "--project", str(demo.path)]
    out = runner.invoke(main, [*args, "--format", "json"])
    assert out.exit_code == 1, out.output
    counts = {r["problem"]: r["count"] for r in json.loads(out.output)["results"]}
    assert counts["duplicate"] == DUPLICATE_EMAILS and counts["null"] == MISSING_COUNTRY
    text = runner.invoke(main, args)
    assert text.exit_code == 1 and f"{MISSING_COUNTRY} rows of users have NULL in country" in text.output
    prof = runner.invoke(main, ["profile", "--db", demo.db, "users", "orders"])
    assert prof.exit_code == 0 and "users: 400 rows" in prof.output
    # A table the change creates is not there yet: it is reported, the others are profiled.
    new = runner.invoke(main, ["profile", "--db", demo.db, 'no "such" table', "users", "--format", "json"])
    assert new.exit_code == 0, new.output
    profiles = {p["table"]: p for p in json.loads(new.output)}
    assert profiles["users"]["rows"] == 400 and not profiles['no "such" table']["exists"]
    assert "does not exist in the database yet" in profiles['no "such" table']["note"]


def _apply_alter(engine, table, column, type_):
    """Really run the narrowing ALTER (on the throwaway database) the way Alembic would."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with engine.begin() as conn:
        ops = Operations(MigrationContext.configure(conn))
        if engine.dialect.name == "sqlite":
            with ops.batch_alter_table(table) as batch:
                batch.alter_column(column, type_=type_, existing_type=sa.String(10))
        else:
            ops.alter_column(table, column, type_=type_, existing_type=sa.String(10))


@pytest.mark.parametrize("dialect, sql_mode", [("sqlite", "default"), ("postgresql", "default"),
                                               ("mariadb", "default"), ("mariadb", "non-strict")],
                         indirect=["dialect"])
def test_the_predicted_effect_is_what_the_database_does(db_url, dialect, sql_mode):
    """The check's words (fails / loses / keeps) are checked against the real ALTER on this dialect."""
    engine = make_engine(db_url)
    if sql_mode == "non-strict":
        @sa.event.listens_for(engine, "connect")
        def _relaxed(dbapi_conn, _record):
            with dbapi_conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = ''")
    live = sa.MetaData()
    t = sa.Table("codes", live, sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(10)))
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": 1, "code": "abcdef"}, {"id": 2, "code": "ab"}])
    target = sa.MetaData()
    sa.Table("codes", target, sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(3)))
    result = next(r for r in run_checks(engine, target).results if r.problem == "too_long")
    assert result.count == 1 and result.sample["id"].tolist() == [1]
    try:
        _apply_alter(engine, "codes", "code", sa.String(3))
        failed = False
    except sa.exc.DBAPIError:
        failed = True
    with engine.connect() as conn:
        value = conn.execute(sa.text("SELECT code FROM codes WHERE id = 1")).scalar_one()
    engine.dispose()
    observed = "fails" if failed else "loses" if value != "abcdef" else "keeps"
    assert result.effect == observed, result.message
    assert result.severity == ("warn" if observed == "keeps" else "block")


_SLOW = {"postgresql": "pg_sleep(1) IS NOT NULL", "mariadb": "SLEEP(1) = 0"}


@pytest.mark.parametrize("dialect", ["postgresql", "mariadb"], indirect=True)
def test_a_check_that_times_out_is_reported_not_passed(db_url, dialect):
    engine = make_engine(db_url)
    live = sa.MetaData()
    t = sa.Table("slow", live, sa.Column("id", sa.Integer, primary_key=True))
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": i} for i in range(1, 4)])
    target = sa.MetaData()
    sa.Table("slow", target, sa.Column("id", sa.Integer, primary_key=True),
             sa.CheckConstraint(sa.text(_SLOW[dialect]), name="ck_slow"))
    report = run_checks(engine, target, timeout_ms=300)
    engine.dispose()
    timed_out = next(r for r in report.results if r.code == "DC004")
    assert (timed_out.effect, timed_out.severity, timed_out.count) == ("unknown", "warn", -1)
    assert "could not run" in timed_out.message and timed_out.finding().severity == "warn"


def _two_tables(engine, make_live, rows_bad, rows_good):
    live = sa.MetaData()
    tables = {kind: make_live(live, f"{kind} table") for kind in ("bad", "good")}
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(tables["bad"].insert(), rows_bad)
        conn.execute(tables["good"].insert(), rows_good)


def test_primary_key_added_finds_duplicates_and_nulls(db_url, dialect):
    engine = make_engine(db_url)
    _two_tables(engine, lambda m, n: sa.Table(n, m, sa.Column("key", sa.Integer, nullable=True),
                                              sa.Column("v", sa.String(5))),
                [{"key": 1, "v": "a"}, {"key": 1, "v": "b"}, {"key": None, "v": "c"}, {"key": 2, "v": "d"}],
                [{"key": 1, "v": "a"}, {"key": 2, "v": "b"}])
    target = sa.MetaData()
    for name in ("bad table", "good table"):
        sa.Table(name, target, sa.Column("key", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("v", sa.String(5)))
    report = run_checks(engine, target)
    engine.dispose()
    counts = {(r.table, r.problem): r.count for r in report.results}
    assert counts[("bad table", "duplicate")] == 1 and counts[("good table", "duplicate")] == 0
    assert counts[("bad table", "null")] == 1 and counts[("good table", "null")] == 0


def test_removed_enum_value_is_found_in_rows_that_use_it(db_url, dialect):
    engine = make_engine(db_url)
    kinds = ("new", "paid", "gone")

    def live_table(meta, name):
        return sa.Table(name, meta, sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("state", sa.Enum(*kinds, name=f"{name.split()[0]}_state")))

    _two_tables(engine, live_table, [{"id": 1, "state": "gone"}, {"id": 2, "state": "new"}, {"id": 3, "state": None}],
                [{"id": 1, "state": "new"}, {"id": 2, "state": "paid"}])
    target = sa.MetaData()
    for name in ("bad table", "good table"):
        sa.Table(name, target, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("state", sa.Enum("new", "paid", name=f"{name.split()[0]}_state")))
    report = run_checks(engine, target)
    engine.dispose()
    found = {r.table: r for r in report.results if r.problem == "enum"}
    assert found["bad table"].count == 1 and found["bad table"].sample["id"].tolist() == [1]
    assert found["good table"].count == 0


def test_dropped_table_counts_rows_and_bytes(db_url, dialect):
    engine = make_engine(db_url)
    live = sa.MetaData()
    full = sa.Table('old "stuff"', live, sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))
    sa.Table("old empty", live, sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.Text))
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(full.insert(), [{"id": 1, "note": "abc"}, {"id": 2, "note": None}])
    report = run_checks(engine, sa.MetaData())
    engine.dispose()
    dropped = {r.table: r for r in report.results if r.problem == "dropped"}
    assert dropped['old "stuff"'].count == 2 and dropped['old "stuff"'].severity == "block"
    assert dropped['old "stuff"'].evidence["bytes"] == len("1") + len("2") + len("abc")
    assert dropped["old empty"].count == 0 and dropped["old empty"].severity == "info"


def test_the_check_session_refuses_writes(db_url, dialect):
    from dbrunbook.stages.data_checks._base import read_only

    engine = make_engine(db_url)
    meta = sa.MetaData()
    t = sa.Table("guarded", meta, sa.Column("id", sa.Integer, primary_key=True))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), [{"id": 1}])
    with read_only(engine) as (conn, _):
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(t.delete())
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one() == 1
    engine.dispose()
