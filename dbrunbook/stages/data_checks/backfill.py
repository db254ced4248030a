"""Backfill plans: batched UPDATEs with keyset pagination on the primary key, and their duration.

:func:`plan_backfill` only reads the target: it finds the batch boundaries (every
``batch_size``-th primary key, by a window function) and writes one UPDATE per batch,
``WHERE key > lower AND key <= upper AND <rows to fill>``, so each batch touches a bounded
key range and can be committed on its own; a composite key is compared as a row value
(``(a, b) > (1, 'x')``), and a table without a primary key gets one unbatched statement.
:func:`time_backfill` runs the first batches on a scratch copy (:func:`dbrunbook.data.clone.scratch_copy`),
never on the target, and extrapolates the duration of the whole plan. :func:`backfill_plans`
never raises on the target's data: a column it cannot plan comes back with ``skipped`` set.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from dbrunbook.core.db import make_engine
from dbrunbook.core.results import Finding
from dbrunbook.data.clone import scratch_copy
from dbrunbook.errors import DbrunbookError, UsageError
from dbrunbook.stages.data_checks import CheckReport
from dbrunbook.stages.data_checks._base import read_only


@dataclass
class BackfillPlan:
    """The batched backfill of one column, and (once timed) how long it should take."""

    table: str
    column: str
    expression: str
    key: str
    batch_size: int
    rows: int
    boundaries: list[Any]
    statements: list[str]
    template: str
    only_null: bool = True
    #: The column is new: its SQL type, added (nullable) before the batches and tightened after.
    added_type: str = ""
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    timed_batches: int = 0
    timed_rows: int = 0
    timed_seconds: float | None = None
    estimated_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    #: Why no plan could be made for this column (then there are no statements).
    skipped: str = ""

    @property
    def batches(self) -> int:
        return len(self.statements)

    def script(self, limit: int | None = None) -> str:
        """The statements as one reviewable script, each batch committed on its own."""
        if self.skipped:
            return f"-- backfill {self.table}.{self.column}: not planned: {self.skipped}"
        shown = self.statements if limit is None else self.statements[:limit]
        body = "\n".join(f"{s};\nCOMMIT;" for s in shown)
        more = f"\n-- ... {self.batches - len(shown)} more batches" if len(shown) < self.batches else ""
        head = f"-- backfill {self.table}.{self.column} = {self.expression} in {self.batches} batches"
        steps = [f"-- migration step before: {b}" for b in self.before]
        tail = [f"-- migration step after: {a}" for a in self.after]
        return "\n".join([head, *steps, body + more, *tail])

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["boundaries"] = [str(b) for b in self.boundaries]
        data["statements"] = self.statements[:20]
        data["batches"] = self.batches
        return data


def _keys(table: sa.Table) -> list[sa.Column[Any]]:
    return list(table.primary_key.columns)


def _term(keys: list[sa.Column[Any]]) -> sa.ColumnElement[Any]:
    """The key as one comparable term: the column, or a row value for a composite key."""
    return keys[0] if len(keys) == 1 else sa.tuple_(*keys)


def _value(keys: list[sa.Column[Any]], value: Any) -> Any:
    """A boundary as the term's counterpart (placeholders and single values as they are)."""
    if len(keys) == 1 or isinstance(value, sa.ColumnElement):
        return value
    return sa.tuple_(*(sa.literal(v, k.type) for v, k in zip(value, keys, strict=True)))


def _update(table: sa.Table, column: str, expression: str, only_null: bool, lower: Any, upper: Any) -> sa.Update:
    keys = _keys(table)
    bounds = []
    if keys and lower is not None:
        bounds.append(_term(keys) > _value(keys, lower))
    if keys and upper is not None:
        bounds.append(_term(keys) <= _value(keys, upper))
    where = table.c[column].is_(None) if only_null else sa.true()
    return sa.update(table).where(*bounds, where).values({column: sa.literal_column(expression)})


