"""Stage 10, executed with papermill: the checklist is ticked only by evidence, and the plan follows the run."""
from __future__ import annotations

import shutil
import sys
import textwrap

import pytest
from alembic.config import Config

from dbrunbook import RunOptions, UsageError, run_runbook, verify_run
from dbrunbook.core.evidence import (
    AlembicRun,
    BackupEvidence,
    PerformanceEvidence,
    RollbackPlanEvidence,
    RollbackSteps,
    RoundTripRecord,
    TakenBackup,
)
from dbrunbook.core.results import StageResult, load_result, record
from dbrunbook.core.stage import open_stage
from dbrunbook.demo import repair_demo_data
from dbrunbook.stages import schema_analysis
from dbrunbook.stages.migration import findings as plan_findings
from dbrunbook.stages.migration import plan_migration, planned, review_migration, run_alembic
from dbrunbook.stages.production_plan import CHECKLIST_IDS, CODES, checklist, findings, production_plan, render_plan
from helpers.projects import write_project

STAGE = "10-production-plan"
PLAN_KEYS = {"revision_from", "revision_to", "revisions", "script_dir", "upgrade_sql", "downgrade_sql",
             "schema_before", "expected_seconds", "abort_after_seconds", "lock_timeout_ms", "restore_command"}
#: The test command of the healthy project: it passes only on a copy that has the new column.
_CHECK = textwrap.dedent('''
    import os, sys
    import sqlalchemy as sa
    engine = sa.create_engine(os.environ["DATABASE_URL"])
    sys.exit(0 if "currency" in [c["name"] for c in sa.inspect(engine).get_columns("orders")] else 7)
''')


def _plan_run(project, tmp_path, stages, **parameters):
    # Only what stage 10 reads is worth the time here: no throughput measure (03), no timed backfill (05).
    quick = {name: value for stage, name, value in [("03", "measure_throughput", False), ("05", "timed_batches", 0)]
             if stage in stages}
    # --rollback-plan runs the optional stage even with --stages, so it is given only when the stage is wanted.
    run = run_runbook(project.target(), RunOptions(out=tmp_path / "runs", stages=stages,
                                                   rollback_plan="rollback-plan" in stages,
                                                   dry_run=True, parameters={**quick, **parameters}))
    assert [s.name for s in run.stages][-1] == STAGE, run.stages  # the optional rollback plan runs before it
    assert all(s.status != "error" for s in run.stages), run.stages
    return run, load_result(run.path, STAGE)


def _ticked(result):
    return {item["id"] for item in result.data["checklist"] if item["ticked"]}


def _ticked_items(items):
    return {item.id for item in items if item.ticked}


