"""Third-party Alembic histories as they ship, brought to an old revision, filled, and handed to dbrunbook.

:func:`prepare` runs the project's own migrations (Alembic's API, test set-up on a throwaway database)
up to a start revision, fills every table with generated rows (:mod:`._rows`) and writes a project
folder whose ``alembic.ini`` points at the package's migrations. :func:`check_update` runs the real
``dbrunbook update`` CLI on it, with ``DATABASE_URL`` naming the target as a careless env.py would read
it, and collects every way the run went wrong: stages that raised (with the library frames of their
tracebacks), any change to the target, a scratch database left behind, files written into the package.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from dbrunbook.core.db import drop_database
from dbrunbook.errors import EXIT_BLOCKED, EXIT_CODES, EXIT_PASS, EXIT_STAGE_ERROR
from helpers.databases import new_database

from ._rows import Filled, fill
from ._state import left_behind, scratch_databases, state_diff, target_state

__all__ = ["PROJECTS", "Project", "Outcome", "check_update", "prepare", "run_update", "scratch_databases",
           "target_state", "write_project"]

ROOT = Path(__file__).resolve().parents[2]
#: The installed console script beside this interpreter (.venv/bin/dbrunbook), else the module.
_SCRIPT = Path(sys.executable).parent / "dbrunbook"
DBRUNBOOK = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "dbrunbook"]
#: A run that takes longer has hung.
TIMEOUT = 1800


def _mlflow_base(engine: sa.Engine) -> None:
    # MLflow's first revision alters tables it never creates: MLflow creates them from its
    # initial models and then upgrades (mlflow.store.db.utils._initialize_tables); so do we.
    from mlflow.store.tracking.dbmodels.initial_models import Base

    Base.metadata.create_all(engine)


def _dagster_base(engine: sa.Engine) -> None:
    # Dagster's first revision returns unless a pre-2019 ``event_log`` table exists, and no revision
    # creates the core tables: each storage (runs, event log, schedules; dagster-postgres and dagster-mysql
    # keep all three in one database and one alembic_version) creates them from its current models and
    # stamps head (SqlRunStorage._init_db and its twins). An older database is reached from there with
    # Dagster's own downgrades (dagster._core.storage.sql.run_alembic_downgrade).
    from dagster._core.storage.event_log.schema import SqlEventLogStorageMetadata
    from dagster._core.storage.runs.schema import RunStorageSqlMetadata
    from dagster._core.storage.schedules.schema import ScheduleStorageSqlMetadata

    for metadata in (RunStorageSqlMetadata, SqlEventLogStorageMetadata, ScheduleStorageSqlMetadata):
        metadata.create_all(engine)


def _jupyterhub_base(engine: sa.Engine) -> None:
    # JupyterHub creates a new database from its current models and stamps head (jupyterhub.app's
    # init_db); its base revision only alters tables. An older database is reached with its own downgrades.
    from jupyterhub import orm

    orm.Base.metadata.create_all(engine)


def _buildbot_base(engine: sa.Engine) -> None:
    # Buildbot creates a new database from its current models and stamps head (buildbot.db.model's
    # Model.upgrade). Its own downgrade of 067 fails as shipped (it drops a table before the tables that refer to
    # it, and then that table's index): 062's schema is the head's less what 063-067 add, undone in order here.
    from alembic.migration import MigrationContext
    from alembic.operations import Operations
    from buildbot.db.model import Model

    Model.metadata.create_all(engine)
    with engine.begin() as conn:
        op = Operations(MigrationContext.configure(conn))
        for table in ("codebase_branches", "codebase_commits", "codebases"):
            op.drop_table(table)
        if conn.dialect.name != "sqlite":  # SQLite's batch mode rebuilds the table without it
            op.drop_constraint("rebuilt_buildid", "buildsets", type_="foreignkey")
        for table, column in (("buildsets", "rebuilt_buildid"), ("builds", "locks_duration_s"),
                              ("workers", "pause_reason"), ("steps", "locks_acquired_at")):
            with op.batch_alter_table(table) as batch:
                batch.drop_column(column)


@dataclass(frozen=True)
class Corpus:
    """A project whose Alembic history ships inside its package."""

    package: str
    migrations: str  # folder of the Alembic environment, inside the package
    base: Callable[[sa.Engine], None] | None = None  # what the first revision expects to exist
    #: The base is the schema at the start revision: it is stamped there, no migration runs.
    stamped: bool = False
    #: The base is the schema at head, stamped (how the project makes a new database); the start revision
    #: is then reached with the project's own downgrades.
    from_head: bool = False
    #: env.py runs only on the connection handed to it in ``config.attributes["connection"]`` (it raises
    #: otherwise); the project's own code opens it with these engine options.
    connection: dict[str, Any] | None = None
    #: The driver the project's users name in their URLs, per dialect, where it is not the test servers'.
    drivers: dict[str, str] = field(default_factory=dict)


PROJECTS = {
    "mlflow": Corpus("mlflow", "store/db_migrations", _mlflow_base),
    "optuna": Corpus("optuna", "storages/_rdb/alembic"),
    # dagster-postgres and dagster-mysql migrate on AUTOCOMMIT engines (their CREATE/DROP INDEX CONCURRENTLY
    # need it); dagster-mysql's URLs are mysql+..., and the revisions' mysql_length= options apply only
    # under that dialect name (a mariadb+ URL ignores them and MariaDB refuses the index keys as too long).
    "dagster": Corpus("dagster", "_core/storage/alembic", _dagster_base, from_head=True,
                      connection={"isolation_level": "AUTOCOMMIT"}, drivers={"mariadb": "mysql+pymysql"}),
    "jupyterhub": Corpus("jupyterhub", "alembic", _jupyterhub_base, from_head=True),
    "buildbot": Corpus("buildbot", "db/migrations", _buildbot_base, stamped=True,
                       drivers={"mariadb": "mysql+pymysql"}),
}


class _LastRevision(logging.Handler):
    """Remembers Alembic's last "Running upgrade A -> B" (or downgrade) line."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(("Running upgrade", "Running downgrade")):
            self.last = message.removeprefix("Running ").split(",")[0]


