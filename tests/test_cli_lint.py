"""`dbrunbook lint` gates a bad migration: exit codes, formats, silences, config, revisions."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from dbrunbook.cli import main
from helpers.databases import require
from helpers.lint_project import BASE, UNSAFE
from helpers.projects import write_project

BAD = """BEGIN;
SET lock_timeout = '5s';
SET statement_timeout = '1min';
CREATE INDEX ix_orders_created_at ON orders (created_at);
ALTER TABLE users DROP COLUMN legacy_notes;
COMMIT;
"""


def _lint(tmp_path, *args, sql=BAD, pyproject=None):
    (tmp_path / "m.sql").write_text(sql)
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    return CliRunner().invoke(main, ["lint", str(tmp_path / "m.sql"), "--project", str(tmp_path),
                                     "--dialect", "postgresql", *args])


def test_github_annotations_and_exit_code_gate_a_bad_migration(tmp_path):
    result = _lint(tmp_path, "--format", "github")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"::error file={tmp_path / 'm.sql'},line=5,title=DS002 users.legacy_notes::" in "\n".join(lines)
    assert any(line.startswith("::warning ") and "title=LK003" in line for line in lines)


@pytest.mark.parametrize("fail_on,code", [("block", 1), ("warn", 1), ("info", 1)])
def test_fail_on_threshold(tmp_path, fail_on, code):
    assert _lint(tmp_path, "--fail-on", fail_on).exit_code == code


def test_only_warnings_pass_at_block_and_fail_at_warn(tmp_path):
    sql = "BEGIN; SET lock_timeout = '5s'; SET statement_timeout = '1min'; CREATE INDEX ix ON t (c); COMMIT;"
    assert _lint(tmp_path, "--fail-on", "block", sql=sql).exit_code == 0
    assert _lint(tmp_path, "--fail-on", "warn", sql=sql).exit_code == 1


def test_json_output(tmp_path):
    result = _lint(tmp_path, "--format", "json", "--fail-on", "block")
    findings = json.loads(result.stdout)
    assert {f["code"] for f in findings} == {"LK003", "DS002"}
    assert all(f["evidence"]["line"] in (4, 5) for f in findings)


def test_silence_needs_a_reason(tmp_path):
    sql = BAD.replace("ALTER TABLE users DROP",
                      "-- dbrunbook-ignore: DS002 code stopped reading it in 2.3\nALTER TABLE users DROP")
    result = _lint(tmp_path, "--format", "json", sql=sql)
    assert {f["code"] for f in json.loads(result.stdout)} == {"LK003"} and result.exit_code == 0
    unreasoned = BAD.replace("ALTER TABLE users DROP", "-- dbrunbook-ignore: DS002\nALTER TABLE users DROP")
    codes = {f["code"] for f in json.loads(_lint(tmp_path, "--format", "json", sql=unreasoned).stdout)}
    assert codes == {"LK003", "DS002", "LN001"}


def test_config_in_pyproject(tmp_path):
    pyproject = '[tool.dbrunbook.lint]\nexclude = ["drop-column"]\nseverity = { LK003 = "block" }\n'
    result = _lint(tmp_path, "--format", "json", pyproject=pyproject)
    assert [(f["code"], f["severity"]) for f in json.loads(result.stdout)] == [("LK003", "block")]
    assert _lint(tmp_path, "--include", "DS*", "--format", "json", pyproject="").stdout.count('"code"') == 1


def test_bad_config_and_missing_file_are_one_line_errors(tmp_path):
    result = _lint(tmp_path, pyproject='[tool.dbrunbook.lint]\nfail_on = "sometimes"\n')
    assert result.exit_code == 2 and "fail_on must be one of" in result.stderr and "Traceback" not in result.output
    missing = CliRunner().invoke(main, ["lint", str(tmp_path / "nope.sql")])
    assert missing.exit_code == 2 and missing.stderr.strip() == f"error: {tmp_path / 'nope.sql'}: no such SQL file"


def test_lint_revision_and_revision_file_on_postgresql(tmp_path):
    require("postgresql")
    url = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"  # offline rendering only reads the URL's dialect
    target = write_project(tmp_path / "p", url, {"0001_base.py": BASE, "0002_unsafe.py": UNSAFE})
    args = ["--project", str(tmp_path / "p"), "--db", url, "--alembic-config", target.alembic_config,
            "--format", "github"]
    by_id = CliRunner().invoke(main, ["lint", "0002", *args])
    assert by_id.exit_code == 1 and "title=LK001" in by_id.stdout and "title=DS002" in by_id.stdout
    file = tmp_path / "p" / "migrations" / "versions" / "0002_unsafe.py"
    by_file = CliRunner().invoke(main, ["lint", str(file), *args])
    lines = file.read_text().splitlines()
    drop = next(i for i, text in enumerate(lines, 1) if 'op.drop_column("accounts", "notes")' in text)
    assert by_file.exit_code == 1 and f"file={file},line={drop},title=DS002" in by_file.stdout
    base_only = CliRunner().invoke(main, ["lint", "base:0001", *args, "--fail-on", "warn"])
    assert base_only.exit_code == 0, base_only.output


def test_pre_commit_hook_is_declared():
    from pathlib import Path

    import yaml  # noqa: F401  (PyYAML ships with papermill)

    hooks = yaml.safe_load((Path(__file__).resolve().parents[1] / ".pre-commit-hooks.yaml").read_text())
    assert hooks[0]["id"] == "dbrunbook-lint" and hooks[0]["entry"] == "dbrunbook lint"


SQLITE_BATCH = '''
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"


def upgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("email", existing_type=sa.String(100), nullable=False)
        batch.drop_column("notes")


def downgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("notes", sa.Text()))
        batch.alter_column("email", existing_type=sa.String(100), nullable=True)
'''


def test_lint_sqlite_revisions_captured_on_a_copy(tmp_path):
    from alembic.config import Config

    from dbrunbook.alembic_ops.migration import apply_upgrade

    url = f"sqlite:///{tmp_path / 'app.db'}"
    target = write_project(tmp_path / "p", url, {"0001_base.py": BASE, "0002_batch.py": SQLITE_BATCH,
                                                 })
    assert apply_upgrade(Config(target.alembic_config), url, "0001").ok
    args = ["--project", str(tmp_path / "p"), "--db", url, "--alembic-config", target.alembic_config,
            "--format", "json"]
    result = CliRunner().invoke(main, ["lint", *args])
    findings = {(f["code"], f["object"]) for f in json.loads(result.stdout)}
    assert {("LK011", "accounts"), ("DS002", "accounts.notes"), ("RB003", "accounts.notes")} <= findings
    assert result.exit_code == 1

    (tmp_path / "p" / "migrations" / "versions" / "0002_batch.py").write_text(UNSAFE)  # not batch: fails on SQLite
    failed = CliRunner().invoke(main, ["lint", *args])
    assert json.loads(failed.stdout)[0]["code"] == "LN002" and failed.exit_code == 1


def test_unreadable_sql(tmp_path):
    result = _lint(tmp_path, "--format", "json", sql="BEGIN; ALTER TABLE ((( ; COMMIT;")
    assert [f["code"] for f in json.loads(result.stdout)] == ["LN003"]
    broken = _lint(tmp_path, sql="ALTER TABLE t ADD COLUMN 'oops;")
    assert broken.exit_code == 2 and broken.stderr.startswith(f"error: {tmp_path / 'm.sql'}: cannot read the SQL")


SILENCED_BATCH = SQLITE_BATCH.replace(
    '        batch.drop_column("notes")',
    '        # dbrunbook-ignore: DS002, RB003 notes were exported to the CRM (OPS-12)\n'
    '        batch.drop_column("notes")')


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_python_comment_silences_the_operation_below_it(tmp_path, dialect):
    from alembic.config import Config

    from dbrunbook.alembic_ops.migration import apply_upgrade

    require(dialect)
    url = (f"sqlite:///{tmp_path / 'app.db'}" if dialect == "sqlite"
           else "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")  # PostgreSQL: rendered offline
    target = write_project(tmp_path / "p", url, {"0001_base.py": BASE, "0002_batch.py": SILENCED_BATCH})
    spec = []
    if dialect == "sqlite":
        assert apply_upgrade(Config(target.alembic_config), url, "0001").ok
    else:
        spec = ["0002"]
    args = [*spec, "--project", str(tmp_path / "p"), "--db", url, "--alembic-config", target.alembic_config,
            "--format", "json"]
    findings = {(f["code"], f["object"]) for f in json.loads(CliRunner().invoke(main, ["lint", *args]).stdout)}
    assert ("DS002", "accounts.notes") not in findings and ("RB003", "accounts.notes") not in findings
    assert any(code.startswith("LK") for code, _ in findings)  # the NOT NULL on email is not silenced

    unreasoned = SILENCED_BATCH.replace(" notes were exported to the CRM (OPS-12)", "")
    (tmp_path / "p" / "migrations" / "versions" / "0002_batch.py").write_text(unreasoned)
    found = json.loads(CliRunner().invoke(main, ["lint", *args]).stdout)
    codes = [(f["code"], f["object"]) for f in found]
    assert ("DS002", "accounts.notes") in codes and ("LN001", "") in codes