def test_demo_ticks_only_what_its_sidecars_prove(demo, dialect, tmp_path):
    # Everything stage 10 reads on SQLite; on the servers the quick stages only, to keep the suite fast.
    full = dialect == "sqlite"
    stages = ["03", "04", "05", "rollback-plan", STAGE] if full else ["03", "04", STAGE]
    run, result = _plan_run(demo, tmp_path, stages, waive={"tests-pass": "the demo has no tests"})
    items = {item["id"]: item for item in result.data["checklist"]}
    assert list(items) == CHECKLIST_IDS
    assert all(set(item) == {"id", "title", "ticked", "evidence", "stage", "waived", "missing", "deferred"}
               for item in items.values())
    # The demo's change fails on its data: the rehearsal and the data checks cannot be ticked.
    assert not items["rehearsed"]["ticked"] and not items["data-checks-pass"]["ticked"]
    rehearsal = load_result(run.path, "04-dev-rehearsal").data["upgrade"]
    assert items["rehearsed"]["stage"] == "04-dev-rehearsal" and not rehearsal["ok"]
    at = next(t["revision"] for t in load_result(run.path, "04-dev-rehearsal").data["revisions"] if not t["ok"])
    failed = f"04-dev-rehearsal: the upgrade fails on a copy at revision {at}: {rehearsal['error']}"
    assert items["rehearsed"]["evidence"].startswith(failed)
    assert "; to tick it: " in items["rehearsed"]["evidence"]  # what is missing, and how to get it
    # Ticked: exactly the items whose evidence was recorded in this run (and the approvals, none required).
    assert _ticked(result) == ({"rollback-present", "backup-verified"} if full else {"rollback-present"}) \
        | {"team-approval"}
    # No notification target: the monitoring item is evidence not gathered, said so with how to get it.
    assert not items["monitoring-configured"]["ticked"] and items["monitoring-configured"]["missing"]
    assert "notify_webhook" in items["monitoring-configured"]["evidence"]
    assert items["rollback-present"]["evidence"].startswith("03-migration: the downgrade of")
    missing = ["schema-analysed", "design-valid", "code-impact-clear", "performance-ok", "staging-within-window"]
    for name in missing + ([] if full else ["data-checks-pass", "rollback-proven", "backup-verified"]):
        assert "did not run" in items[name]["evidence"], items[name]
    if full:
        assert "DC001" in items["data-checks-pass"]["evidence"] and "DC002" in items["data-checks-pass"]["evidence"]
        assert "fingerprints equal" in items["backup-verified"]["evidence"]
        assert not items["rollback-proven"]["ticked"] and "not proven" in items["rollback-proven"]["evidence"]
    # Evidence against an item blocks; evidence not gathered (a stage left out) and a waiver warn.
    by_code = {f.code: f for f in result.findings}
    assert by_code[CODES["rehearsed"]].severity == "block" and not items["rehearsed"]["missing"]
    assert all(items[name]["missing"] and by_code[CODES[name]].severity == "warn" for name in missing)
    assert by_code[CODES["tests-pass"]].severity == "warn"
    assert items["tests-pass"]["waived"] == "the demo has no tests"
    assert "waived: the demo has no tests" in items["tests-pass"]["evidence"]
    assert {c for c, f in by_code.items() if f.severity == "block"} == \
        {CODES[i] for i in CHECKLIST_IDS if not items[i]["ticked"] and not items[i]["missing"] and i != "tests-pass"}
    assert result.verdict == "block"

    migration = load_result(run.path, "03-migration").data
    plan = result.data["plan"]
    assert PLAN_KEYS <= set(plan)
    assert (plan["revision_from"], plan["revision_to"], plan["revisions"]) == \
        (migration["current"], migration["head"], migration["revisions"])
    assert plan["revision_from"] == "0001" and plan["revisions"] == [plan["revision_to"]]
    assert plan["script_dir"] == "03-migration/alembic" and plan["schema_before"] is None  # 01 did not run
    assert (run.path / plan["upgrade_sql"]).is_file() and (run.path / plan["downgrade_sql"]).is_file()
    assert plan["expected_seconds"] is None and plan["abort_after_seconds"] == 30.0  # no successful rehearsal
    assert plan["lock_timeout_ms"] == 2000 and plan["target"] == demo.target().db

    assert result.data["plan_file"] == f"{STAGE}/plan.md"
    text = (run.path / result.data["plan_file"]).read_text()
    assert migration["head"] in text and "0001" in text and "[ ] | rehearsed" in text and "[~] | tests-pass" in text
    assert f"dbrunbook apply {run.run_id}" in text and "longer than 30s" in text and "## Abort criteria" in text
    if full:
        backup = load_result(run.path, "rollback-plan").data["backup"]["backup"]
        assert plan["restore_command"] == backup["restore_command"] and backup["path"] in plan["restore_command"]
        assert plan["restore_command"] in text and "[x] | backup-verified" in text
    else:
        assert plan["restore_command"] is None and "no verified backup in this run" in text
    verify_run(run.path)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_healthy_project_ticks_the_data_items(demo, tmp_path):
    # The safe path: the data repaired, and the models keep legacy_notes instead of dropping it.
    repair_demo_data(demo.db)
    models = demo.path / "demo_app" / "models.py"
    anchor = "    created_at: Mapped[str] = mapped_column(sa.DateTime)\n\n\nclass Product"
    assert anchor in models.read_text()
    models.write_text(models.read_text().replace(anchor, anchor.replace(
        "\n\n\n", "\n    legacy_notes: Mapped[str | None] = mapped_column(sa.Text, nullable=True)\n\n\n")))
    script = tmp_path / "check.py"
    script.write_text(_CHECK)
    run, result = _plan_run(demo, tmp_path, ["04", "05", "07", "09", "rollback-plan", STAGE],
                            test_cmd=f"{sys.executable} {script}", scales=[1, 2], probes=False)
    # Every item of the stages that ran is ticked; those of the stages that did not run are not.
    assert _ticked(result) == {"rehearsed", "data-checks-pass", "tests-pass", "staging-within-window",
                               "rollback-proven", "backup-verified", "team-approval"}, result.data["checklist"]
    items = {item["id"]: item for item in result.data["checklist"]}
    staging = load_result(run.path, "09-staging").data
    assert f"{staging['predicted_seconds']:.2f}s" in items["staging-within-window"]["evidence"]
    assert "passed on the migrated copy" in items["tests-pass"]["evidence"]
    plan = result.data["plan"]
    assert plan["expected_seconds"] == pytest.approx(staging["predicted_seconds"])
    too_long = load_result(run.path, "rollback-plan").data["decision_criteria"][1]
    assert too_long["threshold"] == f"longer than {plan['abort_after_seconds']:g}s"  # the rollback plan's limit
    # Without the rollback plan's criteria the limit is three times the expected time, at least 30 s.
    shutil.copytree(run.path, tmp_path / "copy")
    (tmp_path / "copy" / "rollback-plan.result.json").unlink()
    fallback = production_plan(tmp_path / "copy")
    assert fallback.abort_after_seconds == max(30.0, 3 * staging["predicted_seconds"])
    assert fallback.restore_command is None and "rollback-proven" not in _ticked_items(checklist(tmp_path / "copy"))

    # The same evidence, read again by the library: a tighter window unticks staging, a waiver only warns.
    tight = checklist(run.path, window_seconds=staging["predicted_seconds"] / 2,
                      waive={"staging-within-window": "the shop is closed that night"})
    [item] = [i for i in tight if i.id == "staging-within-window"]
    assert not item.ticked and "over the" in item.evidence and "waived: the shop is closed that night" in item.evidence
    assert [(f.code, f.severity) for f in findings(tight) if f.object == item.id] == [(CODES[item.id], "warn")]
    assert [(f.code, f.severity) for f in findings(checklist(run.path, window_seconds=staging["predicted_seconds"] / 2))
            if f.object == item.id] == [(CODES[item.id], "block")]


