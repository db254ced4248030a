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
    # PostgreSQL has no automatic cast from VARCHAR to INTEGER: without USING, every row of both tables blocks.
    no_cast = 3 if dialect == "postgresql" else None
    assert (bad.get(("DC005", "no_cast")), good.get(("DC005", "no_cast"))) == (no_cast, no_cast)
    assert all(r.count == 0 for r in report.results if r.table == NAMES["good"] and r.problem != "no_cast")
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
    _run(engine, dup.remedies["move all but the first row (lowest key) of each group to a quarantine table"])
    again = run_checks(engine, target)
    assert next(r for r in again.results if r.table == NAMES["bad"] and r.problem == "duplicate").count == 0


def test_every_remedy_runs_on_hostile_names_and_leaves_only_what_no_row_can_fix(change, dialect):
    """The fixes, then the quarantines, run as written on the hostile names; the look-alike table is untouched."""
    engine, target = change
    good = _rows(engine, NAMES["good"], "id", "select")
    bad = [r for r in run_checks(engine, target).results if r.table == NAMES["bad"] and r.count > 0]
    for kind in ("fix", "move"):
        for result in bad:
            for name, sql in result.remedies.items():
                if name.startswith(kind) and result.language(name) == "sql":
                    _run(engine, sql, "'new'")
    again = {(r.code, r.problem): r.count for r in run_checks(engine, target).results if r.table == NAMES["bad"]}
    # Row 2 (an orphan, a duplicate, out of range ...) is moved; rows 1 and 3 are fixed in place.
    assert _rows(engine, NAMES["bad"], "id") == [(1,), (3,)] and _rows(engine, NAMES["good"], "id", "select") == good
    expected = {("DC006", "dropped"): 1} | ({("DC005", "no_cast"): 2} if dialect == "postgresql" else {})
    assert {k: n for k, n in again.items() if n} == expected
    engine.dispose()


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


# -- remedies: run on the throwaway database, they touch only the offending rows, then the migration's DDL runs ------

def _run(engine, sql, value="'x'"):
    """Run remedy SQL (statements ending in ';' at a line end) with its placeholder filled in."""
    with engine.begin() as conn:
        for statement in sql.replace("'<value>'", value).split(";\n"):
            text = statement.strip().removesuffix(";")
            if text:
                conn.exec_driver_sql(text.replace("%", "%%") if conn.dialect.paramstyle in ("format", "pyformat")
                                     else text)


def _migrate(engine, build):
    """Run Alembic operations as a migration does: ``build(op, batch)``, batch where the dialect needs it."""
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    with engine.begin() as conn:
        build(Operations(MigrationContext.configure(conn)), engine.dialect.name == "sqlite")


def _alter(engine, table, column, **kw):
    def build(op, batch):
        if batch:
            with op.batch_alter_table(table) as b:
                b.alter_column(column, **kw)
        else:
            op.alter_column(table, column, **kw)
    _migrate(engine, build)


def _python(engine, code, value="'x'"):
    """Run a Python remedy (Alembic operations) as the migration would."""
    _migrate(engine, lambda op, _batch: exec(code.replace("'<value>'", value), {"op": op, "sa": sa}))


def _rows(engine, table, *columns):
    with engine.connect() as conn:
        query = sa.select(*(sa.column(c) for c in columns)).select_from(sa.table(table)).order_by(*columns)
        return [tuple(r) for r in conn.execute(query)]


def _by(report, problem):
    return {r.table: r for r in report.results if r.problem == problem}


FILL, MOVE = "fix the values of these rows (edit the expression first)", "move these rows to a quarantine table"
ADD_DEFAULT = "add it with a server default (edit the value first)"
ADD_BACKFILL = "add it nullable, backfill by an expression (edit it first), then set NOT NULL"
ADD_NULLABLE = "add it nullable, if NULL is a meaningful value for the existing rows"
MIGRATION = "change the migration"


