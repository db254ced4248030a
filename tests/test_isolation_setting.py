"""``alembic_isolation_level`` in ``[tool.dbrunbook]``: the project's revisions run at its runner's isolation level.

A revision that runs ``CREATE INDEX CONCURRENTLY`` outside ``autocommit_block()`` works only on an AUTOCOMMIT
connection (Dagster's own runner opens one). With the setting it runs so on the scratch copies (the fenced
Alembic child, whether env.py uses the connection it is handed or opens its own) and in ``dbrunbook apply``,
whose lock timeout still holds (a lock wait is retried) and whose journal says the run was under AUTOCOMMIT.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbrunbook.alembic_ops.migration import alembic_config, apply_upgrade
from dbrunbook.core import contract
from dbrunbook.core.archive import read_step
from dbrunbook.core.config import Target, load_isolation_level, load_run_settings
from dbrunbook.core.db import drop_database
from dbrunbook.core.evidence import GuardedApplyEvidence
from dbrunbook.errors import EXIT_PASS, EXIT_USAGE, ConfigError
from dbrunbook.stages.guarded_apply import apply, plan_apply
from helpers.apply_plan import Blocker, Planned, _project, _revision
from helpers.databases import new_database

#: Revision 0002 of the apply project as Dagster writes its index revisions: CONCURRENTLY, no autocommit_block.
_CONCURRENTLY = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.add_column("customers", sa.Column("phone", sa.String(30), nullable=True))
    op.create_index("ix_customers_email", "customers", ["email"], postgresql_concurrently=True)

def downgrade():
    op.drop_index("ix_customers_email", table_name="customers", postgresql_concurrently=True)
    op.drop_column("customers", "phone")
'''
_SETTING = 'alembic_isolation_level = "AUTOCOMMIT"\n'
_NOT_IN_A_TRANSACTION = "cannot run inside a transaction block"


def _pyproject(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(f"[tool.dbrunbook]\n{text}")
    return folder


# --- the setting --------------------------------------------------------------------------------------------------

def test_the_setting_is_read_as_sqlalchemy_spells_it(tmp_path):
    assert load_run_settings(_pyproject(tmp_path / "none", "")).alembic_isolation_level == ""
    assert load_run_settings(_pyproject(tmp_path / "a", _SETTING)).alembic_isolation_level == "AUTOCOMMIT"
    lower = _pyproject(tmp_path / "b", 'alembic_isolation_level = "read_committed"\n')
    assert load_isolation_level(lower) == "READ COMMITTED"
    for wrong in ('"SOMETIMES"', "true", '""'):
        with pytest.raises(ConfigError, match="alembic_isolation_level in .tool.dbrunbook. must be one of AUTOCOMMIT"):
            load_run_settings(_pyproject(tmp_path / "c", f"alembic_isolation_level = {wrong}\n"))


def test_an_invalid_value_stops_update_with_one_line(tmp_path):
    project = _pyproject(tmp_path / "p", f'db = "sqlite:///{tmp_path}/app.db"\nalembic_isolation_level = "AUTO"\n')
    env = {k: v for k, v in os.environ.items() if k != "DBRUNBOOK_DB"}
    done = subprocess.run([sys.executable, "-m", "dbrunbook", "update", "--project", str(project), "--dry-run",
                           "--no-progress", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == EXIT_USAGE, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "alembic_isolation_level in [tool.dbrunbook] must be one of AUTOCOMMIT" in line and "'AUTO'" in line
    assert not (tmp_path / "runs").exists()


# --- the fenced child, on a copy --------------------------------------------------------------------------------

@pytest.mark.parametrize("env_py", ["handed", "own engine"])
def test_the_child_runs_concurrently_revisions_on_an_autocommit_connection(env_py, tmp_path):
    """With the setting, the connection handed to env.py and an engine env.py builds itself are both AUTOCOMMIT."""
    import alembic

    url = new_database("postgresql", tmp_path)
    try:
        project = _pyproject(tmp_path / "p", "")
        cfg = alembic_config(Target.from_url(url, project_dir=project), tmp_path / "scripts")
        if env_py == "own engine":  # Alembic's generic env.py: engine_from_config(sqlalchemy.url), nothing handed
            stock = Path(alembic.__file__).parent / "templates" / "generic" / "env.py"
            (tmp_path / "scripts" / "env.py").write_text(stock.read_text())
        _revision(tmp_path / "scripts", "0001_base", '''
            revision = "0001"
            down_revision = None

            def upgrade():
                op.create_table("t", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("v", sa.Integer()))
                op.create_index("ix_t_v", "t", ["v"], postgresql_concurrently=True)

            def downgrade():
                op.drop_table("t")
            ''')
        without = apply_upgrade(cfg, url, "head")
        assert not without.ok and _NOT_IN_A_TRANSACTION in without.error, without
        _pyproject(project, _SETTING)
        result = apply_upgrade(cfg, url, "head")
        assert result.ok, result.error
        assert any("CREATE INDEX CONCURRENTLY ix_t_v" in s["sql"] for s in result.statements)
    finally:
        drop_database(url)


# --- dbrunbook apply --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def concurrently(tmp_path_factory: pytest.TempPathFactory):
    """The apply project on PostgreSQL with revision 0002 as above and the setting, at 0001, planned to 0002."""
    tmp = tmp_path_factory.mktemp("isolation")
    url = new_database("postgresql", tmp)
    made = Planned("postgresql", url, _project(tmp, url))
    _revision(made.project / "migrations", "0002_phone", _CONCURRENTLY)
    pyproject = made.project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + _SETTING)
    made.reset()
    made.plan_run = made.plan(tmp)
    yield made
    drop_database(url)


def test_dbrunbook_apply_runs_a_concurrently_revision_on_an_autocommit_session(concurrently):
    concurrently.reset()
    plan = plan_apply(concurrently.plan_run, concurrently.target())
    assert plan.refused == [], plan.guards
    assert plan.isolation_level == "AUTOCOMMIT" and not plan.transactional  # nothing to roll back as one
    assert plan.to_json()["isolation_level"] == "AUTOCOMMIT"
    env = {k: v for k, v in os.environ.items() if k != "DBRUNBOOK_DB"}
    done = subprocess.run([sys.executable, "-m", "dbrunbook", "apply", str(concurrently.plan_run), "--project",
                           str(concurrently.project), "--format", "json", "-q"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == EXIT_PASS, done.stdout[-3000:] + done.stderr[-3000:]
    revision, schema, _ = concurrently.state()
    assert revision == "0002"
    assert "ix_customers_email" in {i["name"] for i in schema["tables"]["customers"]["indexes"]}
    run = Path(json.loads(done.stdout)["path"])
    journal = read_step(run / "11-guarded-apply")
    assert journal is not None
    assert journal["intent"]["isolation_level"] == "AUTOCOMMIT" and not journal["intent"]["transactional"]
    assert "at isolation level AUTOCOMMIT" in journal["intent"]["summary"]
    assert journal["outcome"]["isolation_level"] == "AUTOCOMMIT" and journal["outcome"]["applied"]
    recorded = contract.load(run, GuardedApplyEvidence)
    assert recorded.isolation_level == "AUTOCOMMIT"  # in the stage's evidence, for the auditor


def test_the_lock_timeout_still_holds_on_the_autocommit_session(concurrently, tmp_path):
    """A blocker makes ALTER TABLE wait: the session's lock_timeout ends the wait, the revision is run again."""
    concurrently.reset()
    plan = plan_apply(concurrently.plan_run, concurrently.target(), lock_timeout_ms=500, lock_retries=4)
    plan = dataclasses.replace(plan, retry_backoff_seconds=0.05)
    blocker = Blocker(concurrently)

    def on_attempt(record: dict) -> None:
        if not record["ok"]:
            blocker.release()

    try:
        outcome = apply(plan, concurrently.target(), tmp_path / "apply" / "11-guarded-apply", on_attempt=on_attempt)
    finally:
        blocker.release()
    assert outcome.applied, (outcome.error, outcome.attempts)
    first = outcome.attempts[0]
    assert not first["ok"] and "lock timeout" in first["error"] and outcome.attempts[-1]["ok"]
    assert any("CONCURRENTLY" in s["sql"] for s in outcome.statements)


