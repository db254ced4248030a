"""The CLI as a user meets it: one clear line and a documented exit code, never a traceback."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from dbrunbook.demo import write_demo
from dbrunbook.errors import EXIT_BLOCKED, EXIT_STAGE_ERROR, EXIT_UNREACHABLE, EXIT_USAGE, EXIT_VERIFY
from dbrunbook.runbook import templates

from conftest import new_database


def dbrunbook(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DBRUNBOOK_DB"}
    return subprocess.run([sys.executable, "-m", "dbrunbook", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo(tmp_path_factory.mktemp("cli") / "shop", users=400).path


def test_malformed_url():
    assert_one_line_error(dbrunbook("update", "--db", "no url at all"), EXIT_USAGE, "malformed database URL")


def test_unreachable_server_masks_the_password(tmp_path):
    result = dbrunbook("update", "--db", "postgresql+psycopg://bob:hunter22@127.0.0.1:1/x", "--out", str(tmp_path))
    assert_one_line_error(result, EXIT_UNREACHABLE, "cannot connect to postgresql+psycopg://bob:***@127.0.0.1:1/x")
    assert "hunter22" not in result.stderr and not list(tmp_path.iterdir())


def test_missing_sqlite_file_is_unreachable(tmp_path):
    assert_one_line_error(dbrunbook("update", "--db", f"sqlite:///{tmp_path}/nope.db"), EXIT_UNREACHABLE, "nope.db")


def test_wrong_models_path(project, tmp_path):
    result = dbrunbook("update", "--models", "demo_app.nothing:metadata", "--out", str(tmp_path), cwd=project)
    assert_one_line_error(result, EXIT_USAGE, "demo_app.nothing")


def test_missing_alembic_directory(project, tmp_path):
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = %(here)s/gone\n")
    result = dbrunbook("update", "--alembic-config", str(ini), "--out", str(tmp_path / "runs"), cwd=project)
    assert_one_line_error(result, EXIT_USAGE, "gone")


def test_unknown_run_id(tmp_path):
    assert_one_line_error(dbrunbook("show", "no-such-run", "--runs-dir", str(tmp_path)), EXIT_USAGE, "no-such-run")
    assert_one_line_error(dbrunbook("verify", "no-such-run", "--runs-dir", str(tmp_path)), EXIT_USAGE)


def test_unknown_stage_and_bad_param(project):
    assert_one_line_error(dbrunbook("update", "--stages", "99-nothing", cwd=project), EXIT_USAGE, "99-nothing")
    assert_one_line_error(dbrunbook("update", "-p", "oops", cwd=project), EXIT_USAGE, "NAME=VALUE")
    assert_one_line_error(dbrunbook("update", "-p", "nope=1", cwd=project), EXIT_USAGE, "nope")


def test_update_from_pyproject_then_runs_show_verify_export(project):
    result = dbrunbook("update", "--dry-run", "--stages", "01,03", cwd=project)
    assert result.returncode == EXIT_BLOCKED, result.stderr
    assert "users.legacy_notes" in result.stdout and "verdict: BLOCK" in result.stdout
    runs = project / "runs"
    listing = dbrunbook("runs", "--runs-dir", str(runs))
    run_id = listing.stdout.split()[0]
    assert "BLOCK" in listing.stdout
    shown = dbrunbook("show", run_id[-6:], "--runs-dir", str(runs))
    assert shown.returncode == 0 and "03-migration" in shown.stdout and "04-dev-rehearsal" not in shown.stdout
    verified = dbrunbook("verify", run_id, "--runs-dir", str(runs))
    assert verified.returncode == 0 and verified.stdout.startswith("OK")
    exported = dbrunbook("export", run_id, "--runs-dir", str(runs), "--out", str(project / "html"))
    assert exported.returncode == 0
    page = (project / "html" / "03-migration.html").read_text()
    assert "uq_users_email" in page and "open_stage" not in page  # outputs shown, inputs hidden
    assert run_id in (project / "html" / "index.html").read_text()
    beside = dbrunbook("export", "latest", "--runs-dir", str(runs))  # next to the run, in the runs folder
    assert beside.returncode == 0 and (runs / f"{run_id}-html" / "index.html").exists()
    assert dbrunbook("show", "latest", "--runs-dir", str(runs)).stdout.startswith(f"run {run_id}")
    # dry run: the generated revision stayed in the run folder
    assert [p.name for p in (project / "migrations" / "versions").glob("*.py")] == ["0001_initial.py"]


def test_verify_detects_tampering(project):
    result = dbrunbook("update", "--dry-run", "--stages", "01", "--out", str(project / "runs-t"), cwd=project)
    run_dir = next((project / "runs-t").iterdir())
    sidecar = run_dir / "01-schema-analysis.result.json"
    sidecar.write_text(sidecar.read_text().replace('"block"', '"pass"'))
    assert_one_line_error(dbrunbook("verify", str(run_dir)), EXIT_VERIFY, "01-schema-analysis.result.json was changed")
    (run_dir / "extra.txt").write_text("x")
    assert "extra.txt was added" in dbrunbook("verify", str(run_dir)).stderr


def test_without_dry_run_the_revision_is_written_to_the_project(tmp_path):
    project = write_demo(tmp_path / "shop", users=400).path
    result = dbrunbook("update", "--stages", "03", cwd=project)
    assert result.returncode == EXIT_BLOCKED, result.stdout + result.stderr  # lint blocks the drop
    assert len(list((project / "migrations" / "versions").glob("*.py"))) == 2


def _broken_runbooks(tmp_path: Path) -> Path:
    folder = tmp_path / "books"
    folder.mkdir()
    first = next(t for t in templates() if t.stem == "01-schema-analysis")
    shutil.copy(first, folder)
    book = nbformat.read(first, as_version=4)
    book.cells.insert(3, new_code_cell('raise RuntimeError("stage went wrong on purpose")'))
    nbformat.write(book, folder / "02-broken.ipynb")
    shutil.copy(next(t for t in templates() if t.stem == "02-design-validation"), folder)
    return folder


def test_a_stage_that_raises_leaves_its_notebook_and_stops_the_run(project, tmp_path):
    books = _broken_runbooks(tmp_path)
    result = dbrunbook("update", "--dry-run", "--runbooks", str(books), "--out", str(tmp_path / "runs"), cwd=project)
    assert result.returncode == EXIT_STAGE_ERROR
    assert "Traceback" not in result.stderr and "02-broken" in result.stderr
    run_dir = next((tmp_path / "runs").iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    status = {s["name"]: s for s in manifest["stages"]}
    assert status["02-broken"]["status"] == "error"
    assert status["02-broken"]["error"]["ename"] == "RuntimeError"
    assert status["02-design-validation"]["status"] == "skipped"
    executed = nbformat.read(run_dir / "02-broken.ipynb", as_version=4)
    assert any(o.get("output_type") == "error" for c in executed.cells for o in c.get("outputs", []))
    assert "papermill-error-cell-tag" in json.dumps(executed.dict())
    keep_going = dbrunbook("update", "--dry-run", "--keep-going", "--runbooks", str(books),
                           "--out", str(tmp_path / "runs2"), cwd=project)
    manifest = json.loads((next((tmp_path / "runs2").iterdir()) / "manifest.json").read_text())
    assert keep_going.returncode == EXIT_STAGE_ERROR
    assert [s["status"] for s in manifest["stages"]] == ["block", "error", "pass"]


def test_a_migration_that_raises_is_recorded_with_its_error(tmp_path):
    project = write_demo(tmp_path / "shop", users=400).path
    (project / "migrations" / "versions" / "0002_boom.py").write_text(
        'revision = "0002"\ndown_revision = "0001"\nbranch_labels = None\ndepends_on = None\n\n'
        'def upgrade():\n    raise RuntimeError("the migration raised on purpose")\n\n'
        'def downgrade():\n    pass\n')
    result = dbrunbook("update", "--dry-run", "--stages", "03,04", "--models", "", cwd=project)
    assert result.returncode == EXIT_BLOCKED, result.stdout + result.stderr
    assert "the migration raised on purpose" in result.stdout


@pytest.mark.postgres
def test_password_never_reaches_the_run_folder(tmp_path):
    secret = "S3cret-Pw-7731"
    url = new_database("postgresql", tmp_path)
    with_password = url.replace("postgres@", f"postgres:{secret}@", 1)
    assert secret in with_password
    project = write_demo(tmp_path / "shop", db=with_password, users=400).path
    pyproject = (project / "pyproject.toml").read_text()
    assert secret not in pyproject and 'db = "postgresql+psycopg://postgres:***@' in pyproject
    try:
        result = dbrunbook("update", "--dry-run", "--db", with_password, "--out", str(tmp_path / "runs"),
                           cwd=project)
        assert result.returncode == EXIT_BLOCKED, result.stderr
        assert secret not in result.stdout + result.stderr
        run_dir = next((tmp_path / "runs").iterdir())
        files = [p for p in run_dir.rglob("*") if p.is_file()]
        assert len(files) > 5
        for path in files:
            assert secret.encode() not in path.read_bytes(), path
        assert "postgres:***@" in json.loads((run_dir / "manifest.json").read_text())["target"]
        dbrunbook("export", str(run_dir), "--out", str(tmp_path / "html"))
        for page in (tmp_path / "html").iterdir():
            assert secret not in page.read_text()
    finally:
        from dbrunbook.db import drop_database
        drop_database(with_password)


@pytest.mark.postgres
def test_a_stage_that_leaks_the_secret_fails_the_run(tmp_path):
    secret = "Leaky-Pw-5512"
    url = new_database("postgresql", tmp_path).replace("postgres@", f"postgres:{secret}@", 1)
    books = tmp_path / "books"
    books.mkdir()
    book = new_notebook(cells=[new_code_cell('db = "demo"\nrun_dir = ""', metadata={"tags": ["parameters"]}),
                               new_code_cell("import os\nprint(os.environ['DBRUNBOOK_PASSWORD'])")])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, books / "01-leak.ipynb")
    try:
        result = dbrunbook("update", "--db", url, "--runbooks", str(books), "--out", str(tmp_path / "runs"))
        assert_one_line_error(result, EXIT_VERIFY, "a secret value appears in 01-leak.ipynb (redacted)")
        run_dir = next((tmp_path / "runs").iterdir())
        assert secret not in (run_dir / "01-leak.ipynb").read_text()
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["secret_scan"] == {"clean": False, "files": [str(run_dir / "01-leak.ipynb")]}
    finally:
        from dbrunbook.db import drop_database
        drop_database(url)


def test_a_demo_built_on_a_server_names_that_server_in_its_project(tmp_path):
    url = new_database("postgresql", tmp_path)
    try:
        project = write_demo(tmp_path / "shop", db=url, users=400).path
        from dbrunbook.config import load_target
        assert load_target(project).db == url
    finally:
        from dbrunbook.db import drop_database
        drop_database(url)


def test_project_settings_choose_the_runs_folder_the_stages_and_their_parameters(tmp_path):
    project = write_demo(tmp_path / "shop", users=400).path
    pyproject = project / "pyproject.toml"
    base = pyproject.read_text()
    pyproject.write_text(base + 'runs_dir = "audit/runs"\nstages = ["02"]\n\n[tool.dbrunbook.parameters]\n'
                                'skip_rules = "DV001,DV002,DV003,DV004,DV005,DV006,DV007,DV008,DV009,DV010"\n')
    result = dbrunbook("update", "--dry-run", "--project", str(project), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [run_dir] = list((project / "audit" / "runs").iterdir())
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["02-design-validation"]
    assert manifest["parameters"]["02-design-validation"]["skip_rules"].count("DV") == 10
    # the command line wins over the project
    override = dbrunbook("update", "--dry-run", "--project", str(project), "--stages", "01,02",
                         "-p", "skip_rules=", "--out", str(tmp_path / "elsewhere"), cwd=tmp_path)
    assert override.returncode == EXIT_BLOCKED, override.stdout + override.stderr
    [other] = list((tmp_path / "elsewhere").iterdir())
    assert json.loads((other / "manifest.json").read_text())["parameters"]["02-design-validation"]["skip_rules"] == ""
    pyproject.write_text(base + 'stages = 3\n')
    assert_one_line_error(dbrunbook("update", "--project", str(project), cwd=tmp_path), EXIT_USAGE,
                          "stages in [tool.dbrunbook] must be a list")
    pyproject.write_text(base + '\n[tool.dbrunbook.parameters]\nskip_rule = "DV001"\n')  # a typo: no stage has it
    assert_one_line_error(dbrunbook("update", "--project", str(project), cwd=tmp_path), EXIT_USAGE,
                          "skip_rule")


def test_after_a_stage_raised_stage_10_names_it_and_update_does_not_suggest_apply(project, tmp_path):
    books = tmp_path / "plan-books"
    books.mkdir()
    shutil.copy(_broken_runbooks(tmp_path) / "02-broken.ipynb", books)
    shutil.copy(next(t for t in templates() if t.stem == "10-production-plan"), books)
    result = dbrunbook("update", "--dry-run", "--keep-going", "--runbooks", str(books), "--out", str(tmp_path / "runs"),
                       cwd=project)
    assert result.returncode == EXIT_STAGE_ERROR, result.stdout + result.stderr
    out = " ".join(result.stdout.split())
    assert ("PP002 [design-valid]: not ticked: stage 02-broken raised RuntimeError: stage went wrong on purpose "
            "(see 02-broken.ipynb)") in out
    assert "verdict: ERROR" in out and "next:" not in out and "dbrunbook apply" not in out


def test_an_optional_stage_runs_when_its_option_is_given_even_with_stages():
    from dbrunbook.runbook import RunOptions
    from dbrunbook.runbook.engine import _select

    asked = _select(templates(None, RunOptions(rollback_plan=True)), ["03", "10"])
    assert [t.stem for t in asked] == ["03-migration", "rollback-plan", "10-production-plan"]
    assert [t.stem for t in _select(templates(None, RunOptions()), ["03", "10"])] == ["03-migration",
                                                                                        "10-production-plan"]
