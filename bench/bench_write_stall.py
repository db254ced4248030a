"""Bench: how long does the application's writer stall while a migration waits behind another session's lock?

One small project (``customers``, ``--rows`` rows; revision 0002 adds a nullable column and an index to it),
on each server dialect. Each case, in the same run: a writer thread inserts a row into ``customers`` every
``--every`` seconds on its own autocommit connection, timing each insert; a blocker session updates one
customer and keeps its transaction open; then the migration starts, and ``--hold`` seconds after the
migration is first seen waiting for its lock on ``customers`` the blocker commits. Cases:

- ``alembic``: plain ``alembic upgrade head`` (its CLI, in a child process) on the project;
- ``dbrunbook``: ``dbrunbook apply <plan run>`` (its CLI, in a child process) with the defaults a user gets
  (lock_timeout 2 s, 5 attempts, 0.5 s backoff doubling with jitter), of a plan run made once per dialect
  (stages 01, 03 and 10, the checklist waived: stages 02, 04-09 measure nothing this bench needs).

Between cases the target goes back to revision 0001 (``alembic downgrade 0001``). Stats cover the inserts
running in the same window for every case: from the migration's first lock wait to ``--hold`` + 2 s after.
A writer that waits does not insert: ``p99_intended`` corrects for that (coordinated omission), counting
every 10 ms slot a stalled insert held up as an insert that waited the rest of the stall. Not a test:

    .venv/bin/python bench/bench_write_stall.py [--dialects postgresql,mariadb] [--hold 6] [--rounds 2]
"""
from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dbrunbook import RunOptions, run_runbook
from dbrunbook.alembic_ops.migration import alembic_config
from dbrunbook.core.config import Target, load_target
from dbrunbook.core.db import create_database, drop_database, make_engine, scratch_name, with_database
from dbrunbook.core.results import load_result

SERVERS = {"postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
           "mariadb": "mariadb+pymysql://root@127.0.0.1:3306/mysql"}
#: The migration waits for its lock on customers (the writer's inserts wait too, for another mode: not these).
WAITING_SQL = {
    "postgresql": "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                  "WHERE NOT l.granted AND c.relname = 'customers' AND l.mode = 'AccessExclusiveLock' "
                  "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    "mariadb": "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() "
               "AND STATE LIKE 'Waiting for table metadata lock' AND INFO LIKE 'ALTER TABLE%'",
}
VERSION_SQL = {"postgresql": "SELECT version()", "mariadb": "SELECT VERSION()"}
CHECKLIST = ["schema-analysed", "design-valid", "migration-reviewed", "rollback-present", "rehearsed",
             "data-checks-pass", "code-impact-clear", "tests-pass", "performance-ok", "staging-within-window",
             "rollback-proven", "backup-verified", "team-approval", "monitoring-configured"]
MODELS = '''
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
'''
BASE = '''
revision = "0001"
down_revision = None

def upgrade():
    op.create_table("customers", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("name", sa.String(80), nullable=False), sa.Column("email", sa.String(120), nullable=True))

def downgrade():
    op.drop_table("customers")
'''
CHANGE = '''
revision = "0002"
down_revision = "0001"

def upgrade():
    op.add_column("customers", sa.Column("phone", sa.String(30), nullable=True))
    op.create_index("ix_customers_email", "customers", ["email"])

def downgrade():
    op.drop_index("ix_customers_email", table_name="customers")
    op.drop_column("customers", "phone")
'''
BIN = Path(sys.executable).parent