def _sql(conn: Connection, statement: sa.ClauseElement) -> str:
    return str(statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


def _boundaries(conn: Connection, keys: list[sa.Column[Any]], where: Any, batch_size: int) -> list[Any]:
    """Every ``batch_size``-th key (a tuple for a composite key) among the rows to fill, in key order."""
    labels = [k.label(f"dbrunbook_k{i}") for i, k in enumerate(keys)]
    numbered = sa.select(*labels, sa.func.row_number().over(order_by=keys).label("dbrunbook_n")) \
        .where(where).subquery("dbrunbook_numbered")
    found = [numbered.c[f"dbrunbook_k{i}"] for i in range(len(keys))]
    rows = conn.execute(sa.select(*found).where(numbered.c.dbrunbook_n % batch_size == 0).order_by(*found))
    return [r[0] if len(keys) == 1 else tuple(r) for r in rows]


def plan_backfill(engine: Engine, table: str, column: str, expression: str, only_null: bool = True,
                  batch_size: int = 10_000, add: sa.types.TypeEngine[Any] | None = None) -> BackfillPlan:
    """Plan ``UPDATE table SET column = expression`` in key-range batches (reads the target only).

    With ``add`` (the type of a column the change adds as required), the column does not exist
    yet: the plan adds it nullable, fills every row, then sets NOT NULL.
    """
    if batch_size < 1:
        raise UsageError("batch size must be at least 1")
    with read_only(engine) as (conn, _):
        if not sa.inspect(conn).has_table(table):
            raise UsageError(f"no table {table!r} in the database")
        live = sa.Table(table, sa.MetaData(), autoload_with=conn)
        if add is not None and column in live.c:
            raise UsageError(f"table {table!r} already has a column {column!r}")
        if add is None and column not in live.c:
            raise UsageError(f"table {table!r} has no column {column!r}")
        keys = _keys(live)
        # Rows to fill are found on the live table, where a new column does not exist yet.
        where = live.c[column].is_(None) if only_null and add is None else sa.true()
        if add is not None:
            live.append_column(sa.Column(column, add, nullable=True))
        boundaries = _boundaries(conn, keys, where, batch_size) if keys else []
        rows = int(conn.execute(sa.select(sa.func.count()).select_from(live).where(where)).scalar_one())
        edges: list[Any] = [None, *boundaries]
        if rows and (not boundaries or rows % batch_size or not keys):
            edges.append(None)  # the last, partial batch is open-ended
        pairs = list(itertools.pairwise(edges))
        statements = [_sql(conn, _update(live, column, expression, only_null, lo, hi)) for lo, hi in pairs]
        template = _sql(conn, _update(live, column, expression, only_null, sa.literal_column(":last_key"),
                                      sa.literal_column(":upper_key")))
        added = add.compile(dialect=conn.dialect) if add is not None else ""
    plan = BackfillPlan(table, column, expression, ", ".join(k.name for k in keys), batch_size, rows, boundaries,
                        statements, template, only_null=only_null, added_type=added)
    if not keys:
        plan.notes.append(f"{table} has no primary key to batch by: one statement updates every row")
    if add is not None:
        plan.before.append(f"op.add_column({table!r}, sa.Column({column!r}, {add!r}, nullable=True))")
        plan.after.append(f"op.alter_column({table!r}, {column!r}, nullable=False)")
    return plan


def time_backfill(url: str, plan: BackfillPlan, batches: int = 1) -> BackfillPlan:
    """Run the first ``batches`` of ``plan`` on a scratch copy of ``url`` and extrapolate the duration."""
    if not plan.statements:
        plan.notes.append("nothing to backfill: no row matches")
        plan.estimated_seconds = 0.0
        return plan
    edges: list[Any] = [None, *plan.boundaries, None]
    chosen = list(itertools.pairwise(edges))[:min(batches, plan.batches)]
    with scratch_copy(url, mode="full") as copy_url:
        copy = make_engine(copy_url)
        try:
            if plan.added_type:
                with copy.begin() as conn:
                    q = conn.dialect.identifier_preparer.quote
                    conn.exec_driver_sql(f"ALTER TABLE {q(plan.table)} ADD COLUMN {q(plan.column)} {plan.added_type}")
            table = sa.Table(plan.table, sa.MetaData(), autoload_with=copy)
            started = time.perf_counter()
            touched = 0
            for lower, upper in chosen:
                with copy.begin() as conn:
                    update = _update(table, plan.column, plan.expression, plan.only_null, lower, upper)
                    touched += conn.execute(update).rowcount or 0
            seconds = time.perf_counter() - started
        except DBAPIError as exc:
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
            plan.notes.append(f"the first batch fails on a scratch copy: {reason}; fix the rows or the expression")
            return plan
        finally:
            copy.dispose()
    plan.timed_batches, plan.timed_rows, plan.timed_seconds = len(chosen), touched, seconds
    per_row = seconds / touched if touched else seconds / len(chosen)
    plan.estimated_seconds = per_row * plan.rows if touched else seconds * plan.batches / len(chosen)
    plan.notes.append(f"timed {len(chosen)} of {plan.batches} batches ({touched} rows) on a scratch copy "
                      f"in {seconds:.3f}s; the target was not written")
    return plan


def suggest_expression(engine: Engine, table: str, column: str) -> str:
    """A value to review for filling NULLs: the column's most common value, as a SQL literal."""
    with read_only(engine) as (conn, _):
        live = sa.Table(table, sa.MetaData(), autoload_with=conn)
        col = live.c[column]
        value = conn.execute(sa.select(col).where(col.is_not(None)).group_by(col)
                             .order_by(sa.func.count().desc(), col).limit(1)).scalar()
        literal = sa.literal(value, type_=col.type) if value is not None else sa.null()
        return _sql(conn, literal)


def _zero(type_: sa.types.TypeEngine[Any]) -> str | None:
    """A placeholder value of ``type_`` for a new column, or None when there is no obvious one."""
    if isinstance(type_, sa.Boolean):
        return "FALSE"
    if isinstance(type_, (sa.Integer, sa.Numeric, sa.Float)):
        return "0"
    if isinstance(type_, sa.String):
        return "''"
    if isinstance(type_, (sa.Date, sa.DateTime)):
        return "CURRENT_TIMESTAMP"
    return None


def _conversion(engine: Engine, table: str, column: str, metadata: sa.MetaData, expressions: dict[str, str],
                batch_size: int) -> BackfillPlan:
    """Convert ``column`` through a new column of the target type: add, fill in batches, swap."""
    new_type = metadata.tables[table].c[column].type
    name = f"{table}.{column}"
    given = expressions.get(name)
    expression = given or str(sa.cast(sa.column(column), new_type).compile(dialect=engine.dialect))
    plan = plan_backfill(engine, table, f"{column}_new", expression, batch_size=batch_size, add=new_type)
    plan.after = [f"op.drop_column({table!r}, {column!r})",
                  f"op.alter_column({table!r}, {column + '_new'!r}, new_column_name={column!r}, nullable=...)"]
    if not given:
        plan.notes.append(f"{expression} converts the values as the direct ALTER would; pass "
                          f"backfills={{{name!r}: <expression>}} to handle the offending rows")
    return plan


def backfill_plans(engine: Engine, url: str, report: CheckReport, expressions: dict[str, str] | None = None,
                   batch_size: int = 10_000, timed_batches: int = 1,
                   metadata: sa.MetaData | None = None) -> list[BackfillPlan]:
    """Plan (and time on a scratch copy) the backfill of every column the checks found needing values.

    That is each column with NULLs under a new NOT NULL and, given the target ``metadata``, each
    new required column and each type change with offending values (converted through a new
    column). ``expressions`` maps ``table.column`` to the SQL expression to fill
    with; without one the plan uses the column's most common value (or a zero value of a new
    column's type), marked as a suggestion to review.
    """
    plans: list[BackfillPlan] = []
    converted: set[tuple[str, str]] = set()
    engine.dispose()  # PostgreSQL copies by TEMPLATE only when nobody is connected to the target
    for result in report.results:
        if result.count <= 0 or not result.columns:
            continue
        key = (result.table, result.columns[0])
        conversion = result.code == "DC005" and metadata is not None and key not in converted
        if not conversion and result.problem not in ("null", "required"):
            continue
        try:
            if conversion and metadata is not None:
                converted.add(key)
                plan: BackfillPlan | None = _conversion(engine, *key, metadata, expressions or {}, batch_size)
            else:
                plan = _fill(engine, result.problem, *key, metadata, expressions or {}, batch_size)
        except (DbrunbookError, sa.exc.SQLAlchemyError) as exc:
            plans.append(_skipped(*key, batch_size, exc))
            continue
        if plan is None:
            continue
        if timed_batches:
            try:
                plan = time_backfill(url, plan, batches=timed_batches)
            except (DbrunbookError, sa.exc.SQLAlchemyError) as exc:
                plan.notes.append(f"not timed: {_reason(exc)}")
        plans.append(plan)
    return plans


def _fill(engine: Engine, problem: str, table: str, column: str, metadata: sa.MetaData | None,
          expressions: dict[str, str], batch_size: int) -> BackfillPlan | None:
    """The plan filling NULLs (``null``) or a new required column (``required``); None: nothing to suggest."""
    name = f"{table}.{column}"
    given = expressions.get(name)
    add = None
    if problem == "required":
        if metadata is None or table not in metadata.tables:
            return None
        add = metadata.tables[table].c[column].type
        expression = given or _zero(add)
        if expression is None:
            return None
    else:
        expression = given or suggest_expression(engine, table, column)
    plan = plan_backfill(engine, table, column, expression, batch_size=batch_size, add=add)
    if not given:
        plan.notes.append(f"{expression} is a suggestion (a placeholder value): review it, or pass "
                          f"backfills={{{name!r}: <expression>}}")
    return plan


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _skipped(table: str, column: str, batch_size: int, exc: Exception) -> BackfillPlan:
    return BackfillPlan(table, column, "", "", batch_size, 0, [], [], "", skipped=_reason(exc))


def findings(plans: list[BackfillPlan]) -> list[Finding]:
    """DC100 (info) per planned backfill with its batches and estimate; DC103 (warn) per column not planned."""
    out = []
    for p in plans:
        where = f"{p.table}.{p.column}"
        if p.skipped:
            out.append(Finding("DC103", "warn", f"could not plan the backfill of {where}: {p.skipped}", where))
            continue
        out.append(Finding("DC100", "info", f"backfill {where}: {p.rows} rows in {p.batches} batches, "
                                            f"estimated {p.estimated_seconds or 0:.2f}s", where,
                           {"rows": p.rows, "batches": p.batches, "estimated_seconds": p.estimated_seconds},
                           p.script(3)))
    return out