def test_a_new_required_column_gets_a_value_and_no_row_is_touched(db_url, dialect):
    """For ADD COLUMN ... NOT NULL: a default, a backfill before NOT NULL, or nullable; no quarantine, no DELETE."""
    engine = make_engine(db_url)
    names = ("by default", "backfilled", "nullable", "by python")
    live, target = sa.MetaData(), sa.MetaData()
    for name in names:
        sa.Table(name, live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("title", sa.String(20)))
        sa.Table(name, target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("title", sa.String(20)), sa.Column("isbn", sa.String(13), nullable=False))
    live.create_all(engine)
    with engine.begin() as conn:
        for table in live.tables.values():
            conn.execute(table.insert(), [{"id": i, "title": f"t{i}"} for i in (1, 2, 3)])
    found = _by(run_checks(engine, target), "required")
    assert {t: r.count for t, r in found.items()} == dict.fromkeys(names, 3)
    result = found["backfilled"]
    assert list(result.remedies) == [ADD_DEFAULT, ADD_BACKFILL, ADD_NULLABLE, MIGRATION]
    assert [result.language(n) for n in result.remedies] == ["sql", "sql", "sql", "python"]
    assert result.to_json()["remedy_languages"][MIGRATION] == "python"
    finding = result.finding()
    assert [r["language"] for r in finding.evidence["remedies"]] == ["sql", "sql", "sql", "python"]
    assert f"# {MIGRATION}\nop.add_column(" in finding.fix and f"-- {ADD_DEFAULT}\nALTER TABLE" in finding.fix
    sql = "\n".join(result.remedies[n] for n in (ADD_DEFAULT, ADD_BACKFILL, ADD_NULLABLE))
    assert "DELETE" not in sql and "quarantine" not in sql and "WHERE true" not in sql and "WHERE 1" not in sql
    steps = result.remedies[ADD_BACKFILL]
    add, fill = steps.index("ADD COLUMN"), steps.index("UPDATE")
    assert add < fill < steps.index("NOT NULL", fill) and "IS NULL" in steps[fill:]

    _run(engine, found["by default"].remedies[ADD_DEFAULT], "'978'")
    _run(engine, steps, "'978'")
    _run(engine, found["nullable"].remedies[ADD_NULLABLE])
    _python(engine, found["by python"].remedies[MIGRATION], "'978'")
    for name in names:
        isbn = None if name == "nullable" else "978"
        assert _rows(engine, name, "id", "title", "isbn") == [(i, f"t{i}", isbn) for i in (1, 2, 3)], name
    columns = {t: {c["name"]: c for c in sa.inspect(engine).get_columns(t)} for t in names}
    assert [columns[t]["isbn"]["nullable"] for t in names] == [False, False, True, False]
    again = run_checks(engine, target)
    engine.dispose()
    assert not any(r.count for r in again.results if r.table != "nullable")


def _set_not_null(engine, table):
    _alter(engine, table, "nick", existing_type=sa.String(20), nullable=False)


def test_not_null_remedies_touch_only_the_null_rows_then_the_migration_runs(db_url, dialect):
    engine = make_engine(db_url)
    names = ("filled", "moved", "by python", "as is")
    live, target = sa.MetaData(), sa.MetaData()
    for name in names:
        sa.Table(name, live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("nick", sa.String(20)))
        sa.Table(name, target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("nick", sa.String(20), nullable=False))
    live.create_all(engine)
    rows = [{"id": i, "nick": None if i in (2, 4) else f"n{i}"} for i in range(1, 6)]
    with engine.begin() as conn:
        for table in live.tables.values():
            conn.execute(table.insert(), rows)
    found = _by(run_checks(engine, target), "null")
    assert {t: r.count for t, r in found.items()} == dict.fromkeys(names, 2)
    fill, move = found["filled"].remedies[FILL], found["moved"].remedies[MOVE]
    assert fill.count(";") == 1 and fill.startswith("UPDATE") and fill.rstrip(";").endswith("IS NULL")
    assert "WHERE true" not in move and move.count("DELETE") == 1 and "moved_nick_null_quarantine" in move
    assert found["moved"].language(MIGRATION) == "python"
    if found["as is"].effect == "fails":  # the migration as it is fails on these rows
        with pytest.raises(sa.exc.DBAPIError):
            _set_not_null(engine, "as is")

    _run(engine, fill, "'anon'")
    _run(engine, move)
    _python(engine, found["by python"].remedies[MIGRATION], "'anon'")
    assert _rows(engine, "filled", "id", "nick") == [(1, "n1"), (2, "anon"), (3, "n3"), (4, "anon"), (5, "n5")]
    assert _rows(engine, "moved", "id", "nick") == [(1, "n1"), (3, "n3"), (5, "n5")]
    assert _rows(engine, "moved_nick_null_quarantine", "id", "nick") == [(2, None), (4, None)]
    assert _rows(engine, "by python", "id", "nick") == _rows(engine, "filled", "id", "nick")
    for name in ("filled", "moved"):
        _set_not_null(engine, name)
    columns = {t: {c["name"]: c for c in sa.inspect(engine).get_columns(t)} for t in names}
    engine.dispose()
    assert not any(columns[t]["nick"]["nullable"] for t in names[:3])


