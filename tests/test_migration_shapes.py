"""Stage 03 and lint on Alembic histories as real projects shape them (issue 10).

Two heads with branch labels (not merged), a database at both heads, and models that leave a
``unique=True`` constraint unnamed (no naming convention): each is planned, rendered and reviewed
into findings, never an exception.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from click.testing import CliRunner
from sqlalchemy.schema import AddConstraint

from dbrunbook.alembic_ops._shapes import NAMING_CONVENTION, conventional_name, unnamed_operations
from dbrunbook.cli import main
from dbrunbook.core.config import Target
from dbrunbook.core.project import copied_scripts
from dbrunbook.core.results import load_result
from dbrunbook.lint.source import render_revisions
from dbrunbook.stages.migration import findings, plan_migration, plan_summary, review_migration, run_alembic
from helpers.projects import write_project

HEADER = "from alembic import op\nimport sqlalchemy as sa\n"
BASE = HEADER + '''
revision = "0001"
down_revision = None

def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("email", sa.String(100)))

def downgrade():
    op.drop_table("users")
'''
BILLING = HEADER + '''
revision = "billing1"
down_revision = "0001"
branch_labels = ("billing",)

def upgrade():
    op.create_table("invoices", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("user_id", sa.Integer()))

def downgrade():
    op.drop_table("invoices")
'''
AUDIT = HEADER + '''
revision = "audit1"
down_revision = "0001"
branch_labels = ("audit",)

def upgrade():
    op.create_table("audit_log", sa.Column("id", sa.Integer(), primary_key=True), sa.Column("note", sa.String(200)))

def downgrade():
    op.drop_table("audit_log")
'''
BILLING2 = HEADER + '''
revision = "billing2"
down_revision = "billing1"

def upgrade():
    op.add_column("invoices", sa.Column("total", sa.Integer(), nullable=True))

def downgrade():
    with op.batch_alter_table("invoices") as batch:
        batch.drop_column("total")
'''
#: Hand-written: the downgrade drops a constraint by no name.
UNNAMED_DROP = HEADER + '''
revision = "0002"
down_revision = "0001"

def upgrade():
    with op.batch_alter_table("users") as batch_op:
        batch_op.create_unique_constraint("uq_users_email", ["email"])

def downgrade():
    op.drop_constraint(None, "users", type_="unique")
'''
MODELS = '''
import sqlalchemy as sa

metadata = sa.MetaData()
users = sa.Table("users", metadata, sa.Column("id", sa.Integer, primary_key=True),
                 sa.Column("email", sa.String(100), unique=True))
'''
BRANCHES = {"0001_base.py": BASE, "billing1.py": BILLING, "audit1.py": AUDIT}


def project(tmp_path: Path, url: str, revisions: dict[str, str], at: str = "0001", models: str = "") -> Target:
    """An Alembic project in ``tmp_path/p`` with ``revisions``; the database upgraded to ``at``."""
    target = write_project(tmp_path / "p", url, {name: textwrap.dedent(body) for name, body in revisions.items()})
    if models:
        module = f"shape_models_{uuid.uuid4().hex[:8]}"  # imported models are cached by module name
        (tmp_path / "p" / f"{module}.py").write_text(models)
        target = target.with_(models=f"{module}:metadata")
    steps = run_alembic(Config(target.alembic_config), url, [("upgrade", at)])
    assert steps[0].ok, steps[0].error
    return target


def codes(found: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for f in found:
        out.setdefault(f.code, []).append(f)
    return out


# --- several heads ---------------------------------------------------------------------------------------------------

def test_two_heads_are_planned_rendered_and_reviewed_together(db_url, tmp_path):
    target = project(tmp_path, db_url, BRANCHES)
    plan = plan_migration(target, tmp_path / "run")
    assert plan.current == "0001" and plan.head == "audit1,billing1"
    assert sorted(plan.revisions) == ["audit1", "billing1"] and plan.generated is None
    found = codes(findings(plan))
    assert "MG003" not in found and "MG006" not in found, found
    message = found["MG008"][0].message
    assert found["MG008"][0].severity == "warn"
    assert "audit1 (label audit)" in message and "billing1 (label billing)" in message
    assert "alembic upgrade heads" in message
    up, down = plan.upgrade_sql.lower(), plan.downgrade_sql.lower()
    assert "create table invoices" in up and "create table audit_log" in up
    assert "drop table invoices" in down and "drop table audit_log" in down
    review = review_migration(plan, target, measure=False)
    assert not [f for f in review.findings if f.severity == "block"], review.findings
    summary = plan_summary(plan, tmp_path)
    assert summary["head"] == "audit1,billing1" and summary["heads"] == ["audit1", "billing1"]


def test_a_database_at_two_heads_gets_the_next_revision_of_one_branch(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    target = project(tmp_path, url, BRANCHES, at="heads")
    (target.project_dir / "migrations" / "versions" / "billing2.py").write_text(BILLING2)
    plan = plan_migration(target, tmp_path / "run")
    assert plan.current == "audit1,billing1" and plan.head == "audit1,billing2"
    assert plan.revisions == ["billing2"]
    up, down = plan.upgrade_sql.lower(), plan.downgrade_sql.lower()
    assert "total" in up and "audit_log" not in up
    assert "invoices" in down and "audit_log" not in down and "billing1" in down, plan.downgrade_sql
    found = codes(findings(plan))
    assert "MG008" in found and "MG006" not in found, found


def test_models_on_a_database_at_two_heads_generate_a_merge(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    target = project(tmp_path, url, BRANCHES, at="heads", models=MODELS + '''
invoices = sa.Table("invoices", metadata, sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("user_id", sa.Integer))
audit_log = sa.Table("audit_log", metadata, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("note", sa.String(200)))
''')
    plan = plan_migration(target, tmp_path / "run")
    assert plan.generated is not None and plan.current == "audit1,billing1"
    merge = copied_scripts(plan.script_dir).get_revision(plan.head)
    assert merge is not None and set(merge.down_revision) == {"audit1", "billing1"}
    assert plan.revisions == [plan.head] and "uq_users_email" in plan.upgrade_sql
    assert "'audit1'" in plan.downgrade_sql and "'billing1'" in plan.downgrade_sql, plan.downgrade_sql
    found = codes(findings(plan))
    assert "merge them" in found["MG008"][0].message and not {"MG003", "MG006"} & set(found), found


def lint(target: Target, url: str, *spec: str) -> tuple[int, list[dict]]:
    """``dbrunbook lint`` as a user runs it: the exit code and the findings, never an internal error."""
    result = CliRunner().invoke(main, ["lint", *spec, "--project", str(target.project_dir), "--db", url,
                                       "--alembic-config", target.alembic_config, "--format", "json",
                                       "--fail-on", "block"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert (result.exit_code == 1) == any(f["severity"] == "block" for f in report), report
    return result.exit_code, report


def test_lint_renders_both_branches_pending_on_each_dialect(db_url, tmp_path):
    target = project(tmp_path, db_url, BRANCHES)
    assert lint(target, db_url)[0] == 0  # two new tables: nothing blocks
    rendered = render_revisions(target, "")
    assert sorted(rendered.revisions) == ["audit1", "billing1"]
    up = rendered.upgrade_sql.lower()
    assert "create table invoices" in up and "create table audit_log" in up and "create table users" not in up


@pytest.mark.parametrize("spec, linted", [("heads", ["audit1", "billing1"]), ("billing@head", ["billing1"]),
                                          ("0001:heads", ["audit1", "billing1"]),
                                          ("base:audit@head", ["0001", "audit1"])])
def test_lint_takes_heads_labels_and_ranges(tmp_path, spec, linted):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    target = project(tmp_path, url, BRANCHES)
    lint(target, url, spec)
    rendered = render_revisions(target, spec)
    assert sorted(rendered.revisions) == linted
    for table, revision in (("invoices", "billing1"), ("audit_log", "audit1")):
        assert (f"create table {table}" in rendered.upgrade_sql.lower()) == (revision in linted)


def test_lint_head_of_several_heads_is_a_one_line_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    target = project(tmp_path, url, BRANCHES)
    result = CliRunner().invoke(main, ["lint", "head", "--project", str(target.project_dir), "--db", url,
                                       "--alembic-config", target.alembic_config])
    assert result.exit_code == 2 and "'heads' for all heads" in result.output, result.output


# --- constraints without a name ---------------------------------------------------------------------------------------

def test_an_unnamed_unique_constraint_is_named_in_the_generated_revision(db_url, dialect, tmp_path):
    target = project(tmp_path, db_url, {"0001_base.py": BASE}, models=MODELS)
    plan = plan_migration(target, tmp_path / "run")
    assert plan.generated is not None
    source = plan.generated.read_text()
    assert "drop_constraint(None" not in source and source.count("'uq_users_email'") == 2, source
    assert "uq_users_email" in plan.upgrade_sql
    assert plan.downgrade_sql.strip() and not plan.downgrade_sql.startswith("-- downgrade failed"), plan.downgrade_sql
    # SQLite's batch mode drops it by copying the table without it; the others drop it by name.
    dropped = {"sqlite": "drop table users", "mariadb": "drop index uq_users_email"}.get(
        dialect, "drop constraint uq_users_email")
    assert dropped in plan.downgrade_sql.lower().replace("`", ""), plan.downgrade_sql
    found = codes(findings(plan) + review_migration(plan, target, measure=False).findings)
    naming = found["MG009"][0]
    assert naming.severity == "warn" and naming.evidence["named"] == ["uq_users_email"]
    assert "naming_convention={" in naming.fix and '"uq": "uq_%(table_name)s_%(column_0_N_name)s"' in naming.fix
    assert not {"MG002", "MG003", "MG006"} & set(found), found


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_a_hand_written_drop_of_an_unnamed_constraint_is_a_finding(db_url, tmp_path):
    target = project(tmp_path, db_url, {"0001_base.py": BASE, "0002_unique.py": UNNAMED_DROP})
    plan = plan_migration(target, tmp_path / "run")
    assert plan.revisions == ["0002"] and "uq_users_email" in plan.upgrade_sql
    found = codes(findings(plan) + review_migration(plan, target, measure=False).findings)
    naming = found["MG009"][0]
    assert naming.severity == "warn" and naming.object == "0002"
    line = textwrap.dedent(UNNAMED_DROP).splitlines().index('    op.drop_constraint(None, "users", type_="unique")') + 1
    assert f"downgrade() line {line}: drop_constraint(None) on users" in naming.message
    assert "MetaData(naming_convention=" in naming.fix
    assert "MG006" in found or "MG002" in found  # and the downgrade is marked as not renderable


def test_unnamed_operations_are_found_in_batch_and_plain_calls(tmp_path):
    path = tmp_path / "rev.py"
    path.write_text(textwrap.dedent('''
        def upgrade():
            with op.batch_alter_table("users") as b:
                b.create_unique_constraint(None, ["email"])
            op.create_foreign_key(None, "orders", "users", ["user_id"], ["id"])
            op.create_unique_constraint("uq_named", "users", ["name"])

        def downgrade():
            op.drop_constraint(constraint_name=None, table_name="orders", type_="foreignkey")
    '''))
    found = [(u.function, u.operation, u.table, u.drops) for u in unnamed_operations(path)]
    assert found == [("upgrade", "create_unique_constraint", "users", False),
                     ("upgrade", "create_foreign_key", "orders", False),
                     ("downgrade", "drop_constraint", "orders", True)]


@pytest.mark.parametrize("table", ["users", "t" * 70])
def test_names_agree_with_sqlalchemy_under_the_recommended_convention(table):
    from sqlalchemy.dialects import postgresql

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    parent = sa.Table("accounts", metadata, sa.Column("id", sa.Integer, primary_key=True))
    child = sa.Table(table, metadata, sa.Column("a", sa.Integer), sa.Column("b", sa.Integer),
                     sa.Column("account_id", sa.Integer))
    unique = sa.UniqueConstraint(child.c.a, child.c.b)
    foreign = sa.ForeignKeyConstraint([child.c.account_id], [parent.c.id])
    child.append_constraint(unique)
    child.append_constraint(foreign)
    dialect = postgresql.dialect()
    for constraint, name in ((unique, conventional_name("uq", table, ["a", "b"])),
                             (foreign, conventional_name("fk", table, ["account_id"], "accounts"))):
        sql = str(AddConstraint(constraint).compile(dialect=dialect))
        assert f"CONSTRAINT {name} " in sql, (sql, name)
        assert len(name) <= 63


def test_update_dry_run_reviews_an_unnamed_unique_constraint_and_rehearses_it(tmp_path):
    url = f"sqlite:///{tmp_path / 'app.db'}"
    target = project(tmp_path, url, {"0001_base.py": BASE}, models=MODELS)
    done = subprocess.run([sys.executable, "-m", "dbrunbook", "update", "--dry-run", "--db", url,
                           "--models", target.models, "--alembic-config", target.alembic_config,
                           "--stages", "03,04", "--out", str(tmp_path / "runs")],
                          capture_output=True, text=True, cwd=target.project_dir, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    stages = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()
              if line.startswith("  0") and len(line.split()) > 1}
    assert stages.get("03-migration") in ("PASS", "WARN", "BLOCK"), done.stdout
    assert stages.get("04-dev-rehearsal") in ("PASS", "WARN", "BLOCK"), done.stdout
    [run] = list((tmp_path / "runs").iterdir())
    migration, rehearsal = load_result(run, "03-migration"), load_result(run, "04-dev-rehearsal")
    assert migration is not None and rehearsal is not None
    assert "MG009" in {f.code for f in migration.findings}
    assert "RH001" not in {f.code for f in rehearsal.findings}  # the named constraint upgrades a copy


#: Dagster's revisions 045-047 as they ship: they inspect the database (no offline SQL) and build an index
#: CONCURRENTLY without an autocommit block (Dagster's own runner hands them an AUTOCOMMIT connection).
CONCURRENT = HEADER + '''
revision = "0002"
down_revision = "0001"

def upgrade():
    if "ix_users_email" not in {ix["name"] for ix in sa.inspect(op.get_bind()).get_indexes("users")}:
        op.create_index("ix_users_email", "users", ["email"], postgresql_concurrently=True)

def downgrade():
    op.drop_index("ix_users_email", "users", postgresql_concurrently=True)
'''


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_a_failed_upgrade_says_the_downgrade_is_unknown_not_missing(db_url, tmp_path):
    target = project(tmp_path, db_url, {"0001_base.py": BASE, "0002_concurrent.py": CONCURRENT})
    plan = plan_migration(target, tmp_path / "run")
    assert plan.upgrade_sql.startswith("-- upgrade failed") and "CONCURRENTLY" in plan.upgrade_sql, plan.upgrade_sql
    found = codes(findings(plan))
    assert "MG003" in found, found
    # The downgrade() is there; it was never rendered because the upgrade before it failed.
    assert "not rendered" in found["MG002"][0].message and "write downgrade()" not in found["MG002"][0].fix


# --- which revision fails --------------------------------------------------------------------------------------------

ADD_NAME = HEADER + '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.add_column("users", sa.Column("name", sa.String(50), nullable=True))

def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("name")
'''
#: Reads the database (no offline SQL on any dialect), changes a table, then fails: Dagster's 1aca709bba64 shape.
FAILS = HEADER + '''
revision = "0003"
down_revision = "0002"

def upgrade():
    if "users" in sa.inspect(op.get_bind()).get_table_names():
        op.add_column("users", sa.Column("nick", sa.String(50), nullable=True))
    op.execute("UPDATE no_such_table SET x = 1")

def downgrade():
    pass
'''
HEAD_AFTER = HEADER + '''
revision = "0004"
down_revision = "0003"

def upgrade():
    op.create_index("ix_users_email", "users", ["email"])

def downgrade():
    op.drop_index("ix_users_email", "users")
'''


def test_a_failed_upgrade_names_the_revision_that_failed_not_the_head(db_url, tmp_path):
    target = project(tmp_path, db_url, {"0001_base.py": BASE, "0002_name.py": ADD_NAME, "0003_fails.py": FAILS,
                                        "0004_head.py": HEAD_AFTER})
    plan = plan_migration(target, tmp_path / "run")
    assert plan.head == "0004" and plan.revisions == ["0002", "0003", "0004"]
    [failed] = codes(findings(plan))["MG003"]
    assert failed.object == "0003" and failed.evidence == {"revision": "0003"}, failed
    assert "at revision 0003" in failed.message and "no_such_table" in failed.message, failed.message
