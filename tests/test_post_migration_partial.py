"""Stage 12 after an apply that failed partway: where it stopped, what ran, what it left, how to remove it.

A project at 0001 with rows whose names repeat, and two pending revisions: 0002 (a column and an index)
applies; 0003 widens 0002's column, adds a column and an index, then fails on a unique index over the
repeated names, before a last column. A real plan run (stages 01, 03, 10) is applied with ``dbrunbook
apply``'s runbook (stages 11 and 12, executed with papermill). On MariaDB DDL commits at once, so 0002
stays applied and 0003's first statements stay; where DDL is transactional the whole upgrade is rolled
back and stage 12 proves the target unchanged (PV011) as before.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from dbrunbook import RunOptions, run_runbook
from dbrunbook.alembic_ops.migration import alembic_config, apply_upgrade, current_revision
from dbrunbook.core import contract
from dbrunbook.core.config import Target, load_target
from dbrunbook.core.db import drop_database, make_engine
from dbrunbook.core.evidence import GuardedApplyEvidence, PostMigrationEvidence
from dbrunbook.runbook.engine import runbook_folder
from dbrunbook.schema import Change, Index, Snapshot, Table
from dbrunbook.stages.post_migration import check_record, read_records
from dbrunbook.stages.post_migration._partial import removal_sql, stopped_partway
from helpers.databases import new_database
from helpers.projects import write_revision

NAMES = 20  # customers, named n0..n4: a unique index on the name fails
_MODELS = '''
import sqlalchemy as sa

metadata = sa.MetaData()
sa.Table("customers", metadata,
         sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("name", sa.String(80), nullable=False),
         sa.Column("email", sa.String(120), nullable=True),
         sa.Column("phone", sa.String(60), nullable=True),
         sa.Column("nickname", sa.String(40), nullable=True),
         sa.Column("tier", sa.Integer, nullable=True),
         sa.Index("ix_customers_email", "email"),
         sa.Index("ix_customers_nickname", "nickname"),
         sa.Index("uq_customers_name", "name", unique=True))
'''
REVISIONS = {
    "0001_base": '''
        revision = "0001"
        down_revision = None

        def upgrade():
            op.create_table("customers", sa.Column("id", sa.Integer(), primary_key=True),
                            sa.Column("name", sa.String(80), nullable=False),
                            sa.Column("email", sa.String(120), nullable=True))

        def downgrade():
            op.drop_table("customers")
    ''',
    "0002_phone": '''
        revision = "0002"
        down_revision = "0001"

        def upgrade():
            op.add_column("customers", sa.Column("phone", sa.String(30), nullable=True))
            op.create_index("ix_customers_email", "customers", ["email"])

        def downgrade():
            op.drop_index("ix_customers_email", table_name="customers")
            op.drop_column("customers", "phone")
    ''',
    "0003_nickname": '''
        revision = "0003"
        down_revision = "0002"

        def upgrade():
            with op.batch_alter_table("customers") as batch:  # SQLite rebuilds the table; elsewhere one ALTER
                batch.alter_column("phone", type_=sa.String(60), existing_type=sa.String(30), existing_nullable=True)
            op.add_column("customers", sa.Column("nickname", sa.String(40), nullable=True))
            op.create_index("ix_customers_nickname", "customers", ["nickname"])
            op.create_index("uq_customers_name", "customers", ["name"], unique=True)
            op.add_column("customers", sa.Column("tier", sa.Integer(), nullable=True))

        def downgrade():
            op.drop_column("customers", "tier")
            op.drop_index("uq_customers_name", table_name="customers")
            op.drop_index("ix_customers_nickname", table_name="customers")
            op.drop_column("customers", "nickname")
            with op.batch_alter_table("customers") as batch:
                batch.alter_column("phone", type_=sa.String(30), existing_type=sa.String(60), existing_nullable=True)
    ''',
}
CHECKLIST = ["schema-analysed", "design-valid", "migration-reviewed", "rollback-present", "rehearsed",
             "data-checks-pass", "code-impact-clear", "tests-pass", "performance-ok", "staging-within-window",
             "rollback-proven", "backup-verified", "team-approval", "monitoring-configured"]


class Applied:
    """The project, its plan run from 0001 to 0003, and the apply run (stages 11 and 12) that failed in 0003."""

    def __init__(self, tmp: Path, dialect: str) -> None:
        self.url = new_database(dialect, tmp)
        self.project = tmp / "shop"
        (self.project / "partial_shop").mkdir(parents=True)
        (self.project / "partial_shop" / "__init__.py").write_text("")
        (self.project / "partial_shop" / "models.py").write_text(_MODELS)
        scripts = self.project / "migrations"
        alembic_config(Target.from_url(self.url, project_dir=self.project), scripts)
        write_revision(scripts, "0001_base", REVISIONS["0001_base"])
        (self.project / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
        (self.project / "pyproject.toml").write_text(f'[tool.dbrunbook]\ndb = "{self.url}"\nmodels = '
                                                     '"partial_shop.models:metadata"\nalembic_config = "alembic.ini"\n')
        assert apply_upgrade(alembic_config(self.target(), scripts), self.url, "0001").ok
        with self.engine() as engine, engine.begin() as conn:
            # no explicit ids: PostgreSQL's sequence stays in step (stage 12 checks it)
            conn.execute(sa.text("INSERT INTO customers (name, email) VALUES (:n, :e)"),
                         [{"n": f"n{i % 5}", "e": f"c{i}@example.com"} for i in range(1, NAMES + 1)])
        for name in ("0002_phone", "0003_nickname"):
            write_revision(scripts, name, REVISIONS[name])
        waived = {item: "not needed for this test" for item in CHECKLIST}
        plan = run_runbook(self.target(), RunOptions(out=tmp / "runs", stages=["01", "03", "10"], dry_run=True,
                                                     parameters={"waive": waived, "measure_throughput": False}))
        assert [s.status for s in plan.stages if s.status == "error"] == [], plan.stages
        self.plan_run = plan.path
        run = run_runbook(self.target(), RunOptions(runbooks=runbook_folder("apply"), out=tmp / "applied",
                                                    parameters={"plan_run": str(plan.path), "execute": True}))
        assert [s.name for s in run.stages] == ["11-guarded-apply", "12-post-migration"], run.stages
        self.stages = run.stages
        self.run_dir = run.path
        self.apply = contract.load(run.path, GuardedApplyEvidence)
        self.validated = contract.recorded(run.path, PostMigrationEvidence)

    def target(self) -> Target:
        return load_target(self.project)

    def engine(self) -> _Engine:
        return _Engine(self.url)

    def by_code(self, code: str) -> list:
        return [f for f in self.validated.findings if f.code == code]


class _Engine:
    """An engine disposed on leaving the ``with``."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)

    def __enter__(self) -> sa.Engine:
        return self.engine

    def __exit__(self, *exc: object) -> None:
        self.engine.dispose()


