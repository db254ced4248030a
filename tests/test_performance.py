"""Stage 8 on real databases: plans before and after a revision, generated lookups, the stage on the demo."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.core.evidence import (
    AlembicRun,
    BackupEvidence,
    RollbackPlanEvidence,
    RollbackSteps,
    RoundTripRecord,
    TakenBackup,
)
from dbrunbook.errors import UsageError
from dbrunbook.schema import Snapshot, snapshot_metadata
from dbrunbook.stages import performance
from dbrunbook.stages.performance._changes import dropped_indexes, schema_changes, touched_tables
from helpers.databases import scalar
from helpers.projects import scripts_project
from helpers.runs import run_stages

_BASE = '''
revision = "0001"
down_revision = None

def upgrade():
    op.create_table("items", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("code", sa.String(20)),
                    sa.Column("note", sa.String(40)))
    op.create_index("ix_items_code", "items", ["code"])

def downgrade():
    op.drop_table("items")
'''
#: The change under test: drops the index every lookup by code uses.
_DROP_INDEX = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.drop_index("ix_items_code", table_name="items")

def downgrade():
    op.create_index("ix_items_code", "items", ["code"])
'''
#: Dagster's 047 shape: the index is replaced by a wider one with the same leading column.
_REPLACE_INDEX = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.create_index("ix_items_code_note", "items", ["code", "note"], unique=True)
    op.drop_index("ix_items_code", table_name="items")

def downgrade():
    op.create_index("ix_items_code", "items", ["code"])
    op.drop_index("ix_items_code_note", table_name="items")
'''
#: A harmless change: a new nullable column nobody queries.
_ADD_COLUMN = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.add_column("items", sa.Column("colour", sa.String(10), nullable=True))

def downgrade():
    op.drop_column("items", "colour")
'''
_ROWS = 3000


def items_project(tmp_path: Path, url: str, change: str) -> tuple[Target, Path]:
    """A database at 0001 with 3000 items indexed by code, and scripts adding ``change`` as 0002."""
    target, scripts = scripts_project(tmp_path, url, {"0001_base": _BASE, "0002_change": change})
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO items (id, code, note) VALUES (:id, :code, 'n')"),
                         [{"id": i, "code": f"c-{i}"} for i in range(1, _ROWS + 1)])
    finally:
        engine.dispose()
    return target, scripts


def test_dropped_index_turns_the_lookup_into_a_full_scan(db_url, dialect, tmp_path):
    target, scripts = items_project(tmp_path, db_url, _DROP_INDEX)
    mine = performance.load_queries(dialect, queries=["SELECT i.note FROM items i WHERE i.code = 'c-1234'"])
    comparison = performance.compare_performance(target, scripts, mine, repeats=2)
    assert comparison.mode == "full" and comparison.timed and comparison.touched == ["items"]
    assert comparison.dropped_indexes == {"items": ["ix_items_code"]}
    assert comparison.index_columns == {"ix_items_code": ["code"]}
    assert [(c.op, c.table, c.object) for c in comparison.changes] == [("remove_index", "items", "ix_items_code")]
    assert comparison.to_json()["changes"][0]["op"] == "remove_index"  # the typed changes reach the sidecar
    by_id = {q.query.id: q for q in comparison.queries}
    for name in ("q1", "items by code"):
        q = by_id[name]
        assert q.before.access == {"items": ["index ix_items_code"]}, q.before.raw
        assert q.after.access == {"items": ["full scan"]}, q.after.raw
        assert q.lost_index() == ["items"] and q.before.ms is not None and q.after.ms is not None
    assert by_id["items by code"].query.params == {"v0": "c-1"}  # a value read from the data
    assert not by_id["items by primary key"].lost_index()

    found = performance.findings(comparison)
    lost = [f for f in found if f.code == "PF001"]
    assert {f.evidence["query"] for f in lost} == {"q1", "items by code"}
    assert all(f.severity == "warn" and "keep index ix_items_code" in f.fix for f in lost)
    [dropped] = [f for f in found if f.code == "PF005"]
    assert dropped.object == "ix_items_code" and set(dropped.evidence["queries"]) == {"q1", "items by code"}
    if dialect == "postgresql":
        assert "CONCURRENTLY" in lost[0].fix and by_id["q1"].before.cost is not None
    plans = comparison.plans_json()
    assert all(p["before"]["plan"] and p["after"]["plan"] for p in plans)
    assert scalar(db_url, "SELECT version_num FROM alembic_version") == "0001"  # only the copies were upgraded


def test_an_index_replaced_by_a_wider_one_is_not_reported_as_dropped_in_use(db_url, dialect, tmp_path):
    target, scripts = items_project(tmp_path, db_url, _REPLACE_INDEX)
    comparison = performance.compare_performance(target, scripts, repeats=2)
    assert comparison.dropped_indexes == {"items": ["ix_items_code"]}
    by_code = {q.query.id: q for q in comparison.queries}["items by code"]
    assert by_code.before.access == {"items": ["index ix_items_code"]}, by_code.before.raw
    assert by_code.after.access == {"items": ["index ix_items_code_note"]}, by_code.after.raw
    codes = {f.code for f in performance.findings(comparison, min_ms=1000.0)}  # timings on a busy machine vary
    assert not {"PF001", "PF005"} & codes, codes


def test_unrelated_new_column_changes_no_plan(db_url, dialect, tmp_path):
    target, scripts = items_project(tmp_path, db_url, _ADD_COLUMN)
    comparison = performance.compare_performance(target, scripts, repeats=5)
    assert comparison.touched == ["items"] and not comparison.dropped_indexes
    assert [(c.op, c.object) for c in comparison.changes] == [("add_column", "items.colour")]
    assert {q.query.id for q in comparison.queries} == {"items by primary key", "items by code"}
    assert all(q.before.access == q.after.access and q.after.ok for q in comparison.queries)
    found = performance.findings(comparison)
    assert [f.code for f in found] == ["PF000"], [f.message for f in found]


#: The index renamed: dropped and created again under another name, on the same column.
_RENAME_INDEX = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.drop_index("ix_items_code", table_name="items")
    op.create_index("ix_items_by_code", "items", ["code"])

def downgrade():
    op.drop_index("ix_items_by_code", table_name="items")
    op.create_index("ix_items_code", "items", ["code"])
'''


def test_an_index_renamed_with_the_same_key_is_not_dropped(db_url, dialect, tmp_path):
    target, scripts = items_project(tmp_path, db_url, _RENAME_INDEX)
    mine = performance.load_queries(dialect, queries=["SELECT note FROM items WHERE code = 'c-1234'"])
    comparison = performance.compare_performance(target, scripts, mine, repeats=1)
    # The diff engine matches indexes by key: the same column under a new name is no change at all.
    assert comparison.changes == [] and comparison.touched == [] and comparison.dropped_indexes == {}
    [q] = comparison.queries
    assert q.before.access == {"items": ["index ix_items_code"]}, q.before.raw
    assert q.after.access == {"items": ["index ix_items_by_code"]}, q.after.raw
    codes = {f.code for f in performance.findings(comparison, min_ms=1000.0)}  # timings on a busy machine vary
    assert not {"PF001", "PF005"} & codes, codes


#: The table and its index dropped together.
_DROP_TABLE = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.drop_table("items")

def downgrade():
    op.create_table("items", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("code", sa.String(20)),
                    sa.Column("note", sa.String(40)))
    op.create_index("ix_items_code", "items", ["code"])
'''


def test_a_dropped_table_is_touched_but_its_indexes_are_not_listed_as_dropped(db_url, dialect, tmp_path):
    target, scripts = items_project(tmp_path, db_url, _DROP_TABLE)
    mine = performance.load_queries(dialect, queries=["SELECT note FROM items WHERE code = 'c-1234'"])
    comparison = performance.compare_performance(target, scripts, mine, repeats=0)
    assert [(c.op, c.table) for c in comparison.changes] == [("remove_table", "items")]
    assert comparison.touched == ["items"] and comparison.dropped_indexes == {}
    codes = {f.code for f in performance.findings(comparison)}
    assert "PF007" in codes and "PF005" not in codes  # the query fails; "keep the index" would mean nothing


def test_dropped_unique_constraints_are_named_with_their_columns_and_unnamed_ones_left_out():
    def schema(*extra: sa.SchemaItem) -> Snapshot:
        meta = sa.MetaData()
        sa.Table("tags", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(20)),
                 sa.Column("owner", sa.Integer), sa.Column("slug", sa.String(20)), *extra)
        return snapshot_metadata(meta, "sqlite", models=False)

    before = schema(sa.UniqueConstraint("owner", "name", name="uq_tags_owner_name"), sa.UniqueConstraint("slug"),
                    sa.Index("ix_tags_slug_desc", sa.text("slug DESC")))
    after = schema(sa.Index("ix_tags_slug_desc_renamed", sa.text("slug DESC")))
    changes = schema_changes(before, after)
    assert sorted(c.op for c in changes) == ["remove_unique", "remove_unique"]
    assert touched_tables(changes) == ["tags"]
    assert dropped_indexes(changes, before) == ({"tags": ["uq_tags_owner_name"]},
                                                {"uq_tags_owner_name": ["owner", "name"]})


@pytest.mark.parametrize("sql", [
    "DELETE FROM items",
    "UPDATE items SET note = 'x'",
    "SELECT * FROM items FOR UPDATE",
    "SELECT * INTO copy_of_items FROM items",
    "WITH gone AS (DELETE FROM items RETURNING id) SELECT * FROM gone",
    "DROP TABLE items",
    "SELECT 1; TRUNCATE items",
])
def test_anything_but_a_read_only_select_is_rejected(sql):
    with pytest.raises(UsageError, match="only read-only SELECT"):
        performance.load_queries("postgresql", queries=[sql])


def test_queries_file_is_split_on_semicolons_outside_strings(tmp_path):
    (tmp_path / "q.sql").write_text("SELECT * FROM items WHERE note = 'a;b';\n\nSELECT u.id FROM users u JOIN "
                                    "orders o ON o.user_id = u.id;\n")
    first, second = performance.load_queries("sqlite", "q.sql", project_dir=tmp_path)
    assert first.sql == "SELECT * FROM items WHERE note = 'a;b'" and first.tables == ["items"]
    assert second.tables == ["orders", "users"] and second.aliases == {"u": "users", "o": "orders"}
    with pytest.raises(UsageError, match="not found"):
        performance.load_queries("sqlite", "missing.sql", project_dir=tmp_path)


def test_stage_on_the_demo_compares_plans_on_a_schema_copy_when_the_data_stops_the_upgrade(demo, tmp_path):
    run, result = run_stages(demo.target(), tmp_path / "runs", ["08"])
    assert [s.status for s in run.stages] == ["warn"], run.stages
    assert result.data["mode"] == "schema" and result.data["timed"] is False
    assert result.data["upgrade_error"] and set(result.data["touched"]) == {"users", "orders"}
    codes = {f.code: f for f in result.findings}
    assert codes["PF006"].severity == "warn" and codes["PF009"].severity == "info" and "PF010" in codes
    rows = {r["query"]: r for r in result.data["queries"]}
    assert rows["users by primary key"]["before ms"] is None  # no timing on an empty copy
    assert "full scan" in rows["users by email"]["before path"]
    plans = json.loads((run.path / result.data["plans"]).read_text())
    assert {p["id"] for p in plans} == set(rows) and all(p["after"]["plan"] for p in plans)
    assert (run.path / result.data["chart"]).stat().st_size > 0


def test_a_query_past_the_time_bound_is_stopped_and_reported(db_url, dialect, tmp_path):
    target, scripts = items_project(tmp_path, db_url, _ADD_COLUMN)
    slow = performance.load_queries(dialect, queries=["SELECT COUNT(*) FROM items a, items b, items c"])
    comparison = performance.compare_performance(target, scripts, slow, repeats=1, timeout_seconds=0.5)
    q = comparison.queries[0]
    assert q.before.timed_out and q.after.timed_out and q.before.ms is None and q.before.ok
    assert "PF008" in {f.code for f in performance.findings(comparison)}


#: A new table whose foreign key has no index.
_NEW_FK = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.create_table("labels", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("item_id", sa.Integer(), sa.ForeignKey("items.id", name="fk_labels_item_id")))

def downgrade():
    op.drop_table("labels")
'''


def test_foreign_key_without_an_index_where_the_database_does_not_add_one(db_url, dialect, tmp_path):
    target, scripts = items_project(tmp_path, db_url, _NEW_FK)
    comparison = performance.compare_performance(target, scripts, repeats=0)
    assert comparison.touched == ["labels"] and comparison.queries == []
    found = [f for f in performance.findings(comparison) if f.code == "PF004"]
    if dialect == "mariadb":  # MariaDB indexes every foreign key itself
        assert found == []
    else:
        [finding] = found
        assert finding.object == "labels(item_id)" and "ON labels (item_id)" in finding.fix
        assert ("CONCURRENTLY" in finding.fix) == (dialect == "postgresql")


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)  # the backup tools are covered by test_backup
def test_backup_time_is_measured_on_request_or_read_from_the_rollback_plan(db_url, dialect, tmp_path):
    items_project(tmp_path, db_url, _ADD_COLUMN)
    data, [finding] = performance.backup_findings(None, performance.measure_backup(db_url))
    assert data.source == "measured" and data.size and data.size > 0 and data.restored_ok is True
    assert finding.code == "PF010" and f"{data.size:,} bytes" in finding.message
    saved = _rollback_plan_with_backup(size=2048, seconds=0.5, restore_seconds=0.25)
    data, [finding] = performance.backup_findings(saved)
    assert data.source == "rollback-plan" and "2,048 bytes took 0.50s, restored in 0.25s" in finding.message
    data, [finding] = performance.backup_findings(None)
    assert data.to_json() == {"source": "not measured"} and "not measured" in finding.message


def _rollback_plan_with_backup(size: int, seconds: float, restore_seconds: float) -> RollbackPlanEvidence:
    """The rollback plan's evidence as stage 'rollback-plan' records it, with a verified backup."""
    trip = RoundTripRecord(plan=RollbackSteps(current=None, head="0002", downgrade_to="0001", downgrade_sql="",
                                              restore_from_backup=False),
                           completed=True, lossless=True, upgrade=AlembicRun(ok=True, seconds=0.1))
    taken = TakenBackup(dialect="sqlite", path="backup.db", command="", restore_command="", tool="sqlite3",
                        package="sqlite3", size=size, seconds=seconds, sha256="0" * 64)
    return RollbackPlanEvidence(round_trip=trip, backup=BackupEvidence(backup=taken, restore_seconds=restore_seconds,
                                                                       rows=1, ok=True, diffs=[]))