class Writer(threading.Thread):
    """The application: an insert every ``every`` seconds on its own autocommit connection, each one timed."""

    def __init__(self, url: str, every: float) -> None:
        super().__init__(name="writer", daemon=True)
        self.url, self.every = url, every
        self.samples: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        engine = make_engine(self.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        insert = sa.text("INSERT INTO customers (name, email) VALUES (:name, :email)")
        try:
            with engine.connect() as conn:
                due = time.perf_counter()
                while not self.done.is_set():
                    started = time.perf_counter()
                    try:
                        conn.execute(insert, {"name": "writer", "email": f"w{len(self.samples)}@example.com"})
                    except sa.exc.DBAPIError as exc:
                        self.errors.append(str(exc.orig).splitlines()[0])
                    self.samples.append((started, time.perf_counter()))
                    due = max(due + self.every, time.perf_counter())  # no catching up in a burst
                    time.sleep(max(0.0, due - time.perf_counter()))
        finally:
            engine.dispose()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else 0.0


def stats(samples: list[tuple[float, float]], since: float, until: float, every: float) -> dict[str, Any]:
    """Latencies (ms) of the inserts that were running in [since, until) (one stalled from before counts)."""
    latencies = [end - start for start, end in samples if end >= since and start < until]
    # Coordinated omission: the slots a stalled insert kept the writer from, each as an insert that waited.
    intended = latencies + [s - k * every for s in latencies for k in range(1, int(s / every))]
    return {"inserts": len(latencies), "median_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * percentile(latencies, 99), 1),
            "p99_intended_ms": round(1000 * percentile(intended, 99), 1),
            "longest_ms": round(1000 * max(latencies), 1),
            # the writer's time spent in inserts slower than 100 ms: how long it was held up in all
            "stalled_s": round(sum(s for s in latencies if s > 0.1), 2)}


def write_project(folder: Path, url: str, rows: int) -> Path:
    project = folder / "shop"
    (project / "stall_shop").mkdir(parents=True)
    (project / "stall_shop" / "__init__.py").write_text("")
    (project / "stall_shop" / "models.py").write_text(MODELS)
    # the env.py dbrunbook writes: online it uses sqlalchemy.url, as `alembic` runs it, or the handed connection
    alembic_config(Target.from_url(url, models="stall_shop.models:metadata", project_dir=project),
                   project / "migrations")
    for name, body in (("0001_base", BASE), ("0002_phone", CHANGE)):
        (project / "migrations" / "versions" / f"{name}.py").write_text(
            "from alembic import op\nimport sqlalchemy as sa\n" + textwrap.dedent(body))
    (project / "alembic.ini").write_text("[alembic]\nscript_location = %(here)s/migrations\n"
                                         f"prepend_sys_path = .\nsqlalchemy.url = {url.replace('%', '%%')}\n")
    (project / "pyproject.toml").write_text(f'[tool.dbrunbook]\ndb = "{url}"\nmodels = "stall_shop.models:metadata"\n'
                                            'alembic_config = "alembic.ini"\n')
    alembic(project, "upgrade", "0001")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO customers (name, email) VALUES (:n, :e)"),
                     [{"n": f"name {i}", "e": f"c{i}@example.com"} for i in range(rows)])
    engine.dispose()
    return project


