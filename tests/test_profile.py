"""The profile is computed in SQL, exact on small tables and labelled as estimated on large ones."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from dbrunbook.errors import UsageError
from dbrunbook.stages.data_checks.profile import chart, profile_table
from helpers.databases import create_filled

TABLE = 'odd "table" order'


@pytest.fixture
def engine(engine):
    """The engine of the empty database (conftest), with the hostile table filled."""
    table = sa.Table(TABLE, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                     sa.Column('select "x"', sa.Numeric(10, 2)), sa.Column("my text", sa.String(20)),
                     sa.Column("flag", sa.Boolean))
    rows = [{"id": i, 'select "x"': None if i % 10 == 0 else i % 7, "my text": "ab" * (1 + i % 3) if i % 4 else None,
             "flag": i % 2 == 0} for i in range(1, 201)]
    create_filled(engine, table, rows)
    return engine


def test_exact_profile_of_a_hostile_table(engine, dialect):
    p = profile_table(engine, TABLE, top=3, buckets=7)
    cols = {c.name: c for c in p.columns}
    assert p.rows == 200 and not p.sampled
    x = cols['select "x"']
    assert (x.nulls, x.distinct, x.distinct_estimated) == (20, 7, False)
    assert (float(x.min), float(x.max)) == (0.0, 6.0)
    values = [i % 7 for i in range(1, 201) if i % 10]
    assert x.mean == pytest.approx(sum(values) / len(values))
    assert sum(n for _, _, n in x.histogram) == 180 and len(x.histogram) == 7
    text = cols["my text"]
    assert (text.nulls, text.distinct, text.min_length, text.max_length) == (50, 3, 2, 6)
    assert sum(n for _, n in text.top) == 150 and len(text.top) == 3
    assert cols["flag"].nulls == 0  # MariaDB reflects BOOLEAN as TINYINT: a number there
    assert list(p.frame()["column"]) == ["id", 'select "x"', "my text", "flag"]
    assert chart(p).axes


def test_large_tables_get_a_labelled_estimate(engine, dialect):
    p = profile_table(engine, TABLE, exact_limit=10, sample_rows=100)
    cols = {c.name: c for c in p.columns}
    assert p.sampled and 0 < p.sample_rows <= 200
    assert cols["my text"].distinct_estimated and cols["my text"].distinct >= 3
    assert cols['select "x"'].nulls == 20  # null counts stay exact: they come from the full pass
    assert set(p.frame()["distinct is"]) - {""} == {"estimate"}


def test_a_missing_table_has_nothing_to_profile_and_a_missing_column_is_a_clear_error(engine, dialect):
    p = profile_table(engine, "nope")
    assert (p.exists, p.rows, p.columns) == (False, 0, []) and "does not exist" in p.note
    assert p.frame().empty and chart(p) is not None
    with pytest.raises(UsageError, match="no column"):
        profile_table(engine, TABLE, columns=["nope"])
