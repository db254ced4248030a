"""The rollback round trip on real databases, with a safe and a deliberately lossy downgrade."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.stages.rollback_plan import (
    decision_criteria,
    findings,
    plan_rollback,
    prove,
    render_plan,
    round_trip,
    schema_only_findings,
)
from helpers.databases import assert_no_new_databases, db_state, list_databases
from helpers.projects import scripts_project, write_revision

NOTES = 30
WITH_BODY = 20

_BASE = '''
revision = "0001"
down_revision = None

def upgrade():
    op.create_table("notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("title", sa.String(50), nullable=False),
        sa.Column("body", sa.Text(), nullable=True))

def downgrade():
    op.drop_table("notes")
'''

#: Rename body to content and add a flag; the downgrade renames back and drops the flag.
_SAFE = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    with op.batch_alter_table("notes") as batch:
        batch.alter_column("body", new_column_name="content", existing_type=sa.Text(), existing_nullable=True)
        batch.add_column(sa.Column("archived", sa.Integer(), nullable=False, server_default="0"))

def downgrade():
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("archived")
        batch.alter_column("content", new_column_name="body", existing_type=sa.Text(), existing_nullable=True)
'''

#: Same upgrade in effect, but the downgrade recreates body empty: the notes are lost.
_LOSSY = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    with op.batch_alter_table("notes") as batch:
        batch.add_column(sa.Column("content", sa.Text(), nullable=True))
    op.execute("UPDATE notes SET content = body")
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("body")

def downgrade():
    with op.batch_alter_table("notes") as batch:
        batch.add_column(sa.Column("body", sa.Text(), nullable=True))
    with op.batch_alter_table("notes") as batch:
        batch.drop_column("content")
'''


def project(tmp_path: Path, url: str, downgrade: str) -> tuple[Target, Path]:
    """A database at revision 0001 holding notes, and scripts whose 0002 is safe or lossy."""
    change = _SAFE if downgrade == "safe" else _LOSSY
    target, scripts = scripts_project(tmp_path, url, {"0001_base": _BASE, "0002_change": change})
    engine = make_engine(url)
    notes = sa.table("notes", sa.column("id"), sa.column("title"), sa.column("body"))
    with engine.begin() as conn:
        conn.execute(notes.insert(), [{"id": i, "title": f"note {i}", "body": f"text {i}" if i <= WITH_BODY else None}
                                      for i in range(1, NOTES + 1)])
    engine.dispose()
    return target, scripts


def _target_state(url: str):
    state = db_state(url)
    return state.schema, state.data.tables


def test_safe_migration_round_trips_and_reapplies(db_url, tmp_path):
    target, scripts = project(tmp_path, db_url, "safe")
    before = _target_state(db_url)
    trip = round_trip(target, scripts)
    assert trip.completed and trip.lossless, (trip.schema_diff, [d.message for d in trip.data_diff])
    assert trip.before.tables["notes"].rows == NOTES
    assert "content" in trip.upgraded.tables["notes"].columns
    codes = [f.code for f in findings(trip)]
    assert codes == ["RT000"]
    assert decision_criteria(trip)[0]["action"] == "run the downgrade SQL"
    assert _target_state(db_url) == before  # the target was only read


def test_lossy_downgrade_is_caught_with_column_and_count(db_url, tmp_path):
    target, scripts = project(tmp_path, db_url, "lossy")
    trip = round_trip(target, scripts)
    assert trip.completed and not trip.lossless
    assert trip.schema_diff == []  # the schema does come back: only the data does not
    [diff] = trip.data_diff
    assert (diff.table, diff.column, diff.what, diff.before, diff.after) == ("notes", "body", "non-null", WITH_BODY, 0)
    [finding] = [f for f in findings(trip) if f.code == "RT004"]
    assert finding.severity == "block" and finding.object == "notes.body"
    assert f"{WITH_BODY} did not come back" in finding.message

    assert "restore the backup" in decision_criteria(trip)[0]["action"]
    trip.plan.restore_from_backup = True  # what round_trip(..., restore_from_backup=True) plans
    assert {f.severity for f in findings(trip) if f.code == "RT004"} == {"warn"}


def test_plan_only_reads_and_names_the_downgrade(db_url, tmp_path):
    target, scripts = project(tmp_path, db_url, "safe")
    before = _target_state(db_url)
    plan = plan_rollback(target, scripts)
    assert (plan.current, plan.head, plan.downgrade_to) == ("0001", "0002", "0001")
    assert "body" in plan.downgrade_sql and "'0001'" in plan.downgrade_sql
    assert _target_state(db_url) == before


_FAILING = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.execute("UPDATE notes SET no_such_column = 1")

def downgrade():
    pass
'''

_INTERRUPTED = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.add_column("notes", sa.Column("extra", sa.Integer()))
    raise KeyboardInterrupt  # what Ctrl-C raises, half way through the migration

def downgrade():
    pass
'''


def test_failing_upgrade_blocks_with_the_real_error_and_leaves_nothing(db_url, tmp_path):
    target, scripts = project(tmp_path, db_url, "safe")
    write_revision(scripts, "0002_change", _FAILING)
    databases = list_databases(db_url)
    before = _target_state(db_url)
    trip = round_trip(target, scripts)
    assert not trip.completed and trip.downgrade is None
    [finding] = findings(trip)
    assert finding.code == "RT001" and finding.severity == "block"
    assert "no_such_column" in finding.message and "no_such_column" in finding.evidence["statement"]
    assert _target_state(db_url) == before
    assert_no_new_databases(db_url, databases)


def test_interrupted_round_trip_drops_its_copy(db_url, tmp_path):
    target, scripts = project(tmp_path, db_url, "safe")
    write_revision(scripts, "0002_change", _INTERRUPTED)
    databases = list_databases(db_url)
    before = _target_state(db_url)
    with pytest.raises(KeyboardInterrupt):
        round_trip(target, scripts)
    assert _target_state(db_url) == before
    assert_no_new_databases(db_url, databases)


_DATA_BOUND = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    with op.batch_alter_table("notes") as batch:
        batch.alter_column("body", existing_type=sa.Text(), nullable=False)

def downgrade():
    with op.batch_alter_table("notes") as batch:
        batch.alter_column("body", existing_type=sa.Text(), nullable=True)
'''


def test_data_bound_failure_still_proves_the_schema_half(db_url, tmp_path):
    target, scripts = project(tmp_path, db_url, "safe")
    write_revision(scripts, "0002_change", _DATA_BOUND)
    trip, schema_trip = prove(target, scripts)
    assert not trip.upgrade.ok  # 10 notes have no body
    assert schema_trip is not None and schema_trip.lossless
    assert [f.code for f in findings(trip) + schema_only_findings(schema_trip)] == ["RT001", "RT010"]
    text = render_plan(trip.plan, trip, "restore-it", decision_criteria(trip))
    assert "NOT PROVEN" in text and "restore-it" in text and "restore the backup" in text


def test_suggested_timeout_follows_the_rehearsal():
    from dbrunbook.core.evidence import AlembicRun, DevRehearsalEvidence
    from dbrunbook.stages.rollback_plan import suggested_timeout

    def rehearsed(ok: bool, seconds: float) -> DevRehearsalEvidence:
        return DevRehearsalEvidence(revision_before=None, revision_after=None,
                                    upgrade=AlembicRun(ok=ok, seconds=seconds), target_revision_unchanged=True)

    assert suggested_timeout(rehearsed(True, 40.0)) == 120.0
    assert suggested_timeout(rehearsed(True, 2.0)) == 60.0
    assert suggested_timeout(rehearsed(False, 40.0)) is None and suggested_timeout(None) is None
    assert "longer than 120s" in decision_criteria(None, 120.0)[1]["threshold"]