def test_empty_run_folder_leaves_everything_unticked_and_the_migration_unknown(tmp_path):
    items = checklist(tmp_path)
    # No approvals are required by default: the one item stage 10 ticks without evidence from another stage.
    assert [i.id for i in items] == CHECKLIST_IDS and [i.id for i in items if i.ticked] == ["team-approval"]
    gathered = [i for i in items if not i.ticked]
    assert {f.severity for f in findings(items)} == {"warn"} and len(findings(items)) == len(gathered)
    assert all(i.missing for i in gathered)  # nothing gathered: the plan is incomplete, not refuted
    assert "--rollback-plan" in next(f.fix for f in findings(items) if f.object == "backup-verified")
    assert items[CHECKLIST_IDS.index("tests-pass")].evidence == \
        "stage 07 did not run in this run; to tick it: run dbrunbook update with --test-cmd"
    plan = production_plan(tmp_path, db="postgresql+psycopg://app:s3cret@db.example/shop")
    assert plan.revision_to is None and plan.target == "postgresql+psycopg://app:***@db.example/shop"
    text = render_plan(plan, items)
    assert "migration is unknown" in text and "s3cret" not in text and "SET lock_timeout = 2000" in text
    assert "SET statement_timeout = 31000" in text  # what apply sets: the abort limit plus its 1 s backstop


def test_a_restore_command_holding_a_password_is_masked(tmp_path):
    taken = TakenBackup("postgresql", "shop.sql", "pg_dump shop", "psql postgresql://app:s3cret@db/shop -f shop.sql",
                        "pg_dump", "postgresql-client", size=1, seconds=0.1, sha256="0" * 64)
    trip = RoundTripRecord(RollbackSteps("0001", "0002", "0001", "", False), completed=True, lossless=True,
                           upgrade=AlembicRun(ok=True, seconds=0.1))
    proven = RollbackPlanEvidence(trip, backup=BackupEvidence(taken, restore_seconds=0.1, rows=1, ok=True, diffs=[]))
    record(StageResult("rollback-plan", "pass", "proven", data=proven.to_json()), tmp_path)
    plan = production_plan(tmp_path)
    assert plan.restore_command == "psql postgresql://app:***@db/shop -f shop.sql"
    assert "s3cret" not in render_plan(plan, checklist(tmp_path))