def test_unique_quarantine_moves_all_but_the_lowest_key_of_each_group(db_url, dialect):
    engine = make_engine(db_url)
    live, target = sa.MetaData(), sa.MetaData()
    for meta in (live, target):
        sa.Table("mails", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("email", sa.String(20)),
                 *([sa.UniqueConstraint("email", name="uq_mails")] if meta is target else []))
        sa.Table("pairs", meta, sa.Column("a", sa.Integer, primary_key=True, autoincrement=False),
                 sa.Column("b", sa.Integer, primary_key=True, autoincrement=False), sa.Column("email", sa.String(20)),
                 *([sa.UniqueConstraint("email", name="uq_pairs")] if meta is target else []))
    live.create_all(engine)
    emails = {1: "a", 2: "b", 3: "a", 4: "a", 5: "b", 6: "c", 7: None, 8: None}
    with engine.begin() as conn:
        conn.execute(live.tables["mails"].insert(), [{"id": i, "email": e} for i, e in emails.items()])
        conn.execute(live.tables["pairs"].insert(), [{"a": a, "b": b, "email": e} for a, b, e in
                                                     [(1, 1, "x"), (1, 2, "x"), (0, 5, "x"), (2, 1, "y")]])
    found = _by(run_checks(engine, target), "duplicate")
    assert (found["mails"].count, found["pairs"].count) == (3, 2)
    for table in ("mails", "pairs"):
        _run(engine, found[table].remedies[
            "move all but the first row (lowest key) of each group to a quarantine table"])
    assert _rows(engine, "mails", "id") == [(1,), (2,), (6,), (7,), (8,)]
    assert _rows(engine, "mails_email_duplicate_quarantine", "id", "email") == [(3, "a"), (4, "a"), (5, "b")]
    assert _rows(engine, "pairs", "a", "b") == [(0, 5), (2, 1)]
    assert _rows(engine, "pairs_email_duplicate_quarantine", "a", "b") == [(1, 1), (1, 2)]

    def add_unique(op, batch):
        for table in ("mails", "pairs"):
            if batch:
                with op.batch_alter_table(table) as b:
                    b.create_unique_constraint(f"uq_{table}", ["email"])
            else:
                op.create_unique_constraint(f"uq_{table}", table, ["email"])
    _migrate(engine, add_unique)
    engine.dispose()