@dataclass
class Project:
    """A prepared project: its target database at ``start``, and the folder dbrunbook runs in."""

    name: str
    dialect: str
    url: str
    folder: Path
    ini: Path
    migrations: Path
    start: str
    head: str
    filled: Filled
    seconds: float


@dataclass
class Outcome:
    """What one ``dbrunbook update`` run did, and every problem found with it."""

    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    run_dir: Path | None
    manifest: dict[str, Any]
    problems: list[str] = field(default_factory=list)


def require_package(project: str) -> None:
    """Skip, with the reason, when the project's package is not installed."""
    package = PROJECTS[project].package
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not importable; install the test extra: pip install -e '.[test]'")


def migrations_folder(project: str) -> Path:
    """The package's Alembic environment folder (the one holding env.py and versions/)."""
    corpus = PROJECTS[project]
    spec = importlib.util.find_spec(corpus.package)
    assert spec is not None and spec.submodule_search_locations, f"{corpus.package} is not installed"
    return Path(list(spec.submodule_search_locations)[0]) / corpus.migrations


_INI = """\
[alembic]
script_location = {script_location}
sqlalchemy.url = {url}

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""


def write_project(project: str, url: str, folder: Path) -> Path:
    """Write ``folder/alembic.ini`` naming the package's migrations and, as real projects do, the database."""
    folder.mkdir(parents=True, exist_ok=True)
    ini = folder / "alembic.ini"
    ini.write_text(_INI.format(script_location=migrations_folder(project), url=url.replace("%", "%%")))
    return ini


