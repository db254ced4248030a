"""The data statements of the pending revisions, counted on the target read-only, in the order the migration runs.

A hand-written revision changes data with its own statements: a backfill ``UPDATE`` before ``SET NOT NULL``, a
``DELETE`` of duplicates, an ``INSERT ... SELECT`` into a new table. :mod:`._statements` reads them from the SQL
the revisions ran on a schema-only copy; here each one is counted on the target by its own predicate
(``SELECT COUNT(*) FROM t WHERE <its WHERE>``; the SELECT of an ``INSERT ... SELECT``) and the rows it touches
are sampled (primary key and the columns involved). Nothing is written: every query is a SELECT on the read-only
session of the checks.

Statements see the effect of earlier ones: :class:`Replay` rewrites a table as the migration's earlier statements
leave it, as a derived table (an UPDATE becomes ``CASE WHEN <where> THEN <expr> ELSE c END AS c``, a DELETE
drops the rows it matches, a column the migration adds is NULL or its default), so a later ``SET NOT NULL`` is
checked against the rows its backfill leaves NULL (:func:`after_backfills`), and a later ADD UNIQUE / ADD FOREIGN
KEY against the duplicates and orphans its dedupe leaves (:mod:`.replayed`). The queries are SQLAlchemy Core on
the target's own names; the revision's SQL (its WHERE, SET expressions, SELECT, defaults) enters them only through
:mod:`._replay_sql`.

Codes: DC110 rows an UPDATE / INSERT ... SELECT writes (info); DC111 rows a DELETE removes: data lost, which
blocks as a drop does (DC006); DC112 an UPDATE or DELETE without WHERE on a non-empty table (warn); DC113 a data
statement that cannot be analysed (warn, with the reason). DC001 keeps its code when counted after the backfill.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.types import NullType

from dbrunbook.dialects import KEEPS, LOSES
from dbrunbook.stages.data_checks._base import UNKNOWN, CheckContext, CheckResult
from dbrunbook.stages.data_checks._replay_sql import column_of, revision_select, revision_sql
from dbrunbook.stages.data_checks._statements import DataStatement, Reshape, Steps

#: The effect of rows an UPDATE or INSERT ... SELECT writes: what the migration is for, reported for review.
WRITES = "writes"
#: How many columns a sample shows beside the key.
_SHOWN = 6


@dataclass
class _State:
    """The rows of one table as the migration's earlier statements leave them: a FROM item and its columns."""

    #: The live table, or a SELECT of the rows from it.
    source: sa.TableClause | sa.Select[Any]
    columns: list[str]
    added: set[str] = field(default_factory=set)
    #: Why the state does not model every row ("" when it does).
    inexact: str = ""

    def named(self, name: str) -> sa.FromClause:
        """These rows as a FROM item called ``name``: the name the revision's own SQL calls the table by."""
        if isinstance(self.source, sa.TableClause):
            return self.source if self.source.name == name else self.source.alias(name)
        return self.source.subquery(name)


