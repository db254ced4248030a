"""Data fingerprints computed in SQL on each dialect, and what compare() names."""
from __future__ import annotations

import datetime as dt
import decimal
import hashlib

import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.data.fingerprint import Fingerprint, compare, compare_schema, fingerprint, schema_snapshot
from dbrunbook.errors import UsageError

ROWS = [
    {"id": i, "name": f"name {i}" if i % 4 else None, "qty": i * 7, "price": decimal.Decimal(f"{i}.25"),
     "ratio": i / 8, "at": dt.datetime(2025, 1, 1) + dt.timedelta(hours=i), "flag": bool(i % 2),
     "blob": bytes([i % 256, 0, 255])}
    for i in range(1, 41)
]


def _table(metadata: sa.MetaData, name: str = "things") -> sa.Table:
    return sa.Table(
        name, metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(40)),
        sa.Column("qty", sa.Integer, nullable=False),
        sa.Column("price", sa.Numeric(10, 2)),
        sa.Column("ratio", sa.Float),
        sa.Column("at", sa.DateTime),
        sa.Column("flag", sa.Boolean),
        sa.Column("blob", sa.LargeBinary),
    )


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _fill(engine: sa.Engine, rows: list[dict], name: str = "things") -> sa.Table:
    metadata = sa.MetaData()
    table = _table(metadata, name)
    metadata.create_all(engine)
    if rows:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
    return table


def _md5_sum(values) -> str:
    return str(sum(int(hashlib.md5(str(v).encode()).hexdigest()[:15], 16) for v in values if v is not None))


def test_checksum_is_computed_from_the_values_and_ignores_row_order(engine):
    _fill(engine, ROWS, "forward")
    _fill(engine, list(reversed(ROWS)), "backward")
    fp = fingerprint(engine)
    forward, backward = fp.tables["forward"], fp.tables["backward"]
    assert forward == backward
    assert forward.rows == 40 and forward.columns["name"].non_null == 30
    # The SQL sums the same 60-bit slices of MD5 as this, on every dialect.
    assert forward.columns["name"].checksum == _md5_sum(r["name"] for r in ROWS)
    assert forward.columns["qty"].checksum == _md5_sum(r["qty"] for r in ROWS)
    assert fingerprint(engine, ["forward"]).tables.keys() == {"forward"}


def test_compare_names_table_column_and_counts(engine):
    table = _fill(engine, ROWS)
    before = fingerprint(engine)
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == 3).values(price=decimal.Decimal("9.99")))
        conn.execute(table.update().where(table.c.id <= 10).values(name=None))
        conn.execute(table.delete().where(table.c.id == 40))
    after = fingerprint(engine)
    found = {(d.table, d.column, d.what): (d.before, d.after) for d in compare(before, after)}
    assert found[("things", "", "rows")] == (40, 39)
    # ids 1-3, 5-7, 9-10 lost their name (4 and 8 had none); 40 was deleted.
    assert found[("things", "name", "non-null")] == (30, 22)
    assert ("things", "price", "values") not in found  # a deleted row changes counts first
    assert ("things", "price", "non-null") in found
    messages = [d.message for d in compare(before, after)]
    assert "column things.name has 22 non-null values, 30 before (8 did not come back)" in messages


def test_changed_value_without_count_change_is_named(engine):
    table = _fill(engine, ROWS)
    before = fingerprint(engine)
    with engine.begin() as conn:
        conn.execute(table.update().where(table.c.id == 3).values(price=decimal.Decimal("9.99")))
    [diff] = compare(before, fingerprint(engine))
    assert (diff.table, diff.column, diff.what, diff.before, diff.after) == ("things", "price", "values", 40, 40)


def test_dropped_and_added_tables_and_columns(engine):
    _fill(engine, ROWS)
    _fill(engine, ROWS[:5], "extra")
    before = fingerprint(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE extra"))
    engine.dispose()
    after = fingerprint(engine)
    after.tables["things"].columns.pop("blob")
    after.tables["new"] = after.tables["things"]
    whats = {(d.table, d.column, d.what) for d in compare(before, after)}
    assert {("extra", "", "table-missing"), ("things", "blob", "column-missing"), ("new", "", "table-added")} <= whats


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_save_load_round_trip_and_errors(engine, tmp_path):
    _fill(engine, ROWS)
    fp = fingerprint(engine)
    path = fp.save(tmp_path / "fp" / "print.json")
    assert Fingerprint.load(path) == fp and compare(fp, Fingerprint.load(path)) == []
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UsageError, match="cannot read fingerprint"):
        Fingerprint.load(tmp_path / "bad.json")
    with pytest.raises(UsageError, match="no table nope to fingerprint"):
        fingerprint(engine, ["things", "nope"])


def test_schema_snapshot_sees_a_new_column_and_index(engine):
    _fill(engine, ROWS)
    before = schema_snapshot(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE things ADD COLUMN extra INTEGER"))
        conn.execute(sa.text("CREATE INDEX ix_things_qty ON things (qty)"))
    engine.dispose()
    diffs = compare_schema(before, schema_snapshot(engine))
    assert any(d.startswith("add_column things.extra:") for d in diffs)
    assert any(d.startswith("add_index") and "ix_things_qty" in d for d in diffs)
    assert compare_schema(before, before) == []


def test_empty_and_all_null_columns(engine):
    table = _fill(engine, [])
    empty = fingerprint(engine).tables["things"]
    assert empty.rows == 0 and {c.checksum for c in empty.columns.values()} == {"0"}
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"id": 1, "qty": 1}])
    one = fingerprint(engine).tables["things"]
    assert one.columns["name"] == empty.columns["name"] and one.columns["qty"].non_null == 1