def alembic(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(BIN / "alembic"), "-c", "alembic.ini", *args], cwd=project, capture_output=True,
                          text=True, timeout=300)
    if done.returncode:
        raise SystemExit(f"alembic {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done


def plan(project: Path, out: Path) -> Path:
    options = RunOptions(out=out, stages=["01", "03", "10"], dry_run=True,
                         parameters={"waive": {item: "bench: not measured" for item in CHECKLIST},
                                     "measure_throughput": False})
    run = run_runbook(load_target(project), options)
    failed = [s.name for s in run.stages if s.status == "error"]
    if failed:
        raise SystemExit(f"the plan run failed in {failed}")
    return Path(run.path)


def case(kind: str, dialect: str, url: str, project: Path, plan_run: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One migration under the blocker, with the writer timed throughout."""
    if alembic(project, "current").stdout.split()[:1] != ["0001"]:
        alembic(project, "downgrade", "0001")
    load = os.getloadavg()
    writer = Writer(url, args.every)
    writer.start()
    time.sleep(args.quiet)
    watch = make_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    blocker_engine = make_engine(url, poolclass=NullPool)
    blocker = blocker_engine.connect()
    blocker.execute(sa.text("UPDATE customers SET name = name WHERE id = 1"))  # holds its locks until it commits
    env = {k: v for k, v in os.environ.items() if k != "DBRUNBOOK_DB"}
    command = ([str(BIN / "alembic"), "-c", "alembic.ini", "upgrade", "head"] if kind == "alembic"
               else [str(BIN / "dbrunbook"), "apply", str(plan_run), "--project", str(project)])
    launched = time.perf_counter()
    child = subprocess.Popen(command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    waited = released = None
    try:
        with watch.connect() as conn:
            while child.poll() is None and time.perf_counter() - launched < 300:
                now = time.perf_counter()
                if waited is None and conn.execute(sa.text(WAITING_SQL[dialect])).scalar():
                    waited = now
                if waited is not None and released is None and now - waited >= args.hold:
                    blocker.commit()
                    released = time.perf_counter()
                time.sleep(0.02)
        stdout, stderr = child.communicate(timeout=300)
        finished = time.perf_counter()
        time.sleep(args.quiet)
    finally:
        if child.poll() is None:
            child.kill()
        blocker.close()
        blocker_engine.dispose()
        watch.dispose()
        writer.done.set()
        writer.join(timeout=60)
    # dbrunbook apply exits non-zero when stage 12 blocks: it does here (PV003, rows changed that the plan does
    # not change: the writer's), so the apply's own record says whether it applied.
    failed = child.returncode and kind == "alembic"
    if failed or waited is None or released is None:
        raise SystemExit(f"{kind} on {dialect}: exit {child.returncode}, lock wait seen {waited is not None}, "
                         f"blocker released {released is not None}\n{stdout[-2000:]}\n{stderr[-2000:]}")
    result: dict[str, Any] = {
        "case": kind, "exit": child.returncode, "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()], "seconds_to_first_wait": round(waited - launched, 2),
        "blocker_held_after_first_wait_s": round(released - waited, 2),
        "migration_done_after_release_s": round(finished - released, 2),
        "window": stats(writer.samples, waited, waited + args.hold + 2, args.every),
        "whole_run_longest_ms": stats(writer.samples, launched, finished, args.every)["longest_ms"],
        "quiet": stats(writer.samples, 0, launched, args.every), "writer_errors": writer.errors[:3],
    }
    if kind == "dbrunbook":
        folder = Path(next(line.split(None, 1)[1] for line in stdout.splitlines()
                           if line.strip().startswith("folder ")))
        recorded = load_result(folder, "11-guarded-apply")
        if recorded is None:
            raise SystemExit(f"dbrunbook apply on {dialect} left no stage 11 result\n{stdout[-2000:]}")
        data = recorded.data
        if not data["applied"]:
            raise SystemExit(f"dbrunbook apply on {dialect} did not apply: {data.get('error')}\n{stdout[-2000:]}")
        result["applied"] = data["applied"]
        result["stage_12"] = next((line.split(None, 1)[1] for line in stdout.splitlines()
                                   if line.strip().startswith("12-post-migration")), "")
        result["attempts"] = [{k: a[k] for k in ("attempt", "ok", "waited", "backoff")} for a in data["attempts"]]
        result["lock_timeout_ms"] = data.get("plan", {}).get("lock_timeout_ms", data.get("lock_timeout_ms"))
    return result


def versions(dialect: str, url: str) -> dict[str, str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            server = str(conn.execute(sa.text(VERSION_SQL[dialect])).scalar())
    finally:
        engine.dispose()
    return {"server": server.split(" on ")[0],
            **{name: importlib.metadata.version(name) for name in ("dbrunbook", "alembic", "sqlalchemy")},
            "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialects", default="postgresql,mariadb")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--hold", type=float, default=6.0, help="seconds the blocker holds after the first wait")
    parser.add_argument("--every", type=float, default=0.010, help="seconds between the writer's inserts")
    parser.add_argument("--quiet", type=float, default=2.0, help="seconds of writer alone before and after")
    parser.add_argument("--rounds", type=int, default=2, help="alembic, dbrunbook, alembic, dbrunbook, ...")
    args = parser.parse_args(argv)
    summary: dict[str, Any] = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                               "machine": f"{platform.machine()}, {os.cpu_count()} cores", "hold_s": args.hold,
                               "every_s": args.every, "rows": args.rows, "dialects": {}}
    for dialect in args.dialects.split(","):
        url = with_database(SERVERS[dialect], scratch_name("dbrunbook_bench")).render_as_string(hide_password=False)
        create_database(url)
        try:
            with tempfile.TemporaryDirectory(prefix="dbrunbook-bench-") as folder:
                project = write_project(Path(folder), url, args.rows)
                plan_run = plan(project, Path(folder) / "runs")
                cases = [case(kind, dialect, url, project, plan_run, args)
                         for _ in range(args.rounds) for kind in ("alembic", "dbrunbook")]
        finally:
            drop_database(url)
        best = {kind: [c for c in cases if c["case"] == kind] for kind in ("alembic", "dbrunbook")}
        pairs = list(zip(best["alembic"], best["dbrunbook"], strict=True))
        ratios = {key: [round(a["window"][key] / d["window"][key], 2) for a, d in pairs]
                  for key in ("longest_ms", "p99_ms", "p99_intended_ms")}
        summary["dialects"][dialect] = {"versions": versions(dialect, SERVERS[dialect]), "cases": cases,
                                        "ratio_alembic_over_dbrunbook": ratios}
        print(json.dumps(summary["dialects"][dialect], indent=2), flush=True)
    print(json.dumps({k: v for k, v in summary.items() if k != "dialects"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
