"""The snapshot compares CHECKs and indexes by meaning, and shows them as SQL a reviewer reads.

PostgreSQL hands back ``status IN ('a', 'b')`` as ``(status)::text = ANY (ARRAY['a'::character
varying, ...])``; MLflow's models declare ``sa.text("version_major DESC")`` index elements.
"""
import pytest
import sqlalchemy as sa

from dbrunbook.schema import snapshot
from dbrunbook.stages import data_checks as checks
from dbrunbook.stages.schema_analysis import compare


def _models(values, mlflow_style=False, expression=True):
    md = sa.MetaData()
    t = sa.Table("runs", md, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("status", sa.String(20)), sa.Column("version_major", sa.Integer),
                 sa.Column("name", sa.String(50)), sa.Column("price", sa.Numeric(10, 2)),
                 sa.CheckConstraint(sa.column("status").in_(values), name="ck_runs_status"),
                 sa.CheckConstraint("price >= 0 AND price < 1000", name="ck_runs_price"))
    first = sa.text("version_major DESC") if mlflow_style else t.c.version_major.desc()
    sa.Index("ix_runs_latest", t.c.name, first)
    if expression:
        sa.Index("ix_runs_lower_name", sa.func.lower(t.c.name))
    return md


def test_a_check_postgresql_rewrites_is_no_change_and_another_list_is(engine, dialect):
    _models(["a", "b"], expression=dialect != "mariadb").create_all(engine)
    with engine.connect() as conn:
        stored = {c["name"]: c["sqltext"] for c in sa.inspect(conn).get_check_constraints("runs")}
    if dialect == "postgresql":
        assert "ANY (ARRAY[" in stored["ck_runs_status"]  # what made the false change
    same = _models(["a", "b"], expression=dialect != "mariadb")
    assert compare(engine, same) == []
    assert [d for d in checks.run_checks(engine, same).diffs if "check" in d] == []
    changed = compare(engine, _models(["a", "b", "c"], expression=dialect != "mariadb"))
    assert {(c.op, c.object) for c in changed} == {("add_check", "ck_runs_status"), ("remove_check", "ck_runs_status")}
    added = next(c for c in changed if c.op == "add_check")
    assert added.detail == "check status IN ('a', 'b', 'c') added"
    report = checks.run_checks(engine, _models(["a", "b", "c"], expression=dialect != "mariadb"))
    # Stage 05 sees stage 01's change: the old list goes and the new one comes (the new one is what rows may fail).
    assert sorted(d for d in report.diffs if "check" in d) == ["add_check runs.ck_runs_status",
                                                                "remove_check runs.ck_runs_status"]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mariadb"], indirect=True)
@pytest.mark.parametrize("mlflow_style", [False, True])
def test_descending_and_expression_indexes_show_as_sql_and_match_their_models(engine, dialect, mlflow_style):
    expression = dialect != "mariadb"  # MariaDB has no expression indexes
    md = _models(["a", "b"], mlflow_style, expression)
    md.create_all(engine)
    indexes = {ix.name: ix.columns for ix in snapshot(engine).tables["runs"].indexes}
    assert indexes["ix_runs_latest"] == ["name", "version_major DESC"]
    if expression:
        assert indexes["ix_runs_lower_name"] in (["lower(name)"], ["LOWER(name)"])
    assert compare(engine, md) == []
    ascending = _models(["a", "b"], expression=expression)
    runs = ascending.tables["runs"]
    runs.indexes.discard(next(i for i in runs.indexes if i.name == "ix_runs_latest"))
    sa.Index("ix_runs_latest", ascending.tables["runs"].c.name, ascending.tables["runs"].c.version_major)
    [removed] = [c for c in compare(engine, ascending) if c.op == "remove_index"]
    assert removed.detail == "index (name, version_major DESC) dropped"


@pytest.mark.parametrize("text, dialect, canonical", [
    ("status::text = ANY (ARRAY['a'::character varying, 'b'::character varying]::text[])", "postgresql",
     "status IN ('a', 'b')"),
    ("(status)::text <> ALL (ARRAY['a'::text])", "postgresql", "status NOT IN ('a')"),
    ("((price >= (0)::numeric))", "postgresql", "price >= 0"),
    ("(name)::text ~~ 'a%'::text", "postgresql", "name LIKE 'a%'"),
    ("name LIKE 'a%'", "postgresql", "name LIKE 'a%'"),
    ("`status` in ('a','b')", "mariadb", "status IN ('a', 'b')"),
    ("(price >= 0)", "sqlite", "price >= 0"),
    ("this is not ( SQL", "postgresql", "this is not ( SQL"),
    ("this   is not (\n SQL", "sqlite", "this is not ( SQL"),
])
def test_check_text_is_parsed_into_one_form(text, dialect, canonical):
    from dbrunbook.schema._canonical import canonical_sql

    assert canonical_sql(text, dialect) in (canonical, canonical_sql(canonical, dialect))


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite", "mariadb"])
def test_index_elements_keep_their_order_and_drop_defaults(dialect):
    from dbrunbook.schema._canonical import index_element

    assert index_element("version_major DESC", dialect) == "version_major DESC"
    assert index_element("version_major ASC", dialect) == "version_major"
    assert index_element('"Version" DESC', dialect).endswith(" DESC")
    assert index_element("x DESC NULLS LAST", "postgresql") == "x DESC NULLS LAST"
    assert index_element("x DESC NULLS FIRST", "postgresql") == "x DESC"
