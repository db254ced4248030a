"""Post-migration validation (stage 12) on real databases, after real upgrades of a small project."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa

from dbrunbook import RunOptions, run_runbook
from dbrunbook.alembic_ops.migration import alembic_config, apply_upgrade
from dbrunbook.core import contract
from dbrunbook.core.config import Target, load_metadata
from dbrunbook.core.db import make_engine
from dbrunbook.core.evidence import (
    GuardedApplyEvidence,
    GuardRecord,
    PostMigrationEvidence,
    ProductionPlan,
    ProductionPlanEvidence,
    SchemaAnalysisEvidence,
)
from dbrunbook.core.results import StageResult, record
from dbrunbook.data.fingerprint import Fingerprint, fingerprint
from dbrunbook.errors import UsageError
from dbrunbook.stages.post_migration import health, read_records, unchanged, validate
from dbrunbook.stages.schema_analysis import analyse

REPO = Path(__file__).resolve().parents[1]
CUSTOMERS, ORDERS, WITH_LEGACY, WITH_NOTE = 12, 30, 7, 11
RENAMES = {"orders.note": "orders.comment"}

_MODELS = '''
import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table("customers", metadata,
         sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("name", sa.String(80), nullable=False),
         sa.Column("email", sa.String(120)),
         sa.Column("tier", sa.Integer, nullable=False, server_default="0"))
sa.Table("orders", metadata,
         sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("customer_id", sa.Integer, sa.ForeignKey("customers.id", name="fk_orders_customer")),
         sa.Column("amount", sa.String(40)),
         sa.Column("comment", sa.Text))
'''

_BASE = '''
revision = "0001"
down_revision = None

def upgrade():
    op.create_table("customers", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("name", sa.String(80), nullable=False), sa.Column("email", sa.String(120)),
                    sa.Column("legacy", sa.Text()))
    op.create_table("orders", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customers.id", name="fk_orders_customer")),
                    sa.Column("amount", sa.String(20)), sa.Column("note", sa.Text()))

def downgrade():
    op.drop_table("orders")
    op.drop_table("customers")
'''

#: Drops customers.legacy, adds customers.tier, widens orders.amount, renames orders.note to comment.
_CHANGE = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("legacy")
        batch.add_column(sa.Column("tier", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("amount", existing_type=sa.String(20), type_=sa.String(40))
        batch.alter_column("note", new_column_name="comment", existing_type=sa.Text())

def downgrade():
    with op.batch_alter_table("orders") as batch:
        batch.alter_column("comment", new_column_name="note", existing_type=sa.Text())
        batch.alter_column("amount", existing_type=sa.String(40), type_=sa.String(20))
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("tier")
        batch.add_column(sa.Column("legacy", sa.Text()))
'''


def _revision(folder: Path, name: str, body: str) -> None:
    header = "from alembic import op\nimport sqlalchemy as sa\n"
    (folder / "versions" / f"{name}.py").write_text(header + textwrap.dedent(body))


class Project:
    """A database at 0001 with data, scripts up to 0002, models matching 0002."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        self.url = url
        (tmp_path / "shop_models.py").write_text(_MODELS)
        (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/alembic\n")
        scripts = tmp_path / "alembic"
        self.cfg = alembic_config(Target.from_url(url, project_dir=tmp_path), scripts)
        self.target = Target.from_url(url, models="shop_models:metadata", alembic_config=str(tmp_path / "alembic.ini"),
                                      project_dir=tmp_path)
        self.metadata = load_metadata("shop_models:metadata", tmp_path)
        _revision(scripts, "0001_base", _BASE)
        assert apply_upgrade(self.cfg, url, "0001").ok
        self.engine = make_engine(url)
        customers = sa.table("customers", sa.column("name"), sa.column("email"), sa.column("legacy"))
        orders = sa.table("orders", sa.column("customer_id"), sa.column("amount"), sa.column("note"))
        with self.engine.begin() as conn:  # no explicit ids: sequences stay in step on PostgreSQL
            conn.execute(customers.insert(), [{"name": f"c{i}", "email": f"c{i}@example.org",
                                               "legacy": f"old {i}" if i <= WITH_LEGACY else None}
                                              for i in range(1, CUSTOMERS + 1)])
            conn.execute(orders.insert(), [{"customer_id": 1 + i % CUSTOMERS, "amount": f"{i}.50",
                                            "note": f"note {i}" if i <= WITH_NOTE else None}
                                           for i in range(1, ORDERS + 1)])
        _revision(scripts, "0002_change", _CHANGE)

    def upgrade(self) -> tuple[Fingerprint, list]:
        """What stages 01 and 11 record (changes, fingerprint before), then the real upgrade."""
        changes = analyse(self.engine, self.metadata, RENAMES).changes
        before = fingerprint(self.engine)
        assert apply_upgrade(self.cfg, self.url, "head").ok
        return before, changes

    def run(self, *sql: str) -> None:
        with self.engine.begin() as conn:
            for statement in sql:
                conn.execute(sa.text(statement))

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture
def project(db_url, tmp_path):
    made = Project(tmp_path, db_url)
    yield made
    made.close()


def _by_code(result):
    return {c.code: c for c in result.checks}


def test_validation_passes_after_a_real_upgrade(project, dialect):
    before, changes = project.upgrade()
    result = validate(project.engine, project.metadata, before, changes, "0002")
    checks = _by_code(result)
    assert result.verdict == "pass", [f.message for f in result.findings if f.severity != "info"]
    assert checks["PV001"].status == checks["PV002"].status == checks["PV003"].status == "pass"
    assert result.revision == "0002"
    expected = {f.object: f for f in result.findings if f.code == "PV004"}
    assert expected["customers.legacy"].evidence["before"] == WITH_LEGACY  # the dropped values, counted
    assert "expected loss" in expected["customers.legacy"].message
    assert expected["customers.tier"].evidence["after"] == CUSTOMERS
    assert "moved intact" in expected["orders.comment"].message
    probes = {"postgresql": {"PV005", "PV006", "PV007"}, "mariadb": {"PV008"}, "sqlite": {"PV009", "PV010"}}
    assert probes[dialect] <= set(checks) and all(checks[c].status == "pass" for c in probes[dialect])
    assert result.fingerprint_after is not None and result.fingerprint_after.tables["orders"].rows == ORDERS


_DAMAGE = {
    "row-deleted": (["DELETE FROM orders WHERE id = 3"], "PV003", "orders"),
    "untouched-column-changed": (["UPDATE customers SET email = 'someone@else.org' WHERE id = 2"], "PV003",
                                 "customers.email"),
    "schema-not-models": (["ALTER TABLE customers ADD COLUMN extra INTEGER"], "PV001", "customers.extra"),
    "revision-not-head": (["UPDATE alembic_version SET version_num = '0001'"], "PV002", "alembic_version"),
}


@pytest.mark.parametrize("damage", sorted(_DAMAGE))
def test_validation_blocks_on_damage(project, damage):
    sql, code, where = _DAMAGE[damage]
    before, changes = project.upgrade()
    project.run(*sql)
    result = validate(project.engine, project.metadata, before, changes, "0002")
    assert result.verdict == "block"
    blocking = [f for f in result.findings if f.severity == "block"]
    assert any(f.code == code and f.object == where for f in blocking), [(f.code, f.object) for f in blocking]
    assert _by_code(result)[code].status == "block"
    if damage == "row-deleted":
        [finding] = [f for f in blocking if f.code == "PV003"]
        assert (finding.evidence["before"], finding.evidence["after"]) == (ORDERS, ORDERS - 1)
        assert finding.evidence["columns"]  # the columns' differences are folded into the row-count finding


def test_unchanged_passes_on_an_untouched_target_and_blocks_after_a_change(project):
    before = fingerprint(project.engine)
    result = unchanged(project.engine, before, "0001")
    assert result.verdict == "pass"
    [finding] = [f for f in result.findings if f.code == "PV011"]
    assert finding.message.startswith("target unchanged") and finding.evidence["rows"] == CUSTOMERS + ORDERS + 1
    project.run("UPDATE orders SET amount = '0' WHERE id = 1")
    changed = unchanged(project.engine, before, "0001")
    assert changed.verdict == "block"
    assert "orders.amount" in changed.findings[0].message
    assert unchanged(project.engine, fingerprint(project.engine), "0000").verdict == "block"  # revision differs


@pytest.mark.parametrize("dialect", ["postgresql"])
def test_postgresql_health_finds_invalid_index_not_valid_constraint_and_lagging_sequence(project, dialect):
    project.upgrade()
    project.run("INSERT INTO customers (name) VALUES ('c1')",  # a duplicate name
                "ALTER TABLE orders ADD CONSTRAINT ck_amount CHECK (amount <> '') NOT VALID",
                "INSERT INTO customers (id, name) VALUES (500, 'explicit id')")
    autocommit = make_engine(project.url, isolation_level="AUTOCOMMIT")
    with autocommit.connect() as conn, pytest.raises(sa.exc.IntegrityError):
        conn.execute(sa.text("CREATE UNIQUE INDEX CONCURRENTLY ix_customers_name ON customers (name)"))
    autocommit.dispose()
    found = {f.code: f for check in health(project.engine) for f in check.findings}
    assert found["PV005"].object == "ix_customers_name" and found["PV005"].severity == "block"
    assert "DROP INDEX CONCURRENTLY" in found["PV005"].fix
    assert found["PV006"].object == "ck_amount" and "VALIDATE CONSTRAINT" in found["PV006"].fix
    assert found["PV007"].evidence["max"] == 500 and "setval" in found["PV007"].fix


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_sqlite_foreign_key_check_finds_an_orphan(project, dialect):
    project.upgrade()
    project.run("INSERT INTO orders (customer_id, amount) VALUES (999, '1.00')")
    checks = {c.code: c for c in health(project.engine)}
    [orphan] = checks["PV009"].findings
    assert orphan.object == "orders" and orphan.evidence == {"parent": "customers", "count": 1,
                                                             "rowids": [ORDERS + 1]}
    assert checks["PV010"].status == "pass"


@pytest.mark.parametrize("dialect", ["mariadb"])
def test_mariadb_check_table_runs_on_the_changed_tables(project, dialect):
    before, changes = project.upgrade()
    result = validate(project.engine, project.metadata, before, changes, "0002")
    assert _by_code(result)["PV008"].status == "pass"
    assert health(project.engine, ["orders", "no_such_table"])[0].detail == "ok"


# -- the template, executed with papermill through the engine -----------------------------------

def _stage_11_fixture(folder: Path) -> None:
    """A minimal stage 11 that keeps the contract: fingerprint, then upgrade (or not, as if a guard refused)."""
    params = ('db = "demo"\nmodels = ""\nalembic_config = ""\nrun_dir = ""\nproject_dir = ""\nplan_run = ""\n'
              'do_apply = True\n')
    body = textwrap.dedent('''
        import dbrunbook
        from dbrunbook.alembic_ops import migration
        from dbrunbook.core.evidence import GuardedApplyEvidence
        from dbrunbook.data.fingerprint import fingerprint
        stage = dbrunbook.open_stage("11-guarded-apply", db=db, models=models, alembic_config=alembic_config,
                                     run_dir=run_dir, project_dir=project_dir)
        fingerprint(stage.engine).save(stage.dir / "fingerprint-before.json")
        revision_before = migration.current_revision(stage.engine)
        applied = do_apply and migration.apply_upgrade(migration.alembic_config(stage.target, stage.dir / "alembic"),
                                                       stage.target.db).ok
        stage.finish("fixture apply", evidence=GuardedApplyEvidence(
            plan_run=plan_run, plan_run_id="", applied=applied, aborted=False, revision_before=revision_before,
            revision_after=migration.current_revision(stage.engine),
            fingerprint_before=stage.path("fingerprint-before.json")))
    ''')
    cells = [nbformat.v4.new_markdown_cell("# Stage 11 fixture"),
             nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell(body)]
    kernel = {"name": "python3", "language": "python", "display_name": "Python 3"}
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={"kernelspec": kernel})
    nbformat.write(notebook, folder / "11-guarded-apply.ipynb")