@pytest.fixture(scope="module")
def on_mariadb(tmp_path_factory: pytest.TempPathFactory):
    made = Applied(tmp_path_factory.mktemp("partial-mariadb"), "mariadb")
    yield made
    drop_database(made.url)


def test_stage_12_says_which_revisions_applied_and_which_failed(on_mariadb):
    assert on_mariadb.apply is not None and on_mariadb.apply.rolled_back is False  # stage 11's record, as it is
    result = on_mariadb.validated
    assert result.verdict == "block" and result.evidence.applied is False and result.evidence.revision == "0002"
    assert on_mariadb.by_code("PV011") == [] and on_mariadb.by_code("PV015") == []  # the version row is 0002: right
    [where] = on_mariadb.by_code("PV012")
    assert where.severity == "block"
    assert where.message.startswith("the apply stopped partway: the target is at revision 0002; of the pending "
                                    "0002, 0003, applied: 0002; 0003 failed at its statement 4 (CREATE UNIQUE INDEX "
                                    "uq_customers_name ON customers (name): "), where.message
    assert "Duplicate entry" in where.message and "never ran" not in where.message
    assert where.evidence["applied"] == ["0002"] and where.evidence["failed"] == "0003"
    assert f"alembic -c {on_mariadb.project / 'alembic.ini'} stamp 0003" in where.fix
    assert "exactly at 0002" in where.fix
    assert result.summary.startswith("apply stopped partway (applied: 0002; failed: 0003): ")


