"""Stage 9: grow a scratch copy to a production-like volume and time the migration against size.

:func:`grow` multiplies a copy's rows (``Scale("10x")``) or brings tables to given row counts
(``Scale("users=200000")``) with synthetic rows made in the database, one ``INSERT ... SELECT``
per table that replays the table's own rows ``k`` times. One aggregate pass per table (the
column profile) decides how each column is replayed (:mod:`dbrunbook.stages.staging._values`):

- one column of each primary key and unique constraint, and near-unique integer and text
  columns, get fresh values (shifted numbers, dates and times, prefixed text, derived UUIDs);
- foreign keys follow their parent's rule, so every reference points at an existing row;
- everything else keeps the replayed row's value, so null rates, distributions and the data's
  problems (duplicates, NULLs where a constraint is coming) keep their proportions.

A table that cannot be grown (a unique key of booleans, an INSERT the database refuses) is left
as it is, with the reason in :attr:`Growth.skipped`, and the other tables still grow; stage 9
reports it as VL004. :func:`growth_sql` is the twin of :func:`grow` that returns the statements
without running them. :func:`timing_curve` grows fresh copies to two or three sizes, times the
upgrade on each, fits time against rows (least squares, numpy) through the sizes where the upgrade
succeeded and predicts the time at the production size; with fewer than two such sizes it predicts nothing
and says so (a failed upgrade's time is the time until it failed, not a duration to plan for).
"""
from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from dbrunbook import dialects
from dbrunbook.alembic_ops.migration import alembic_config, apply_upgrade
from dbrunbook.core.config import Target
from dbrunbook.core.db import dialect_name, make_engine
from dbrunbook.core.evidence import TimingPointRecord
from dbrunbook.core.results import Finding
from dbrunbook.data.clone import disable_fk_checks, scratch_copy, sync_key_generators
from dbrunbook.errors import UsageError
from dbrunbook.stages.staging._plan import _SKIP, MAX_ROUNDS, Growth, TableGrowth, growth_plan, insert_statement, reason
from dbrunbook.stages.staging._values import NEAR_UNIQUE, NEAR_UNIQUE_MIN_ROWS, ColumnRule

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["NEAR_UNIQUE", "NEAR_UNIQUE_MIN_ROWS", "ColumnRule", "Growth", "Scale", "StagingOutcome", "TableGrowth",
           "TimingCurve", "TimingPoint", "findings", "fit", "grow", "grow_report", "growth_plan", "growth_sql",
           "insert_statement", "plot", "row_counts", "run", "time_at", "timed", "timing_curve"]


@dataclass(frozen=True)
class Scale:
    """How much to grow: a factor for every table, or row counts for some."""

    factor: float = 1.0
    rows: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, text: str | float | int) -> Scale:
        """``"10x"``, ``"2.5"`` or ``"users=200000,orders=400000"``."""
        raw = str(text).strip().lower()
        if "=" in raw:
            pairs = []
            for item in filter(None, (part.strip() for part in raw.split(","))):
                name, _, count = item.partition("=")
                if not count.strip().isdigit():
                    raise UsageError(f"--scale wants TABLE=ROWS pairs, not {item!r}")
                pairs.append((name.strip(), int(count)))
            return cls(rows=tuple(pairs))
        match = re.fullmatch(r"(\d+(?:\.\d+)?)x?", raw)
        if not match or not 1 <= float(match.group(1)) <= MAX_ROUNDS + 1:
            raise UsageError(f"--scale wants a factor from 1 to {MAX_ROUNDS + 1} (like 10x) or TABLE=ROWS pairs, "
                             f"not {text!r}")
        return cls(factor=float(match.group(1)))

    def target_rows(self, table: str, rows: int) -> int:
        wanted = dict(self.rows)
        if self.rows:
            return max(wanted.get(table, rows), rows)
        return round(rows * self.factor)


def growth_sql(url: URL | str, scale: Scale) -> list[str]:
    """The statements :func:`grow` would run on the database at ``url``; reads it, changes nothing."""
    engine = make_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            plans = {p.table: p for p in growth_plan(conn, meta, scale)}
        statements = [insert_statement(meta.tables[name], plan, plans) for name, plan in plans.items()]
        return [str(s.compile(engine, compile_kwargs={"literal_binds": True})) for s in statements if s is not None]
    finally:
        engine.dispose()


def grow(url: URL | str, scale: Scale) -> dict[str, int]:
    """Grow the (scratch) database at ``url`` by ``scale``; returns the rows per table after."""
    return grow_report(url, scale).rows


