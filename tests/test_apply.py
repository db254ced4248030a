"""`dbrunbook apply` on real databases: guards refuse, the upgrade applies, fails atomically or is aborted.

One plan run per dialect (stages 01, 03 and 10 of a small healthy project) is made once per module and
reused; every test first resets the target database to exactly the planned state.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import new_database
from dbrunbook import RunOptions, run_runbook
from dbrunbook.alembic_ops.migration import current_revision
from dbrunbook.core.archive import sha256
from dbrunbook.core.config import Target
from dbrunbook.core.db import drop_database, make_engine
from dbrunbook.core.results import load_result
from dbrunbook.data.clone import scratch_copy
from dbrunbook.data.fingerprint import compare, fingerprint
from dbrunbook.errors import EXIT_BLOCKED
from dbrunbook.runbook import verify_run
from dbrunbook.runbook.engine import runbook_folder
from dbrunbook.stages.guarded_apply import (
    GUARDS,
    LOCK_FACTS,
    ApplyLocked,
    ApplyRefused,
    RetryPolicy,
    apply,
    apply_lock,
    evidence,
    guards,
    holder,
    outcome_findings,
    plan_apply,
    plan_findings,
    refusal_findings,
    sql_to_run,
    summary,
)
from dbrunbook.stages.guarded_apply._lock import lock_file
from helpers.apply_plan import _CHANGE, CHECKLIST, CUSTOMERS, Planned, _project, _revision, plan_once
from helpers.apply_plan import Blocker as _Blocker
from helpers.projects import COOKBOOK_ENV

#: Fails midway: the names repeat, so a unique index on them is refused by the database.
_FAILS = 'op.create_index("uq_customers_name", "customers", ["name"], unique=True)'
_FAILS_SQL = "CREATE UNIQUE INDEX uq_customers_name ON customers (name)"
#: Runs longer than the abort limit; SQLite has no sleep, so a long count stands in for it.
_SLEEP = {
    "postgresql": 'op.execute("SELECT pg_sleep(5)")',
    "mariadb": 'op.execute("SELECT SLEEP(5)")',
    "sqlite": 'op.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 500000000) '
              'SELECT COUNT(*) FROM c")',
}
_SLEEP_SQL = {
    "postgresql": "SELECT pg_sleep(5)",
    "mariadb": "SELECT SLEEP(5)",
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 500000000) SELECT COUNT(*) FROM c",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def planned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from plan_once(request.param, tmp_path_factory)


def dbrunbook(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DBRUNBOOK_DB"}
    return subprocess.run([sys.executable, "-m", "dbrunbook", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def _folder(output: str) -> Path:
    """The run folder the command printed."""
    return Path(next(line.split(None, 1)[1] for line in output.splitlines() if line.strip().startswith("folder ")))


def test_dry_run_changes_nothing_then_apply_moves_to_head(planned, tmp_path):
    planned.reset()
    before = planned.state()
    plan = plan_apply(planned.plan_run, planned.target())
    assert [g.id for g in plan.guards] == list(GUARDS) and plan.refused == [], plan.guards
    assert (plan.revision_from, plan.revision_to, plan.revisions) == ("0001", "0002", ["0002"])
    assert "phone" in plan.upgrade_sql and plan.session and plan.abort_after_seconds >= 30
    assert planned.state() == before  # planning only reads

    run = run_runbook(planned.target(), RunOptions(runbooks=runbook_folder("apply"), out=tmp_path,
                                                   parameters={"plan_run": str(planned.plan_run), "execute": True}))
    assert [(s.name, s.status) for s in run.stages] == [("11-guarded-apply", "pass"), ("12-post-migration", "pass")]
    validated = load_result(run.path, "12-post-migration")
    assert validated.data["applied"] is True and not [f for f in validated.findings if f.severity != "info"]
    revision, schema, data = planned.state()
    assert revision == "0002"
    assert "phone" in {c["name"] for c in schema["tables"]["customers"]["columns"]}
    assert "ix_customers_email" in {i["name"] for i in schema["tables"]["customers"]["indexes"]}
    assert data["customers"]["rows"] == CUSTOMERS and data["orders"] == before[2]["orders"]
    result = load_result(run.path, "11-guarded-apply")
    assert result.data["applied"] is True and result.data["aborted"] is False
    assert (result.data["revision_before"], result.data["revision_after"]) == ("0001", "0002")
    assert result.data["plan_run"] == str(planned.plan_run) and all(g["ok"] for g in result.data["guards"])
    assert (run.path / result.data["fingerprint_before"]).stat().st_size > 0
    assert any("phone" in s["sql"] for s in result.data["statements"]) and result.data["monitor"]
    assert (run.path / "11-guarded-apply" / "monitor.png").stat().st_size > 0
    assert verify_run(run.path)["target"] == planned.target().db
    # the plan run is spent: a second apply is refused by the revision and schema guards
    again = {g.id: g for g in guards(planned.plan_run, planned.target())}
    assert not again["revision-unchanged"].ok and "already at the plan's head" in again["revision-unchanged"].detail
    assert not again["no-schema-drift"].ok and again["manifest-verified"].ok
    assert holder(planned.url) is None  # the apply released its lock


def test_drift_after_planning_is_refused(planned, tmp_path):
    planned.reset()
    _drift(planned.url)
    before = planned.state()
    plan = plan_apply(planned.plan_run, planned.target())
    assert [g.id for g in plan.refused] == ["no-schema-drift"] and "orders.note" in plan.refused[0].detail
    with pytest.raises(ApplyRefused, match="no-schema-drift"):
        apply(plan, planned.target(), tmp_path / "refused")
    assert planned.state() == before and not (tmp_path / "refused").exists()


def _drift(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE orders ADD COLUMN note VARCHAR(20)"))
    engine.dispose()


_STOCK_INI = """[alembic]
script_location = %(here)s/migrations
sqlalchemy.url = {url}

