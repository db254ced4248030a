"""Stage 03 checks that the revisions it planned make the change stage 01 found (MG010).

A users table at revision 0001 (head), and models that change it. Models that add a nullable column with an index
are what autogenerate writes in full: stage 03's generated revision makes the change, no finding. Models that add
a column and a CHECK constraint get a generated revision with the column and without the CHECK (autogenerate does
not emit CHECK constraints on an existing table): MG010 names the CHECK and says what to add, on every dialect.
Models that add only the CHECK get no revision at all, and the same finding says so. A pending revision stage 01
already compared is judged by stage 01's record, not applied a second time.
"""
from __future__ import annotations

import dataclasses
import textwrap
import uuid
from pathlib import Path

from alembic import command
from alembic.config import Config

from dbrunbook.core.config import Target
from dbrunbook.core.evidence import MigrationEvidence
from dbrunbook.core.results import Finding
from dbrunbook.core.stage import open_stage
from dbrunbook.stages import migration, schema_analysis
from helpers.projects import write_project

BASE = '''revision = "0001"
down_revision = None
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)),
                    sa.Column("age", sa.Integer))
def downgrade():
    op.drop_table("users")
'''
#: A change autogenerate writes in full: a nullable column and its index.
ADD_EMAIL = '''
import sqlalchemy as sa
metadata = sa.MetaData()
users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)),
                 sa.Column("age", sa.Integer), sa.Column("email", sa.String(100), index=True))
'''
#: A column autogenerate writes, and a CHECK it leaves out.
ADD_CHECK = '''
import sqlalchemy as sa
metadata = sa.MetaData()
users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)),
                 sa.Column("age", sa.Integer), sa.Column("nickname", sa.String(30)),
                 sa.CheckConstraint("age >= 0", name="ck_users_age"))
'''
#: The CHECK alone: autogenerate finds nothing to write.
ONLY_CHECK = '''
import sqlalchemy as sa
metadata = sa.MetaData()
users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)),
                 sa.Column("age", sa.Integer), sa.CheckConstraint("age >= 0", name="ck_users_age"))
'''


def _project(tmp_path: Path, url: str, models: str) -> Target:
    """A user's Alembic project at its head 0001, and ``models`` in a module of its own."""
    target = write_project(tmp_path / "project", url, {"0001_base.py": BASE})
    module = f"agree_models_{uuid.uuid4().hex[:8]}"  # each test imports its own, never a cached one
    (tmp_path / "project" / f"{module}.py").write_text(textwrap.dedent(models))
    cfg = Config(target.alembic_config)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")
    return dataclasses.replace(target, models=f"{module}:metadata")


def _run(target: Target, url: str, tmp_path: Path) -> tuple[migration.MigrationOutcome, list[Finding]]:
    """Stage 01 then stage 03 on ``target`` in one run folder, as their notebooks run them: stage 03's outcome and
    findings."""
    options = {"db": url, "models": target.models, "alembic_config": target.alembic_config,
               "run_dir": str(tmp_path / "run"), "project_dir": str(target.project_dir)}
    first = open_stage("01-schema-analysis", **options)
    try:
        analysed = schema_analysis.run(first)
        first.finish(analysed.summary, analysed.evidence)
    finally:
        first.engine.dispose()
    third = open_stage("03-migration", **options)
    try:
        return migration.run(third, measure_throughput=False), third.findings
    finally:
        third.engine.dispose()  # the database is dropped after the test


def test_a_change_autogenerate_writes_in_full_gives_no_finding(db_url, dialect, tmp_path):
    outcome, found = _run(_project(tmp_path, db_url, ADD_EMAIL), db_url, tmp_path)
    assert outcome.plan.generated is not None and len(outcome.plan.revisions) == 1
    assert outcome.agreement is not None and outcome.agreement.note == ""
    assert outcome.agreement.differences == [], [c.extra["disagreement"] for c in outcome.agreement.differences]
    assert "MG010" not in [f.code for f in found]
    assert outcome.evidence.disagreements == [] and "comparison_note" in outcome.evidence.to_json()


def test_a_check_the_generated_revision_lacks_is_named(db_url, dialect, tmp_path):
    outcome, found = _run(_project(tmp_path, db_url, ADD_CHECK), db_url, tmp_path)
    generated = outcome.plan.generated
    assert generated is not None and "nickname" in generated.read_text()
    assert "create_check_constraint" not in generated.read_text()  # autogenerate left the CHECK out
    [finding] = [f for f in found if f.code == "MG010"]
    assert finding.severity == "warn" and finding.object == outcome.plan.revisions[-1]
    [difference] = finding.evidence["differences"]
    assert difference["op"] == "add_check" and difference["object"] == "ck_users_age" and difference["in_change"]
    assert "ck_users_age" in finding.message and "part(s) of the change stage 01 found" in finding.message
    assert "the models have it, the migrations do not make it" in finding.message
    assert "op.create_check_constraint('ck_users_age', 'users'" in finding.fix
    assert "generated revision" in finding.fix
    # Recorded in stage 03's evidence, and read back by the contract as it was written.
    recorded = MigrationEvidence.from_json(outcome.evidence.to_json(), stage="03-migration")
    assert [d["object"] for d in recorded.disagreements or []] == ["ck_users_age"]
    assert "the plan does not make the models (1 difference(s))" in outcome.summary


def test_a_check_alone_plans_nothing_and_says_so(tmp_path):
    url = f"sqlite:///{tmp_path / 'target.db'}"
    outcome, found = _run(_project(tmp_path, url, ONLY_CHECK), url, tmp_path)
    assert outcome.plan.empty
    [finding] = [f for f in found if f.code == "MG010"]
    assert finding.message.startswith("no revision is planned") and "ck_users_age" in finding.message
    assert "write a revision" in finding.fix


def test_without_stage_01_nothing_is_compared_and_old_sidecars_load(tmp_path):
    url = f"sqlite:///{tmp_path / 'target.db'}"
    target = _project(tmp_path, url, ADD_CHECK)
    stage = open_stage("03-migration", db=url, models=target.models, alembic_config=target.alembic_config,
                       run_dir=str(tmp_path / "run"), project_dir=str(target.project_dir))
    try:
        outcome = migration.run(stage, measure_throughput=False)
    finally:
        stage.engine.dispose()
    assert outcome.agreement is None and "MG010" not in [f.code for f in stage.findings]
    written = outcome.evidence.to_json()
    assert "disagreements" not in written and "comparison_note" not in written  # as stage 03 always wrote it
    assert MigrationEvidence.from_json(written).disagreements is None


ADD_NICKNAME = '''revision = "0002"
down_revision = "0001"
from alembic import op
import sqlalchemy as sa
def upgrade():
    op.add_column("users", sa.Column("nickname", sa.String(30)))
def downgrade():
    op.drop_column("users", "nickname")
'''


def test_a_pending_revision_stage_01_compared_is_read_back_not_applied_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'target.db'}"
    target = _project(tmp_path, url, ADD_CHECK)
    (Path(target.alembic_config).parent / "migrations" / "versions" / "0002_nickname.py").write_text(ADD_NICKNAME)
    outcome, found = _run(target, url, tmp_path)
    assert outcome.plan.generated is None and outcome.plan.revisions == ["0002"]
    assert outcome.agreement is not None and outcome.agreement.reused
    [finding] = [f for f in found if f.code == "MG010"]
    assert finding.object == "0002" and finding.message.startswith("revision 0002 does not make 1 part(s)")
    assert "ck_users_age" in finding.message and finding.fix.startswith("edit revision 0002: ")
