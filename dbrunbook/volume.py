"""Stage 9: grow a scratch copy to a production-like volume and time the migration against size.

:func:`grow` multiplies a copy's rows (``Scale("10x")``) or brings tables to given row counts
(``Scale("users=200000")``) with synthetic rows made in the database, one ``INSERT ... SELECT``
per table that replays the table's own rows ``k`` times. One aggregate pass per table (the
column profile) decides how each column is replayed:

- keys and near-unique integer columns are shifted by ``k`` times their span, so they stay unique;
- near-unique and unique text columns get a ``r<k>-`` prefix (cut to the column's length);
- foreign keys follow their parent's shift, so every reference points at an existing row;
- everything else keeps the replayed row's value, so null rates, distributions and the data's
  problems (duplicates, NULLs where a constraint is coming) keep their proportions.

:func:`growth_sql` is the twin of :func:`grow` that returns the statements without running them.
:func:`timing_curve` grows fresh copies to two or three sizes, times the upgrade on each, fits
time against rows (least squares, numpy) and predicts the time at the production size.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .clone import disable_fk_checks, scratch_copy, sync_key_generators
from .config import Target
from .db import dialect_name, make_engine
from .errors import UsageError
from .migration import alembic_config, apply_upgrade
from .results import Finding

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: A column whose distinct values cover at least this share of its non-null rows is replayed
#: as a fresh value, not a copy (e-mails, external ids), so growth does not invent duplicates.
NEAR_UNIQUE = 0.9
#: Fewer non-null values than this say too little to call an undeclared column near-unique.
NEAR_UNIQUE_MIN_ROWS = 20
#: Most replays of a table one statement makes (the rounds are a UNION ALL of constants).
MAX_ROUNDS = 1000
_SKIP = ("alembic_version",)
#: Statement run on each grown table afterwards, so the copy looks like a settled production
#: database (statistics gathered, PostgreSQL's visibility hints set) rather than a fresh bulk load.
_SETTLE = {
    "postgresql": "VACUUM ANALYZE {table}",
    "mysql": "ANALYZE TABLE {table}",
    "mariadb": "ANALYZE TABLE {table}",
    "sqlite": "ANALYZE {table}",
}


@dataclass(frozen=True)
class Scale:
    """How much to grow: a factor for every table, or row counts for some."""

    factor: float = 1.0
    rows: tuple[tuple[str, int], ...] = ()

    @classmethod
    def parse(cls, text: str | float | int) -> "Scale":
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


@dataclass
class ColumnRule:
    """How one column is replayed: copy, shift by span, prefix, or follow a parent key."""

    rule: str  # copy | shift | prefix | parent
    span: int = 0
    length: int | None = None
    parent: tuple[str, str] | None = None


@dataclass
class TableGrowth:
    """The growth of one table: rows now, rows wanted, and how each column is replayed."""

    table: str
    rows: int
    target: int
    full_rounds: int = 0
    partial_rows: int = 0
    threshold: Any = None
    columns: dict[str, ColumnRule] = field(default_factory=dict)


def _is_int(column: sa.Column[Any]) -> bool:
    try:
        kind = column.type.python_type
    except NotImplementedError:
        return False
    return kind is int


def _is_text(column: sa.Column[Any]) -> bool:
    try:
        return column.type.python_type is str
    except NotImplementedError:
        return False


def _profile(conn: sa.Connection, table: sa.Table) -> dict[str, Any]:
    """One aggregate pass: rows, and per column non-null and distinct counts, and integer spans."""
    parts: list[sa.ColumnElement[Any]] = [sa.func.count().label("rows")]
    for i, col in enumerate(table.columns):
        parts += [sa.func.count(col).label(f"n{i}"), sa.func.count(sa.distinct(col)).label(f"d{i}")]
        if _is_int(col):
            parts += [sa.func.min(col).label(f"lo{i}"), sa.func.max(col).label(f"hi{i}")]
    return dict(conn.execute(sa.select(*parts).select_from(table)).mappings().one())


def _rules(table: sa.Table, profile: dict[str, Any], keys: set[str]) -> dict[str, ColumnRule]:
    rules = {}
    for i, col in enumerate(table.columns):
        nonnull, distinct = profile[f"n{i}"], profile[f"d{i}"]
        unique_like = col.name in keys or (nonnull >= NEAR_UNIQUE_MIN_ROWS and distinct >= NEAR_UNIQUE * nonnull)
        if unique_like and _is_int(col):
            lo, hi = profile[f"lo{i}"], profile[f"hi{i}"]
            rules[col.name] = ColumnRule("shift", span=(hi - lo + 1) if hi is not None else 0)
        elif unique_like and _is_text(col):
            rules[col.name] = ColumnRule("prefix", length=getattr(col.type, "length", None))
        elif col.name in keys:
            raise UsageError(f"cannot grow {table.name}: no synthetic rule for key column {col.name} "
                             f"of type {col.type}")
        else:
            rules[col.name] = ColumnRule("copy")
    return rules


def _unique_columns(table: sa.Table) -> set[str]:
    keys = {c.name for c in table.primary_key.columns}
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint):
            keys |= {c.name for c in constraint.columns}
    for index in table.indexes:
        if index.unique:
            keys |= {c.name for c in index.columns if isinstance(c, sa.Column)}
    return keys


def _threshold(conn: sa.Connection, table: sa.Table, partial: int) -> Any:
    """The key value of the ``partial``-th row in key order: rows up to it make the partial round."""
    if partial == 0 or len(table.primary_key.columns) != 1:
        return None
    key = next(iter(table.primary_key.columns))
    return conn.execute(sa.select(key).order_by(key).offset(partial - 1).limit(1)).scalar()


def growth_plan(conn: sa.Connection, meta: sa.MetaData, scale: Scale) -> list[TableGrowth]:
    """How each table would grow (parents first); reads the copy, changes nothing."""
    tables = [t for t in meta.sorted_tables if t.name not in _SKIP]
    unknown = sorted({name for name, _ in scale.rows} - {t.name for t in tables})
    if unknown:
        raise UsageError(f"--scale names tables the database does not have: {', '.join(unknown)}")
    plans: dict[str, TableGrowth] = {}
    for table in tables:
        profile = _profile(conn, table)
        rows = int(profile["rows"])
        plan = TableGrowth(table.name, rows, scale.target_rows(table.name, rows) if rows else 0)
        if rows:
            plan.full_rounds = plan.target // rows - 1
            plan.partial_rows = plan.target - rows * (plan.full_rounds + 1)
            if plan.partial_rows and len(table.primary_key.columns) != 1:
                plan.full_rounds, plan.partial_rows = plan.full_rounds + 1, 0  # no order to cut by: round up
            if plan.full_rounds + (1 if plan.partial_rows else 0) > MAX_ROUNDS:
                raise UsageError(f"growing {table.name} to {plan.target} rows needs more than {MAX_ROUNDS} "
                                 f"replays of its {rows} rows")
            plan.threshold = _threshold(conn, table, plan.partial_rows)
            plan.columns = _rules(table, profile, _unique_columns(table))
        for fk in table.foreign_key_constraints:
            parent = plans.get(fk.referred_table.name)
            for col, element in zip(fk.columns, fk.elements):
                if parent and element.column.name in parent.columns:
                    plan.columns[col.name] = ColumnRule("parent", parent=(parent.table, element.column.name))
        plans[table.name] = plan
    return list(plans.values())


def _replayed(col: sa.Column[Any], rule: ColumnRule, k: sa.ColumnElement[Any],
              plans: dict[str, TableGrowth]) -> sa.ColumnElement[Any]:
    if rule.rule == "shift":
        return col + k * rule.span
    if rule.rule == "prefix":
        value = sa.literal("r") + sa.cast(k, sa.String(12)) + sa.literal("-") + sa.cast(col, sa.String())
        return sa.func.substr(value, 1, rule.length) if rule.length else value
    if rule.rule == "parent" and rule.parent:
        parent = plans[rule.parent[0]]
        parent_rule = parent.columns[rule.parent[1]]
        if parent_rule.rule in ("shift", "prefix"):
            shifted = _replayed(col, parent_rule, k, plans)
            return sa.case((k <= parent.full_rounds, shifted), else_=col)
    return col


def insert_statement(table: sa.Table, plan: TableGrowth, plans: dict[str, TableGrowth]) -> sa.Insert | None:
    """The ``INSERT ... SELECT`` that replays ``table``'s rows for ``plan`` (None: nothing to add)."""
    rounds = plan.full_rounds + (1 if plan.partial_rows else 0)
    if rounds <= 0:
        return None
    # The replay numbers as constants in the SQL: a bound parameter would have no type in a UNION.
    numbers = [sa.select(sa.literal_column(str(k), sa.Integer).label("k")) for k in range(1, rounds + 1)]
    r = (sa.union_all(*numbers) if rounds > 1 else numbers[0]).subquery("dbrunbook_rounds")
    k = r.c.k
    columns = [_replayed(c, plan.columns[c.name], k, plans).label(c.name) for c in table.columns]
    query = sa.select(*columns).select_from(table).join(r, sa.true())
    if plan.partial_rows:
        key = next(iter(table.primary_key.columns))
        query = query.where(sa.or_(k <= plan.full_rounds, key <= plan.threshold))
    return table.insert().from_select([c.name for c in table.columns], query)


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
    engine = make_engine(url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.begin() as conn:
            plans = {p.table: p for p in growth_plan(conn, meta, scale)}
            disable_fk_checks(conn)
            for name, plan in plans.items():
                statement = insert_statement(meta.tables[name], plan, plans)
                if statement is not None:
                    try:
                        conn.execute(statement)
                    except DBAPIError as exc:
                        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
                        raise UsageError(f"growing {name} failed: {reason}") from None
            sync_key_generators(conn, [meta.tables[n] for n in plans])
        _settle(engine, [n for n, p in plans.items() if p.full_rounds or p.partial_rows])
        return row_counts(engine)
    finally:
        engine.dispose()


def _settle(engine: sa.Engine, tables: list[str]) -> None:
    statement = _SETTLE.get(dialect_name(engine))
    if not statement:
        return
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


@dataclass
class TimingPoint:
    """The upgrade timed on a copy grown by ``scale``."""

    scale: float
    rows: int
    seconds: float
    ok: bool
    error: str = ""
    grow_seconds: float = 0.0


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
        counts = grow(url, scale)
        grown = time.perf_counter() - started
        result = apply_upgrade(cfg, url, "head")
    return TimingPoint(scale.factor, sum(counts.values()), round(result.seconds, 6), result.ok, result.error,
                       round(grown, 3))


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
        for timings, factor in zip(runs, scales):
            timings.append(time_at(target, script_dir, Scale(factor=float(factor)), mode, rows))
    points = [_fastest(timings) for timings in runs]
    curve = TimingCurve(points)
    curve.intercept, curve.slope = fit(points)
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
    """Measured times, the fitted line, and the prediction at the production size."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4))
    ax = figure.subplots()
    good = [p for p in curve.points if p.ok]
    bad = [p for p in curve.points if not p.ok]
    if good:
        ax.plot([p.rows for p in good], [p.seconds for p in good], "o", label="measured")
    if bad:
        ax.plot([p.rows for p in bad], [p.seconds for p in bad], "x", color="red", label="measured (upgrade failed)")
    top = max([curve.production_rows, *(p.rows for p in curve.points)])
    xs = [0, top]
    ax.plot(xs, [curve.predict(x) for x in xs], "-", color="grey", label="fitted line")
    if curve.predicted_seconds is not None:
        ax.plot([curve.production_rows], [curve.predicted_seconds], "*", markersize=12, label="predicted at production size")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(lambda x, _: f"{x:,.0f}")
    ax.set_xlabel("rows in the database")
    ax.set_ylabel("upgrade seconds")
    ax.set_title("Upgrade time against size")
    ax.legend()
    figure.tight_layout()
    return figure


def findings(curve: TimingCurve, max_seconds: float = 60.0) -> list[Finding]:
    """The prediction, and whether the upgrade fails or runs longer than ``max_seconds``."""
    out = []
    failed = [p for p in curve.points if not p.ok]
    evidence = {"points": [asdict(p) for p in curve.points], "slope": curve.slope, "intercept": curve.intercept}
    if failed:
        out.append(Finding("VL002", "block", f"the upgrade fails on grown copies: {failed[0].error}",
                           "", evidence, "see stage 04 for the failing statement; times are until the failure"))
    predicted = curve.predicted_seconds or 0.0
    what = "until it fails" if failed else ""
    out.append(Finding("VL001", "info", f"predicted upgrade time {what} at {curve.production_rows:,} rows: "
                                        f"{predicted:.2f}s".replace("  ", " "), "", evidence))
    if predicted > max_seconds and not failed:
        out.append(Finding("VL003", "warn", f"the upgrade is predicted to take {predicted:.0f}s, over {max_seconds:.0f}s",
                           "", evidence, "split the migration, build indexes concurrently, or backfill in batches"))
    return out
