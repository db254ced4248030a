"""Snapshots: a live schema reflected on each dialect equals the models it was built from."""
import pytest
import sqlalchemy as sa

from dbrunbook.core.db import drop_database, make_engine
from dbrunbook.errors import UsageError
from dbrunbook.schema import diff, load_snapshot, snapshot, snapshot_metadata
from helpers.databases import new_database


def rich_metadata(dialect):
    md = sa.MetaData()
    sa.Table("owners", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("email", sa.String(200), nullable=False, unique=True, comment="sign-in"),
             sa.Column("active", sa.Boolean, server_default=sa.true()),
             sa.Column("created", sa.DateTime, server_default=sa.func.now()))
    items = sa.Table("items", md, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("owner_id", sa.Integer, sa.ForeignKey("owners.id", ondelete="CASCADE"), index=True),
                     sa.Column("price", sa.Numeric(10, 2), server_default="0"),
                     sa.Column("code", sa.String(3), server_default="EUR"), sa.Column("big", sa.BigInteger),
                     sa.Column("body", sa.Text), sa.CheckConstraint("price >= 0", name="ck_items_price"),
                     sa.UniqueConstraint("owner_id", "code", name="uq_items_owner_code"))
    sa.Index("ix_items_code_part", items.c.code, postgresql_where=items.c.price > 5, sqlite_where=items.c.price > 5)
    return md


def test_live_snapshot_equals_models_and_round_trips(db_url, dialect, tmp_path):
    engine = make_engine(db_url)
    md = rich_metadata(dialect)
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO owners (id, email) VALUES (1, 'a@x'), (2, 'b@x')"))
        live = snapshot(engine)
        assert diff(live, snapshot_metadata(md, engine.dialect)).changes == []
        assert set(live.tables) == {"owners", "items"}
        assert live.tables["owners"].bytes and live.tables["owners"].bytes > 0
        assert live.tables["owners"].rows is not None
        fk = live.tables["items"].foreign_keys[0]
        assert (fk.ref_table, fk.ref_columns, fk.ondelete) == ("owners", ["id"], "CASCADE")
        path = live.save(tmp_path / "schema-before.json")
        assert load_snapshot(path) == live
        assert diff(load_snapshot(path), live).changes == []
    finally:
        md.drop_all(engine)
        engine.dispose()


def test_sqlite_rows_are_exact(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    md = rich_metadata("sqlite")
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO owners (id, email) VALUES (1, 'a'), (2, 'b'), (3, 'c')"))
    assert snapshot(engine).tables["owners"].rows == 3
    engine.dispose()


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"format": "other"}', '{"format": "dbrunbook.schema/1"}'])
def test_bad_snapshot_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "s.json"
    path.write_text(content)
    with pytest.raises(UsageError, match="snapshot"):
        load_snapshot(path)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_stages_1_and_2_record_snapshot_impact_and_design(demo, tmp_path):
    from dbrunbook import RunOptions, run_runbook
    from dbrunbook.core.results import load_result

    run = run_runbook(demo.target(), RunOptions(out=tmp_path / "runs", stages=["01", "02"]))
    before = load_snapshot(run.path / "01-schema-analysis" / "schema-before.json")
    assert {"users", "orders", "order_items", "products"} <= set(before.tables)
    assert before.tables["users"].rows == 400
    analysis = load_result(run.path, "01-schema-analysis")
    dropped = next(c for c in analysis.data["changes"] if c["object"] == "users.legacy_notes")
    assert dropped["classes"] == ["destructive", "breaking"] and dropped["rows_affected"] > 0
    design = load_result(run.path, "02-design-validation")
    assert design.verdict == "pass" and design.stage == "02-design-validation"


def test_the_index_a_server_makes_for_an_unnamed_foreign_key_is_not_a_change(db_url):
    from dbrunbook.stages.schema_analysis import compare

    meta = sa.MetaData()
    sa.Table("parent", meta, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("child", meta, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("pid", sa.Integer, sa.ForeignKey("parent.id")))
    engine = make_engine(db_url)
    try:
        meta.create_all(engine)
        assert compare(engine, meta) == []
    finally:
        engine.dispose()


def test_snapshot_of_mariadb_behind_a_mysql_url_on_a_fresh_engine(tmp_path):
    # dagster-mysql names its MariaDB server mysql+pymysql://; before its first connection the engine cannot
    # tell, so the snapshot names its dialect only once connected (MariaDB's catalog queries, its facts).
    url = sa.make_url(new_database("mariadb", tmp_path)).set(drivername="mysql+pymysql")
    engine = make_engine(url)
    try:
        assert snapshot(engine).dialect == "mariadb"
    finally:
        engine.dispose()
        drop_database(url)
