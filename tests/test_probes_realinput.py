"""Composite foreign keys, and column names SQL reserves, in the data checks and the constraint probes.

A key over two columns is an orphan when the *pair* has no parent; the probes must build a
control row that keeps its parent and a probe row whose pair has none, whatever the columns
are called.
"""
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from dbrunbook.core.db import make_engine
from dbrunbook.stages import data_checks as checks
from dbrunbook.stages.dev_rehearsal.probes import constraint_snapshot, probe_findings, run_probes


def _tables(meta, with_fk=False):
    sa.Table("owners", meta, sa.Column("c", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("n", sa.String(10), primary_key=True), sa.Column("select", sa.String(10)))
    fk = ([sa.ForeignKeyConstraint(["key", "value"], ["owners.c", "owners.n"], name="fk_parent_owners")]
          if with_fk else [])
    # Named as the checks once aliased the referred table.
    sa.Table("parent", meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("key", sa.Integer), sa.Column("value", sa.String(10)), sa.Column("order", sa.String(10)), *fk)
    # The key's columns lead the child's own primary key: a control row must keep them.
    fk = ([sa.ForeignKeyConstraint(["key", "value"], ["owners.c", "owners.n"], name="fk_lines_owners")]
          if with_fk else [])
    sa.Table("lines", meta, sa.Column("key", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("value", sa.String(10), primary_key=True), sa.Column("line", sa.Integer, primary_key=True,
                                                                            autoincrement=False), *fk)


def _fill(engine, meta, orphans=0):
    t = meta.tables
    with engine.begin() as conn:
        conn.execute(t["owners"].insert(), [{"c": i, "n": f"n{i}", "select": "x"} for i in range(5)])
        rows = [{"id": i, "key": i % 5, "value": f"n{i % 5}", "order": "o"} for i in range(10)]
        rows += [{"id": 100 + i, "key": i % 5, "value": "nobody", "order": "o"} for i in range(orphans)]
        conn.execute(t["parent"].insert(), rows)
        conn.execute(t["lines"].insert(), [{"key": i % 5, "value": f"n{i % 5}", "line": i} for i in range(10)])


def test_a_composite_foreign_key_counts_orphan_pairs(db_url, dialect):
    engine = make_engine(db_url)
    live = sa.MetaData()
    _tables(live)
    live.create_all(engine)
    _fill(engine, live, orphans=3)
    target = sa.MetaData()
    _tables(target, with_fk=True)
    report = checks.run_checks(engine, target)
    orphans = {r.table: r for r in report.results if r.problem == "orphan"}
    engine.dispose()
    assert not [r for r in report.results if r.effect == "unknown"], [r.message for r in report.results]
    assert orphans["parent"].count == 3 and orphans["parent"].columns == ["key", "value"]
    assert sorted(orphans["parent"].sample["id"]) == [100, 101, 102]
    assert orphans["lines"].count == 0


def test_probes_reject_an_orphan_pair_on_a_composite_key(db_url, dialect):
    engine = make_engine(db_url)
    meta = sa.MetaData()
    _tables(meta)
    meta.create_all(engine)
    _fill(engine, meta)
    before = constraint_snapshot(db_url)
    with engine.begin() as conn:  # the migration, as Alembic runs it (batch mode: SQLite recreates the table)
        ops = Operations(MigrationContext.configure(conn))
        for table in ("parent", "lines"):
            with ops.batch_alter_table(table) as batch:
                batch.create_foreign_key(f"fk_{table}_owners", "owners", ["key", "value"], ["c", "n"])
            with ops.batch_alter_table(table) as batch:
                batch.alter_column("value", existing_type=sa.String(10), nullable=False)
    engine.dispose()
    probes = {(p.kind, p.table, tuple(p.columns)): p for p in run_probes(db_url, before)}
    assert set(probes) >= {("foreign-key", "parent", ("key", "value")), ("foreign-key", "lines", ("key", "value")),
                           ("not-null", "parent", ("value",))}
    for probe in probes.values():
        assert probe.status == "rejected", (probe.describe(), probe.note)
    assert {f.code for f in probe_findings(list(probes.values()))} == {"RH010"}