def _plan(**fields) -> ProductionPlan:
    """A production plan (stage 10's evidence) with the given fields, the rest empty."""
    empty = dict(run_id="plan-run", target="", dialect="", revision_from=None, revision_to=None, revisions=[],
                 script_dir=None, upgrade_sql=None, downgrade_sql=None, schema_before=None, expected_seconds=None,
                 expected_from="", abort_after_seconds=30.0, lock_timeout_ms=2000, restore_command=None)
    return ProductionPlan(**{**empty, **fields})


def _record(folder: Path, stage: str, evidence, verdict: str = "pass") -> None:
    record(StageResult(stage, verdict, "", data=evidence.to_json()), folder)


def _plan_run(project: Project, folder: Path) -> Path:
    """The sidecars of stages 01 and 10 that a plan run leaves, built from their evidence types."""
    analysed = analyse(project.engine, project.metadata, RENAMES, save_dir=folder / "01-schema-analysis")
    snapshot = "01-schema-analysis/schema-before.json"
    _record(folder, "01-schema-analysis", SchemaAnalysisEvidence(changes=[c.to_json() for c in analysed.changes],
                                                                 snapshot=snapshot), "block")
    _record(folder, "10-production-plan", ProductionPlanEvidence(checklist=[], plan=_plan(
        revision_from="0001", revision_to="0002", revisions=["0002"], schema_before=snapshot)))
    return folder