def test_stage_12_lists_the_statements_of_the_failed_revision(on_mariadb):
    [statements] = on_mariadb.by_code("PV013")
    assert statements.object == "0003" and statements.severity == "info"
    assert statements.evidence["ran"] == ["ALTER TABLE customers MODIFY phone VARCHAR(60) NULL",
                                          "ALTER TABLE customers ADD COLUMN nickname VARCHAR(40)",
                                          "CREATE INDEX ix_customers_nickname ON customers (nickname)"]
    assert statements.evidence["failed"] == "CREATE UNIQUE INDEX uq_customers_name ON customers (name)"
    assert statements.evidence["not_run"] == ["ALTER TABLE customers ADD COLUMN tier INTEGER"]
    assert "failed: [4] CREATE UNIQUE INDEX" in statements.message
    assert "did not run: [5] ALTER TABLE customers ADD COLUMN tier INTEGER" in statements.message


def test_stage_12_names_what_the_failed_revision_left_with_the_sql_to_remove_it(on_mariadb):
    left = {f.object: f for f in on_mariadb.by_code("PV014")}
    assert list(left) == ["ix_customers_nickname", "customers.phone", "customers.nickname"]  # indexes first
    assert [f.severity for f in left.values()] == ["block", "warn", "block"]
    assert left["ix_customers_nickname"].fix == "DROP INDEX ix_customers_nickname ON customers"
    assert left["customers.nickname"].fix == "ALTER TABLE customers DROP COLUMN nickname"
    assert "left behind by the failed revision 0003 (its statement [2]" in left["customers.nickname"].message
    # 0002 made phone; 0003 widened it before failing: no blind DROP COLUMN for it
    phone = left["customers.phone"]
    assert phone.message.startswith(
        "column customers.phone (VARCHAR(60) added) was made by the applied revision 0002 (its statement 1: ALTER "
        "TABLE customers ADD COLUMN phone VARCHAR(30)), then changed by statement [1] of the failed revision 0003: "
        "ALTER TABLE customers MODIFY phone")
    assert "DROP" not in phone.fix and phone.evidence["applied_by"] == "0002"
    # what 0002 made is not reported; the data check says which new column stayed against the plan
    assert "ix_customers_email" not in left and "tier" not in " ".join(left)
    expected = {f.object: f.message for f in on_mariadb.by_code("PV004")}
    assert expected["customers.nickname"].startswith("not planned to stay") and "0003 left it" in \
        expected["customers.nickname"]
    checks = {c.code: c for c in on_mariadb.validated.evidence.checks}
    assert {code: c.status for code, c in checks.items()} == {
        "PV012": "block", "PV013": "pass", "PV014": "block", "PV003": "pass", "PV008": "pass"}
    assert checks["PV014"].detail == ("2 left behind; 1 made by an applied revision and changed by the failed one; "
                                      "1 made by the applied revisions alone")


def test_the_sql_given_removes_the_leftovers_and_the_version_row_is_checked(on_mariadb):
    with on_mariadb.engine() as engine:
        with engine.begin() as conn:  # what an operator does with the findings
            for finding in on_mariadb.by_code("PV014"):
                if "DROP" in finding.fix:
                    conn.execute(sa.text(finding.fix))
            conn.execute(sa.text("ALTER TABLE customers MODIFY phone VARCHAR(30) NULL"))  # undoing [1] by hand
        record = read_records(on_mariadb.run_dir, on_mariadb.plan_run)
        again = check_record(engine, None, record, None)
        [left] = [c for c in again.checks if c.code == "PV014"]
        # what stays is 0002's column, to compare by hand: the statement that changed it is on the record
        assert left.status == "warn" and [f.object for f in left.findings] == ["customers.phone"]
        assert left.detail == ("nothing left behind; 1 made by an applied revision and changed by the failed one; "
                               "1 made by the applied revisions alone")
        with engine.begin() as conn:  # the version row no longer says what stage 11 recorded
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
        try:
            [row] = [f for f in check_record(engine, None, record, None).findings if f.code == "PV015"]
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002'"))
        assert row.message == "alembic_version names 0001, but the last revision stage 11 recorded as applied is 0002"
        assert row.fix == f"alembic -c {on_mariadb.project / 'alembic.ini'} stamp 0002"
        assert current_revision(engine) == "0002"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_transactional_failure_still_proves_the_target_unchanged(dialect, tmp_path):
    made = Applied(tmp_path, dialect)
    try:
        assert made.apply is not None and made.apply.rolled_back is True
        codes = {f.code for f in made.validated.findings}
        assert codes.isdisjoint({"PV012", "PV013", "PV014", "PV015"}), made.validated.findings
        [same] = made.by_code("PV011")
        assert same.severity == "info" and same.message.startswith("target unchanged (data, revision, schema compared)")
        assert made.validated.verdict == "pass" and made.validated.evidence.revision == "0001"
    finally:
        drop_database(made.url)


