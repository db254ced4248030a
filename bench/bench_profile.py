"""Bench: stage 5 profile and checks on a large PostgreSQL table, against two baselines.

In one process, on a ``users`` table of N rows (built in SQL with generate_series), times:

- dbrunbook: :func:`dbrunbook.stages.data_checks.profile.profile_table` and :func:`dbrunbook.stages.data_checks.run_checks`
  for a typical change (e-mail made unique, country made NOT NULL, legacy_notes dropped);
- (a) one hand-written aggregate pass over the same columns (null, distinct, min/max, mean,
  lengths), the fastest a person would write by hand;
- (b) pandas ``read_sql`` of the table plus ``describe``/``isna``/``nunique``.

Times are the best of ``--repeat`` runs. Memory is measured in separate runs, never while
timing: the tracemalloc peak (Python and numpy allocations) in this process, and the growth of
the peak resident set of a forked child running the contender (which includes the driver's C
buffers that tracemalloc does not see). Usage::

    .venv/bin/python bench/bench_profile.py --rows 200000 2000000

The database is created on the server of ``--url`` and dropped afterwards.
"""
from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import resource
import time
import tracemalloc
from typing import Any, Callable

import pandas as pd
import sqlalchemy as sa

from dbrunbook.stages.data_checks import run_checks
from dbrunbook.core.db import create_database, drop_database, make_engine, scratch_name, with_database
from dbrunbook.stages.data_checks.profile import profile_table

FILL = """
CREATE TABLE users (id bigint PRIMARY KEY, email varchar(255) NOT NULL, name varchar(120),
                    country varchar(2), legacy_notes text, score numeric(10, 2), created_at timestamp);
INSERT INTO users
SELECT g, 'user' || (CASE WHEN g % 1000 = 0 THEN g - 1 ELSE g END) || '@example.com', 'User ' || g,
       CASE WHEN g % 97 = 0 THEN NULL ELSE (ARRAY['DE','FR','NL','US','GB','ES','IT','SE'])[1 + g % 8] END,
       CASE WHEN g % 3 = 0 THEN 'crm note ' || g END, (g % 50000) / 100.0,
       timestamp '2024-01-01' + g * interval '1 minute'
FROM generate_series(1, {rows}) AS g;
ANALYZE users;
"""

HAND_WRITTEN = """
SELECT count(*),
  count(id), count(DISTINCT id), min(id), max(id), avg(id),
  count(email), count(DISTINCT email), min(email), max(email), min(char_length(email)), max(char_length(email)),
  count(name), count(DISTINCT name), min(name), max(name), min(char_length(name)), max(char_length(name)),
  count(country), count(DISTINCT country), min(country), max(country), min(char_length(country)), max(char_length(country)),
  count(legacy_notes), count(DISTINCT legacy_notes), min(legacy_notes), max(legacy_notes),
  min(char_length(legacy_notes)), max(char_length(legacy_notes)),
  count(score), count(DISTINCT score), min(score), max(score), avg(score),
  count(created_at), count(DISTINCT created_at), min(created_at), max(created_at)
FROM users
"""


#: The one query any exact uniqueness check must run when no index covers the key: a GROUP BY over
#: every row. Its time bounds how fast profile + checks can be; pandas / floor is the best ratio reachable.
FLOOR = "SELECT count(*) FROM (SELECT email FROM users GROUP BY email HAVING count(*) > 1) AS dups"


def _target() -> sa.MetaData:
    meta = sa.MetaData()
    sa.Table("users", meta, sa.Column("id", sa.BigInteger, primary_key=True),
             sa.Column("email", sa.String(255), nullable=False, unique=True), sa.Column("name", sa.String(120)),
             sa.Column("country", sa.String(2), nullable=False), sa.Column("score", sa.Numeric(10, 2)),
             sa.Column("created_at", sa.DateTime))
    return meta


def _ours(engine: sa.Engine) -> Any:
    report = run_checks(engine, _target())
    return profile_table(engine, "users"), report


def _ours_profile(engine: sa.Engine) -> Any:
    return profile_table(engine, "users")


def _hand(engine: sa.Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(HAND_WRITTEN)).one()


def _floor(engine: sa.Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(FLOOR)).scalar()


