"""Alembic projects and revisions written for a test, on a database the test owns."""
from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from dbrunbook.alembic_ops.migration import _TEMPLATES, alembic_config, apply_upgrade
from dbrunbook.core.config import Target

#: What every revision body below is given: Alembic's ``op`` and SQLAlchemy as ``sa``.
HEADER = "from alembic import op\nimport sqlalchemy as sa\n"


def write_revision(scripts: Path, name: str, body: str) -> Path:
    """Write ``scripts/versions/<name>.py``: ``body`` (dedented) after :data:`HEADER`."""
    path = scripts / "versions" / f"{name}.py"
    path.write_text(HEADER + textwrap.dedent(body))
    return path


def scripts_project(tmp_path: Path, url: str, revisions: dict[str, str], at: str = "0001") -> tuple[Target, Path]:
    """A target on ``url`` whose scripts (``tmp_path/alembic``) hold ``revisions`` (name -> body), upgraded to ``at``.

    The scripts are dbrunbook's own Alembic environment (:func:`alembic_config`), as stages 03-09 make it.
    """
    target = Target.from_url(url, project_dir=tmp_path)
    scripts = tmp_path / "alembic"
    cfg = alembic_config(target, scripts)
    for name, body in revisions.items():
        write_revision(scripts, name, body)
    assert apply_upgrade(cfg, url, at).ok
    return target, scripts


def write_project(dest: Path, db: str, revisions: dict[str, str]) -> Target:
    """An Alembic project at ``dest`` as a user has it (``alembic.ini``, ``migrations/env.py``) holding ``revisions``.

    ``revisions`` maps file names to whole sources (dedented, written as they are).
    """
    versions = dest / "migrations" / "versions"
    versions.mkdir(parents=True)
    (dest / "migrations" / "env.py").write_text((_TEMPLATES / "env.py").read_text().format(target_metadata=""))
    shutil.copy(_TEMPLATES / "script.py.mako", dest / "migrations" / "script.py.mako")
    (dest / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    for name, source in revisions.items():
        (versions / name).write_text(textwrap.dedent(source))
    return Target.from_url(db, alembic_config=str(dest / "alembic.ini"), project_dir=dest)


#: An env.py that runs the revisions on the connection it is handed, as most projects' env.py do.
HANDED_ENV = ("from alembic import context\nconn = context.config.attributes['connection']\n"
              "context.configure(connection=conn)\nwith context.begin_transaction():\n    context.run_migrations()\n")

#: A first revision that does nothing: the target is stamped at it, its tables made by the test's own fill.
EMPTY_BASE = '''revision = "0001"
down_revision = None
def upgrade():
    pass
def downgrade():
    pass
'''
#: The env.py of Alembic's older cookbook ("sharing a connection"), as JupyterHub ships it: it calls
#: ``.connect()`` on what it is handed, which SQLAlchemy 2.x connections no longer have.
COOKBOOK_ENV = """from alembic import context
from sqlalchemy import engine_from_config, pool
config = context.config
connectable = config.attributes.get("connection", None)
if connectable is None:
    connectable = engine_from_config(config.get_section(config.config_ini_section), prefix="sqlalchemy.",
                                     poolclass=pool.NullPool)
with connectable.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
"""


def pending_project(dest: Path, url: str, revisions: dict[str, str], fill: Callable[[sa.Connection], None],
                    at: str = "0001") -> Target:
    """A user's Alembic project at ``dest`` (``alembic.ini``, :data:`HANDED_ENV`) holding ``revisions`` (file name ->
    whole source), on ``url``'s database as ``fill`` makes it (tables and rows, in one transaction), stamped at
    ``at``: the revisions after it are pending."""
    versions = dest / "migrations" / "versions"
    versions.mkdir(parents=True)
    (dest / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    (dest / "migrations" / "env.py").write_text(HANDED_ENV)
    for name, source in revisions.items():
        (versions / name).write_text(source)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            fill(conn)
            conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
            conn.execute(sa.text("INSERT INTO alembic_version VALUES (:at)"), {"at": at})
    finally:
        engine.dispose()
    return Target.from_url(url, alembic_config=str(dest / "alembic.ini"), project_dir=dest)