class Replay:
    """Tables of the target as the migration leaves them before a given statement, as read-only SQL."""

    def __init__(self, ctx: CheckContext, steps: Steps) -> None:
        self.ctx, self.steps = ctx, steps
        self.inspector = sa.inspect(ctx.conn)
        self._live: dict[str, tuple[list[str], list[str]] | None] = {}

    def live(self, table: str) -> tuple[list[str], list[str]] | None:
        """The live table's columns and primary key, or None when the target has no such table."""
        if table not in self._live:
            if table and self.inspector.has_table(table):
                columns = [str(c["name"]) for c in self.inspector.get_columns(table)]
                key = [str(c) for c in self.inspector.get_pk_constraint(table).get("constrained_columns") or []]
                self._live[table] = (columns, key)
            else:
                self._live[table] = None
        return self._live[table]

    def state(self, table: str, before: int) -> _State | None:
        """``table`` as the statements before ``before`` leave it (None when the table is not on the target)."""
        live = self.live(table)
        if live is None:
            return None
        # Untyped columns, as the rows come from the driver: no type's result processing changes a sampled value.
        state = _State(sa.table(table, *(sa.column(c) for c in live[0])), list(live[0]))
        events: list[tuple[int, Any]] = [(r.index, r) for r in self.steps.reshapes if r.table == table
                                         and r.index < before]
        events += [(s.index, s) for s in self.steps.before(table, before)]
        for _, event in sorted(events, key=lambda e: e[0]):
            if isinstance(event, DataStatement):
                self._apply(state, event)
            else:
                self._reshape(state, table, event)
        return state

    def _reshape(self, state: _State, table: str, change: Reshape) -> None:
        """The rows with the columns they have after ``change``: each column taken from an old one, or new."""
        if change.kind == "add":
            if change.column in state.columns:
                return
            columns: dict[str, str | None] = {c: c for c in state.columns} | {change.column: None}
            defaults = {change.column: change.default}
        elif change.kind == "rename":
            columns = {change.to if c == change.column else c: c for c in state.columns}
            defaults = {}
        else:
            columns, defaults = change.columns, change.defaults
        rows = state.named(table)
        shown: list[sa.ColumnElement[Any]] = []
        for name, old in columns.items():
            if old is not None and old in state.columns:
                shown.append(rows.c[old] if old == name else rows.c[old].label(name))
            else:
                shown.append(self._new(table, name, defaults.get(name)).label(name))
                state.added.add(name)
        state.source = sa.select(*shown).select_from(rows)  # FROM even when every column is new
        state.columns = list(columns)

    def _new(self, table: str, column: str, default: str | None) -> sa.ColumnElement[Any]:
        """The value existing rows get in a new column: its default, else a NULL of its type (an untyped NULL is
        text on PostgreSQL, which a CASE with an integer could not take)."""
        target = self.ctx.target.tables.get(table)
        if default:
            return revision_sql(self.ctx, default)
        if target is not None and column in target.c:
            # Typed in the SQL only: the rows' values come back as the driver gives them, as every other column's.
            return sa.type_coerce(sa.cast(sa.null(), target.c[column].type), NullType())
        return sa.null()

    def _apply(self, state: _State, stmt: DataStatement) -> None:
        if stmt.unreadable:
            state.inexact = state.inexact or f"{stmt.name} cannot be analysed: {stmt.unreadable}"
        elif stmt.verb == "insert":
            state.inexact = state.inexact or f"the rows {stmt.name} adds are not counted"
        elif stmt.verb == "delete":
            rows = state.named(stmt.alias or stmt.table)
            # A DELETE removes the rows its WHERE holds for; those where it is NULL stay, which NOT (...) would drop.
            keep = sa.case((revision_sql(self.ctx, stmt.where), 0), else_=1) == 1 if stmt.where is not None \
                else sa.false()
            state.source = sa.select(*(rows.c[c] for c in state.columns)).select_from(rows).where(keep)
        elif not set(stmt.sets) <= set(state.columns):
            unknown = ", ".join(sorted(set(stmt.sets) - set(state.columns)))
            state.inexact = state.inexact or f"{stmt.name} sets {unknown}, which the table does not have there"
        else:
            rows = state.named(stmt.alias or stmt.table)
            state.source = sa.select(*(self._value(rows, c, stmt) for c in state.columns)).select_from(rows)

    def _value(self, rows: sa.FromClause, column: str, stmt: DataStatement) -> sa.ColumnElement[Any]:
        """``column`` after ``stmt``: its expression where the statement's WHERE holds, else as it was."""
        if column not in stmt.sets:
            return rows.c[column]
        value = revision_sql(self.ctx, stmt.sets[column])
        if stmt.where is None:
            return value.label(column)
        return sa.case((revision_sql(self.ctx, stmt.where), value), else_=rows.c[column]).label(column)


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _not_analysed(stmt: DataStatement, why: str) -> CheckResult:
    return CheckResult("DC113", "statement-not-analysed", stmt.table, [], "not_analysed", -1, UNKNOWN,
                       f"{stmt.name} was not analysed: {why}",
                       evidence={"statement": stmt.text, "index": stmt.index + 1, "verb": stmt.verb},
                       remedies={"review it by hand": f"-- count the rows it touches with its own WHERE:\n"
                                                      f"-- {stmt.text}"})