@pytest.mark.parametrize("waive, message", [
    ({"no-such-item": "because"}, "cannot waive 'no-such-item': no such item"),
    ({"tests-pass": " "}, "cannot waive 'tests-pass': needs a reason"),
    ("tests-pass", "waive must map checklist item ids to reasons"),
])
def test_bad_waivers_are_usage_errors(tmp_path, waive, message):
    with pytest.raises(UsageError, match=message):
        checklist(tmp_path, waive=waive)
    with pytest.raises(UsageError, match="window_seconds must be a positive number"):
        checklist(tmp_path, window_seconds=0)


def test_performance_measured_only_on_a_schema_copy_is_evidence_not_gathered(tmp_path):
    def stage_08(upgrade_error):
        evidence = PerformanceEvidence(dialect="sqlite", mode="schema" if upgrade_error else "full",
                                       timed=not upgrade_error, upgrade_error=upgrade_error)
        record(StageResult("08-performance", "warn", "7 queries", data=evidence.to_json()), tmp_path)
        return next(i for i in checklist(tmp_path) if i.id == "performance-ok")

    untimed = stage_08("NOT NULL constraint failed: users.country")
    assert not untimed.ticked and untimed.missing and "schema-only copy" in untimed.evidence
    assert [f.severity for f in findings([untimed])] == ["warn"]
    timed = stage_08("")
    assert timed.ticked and "08-performance: 7 queries" in timed.evidence


def _raised_notebook(folder, name, ename="RuntimeError", evalue="the stage broke on purpose"):
    """What papermill leaves of a stage that raised: the executed notebook with the error output, no sidecar."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cell = new_code_cell("raise RuntimeError()", outputs=[new_output("error", ename=ename, evalue=evalue,
                                                                     traceback=[])])
    nbformat.write(new_notebook(cells=[cell]), folder / f"{name}.ipynb")


def test_a_stage_that_raised_is_named_with_its_error_not_called_left_out(tmp_path):
    _raised_notebook(tmp_path, "04-dev-rehearsal")
    _raised_notebook(tmp_path, "03-migration", "ConfigError", "Alembic: Multiple heads\nsecond line")
    _raised_notebook(tmp_path, "rollback-plan", "ValueError", "round trip broke")
    (tmp_path / "06-code-impact.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    items = {i.id: i for i in checklist(tmp_path)}
    rehearsed = items["rehearsed"]
    assert rehearsed.evidence.startswith("stage 04-dev-rehearsal raised RuntimeError: the stage broke on purpose "
                                         "(see 04-dev-rehearsal.ipynb); to tick it: fix what made it raise")
    assert "--stages" not in rehearsed.evidence and not rehearsed.missing and rehearsed.stage == "04"
    assert items["migration-reviewed"].evidence.startswith("stage 03-migration raised ConfigError: Alembic: "
                                                           "Multiple heads (see 03-migration.ipynb)")
    for name in ("rollback-proven", "backup-verified"):  # --rollback-plan was given: it raised
        assert items[name].evidence.startswith("stage rollback-plan raised ValueError: round trip broke")
        assert "run dbrunbook update with --rollback-plan" not in items[name].evidence
    assert items["code-impact-clear"].evidence.startswith("stage 06-code-impact ran but recorded no result")
    assert items["tests-pass"].evidence.startswith("stage 07 did not run in this run")  # left out: as before
    severity = {f.object: f.severity for f in findings(list(items.values()))}
    assert severity["rehearsed"] == severity["rollback-proven"] == "block" and severity["tests-pass"] == "warn"

    plan = production_plan(tmp_path)
    assert set(plan.raised_stages) == {"03", "04", "rollback-plan"}
    text = render_plan(plan, list(items.values()))
    assert "The migration is unknown: stage 03-migration raised ConfigError: Alembic: Multiple heads" in text
    assert "no verified backup in this run: stage rollback-plan raised ValueError: round trip broke" in text
    assert "fix stage 03 and run dbrunbook update again" in text


_REVISION = '''
from alembic import op
import sqlalchemy as sa

revision = "{revision}"
down_revision = {down!r}

def upgrade():
{upgrade}

def downgrade():
{downgrade}
'''


def _pending_project(tmp_path, name, upgrade, downgrade):
    """A real project on SQLite at revision 0001, with one pending revision 0002 doing ``upgrade``."""
    base = _REVISION.format(revision="0001", down=None, downgrade='    op.drop_table("users")',
                            upgrade='    op.create_table("users", sa.Column("id", sa.Integer(), primary_key=True))')
    pending = _REVISION.format(revision="0002", down="0001", upgrade=upgrade, downgrade=downgrade)
    db = f"sqlite:///{tmp_path / f'{name}.db'}"
    target = write_project(tmp_path / name, db, {"0001_base.py": base, "0002_change.py": pending})
    assert run_alembic(Config(target.alembic_config), db, [("upgrade", "0001")])[0].ok
    return target


#: Dagster's 1aca709bba64 on a schema-only copy: the upgrade fails; downgrade() is there.
_FAILING = ('    op.add_column("users", sa.Column("nick", sa.String(20)))\n'
            '    op.execute("UPDATE no_such_table SET x = 1")',
            '    with op.batch_alter_table("users") as batch:\n        batch.drop_column("nick")')


def _stage_03(tmp_path, name, upgrade, downgrade):
    """Stage 03's sidecar as its step records it, for a real project whose one pending revision is given."""
    target = _pending_project(tmp_path, name, upgrade, downgrade)
    run_dir = tmp_path / f"run-{name}"
    plan = plan_migration(target, run_dir / "03-migration")
    review = review_migration(plan, target, measure=False)
    found = plan_findings(plan) + review.findings
    record(StageResult("03-migration", "block", "1 revision(s) to apply", found,
                       data=planned(plan, run_dir, review).to_json()), run_dir)
    return run_dir, {f.code for f in found}