def test_a_plan_promising_one_transaction_is_refused_under_autocommit(concurrently, tmp_path):
    concurrently.reset()
    before = concurrently.state()
    plan = dataclasses.replace(plan_apply(concurrently.plan_run, concurrently.target()), transactional=True)
    outcome = apply(plan, concurrently.target(), tmp_path / "apply" / "11-guarded-apply")
    assert not outcome.applied and outcome.error_type == "ApplyRefused"
    assert "AUTOCOMMIT session" in outcome.error and outcome.error.endswith("nothing ran")
    assert outcome.statements == [] and concurrently.state() == before


def test_without_the_setting_the_revision_fails_in_the_one_transaction(concurrently, tmp_path):
    """The contrast: as Alembic opens it, the apply's one transaction refuses CONCURRENTLY and rolls back."""
    concurrently.reset()
    before = concurrently.state()
    pyproject = concurrently.project / "pyproject.toml"
    text = pyproject.read_text()
    pyproject.write_text(text.replace(_SETTING, ""))
    try:
        plan = plan_apply(concurrently.plan_run, concurrently.target())
        assert plan.refused == [] and plan.isolation_level == "" and plan.transactional
        outcome = apply(plan, concurrently.target(), tmp_path / "apply" / "11-guarded-apply")
    finally:
        pyproject.write_text(text)
    assert not outcome.applied and _NOT_IN_A_TRANSACTION in outcome.error and outcome.rolled_back
    assert concurrently.state() == before