def statement_results(ctx: CheckContext, steps: Steps, replay: Replay | None = None) -> list[CheckResult]:
    """One result per data statement of the migration (and one more per UPDATE / DELETE without WHERE)."""
    replay = replay or Replay(ctx, steps)
    out: list[CheckResult] = []
    for stmt in steps.statements:
        if stmt.unreadable:
            out.append(_not_analysed(stmt, stmt.unreadable))
            continue
        try:
            out.extend(_counted(ctx, replay, stmt))
        except Exception as exc:  # a statement that cannot be counted is named; the others still are
            reopen: Callable[[], None] | None = ctx.reopen
            if reopen is not None:
                reopen()
            out.append(_not_analysed(stmt, f"counting its rows failed: {_reason(exc)}"))
    return out


def _counted(ctx: CheckContext, replay: Replay, stmt: DataStatement) -> list[CheckResult]:
    evidence: dict[str, Any] = {"statement": stmt.text, "index": stmt.index + 1, "verb": stmt.verb}
    if stmt.verb == "insert":
        inserted = revision_select(ctx, stmt.select, "dbrunbook_rows")
        query = sa.select(sa.func.count()).select_from(inserted)
        count = int(ctx.scalar(query) or 0)
        sample = ctx.frame(sa.select(sa.literal_column("*")).select_from(inserted).limit(ctx.sample)) if count \
            else pd.DataFrame()
        return [CheckResult("DC110", "data-statement", stmt.table, [], "inserted", count, WRITES,
                            f"{count} rows would be inserted into {stmt.table} by {stmt.name}", sample,
                            evidence, query=ctx.sql(query))]
    state = replay.state(stmt.table, stmt.index)
    if state is None:
        return []  # a table the migration creates holds only rows the migration itself wrote
    live = replay.live(stmt.table)
    key = live[1] if live else []
    rows = state.named(stmt.alias or stmt.table)
    query = _where(ctx, sa.select(sa.func.count()).select_from(rows), stmt)
    count, counted = int(ctx.scalar(query) or 0), ctx.sql(query)
    if state.inexact:
        evidence["not_replayed"] = state.inexact
    shown = _shown(key, list(stmt.sets) + stmt.reads if stmt.verb == "update" else state.columns, state.columns)
    after = [revision_sql(ctx, e).label(f"{c} (new)") for c, e in stmt.sets.items()]
    listed = _where(ctx, sa.select(*(column_of(rows, c) for c in shown), *after).select_from(rows), stmt)
    sample = ctx.frame(listed.order_by(*(column_of(rows, k) for k in key)).limit(ctx.sample)) if count \
        else pd.DataFrame()
    out = []
    if stmt.verb == "delete":
        # In the migration, just before the DELETE: the table as the migration has it then, every column of it.
        table = sa.table(stmt.table)
        source = table.alias(stmt.alias) if stmt.alias else table
        keep = sa.CreateTableAs(_where(ctx, sa.select(sa.literal_column("*")).select_from(source), stmt),
                                f"{stmt.table}_deleted")
        out.append(CheckResult("DC111", "rows-deleted", stmt.table, [], "deleted", count, LOSES,
                               f"{count} rows of {stmt.table} would be deleted by {stmt.name}: the data is lost",
                               sample, evidence,
                               {"keep a copy before the delete (in the migration)": ctx.sql(keep) + ";"},
                               counted))
    else:
        out.append(CheckResult("DC110", "data-statement", stmt.table, list(stmt.sets), "updated", count, WRITES,
                               f"{count} rows of {stmt.table} would be updated by {stmt.name}", sample, evidence,
                               query=counted))
    if stmt.where is None and count:
        what = "removes every one" if stmt.verb == "delete" else "rewrites every one"
        out.append(CheckResult("DC112", "statement-without-where", stmt.table, list(stmt.sets), "every_row", count,
                               KEEPS, f"{stmt.name} has no WHERE: it {what} of the {count} rows of {stmt.table} "
                               "in one transaction", evidence=dict(evidence), query=counted))
    return out


