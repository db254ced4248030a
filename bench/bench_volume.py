"""Bench: how well does the timing curve predict the upgrade time 5x beyond the sizes it was fitted on?

On PostgreSQL: build the demo shop (``--users`` users, about five rows per user), repair its data
so the v2 change applies, then time the upgrade on copies grown by each fitted scale, fit the
line, predict at ``--far`` (5x the largest fitted scale by default) and measure there. Every size
is timed ``--repeats`` times on fresh copies, the sizes taking turns, and the fastest kept (other
load on a shared machine only ever adds time). Prints a JSON summary; the
goal is a prediction within +-30 % of the measurement. Not a test: run it by hand,

    .venv/bin/python bench/bench_volume.py --server postgresql+psycopg://postgres@127.0.0.1:5432/postgres
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


from dbrunbook.stages import staging as volume
from dbrunbook.demo import repair_demo_data
from dbrunbook.core.db import create_database, drop_database, scratch_name, with_database
from dbrunbook.demo import write_demo
from dbrunbook.stages.migration import plan_migration
from dbrunbook.stages.staging import Scale, TimingCurve, TimingPoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--scales", default="1,2,3", help="fitted growth factors")
    parser.add_argument("--far", type=float, default=0, help="measured factor (default: 5x the largest fitted)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",")]
    far = args.far or 5 * max(scales)

    url = with_database(args.server, scratch_name("dbrunbook_bench")).render_as_string(hide_password=False)
    create_database(url)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="dbrunbook-bench-") as folder:
            project = write_demo(Path(folder) / "demo", db=url, users=args.users)
            repair_demo_data(url)
            target = project.target()
            scripts = plan_migration(target, Path(folder) / "plan").script_dir
            # Sizes take turns, so a burst of load from elsewhere hits them alike; keep the fastest.
            runs: dict[float, list[TimingPoint]] = {f: [] for f in [*scales, far]}
            for _ in range(args.repeats):
                for factor in runs:
                    runs[factor].append(volume.time_at(target, scripts, Scale(factor=factor)))
    finally:
        drop_database(url)
    failed = [p for points in runs.values() for p in points if not p.ok]
    if failed:
        raise SystemExit(f"the upgrade failed: {failed[0].error}")
    best = {f: min(points, key=lambda p: p.seconds) for f, points in runs.items()}
    fitted = [best[f] for f in scales]
    measured = best[far]
    curve = TimingCurve(fitted)
    curve.intercept, curve.slope = volume.fit(fitted)
    predicted = curve.predict(measured.rows)
    error = (predicted - measured.seconds) / measured.seconds
    summary = {
        "dialect": "postgresql", "users": args.users, "repeats": args.repeats,
        "fitted": [{"scale": p.scale, "rows": p.rows, "seconds": round(p.seconds, 4)} for p in fitted],
        "intercept_s": round(curve.intercept, 4), "seconds_per_million_rows": round(curve.slope * 1e6, 4),
        "far": {"scale": far, "rows": measured.rows, "measured_s": round(measured.seconds, 4),
                "predicted_s": round(predicted, 4), "error_pct": round(100 * error, 1)},
        "within_30_pct": abs(error) <= 0.30,
        "bench_wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, indent=2))
    return 0 if summary["within_30_pct"] else 1


if __name__ == "__main__":
    sys.exit(main())