def test_orphan_and_check_remedies_touch_only_the_offending_rows_then_the_constraints_add(db_url, dialect):
    engine = make_engine(db_url)
    live, target = sa.MetaData(), sa.MetaData()
    for meta in (live, target):
        sa.Table("parent", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False))
        for name in ("child", "nulled"):
            extra = [sa.ForeignKeyConstraint(["parent id"], ["parent.id"], name=f"fk_{name}"),
                     sa.CheckConstraint(sa.column("qty") >= 0, name=f"ck_{name}")] if meta is target else []
            sa.Table(name, meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column("parent id", sa.Integer), sa.Column("qty", sa.Integer), *extra)
    live.create_all(engine)
    rows = [(1, 1, 5), (2, 99, 1), (3, None, -1), (4, 2, -2), (5, 98, 3), (6, None, None)]
    with engine.begin() as conn:
        conn.execute(live.tables["parent"].insert(), [{"id": 1}, {"id": 2}])
        for name in ("child", "nulled"):
            conn.execute(live.tables[name].insert(), [{"id": i, "parent id": p, "qty": q} for i, p, q in rows])
    report = run_checks(engine, target)
    orphans, checks = _by(report, "orphan"), _by(report, "check")
    assert (orphans["child"].count, checks["child"].count) == (2, 2)
    assert (MIGRATION in orphans["child"].remedies) == (dialect == "postgresql")
    _run(engine, orphans["child"].remedies[MOVE])
    _run(engine, checks["child"].remedies[MOVE])
    _run(engine, orphans["nulled"].remedies[FILL])
    assert _rows(engine, "child", "id") == [(1,), (6,)]
    assert _rows(engine, "child_parent id_orphan_quarantine", "id", "parent id") == [(2, 99), (5, 98)]
    assert _rows(engine, "child_qty_check_quarantine", "id", "qty") == [(3, -1), (4, -2)]
    assert _rows(engine, "nulled", "id", "parent id", "qty") == [(i, None if p in (98, 99) else p, q)
                                                                 for i, p, q in rows]

    def constrain(op, batch):
        if batch:
            with op.batch_alter_table("child") as b:
                b.create_foreign_key("fk_child", "parent", ["parent id"], ["id"])
                b.create_check_constraint("ck_child", "qty >= 0")
        else:
            op.create_foreign_key("fk_child", "child", "parent", ["parent id"], ["id"])
            op.create_check_constraint("ck_child", "child", "qty >= 0")
    _migrate(engine, constrain)
    assert not any(r.count for r in run_checks(engine, target).results if r.table == "child")
    engine.dispose()


def test_a_type_change_without_an_automatic_cast_fails_on_every_row_until_it_says_using(db_url, dialect):
    """PostgreSQL refuses VARCHAR to NUMERIC without USING whatever the rows hold; the others convert each value."""
    engine = make_engine(db_url)
    live, target = sa.MetaData(), sa.MetaData()
    sa.Table("books", live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("price", sa.String(20)))
    sa.Table("books", target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("price", sa.Numeric(10, 2)))
    live.create_all(engine)
    with engine.begin() as conn:
        conn.execute(live.tables["books"].insert(), [{"id": i, "price": p} for i, p in
                                                     [(1, "12.5"), (2, "x"), (3, "7"), (4, None), (5, "1e")]])
    found = {r.problem: r for r in run_checks(engine, target).results if r.table == "books"}
    bad = found["bad_cast"]
    assert bad.count == 2 and bad.sample["id"].tolist() == [2, 5]
    plain = dict(type_=sa.Numeric(10, 2), existing_type=sa.String(20))
    if dialect == "postgresql":
        no_cast = found["no_cast"]
        assert (no_cast.count, no_cast.effect, no_cast.severity) == (5, "fails", "block")
        assert "USING CAST(price AS NUMERIC(10, 2))" in no_cast.message and "under USING" in bad.message
        using = no_cast.remedies["convert with USING (the values that do not cast still fail: see the other DC005 "
                                 "results)"]
        assert using == "ALTER TABLE books ALTER COLUMN price TYPE NUMERIC(10, 2) USING CAST(price AS NUMERIC(10, 2));"
        assert no_cast.language(MIGRATION) == "python" and "postgresql_using=" in no_cast.remedies[MIGRATION]
        with pytest.raises(sa.exc.DBAPIError, match="cannot be cast automatically"):
            _alter(engine, "books", "price", **plain)
        with pytest.raises(sa.exc.DBAPIError, match="invalid input syntax"):
            _run(engine, using)  # the values that do not cast still fail under USING
    else:
        assert "no_cast" not in found
    _run(engine, bad.remedies[MOVE])
    assert _rows(engine, "books_price_bad_cast_quarantine", "id", "price") == [(2, "x"), (5, "1e")]
    if dialect == "postgresql":
        _run(engine, using)
    else:
        _alter(engine, "books", "price", **plain)
    assert _rows(engine, "books", "id", "price") == [(1, Decimal("12.5")), (3, 7), (4, None)]
    engine.dispose()