def _run(project: Project, tmp_path: Path, stages: list[str], **parameters):
    runbooks = tmp_path / "runbooks"
    if not runbooks.exists():
        runbooks.mkdir()
        shutil.copy(REPO / "runbooks" / "apply" / "12-post-migration.ipynb", runbooks)
        _stage_11_fixture(runbooks)
    run = run_runbook(project.target, RunOptions(runbooks=runbooks, stages=stages, parameters=parameters,
                                                 out=tmp_path / "runs"))
    assert [s.status for s in run.stages if s.status == "error"] == [], run.stages
    return run, contract.recorded(run.path, PostMigrationEvidence)


def test_template_without_plan_run_validates_the_target_as_it_is(project, tmp_path):
    project.upgrade()
    run, result = _run(project, tmp_path, ["12"], plan_run="")
    assert result.verdict == "warn", result.result.text()
    assert [f.code for f in result.findings] == ["PV000"] and "no plan run given" in result.findings[0].message
    status = {c.code: c.status for c in result.evidence.checks}
    assert status["PV001"] == status["PV002"] == "pass" and status["PV003"] == "skipped"
    assert result.evidence.applied is None and result.evidence.revision == "0002"
    saved = Fingerprint.load(run.path / result.evidence.fingerprint_after)
    assert saved.tables["orders"].rows == ORDERS and saved.tables["customers"].columns["tier"].non_null == CUSTOMERS


