"""The small healthy project `dbrunbook apply` is tested on, planned once per module and dialect.

``plan_once`` makes it (stages 01, 03 and 10 of a project at revision 0001 with rows, planned to 0002); a test
module's ``planned`` fixture yields it. :class:`Blocker` is another session in the migration's way.
"""
from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dbrunbook import RunOptions, run_runbook
from dbrunbook.alembic_ops.migration import alembic_config, apply_upgrade, current_revision
from dbrunbook.core.config import Target, load_target
from dbrunbook.core.db import create_database, drop_database, make_engine
from dbrunbook.data.clone import sync_key_generators
from dbrunbook.data.fingerprint import fingerprint, schema_snapshot
from helpers.databases import new_database

CUSTOMERS = 40
_MODELS = '''
import sqlalchemy as sa

metadata = sa.MetaData()
customers = sa.Table(
    "customers", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(80), nullable=False),
    sa.Column("email", sa.String(120), nullable=True),
    sa.Column("phone", sa.String(30), nullable=True),
    sa.Index("ix_customers_email", "email"),
)
orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("customer_id", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
)
'''
_BASE = '''
revision = "0001"
down_revision = None

def upgrade():
    op.create_table("customers", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("name", sa.String(80), nullable=False), sa.Column("email", sa.String(120), nullable=True))
    op.create_table("orders", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("customer_id", sa.Integer(), nullable=False),
                    sa.Column("total", sa.Integer(), nullable=False))

def downgrade():
    op.drop_table("orders")
    op.drop_table("customers")
'''
#: The healthy change: a nullable column and an index. {middle} is where the variants below go.
_CHANGE = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.add_column("customers", sa.Column("phone", sa.String(30), nullable=True))
    {middle}
    op.create_index("ix_customers_email", "customers", ["email"])

def downgrade():
    op.drop_index("ix_customers_email", table_name="customers")
    op.drop_column("customers", "phone")
'''
CHECKLIST = ["schema-analysed", "design-valid", "migration-reviewed", "rollback-present", "rehearsed",
             "data-checks-pass", "code-impact-clear", "tests-pass", "performance-ok", "staging-within-window",
             "rollback-proven", "backup-verified", "team-approval", "monitoring-configured"]


def _revision(folder: Path, name: str, body: str) -> None:
    (folder / "versions" / f"{name}.py").write_text("from alembic import op\nimport sqlalchemy as sa\n"
                                                    + textwrap.dedent(body))


@dataclasses.dataclass
class Planned:
    """A project at revision 0001 with rows, and its plan run to 0002."""

    dialect: str
    url: str
    project: Path
    plan_run: Path = Path()

    def target(self) -> Target:
        return load_target(self.project)

    def reset(self) -> None:
        """The target exactly as planned: revision 0001 and the same rows."""
        drop_database(self.url)
        create_database(self.url)
        scripts = self.project / "migrations"
        cfg = alembic_config(self.target(), scripts)
        assert apply_upgrade(cfg, self.url, "0001").ok
        engine = make_engine(self.url)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO customers (id, name, email) VALUES (:i, :n, :e)"),
                         [{"i": i, "n": f"name {i % 7}", "e": f"c{i}@example.com"} for i in range(1, CUSTOMERS + 1)])
            conn.execute(sa.text("INSERT INTO orders (id, customer_id, total) VALUES (:i, :c, :t)"),
                         [{"i": i, "c": 1 + i % CUSTOMERS, "t": i * 3} for i in range(1, 2 * CUSTOMERS + 1)])
            # rows written with explicit keys: move the sequences on, as the application's inserts would have
            meta = sa.MetaData()
            meta.reflect(conn, only=["customers", "orders"])
            sync_key_generators(conn, list(meta.tables.values()))
        engine.dispose()

    def state(self, url: str | None = None) -> tuple[str | None, dict, dict]:
        engine = make_engine(url or self.url)
        try:
            return current_revision(engine), schema_snapshot(engine), fingerprint(engine).to_json()["tables"]
        finally:
            engine.dispose()

    def plan(self, tmp: Path, stages: tuple[str, ...] = ("01", "03", "10"), waive: list[str] = CHECKLIST) -> Path:
        """A plan run of ``stages``, the checklist items in ``waive`` waived (stages 02, 04-09 do not run)."""
        parameters = {"waive": {item: "not needed for this test" for item in waive},
                      **({"measure_throughput": False} if "03" in stages else {})}
        options = RunOptions(out=tmp / "runs", stages=list(stages), dry_run=True, parameters=parameters)
        run = run_runbook(self.target(), options)
        assert [s.status for s in run.stages if s.status == "error"] == [], run.stages
        return run.path


def _project(tmp: Path, url: str) -> Path:
    project = tmp / "shop"
    (project / "apply_shop").mkdir(parents=True)
    (project / "apply_shop" / "__init__.py").write_text("")
    (project / "apply_shop" / "models.py").write_text(_MODELS)
    alembic_config(Target.from_url(url, models="apply_shop.models:metadata", project_dir=project),
                   project / "migrations")  # writes env.py, script.py.mako and versions/
    _revision(project / "migrations", "0001_base", _BASE)
    _revision(project / "migrations", "0002_phone", _CHANGE.format(middle="pass"))
    (project / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n")
    (project / "pyproject.toml").write_text(f'[tool.dbrunbook]\ndb = "{url}"\nmodels = "apply_shop.models:metadata"\n'
                                            'alembic_config = "alembic.ini"\n')
    return project



def plan_once(dialect: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planned]:
    """The body of a module's ``planned`` fixture: the project on ``dialect``, planned; dropped after."""
    tmp = tmp_path_factory.mktemp(f"apply-{dialect}")
    url = new_database(dialect, tmp)
    made = Planned(dialect, url, _project(tmp, url))
    made.reset()
    made.plan_run = made.plan(tmp)
    yield made
    drop_database(url)


class Blocker:
    """Another session in the migration's way: it holds a lock the upgrade's first statement needs."""

    def __init__(self, planned: Planned) -> None:
        self.dialect = planned.dialect
        if planned.dialect == "sqlite":  # the write lock: the upgrade's BEGIN IMMEDIATE waits for it
            import sqlite3

            self.raw = sqlite3.connect(sa.engine.make_url(planned.url).database, isolation_level=None)
            self.raw.execute("BEGIN IMMEDIATE")
            self.session = None
            return
        self.engine = make_engine(planned.url)
        self.conn = self.engine.connect()
        self.session = self.conn.execute(sa.text("SELECT pg_backend_pid()" if planned.dialect == "postgresql"
                                                 else "SELECT CONNECTION_ID()")).scalar()
        # An open transaction that read the table: its share lock (PostgreSQL ACCESS SHARE, MariaDB's metadata
        # lock) lets the apply's fingerprint read, and makes ALTER TABLE, which needs the table exclusively, wait.
        self.conn.execute(sa.text("SELECT COUNT(*) FROM customers")).scalar()
        self.released = False

    def release(self, commit: bool = False) -> None:
        """End the blocker's transaction (rolled back unless ``commit``); once only."""
        if self.dialect == "sqlite":
            if self.raw is not None:
                self.raw.execute("COMMIT" if commit else "ROLLBACK")
                self.raw.close()
                self.raw = None
            return
        if not self.released:
            self.released = True
            if commit:
                self.conn.commit()
            else:
                self.conn.rollback()
            self.conn.close()
            self.engine.dispose()