[loggers]
keys = root
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARN
handlers = console
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %%(levelname)-5.5s [%%(name)s] %%(message)s
"""


def test_a_stock_env_py_that_opens_its_own_connection_is_refused_before_anything_runs(tmp_path):
    """Alembic's own generic env.py builds an engine from sqlalchemy.url and ignores the connection it is handed:
    its statements would run with no lock_timeout, no reviewed-SQL gate and no monitor. The apply refuses."""
    import alembic

    url = new_database("sqlite", tmp_path)
    made = Planned("sqlite", url, _project(tmp_path, url))
    stock = Path(alembic.__file__).parent / "templates" / "generic" / "env.py"
    (made.project / "migrations" / "env.py").write_text(stock.read_text())
    (made.project / "alembic.ini").write_text(_STOCK_INI.format(url=url))
    made.reset()
    made.plan_run = made.plan(tmp_path)  # the plan stages run it fenced, on copies
    before = made.state()
    plan = plan_apply(made.plan_run, made.target())
    assert plan.refused == [], plan.guards
    outcome = apply(plan, made.target(), tmp_path / "apply" / "11-guarded-apply")
    assert not outcome.applied and "env.py opened a database connection of its own" in outcome.error
    assert outcome.rolled_back and outcome.statements == [] and made.state() == before
    drop_database(url)


def test_an_env_py_that_connects_on_the_handed_connection_is_applied_on_it(tmp_path):
    url = new_database("sqlite", tmp_path)
    made = Planned("sqlite", url, _project(tmp_path, url))
    (made.project / "migrations" / "env.py").write_text(COOKBOOK_ENV)
    made.reset()
    made.plan_run = made.plan(tmp_path)
    plan = plan_apply(made.plan_run, made.target())
    assert plan.refused == [], plan.guards
    outcome = apply(plan, made.target(), tmp_path / "apply" / "11-guarded-apply")
    assert outcome.applied, outcome.error  # was: 'Connection' object has no attribute 'connect'
    assert any("ADD COLUMN phone" in s["sql"] for s in outcome.statements)  # run where the apply watches
    assert made.state()[0] == "0002"
    drop_database(url)


@pytest.mark.parametrize("planned", ["sqlite"], indirect=True)
def test_a_clean_dry_run_apply_passes_and_prints_the_sql_it_would_run(planned):
    planned.reset()
    before = planned.state()
    dry = dbrunbook("apply", str(planned.plan_run), "--project", str(planned.project), "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "ADD COLUMN phone" in dry.stdout  # the SQL that would run, on the terminal
    folder = _folder(dry.stdout)
    # nothing started, so stage 12 needs no fingerprint: no PV000 warning degrades the verdict
    validated = load_result(folder, "12-post-migration")
    assert validated.verdict == "pass" and "PV000" not in {f.code for f in validated.findings}, validated.findings
    assert planned.state() == before


@pytest.mark.parametrize("planned", ["sqlite"], indirect=True)
def test_cli_refuses_a_drifted_target_and_records_why(planned):
    planned.reset()
    _drift(planned.url)
    before = planned.state()
    refused = dbrunbook("apply", str(planned.plan_run), "--project", str(planned.project), "--dry-run")
    assert refused.returncode == EXIT_BLOCKED, refused.stdout + refused.stderr
    assert "block AP005 [no-schema-drift]" in " ".join(refused.stdout.split())
    folder = _folder(refused.stdout)
    assert folder.parent == planned.plan_run.parent  # the apply run lands beside its plan run
    manifest = verify_run(folder)
    assert manifest["options"]["dry_run"] is True
    assert manifest["parameters"]["11-guarded-apply"]["execute"] is False
    assert manifest["parameters"]["11-guarded-apply"]["plan_run"] == str(planned.plan_run)
    recorded = load_result(folder, "11-guarded-apply")
    assert recorded.verdict == "block" and recorded.data["applied"] is False
    assert recorded.data["fingerprint_before"] is None
    assert planned.state() == before


def test_wrong_target_changed_plan_and_accept(planned, tmp_path):
    planned.reset()
    with scratch_copy(planned.url) as other:
        elsewhere = Target.from_url(other.render_as_string(hide_password=False), project_dir=planned.project)
        checked = {g.id: g for g in guards(planned.plan_run, elsewhere)}
        assert [k for k, g in checked.items() if not g.ok] == ["same-target"], checked
        assert "not " + elsewhere.db in checked["same-target"].detail
        accepted = plan_apply(planned.plan_run, elsewhere, accept=["same-target"])
        assert accepted.refused == [] and accepted.accepted == ["same-target"]
        assert [(f.code, f.severity) for f in plan_findings(accepted, True)] == [("AP003", "warn")]
    copy = tmp_path / planned.plan_run.name
    shutil.copytree(planned.plan_run, copy)
    sql = copy / "03-migration" / "upgrade.sql"
    sql.write_text(sql.read_text() + "\nDROP TABLE orders;\n")
    checked = {g.id: g for g in guards(copy, planned.target())}
    assert [k for k, g in checked.items() if not g.ok] == ["manifest-verified"]
    assert "03-migration/upgrade.sql was changed" in checked["manifest-verified"].detail
    with pytest.raises(Exception, match="unknown guard"):
        plan_apply(planned.plan_run, planned.target(), accept=["no-such-guard"])


def test_unticked_checklist_is_refused(tmp_path):
    url = new_database("sqlite", tmp_path)
    made = Planned("sqlite", url, _project(tmp_path, url))
    made.reset()
    # stage 10 alone: the items of stages that did not run are waived, except the tests
    plan_run = made.plan(tmp_path, stages=("10",), waive=[i for i in CHECKLIST if i != "tests-pass"])
    checked = {g.id: g for g in guards(plan_run, made.target())}
    assert not checked["plan-ready"].ok and checked["plan-ready"].detail.endswith("not ticked: tests-pass")
    assert checked["manifest-verified"].ok and checked["same-target"].ok


def _variant(planned: Planned, tmp: Path, middle: str, middle_sql: str):
    """The plan of ``planned`` with a revision 0002 that runs ``middle`` between its two operations.

    Its reviewed SQL is the plan's with ``middle_sql`` (what ``middle`` runs) after the added column, as stage 03
    would have reviewed the variant: the apply runs nothing else.
    """
    plan = plan_apply(planned.plan_run, planned.target())
    assert plan.refused == [], plan.refused
    scripts = tmp / "scripts"
    shutil.copytree(plan.script_dir, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    _revision(scripts, "0002_phone", _CHANGE.format(middle=middle))
    chunks = plan.upgrade_sql.split(";\n\n")
    at = next(i for i, chunk in enumerate(chunks) if "ADD COLUMN phone" in chunk) + 1
    reviewed = ";\n\n".join([*chunks[:at], middle_sql, *chunks[at:]])
    return dataclasses.replace(plan, script_dir=scripts, upgrade_sql=reviewed)


def test_failure_midway_leaves_a_transactional_target_unchanged(planned, tmp_path):
    planned.reset()
    before = planned.state()
    variant = _variant(planned, tmp_path, _FAILS, _FAILS_SQL)
    outcome = apply(variant, planned.target(), tmp_path / "stage")
    assert not outcome.applied and not outcome.aborted and outcome.error
    assert "uq_customers_name" in outcome.failed_statement and outcome.statements[-1]["failed"]
    assert any("phone" in s["sql"] for s in outcome.statements)  # the column was added before the failure
    [finding] = [f for f in outcome_findings(variant, outcome) if f.code == "AP012"]
    assert finding.severity == "block"
    after = planned.state()
    if planned.dialect == "mariadb":  # no transactional DDL: the column stays, the revision does not move
        assert not outcome.rolled_back and after[0] == "0001"
        assert "phone" in {c["name"] for c in after[1]["tables"]["customers"]["columns"]}
        assert "revisions applied before the failure: none" in finding.message
    else:
        assert outcome.rolled_back and "as it was" in finding.message
        assert after == before
        assert compare(fingerprint_of(planned), fingerprint_from(tmp_path / "stage")) == []
    assert holder(planned.url) is None  # released on the failure path too


def fingerprint_of(planned: Planned):
    engine = make_engine(planned.url)
    try:
        return fingerprint(engine)
    finally:
        engine.dispose()


def fingerprint_from(stage: Path):
    from dbrunbook.data.fingerprint import Fingerprint

    return Fingerprint.load(stage / "fingerprint-before.json")


#: PostgreSQL: another session holds ACCESS EXCLUSIVE on customers (the migration's ALTER, granted).
_HELD_SQL = ("SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'customers' "
             "AND l.mode = 'AccessExclusiveLock' AND l.granted AND l.pid <> pg_backend_pid()")


def _block_reader(url: str) -> threading.Thread:
    """A session that reads customers once the migration holds its lock (PostgreSQL).

    It waits for the lock to be granted rather than for a fixed delay: on a loaded machine the apply's own
    preparation (fingerprint, backup) can outlast any delay, and a read before the ALTER is never blocked.
    """
    def read() -> None:
        engine = make_engine(url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                deadline = time.perf_counter() + 30
                while conn.execute(sa.text(_HELD_SQL)).first() is None and time.perf_counter() < deadline:
                    time.sleep(0.02)
                conn.execute(sa.text("SELECT COUNT(*) FROM customers")).scalar()
        finally:
            engine.dispose()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def test_abort_cancels_a_long_revision(planned, tmp_path):
    planned.reset()
    before = planned.state()
    plan = dataclasses.replace(_variant(planned, tmp_path, _SLEEP[planned.dialect], _SLEEP_SQL[planned.dialect]),
                               abort_after_seconds=2.0)  # room for the reader to queue on a loaded machine
    reader = _block_reader(planned.url) if planned.dialect == "postgresql" else None
    outcome = apply(plan, planned.target(), tmp_path / "stage")
    assert outcome.seconds < 4.5  # the upgrade's own time: cancelled, not waited out
    assert outcome.aborted and not outcome.applied and outcome.error.startswith("aborted after 2s")
    assert outcome.monitor[-1]["t"] > 1.0 and planned.state()[0] == "0001"
    codes = {f.code: f for f in outcome_findings(plan, outcome)}
    assert codes["AP013"].severity == "block"
    if planned.dialect == "mariadb":  # the column added before the sleep stays: DDL committed at once
        assert not outcome.rolled_back
        assert "phone" in {c["name"] for c in planned.state()[1]["tables"]["customers"]["columns"]}
    else:
        assert outcome.rolled_back and planned.state() == before
    if reader is not None:  # the reader waited for the migration's lock, and the monitor saw it
        reader.join(timeout=5)
        assert max(s["blocked"] for s in outcome.monitor) >= 1 and "AP014" in codes


@pytest.mark.parametrize("planned", ["postgresql"], indirect=True)
def test_a_revision_that_leaves_the_transaction_is_applied_as_its_env_py_runs_it(planned, tmp_path):
    # What `dbrunbook rewrite` writes: CREATE INDEX CONCURRENTLY in Alembic's autocommit_block.
    planned.reset()
    middle = ('with op.get_context().autocommit_block():\n'
              '        op.create_index("ix_customers_name", "customers", ["name"], postgresql_concurrently=True)')
    from dbrunbook.stages.guarded_apply._run import _outside_transaction

    variant = _variant(planned, tmp_path, middle, "CREATE INDEX CONCURRENTLY ix_customers_name ON customers (name)")
    planned_as_is = plan_apply(planned.plan_run, planned.target())
    assert planned_as_is.transactional and planned_as_is.outside_transaction == []
    outside = _outside_transaction(variant.script_dir, variant.revisions)
    assert outside == ["0002_phone.py"]
    variant = dataclasses.replace(variant, outside_transaction=outside, transactional=False)  # as plan_apply sets them
    [warning] = [f for f in plan_findings(variant, execute=True) if f.code == "AP016"]
    assert warning.severity == "warn" and "0002_phone.py" in warning.message
    outcome = apply(variant, planned.target(), tmp_path / "stage")
    assert outcome.applied, outcome.error
    revision, schema, _ = planned.state()
    assert revision == "0002" and "ix_customers_name" in {i["name"] for i in schema["tables"]["customers"]["indexes"]}
    assert any("CONCURRENTLY" in s["sql"] for s in outcome.statements)


# --- a revision generated by `update --dry-run` lives in the plan run only: the apply gives it to the project ----

def _project_revision(project: Path, url: str) -> tuple[str | None, object]:
    """The target's revision and the project's own Alembic script for it (None when the project lacks it)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    engine = make_engine(url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    scripts = ScriptDirectory.from_config(Config(str(project / "alembic.ini")))
    try:
        return revision, scripts.get_revision(revision)
    except Exception:  # Alembic's "Can't locate revision identified by ...": what the issue reported
        return revision, None


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def generated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A project at 0001 whose models need a change that no revision of the project holds, planned with --dry-run."""
    tmp = tmp_path_factory.mktemp(f"generated-{request.param}")
    url = new_database(request.param, tmp)
    made = Planned(request.param, url, _project(tmp, url))
    (made.project / "migrations" / "versions" / "0002_phone.py").unlink()
    made.reset()
    made.plan_run = made.plan(tmp)
    yield made
    drop_database(url)


def _versions(planned: Planned) -> list[str]:
    return sorted(p.name for p in (planned.project / "migrations" / "versions").glob("*.py"))


def _fresh(planned: Planned) -> None:
    """The target back at 0001 and the project's versions as planned (only 0001)."""
    for path in (planned.project / "migrations" / "versions").glob("*.py"):
        if path.name != "0001_base.py":
            path.unlink()
    planned.reset()


def test_apply_writes_the_generated_revision_into_the_project_first(generated, tmp_path):
    _fresh(generated)
    plan = plan_apply(generated.plan_run, generated.target())
    [revision] = plan.revisions
    written = generated.project / "migrations" / "versions" / f"{revision}_dbrunbook_update.py"
    history = {g.id: g for g in plan.guards}["project-history"]
    assert plan.refused == [] and history.ok and f"{revision} is written to {written}" in history.detail
    dry = [(f.code, f.severity, f.evidence.get("written_to_project")) for f in plan_findings(plan, execute=False)]
    assert ("AP017", "info", str(written)) in dry
    assert _versions(generated) == ["0001_base.py"]  # planning writes nothing
    at, script = _project_revision(generated.project, generated.url)
    assert at == "0001" and script is not None

    if generated.dialect == "sqlite":  # the command as the issue ran it, its output included
        result = dbrunbook("apply", str(generated.plan_run), "--project", str(generated.project))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"AP017 [{revision}]: the generated revision {revision} was written to {written}" in result.stdout
        record = load_result(_folder(result.stdout), "11-guarded-apply")
    else:
        outcome = apply(plan, generated.target(), tmp_path / "stage")
        assert outcome.applied, outcome.error
        record = None
        assert [f.code for f in outcome_findings(plan, outcome)][:1] == ["AP017"]
        assert outcome.written_to_project == [str(written)]
    if record is not None:
        assert record.data["written_to_project"] == [str(written)] and record.data["applied"] is True
        [finding] = [f for f in record.findings if f.code == "AP017"]
        assert finding.severity == "warn" and finding.evidence["written_to_project"] == str(written)
    assert written.read_bytes() == next((generated.plan_run / "03-migration" / "alembic" / "versions")
                                        .glob(f"{revision}_*.py")).read_bytes()
    at, script = _project_revision(generated.project, generated.url)
    assert at == revision and script is not None and script.down_revision == "0001"


@pytest.mark.parametrize("generated", ["sqlite"], indirect=True)
def test_apply_refuses_when_the_project_cannot_hold_the_generated_revision(generated, tmp_path):
    _fresh(generated)
    target = generated.target()
    [revision] = plan_apply(generated.plan_run, target).revisions
    versions = generated.project / "migrations" / "versions"
    source = next((generated.plan_run / "03-migration" / "alembic" / "versions").glob(f"{revision}_*.py"))

    # already there with the same content (as `update` without --dry-run leaves it): nothing to write
    shutil.copy(source, versions / source.name)
    same = plan_apply(generated.plan_run, target)
    assert same.refused == [] and same.history.write == [] and same.history.present == [revision]
    (versions / source.name).unlink()

    before = generated.state()
    refusals = {
        "other content": (lambda: (versions / source.name).write_text(source.read_text() + "\n# edited\n"),
                          "with other content than the plan run's"),
        "history moved on": (lambda: _revision(generated.project / "migrations", "0002_other",
                                               'revision = "0002"\ndown_revision = "0001"\n'
                                               'def upgrade():\n    pass\ndef downgrade():\n    pass\n'),
                             "moved on since the plan (head 0002"),
    }
    for case, (make, why) in refusals.items():
        make()
        plan = plan_apply(generated.plan_run, target)
        assert [g.id for g in plan.refused] == ["project-history"] and why in plan.refused[0].detail, case
        [finding] = [f for f in plan_findings(plan, execute=True) if f.code == "AP007"]
        assert finding.severity == "block" and "\n" not in finding.message
        with pytest.raises(ApplyRefused, match="project-history"):
            apply(plan, target, tmp_path / case)
        assert generated.state() == before and not (tmp_path / case).exists(), case
        _fresh(generated)
    # the guard cannot be accepted: the history would point at a revision it does not have
    with pytest.raises(Exception, match="project-history cannot be accepted"):
        plan_apply(generated.plan_run, target, accept=["project-history"])


@pytest.mark.parametrize("generated", ["sqlite"], indirect=True)
def test_a_project_without_an_alembic_config_cannot_hold_the_revision(generated):
    from dbrunbook.stages.guarded_apply import project_history
    from dbrunbook.stages.guarded_apply._guards import inside, read_plan

    plan = read_plan(generated.plan_run)
    missing = generated.project / "nowhere" / "alembic.ini"
    history = project_history(generated.plan_run, str(missing), generated.project, plan,
                              inside(generated.plan_run, plan.script_dir))
    assert history.problem.startswith(f"the project has no Alembic config ({missing})") and history.write == []
    assert project_history(generated.plan_run, str(missing), generated.project, dataclasses.replace(plan, revisions=[]),
                           None).problem == ""  # nothing to apply: nothing to hold


@pytest.mark.parametrize("planned", ["sqlite"], indirect=True)
@pytest.mark.parametrize("generated", ["sqlite"], indirect=True)
def test_update_names_the_apply_command_only_when_apply_would_accept(planned, generated, tmp_path):
    from dbrunbook.runbook.report import render_run

    _fresh(generated)
    for made in (planned, generated):  # every item waived, and the project's history will hold the revision
        assert render_run(made.plan_run).splitlines()[-1].startswith(f"next: dbrunbook apply {made.plan_run.name}")
    # an open checklist item: apply would refuse the plan run, so update does not suggest it
    copy = tmp_path / planned.plan_run.name
    shutil.copytree(planned.plan_run, copy)
    sidecar = copy / "10-production-plan.result.json"
    recorded = json.loads(sidecar.read_text())
    recorded["data"]["checklist"][-1]["waived"] = ""
    sidecar.write_text(json.dumps(recorded))
    last = render_run(copy).splitlines()[-1]
    open_items = f"plan-ready: 1 of {len(CHECKLIST)} checklist items not ticked"
    assert last.startswith(f"not ready for dbrunbook apply: {open_items}")
    other = generated.project / "migrations" / "versions" / "0002_other.py"
    _revision(generated.project / "migrations", "0002_other",
              'revision = "0002"\ndown_revision = "0001"\ndef upgrade():\n    pass\ndef downgrade():\n    pass\n')
    try:
        last = render_run(generated.plan_run).splitlines()[-1]
        assert last.startswith("not ready for dbrunbook apply: project-history: the project's history moved on")
    finally:
        other.unlink()


# --- one apply at a time per target ------------------------------------------------------------------------------

def test_a_second_apply_is_refused_naming_the_holder(planned, tmp_path):
    planned.reset()
    before = planned.state()
    plan = plan_apply(planned.plan_run, planned.target())
    assert plan.refused == [] and plan.lock_holder == ""
    stage = tmp_path / "apply-run-2" / "11-guarded-apply"
    with apply_lock(planned.url, run_id="apply-run-1", plan_run=plan.plan_run_id) as held:
        assert held["run_id"] == "apply-run-1" and held["pid"] == os.getpid()
        dry = plan_apply(planned.plan_run, planned.target())  # a dry run says so, and takes nothing
        [warning] = [f for f in plan_findings(dry, execute=False) if f.code == "AP018"]
        assert warning.severity == "warn" and "apply-run-1" in warning.message
        with pytest.raises(ApplyLocked) as refused:
            apply(plan, planned.target(), stage)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("apply refused: one-apply: another apply holds")
    for part in ("apply-run-1", f"plan {plan.plan_run_id}", f"pid {os.getpid()}", socket.gethostname(), "since 20"):
        assert part in message, (part, message)
    assert refused.value.holder.run_id == "apply-run-1"
    [finding] = refusal_findings(refused.value)
    assert (finding.code, finding.severity) == ("AP018", "block") and "apply-run-1" in finding.message
    recorded = evidence(plan, None, tmp_path, refused.value)  # what stage 11 records of the refusal
    assert recorded.refused.holder["run_id"] == "apply-run-1" and recorded.applied is False
    assert summary(plan, None, refused.value) == message
    assert planned.state() == before and not stage.exists()
    assert holder(planned.url) is None  # released when the holder's block ended
    outcome = apply(plan, planned.target(), stage)  # and then the apply goes ahead
    assert outcome.applied and outcome.lock["run_id"] == "apply-run-2", outcome.error


def test_a_lock_without_a_note_still_names_its_session(planned, tmp_path):
    """Another tool (or an apply still starting) holds the lock as the dialect's facts take it, leaving no note."""
    planned.reset()
    before = planned.state()
    plan = plan_apply(planned.plan_run, planned.target())
    facts = LOCK_FACTS[planned.dialect]
    if facts.strategy == "file":
        with open(lock_file(planned.url), "a+b") as other:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with pytest.raises(ApplyLocked, match="left no note"):
                apply(plan, planned.target(), tmp_path / "stage")
    else:
        engine = make_engine(planned.url)
        try:
            with engine.connect() as other:
                key = facts.key(sa.engine.make_url(planned.url).database)
                assert other.execute(sa.text(facts.acquire_sql), {"key": key}).scalar()
                session = other.execute(sa.text("SELECT pg_backend_pid()" if planned.dialect == "postgresql"
                                                else "SELECT CONNECTION_ID()")).scalar()
                with pytest.raises(ApplyLocked, match=f"left no note.*server session {session} "):
                    apply(plan, planned.target(), tmp_path / "stage")
        finally:
            engine.dispose()
    assert planned.state() == before and holder(planned.url) is None


# --- short lock waits, retried ------------------------------------------------------------------------------------

def _short_waits(planned: Planned, retries: int, lock_ms: int = 300):
    """The plan with short lock waits (MariaDB counts whole seconds), ``retries`` attempts and short backoffs."""
    ms = 1000 if planned.dialect == "mariadb" else lock_ms
    plan = plan_apply(planned.plan_run, planned.target(), lock_timeout_ms=ms, lock_retries=retries)
    assert (plan.lock_timeout_ms, plan.lock_retries) == (ms, retries)
    return dataclasses.replace(plan, retry_backoff_seconds=0.05)


def test_a_lock_wait_is_retried_until_the_blocker_is_gone(planned, tmp_path):
    planned.reset()
    before = planned.state()
    # long enough a wait for the monitor (every 0.1 s) to see who is in the way; SQLite has no one to name
    plan = _short_waits(planned, retries=4, lock_ms=300 if planned.dialect == "sqlite" else 1000)
    blocker = _Blocker(planned)
    seen: list[dict] = []

    def on_attempt(record: dict) -> None:
        seen.append(record)
        if not record["ok"]:
            blocker.release()  # the first attempt failed waiting for the lock: now let the next one through

    try:
        outcome = apply(plan, planned.target(), tmp_path / "stage", on_attempt=on_attempt)
    finally:
        blocker.release()
    assert outcome.applied, (outcome.error, outcome.attempts)
    assert len(outcome.attempts) >= 2 and outcome.attempts == seen
    first = outcome.attempts[0]
    assert not first["ok"] and first["attempt"] == 1 and first["waited"] > 0 and first["backoff"] > 0
    assert "lock" in first["error"].lower() or "1205" in first["error"], first
    assert outcome.attempts[-1]["ok"] and outcome.attempts[-1]["attempt"] == 2
    if blocker.session is not None:  # the monitor saw who was in the way
        assert blocker.session in {b["session"] for b in first["blockers"]}, first
    [retried] = [f for f in outcome_findings(plan, outcome) if f.code == "AP020"]
    assert retried.severity == "warn" and "attempt 2" in retried.message
    revision, schema, data = planned.state()
    assert revision == "0002" and data["orders"] == before[2]["orders"] and data["customers"]["rows"] == CUSTOMERS
    assert sum(1 for s in outcome.statements if "ADD COLUMN phone" in s["sql"]) == 1  # the record: what took effect


def test_a_lock_that_stays_fails_after_lock_retries_attempts(planned, tmp_path):
    planned.reset()
    before = planned.state()
    plan = _short_waits(planned, retries=3)
    blocker = _Blocker(planned)
    try:
        outcome = apply(plan, planned.target(), tmp_path / "stage")
    finally:
        blocker.release()
    assert not outcome.applied and not outcome.aborted and outcome.error
    assert [(a["attempt"], a["ok"]) for a in outcome.attempts] == [(1, False), (2, False), (3, False)]
    assert "lock_retries: 3" in outcome.attempts[-1]["gave_up"] and "attempt 3" in outcome.error
    [failed] = [f for f in outcome_findings(plan, outcome) if f.code == "AP012"]
    assert failed.severity == "block" and len(failed.evidence["attempts"]) == 3
    assert planned.state() == before and holder(planned.url) is None


def test_retry_policy_backs_off_with_jitter_within_its_limits():
    import random

    policy = RetryPolicy(attempts=5, budget_seconds=10.0, backoff_seconds=0.5, cap_seconds=2.0)
    rng = random.Random(7)
    for attempt, full in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 2.0)):
        delays = {policy.backoff(attempt, rng) for _ in range(20)}
        assert all(full / 2 <= d <= full for d in delays) and len(delays) > 1, (attempt, delays)
    assert policy.stop(4, 1.0, 1.0) == "" and policy.stop(5, 1.0, 1.0).startswith("lock_retries")
    assert "budget" in policy.stop(2, 9.5, 1.0)