def prepare(project: str, dialect: str, url: str, start_revision: str, folder: Path, rows: int = 200) -> Project:
    """Bring the empty database at ``url`` to ``start_revision`` with the project's own migrations, then fill it."""
    started = time.perf_counter()
    ini = write_project(project, url, folder)
    config = Config(str(ini))
    corpus = PROJECTS[project]
    if corpus.base is not None:
        engine = sa.create_engine(url, **(corpus.connection or {}))
        try:
            corpus.base(engine)
        finally:
            engine.dispose()
    script = ScriptDirectory.from_config(config)
    # One upgrade (or downgrade from head), as the project's users ran it (one transaction where DDL is
    # transactional); Alembic's log names the revision that failed, and a history that does not run here is
    # skipped, not failed.
    watch = _LastRevision()
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.addHandler(watch)
    logger.setLevel(logging.INFO)
    try:
        if corpus.stamped:
            _alembic(corpus, url, command.stamp, config, start_revision)
        else:
            if corpus.from_head:
                _alembic(corpus, url, command.stamp, config, "head")
            _alembic(corpus, url, command.downgrade if corpus.from_head else command.upgrade, config,
                     start_revision)
    except Exception as exc:  # the project's own migration, not dbrunbook: any failure means "not here"
        reason = str(getattr(exc, "orig", exc)).splitlines()[0]
        pytest.skip(f"{project}'s own migrations fail on {dialect} on the way to {start_revision} "
                    f"({watch.last or 'before the first revision'}): {type(exc).__name__}: {reason}")
    finally:
        logger.removeHandler(watch)
        logger.setLevel(level)
    filled = fill(url, rows=rows)
    head = script.get_current_head()
    assert head, f"{project} has no single head"
    return Project(project, dialect, url, folder, ini, migrations_folder(project), start_revision, head, filled,
                   round(time.perf_counter() - started, 1))


def _alembic(corpus: Corpus, url: str, step: Callable[[Config, str], None], config: Config, revision: str) -> None:
    """One Alembic command, on a connection of the project's own kind where its env.py wants one handed in."""
    if corpus.connection is None:
        step(config, revision)
        return
    engine = sa.create_engine(url, **corpus.connection)
    try:
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            step(config, revision)
            conn.commit()
    finally:
        config.attributes.pop("connection", None)
        engine.dispose()


def project_url(project: str, dialect: str, url: str) -> str:
    """``url`` with the driver the project's users name for ``dialect`` (the database is the same)."""
    driver = PROJECTS[project].drivers.get(dialect)
    return sa.make_url(url).set(drivername=driver).render_as_string(hide_password=False) if driver else url


# --- the run ---------------------------------------------------------------------------------------------

def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}


def notebook_errors(notebook: Path) -> list[str]:
    """The error outputs of an executed notebook: exception, message and the dbrunbook frames of the traceback."""
    if not notebook.is_file():
        return [f"{notebook.name}: no executed notebook"]
    found = []
    for cell in json.loads(notebook.read_text()).get("cells", []):
        for output in cell.get("outputs", []):
            if output.get("output_type") != "error":
                continue
            frames = [f for f in map(_frame, output.get("traceback", [])) if f]
            # dbrunbook's own frames route the fix, a revision's frame names the revision, the innermost raised.
            library = [f for f in frames if f.startswith("dbrunbook/") or "/versions/" in f or f is frames[-1]]
            found.append(f"{output.get('ename')}: {str(output.get('evalue'))[:600]}\n"
                         + "\n".join(f"      at {f}" for f in library))
    return found


def _frame(line: str) -> str | None:
    """'path:line in function' from one (ANSI-coloured) IPython traceback entry, if it is a frame."""
    text = _strip_ansi(line)
    for row in text.splitlines():
        row = row.strip()
        if row.startswith("File ") and ".py:" in row:
            where, _, func = row[5:].partition(", in ")
            return f"{where.replace(str(ROOT) + '/', '')} in {func.split('(')[0]}"
    return None


def _strip_ansi(text: str) -> str:
    out, skipping = [], False
    for char in text:
        if char == "\x1b":
            skipping = True
        elif skipping:
            skipping = not char.isalpha()
        else:
            out.append(char)
    return "".join(out)