def test_template_after_an_apply_proves_it(project, tmp_path):
    plan = _plan_run(project, tmp_path / "plan-run")
    run, result = _run(project, tmp_path, ["11", "12"], plan_run=str(plan))
    assert result.verdict == "pass", result.result.text()
    assert result.evidence.applied is True
    assert {c.code: c.status for c in result.evidence.checks}["PV003"] == "pass"
    expected = {f.object: f for f in result.findings if f.code == "PV004"}
    assert expected["customers.legacy"].evidence["before"] == WITH_LEGACY
    assert "moved intact" in expected["orders.comment"].message


@pytest.mark.parametrize("dialect", ["sqlite"])
def test_template_after_a_refused_apply_proves_nothing_changed(project, tmp_path):
    plan = _plan_run(project, tmp_path / "plan-run")
    _, result = _run(project, tmp_path, ["11", "12"], plan_run=str(plan), do_apply=False)
    assert result.verdict == "pass" and result.evidence.applied is False, result.result.text()
    assert result.findings[0].code == "PV011" and "data, revision, schema compared" in result.findings[0].message


def test_records_are_read_with_clear_errors(tmp_path):
    assert read_records(tmp_path, "").applied is None
    with pytest.raises(UsageError, match="plan run .* not found"):
        read_records(tmp_path, tmp_path / "missing")
    assert "no apply record" in read_records(tmp_path, tmp_path).notes[0]


def test_records_follow_stage_11_when_the_plan_run_is_incomplete(tmp_path):
    apply_dir, plan_dir = tmp_path / "apply", tmp_path / "plan"
    plan_dir.mkdir()
    apply_dir.mkdir()
    _record(apply_dir, "11-guarded-apply", GuardedApplyEvidence(
        plan_run=str(plan_dir), plan_run_id="plan", applied=False, aborted=False, revision_before="0001",
        revision_to="0002", guards=[GuardRecord("no-schema-drift", False, "drifted", accepted=True)], seconds=0.5))
    _record(plan_dir, "10-production-plan", ProductionPlanEvidence(checklist=[], plan=_plan(
        schema_before="01-schema-analysis/schema-before.json")))
    record = read_records(apply_dir, plan_dir)
    assert (record.applied, record.revision_before, record.expected_revision) == (False, "0001", "0002")
    assert record.before is None and record.schema_before is None  # drift accepted: the snapshot is not the reference
    notes = " | ".join(record.notes)
    assert "no fingerprint" in notes and "drifted" in notes and "01-schema-analysis" in notes
    # an upgrade that never started (no outcome: a dry run, a refusal) needs no fingerprint
    _record(apply_dir, "11-guarded-apply", GuardedApplyEvidence(
        plan_run=str(plan_dir), plan_run_id="plan", applied=False, aborted=False, revision_before="0001"))
    record = read_records(apply_dir, plan_dir)
    assert not record.started and "no fingerprint" not in " | ".join(record.notes)
