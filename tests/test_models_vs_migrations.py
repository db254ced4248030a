"""Stage 01 with models and pending revisions both: do the revisions produce the models?

A users table at revision 0001 and a pending 0002 that adds ``email VARCHAR(100)``. Models that say the same give
no finding; models that lack ``email``, add a ``nickname`` and widen ``name`` give one SA006 (block) naming each
difference, on every dialect. A revision that fails on the copy is a warning (SA007), and the stage goes on.
MLflow and Optuna, at an old revision with their own models and their own pending revisions, give only the drift
Alembic's own comparison reports.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from dbrunbook.core.config import Target
from dbrunbook.core.evidence import SchemaAnalysisEvidence
from dbrunbook.core.results import Finding
from dbrunbook.core.stage import open_stage
from dbrunbook.schema import snapshot_metadata
from dbrunbook.stages import schema_analysis
from helpers.projects import write_project

BASE = '''revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))
def downgrade():
    op.drop_table("users")
'''
ADD_EMAIL = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.add_column("users", sa.Column("email", sa.String(100)))
    op.create_index("ix_users_email", "users", ["email"])
def downgrade():
    op.drop_index("ix_users_email", "users")
    op.drop_column("users", "email")
'''
FAILS = '''revision = "0002"
down_revision = "0001"
from alembic import op
def upgrade():
    op.execute("UPDATE no_such_table SET x = 1")
def downgrade():
    pass
'''
#: The models as revision 0002 leaves the schema (an unnamed String() would match any length, as in Alembic).
AGREE = '''
import sqlalchemy as sa
metadata = sa.MetaData()
users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)),
                 sa.Column("email", sa.String(100), index=True))
'''
#: Models that lack the revision's email (and its index), have a nickname it does not add, and a wider name.
DISAGREE = '''
import sqlalchemy as sa
metadata = sa.MetaData()
users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(80)),
                 sa.Column("nickname", sa.String(30)))
'''


def _project(tmp_path: Path, url: str, pending: str, models: str) -> Target:
    """A user's Alembic project at 0001 with ``pending`` as 0002, and ``models`` in a module of its own."""
    target = write_project(tmp_path / "project", url, {"0001_base.py": BASE, "0002_change.py": pending})
    module = f"models_{uuid.uuid4().hex[:8]}"  # each test imports its own, never a cached one
    (tmp_path / "project" / f"{module}.py").write_text(textwrap.dedent(models))
    cfg = Config(target.alembic_config)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "0001")
    return dataclasses.replace(target, models=f"{module}:metadata")


def _run(target: Target, url: str, tmp_path: Path) -> tuple[schema_analysis.SchemaAnalysisOutcome, list[Finding]]:
    """Stage 01 on ``target`` as its notebook runs it: the outcome and the findings it added."""
    stage = open_stage("01-schema-analysis", db=url, models=target.models, alembic_config=target.alembic_config,
                       run_dir=str(tmp_path / "run"), project_dir=str(target.project_dir))
    try:
        return schema_analysis.run(stage), stage.findings
    finally:
        stage.engine.dispose()  # the database is dropped after the test


def test_revisions_that_produce_the_models_give_no_finding(db_url, dialect, tmp_path):
    outcome, found = _run(_project(tmp_path, db_url, ADD_EMAIL, AGREE), db_url, tmp_path)
    assert {c.op for c in outcome.changes} == {"add_column", "add_index"}  # the change itself, from the models
    assert outcome.agreement is not None and outcome.agreement.revisions == ["0002"]
    assert outcome.agreement.differences == [] and outcome.agreement.error == ""
    assert not [f for f in found if f.code in ("SA006", "SA007")]
    assert outcome.evidence.revisions_compared == ["0002"] and outcome.evidence.disagreements == []


def test_revisions_that_do_not_produce_the_models_block_naming_each_difference(db_url, dialect, tmp_path):
    outcome, found = _run(_project(tmp_path, db_url, ADD_EMAIL, DISAGREE), db_url, tmp_path)
    [finding] = [f for f in found if f.code == "SA006"]
    assert finding.severity == "block" and finding.object == "0002"
    said = {d["object"]: d for d in finding.evidence["differences"]}
    assert set(said) == {"users.email", "users.nickname", "users.name", "ix_users_email"}
    assert said["users.email"]["says"] == \
        "column users.email (VARCHAR(100)): the migrations make it, the models do not have it"
    assert said["users.nickname"]["says"].endswith("the models have it, the migrations do not make it")
    assert said["users.name"]["says"] == \
        "column users.name: the migrations make it VARCHAR(50), the models say VARCHAR(80)"
    assert said["ix_users_email"]["op"] == "remove_index"
    for text in (d["says"] for d in said.values()):
        assert text in finding.message
    assert "alembic revision --autogenerate" in finding.fix and "not matching the models" in finding.fix
    # Recorded for later stages, and read back by the contract as it was written.
    recorded = SchemaAnalysisEvidence.from_json(outcome.evidence.to_json(), stage="01-schema-analysis")
    assert {d["object"] for d in recorded.disagreements or []} == set(said)
    assert "do not produce the models (4 differences)" in outcome.summary