def _pandas(engine: sa.Engine) -> Any:
    with engine.connect() as conn:
        df = pd.read_sql(sa.text("SELECT * FROM users"), conn)
    return df.describe(include="all"), df.isna().sum(), df.nunique()


def _best(fn: Callable[[sa.Engine], Any], engine: sa.Engine, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        out = fn(engine)
        best = min(best, time.perf_counter() - started)
    return best, out


def _peak(fn: Callable[[sa.Engine], Any], engine: sa.Engine) -> float:
    gc.collect()
    tracemalloc.start()
    fn(engine)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _child_rss(fn: Callable[[sa.Engine], Any], url: str, queue: Any) -> None:
    engine = make_engine(url)
    before = _rss_mib()
    fn(engine)
    engine.dispose()
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before)


def _peak_rss(fn: Callable[[sa.Engine], Any], url: str) -> float:
    """Growth of the peak resident memory while ``fn`` runs in a forked child (C buffers included)."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_rss, args=(fn, url, queue))
    child.start()
    growth = float(queue.get())
    child.join()
    return growth


def bench(url: str, rows: int, repeat: int, with_pandas: bool) -> dict[str, Any]:
    """Build the table, time and measure every contender, drop the database."""
    db = with_database(url, scratch_name("bench_profile")).render_as_string(hide_password=False)
    create_database(db)
    engine = make_engine(db)
    try:
        with engine.begin() as conn:
            for statement in FILL.format(rows=rows).split(";\n"):
                if statement.strip():
                    conn.exec_driver_sql(statement.replace("%", "%%"))  # psycopg reads % as a placeholder
        _hand(engine)  # warm the cache the same way for every contender
        out: dict[str, Any] = {"rows": rows}
        out["hand_s"], _ = _best(_hand, engine, repeat)
        out["profile_s"], _ = _best(_ours_profile, engine, repeat)
        out["ours_s"], (profile, report) = _best(_ours, engine, repeat)
        out["floor_s"], _ = _best(_floor, engine, repeat)
        out["checks"] = report.summary()
        out["sampled"] = profile.sampled
        out["hand_mib"] = _peak(_hand, engine)
        out["ours_mib"] = _peak(_ours, engine)
        out["ours_rss"] = _peak_rss(_ours, db)
        if with_pandas:
            out["pandas_s"], _ = _best(_pandas, engine, 1)
            out["pandas_mib"] = _peak(_pandas, engine)
            out["pandas_rss"] = _peak_rss(_pandas, db)
        return out
    finally:
        engine.dispose()
        drop_database(db)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-pandas", action="store_true")
    args = parser.parse_args()
    print("| rows | hand-written pass | dbrunbook profile | profile + checks | ratio to hand-written "
          "(profile / +checks) | pandas | pandas / ours | traced peak MiB ours / hand / pandas "
          "| peak RSS growth MiB ours / pandas | duplicate GROUP BY alone | pandas / that (ceiling) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rows in args.rows:
        r = bench(args.url, rows, args.repeat, not args.no_pandas)
        pandas_s = r.get("pandas_s")
        pandas_t = f"{pandas_s:.1f}s" if pandas_s else "-"
        speedup = f"{pandas_s / r['ours_s']:.0f}x" if pandas_s else "-"
        ceiling = f"{pandas_s / r['floor_s']:.0f}x" if pandas_s else "-"
        print(f"| {rows:,} | {r['hand_s']:.2f}s | {r['profile_s']:.2f}s | {r['ours_s']:.2f}s "
              f"| {r['profile_s'] / r['hand_s']:.2f}x / {r['ours_s'] / r['hand_s']:.2f}x "
              f"| {pandas_t} | {speedup} "
              f"| {r['ours_mib']:.1f} / {r['hand_mib']:.1f} / {r.get('pandas_mib', float('nan')):.0f} "
              f"| {r['ours_rss']:.0f} / {r.get('pandas_rss', float('nan')):.0f} "
              f"| {r['floor_s']:.2f}s | {ceiling} |", flush=True)
        print(f"<!-- {rows}: sampled={r['sampled']}; {r['checks']} -->", flush=True)


if __name__ == "__main__":
    main()