def test_a_rollback_not_rendered_because_the_upgrade_fails_is_not_gathered_not_missing(tmp_path):
    # Dagster's 1aca709bba64 on a schema-only copy: downgrade() is there; it never ran, as the upgrade failed first.
    run_dir, found = _stage_03(tmp_path, "fails", *_FAILING)
    assert {"MG002", "MG003"} <= found, found
    item = next(i for i in checklist(run_dir) if i.id == "rollback-present")
    assert not item.ticked and item.missing, item
    assert "could not be checked: the upgrade fails" in item.evidence and "MG003 [0002]" in item.evidence, item
    assert "write downgrade()" not in item.evidence + item.fix
    assert [f.severity for f in findings([item])] == ["warn"]

    # A downgrade that is really empty is still asked for, and blocks.
    run_dir, found = _stage_03(tmp_path, "empty", '    op.add_column("users", sa.Column("nick", sa.String(20)))',
                               "    pass")
    assert "MG003" not in found, found
    item = next(i for i in checklist(run_dir) if i.id == "rollback-present")
    assert not item.ticked and not item.missing and "write downgrade()" in item.fix, item
    assert [f.severity for f in findings([item])] == ["block"]


def test_a_change_not_analysed_does_not_tick_schema_analysed(tmp_path):
    # No models, and the pending revision fails on the schema-only copy: stage 01 warns SA008; PP001 is not gathered.
    target = _pending_project(tmp_path, "fails", *_FAILING)
    stage = open_stage("01-schema-analysis", db=target.db, alembic_config=target.alembic_config,
                       run_dir=str(tmp_path / "run"), project_dir=str(target.project_dir))
    outcome = schema_analysis.run(stage)
    assert stage.finish(outcome.summary, evidence=outcome.evidence).verdict == "warn"
    item = next(i for i in checklist(tmp_path / "run") if i.id == "schema-analysed")
    assert not item.ticked and item.missing and "SA008" in item.evidence and "no_such_table" in item.evidence, item
    assert [f.severity for f in findings([item])] == ["warn"]
