"""The CLI as a user meets it: one clear line and a documented exit code, never a traceback."""
from __future__ import annotations

import io
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
from helpers.databases import new_database
from helpers.demo import copy_demo
from helpers.runs import assert_one_line_error, dbrunbook


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, demo_template) -> Path:
    """The demo on SQLite, shared by the module's tests: each writes only its own runs."""
    return copy_demo(demo_template("sqlite"), "sqlite", tmp_path_factory.mktemp("cli") / "shop").path


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
    dbrunbook("update", "--dry-run", "--stages", "01", "--out", str(project / "runs-t"), cwd=project)
    run_dir = next((project / "runs-t").iterdir())
    sidecar = run_dir / "01-schema-analysis.result.json"
    sidecar.write_text(sidecar.read_text().replace('"block"', '"pass"'))
    assert_one_line_error(dbrunbook("verify", str(run_dir)), EXIT_VERIFY, "01-schema-analysis.result.json was changed")
    (run_dir / "extra.txt").write_text("x")
    assert "extra.txt was added" in dbrunbook("verify", str(run_dir)).stderr


def test_without_dry_run_the_revision_is_written_to_the_project(sqlite_demo, tmp_path):
    project = sqlite_demo.path
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


def test_a_migration_that_raises_is_recorded_with_its_error(sqlite_demo, tmp_path):
    project = sqlite_demo.path
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
        from dbrunbook.core.db import drop_database
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
        from dbrunbook.core.db import drop_database
        drop_database(url)


def test_a_demo_built_on_a_server_names_that_server_in_its_project(tmp_path):
    url = new_database("postgresql", tmp_path)
    try:
        project = write_demo(tmp_path / "shop", db=url, users=400).path
        from dbrunbook.core.config import load_target
        assert load_target(project).db == url
    finally:
        from dbrunbook.core.db import drop_database
        drop_database(url)


def test_project_settings_choose_the_runs_folder_the_stages_and_their_parameters(sqlite_demo, tmp_path):
    project = sqlite_demo.path
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


# --- the experience of a run: progress, --quiet, exit codes for CI, JSON documents ---------------------------

def _tiny_runbooks(tmp_path: Path, first_sleep: float = 1.0) -> Path:
    """Two stages that record a result at once (the first after ``first_sleep``): a run of a few seconds."""
    folder = tmp_path / "tiny-books"
    folder.mkdir()
    for name, verdict, summary, pause in (("01-first", "pass", "first looked", first_sleep),
                                          ("02-second", "warn", "second has doubts", 0.0)):
        book = new_notebook(cells=[
            new_code_cell('db = "demo"\nrun_dir = ""', metadata={"tags": ["parameters"]}),
            new_code_cell(f"import time\ntime.sleep({pause})\nfrom dbrunbook import StageResult, record\n"
                          f"record(StageResult(stage={name!r}, verdict={verdict!r}, summary={summary!r}), run_dir)"),
        ])
        book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(book, folder / f"{name}.ipynb")
    return folder


