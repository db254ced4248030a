"""The target fence: nothing update, lint or rehearse start can change the target, whatever env.py does.

Hostile set-ups on every dialect: an env.py that takes its URL from ``DATABASE_URL`` (set to the target),
from the application's settings, that opens a raw DBAPI connection to the target, or that connects even in
offline mode; each revision deletes a row of the target's data. After ``lint``, ``rehearse`` and ``update``
the target keeps both rows and revision 0001.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from _users_project import REVISIONS, UNTOUCHED, at_0001_with_two_rows, users_state
from dbrunbook.core import fence
from dbrunbook.core.db import make_engine
from dbrunbook.core.secrets import parse_url
from dbrunbook.errors import TargetFenced

_ENV_HEAD = '''
import os
from alembic import context
from sqlalchemy import create_engine
config = context.config
'''
_ENV_TAIL = '''
def run_migrations_offline():
    context.configure(url=URL, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()

if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''
_ONLINE_OWN_ENGINE = '''
def run_migrations_online():
    with create_engine(URL).connect() as connection:
        context.configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
'''
#: env.py bodies, each taking the database from somewhere dbrunbook did not hand it.
ENV_PY = {
    "environ": 'URL = os.environ["DATABASE_URL"]\n' + _ONLINE_OWN_ENGINE,
    "settings": 'from settings import URL\n' + _ONLINE_OWN_ENGINE,
    "raw-dbapi": '''from settings import URL, raw_delete
def run_migrations_online():
    raw_delete()  # straight through the driver, around SQLAlchemy
    connection = config.attributes["connection"]
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
''',
}
_RAW_DELETE = {
    "sqlite": "import sqlite3\ndef raw_delete():\n"
              "    c = sqlite3.connect({path!r}); c.execute('DELETE FROM users'); c.commit()\n",
    "postgresql": "import psycopg\ndef raw_delete():\n"
                  "    with psycopg.connect({dsn!r}) as c: c.execute('DELETE FROM users')\n",
    "mariadb": "import pymysql\ndef raw_delete():\n"
               "    c = pymysql.connect(host='127.0.0.1', user='root', database={name!r}); "
               "c.cursor().execute('DELETE FROM users'); c.commit()\n",
}


def _project(tmp_path: Path, url: str, dialect: str, shape: str) -> Path:
    project = tmp_path / f"project-{shape}"
    (project / "migrations" / "versions").mkdir(parents=True)
    (project / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (project / "migrations" / "env.py").write_text(_ENV_HEAD + ENV_PY[shape] + _ENV_TAIL)
    (project / "migrations" / "script.py.mako").write_text("")
    for name, text in REVISIONS.items():
        (project / "migrations" / "versions" / name).write_text(text)
    parsed = parse_url(url)
    raw = _RAW_DELETE[dialect].format(path=parsed.database, name=parsed.database,
                                      dsn=parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    (project / "settings.py").write_text(f"URL = {url!r}\n" + raw)
    return project


def _dbrunbook(project: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "dbrunbook", *args, "--db", url,
                           "--alembic-config", str(project / "alembic.ini")],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("shape", sorted(ENV_PY))
def test_lint_and_rehearse_never_touch_the_target(db_url, dialect, tmp_path, shape):
    project = _project(tmp_path, db_url, dialect, shape)
    at_0001_with_two_rows(db_url)
    lint = _dbrunbook(project, db_url, "lint")
    assert users_state(db_url) == UNTOUCHED, lint.stdout + lint.stderr
    rehearse = _dbrunbook(project, db_url, "rehearse")
    assert users_state(db_url) == UNTOUCHED, rehearse.stdout + rehearse.stderr
    assert "Traceback" not in lint.stderr + rehearse.stderr
    if shape == "environ":
        # DATABASE_URL is pointed at the copy: the revision runs there, and the rehearsal passes.
        assert rehearse.returncode == 0, rehearse.stdout + rehearse.stderr
        assert "DELETE FROM users" in lint.stdout or lint.returncode == 0
    else:
        # env.py reached for the target: refused, said, and blamed on env.py (not the revision).
        assert rehearse.returncode == 1
        assert "env.py reached for" in rehearse.stdout and "env.py" in rehearse.stdout


@pytest.mark.parametrize("shape", ["environ", "settings"])
def test_update_never_touches_the_target(db_url, dialect, tmp_path, shape):
    project = _project(tmp_path, db_url, dialect, shape)
    at_0001_with_two_rows(db_url)
    run = _dbrunbook(project, db_url, "update", "--dry-run", "--stages", "03,04,09", "--out", str(tmp_path / "runs"))
    assert users_state(db_url) == UNTOUCHED, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    if shape == "settings":
        assert "env.py reached for" in run.stdout, run.stdout
    else:
        assert "04-dev-rehearsal       PASS" in run.stdout, run.stdout


def test_guard_refuses_writers_and_lets_dbrunbook_read(db_url, dialect):
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1)"))
    engine.dispose()
    fence.guard(db_url)
    with pytest.raises(TargetFenced):
        sa.create_engine(db_url).connect()
    if dialect == "sqlite":
        with pytest.raises(TargetFenced):
            sqlite3.connect(parse_url(db_url).database or "")
    reader = make_engine(db_url)
    try:
        with reader.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
            with pytest.raises(sa.exc.DBAPIError):  # read-only at the database, not by convention
                conn.execute(sa.text("DELETE FROM t"))
    finally:
        reader.dispose()
    fence.lift()
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar_one() == 1
    engine.dispose()


def test_sandbox_environment_points_every_url_variable_at_the_copy():
    target = "postgresql+asyncpg://app:s3cret@db.example/shop"
    copy = parse_url("postgresql+psycopg://app:s3cret@db.example/dbrunbook_abc")
    env = fence.sandbox_environment({"DATABASE_URL": target, "MY_APP_DB": target, "OTHER": "x",
                                     "UNRELATED_URL": "postgresql://h/elsewhere"}, target, copy)
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://") and env["DATABASE_URL"].endswith("/dbrunbook_abc")
    assert env["MY_APP_DB"].endswith("/dbrunbook_abc")
    assert env["SQLALCHEMY_DATABASE_URI"].endswith("/dbrunbook_abc")
    assert env["UNRELATED_URL"] == "postgresql://h/elsewhere" and env["OTHER"] == "x"
    assert env["PGDATABASE"] == "dbrunbook_abc"
