"""Bench: how long a user waits for what is not their migration.

Three ratios, each against a baseline measured in the same run (the machines are noisy):

- ``dbrunbook --help`` against ``alembic --help`` (both console scripts of this venv), the two
  commands taking turns ``--repeats`` times; the ratio of medians. Goal: at most 1.0.
- the demo's wall time (``dbrunbook demo --quiet``) against the sum of the execution times of its
  executed notebooks' cells (papermill records each cell's duration). Goal: at most 1.2. What is
  left is kernel start-up, imports and papermill's own work between stages.
- the floor: papermill running an empty notebook in a fresh kernel, timed the same way, so the
  per-stage overhead can be read against what any papermill run pays.

Not a test: run it by hand and copy the JSON into ``startup.md``::

    .venv/bin/python bench/bench_startup.py --repeats 15 --demos 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def _time(argv: list[str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode not in ok:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}")
    return time.perf_counter() - start


def help_ratio(repeats: int) -> dict[str, float]:
    """``dbrunbook --help`` against ``alembic --help``, taking turns; medians and their ratio."""
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(_time([str(BIN / "dbrunbook"), "--help"]))
        theirs.append(_time([str(BIN / "alembic"), "--help"]))
    a, b = statistics.median(ours), statistics.median(theirs)
    return {"dbrunbook_help_s": round(a, 3), "alembic_help_s": round(b, 3), "ratio": round(a / b, 2)}


def _cells_seconds(notebook: Path) -> float:
    """The sum of papermill's recorded duration of every cell of an executed notebook."""
    nb = json.loads(notebook.read_text())
    return sum(float((cell.get("metadata", {}).get("papermill") or {}).get("duration") or 0.0)
               for cell in nb["cells"])


def demo_ratio() -> dict[str, float]:
    """One ``dbrunbook demo`` run: its wall time, the sum of its cells' times, and their ratio."""
    out = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    shutil.rmtree(out)
    try:
        # the demo's change blocks on purpose: exit 1 is its documented "blocked"
        wall = _time([str(BIN / "dbrunbook"), "demo", "--quiet", "--out", str(out)], ok=(0, 1))
        notebooks = sorted(out.glob("runs/*/*.ipynb"))
        cells = sum(_cells_seconds(n) for n in notebooks)
        return {"demo_wall_s": round(wall, 2), "cells_s": round(cells, 2), "stages": len(notebooks),
                "ratio": round(wall / cells, 2) if cells else float("nan")}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def floor(repeats: int) -> dict[str, float]:
    """papermill running an empty one-cell notebook in a fresh kernel, in process: the least any stage pays."""
    import nbformat
    import papermill

    folder = Path(tempfile.mkdtemp(prefix="bench-floor-"))
    empty = folder / "empty.ipynb"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("pass")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, empty)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        papermill.execute_notebook(str(empty), str(folder / "out.ipynb"), progress_bar=False, log_output=False)
        times.append(time.perf_counter() - start)
    shutil.rmtree(folder, ignore_errors=True)
    return {"empty_notebook_s": round(statistics.median(times), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="turns of each --help, and of the floor")
    parser.add_argument("--demos", type=int, default=3, help="demo runs (the median ratio is reported)")
    args = parser.parse_args(argv)
    demos = [demo_ratio() for _ in range(args.demos)]
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(), "cores": os.cpu_count(), "load": os.getloadavg()[0],
        "help": help_ratio(args.repeats),
        "demo_runs": demos,
        "demo_ratio_median": statistics.median(d["ratio"] for d in demos),
        "floor": floor(args.repeats),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