def test_text_that_casts_but_loses_its_leading_zeros_is_data_lost(db_url, dialect):
    """A zip code 01234 becomes 1234 as INTEGER: it converts, and what it said is gone (held-out scoring, s05).
    Spaces around and a plus sign are formatting the value keeps the meaning of: no finding."""
    engine = make_engine(db_url)
    live, target = sa.MetaData(), sa.MetaData()
    sa.Table("addresses", live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("zip", sa.String(10)))
    sa.Table("addresses", target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("zip", sa.Integer))
    live.create_all(engine)
    values = [(1, "01234"), (2, "12345"), (3, "SW1A"), (4, " 42"), (5, "+7"), (6, "0"), (7, None), (8, "-5"),
              (9, "007")]
    with engine.begin() as conn:
        conn.execute(live.tables["addresses"].insert(), [{"id": i, "zip": z} for i, z in values])
    found = {r.problem: r for r in run_checks(engine, target).results if r.table == "addresses"}
    assert (found["bad_cast"].count, found["bad_cast"].sample["id"].tolist()) == (1, [3])
    reformatted = found["reformatted"]
    assert (reformatted.count, reformatted.sample["id"].tolist()) == (2, [1, 9])
    assert (reformatted.effect, reformatted.severity) == ("loses", "block")
    assert "leading zeros" in reformatted.message
    engine.dispose()


def test_a_type_change_without_a_cast_blocks_on_an_empty_table_too(db_url, dialect):
    """PostgreSQL refuses VARCHAR to INTEGER without USING before reading a row: no row is no pass."""
    from dbrunbook.stages.data_checks import CheckReport

    engine = make_engine(db_url)
    live, target = sa.MetaData(), sa.MetaData()
    sa.Table("empty", live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("n", sa.String(20)))
    sa.Table("empty", target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("n", sa.Integer))
    live.create_all(engine)
    report: CheckReport = run_checks(engine, target)
    found = {f.evidence["problem"]: f for f in report.findings() if f.code == "DC005"}
    plain = dict(type_=sa.Integer, existing_type=sa.String(20))
    if dialect == "postgresql":
        [no_cast] = [r for r in report.blocking if r.problem == "no_cast"]
        assert (no_cast.count, no_cast.severity) == (0, "block") and set(found) == {"no_cast"}
        assert "refused by PostgreSQL for any row count" in no_cast.message and "USING CAST(n AS INTEGER)" in \
            no_cast.message
        assert found["no_cast"].severity == "block" and "1 of" in report.summary()
        using = no_cast.remedies["convert with USING (the values that do not cast still fail: see the other DC005 "
                                 "results)"]
        assert "postgresql_using=" in no_cast.remedies[MIGRATION]
        with pytest.raises(sa.exc.DBAPIError, match="cannot be cast automatically"):  # and the server agrees
            _alter(engine, "empty", "n", **plain)
        _run(engine, using)
    else:
        assert not found and not report.blocking, report.summary()
        _alter(engine, "empty", "n", **plain)
    assert isinstance(sa.inspect(engine).get_columns("empty")[1]["type"], sa.Integer)
    engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_text_to_uuid_and_boolean_counts_the_values_that_fail_under_using(db_url, dialect):
    engine = make_engine(db_url)
    live, target = sa.MetaData(), sa.MetaData()
    sa.Table("things", live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("u", sa.String(40)), sa.Column("f", sa.String(10)))
    sa.Table("things", target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("u", sa.Uuid), sa.Column("f", sa.Boolean))
    live.create_all(engine)
    rows = [(1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "yes"), (2, "nope", "maybe"),
            (3, "{A0EEBC999C0B4EF8BB6D6BB9BD380A12}", " F "), (4, None, None), (5, "a0eebc99-9c0b", "on")]
    with engine.begin() as conn:
        conn.execute(live.tables["things"].insert(), [{"id": i, "u": u, "f": f} for i, u, f in rows])
    found = {(r.columns[0], r.problem): r for r in run_checks(engine, target).results if r.table == "things"}
    assert found[("u", "no_cast")].count == found[("f", "no_cast")].count == 5
    assert found[("u", "bad_cast")].sample["id"].tolist() == [2, 5]
    assert found[("f", "bad_cast")].sample["id"].tolist() == [2]
    _run(engine, found[("u", "bad_cast")].remedies[MOVE])
    for column in ("u", "f"):
        _run(engine, found[(column, "no_cast")].remedies[
            "convert with USING (the values that do not cast still fail: see the other DC005 results)"])
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id, f FROM things ORDER BY id")).all() == [(1, True), (3, False), (4, None)]
    engine.dispose()