def grow_report(url: URL | str, scale: Scale) -> Growth:
    """Grow the (scratch) database at ``url`` by ``scale``, table by table; never raises on its data.

    Each table grows in its own transaction, parents first; one the database refuses is left as
    it was, named in :attr:`Growth.skipped` with the reason, and its children keep their keys.
    """
    engine = make_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            plans = {p.table: p for p in growth_plan(conn, meta, scale)}
        for name, plan in plans.items():
            statement = insert_statement(meta.tables[name], plan, plans)  # built now: a parent may have stopped
            if statement is None:
                continue
            try:
                with engine.begin() as conn:
                    disable_fk_checks(conn)
                    conn.execute(statement)
            except DBAPIError as exc:
                plan.stop(f"the database refused the synthetic rows: {reason(exc)}")
        grown = [n for n, p in plans.items() if p.rounds]
        with engine.begin() as conn:
            sync_key_generators(conn, [meta.tables[n] for n in grown])
        _settle(engine, grown)
        return Growth(row_counts(engine), {n: p.problem for n, p in plans.items() if p.problem})
    finally:
        engine.dispose()


def _settle(engine: sa.Engine, tables: list[str]) -> None:
    """Run the dialect's ``settle_sql`` on each grown table: the copy looks like a settled production database.

    Statistics gathered and PostgreSQL's visibility hints set, rather than those of a fresh bulk load.
    """
    found = dialects.get(dialect_name(engine))
    if found is None:
        return
    statement = found.settle_sql
    # VACUUM refuses to run inside a transaction.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        quote = conn.dialect.identifier_preparer.quote
        for table in tables:
            conn.execute(sa.text(statement.format(table=quote(table)))).close()


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Exact rows per table (Alembic's version table left out)."""
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return {t.name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
                for t in meta.sorted_tables if t.name not in _SKIP}


#: The upgrade timed on a copy grown by ``scale``: the record stage 09 keeps of it.
TimingPoint = TimingPointRecord


@dataclass
class TimingCurve:
    """Upgrade time against total rows, its least-squares line, and the prediction."""

    points: list[TimingPoint]
    intercept: float = 0.0
    slope: float = 0.0
    production_rows: int = 0
    predicted_seconds: float | None = None

    def predict(self, rows: int) -> float:
        """Seconds the fitted line gives for ``rows`` rows."""
        return max(self.intercept + self.slope * rows, 0.0)

    @property
    def fitted(self) -> bool:
        """Whether a line was fitted: two sizes or more where the upgrade succeeded."""
        return self.predicted_seconds is not None

    def headline(self) -> str:
        """The prediction in words, or why there is none."""
        if self.fitted:
            return f"upgrade predicted at {self.predicted_seconds:.2f}s for {self.production_rows:,} rows"
        ok = sum(p.ok for p in self.points)
        return (f"no prediction: the upgrade succeeded at {ok} of {len(self.points)} sizes and a line needs two "
                f"(the time of a failed upgrade is only the time until it failed)")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fit(points: Sequence[TimingPoint]) -> tuple[float, float]:
    """Intercept and slope of seconds against rows (a line through the points, least squares)."""
    import numpy as np

    if len(points) < 2 or len({p.rows for p in points}) < 2:
        raise UsageError("a timing curve needs at least two different sizes")
    slope, intercept = np.polyfit([p.rows for p in points], [p.seconds for p in points], 1)
    return float(intercept), float(slope)


def time_at(target: Target, script_dir: Path, scale: Scale, mode: str = "full", rows: int = 1000) -> TimingPoint:
    """Grow a fresh copy of ``target`` (full, or a sample of ``rows`` per table) and time the upgrade on it."""
    cfg = alembic_config(target, script_dir)
    with scratch_copy(target.db, mode=mode, rows=rows) as url:
        started = time.perf_counter()
        growth = grow_report(url, scale)
        grown = time.perf_counter() - started
        result = apply_upgrade(cfg, url, "heads")
    return TimingPoint(scale.factor, sum(growth.rows.values()), round(result.seconds, 6), result.ok, result.error,
                       round(grown, 3), growth.skipped)


def _fastest(points: list[TimingPoint]) -> TimingPoint:
    """Other load on the server only ever adds time: the fastest timing is the truest."""
    ok = [p for p in points if p.ok]
    return min(ok, key=lambda p: p.seconds) if ok else points[0]


def timing_curve(target: Target, script_dir: Path, scales: Sequence[float] = (1, 2, 3),
                 production_rows: int | None = None, mode: str = "full", rows: int = 1000,
                 repeats: int = 1) -> TimingCurve:
    """Time the upgrade at each of ``scales`` and predict it at ``production_rows`` (default: the target's).

    The copies are full copies of the target grown by each scale, or, with ``mode="sample"``,
    samples of ``rows`` rows per table grown by each scale: the cheap way on a large target.
    Each size is timed ``repeats`` times on fresh copies, the sizes taking turns so a burst of
    load elsewhere hits them alike, and the fastest timing of each is kept.
    """
    runs: list[list[TimingPoint]] = [[] for _ in scales]
    for _ in range(max(repeats, 1)):
        for timings, factor in zip(runs, scales, strict=True):
            timings.append(time_at(target, script_dir, Scale(factor=float(factor)), mode, rows))
    points = [_fastest(timings) for timings in runs]
    curve = TimingCurve(points)
    succeeded = [p for p in points if p.ok]
    if len({p.rows for p in succeeded}) < 2:  # nothing to fit: no line, no prediction
        return curve
    curve.intercept, curve.slope = fit(succeeded)
    if production_rows is None:
        engine = make_engine(target.db)
        try:
            production_rows = sum(row_counts(engine).values())
        finally:
            engine.dispose()
    curve.production_rows = production_rows
    curve.predicted_seconds = round(curve.predict(production_rows), 6)
    return curve


def plot(curve: TimingCurve) -> Figure:
    """Measured times, the fitted line and the prediction at the production size (or why there is none)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    ax = figure.subplots()
    good = [p for p in curve.points if p.ok]
    bad = [p for p in curve.points if not p.ok]
    if good:
        ax.plot([p.rows for p in good], [p.seconds for p in good], "o", label="measured")
    if bad:
        ax.plot([p.rows for p in bad], [p.seconds for p in bad], "x", color="red", label="measured (upgrade failed)")
    if curve.fitted:
        xs = [0, max([curve.production_rows, *(p.rows for p in curve.points)])]
        ax.plot(xs, [curve.predict(x) for x in xs], "-", color="grey", label="fitted line (successful runs)")
        ax.plot([curve.production_rows], [curve.predicted_seconds or 0.0], "*", markersize=12,
                label="predicted at production size")
    else:
        ax.text(0.5, 0.5, "no prediction: fewer than two sizes where the upgrade succeeded",
                transform=ax.transAxes, ha="center", va="center", fontsize=9, color="#444")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:,.0f}")
    ax.set_xlabel("rows in the database")
    ax.set_ylabel("upgrade seconds")
    ax.set_title("Upgrade time against size")
    ax.legend()
    figure.tight_layout()
    return figure


def findings(curve: TimingCurve, max_seconds: float = 60.0) -> list[Finding]:
    """The prediction, whether the upgrade fails or runs longer than ``max_seconds``, and tables not grown (VL004)."""
    out = []
    failed = [p for p in curve.points if not p.ok]
    evidence = {"points": [asdict(p) for p in curve.points], "slope": curve.slope, "intercept": curve.intercept}
    skipped = {table: why for p in curve.points for table, why in p.skipped.items()}
    for table, why in sorted(skipped.items()):
        out.append(Finding("VL004", "warn", f"table {table} was not grown as asked: {why}; the prediction counts "
                                            f"its rows as they are", table, {"reason": why},
                           "check the table's keys; a key the copy cannot vary keeps the table at its size"))
    if failed:
        out.append(Finding("VL002", "block", f"the upgrade fails on grown copies: {failed[0].error}",
                           "", evidence, "see stage 04 for the failing statement; times are until the failure"))
    predicted = curve.predicted_seconds or 0.0
    if curve.fitted:
        out.append(Finding("VL001", "info", f"predicted upgrade time at {curve.production_rows:,} rows: "
                                            f"{predicted:.2f}s", "", evidence))
    else:
        out.append(Finding("VL001", "info", curve.headline(), "", evidence))
    if predicted > max_seconds and not failed:
        out.append(Finding("VL003", "warn",
                           f"the upgrade is predicted to take {predicted:.0f}s, over {max_seconds:.0f}s", "",
                           evidence, "split the migration, build indexes concurrently, or backfill in batches"))
    return out


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.staging._stage import StagingOutcome, run, timed  # noqa: E402