def test_revisions_that_fail_on_the_copy_are_a_warning_and_the_stage_goes_on(tmp_path):
    url = f"sqlite:///{tmp_path / 'target.db'}"
    outcome, found = _run(_project(tmp_path, url, FAILS, AGREE), url, tmp_path)
    [warning] = [f for f in found if f.code == "SA007"]
    assert warning.severity == "warn" and "no_such_table" in warning.message
    assert "SA006" not in [f.code for f in found]
    assert {c.op for c in outcome.changes} == {"add_column", "add_index"}  # the models' change is still analysed
    assert outcome.evidence.disagreements is None and "no_such_table" in (outcome.evidence.comparison_error or "")


def test_models_without_alembic_scripts_or_pending_revisions_are_not_compared(tmp_path):
    url = f"sqlite:///{tmp_path / 'target.db'}"
    target = _project(tmp_path, url, ADD_EMAIL, AGREE)
    cfg = Config(target.alembic_config)
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")
    outcome, found = _run(target, url, tmp_path)
    assert outcome.agreement is None and outcome.changes == []
    assert "revisions_compared" not in outcome.evidence.to_json()  # as stage 01 always wrote it
    without, _ = _run(dataclasses.replace(target, alembic_config=""), url, tmp_path / "second")
    assert without.agreement is None


def test_without_models_revisions_that_fail_on_the_copy_are_a_check_not_run_not_a_pass(tmp_path):
    # Dagster without --models: the pending revisions fail on the schema-only copy, so nothing was analysed.
    url = f"sqlite:///{tmp_path / 'target.db'}"
    target = dataclasses.replace(_project(tmp_path, url, FAILS, AGREE), models="")
    outcome, found = _run(target, url, tmp_path)
    [warning] = [f for f in found if f.code == "SA008"]
    assert warning.severity == "warn" and "no_such_table" in warning.message, warning
    assert "no_such_table" in warning.evidence["error"] and "nothing to check" not in warning.message
    assert outcome.result is None and outcome.summary.startswith("not analysed: the revisions fail")
    assert "nothing to check" not in outcome.summary


def test_without_models_nothing_pending_is_nothing_to_compare(tmp_path):
    url = f"sqlite:///{tmp_path / 'target.db'}"
    target = dataclasses.replace(_project(tmp_path, url, ADD_EMAIL, AGREE), models="")
    cfg = Config(target.alembic_config)
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")
    outcome, found = _run(target, url, tmp_path)
    assert found == [] and "no pending revisions" in outcome.summary  # info, as before: a pass
    without, found = _run(dataclasses.replace(target, alembic_config=""), url, tmp_path / "second")
    assert found == [] and "no Alembic scripts" in without.summary