def test_widening_type_changes_give_no_finding_and_no_warning(db_url, dialect):
    """integer to bigint, smallint to integer, a longer VARCHAR, more NUMERIC digits: nothing to count, nothing errs."""
    engine = make_engine(db_url)
    live, target = sa.MetaData(), sa.MetaData()
    sa.Table("wide", live, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("n", sa.Integer), sa.Column("s", sa.SmallInteger), sa.Column("v", sa.String(10)),
             sa.Column("d", sa.Numeric(6, 2)))
    sa.Table("wide", target, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("n", sa.BigInteger), sa.Column("s", sa.Integer), sa.Column("v", sa.String(20)),
             sa.Column("d", sa.Numeric(10, 4)))
    live.create_all(engine)
    values = [(1, 2**31 - 1, 2**15 - 1, "abcdefghij", Decimal("9999.99")),
              (2, -(2**31), -(2**15), "", Decimal("-9999.99")), (3, None, None, None, None)]
    with engine.begin() as conn:
        conn.execute(live.tables["wide"].insert(),
                     [dict(zip(("id", "n", "s", "v", "d"), v, strict=True)) for v in values])
    report = run_checks(engine, target)
    assert {"modify_type wide.n", "modify_type wide.v", "modify_type wide.d"} <= set(report.diffs)
    dc005 = [r for r in report.results if r.code == "DC005"]
    assert not any(r.count for r in dc005) and not any(r.effect == "unknown" for r in report.results), dc005
    for column in ("n", "s", "v", "d"):  # and the ALTERs really keep every value
        _alter(engine, "wide", column, type_=target.tables["wide"].c[column].type,
               existing_type=live.tables["wide"].c[column].type)
    with engine.connect() as conn:  # read as the new types
        assert [tuple(r) for r in conn.execute(sa.select(target.tables["wide"]).order_by("id"))] == values
    engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_postgresql_says_from_its_catalog_which_type_changes_need_using(db_url, dialect):
    """pg_cast's implicit and assignment casts (and I/O conversion into text) need no USING; the rest fail."""
    from dbrunbook import dialects

    engine = make_engine(db_url)
    cases = {"big BIGINT": ("INTEGER", True), "num NUMERIC(8, 2)": ("INTEGER", True), "i INTEGER": ("BOOLEAN", False),
             "t TEXT": ("VARCHAR(5)", True), "ts TIMESTAMP": ("DATE", True), "n INTEGER": ("TEXT", True),
             "v VARCHAR(9)": ("DATE", False), "d DATE": ("INTEGER", False), "a INTEGER[]": ("BIGINT[]", None)}
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE \"odd \"\"t\"\"\" ({', '.join(cases)})")
    facts = dialects.facts("postgresql")
    with engine.connect() as conn:
        said = {c: facts.casts_automatically(conn, '"odd ""t"""', c.split()[0], new) for c, (new, _) in cases.items()}
        for column, (new, _) in cases.items():  # and the server agrees: the ALTER without USING passes or fails
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(f"ALTER TABLE \"odd \"\"t\"\"\" ALTER COLUMN {column.split()[0]} TYPE {new}")
                cases[column] = (new, cases[column][1], True)
            except sa.exc.DBAPIError as exc:
                assert "cannot be cast automatically" in str(exc)
                cases[column] = (new, cases[column][1], False)
    engine.dispose()
    assert said == {c: expected for c, (_, expected, *_) in cases.items()}
    assert all(server == expected for _, expected, server in cases.values() if expected is not None)