def test_update_prints_the_run_folder_first_then_each_stage_as_it_starts_and_finishes(project, tmp_path):
    books = _tiny_runbooks(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("DBRUNBOOK_DB", "NO_COLOR")}
    proc = subprocess.Popen([sys.executable, "-m", "dbrunbook", "update", "--runbooks", str(books),
                             "--out", str(tmp_path / "runs")], cwd=project, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = proc.stdout.readline()  # a pipe, not a terminal: plain lines, each flushed when it happens
        assert first.startswith("run folder: "), first
        run_dir = Path(first.removeprefix("run folder: ").strip())
        assert not (run_dir / "01-first.result.json").exists()  # printed before stage 01 ran
        rest = proc.stdout.read()  # from the same buffered reader (communicate() would skip what it holds)
        err = proc.stderr.read()
        proc.wait(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = rest.splitlines()
    progress, report = lines[:lines.index("")], lines[lines.index("") + 1:]
    assert [line.split()[:3] for line in progress] == [
        ["[1/2]", "01-first", "started"], ["[1/2]", "01-first", "PASS"],
        ["[2/2]", "02-second", "started"], ["[2/2]", "02-second", "WARN"]]
    assert progress[1].endswith("s  first looked") and progress[3].endswith("s  second has doubts")
    seconds = float(progress[1].split()[3].rstrip("s"))
    assert seconds >= 1.0  # the stage's own time (it sleeps a second)
    assert report[0].startswith(f"run {run_dir.name}") and report[-1] == "verdict: WARN"
    assert err == ""


def test_quiet_prints_only_the_final_report(project, tmp_path):
    from click.testing import CliRunner

    from dbrunbook.cli import main

    books = _tiny_runbooks(tmp_path, first_sleep=0.0)
    result = CliRunner().invoke(main, ["update", "--quiet", "--runbooks", str(books), "--out", str(tmp_path / "q"),
                                       "--project", str(project)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("run ") and "run folder:" not in result.stdout
    assert "started" not in result.stdout and result.stdout.rstrip().endswith("verdict: WARN")


def test_json_documents_of_update_show_runs_and_verify(project, tmp_path):
    from click.testing import CliRunner

    from dbrunbook.cli import main

    books = _tiny_runbooks(tmp_path, first_sleep=0.0)
    runs = tmp_path / "j"
    updated = CliRunner().invoke(main, ["update", "--format", "json", "--runbooks", str(books), "--out", str(runs),
                                        "--project", str(project)])
    assert updated.exit_code == 0, updated.output
    document = json.loads(updated.stdout)  # the progress went to stderr: stdout is the document alone
    assert updated.stderr.startswith("run folder: ")
    assert document["schema"] == "dbrunbook.run/1" and document["verdict"] == "warn"
    assert [(s["name"], s["status"], s["summary"]) for s in document["stages"]] == [
        ("01-first", "pass", "first looked"), ("02-second", "warn", "second has doubts")]
    assert document["stages"][0]["result"] == "01-first.result.json" and document["next"] is None
    run_id = document["run_id"]
    shown = json.loads(CliRunner().invoke(main, ["show", "latest", "--runs-dir", str(runs), "--format", "json"]).stdout)
    assert shown == document
    listed = json.loads(CliRunner().invoke(main, ["runs", "--runs-dir", str(runs), "--format", "json"]).stdout)
    assert listed["schema"] == "dbrunbook.runs/1"
    assert [(r["run_id"], r["verdict"], r["last_stage"]) for r in listed["runs"]] == [(run_id, "warn", "02-second")]
    verified = CliRunner().invoke(main, ["verify", run_id, "--runs-dir", str(runs), "--format", "json"])
    assert verified.exit_code == 0
    assert json.loads(verified.stdout) == {"schema": "dbrunbook.verify/1", "path": document["path"], "run_id": run_id,
                                           "ok": True, "files": 4, "problems": [], "signatures": []}
    (Path(document["path"]) / "extra.txt").write_text("x")
    tampered = CliRunner().invoke(main, ["verify", run_id, "--runs-dir", str(runs), "--format", "json"])
    assert tampered.exit_code == EXIT_VERIFY and tampered.stderr.startswith("error: ")
    assert json.loads(tampered.stdout)["problems"] == ["extra.txt was added"]


def test_rehearse_as_json(project):
    from click.testing import CliRunner

    from dbrunbook.cli import main

    result = CliRunner().invoke(main, ["rehearse", "--project", str(project), "--format", "json", "--no-probes"])
    assert result.exit_code == EXIT_BLOCKED, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == "dbrunbook.rehearsal/1" and document["from"] == "0001" and document["rehearsed"]
    assert document["ok"] is False and "NOT NULL constraint failed" in document["error"]
    assert document["verdict"] == "block" and [f["code"] for f in document["findings"]] == ["RH001"]


def test_apply_as_json(project, tmp_path):
    # A stand-in plan run (a stage 10 that records no plan): apply's guards refuse it, on the record.
    from click.testing import CliRunner

    from dbrunbook.cli import main

    books = tmp_path / "plan"
    books.mkdir()
    book = nbformat.read(_tiny_runbooks(tmp_path, first_sleep=0.0) / "01-first.ipynb", as_version=4)
    book.cells[1].source = book.cells[1].source.replace("01-first", "10-production-plan")
    nbformat.write(book, books / "10-production-plan.ipynb")
    planned = CliRunner().invoke(main, ["update", "-q", "--runbooks", str(books), "--out", str(tmp_path / "runs"),
                                        "--project", str(project)])
    assert planned.exit_code == 0, planned.output
    result = CliRunner().invoke(main, ["apply", "latest", "--dry-run", "--format", "json", "--project", str(project),
                                       "--runs-dir", str(tmp_path / "runs")])
    document = json.loads(result.stdout)
    assert document["schema"] == "dbrunbook.run/1", result.output
    assert [s["name"] for s in document["stages"]] == ["11-guarded-apply", "12-post-migration"]
    assert result.exit_code == EXIT_BLOCKED and result.stderr.startswith("run folder: ")  # progress on stderr
    assert document["stages"][0]["status"] == "block" and "plan-ready" in document["stages"][0]["summary"]
    assert document["verdict"] == "block" and document["next"] is None


def test_an_internal_error_exits_70_not_1(monkeypatch, tmp_path):
    from click.testing import CliRunner

    import dbrunbook.runbook
    from dbrunbook.cli import main
    from dbrunbook.errors import EXIT_CODES, EXIT_INTERNAL

    def broken(runs_dir):
        raise RuntimeError("a bug on purpose\nsecond line")

    monkeypatch.delenv("DBRUNBOOK_DEBUG", raising=False)
    monkeypatch.setattr(dbrunbook.runbook, "list_runs", broken)
    result = CliRunner().invoke(main, ["runs", "--runs-dir", str(tmp_path)])
    assert result.exit_code == EXIT_INTERNAL == 70 and EXIT_INTERNAL in EXIT_CODES
    assert result.stderr.splitlines() == [
        "error: unexpected RuntimeError: a bug on purpose (a bug in dbrunbook; set DBRUNBOOK_DEBUG=1 to see "
        "the traceback)"]


def test_a_connection_error_that_reaches_the_cli_is_exit_5(monkeypatch, tmp_path):
    from click.testing import CliRunner
    from sqlalchemy.exc import OperationalError

    import dbrunbook.runbook
    from dbrunbook.cli import main

    def refused(runs_dir):
        raise OperationalError(None, None, Exception("connection refused\ndetails"))

    monkeypatch.setattr(dbrunbook.runbook, "list_runs", refused)
    result = CliRunner().invoke(main, ["runs", "--runs-dir", str(tmp_path)])
    assert result.exit_code == EXIT_UNREACHABLE
    assert result.stderr.splitlines() == ["error: cannot connect to the database: connection refused"]


CLOSED_PORT = "postgresql+psycopg://postgres@127.0.0.1:1/x"


@pytest.mark.parametrize("args", [
    ["lint", "--db", CLOSED_PORT],
    ["lint", "0001", "--db", CLOSED_PORT],
    ["update", "--db", CLOSED_PORT],
    ["rehearse", "--db", CLOSED_PORT],
    ["checks", "--db", CLOSED_PORT, "--models", "demo_app.models:metadata"],
    ["profile", "--db", CLOSED_PORT, "users"],
    ["diff", CLOSED_PORT, "demo_app.models:metadata"],
], ids=["lint", "lint-revision", "update", "rehearse", "checks", "profile", "diff"])
def test_an_unreachable_server_is_exit_5_on_every_command_that_connects(project, monkeypatch, args):
    from click.testing import CliRunner

    from dbrunbook.cli import main

    monkeypatch.chdir(project)  # the project's own settings would name its SQLite database
    result = CliRunner().invoke(main, args)
    assert result.exit_code == EXIT_UNREACHABLE, result.output
    assert result.stderr.startswith("error: cannot connect to ") and "Traceback" not in result.output


def test_a_postgres_url_is_read_as_postgresql(project):
    from click.testing import CliRunner

    from dbrunbook.cli import main
    from dbrunbook.core.secrets import mask_url, parse_url
    from dbrunbook.errors import DbrunbookNote

    with pytest.warns(DbrunbookNote):
        assert parse_url("postgres://app:pw@db/shop").drivername == "postgresql"
        assert mask_url("postgres+psycopg://app:pw@db/shop") == "postgresql+psycopg://app:***@db/shop"
    result = CliRunner().invoke(main, ["lint", "--db", "postgres://bob:hunter22@127.0.0.1:1/x",
                                       "--project", str(project)])
    assert result.exit_code == EXIT_UNREACHABLE, result.output  # not "no SQLAlchemy dialect" (exit 2)
    assert result.stderr.splitlines() == [
        "note: a postgres:// URL is read as postgresql:// (SQLAlchemy's name for the dialect)",
        result.stderr.splitlines()[1]]
    assert result.stderr.splitlines()[1].startswith("error: cannot connect to postgresql://bob:***@127.0.0.1:1/x")
    assert "hunter22" not in result.output


@pytest.mark.postgres
def test_a_postgres_url_reaches_the_server(tmp_path):
    url = new_database("postgresql", tmp_path)
    try:
        heroku = url.replace("postgresql+psycopg://", "postgres://", 1)
        result = dbrunbook("profile", "--db", heroku, "nothing_here")
        assert result.returncode == 0, result.stderr
        assert "note: a postgres:// URL is read as postgresql://" in result.stderr
    finally:
        from dbrunbook.core.db import drop_database
        drop_database(url)


def test_alembic_logging_stays_off_stderr(tmp_path):
    # `alembic init`'s env.py calls fileConfig, which logs "Running upgrade ..." at INFO on stderr.
    import sqlite3

    from alembic import command
    from alembic.config import Config

    (tmp_path / "app.db").touch()
    sqlite3.connect(tmp_path / "app.db").execute("CREATE TABLE users (id INTEGER PRIMARY KEY)").connection.commit()
    config = Config(str(tmp_path / "alembic.ini"))
    command.init(config, str(tmp_path / "migrations"))
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text().replace("driver://user:pass@localhost/dbname", "sqlite:///app.db"))
    (tmp_path / "migrations" / "versions" / "0001_nick.py").write_text(
        'from alembic import op\nimport sqlalchemy as sa\nrevision = "0001"\ndown_revision = None\n'
        'branch_labels = None\ndepends_on = None\n\ndef upgrade():\n'
        '    op.add_column("users", sa.Column("nick", sa.Text()))\n\ndef downgrade():\n'
        '    op.drop_column("users", "nick")\n')
    linted = dbrunbook("lint", "--alembic-config", "alembic.ini", cwd=tmp_path)
    assert linted.returncode == 0, linted.stderr
    assert "INFO" not in linted.stderr and "Running upgrade" not in linted.stderr, linted.stderr
    rehearsed = dbrunbook("rehearse", "--alembic-config", "alembic.ini", cwd=tmp_path)
    assert rehearsed.returncode == 0, rehearsed.stdout + rehearsed.stderr
    assert "0001: ok" in rehearsed.stdout and "INFO" not in rehearsed.stderr + rehearsed.stdout


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_helper_on_a_terminal_and_with_no_color(monkeypatch, tmp_path):
    from dbrunbook.runbook import StageRecord
    from dbrunbook.runbook.progress import StageEvent, StageReporter, note, step

    start = StageEvent("start", "r1", tmp_path / "r1", 1, 2, "01-first")
    done = start.finished(StageRecord("01-first", "block", seconds=2.5, summary="it blocks"))
    skipped = StageEvent("start", "r1", tmp_path / "r1", 2, 2, "02-second").finished(
        StageRecord("02-second", "skipped"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    screen = _Terminal()
    with StageReporter(screen) as live:  # a terminal: a spinner, the finished stages printed above it
        assert live.live
        for event in (start, done, skipped):
            live(event)
    assert f"run folder: {tmp_path / 'r1'}" in screen.getvalue() and "\x1b[" in screen.getvalue()
    assert "BLOCK" in screen.getvalue() and "it blocks" in screen.getvalue()
    assert "not run: an earlier stage raised" in screen.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    with StageReporter(plain) as reporter:
        for event in (start, done, skipped):
            reporter(event)
    assert plain.getvalue().splitlines() == [
        f"run folder: {tmp_path / 'r1'}", "[1/2] 01-first               started",
        "[1/2] 01-first               BLOCK      2.5s  it blocks",
        "[2/2] 02-second              SKIPPED    0.0s  not run: an earlier stage raised", ""]
    lines = io.StringIO()
    with step("copy users", stream=lines):
        note("copy users", "half way", stream=lines)
    assert [line.split(" ", 1)[1] for line in lines.getvalue().splitlines()] == [  # after HH:MM:SS
        "copy users: started", "copy users: half way", "copy users: done in 0.0s"]
