"""Alembic projects in the shapes they come in: ``alembic init -t async`` and Flask-Migrate (``flask db init``).

Each is made with the real tool's own template, brought to revision 0001 with two rows, and given a pending
revision that deletes a row and adds a column. ``dbrunbook update --dry-run`` must run that revision on a copy
(stage 04 passes, the DELETE is in the reviewed SQL) and leave the target exactly as it was.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dbrunbook.core.secrets import parse_url
from helpers.runs import dbrunbook
from helpers.users_project import REVISIONS, UNTOUCHED, at_0001_with_two_rows, users_state

FLASK_APP = '''import os
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from flask_migrate import Migrate

db = SQLAlchemy()
migrate = Migrate()


def create_app():
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    db.init_app(app)
    migrate.init_app(app, db)
    return app
'''
#: The async driver each server dialect's async env.py uses (psycopg 3 is async too).
ASYNC_DRIVER = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}


def _async_project(root: Path, url: str) -> Path:
    from alembic import command
    from alembic.config import Config

    root.mkdir()
    command.init(Config(str(root / "alembic.ini")), str(root / "migrations"), template="async")
    ini = (root / "alembic.ini").read_text()
    async_url = parse_url(url).set(drivername=ASYNC_DRIVER[parse_url(url).get_backend_name()])
    lines = [f"sqlalchemy.url = {async_url.render_as_string(hide_password=False)}"
             if line.startswith("sqlalchemy.url") else line for line in ini.splitlines()]
    (root / "alembic.ini").write_text("\n".join(lines) + "\n")
    return root / "alembic.ini"


def _flask_project(root: Path, url: str) -> Path:
    root.mkdir()
    (root / "app.py").write_text(FLASK_APP)
    env = {**os.environ, "FLASK_APP": "app:create_app", "DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "flask", "db", "init"], cwd=root, env=env, check=True, capture_output=True)
    return root / "migrations" / "alembic.ini"


SHAPES = {"async": _async_project, "flask-migrate": _flask_project}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_update_runs_the_pending_revision_on_a_copy_only(db_url, dialect, tmp_path, shape):
    ini = SHAPES[shape](tmp_path / "project", db_url)
    versions = ini.parent / "versions" if shape == "flask-migrate" else tmp_path / "project" / "migrations" / "versions"
    for name, text in REVISIONS.items():
        (versions / name).write_text(text)
    at_0001_with_two_rows(db_url)
    run = dbrunbook("update", "--db", db_url, "--alembic-config", str(ini), "--dry-run", "--stages", "03,04",
                    "--out", str(tmp_path / "runs"), cwd=tmp_path / "project",
                    env={"DATABASE_URL": db_url, "FLASK_APP": "app:create_app"}, timeout=600)
    assert users_state(db_url) == UNTOUCHED
    assert "04-dev-rehearsal       PASS" in run.stdout, run.stdout + run.stderr
    upgrade_sql = next((tmp_path / "runs").glob("*/03-migration/upgrade.sql")).read_text()
    assert "DELETE FROM users WHERE id = 1" in upgrade_sql