#: VARCHAR(50) -> VARCHAR: unbounded on PostgreSQL; a change between two databases, whatever models would accept.
UNBOUND = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.alter_column("name", type_=sa.String(), existing_type=sa.String(50))
def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.alter_column("name", type_=sa.String(50), existing_type=sa.String())
'''


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_without_models_a_revision_that_drops_a_length_is_a_type_change(db_url, dialect, tmp_path):
    # The target is the copy the revisions upgraded, reflected: a database's bare VARCHAR, not a model's String().
    target = dataclasses.replace(_project(tmp_path, db_url, UNBOUND, AGREE), models="")
    outcome, found = _run(target, db_url, tmp_path)
    assert outcome.source.source == "revisions", outcome.source.note
    # That change alone: the serial id's nextval() default, reflected on both sides, is no change either.
    assert [(c.op, c.object, c.before, c.after) for c in outcome.changes] == \
        [("modify_type", "users.name", "VARCHAR(50)", "VARCHAR")]


def test_spellings_alembic_would_not_call_a_difference_are_none():
    """A model type without a length, a primary key in another column order and the CHECK an old Boolean made for
    itself are no disagreement; a CHECK the models do not declare, and a length they do, are."""
    migrated = sa.MetaData()
    sa.Table("tags", migrated, sa.Column("key", sa.String(250)), sa.Column("id", sa.Integer),
             sa.Column("flag", sa.Boolean), sa.Column("price", sa.Numeric(10, 2)), sa.Column("code", sa.String(9)),
             sa.PrimaryKeyConstraint("key", "id"), sa.CheckConstraint("flag IN (0, 1)"),
             sa.CheckConstraint("price > 0", name="ck_price"))
    models = sa.MetaData()
    sa.Table("tags", models, sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("key", sa.String, primary_key=True), sa.Column("flag", sa.Boolean),
             sa.Column("price", sa.Numeric), sa.Column("code", sa.String(20)))
    found = schema_analysis.disagreements(snapshot_metadata(migrated, "sqlite"), snapshot_metadata(models, "sqlite"),
                                          models)
    assert [c.extra["disagreement"] for c in found] == [
        "column tags.code: the migrations make it VARCHAR(9), the models say VARCHAR(20)",
        "check constraint ck_price price > 0: the migrations make it, the models do not have it"]


def test_an_older_sidecar_without_the_comparison_still_loads():
    old = {"changes": [], "rename_hints": [], "snapshot": None}
    assert SchemaAnalysisEvidence.from_json(old).disagreements is None


# -- real projects: their models, their migrations -------------------------------------------------------------------

def _installed(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")


#: What each real project drifts by, as ``alembic check`` (compare_metadata, with server defaults) reports it after
#: the upgrade: checked by hand against Alembic's own comparison on this copy (see the test's docstring).
MLFLOW_REAL_DRIFT = {
    ("modify_type", "assessments.assessment_type"), ("modify_type", "runs.status"),
    ("modify_default", "endpoint_model_mappings.linkage_type"), ("modify_default", "endpoints.usage_tracking"),
    ("modify_default", "metrics.step"), ("modify_default", "metrics.is_nan"), ("modify_default", "webhooks.status"),
    ("add_fk", "input_tags(input_uuid)"), ("add_index", "index_issues_created_by"),
    ("remove_index", "idx_experiments_workspace"), ("remove_index", "idx_experiments_workspace_creation_time"),
    ("remove_index", "idx_model_version_tags_workspace_name_version"),
    ("remove_index", "idx_registered_model_tags_workspace_name"), ("remove_index", "idx_registered_models_workspace"),
    ("add_index", "index_trace_request_metadata_request_id"),
    ("remove_index", "index_trace_request_metadata_request_id"),
    ("add_index", "index_trace_tags_request_id"), ("remove_index", "index_trace_tags_request_id"),
}


def _real(project: str, start: str, tmp_path: Path) -> schema_analysis.Agreement:
    from realworld._corpus import PROJECTS
    from realworld._corpus import write_project as write_real

    url = f"sqlite:///{tmp_path / 'target.db'}"
    ini = write_real(project, url, tmp_path / "project")
    base = PROJECTS[project].base
    if base is not None:
        engine = sa.create_engine(url)
        base(engine)
        engine.dispose()
    command.upgrade(Config(str(ini)), start)
    if project == "mlflow":
        import mlflow.store.db.utils  # noqa: F401  # imports every module that puts tables on Base
        from mlflow.store.db.base_sql_model import Base
        metadata = Base.metadata
    else:
        from optuna.storages._rdb.models import BaseModel
        metadata = BaseModel.metadata
    target = Target.from_url(url, alembic_config=str(ini), project_dir=tmp_path / "project")
    agreement = schema_analysis.compare_revisions(target, metadata, tmp_path / "scripts")
    assert agreement is not None and agreement.error == "" and agreement.revisions
    return agreement


def test_optuna_revisions_differ_from_optuna_models_only_where_alembic_says_so(tmp_path):
    """Optuna creates trial_heartbeats from its models (create_all), never in a revision, and its models made
    trial_values.trial_id NOT NULL without one: both real, both in ``alembic check``. Alembic also names the
    renamed index of trials.study_id, a name only; nothing else differs."""
    _installed("optuna")
    agreement = _real("optuna", "v1.2.0.a", tmp_path)
    assert [c.extra["disagreement"] for c in agreement.differences] == [
        "table trial_heartbeats (3 columns): the models have it, the migrations do not make it",
        "column trial_values.trial_id: the migrations make it NULL, the models say NOT NULL"]


def test_mlflow_revisions_differ_from_mlflow_models_only_where_alembic_says_so(tmp_path):
    """MLflow's history meets its models but for drift ``alembic check`` reports too (its CHECKs of old Boolean
    columns, Identity() on SQLite and expression indexes are Alembic's false alarms or blind spots, not ours)."""
    _installed("mlflow")
    agreement = _real("mlflow", "2d6e25af4d3e", tmp_path)
    found = {(c.op, c.object) for c in agreement.differences}
    assert found == MLFLOW_REAL_DRIFT