# --- exactly the reviewed SQL ------------------------------------------------------------------------------------

def test_a_script_edited_after_review_is_refused_by_the_sql_comparison(planned, tmp_path):
    planned.reset()
    before = planned.state()
    edited = tmp_path / planned.plan_run.name
    shutil.copytree(planned.plan_run, edited)
    script = next((edited / "03-migration" / "alembic" / "versions").glob("0002_*.py"))
    _revision(script.parent.parent, script.stem, _CHANGE.format(middle='op.execute("DELETE FROM orders")'))
    manifest = json.loads((edited / "manifest.json").read_text())  # so that verify passes: edited "on the record"
    manifest["files"][str(script.relative_to(edited))] = sha256(script)
    (edited / "manifest.json").write_text(json.dumps(manifest))
    plan = plan_apply(edited, planned.target())
    assert plan.refused == [] and all(g.ok for g in plan.guards), plan.guards
    assert "DELETE" not in sql_to_run(plan) and "ADD COLUMN phone" in sql_to_run(plan)

    outcome = apply(plan, planned.target(), tmp_path / "stage")
    assert not outcome.applied and outcome.error_type == "NotReviewed"
    assert "DELETE FROM orders" in outcome.sql_mismatch["executed"], outcome.sql_mismatch
    assert "ix_customers_email" in outcome.sql_mismatch["reviewed"]
    assert not any("DELETE" in s["sql"] for s in outcome.statements)  # it never reached the database
    [finding] = [f for f in outcome_findings(plan, outcome) if f.code == "AP019"]
    assert finding.severity == "block" and "DELETE FROM orders" in finding.message and "\n" not in finding.message
    assert "AP012" not in {f.code for f in outcome_findings(plan, outcome)}
    if planned.dialect == "mariadb":  # checked on a rendering before the first statement: nothing ran
        assert "before the upgrade" in outcome.sql_mismatch["when"] and "nothing ran" in finding.message
        assert outcome.statements == []
    else:
        assert outcome.rolled_back and "rolled back" in finding.message
    assert planned.state() == before and holder(planned.url) is None


def test_rows_inserted_with_bound_parameters_are_the_reviewed_literal_inserts(planned, tmp_path):
    """Offline, Alembic renders one INSERT per row with literals; online it runs one executemany with parameters."""
    planned.reset()
    rows = [{"id": 1000 + i, "customer_id": 1, "total": i} for i in range(3)]
    columns = ", ".join(f'sa.column("{c}", sa.Integer)' for c in ("id", "customer_id", "total"))
    middle = f'op.bulk_insert(sa.table("orders", {columns}), {rows!r})'
    literal = ";\n\n".join(f"INSERT INTO orders (id, customer_id, total) VALUES ({r['id']}, 1, {r['total']})"
                            for r in rows)
    variant = _variant(planned, tmp_path, middle, literal)
    outcome = apply(variant, planned.target(), tmp_path / "stage")
    assert outcome.applied and not outcome.sql_mismatch, (outcome.error, outcome.sql_mismatch)
    assert planned.state()[2]["orders"]["rows"] == 2 * CUSTOMERS + 3
    assert len(variant.reviewed()) == 3  # the three literal INSERTs count once
