"""`dbrunbook lint versions/x.py` with no database: offline rendering, op. lines, exit codes, CI options, the hook."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dbrunbook.cli import main
from dbrunbook.core.db import drop_database
from helpers.databases import new_database, require
from helpers.lint_project import BASE, UNSAFE

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_VERSIONS = Path(__import__("mlflow").__file__).parent / "store" / "db_migrations" / "versions"

SHAPES = '''
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"


def _index(name, *columns):
    op.create_index(name, "accounts", list(columns))


def upgrade():
    op.add_column(
        "accounts",
        sa.Column("score", sa.Integer(), server_default=sa.text("(random() * 10)::int")),
    )
    for column in ("name", "email"):
        op.create_index(f"ix_accounts_{column}", "accounts", [column])
    _index("ix_accounts_both", "name", "email")
    with op.batch_alter_table("members") as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text()))
        batch_op.drop_column("role")
    op.execute("UPDATE accounts SET name = 'x'; ALTER TABLE accounts ADD COLUMN ok boolean DEFAULT random() > 0.5")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_pg_only", "members", ["team_id"])
    with op.get_context().autocommit_block():
        op.create_index("ix_members_note", "members", ["note"], postgresql_concurrently=True)
    op.create_index("ix_members_late", "members", ["note"], postgresql_concurrently=True)


def downgrade():
    pass
'''

NEEDS_DB = '''
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"


def upgrade():
    op.drop_column("accounts", "notes")
    count = op.get_bind().execute(sa.text("SELECT count(*) FROM accounts")).scalar()
    op.drop_table("members")


def downgrade():
    inspector = sa.inspect(op.get_bind())
'''


def _revision(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / "versions" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def _line(path: Path, needle: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if needle in text)


def _lint(tmp_path: Path, *args: str, pyproject: str | None = None):
    if pyproject is not None:
        (tmp_path / "pyproject.toml").write_text(pyproject)
    return CliRunner().invoke(main, ["lint", *args, "--project", str(tmp_path)])


def _json(result) -> list[tuple[str, int]]:
    return sorted((f["code"], f["evidence"]["line"]) for f in json.loads(result.stdout))


def test_a_revision_file_is_linted_with_no_database_and_each_finding_at_its_op_line(tmp_path, monkeypatch):
    monkeypatch.delenv("DBRUNBOOK_DB", raising=False)
    path = _revision(tmp_path, "0002_unsafe.py", UNSAFE)
    result = _lint(tmp_path, str(path), "--dialect", "postgresql", "--format", "json")
    assert result.exit_code == 1, result.output
    found = _json(result)
    assert ("LK003", _line(path, "op.create_index")) in found
    assert ("MF001", _line(path, 'op.alter_column("accounts", "email"')) in found
    assert ("LK001", _line(path, 'op.add_column("members"')) in found
    assert ("DS002", _line(path, 'op.drop_column("accounts", "notes")')) in found
    assert ("RB003", _line(path, 'op.drop_column("accounts", "notes")')) in found
    assert all(f["evidence"]["source"] == str(path) and f["evidence"]["revision"] == "0002"
               for f in json.loads(result.stdout))


def test_multiline_calls_loops_helpers_batches_and_raw_sql_keep_their_lines(tmp_path):
    path = _revision(tmp_path, "0003_shapes.py", SHAPES)
    result = _lint(tmp_path, str(path), "--dialect", "postgresql", "--format", "json")
    found = _json(result)
    assert ("LK001", _line(path, "op.add_column(")) in found  # the first line of a call over three lines
    assert ("LK003", _line(path, 'op.create_index(f"ix_accounts_{column}"')) in found  # in a loop, twice
    assert found.count(("LK003", _line(path, 'op.create_index(f"ix_accounts_{column}"'))) == 2
    assert ("LK003", _line(path, 'op.create_index(name, "accounts"')) in found  # in a helper of the file: its op.
    assert ("DS002", _line(path, 'batch_op.drop_column("role")')) in found  # a batch operation, its own line
    execute = _line(path, "op.execute(")
    assert ("LK001", execute) in found  # raw SQL linted as SQL, at the op.execute line
    assert ("LK003", _line(path, '"ix_pg_only"')) in found  # op.get_bind().dialect.name answers offline
    assert ("TX001", _line(path, '"ix_members_late"')) in found  # Alembic's transaction, as on PostgreSQL
    assert ("TX001", _line(path, '"ix_members_note"')) not in found  # the autocommit block commits first
    assert ("RB001", _line(path, "def downgrade")) in found


def test_a_revision_that_needs_the_database_is_linted_up_to_there_and_says_so(tmp_path):
    path = _revision(tmp_path, "0004_needs_db.py", NEEDS_DB)
    result = _lint(tmp_path, str(path), "--dialect", "postgresql", "--format", "json")
    assert result.exit_code == 1, result.output  # DS002 blocks; never 70
    findings = json.loads(result.stdout)
    gaps = [(f["evidence"]["line"], f["evidence"]["function"], f["message"]) for f in findings if f["code"] == "LN006"]
    assert [(line, fn) for line, fn, _ in gaps] == [(_line(path, "op.get_bind().execute"), "upgrade"),
                                                    (_line(path, "sa.inspect"), "downgrade")]
    assert "op.get_bind().execute" in gaps[0][2] and "rollback pairing is not checked" in gaps[1][2]
    codes = {f["code"] for f in findings}
    assert "DS002" in codes and "DS001" not in codes  # before the gap linted, after it not rendered
    assert not codes & {"RB001", "RB002", "RB003"}  # no pairing against a half-rendered downgrade


def test_python_silence_covers_the_raw_sql_of_its_call(tmp_path):
    silence = "    # dbrunbook-ignore: LK001 the table holds 12 rows (OPS-7)\n"
    source = SHAPES.replace("    op.execute(", silence + "    op.execute(")
    path = _revision(tmp_path, "0003_shapes.py", source)
    findings = json.loads(_lint(tmp_path, str(path), "--dialect", "postgresql", "--format", "json").stdout)
    assert ("LK001", _line(path, "op.execute(")) not in [(f["code"], f["evidence"]["line"]) for f in findings]
    path.write_text(source.replace(" the table holds 12 rows (OPS-7)", ""))
    findings = json.loads(_lint(tmp_path, str(path), "--dialect", "postgresql", "--format", "json").stdout)
    unreasoned = [f["evidence"] for f in findings if f["code"] == "LN001"]
    assert unreasoned == [{"source": str(path), "line": _line(path, "dbrunbook-ignore"), "revision": "0003"}]


def test_a_file_that_does_not_parse_exits_2_after_the_others_are_linted(tmp_path):
    good = _revision(tmp_path, "0002_unsafe.py", UNSAFE)
    bad = _revision(tmp_path, "0005_broken.py", "revision = '0005'\ndef upgrade(:\n    pass\n")
    result = _lint(tmp_path, str(good), str(bad), "--dialect", "postgresql")
    assert result.exit_code == 2
    assert f"error: {bad}:2: does not parse as Python" in result.stderr
    assert "DS002" in result.stdout and "Traceback" not in result.output


def test_nothing_to_lint_says_so_and_passes(tmp_path):
    init = _revision(tmp_path, "__init__.py", "")
    result = _lint(tmp_path, str(init), "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert result.stderr.strip().splitlines() == [f"nothing to lint: {init}: not an Alembic revision (no revision "
                                                  "= ... and upgrade()), skipped"]


def test_no_pending_revisions_and_an_empty_range_say_so(tmp_path):
    from alembic.config import Config

    from dbrunbook.alembic_ops.migration import apply_upgrade
    from helpers.projects import write_project

    url = f"sqlite:///{tmp_path / 'app.db'}"
    target = write_project(tmp_path / "p", url, {"0001_base.py": BASE})
    assert apply_upgrade(Config(target.alembic_config), url, "head").ok
    args = ["--db", url, "--alembic-config", target.alembic_config, "--project", str(tmp_path / "p")]
    pending = CliRunner().invoke(main, ["lint", *args])
    assert pending.exit_code == 0 and pending.stderr.strip() == \
        "nothing to lint: no pending revisions (the database is at head)"
    empty = CliRunner().invoke(main, ["lint", "0001:0001", *args])
    assert empty.exit_code == 0 and empty.stderr.strip() == "nothing to lint: no revisions in 0001:0001"


def test_per_file_ignores_and_excluded_files(tmp_path):
    unsafe = _revision(tmp_path, "0002_unsafe.py", UNSAFE)
    legacy = _revision(tmp_path, "0001_legacy.py", UNSAFE.replace('"0002"', '"0001"', 1))
    pyproject = textwrap.dedent('''
        [tool.dbrunbook.lint]
        per_file_ignores = { "versions/0002_*.py" = ["DS002", "volatile-default", "LK00[3-9]"] }
        exclude_files = ["0001_*.py"]
    ''')
    result = _lint(tmp_path, str(unsafe), str(legacy), "--dialect", "postgresql", "--format", "json",
                   pyproject=pyproject)
    findings = json.loads(result.stdout)
    assert {f["evidence"]["source"] for f in findings} == {str(unsafe)}
    codes = {f["code"] for f in findings}
    assert "DS002" not in codes and "LK001" not in codes and "LK003" not in codes and "MF001" in codes
    alone = _lint(tmp_path, str(legacy), "--dialect", "postgresql")
    assert alone.exit_code == 0 and alone.stderr.strip() == f"nothing to lint: {legacy}: excluded by exclude_files"


@pytest.mark.parametrize("pyproject,message", [
    ('[tool.dbrunbook.lint]\nper_file_ignores = ["DS002"]\n', "per_file_ignores must map file patterns"),
    ('[tool.dbrunbook.lint]\npg_version = "latest"\n', "pg_version must be a PostgreSQL major version"),
    ('[tool.dbrunbook.lint]\nassume_in_transaction = "yes"\n', "assume_in_transaction must be true or false"),
])
def test_bad_lint_config_is_a_usage_error(tmp_path, pyproject, message):
    (tmp_path / "m.sql").write_text("SELECT 1;")
    result = _lint(tmp_path, str(tmp_path / "m.sql"), pyproject=pyproject)
    assert result.exit_code == 2 and message in result.stderr


CONCURRENT = "CREATE INDEX CONCURRENTLY ix ON t (c);\n"


def test_assume_in_transaction_from_the_option_or_the_config(tmp_path):
    (tmp_path / "m.sql").write_text(CONCURRENT)
    sql = str(tmp_path / "m.sql")
    alone = {f["code"] for f in json.loads(_lint(tmp_path, sql, "--format", "json").stdout)}
    assert "TX001" not in alone and "ID001" in alone  # autocommit: CONCURRENTLY is right, re-running is not
    assumed = _lint(tmp_path, sql, "--format", "json", "--assume-in-transaction")
    codes = {f["code"] for f in json.loads(assumed.stdout)}
    assert "TX001" in codes and "ID001" not in codes and assumed.exit_code == 1
    configured = _lint(tmp_path, sql, "--format", "json",
                       pyproject="[tool.dbrunbook.lint]\nassume_in_transaction = true\n")
    assert "TX001" in configured.stdout
    overridden = _lint(tmp_path, sql, "--format", "json", "--no-assume-in-transaction")
    assert "TX001" not in overridden.stdout


@pytest.mark.parametrize("sql,version,expected", [
    ("ALTER TABLE t ADD COLUMN flag boolean DEFAULT false", "10", ["LK001"]),  # any default rewrites before 11
    ("ALTER TABLE t ADD COLUMN flag boolean DEFAULT false", "11", []),
    ("ALTER TABLE t ADD COLUMN flag boolean DEFAULT NULL", "10", []),
    ("ALTER TABLE t ADD COLUMN ok boolean DEFAULT random() > 0.5", "16", ["LK001"]),  # volatile: always
    ("ALTER TABLE t ADD CONSTRAINT ck CHECK (c IS NOT NULL); ALTER TABLE t ALTER COLUMN c SET NOT NULL", "12", []),
    ("ALTER TABLE t ADD CONSTRAINT ck CHECK (c IS NOT NULL); ALTER TABLE t ALTER COLUMN c SET NOT NULL", "11",
     ["MF001"]),  # the check proves NOT NULL only from 12
    ("REINDEX TABLE CONCURRENTLY t", "11", ["LK012"]),  # fails there
    ("REINDEX TABLE CONCURRENTLY t", None, []),  # the default version alone condemns no statement
    ("ALTER TABLE t DETACH PARTITION t_2020 CONCURRENTLY", "13", ["LK013"]),
    ("ALTER TABLE t DETACH PARTITION t_2020 CONCURRENTLY", "14", []),
])
def test_pg_version_changes_what_the_version_dependent_rules_say(tmp_path, sql, version, expected):
    (tmp_path / "m.sql").write_text(sql + ";\n")
    args = ["--pg-version", version] if version else []
    only = [arg for code in ("LK001", "LK012", "LK013", "MF001") for arg in ("--include", code)]
    result = _lint(tmp_path, str(tmp_path / "m.sql"), "--format", "json", *only, *args)
    assert [f["code"] for f in json.loads(result.stdout)] == expected, result.output


def test_pg_version_in_config_and_a_bad_option(tmp_path):
    (tmp_path / "m.sql").write_text("ALTER TABLE t ADD COLUMN flag boolean DEFAULT false;\n")
    sql = str(tmp_path / "m.sql")
    configured = _lint(tmp_path, sql, "--format", "json", "--include", "LK001",
                       pyproject='[tool.dbrunbook.lint]\npg_version = "10.4"\n')
    assert [f["code"] for f in json.loads(configured.stdout)] == ["LK001"]
    assert "before PostgreSQL 11 (judged for 10)" in json.loads(configured.stdout)[0]["message"]
    assert _lint(tmp_path, sql, "--include", "LK001", "--pg-version", "11").exit_code == 0
    bad = _lint(tmp_path, sql, "--pg-version", "eleven")
    assert bad.exit_code == 2 and "--pg-version must be a PostgreSQL major version" in bad.stderr


def test_lint_db_says_table_sizes_and_empty_tables(tmp_path):
    require("postgresql")
    url = new_database("postgresql", tmp_path)
    try:
        import sqlalchemy as sa

        from dbrunbook.core.db import make_engine

        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE accounts (id int PRIMARY KEY, name varchar(50), email varchar(100))"))
            conn.execute(sa.text("CREATE TABLE members (id int PRIMARY KEY, team_id int, role varchar(10))"))
            conn.execute(sa.text("INSERT INTO accounts SELECT g, 'n' || g, 'e' || g FROM generate_series(1, 1500) g"))
            conn.execute(sa.text("ANALYZE accounts"))
        engine.dispose()
        path = _revision(tmp_path, "0002_unsafe.py", UNSAFE)
        result = _lint(tmp_path, str(path), "--db", url, "--format", "json")
        findings = {f["code"]: f for f in json.loads(result.stdout)}
        assert re.search(r"\(accounts: 1\.5k rows, \d+ kB\)$", findings["LK003"]["message"]), findings["LK003"]
        assert findings["LK003"]["evidence"]["table_rows"] == 1500
        assert findings["LK005"]["message"].endswith("(members is empty on the target)")
        assert findings["LK003"]["evidence"]["line"] == _line(path, "op.create_index")
    finally:
        drop_database(url)


def test_the_pre_commit_hook_runs_with_no_database(tmp_path):
    """Run the hook's entry as pre-commit does: entry, args, then the staged files its patterns select."""
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    repo = tmp_path / "repo"
    unsafe = _revision(repo / "migrations", "0002_unsafe.py", UNSAFE)
    safe = _revision(repo / "migrations", "0001_base.py", BASE)
    _revision(repo / "migrations", "__init__.py", "")
    (repo / "notes.py").write_text("x = 1\n")
    staged = sorted(str(p.relative_to(repo)) for p in repo.rglob("*.py"))
    chosen = [f for f in staged if re.search(hook["files"], f) and not re.search(hook.get("exclude", "^$"), f)]
    assert chosen == ["migrations/versions/0001_base.py", "migrations/versions/0002_unsafe.py"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DBRUNBOOK_DB")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = [*shlex.split(hook["entry"]), *hook.get("args", [])]
    failing = subprocess.run([*command, *chosen], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert failing.returncode == 1, failing.stderr
    assert f"{unsafe.relative_to(repo)}:{_line(unsafe, 'op.drop_column')}: block DS002" in failing.stdout
    passing = subprocess.run([*command, str(safe.relative_to(repo))], cwd=repo, env=env, capture_output=True,
                             text=True, timeout=120)
    assert passing.returncode == 0, passing.stdout + passing.stderr


def test_mlflow_revisions_lint_offline_as_sarif_with_every_finding_on_an_op_line(tmp_path):
    files = sorted(str(p) for p in MLFLOW_VERSIONS.glob("*.py"))
    result = CliRunner().invoke(main, ["lint", *files, "--dialect", "postgresql", "--format", "sarif",
                                       "--project", str(MLFLOW_VERSIONS)])
    assert result.exit_code in (0, 1), result.output
    run = json.loads(result.stdout)["runs"][0]
    assert run["invocations"][0]["executionSuccessful"] and len(run["results"]) > 50
    for item in run["results"]:
        location = item["locations"][0]["physicalLocation"]
        path = MLFLOW_VERSIONS / location["artifactLocation"]["uri"]
        text = path.read_text().splitlines()[location["region"]["startLine"] - 1]
        if item["ruleId"] == "LN006":  # where the revision needs the database: a line of its own code
            continue
        if item["ruleId"].startswith("RB") and "op." not in text:
            assert text.startswith("def downgrade"), (path.name, text)
            continue
        assert "op." in text, (item["ruleId"], path.name, text)


def test_a_revision_file_renders_for_mariadb_too_with_its_op_lines(tmp_path):
    path = _revision(tmp_path, "0002_unsafe.py", UNSAFE)
    result = _lint(tmp_path, str(path), "--dialect", "mariadb", "--format", "json")
    assert result.exit_code == 1, result.output
    found = _json(result)
    assert ("DS002", _line(path, 'op.drop_column("accounts", "notes")')) in found
    assert not any(code == "TX001" for code, _ in found)


@pytest.mark.parametrize("version,rewrite", [(10, True), (11, False), (None, False)])
def test_lock_estimates_read_the_server_version(version, rewrite):
    from dbrunbook.lint import locks, parse_sql

    migration = parse_sql("ALTER TABLE t ADD COLUMN flag boolean DEFAULT false;", "postgresql")
    migration.server_version = version
    [row] = locks.analyse(migration, {"t": (1000, 8192 * 100)})
    assert row.rewrite is rewrite and (row.blocked_seconds > 0) is rewrite


def test_with_db_a_revision_that_needs_it_is_captured_on_a_copy_at_its_op_lines(tmp_path):
    from alembic.config import Config

    from dbrunbook.alembic_ops.migration import apply_upgrade
    from helpers.projects import write_project

    url = new_database("postgresql", tmp_path)
    try:
        undo = '    op.add_column("accounts", sa.Column("notes", sa.Text()))\n'
        reads = NEEDS_DB.replace('"0004"', '"0002"').replace('"0003"', '"0001"').replace(
            '    inspector = sa.inspect(op.get_bind())\n', undo)
        target = write_project(tmp_path / "p", url, {"0001_base.py": BASE, "0002_reads.py": reads})
        assert apply_upgrade(Config(target.alembic_config), url, "0001").ok
        path = tmp_path / "p" / "migrations" / "versions" / "0002_reads.py"
        args = ["--db", url, "--alembic-config", target.alembic_config, "--project", str(tmp_path / "p")]
        result = CliRunner().invoke(main, ["lint", str(path), *args, "--format", "json"])
        assert result.exit_code == 1, result.output
        found = _json(result)
        assert ("DS002", _line(path, 'op.drop_column("accounts", "notes")')) in found
        assert "LN006" not in {code for code, _ in found}  # the copy ran the whole revision
        assert ("DS001", _line(path, "def upgrade")) in found  # after the gap: no offline line to point at
    finally:
        drop_database(url)
