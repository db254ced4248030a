"""The demo project: a small shop whose next schema change is unsafe on its data.

:func:`write_demo` lays out a project (models v1 and v2, an Alembic environment at revision
0001, ``[tool.dbrunbook]`` in its pyproject) and fills its database with about 100k rows,
among them the rows the v2 change trips over: duplicate e-mails under the new unique
constraint, users without a country under the new NOT NULL, and notes in a column v2 drops.
"""
from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from alembic.config import Config

from dbrunbook.alembic_ops.migration import _TEMPLATES, apply_upgrade
from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.core.secrets import MASK, PASSWORD_ENV, mask_url
from dbrunbook.errors import UsageError

if TYPE_CHECKING:
    from dbrunbook.runbook import Run

#: Rows of the demo's data problems, so users (and tests) can check what dbrunbook reports.
DUPLICATE_EMAILS = 37
MISSING_COUNTRY = 212
_COUNTRIES = ["DE", "FR", "NL", "US", "GB", "ES", "IT", "SE"]
_STATUSES = ["paid", "shipped", "delivered", "refunded"]


@dataclass(frozen=True)
class DemoProject:
    """Where the demo lives and how to point dbrunbook at it."""

    path: Path
    db: str
    models: str = "demo_app.models:metadata"

    def target(self) -> Target:
        return Target.from_url(self.db, models=self.models,
                               alembic_config=str(self.path / "alembic.ini"), project_dir=self.path)


def _write_files(dest: Path) -> None:
    shutil.copytree(_TEMPLATES / "demo", dest, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    hook = "from demo_app.models import metadata as target_metadata  # noqa: E402\n"
    env = (_TEMPLATES / "env.py").read_text().format(target_metadata=hook)
    (dest / "migrations" / "env.py").write_text(env)
    shutil.copy(_TEMPLATES / "script.py.mako", dest / "migrations" / "script.py.mako")


def _rows(users: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    rnd = random.Random(seed)
    start = datetime(2024, 1, 1)
    user_rows = [{"id": i, "email": f"user{i}@example.com", "name": f"User {i}",
                  "country": rnd.choice(_COUNTRIES),
                  "legacy_notes": f"crm note {i}" if rnd.random() < 0.3 else None,
                  "created_at": start + timedelta(minutes=i)} for i in range(1, users + 1)]
    for n, row in enumerate(rnd.sample(user_rows[users // 2:], DUPLICATE_EMAILS)):
        row["email"] = user_rows[n]["email"]  # signed up twice
    for row in rnd.sample(user_rows, MISSING_COUNTRY):
        row["country"] = None
    products = [{"id": i, "sku": f"SKU-{i:05d}", "name": f"Product {i}",
                 "price": round(rnd.uniform(1, 500), 2)} for i in range(1, max(users // 40, 10) + 1)]
    orders = [{"id": i, "user_id": rnd.randint(1, users), "status": rnd.choice(_STATUSES),
               "total": round(rnd.uniform(5, 900), 2), "created_at": start + timedelta(minutes=3 * i)}
              for i in range(1, users * 2 + 1)]
    items = [{"id": i, "order_id": rnd.randint(1, len(orders)), "product_id": rnd.randint(1, len(products)),
              "quantity": rnd.randint(1, 5)} for i in range(1, users * 2 + 1)]
    return {"users": user_rows, "products": products, "orders": orders, "order_items": items}


def load_demo_data(url: str, users: int = 20_000, seed: int = 7) -> int:
    """Fill the demo tables at ``url`` (already at revision 0001); returns the number of rows."""
    engine = make_engine(url)
    total = 0
    try:
        meta = sa.MetaData()
        meta.reflect(engine, only=["users", "products", "orders", "order_items"])
        with engine.begin() as conn:
            for table, rows in _rows(users, seed).items():
                conn.execute(meta.tables[table].insert(), rows)
                total += len(rows)
    finally:
        engine.dispose()
    return total


def repair_demo_data(url: str) -> None:
    """Fix the demo's data problems (missing countries, duplicate e-mails) so its v2 change applies.

    Used to show the safe path: the same migration, on data that respects the new constraints.
    """
    users = sa.table("users", sa.column("id", sa.Integer), sa.column("email", sa.String),
                     sa.column("country", sa.String))
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(users.update().where(users.c.country.is_(None)).values(country="DE"))
            conn.execute(users.update().values(email=sa.literal("u") + sa.cast(users.c.id, sa.String) + users.c.email))
    finally:
        engine.dispose()


def _point_project_at(pyproject: Path, url: str) -> None:
    text = pyproject.read_text()
    line = 'db = "sqlite:///demo.db"'
    assert line in text, "the demo template's pyproject.toml names its database on one line"
    note = f"# the password comes from {PASSWORD_ENV}\n" if MASK in url else ""
    pyproject.write_text(text.replace(line, f"{note}db = {json.dumps(url)}"))


def write_demo(dest: Path, db: str | None = None, users: int = 20_000) -> DemoProject:
    """Write the demo project to ``dest`` and build its database (SQLite unless ``db`` is given)."""
    if users < 400:
        raise UsageError("the demo needs at least 400 users to hold its data problems")
    dest = dest.resolve()
    if (dest / "alembic.ini").exists() or (dest.exists() and any(dest.iterdir())):
        raise UsageError(f"{dest} is not empty; choose another --out")
    _write_files(dest)
    if db:  # the project must name the database it was built on; a password stays masked there
        _point_project_at(dest / "pyproject.toml", mask_url(db))
    url = db or f"sqlite:///{dest / 'demo.db'}"
    project = DemoProject(path=dest, db=url)
    cfg = Config(str(dest / "alembic.ini"))
    cfg.set_main_option("script_location", str(dest / "migrations"))
    cwd = os.getcwd()
    os.chdir(dest)  # the env.py imports demo_app, as it would in the user's project
    try:
        result = apply_upgrade(cfg, url, "0001")
    finally:
        os.chdir(cwd)
    if not result.ok:
        raise UsageError(f"could not create the demo schema: {result.error}")
    load_demo_data(url, users=users)
    return project


def ensure_demo(cache: Path | None = None) -> DemoProject:
    """The shared demo project used by templates run with their default parameters."""
    home = cache or Path(os.environ.get("DBRUNBOOK_HOME", Path.home() / ".cache" / "dbrunbook"))
    path = home / "demo"
    if (path / "demo.db").exists():
        return DemoProject(path=path, db=f"sqlite:///{path / 'demo.db'}")
    shutil.rmtree(path, ignore_errors=True)
    return write_demo(path)


def run_demo(dest: Path, db: str | None = None, users: int = 20_000) -> Run:
    """Write the demo project to ``dest`` and run ``update --dry-run`` on it."""
    from dbrunbook.runbook import RunOptions, run_runbook

    project = write_demo(dest, db=db, users=users)
    return run_runbook(project.target(), RunOptions(out=project.path / "runs", dry_run=True))


def demo_target() -> Target:
    """The demo's target, made on first use (the ``demo`` entry of the ``dbrunbook.targets`` entry points)."""
    return ensure_demo().target()
