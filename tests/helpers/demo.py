"""The demo project, built once per session and dialect, and a fresh copy of it for each test.

:func:`dbrunbook.demo.write_demo` runs the demo's Alembic migration in a child process and inserts its rows: seconds
per call. A test gets the same project (same files, same rows: the demo's data are seeded) by copying a template
built once: the folder with ``shutil``, the database with a file copy (SQLite) or ``SHOW CREATE TABLE`` and ``INSERT
... SELECT`` (MariaDB). Each test still owns its copy and may change it.

PostgreSQL's demo is built afresh for each test: a ``CREATE DATABASE ... TEMPLATE`` copy would not carry the
statistics (``pg_stat_get_live_tuples``) that row estimates of never-analysed tables come from, and the tests would
see other numbers than a user's new database gives.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import sqlalchemy as sa

from dbrunbook.core.db import create_database, make_engine, scratch_name, with_database
from dbrunbook.core.secrets import mask_url, resolve_url
from dbrunbook.demo import DemoProject, write_demo
from helpers.databases import SERVERS, TEST_PREFIX, new_database, require

#: Users of the demo the tests run on: the smallest demo that holds all its data problems.
USERS = 400

#: Rows of the demo whose key points nowhere; a copy must keep every one of these counts at zero.
ORPHANS = {
    "orders": "SELECT COUNT(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id "
              "WHERE o.user_id IS NOT NULL AND u.id IS NULL",
    "order_items.order_id": "SELECT COUNT(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id "
                            "WHERE o.id IS NULL",
    "order_items.product_id": "SELECT COUNT(*) FROM order_items i LEFT JOIN products p ON p.id = i.product_id "
                              "WHERE p.id IS NULL",
}


def build_demo(dialect: str, folder: Path) -> DemoProject:
    """The demo project in ``folder/demo`` with its database on ``dialect`` (SQLite: a file in the project)."""
    url = new_database(dialect, folder)
    return write_demo(folder / "demo", db=None if dialect == "sqlite" else url, users=USERS)


def copy_demo(template: DemoProject, dialect: str, dest: Path) -> DemoProject:
    """A copy of ``template`` at ``dest`` (which must not exist) with a database of its own."""
    shutil.copytree(template.path, dest, ignore=shutil.ignore_patterns("__pycache__", "runs"))
    if dialect == "sqlite":  # the database file came with the folder
        return DemoProject(path=dest, db=f"sqlite:///{dest / 'demo.db'}")
    require(dialect)
    url = with_database(SERVERS[dialect], scratch_name(TEST_PREFIX)).render_as_string(hide_password=False)
    _COPY[dialect](template.db, url)
    pyproject = dest / "pyproject.toml"  # the project names the database it was built on
    text = pyproject.read_text()
    old, new = (f"db = {json.dumps(mask_url(u))}" for u in (template.db, url))
    assert old in text, "the demo's pyproject.toml names its database on one line"
    pyproject.write_text(text.replace(old, new))
    return DemoProject(path=dest, db=url)


def _copy_mariadb(source: str, dest: str) -> None:
    src, dst = resolve_url(source).database or "", resolve_url(dest).database or ""
    create_database(dest)
    engine = make_engine(dest)
    try:
        with engine.begin() as conn:
            q = conn.dialect.identifier_preparer.quote
            conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
            for (table,) in conn.execute(sa.text(f"SHOW TABLES FROM {q(src)}")).all():
                ddl = conn.execute(sa.text(f"SHOW CREATE TABLE {q(src)}.{q(table)}")).one()[1]
                conn.execute(sa.text(ddl.replace(":", "\\:")))
                conn.execute(sa.text(f"INSERT INTO {q(dst)}.{q(table)} SELECT * FROM {q(src)}.{q(table)}"))
            conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))
    finally:
        engine.dispose()


_COPY = {"mariadb": _copy_mariadb}
#: Dialects whose demo a test gets as a copy of the session's; on the others it is built for the test.
COPIED = ("sqlite", *_COPY)
