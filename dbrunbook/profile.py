"""Stage 5 data profile: per table one aggregate pass in SQL; pandas only holds the answers.

:func:`profile_table` reads the row count the catalog already knows (or counts), then runs one
aggregate query computing, per column, the null count, min/max, the mean of numbers, the
shortest and longest string and, up to ``exact_limit`` rows, the exact distinct count. Top
values and histogram buckets are GROUP BY queries, over the whole table up to ``sample_rows``
rows and over a sample beyond (PostgreSQL TABLESAMPLE, elsewhere every k-th primary key); a
sampled profile and a distinct estimate (GEE estimator, beyond ``exact_limit``) are labelled. Everything
runs on a read-only connection under the statement timeout.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .checks._base import read_only
from .checks._dialect import Dialect
from .db import dialect_name
from .errors import UsageError

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


@dataclass
class TableProfile:
    """The profile of one table; ``sampled``: top values and histograms come from ``sample_rows`` rows."""

    table: str
    rows: int
    columns: list[ColumnProfile]
    sampled: bool
    sample_rows: int
    seconds: float

    def frame(self) -> pd.DataFrame:
        """One row per column: the figures a reviewer reads."""
        rows = [{"column": c.name, "type": c.type, "nulls": c.nulls,
                 "null %": round(100 * c.nulls / self.rows, 2) if self.rows else 0.0,
                 "distinct": c.distinct, "distinct is": "estimate" if c.distinct_estimated else "exact" if c.distinct is not None else "",
                 "min": c.min, "max": c.max, "mean": c.mean, "min len": c.min_length, "max len": c.max_length,
                 "top": ", ".join(f"{v!s} ({n})" for v, n in c.top[:3])} for c in self.columns]
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "columns": [{k: (str(v) if k in ("min", "max") and v is not None else v)
                                            for k, v in asdict(c).items()} for c in self.columns]}


def _kind(column: sa.Column[Any]) -> str:
    t = column.type
    if isinstance(t, sa.Boolean):
        return _OTHER
    if isinstance(t, (sa.Integer, sa.Numeric)):
        return _NUMBER
    if isinstance(t, sa.String):
        return _TEXT
    if isinstance(t, (sa.Date, sa.DateTime, sa.Time)):
        return _TEMPORAL
    return _OTHER


def _catalog_rows_pg(conn: Connection, table: sa.Table) -> int | None:
    name = conn.dialect.identifier_preparer.format_table(table)
    value = conn.execute(sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:n)"),
                         {"n": name}).scalar()
    return int(value) if value is not None and value >= 0 else None


def _catalog_rows_my(conn: Connection, table: sa.Table) -> int | None:
    value = conn.execute(sa.text("SELECT table_rows FROM information_schema.tables "
                                 "WHERE table_schema = DATABASE() AND table_name = :n"), {"n": table.name}).scalar()
    return int(value) if value is not None else None


#: Rows the catalog believes a table has (cheap, approximate); None: count them.
_CATALOG_ROWS: dict[str, Callable[[Connection, sa.Table], int | None]] = {
    "postgresql": _catalog_rows_pg, "mariadb": _catalog_rows_my, "mysql": _catalog_rows_my,
}


def _tablesample(table: sa.Table, fraction: float, size: int) -> sa.FromClause:
    return sa.tablesample(table, sa.func.system(min(100.0, 100 * fraction)), seed=sa.literal(7))


def _every_kth(table: sa.Table, fraction: float, size: int) -> sa.FromClause:
    key = list(table.primary_key.columns)
    if len(key) != 1 or not isinstance(key[0].type, sa.Integer):
        return sa.select(table).limit(size).subquery("sample")  # the first rows: biased, but labelled as sampled
    step = max(1, round(1 / fraction))
    return sa.select(table).where(key[0] % step == 0).subquery("sample")


#: How a dialect takes a sample of a fraction of a table.
_SAMPLERS: dict[str, Callable[[sa.Table, float, int], sa.FromClause]] = {
    "postgresql": _tablesample, "sqlite": _every_kth, "mariadb": _every_kth, "mysql": _every_kth,
}


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
            length = dialect.chars(col)
            parts += [sa.func.min(length).label(f"c{i}_lmin"), sa.func.max(length).label(f"c{i}_lmax")]
    return sa.select(*parts).select_from(table)


def _gee(conn: Connection, source: sa.FromClause, column: sa.ColumnElement[Any], rows: int, n: int) -> int:
    """Guaranteed-error estimator of distinct values from a sample of ``n`` of ``rows`` rows."""
    groups = sa.select(column.label("v"), sa.func.count().label("c")).select_from(source) \
        .where(column.is_not(None)).group_by(column).subquery("g")
    d, f1 = conn.execute(sa.select(sa.func.count(), sa.func.coalesce(
        sa.func.sum(sa.case((groups.c.c == 1, 1), else_=0)), 0))).one()
    return int(round(math.sqrt(rows / n) * int(f1) + int(d) - int(f1))) if n else 0


def _top(conn: Connection, source: sa.FromClause, column: sa.ColumnElement[Any], k: int) -> list[tuple[Any, int]]:
    query = sa.select(column, sa.func.count().label("c")).select_from(source).where(column.is_not(None)) \
        .group_by(column).order_by(sa.desc("c"), column).limit(k)
    return [(v, int(c)) for v, c in conn.execute(query)]


def _histogram(conn: Connection, source: sa.FromClause, column: sa.ColumnElement[Any], low: float, high: float,
               buckets: int) -> list[tuple[float, float, int]]:
    width = (high - low) / buckets if high > low else 1.0
    value = sa.cast(column, sa.Float)
    bucket = sa.case((value >= high, buckets - 1), else_=sa.func.floor((value - low) / width)).label("b")
    query = sa.select(bucket, sa.func.count()).select_from(source).where(column.is_not(None)).group_by(bucket)
    counts = {int(b): int(n) for b, n in conn.execute(query)}
    return [(low + i * width, low + (i + 1) * width, counts.get(i, 0)) for i in range(buckets)]


def profile_table(engine: Engine, table: str, columns: Sequence[str] | None = None, exact_limit: int = 1_000_000,
                  sample_rows: int = 10_000, top: int = 5, buckets: int = 10,
                  timeout_ms: int = 300_000) -> TableProfile:
    """Profile ``table`` with one aggregate pass plus GROUP BY queries (sampled when large)."""
    started = time.perf_counter()
    name = dialect_name(engine)
    with read_only(engine, timeout_ms) as (conn, _):
        if not sa.inspect(conn).has_table(table):
            raise UsageError(f"no table {table!r} in the database")
        live = sa.Table(table, sa.MetaData(), autoload_with=conn)
        missing = [c for c in columns or [] if c not in live.c]
        if missing:
            raise UsageError(f"table {table!r} has no column {', '.join(missing)}")
        cols = [live.c[c] for c in columns] if columns else list(live.columns)
        catalog = _CATALOG_ROWS.get(name)
        estimate = catalog(conn, live) if catalog else None
        if estimate is None:
            estimate = int(conn.execute(sa.select(sa.func.count()).select_from(live)).scalar_one())
        exact = estimate <= exact_limit
        dialect = Dialect(name, strict=False)
        agg = conn.execute(_aggregates(live, cols, dialect, exact)).one()._mapping
        rows = int(agg["rows"])
        source: sa.FromClause = live
        n = rows
        if rows > sample_rows:  # top values and histograms need a GROUP BY each: bound their cost
            source = _SAMPLERS[name](live, sample_rows / rows, sample_rows)
            n = int(conn.execute(sa.select(sa.func.count()).select_from(source)).scalar_one())
        profiles = [_column(conn, source, live, col, i, agg, rows, n, exact, top, buckets) for i, col in enumerate(cols)]
    return TableProfile(table, rows, profiles, source is not live, n, time.perf_counter() - started)


def _column(conn: Connection, source: sa.FromClause, live: sa.Table, col: sa.Column[Any], i: int, agg: Any,
            rows: int, n: int, exact: bool, top: int, buckets: int) -> ColumnProfile:
    kind = _kind(col)
    profile = ColumnProfile(col.name, str(col.type), kind, nulls=rows - int(agg[f"c{i}_n"]))
    if kind == _OTHER:
        return profile
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
    return profile


def profile_tables(engine: Engine, tables: Sequence[str], **options: Any) -> list[TableProfile]:
    """:func:`profile_table` for each of ``tables``."""
    return [profile_table(engine, t, **options) for t in tables]


def chart(profile: TableProfile, max_columns: int = 6) -> "Figure":
    """Histograms of the numeric columns and top values of the others, one panel each."""
    from matplotlib.figure import Figure

    shown = [c for c in profile.columns if c.histogram or c.top][:max_columns]
    fig = Figure(figsize=(4 * max(1, min(3, len(shown))), 3 * max(1, math.ceil(len(shown) / 3))))
    for k, col in enumerate(shown):
        ax = fig.add_subplot(max(1, math.ceil(len(shown) / 3)), min(3, len(shown)), k + 1)
        if col.histogram:
            ax.bar([lo for lo, _, _ in col.histogram], [c for _, _, c in col.histogram],
                   width=[hi - lo for lo, hi, _ in col.histogram], align="edge")
        else:
            ax.barh([str(v)[:20] for v, _ in col.top][::-1], [c for _, c in col.top][::-1])
        ax.set_title(col.name + (" (sample)" if profile.sampled else ""), fontsize=9)
    fig.suptitle(f"{profile.table}: {profile.rows} rows")
    fig.tight_layout()
    return fig
