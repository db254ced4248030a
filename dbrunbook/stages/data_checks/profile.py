"""Stage 5 data profile: per table one aggregate pass in SQL; pandas only holds the answers.

:func:`profile_table` reads the row count the catalog already knows (or counts), then runs one
aggregate query computing, per column, the null count, min/max, the mean of numbers, the
shortest and longest string and, up to ``exact_limit`` rows, the exact distinct count. Top
values and histogram buckets are GROUP BY queries, over the whole table up to ``sample_rows``
rows and over a sample beyond (PostgreSQL TABLESAMPLE, elsewhere every k-th primary key); a
sampled profile and a distinct estimate (GEE estimator, beyond ``exact_limit``) are labelled. Everything
runs on a read-only connection under the statement timeout.

A table that does not exist yet (one the change creates) has nothing to profile: its profile says
so in ``note``. A column the database cannot aggregate is profiled as far as it can be, with the
reason in its ``note``. No label the queries order by can be a user's column name.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dbrunbook.core.db import dialect_name
from dbrunbook.core.results import Finding
from dbrunbook.errors import UsageError
from dbrunbook.stages.data_checks._base import read_only
from dbrunbook.stages.data_checks._dialect import Dialect

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_NUMBER, _TEXT, _TEMPORAL, _OTHER = "number", "text", "temporal", "other"


@dataclass
class ColumnProfile:
    """What one column holds."""

    name: str
    type: str
    kind: str
    nulls: int = 0
    distinct: int | None = None
    distinct_estimated: bool = False
    min: Any = None
    max: Any = None
    mean: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    top: list[tuple[Any, int]] = field(default_factory=list)
    histogram: list[tuple[float, float, int]] = field(default_factory=list)
    #: Why part of the profile is missing (the database's error), empty when complete.
    note: str = ""


@dataclass
class TableProfile:
    """The profile of one table; ``sampled``: top values and histograms come from ``sample_rows`` rows."""

    table: str
    rows: int
    columns: list[ColumnProfile]
    sampled: bool
    sample_rows: int
    seconds: float
    #: False for a table the database does not have (yet): nothing was profiled.
    exists: bool = True
    note: str = ""

    def frame(self) -> pd.DataFrame:
        """One row per column: the figures a reviewer reads."""
        rows = [{"column": c.name, "type": c.type, "nulls": c.nulls,
                 "null %": round(100 * c.nulls / self.rows, 2) if self.rows else 0.0,
                 "distinct": c.distinct,
                 "distinct is": "estimate" if c.distinct_estimated else "exact" if c.distinct is not None else "",
                 "min": c.min, "max": c.max, "mean": c.mean, "min len": c.min_length, "max len": c.max_length,
                 "top": ", ".join(f"{v!s} ({n})" for v, n in c.top[:3]), "note": c.note} for c in self.columns]
        return pd.DataFrame(rows, columns=_FRAME_COLUMNS)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "columns": [{k: (str(v) if k in ("min", "max") and v is not None else v)
                                            for k, v in asdict(c).items()} for c in self.columns]}


_FRAME_COLUMNS = ["column", "type", "nulls", "null %", "distinct", "distinct is", "min", "max", "mean", "min len",
                  "max len", "top", "note"]


def _kind(column: sa.Column[Any]) -> str:
    t = column.type
    if isinstance(t, sa.Boolean):
        return _OTHER
    if isinstance(t, (sa.Integer, sa.Numeric, sa.Float)):
        return _NUMBER
    if isinstance(t, sa.String):
        return _TEXT
    if isinstance(t, (sa.Date, sa.DateTime, sa.Time)):
        return _TEMPORAL
    return _OTHER


def _aggregates(table: sa.Table, columns: list[sa.Column[Any]], dialect: Dialect, exact: bool) -> sa.Select[Any]:
    """The one aggregate pass: labels are positional so no identifier reaches a label."""
    parts: list[Any] = [sa.func.count().label("rows")]
    for i, col in enumerate(columns):
        kind = _kind(col)
        parts.append(sa.func.count(col).label(f"c{i}_n"))
        if kind == _OTHER:
            continue
        if exact:
            parts.append(sa.func.count(sa.distinct(col)).label(f"c{i}_d"))
        parts += [sa.func.min(col).label(f"c{i}_min"), sa.func.max(col).label(f"c{i}_max")]
        if kind == _NUMBER:
            parts.append(sa.func.avg(col).label(f"c{i}_avg"))
        if kind == _TEXT:
            # An enum is text to SQLAlchemy but has no length function of its own on PostgreSQL.
            length = dialect.chars(dialect.text(col) if isinstance(col.type, sa.Enum) else col)
            parts += [sa.func.min(length).label(f"c{i}_lmin"), sa.func.max(length).label(f"c{i}_lmax")]
    return sa.select(*parts).select_from(table)


def _gee(conn: Connection, source: sa.FromClause, column: sa.ColumnElement[Any], rows: int, n: int) -> int:
    """Guaranteed-error estimator of distinct values from a sample of ``n`` of ``rows`` rows."""
    # Only our labels reach the derived table, so no user column can shadow them.
    groups = sa.select(sa.func.count().label("dbrunbook_n")).select_from(source) \
        .where(column.is_not(None)).group_by(column).subquery("dbrunbook_g")
    once = sa.case((groups.c.dbrunbook_n == 1, 1), else_=0)
    d, f1 = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(once), 0))).one()
    return int(round(math.sqrt(rows / n) * int(f1) + int(d) - int(f1))) if n else 0


def _top(conn: Connection, source: sa.FromClause, column: sa.ColumnElement[Any], k: int) -> list[tuple[Any, int]]:
    # Ordered by the expressions, not by labels: a label can be a user's column name too.
    query = sa.select(column, sa.func.count()).select_from(source).where(column.is_not(None)) \
        .group_by(column).order_by(sa.func.count().desc(), column).limit(k)
    return [(v, int(c)) for v, c in conn.execute(query)]


def _histogram(conn: Connection, source: sa.FromClause, column: sa.ColumnElement[Any], low: float, high: float,
               buckets: int) -> list[tuple[float, float, int]]:
    width = (high - low) / buckets if high > low else 1.0
    value = sa.cast(column, sa.Float)
    bucket = sa.case((value >= high, buckets - 1), else_=sa.func.floor((value - low) / width))
    # Grouped through a derived table: a GROUP BY on a label would meet a user's column of that name.
    inner = sa.select(bucket.label("dbrunbook_b")).select_from(source).where(column.is_not(None)) \
        .subquery("dbrunbook_h")
    query = sa.select(inner.c.dbrunbook_b, sa.func.count()).group_by(inner.c.dbrunbook_b)
    counts = {int(b): int(n) for b, n in conn.execute(query)}
    return [(low + i * width, low + (i + 1) * width, counts.get(i, 0)) for i in range(buckets)]


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def profile_table(engine: Engine, table: str, columns: Sequence[str] | None = None, exact_limit: int = 1_000_000,
                  sample_rows: int = 10_000, top: int = 5, buckets: int = 10,
                  timeout_ms: int = 300_000) -> TableProfile:
    """Profile ``table`` with one aggregate pass plus GROUP BY queries (sampled when large).

    A table the database does not have (yet) gives an empty profile whose ``note`` says so.
    """
    started = time.perf_counter()
    name = dialect_name(engine)
    with read_only(engine, timeout_ms) as (conn, reopen):
        if not sa.inspect(conn).has_table(table):
            return TableProfile(table, 0, [], False, 0, time.perf_counter() - started, exists=False,
                                note=f"table {table} does not exist in the database yet: nothing to profile")
        live = sa.Table(table, sa.MetaData(), autoload_with=conn)
        missing = [c for c in columns or [] if c not in live.c]
        if missing:
            raise UsageError(f"table {table!r} has no column {', '.join(missing)}")
        cols = [live.c[c] for c in columns] if columns else list(live.columns)
        dialect = Dialect(name, strict=False)
        estimate = dialect.facts.estimated_rows(conn, live)  # the catalog's belief, where it keeps one
        if estimate is None:
            estimate = int(conn.execute(sa.select(sa.func.count()).select_from(live)).scalar_one())
        exact = estimate <= exact_limit
        agg, failed = _aggregate_pass(conn, reopen, live, cols, dialect, exact)
        rows = int(agg["rows"]) if agg["rows"] is not None else estimate
        source: sa.FromClause = live
        n = rows
        if rows > sample_rows and len(failed) < len(cols):  # a GROUP BY per column: bound their cost
            source = dialect.facts.sample(live, sample_rows / rows, sample_rows)
            n = int(conn.execute(sa.select(sa.func.count()).select_from(source)).scalar_one())
        profiles = []
        for i, col in enumerate(cols):
            if i in failed:
                profiles.append(ColumnProfile(col.name, str(col.type), _kind(col), note=failed[i]))
                continue
            profile = ColumnProfile(col.name, str(col.type), _kind(col), nulls=rows - int(agg[f"c{i}_n"]))
            try:
                _column(conn, profile, source, live, col, i, agg, rows, n, exact, top, buckets)
            except sa.exc.SQLAlchemyError as exc:
                reopen()
                profile.note = f"profiled in part: {_reason(exc)}"
            profiles.append(profile)
    return TableProfile(table, rows, profiles, source is not live, n, time.perf_counter() - started)


def _aggregate_pass(conn: Connection, reopen: Callable[[], None], live: sa.Table, cols: list[sa.Column[Any]],
                    dialect: Dialect, exact: bool) -> tuple[dict[str, Any], dict[int, str]]:
    """The aggregates of every column in one pass or, when that fails, column by column.

    Returns the aggregates and, per column the database could not aggregate, its reason.
    """
    try:
        return dict(conn.execute(_aggregates(live, cols, dialect, exact)).one()._mapping), {}
    except sa.exc.OperationalError as exc:  # a timeout: a pass per column would only time out again, each
        reopen()
        return {"rows": None}, {i: f"not profiled: {_reason(exc)}" for i in range(len(cols))}
    except sa.exc.SQLAlchemyError:  # a type the aggregates do not fit: find the column, keep the others
        reopen()
    agg: dict[str, Any] = {"rows": conn.execute(sa.select(sa.func.count()).select_from(live)).scalar_one()}
    failed: dict[int, str] = {}
    for i, col in enumerate(cols):
        try:
            one = conn.execute(_aggregates(live, [col], dialect, exact)).one()._mapping
        except sa.exc.SQLAlchemyError as exc:
            reopen()
            failed[i] = f"not profiled: {_reason(exc)}"
            continue
        agg.update({f"c{i}_{key.split('_', 1)[1]}": value for key, value in one.items() if key != "rows"})
    return agg, failed


def _column(conn: Connection, profile: ColumnProfile, source: sa.FromClause, live: sa.Table, col: sa.Column[Any],
            i: int, agg: Any, rows: int, n: int, exact: bool, top: int, buckets: int) -> None:
    kind = profile.kind
    if kind == _OTHER:
        return
    ref = col if source is live else source.c[col.name]
    profile.min, profile.max = agg[f"c{i}_min"], agg[f"c{i}_max"]
    if exact:
        profile.distinct = int(agg[f"c{i}_d"])
    else:
        profile.distinct, profile.distinct_estimated = _gee(conn, source, ref, rows, n), True
    if kind == _NUMBER and agg[f"c{i}_avg"] is not None:
        profile.mean = float(agg[f"c{i}_avg"])
    if kind == _TEXT and agg[f"c{i}_lmin"] is not None:
        profile.min_length, profile.max_length = int(agg[f"c{i}_lmin"]), int(agg[f"c{i}_lmax"])
    profile.top = _top(conn, source, ref, top)
    if kind == _NUMBER and profile.min is not None:
        profile.histogram = _histogram(conn, source, ref, float(profile.min), float(profile.max), buckets)


def profile_tables(engine: Engine, tables: Sequence[str], **options: Any) -> list[TableProfile]:
    """:func:`profile_table` for each of ``tables``; one the database lacks yet gets an empty profile with a note."""
    return [profile_table(engine, t, **options) for t in tables]


def findings(profiles: Sequence[TableProfile]) -> list[Finding]:
    """DC101 for each table not profiled because it does not exist yet, DC102 for each column profiled in part."""
    out = [Finding("DC101", "info", p.note, p.table) for p in profiles if not p.exists]
    out += [Finding("DC102", "warn", f"could not profile {p.table}.{c.name} fully: {c.note}", f"{p.table}.{c.name}")
            for p in profiles for c in p.columns if c.note]
    return out


#: A column whose distinct values reach this share of its non-null rows identifies rows: its top values are noise.
NEAR_UNIQUE_SHARE = 0.9


def charted(profile: TableProfile) -> list[ColumnProfile]:
    """The columns whose distribution a chart shows something of.

    Left out: timestamps and dates, keys and references (``id``, ``*_id``, near-unique integers: a flat
    histogram), near-unique text (top values seen once each) and columns whose top values each occur once.
    A near-unique measure (an amount, a price) keeps its histogram: its spread is what it shows.
    """
    def says_something(c: ColumnProfile) -> bool:
        filled = profile.rows - c.nulls
        if c.kind == _TEMPORAL or filled <= 0 or not (c.histogram or c.top):
            return False
        if c.name.lower() == "id" or c.name.lower().endswith("_id"):
            return False
        unique = c.distinct is not None and c.distinct >= NEAR_UNIQUE_SHARE * filled
        if c.histogram:
            return not (unique and "INT" in c.type.upper())
        return not unique and any(n > 1 for _, n in c.top)

    return [c for c in profile.columns if says_something(c)]


def chart(profile: TableProfile, max_columns: int = 6) -> Figure:
    """Histograms of the numeric columns and top values of the others, one panel each, for :func:`charted` columns.

    With no such column the figure only says so; a notebook shows the chart when :func:`charted` is not empty.
    """
    from matplotlib.figure import Figure

    shown = charted(profile)[:max_columns]
    across, down = min(3, max(1, len(shown))), max(1, math.ceil(len(shown) / 3))
    fig = Figure(figsize=(4 * across, 3 * down))
    for k, col in enumerate(shown):
        ax = fig.add_subplot(down, across, k + 1)
        if col.histogram:
            ax.bar([lo for lo, _, _ in col.histogram], [c for _, _, c in col.histogram],
                   width=[hi - lo for lo, hi, _ in col.histogram], align="edge")
            ax.set_ylabel("rows", fontsize=8)
        else:
            ax.barh([str(v)[:20] for v, _ in col.top][::-1], [c for _, c in col.top][::-1])
            ax.set_xlabel("rows", fontsize=8)
        ax.set_title(col.name + (" (sample)" if profile.sampled else ""), fontsize=9)
    if not shown:
        fig.text(0.5, 0.5, "no column worth charting (keys, timestamps and unique values left out)",
                 ha="center", va="center", fontsize=9)
    fig.suptitle(f"{profile.table}: {profile.rows:,} rows")
    fig.tight_layout()
    return fig
