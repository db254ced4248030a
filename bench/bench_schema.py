"""Bench: dbrunbook's snapshot + diff against Alembic's ``compare_metadata`` on a large schema.

Builds a PostgreSQL schema of ``--tables`` tables (8 columns, 2 indexes, 1 foreign key each) in a
scratch database, then a target model with one column added to every tenth table, and times,
in the same process and alternately, Alembic's autogenerate comparison and dbrunbook's
snapshot (multi-object reflection plus catalog sizes) + diff + impact. Checks that both find
the same changes for what Alembic detects, prints the ratio, drops the scratch database.

    .venv/bin/python bench/bench_schema.py [--url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dbrunbook.core.db import create_database, drop_database, make_engine, scratch_name, with_database
from dbrunbook.schema import assess, diff, snapshot, snapshot_metadata


def schema(tables: int, target: bool) -> sa.MetaData:
    """The bench schema; ``target`` adds a column to every tenth table."""
    md = sa.MetaData()
    for i in range(tables):
        name = f"t{i:04d}"
        parent = f"t{max(i - 1, 0):04d}"
        t = sa.Table(name, md,
                     sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("parent_id", sa.Integer, sa.ForeignKey(f"{parent}.id", name=f"fk_{name}_parent")),
                     sa.Column("code", sa.String(40), nullable=False),
                     sa.Column("qty", sa.Integer, server_default="0"),
                     sa.Column("price", sa.Numeric(10, 2)),
                     sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
                     sa.Column("active", sa.Boolean, server_default=sa.true()),
                     sa.Column("note", sa.Text))
        sa.Index(f"ix_{name}_parent", t.c.parent_id)
        sa.Index(f"ix_{name}_code_qty", t.c.code, t.c.qty)
        if target and i % 10 == 0:
            t.append_column(sa.Column("extra", sa.String(20)))
    return md


def alembic_changes(engine: sa.Engine, target: sa.MetaData) -> set[tuple[str, str, str]]:
    with engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(mc, target)
    out = set()
    for d in diffs:
        d = d[0] if isinstance(d, list) else d
        if d[0] in ("add_column", "remove_column"):
            out.add((d[0], d[2], d[3].name))
        else:
            out.add((d[0], "", str(d[1:])))
    return out


def dbrunbook_changes(engine: sa.Engine, target: sa.MetaData) -> set[tuple[str, str, str]]:
    result = diff(snapshot(engine), snapshot_metadata(target, engine.dialect))
    assess(result)
    return {(c.op, c.table, c.object.split(".", 1)[-1]) if c.op.endswith("_column") else (c.op, c.table, c.object)
            for c in result.changes}


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = with_database(args.url, scratch_name("dbrunbook_bench")).render_as_string(hide_password=False)
    create_database(url)
    engine = make_engine(url)
    try:
        start = time.perf_counter()
        schema(args.tables, target=False).create_all(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
        print(f"built {args.tables} tables in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        target = schema(args.tables, target=True)
        times: dict[str, list[float]] = {"alembic": [], "dbrunbook": []}
        found: dict[str, set[tuple[str, str, str]]] = {}
        for _ in range(args.repeat):  # alternate, so that caches and noise hit both alike
            for name, fn in (("alembic", alembic_changes), ("dbrunbook", dbrunbook_changes)):
                engine.dispose()  # each run starts with a new connection and cold inspector caches
                seconds, found[name] = timed(lambda: fn(engine, target))
                times[name].append(seconds)
        a, d = statistics.median(times["alembic"]), statistics.median(times["dbrunbook"])
        same = found["alembic"] == found["dbrunbook"]
        print(f"tables={args.tables} repeat={args.repeat}")
        print(f"alembic compare_metadata   median {a:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times['alembic'])})")
        print(f"dbrunbook snapshot+diff    median {d:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times['dbrunbook'])})")
        paired = statistics.median(x / y for x, y in zip(times["dbrunbook"], times["alembic"]))
        print(f"ratio dbrunbook/alembic    {d / a:.3f} of medians, {min(times['dbrunbook']) / min(times['alembic']):.3f} "
              f"of minimums, {paired:.3f} median of paired runs  (goal <= 0.25)")
        print(f"changes: alembic {len(found['alembic'])}, dbrunbook {len(found['dbrunbook'])}, identical: {same}")
        if not same:
            print("only alembic:", sorted(found["alembic"] - found["dbrunbook"])[:10])
            print("only dbrunbook:", sorted(found["dbrunbook"] - found["alembic"])[:10])
        return 0 if same else 1
    finally:
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