def _where(ctx: CheckContext, select: sa.Select[Any], stmt: DataStatement) -> sa.Select[Any]:
    """``select`` of the rows ``stmt`` touches: those its WHERE holds for (every row when it has none)."""
    return select.where(revision_sql(ctx, stmt.where)) if stmt.where is not None else select


def _shown(key: list[str], wanted: list[str], available: list[str]) -> list[str]:
    """The key, then up to a few of ``wanted`` the rows have, each once."""
    rest = [c for c in dict.fromkeys(wanted) if c in available and c not in key]
    return [*key, *rest[:_SHOWN]]


def after_backfills(ctx: CheckContext, results: list[CheckResult], steps: Steps,
                    replay: Replay | None = None) -> list[CheckResult]:
    """DC001 results counted on the rows as the migration's earlier statements leave them.

    A column the migration backfills before ``SET NOT NULL`` fails only on the rows still NULL then: those its
    UPDATE's WHERE misses and those whose expression is NULL. A result whose statements cannot be replayed is
    kept as the schema comparison counted it, with the reason.
    """
    replay = replay or Replay(ctx, steps)
    out = []
    for result in results:
        if result.code != "DC001" or result.problem not in ("null", "required") or len(result.columns) != 1:
            out.append(result)
            continue
        at = steps.tightening(result.table, result.columns[0])
        if not _relevant(steps.before(result.table, at), result.columns[0]):
            out.append(result)
            continue
        try:
            out.append(_left_null(ctx, replay, result, at))
        except Exception as exc:  # the check as the schema comparison made it stands, and says why
            if ctx.reopen is not None:
                ctx.reopen()
            result.message += f" (the migration's statements before it could not be replayed: {_reason(exc)})"
            out.append(result)
    return out


def _relevant(statements: list[DataStatement], column: str) -> list[DataStatement]:
    """The statements that can change which rows hold NULL in ``column``: those setting it, those removing or adding
    rows, and those that could not be read (they might do either)."""
    return [s for s in statements if s.unreadable or s.verb != "update" or column in s.sets]


def _left_null(ctx: CheckContext, replay: Replay, result: CheckResult, at: int) -> CheckResult:
    table, column = result.table, result.columns[0]
    state = replay.state(table, at)
    earlier = _relevant(replay.steps.before(table, at), column)
    if state is None or column not in state.columns:
        return result
    if state.inexact:
        result.message += f" (counted without the migration's earlier statements: {state.inexact})"
        result.evidence["not_replayed"] = state.inexact
        return result
    live = replay.live(table)
    key = live[1] if live else []
    rows = state.named(table)
    null = rows.c[column].is_(None)
    query = sa.select(sa.func.count()).select_from(rows).where(null)
    count = int(ctx.scalar(query) or 0)
    reads = [c for s in earlier for c in s.reads]
    shown = _shown(key, [column, *reads], state.columns)
    listed = sa.select(*(column_of(rows, c) for c in shown)).select_from(rows).where(null) \
        .order_by(*(column_of(rows, k) for k in key))
    sample = ctx.frame(listed.limit(ctx.sample)) if count else pd.DataFrame(columns=shown)
    outcome = ctx.dialect.outcome("null")
    names = ", ".join(s.name for s in earlier)
    if count:
        message = (f"{count} rows of {table} are still NULL in {column} after {names}, when the migration sets it "
                   f"NOT NULL; {outcome.words}")
    else:
        message = f"{names} leaves no row of {table} NULL in {column} before the migration sets it NOT NULL"
    evidence = {**result.evidence, "after": [s.text for s in earlier], "added_by_migration": column in state.added,
                "counted_before": result.count}
    remedies = {}
    if count:
        remedies["change the migration"] = (
            f"# {names} leaves these rows NULL: give them a value before NOT NULL, e.g. right after it:\n"
            f"op.execute(\"UPDATE {table} SET {column} = ... WHERE {column} IS NULL\")")
        remedies["the rows left NULL"] = ctx.sql(listed) + ";"
    return CheckResult(result.code, result.name, table, [column], "null", count, outcome.effect, message, sample,
                       evidence, remedies, ctx.sql(query))