def run_update(project: Project, out: Path, tmpdir: Path) -> Outcome:
    """Run ``dbrunbook update --dry-run --rollback-plan`` on the project, the target also in DATABASE_URL."""
    env = {**os.environ, "DATABASE_URL": project.url, "TMPDIR": str(tmpdir)}
    args = [*DBRUNBOOK, "update", "--db", project.url, "--alembic-config", str(project.ini),
            "--dry-run", "--rollback-plan", "--keep-going", "--no-progress", "--out", str(out)]
    started = time.perf_counter()
    try:
        done = subprocess.run(args, cwd=project.folder, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout, stderr = -1, str(exc.stdout or ""), f"timed out after {TIMEOUT}s"
    seconds = round(time.perf_counter() - started, 1)
    runs = [p.parent for p in out.glob("*/manifest.json")]
    run_dir = runs[0] if len(runs) == 1 else None
    manifest = json.loads((run_dir / "manifest.json").read_text()) if run_dir else {}
    outcome = Outcome(code, stdout, stderr, seconds, run_dir, manifest)
    if run_dir is None:
        outcome.problems.append(f"no run folder with a manifest (exit {code}): {stderr.strip()[-2000:]}")
    elif code not in (EXIT_PASS, EXIT_BLOCKED, EXIT_STAGE_ERROR):
        # a leaked secret (4) or code that reached for the target (6) is a failure even when every stage ran
        outcome.problems.append(f"exit {code} ({EXIT_CODES.get(code, 'unknown')}): {stderr.strip()[-2000:]}")
    for stage in manifest.get("stages", []):
        # skipped with a notebook ran and gathered nothing (no models, no test command): not a failure
        if stage["status"] == "error" or (stage["status"] == "skipped" and not stage.get("notebook")):
            errors = notebook_errors(run_dir / stage["notebook"]) if run_dir and stage.get("notebook") else []
            outcome.problems.append(f"stage {stage['name']} {stage['status']}: {stage.get('error', {})}\n    "
                                    + "\n    ".join(errors))
    return outcome


def report(project: Project, outcome: Outcome) -> str:
    """Timings per stage and the CLI's own report, for the test log."""
    lines = [f"{project.name} on {project.dialect}: {project.start} -> {project.head}; prepared in "
             f"{project.seconds}s ({sum(project.filled.rows.values())} rows in {len(project.filled.rows)} tables"
             f"{', refused ' + str(project.filled.refused) if project.filled.refused else ''}); "
             f"update took {outcome.seconds}s, exit {outcome.exit_code}"]
    lines += [f"  {s['name']:<22} {s['status']:<8} {s['seconds']:>8.1f}s  {s.get('summary', '')[:160]}"
              for s in outcome.manifest.get("stages", [])]
    lines += [f"  note: {note}" for note in project.filled.notes]
    lines.append(textwrap.indent(outcome.stdout.rstrip(), "  | "))
    if outcome.stderr.strip():
        lines.append(textwrap.indent(outcome.stderr.strip()[-3000:], "  ! "))
    return "\n".join(lines)


def check_update(project: str, dialect: str, start_revision: str, tmp_path: Path) -> Outcome:
    """Prepare ``project`` on ``dialect`` at ``start_revision``, run update on it, and fail on any problem."""
    require_package(project)
    url = project_url(project, dialect, new_database(dialect, tmp_path))
    tmpdir = tmp_path / "tmp"  # the run's own temp folder, so its SQLite scratch files alone are counted
    tmpdir.mkdir()
    try:
        prepared = prepare(project, dialect, url, start_revision, tmp_path / project)
        before = target_state(url)
        beside = Path(url.removeprefix("sqlite:///")).parent if dialect == "sqlite" else None
        scratch = scratch_databases(dialect, beside, tmpdir)
        scripts = _files(prepared.migrations)
        outcome = run_update(prepared, tmp_path / "runs", tmpdir)
        changed = state_diff(before, target_state(url))
        if changed:
            outcome.problems.insert(0, "THE TARGET CHANGED:\n    " + "\n    ".join(changed))
        if _files(prepared.migrations) != scripts:
            outcome.problems.append(f"files in {prepared.migrations} were written")
        leftovers = left_behind(dialect, scratch, beside, tmpdir)
        if leftovers:
            outcome.problems.append(f"scratch databases left behind: {sorted(leftovers)}")
        temp_left = sorted(p.name for p in tmpdir.iterdir())
        print(report(prepared, outcome) + (f"\n  temp folders left: {temp_left}" if temp_left else ""),
              file=sys.stderr)
        assert not outcome.problems, "\n".join(outcome.problems)
        return outcome
    finally:
        drop_database(url)