# -- the record and the SQL, without a database ---------------------------------------------------------------

def _record(statements: list[dict], rolled_back: bool | None = False) -> GuardedApplyEvidence:
    return GuardedApplyEvidence(plan_run="plan", plan_run_id="plan", applied=False, aborted=False,
                                statements=statements, revisions=["0002", "0003"], revision_before="0001",
                                rolled_back=rolled_back, error="boom",
                                failed_statement=next((s["sql"] for s in statements if s.get("failed")), None))


def test_where_it_stopped_is_read_from_the_statements_stage_11_recorded():
    version = "UPDATE alembic_version SET version_num='0002' WHERE alembic_version.version_num = '0001'"
    failed_first = _record([{"sql": "ALTER TABLE t ADD COLUMN a INT"}, {"sql": version},
                            {"sql": "CREATE UNIQUE INDEX u ON t (b)", "failed": True}])
    stopped = stopped_partway(failed_first, "-- Running upgrade 0001 -> 0002\n\nALTER TABLE t ADD COLUMN a INT;\n\n"
                              f"{version};\n\n-- Running upgrade 0002 -> 0003\n\nCREATE UNIQUE INDEX u ON t (b);\n\n"
                              "ALTER TABLE t ADD COLUMN c INT;\n\n")
    assert stopped is not None and (stopped.applied, stopped.failed, stopped.recorded) == (["0002"], "0003", "0002")
    assert stopped.ran == {"0002": ["ALTER TABLE t ADD COLUMN a INT"], "0003": []}
    assert stopped.remaining == ["ALTER TABLE t ADD COLUMN c INT"] and stopped.stamp("0003") == "alembic stamp 0003"
    nothing_applied = stopped_partway(_record([{"sql": "ALTER TABLE t ADD COLUMN a INT"},
                                               {"sql": "CREATE UNIQUE INDEX u ON t (b)", "failed": True}]))
    assert nothing_applied is not None and nothing_applied.applied == [] and nothing_applied.recorded == "0001"
    assert nothing_applied.never_ran == ["0003"] and nothing_applied.remaining is None
    assert stopped_partway(_record([{"sql": "ALTER TABLE t ADD COLUMN a INT"}], rolled_back=True)) is None
    assert stopped_partway(_record([{"sql": "ALTER TABLE t ADD COLUMN a INT", "failed": True}])) is None


def test_removal_sql_is_rendered_for_each_dialect():
    now = Snapshot(dialect="", source="", tables={"t": Table(name="t", columns=[], indexes=[
        Index(name="uq_t_b", columns=["b"], unique=True)])})
    index = Change("add_index", "t", "ix_t_a", "index (a) added")
    assert removal_sql(index, now, mysql.dialect()) == "DROP INDEX ix_t_a ON t"
    assert removal_sql(index, now, postgresql.dialect()) == "DROP INDEX ix_t_a"
    assert removal_sql(Change("add_column", "t", "t.a", ""), now, sqlite.dialect()) == "ALTER TABLE t DROP COLUMN a"
    assert removal_sql(Change("add_unique", "t", "uq_t_b", ""), now, postgresql.dialect()) == "DROP INDEX uq_t_b"
    assert removal_sql(Change("add_unique", "t", "uq_t_c", ""), now, postgresql.dialect()) == \
        "ALTER TABLE t DROP CONSTRAINT uq_t_c"
    assert removal_sql(Change("add_fk", "t", "fk_t_p", ""), now, mysql.dialect()) == \
        "ALTER TABLE t DROP FOREIGN KEY fk_t_p"
    assert removal_sql(Change("add_index", "t", "t(a)", ""), now, mysql.dialect()) == ""  # unnamed: no name to drop
    assert removal_sql(Change("modify_type", "t", "t.a", ""), now, mysql.dialect()) == ""
