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
KEY against the duplicates and orphans its dedupe leaves (:mod:`.replayed`).

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

from dbrunbook.dialects import KEEPS, LOSES
from dbrunbook.stages.data_checks._base import UNKNOWN, CheckContext, CheckResult
from dbrunbook.stages.data_checks._statements import DataStatement, Reshape, Steps

#: The effect of rows an UPDATE or INSERT ... SELECT writes: what the migration is for, reported for review.
WRITES = "writes"
#: How many columns a sample shows beside the key.
_SHOWN = 6


@dataclass
class _State:
    """The rows of one table as the migration's earlier statements leave them: a FROM item and its columns."""

    source: str
    columns: list[str]
    added: set[str] = field(default_factory=set)
    #: Why the state does not model every row ("" when it does).
    inexact: str = ""


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

    def q(self, name: str) -> str:
        return self.ctx.quote(name)

    def state(self, table: str, before: int) -> _State | None:
        """``table`` as the statements before ``before`` leave it (None when the table is not on the target)."""
        live = self.live(table)
        if live is None:
            return None
        state = _State(self.q(table), list(live[0]))
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
        shown = []
        for name, old in columns.items():
            if old is not None and old in state.columns:
                shown.append(self.q(old) if old == name else f"{self.q(old)} AS {self.q(name)}")
            else:
                shown.append(f"{self._new(table, name, defaults.get(name))} AS {self.q(name)}")
                state.added.add(name)
        state.source = f"(SELECT {', '.join(shown)} FROM {state.source} AS {self.q(table)})"
        state.columns = list(columns)

    def _new(self, table: str, column: str, default: str | None) -> str:
        """The value existing rows get in a new column: its default, else a NULL of its type (an untyped NULL is
        text on PostgreSQL, which a CASE with an integer could not take)."""
        target = self.ctx.target.tables.get(table)
        if default:
            return default
        if target is not None and column in target.c:
            return self.ctx.sql(sa.cast(sa.null(), target.c[column].type))
        return "NULL"

    def _apply(self, state: _State, stmt: DataStatement) -> None:
        alias = self.q(stmt.alias or stmt.table)
        if stmt.unreadable:
            state.inexact = state.inexact or f"{stmt.name} cannot be analysed: {stmt.unreadable}"
        elif stmt.verb == "insert":
            state.inexact = state.inexact or f"the rows {stmt.name} adds are not counted"
        elif stmt.verb == "delete":
            keep = f"CASE WHEN ({stmt.where}) THEN 0 ELSE 1 END = 1" if stmt.where is not None else "1 = 0"
            state.source = f"(SELECT * FROM {state.source} AS {alias} WHERE {keep})"
        elif not set(stmt.sets) <= set(state.columns):
            unknown = ", ".join(sorted(set(stmt.sets) - set(state.columns)))
            state.inexact = state.inexact or f"{stmt.name} sets {unknown}, which the table does not have there"
        else:
            state.source = f"(SELECT {', '.join(self._value(c, stmt) for c in state.columns)} " \
                           f"FROM {state.source} AS {alias})"

    def _value(self, column: str, stmt: DataStatement) -> str:
        """``column`` after ``stmt``: its expression where the statement's WHERE holds, else as it was."""
        name = self.q(column)
        if column not in stmt.sets:
            return name
        if stmt.where is None:
            return f"({stmt.sets[column]}) AS {name}"
        return f"CASE WHEN ({stmt.where}) THEN ({stmt.sets[column]}) ELSE {name} END AS {name}"


def _reason(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _rows(ctx: CheckContext, sql: str) -> pd.DataFrame:
    result = ctx.conn.exec_driver_sql(sql)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


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
        rows = f"({stmt.select}) AS dbrunbook_rows"
        query = f"SELECT COUNT(*) FROM {rows}"
        count = int(ctx.conn.exec_driver_sql(query).scalar() or 0)
        sample = _rows(ctx, f"SELECT * FROM {rows} LIMIT {ctx.sample}") if count else pd.DataFrame()
        return [CheckResult("DC110", "data-statement", stmt.table, [], "inserted", count, WRITES,
                            f"{count} rows would be inserted into {stmt.table} by {stmt.name}", sample,
                            evidence, query=query)]
    state = replay.state(stmt.table, stmt.index)
    if state is None:
        return []  # a table the migration creates holds only rows the migration itself wrote
    live = replay.live(stmt.table)
    key = live[1] if live else []
    source = f"{state.source} AS {replay.q(stmt.alias or stmt.table)}"
    where = f" WHERE {stmt.where}" if stmt.where is not None else ""
    query = f"SELECT COUNT(*) FROM {source}{where}"
    count = int(ctx.conn.exec_driver_sql(query).scalar() or 0)
    if state.inexact:
        evidence["not_replayed"] = state.inexact
    shown = _shown(key, list(stmt.sets) + stmt.reads if stmt.verb == "update" else state.columns, state.columns)
    after = [f"({e}) AS {replay.q(c + ' (new)')}" for c, e in stmt.sets.items()]
    order = f" ORDER BY {', '.join(replay.q(k) for k in key)}" if key else ""
    listed = ", ".join([*(replay.q(c) for c in shown), *after])
    sample = _rows(ctx, f"SELECT {listed} FROM {source}{where}{order} LIMIT {ctx.sample}") if count \
        else pd.DataFrame()
    out = []
    if stmt.verb == "delete":
        named = f" AS {replay.q(stmt.alias)}" if stmt.alias else ""
        keep = f"CREATE TABLE {replay.q(stmt.table + '_deleted')} AS SELECT * FROM {replay.q(stmt.table)}{named}{where}"
        out.append(CheckResult("DC111", "rows-deleted", stmt.table, [], "deleted", count, LOSES,
                               f"{count} rows of {stmt.table} would be deleted by {stmt.name}: the data is lost",
                               sample, evidence, {"keep a copy before the delete (in the migration)": keep + ";"},
                               query))
    else:
        out.append(CheckResult("DC110", "data-statement", stmt.table, list(stmt.sets), "updated", count, WRITES,
                               f"{count} rows of {stmt.table} would be updated by {stmt.name}", sample, evidence,
                               query=query))
    if stmt.where is None and count:
        what = "removes every one" if stmt.verb == "delete" else "rewrites every one"
        out.append(CheckResult("DC112", "statement-without-where", stmt.table, list(stmt.sets), "every_row", count,
                               KEEPS, f"{stmt.name} has no WHERE: it {what} of the {count} rows of {stmt.table} "
                               "in one transaction", evidence=dict(evidence), query=query))
    return out


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
    source = f"{state.source} AS {replay.q(table)}"
    where = f" WHERE {replay.q(column)} IS NULL"
    query = f"SELECT COUNT(*) FROM {source}{where}"
    count = int(ctx.conn.exec_driver_sql(query).scalar() or 0)
    reads = [c for s in earlier for c in s.reads]
    shown = _shown(key, [column, *reads], state.columns)
    order = f" ORDER BY {', '.join(replay.q(k) for k in key)}" if key else ""
    sample_sql = f"SELECT {', '.join(replay.q(c) for c in shown)} FROM {source}{where}{order} LIMIT {ctx.sample}"
    sample = _rows(ctx, sample_sql) if count else pd.DataFrame(columns=shown)
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
        remedies["the rows left NULL"] = sample_sql.replace(f" LIMIT {ctx.sample}", "") + ";"
    return CheckResult(result.code, result.name, table, [column], "null", count, outcome.effect, message, sample,
                       evidence, remedies, query)
