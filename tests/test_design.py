"""Each design rule fires on a bad design and stays quiet on a good one."""
import pytest
import sqlalchemy as sa

from dbrunbook.core.db import make_engine
from dbrunbook.schema import snapshot_metadata
from dbrunbook.stages.design_validation import registry, validate, validate_snapshot


def good():
    md = sa.MetaData()
    sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("email", sa.String(200), nullable=False, unique=True),
             sa.Column("created_at", sa.DateTime(timezone=True)))
    sa.Table("orders", md, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), index=True),
             sa.Column("total", sa.Numeric(12, 2)), sa.Column("status", sa.String(20)),
             sa.Index("ix_orders_status_total", "status", "total"))
    return md


def bad(code):
    """A design that breaks exactly the rule ``code``."""
    md = good()
    if code == "DV001":
        sa.Table("notes", md, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id")))
    elif code == "DV002":
        sa.Table("log", md, sa.Column("line", sa.Text))
    elif code == "DV003":
        sa.Table("tags", md, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("status", sa.String(20), sa.ForeignKey("orders.status"), index=True))
    elif code == "DV004":
        md.tables["orders"].append_column(sa.Column("price", sa.Float))
    elif code == "DV005":
        md.tables["users"].append_column(sa.Column("seen_at", sa.DateTime))
    elif code == "DV006":
        md.tables["users"].append_column(sa.Column("nick", sa.String))
    elif code == "DV007":
        sa.Index("ix_orders_status", md.tables["orders"].c.status)
    elif code == "DV008":
        md.tables["users"].append_column(sa.Column("x" * 70, sa.Integer))
    elif code == "DV009":
        md.tables["users"].append_column(sa.Column("handle", sa.String(20), nullable=True))
        md.tables["users"].append_constraint(sa.UniqueConstraint("handle", name="uq_users_handle"))
    return md


STATIC = ["DV001", "DV002", "DV003", "DV004", "DV005", "DV006", "DV007", "DV008", "DV009"]
# SQLite has no identifier length limit to exceed.
CASES = [(code, d) for code in STATIC for d in ("sqlite", "postgresql", "mariadb")
         if registry[code].applies_to(d) and (code, d) != ("DV008", "sqlite")]


@pytest.mark.parametrize("code, dialect", CASES)
def test_rule_fires_on_bad_design_only(code, dialect):
    found = validate_snapshot(snapshot_metadata(bad(code), dialect))
    assert [f.code for f in found] == [code], found
    assert found[0].fix and found[0].object
    assert validate_snapshot(snapshot_metadata(good(), dialect)) == []


def test_every_rule_is_documented_and_tested():
    assert {r.code for r in registry} == set(STATIC) | {"DV010"}
    assert all(r.summary and r.why and r.safe for r in registry)


def test_good_design_is_quiet_on_a_live_database(db_url, dialect):
    engine = make_engine(db_url)
    try:
        good().create_all(engine)
        assert validate(engine) == []
        assert validate(engine, good()) == []
    finally:
        good().drop_all(engine)
        engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_missing_index_from_usage_statistics(db_url):
    engine = make_engine(db_url)
    md = good()
    try:
        md.create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO users (id, email) SELECT g, 'u' || g FROM generate_series(1, 2000) g"))
            conn.execute(sa.text("ANALYZE users"))
        with engine.connect() as conn:
            assert validate(engine) == []
            for _ in range(60):
                conn.execute(sa.text("SELECT count(*) FROM users WHERE created_at IS NULL")).scalar()
            conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))
            conn.commit()
        found = validate(engine)
        assert [(f.code, f.object) for f in found] == [("DV010", "users")]
        assert found[0].evidence["seq_scan"] >= 60
    finally:
        md.drop_all(engine)
        engine.dispose()


def test_docs_list_every_rule_as_registered():
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "schema.md").read_text()
    for rule in registry:
        dialects = ", ".join(rule.dialects) or "all"
        assert f"| {rule.code} | {rule.name} | {rule.severity} | {dialects} | {rule.summary} |" in docs, rule.code
