"""DC002 and DC003 counted on the rows as the migration's earlier statements leave them.

A hand-written revision often cleans the data before it constrains it: a ``DELETE`` of all but one row per email
before ``ADD UNIQUE (email)``, a ``DELETE`` (or an ``UPDATE ... SET parent_id = NULL``) of the orphans before
``ADD FOREIGN KEY``. The schema comparison counts the live rows, which the migration never constrains as they
are: here the duplicate groups and the orphans are counted again on :class:`.statements.Replay`'s state of the
table just before the statement that adds the constraint (the end of the migration when none is seen, as with a
batch copy). A dedupe that removes every surplus row passes; one that misses rows blocks with the exact count of
the rows it leaves. A result whose statements cannot be replayed stands as the schema comparison counted it, and
says why.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from dbrunbook.stages.data_checks._base import PYTHON, SQL, CheckContext, CheckResult
from dbrunbook.stages.data_checks._statements import DataStatement, Steps
from dbrunbook.stages.data_checks.statements import Replay, _reason, _rows, _shown


def after_statements(ctx: CheckContext, results: list[CheckResult], steps: Steps,
                     replay: Replay | None = None) -> list[CheckResult]:
    """The results with DC002 duplicates and DC003 orphans counted after the migration's earlier statements."""
    replay = replay or Replay(ctx, steps)
    out = []
    for result in results:
        recount = _RECOUNTS.get((result.code, result.problem))
        if recount is None or not result.columns or result.count < 0:
            out.append(result)
            continue
        try:
            out.append(recount(ctx, replay, result))
        except Exception as exc:  # the check as the schema comparison made it stands, and says why
            if ctx.reopen is not None:
                ctx.reopen()
            result.message += f" (the migration's statements before it could not be replayed: {_reason(exc)})"
            out.append(result)
    return out


def _relevant(statements: list[DataStatement], columns: list[str]) -> list[DataStatement]:
    """The statements that can change which rows hold which values in ``columns``: those setting one, those removing
    or adding rows, and those that could not be read."""
    return [s for s in statements if s.unreadable or s.verb != "update" or set(columns) & set(s.sets)]


def _inexact(result: CheckResult, why: str) -> CheckResult:
    result.message += f" (counted without the migration's earlier statements: {why})"
    result.evidence["not_replayed"] = why
    return result


def _duplicates(ctx: CheckContext, replay: Replay, result: CheckResult) -> CheckResult:
    table, columns = result.table, result.columns
    at = replay.steps.constraining("unique", table, columns)
    earlier = _relevant(replay.steps.before(table, at), columns)
    if not earlier:
        return result
    state = replay.state(table, at)
    if state is None or not set(columns) <= set(state.columns):
        return result
    if state.inexact:
        return _inexact(result, state.inexact)
    q, rows = replay.q, replay.q(table)
    keys = ", ".join(f"{rows}.{q(c)}" for c in columns)
    source = f"{state.source} AS {rows}"
    groups = (f"SELECT {keys}, COUNT(*) AS dbrunbook_n FROM {source} WHERE "
              f"{' AND '.join(f'{rows}.{q(c)} IS NOT NULL' for c in columns)} GROUP BY {keys} HAVING COUNT(*) > 1")
    query = f"SELECT COUNT(*), SUM(dbrunbook_n) FROM ({groups}) AS dbrunbook_dup"
    n_groups, in_groups = [int(v or 0) for v in ctx.conn.exec_driver_sql(query).one()]
    surplus = in_groups - n_groups
    live = replay.live(table)
    key = live[1] if live else []
    shown = _shown(key, columns, state.columns)
    if surplus:
        # The first groups, joined back to their rows (MariaDB takes no LIMIT in an IN subquery).
        first = f"SELECT {', '.join(f'dbrunbook_dup.{q(c)}' for c in columns)} FROM ({groups}) AS dbrunbook_dup " \
                f"ORDER BY {', '.join(f'dbrunbook_dup.{q(c)}' for c in columns)} LIMIT {ctx.sample}"
        match = " AND ".join(f"{rows}.{q(c)} = dbrunbook_first.{q(c)}" for c in columns)
        order = ", ".join(f"{rows}.{q(c)}" for c in [*columns, *(k for k in key if k not in columns)])
        sample = _rows(ctx, f"SELECT {', '.join(f'{rows}.{q(c)}' for c in shown)} FROM {source} "
                            f"JOIN ({first}) AS dbrunbook_first ON {match} ORDER BY {order}")
    else:
        sample = pd.DataFrame(columns=shown)
    names, listed = ", ".join(s.name for s in earlier), ", ".join(columns)
    outcome = ctx.dialect.outcome("duplicate")
    if surplus:
        message = (f"{surplus} duplicate rows of {table} in {n_groups} groups ({in_groups} rows) still share "
                   f"({listed}) after {names}, when the migration adds the constraint; {outcome.words}")
    else:
        message = f"{names} leaves no two rows of {table} sharing ({listed}) before the migration constrains it"
    evidence = {**result.evidence, "groups": n_groups, "rows_in_groups": in_groups,
                "after": [s.text for s in earlier], "counted_before": result.count}
    remedies = {}
    if surplus:
        remedies["change the migration"] = (
            f"# {names} leaves these duplicates: remove (or change) all but one row of each ({listed}) group "
            f"before the constraint")
        remedies["the groups left"] = groups + ";"
    return _recounted(result, surplus, outcome.effect, message, sample, evidence, remedies, query)


def _orphans(ctx: CheckContext, replay: Replay, result: CheckResult) -> CheckResult:
    child, columns = result.table, result.columns
    parent, refs = str(result.evidence.get("references", "")), list(result.evidence.get("referred_columns") or [])
    if not parent or len(refs) != len(columns):
        return result
    at = replay.steps.constraining("foreign_key", child, columns)
    if parent == child:  # a self-reference: one table holds both sides
        earlier = _relevant(replay.steps.before(child, at), [*columns, *refs])
    else:
        earlier = [*_relevant(replay.steps.before(child, at), columns),
                   *_relevant(replay.steps.before(parent, at), refs)]
    if not earlier:
        return result
    rows, up = replay.state(child, at), replay.state(parent, at)
    if rows is None or up is None or not set(columns) <= set(rows.columns) or not set(refs) <= set(up.columns):
        return result
    if rows.inexact or up.inexact:
        return _inexact(result, rows.inexact or up.inexact)
    q, alias = replay.q, replay.q(child)
    other = replay.q("dbrunbook_parent" if child != "dbrunbook_parent" else "dbrunbook_parent_")
    source = f"{rows.source} AS {alias}"
    has_parent = " AND ".join(f"{other}.{q(r)} = {alias}.{q(c)}" for r, c in zip(refs, columns, strict=True))
    where = (f" WHERE {' AND '.join(f'{alias}.{q(c)} IS NOT NULL' for c in columns)} AND NOT EXISTS "
             f"(SELECT 1 FROM {up.source} AS {other} WHERE {has_parent})")
    query = f"SELECT COUNT(*) FROM {source}{where}"
    count = int(ctx.conn.exec_driver_sql(query).scalar() or 0)
    live = replay.live(child)
    key = live[1] if live else []
    shown = _shown(key, columns, rows.columns)
    order = f" ORDER BY {', '.join(f'{alias}.{q(k)}' for k in key)}" if key else ""
    listed = ", ".join(f"{alias}.{q(c)}" for c in shown)
    sample_sql = f"SELECT {listed} FROM {source}{where}{order}"
    sample = _rows(ctx, f"{sample_sql} LIMIT {ctx.sample}") if count else pd.DataFrame(columns=shown)
    names = ", ".join(s.name for s in earlier)
    outcome = ctx.dialect.outcome("orphan")
    if count:
        message = (f"{count} rows of {child} still have no matching row in {parent} ({', '.join(refs)}) after "
                   f"{names}, when the migration adds the foreign key; {outcome.words}")
    else:
        message = f"{names} leaves no row of {child} without its row in {parent} before the migration adds the key"
    evidence = {**result.evidence, "after": [s.text for s in earlier], "counted_before": result.count}
    remedies = {}
    if count:
        remedies["change the migration"] = (
            f"# {names} leaves these orphans: delete them, or set ({', '.join(columns)}) to NULL or to an existing "
            f"{parent} row, before the foreign key")
        remedies["the orphans left"] = sample_sql + ";"
    return _recounted(result, count, outcome.effect, message, sample, evidence, remedies, query)


def _recounted(result: CheckResult, count: int, effect: str, message: str, sample: pd.DataFrame,
               evidence: dict[str, Any], remedies: dict[str, str], query: str) -> CheckResult:
    out = CheckResult(result.code, result.name, result.table, list(result.columns), result.problem, count, effect,
                      message, sample, evidence, query=query)
    for name, text in remedies.items():
        out.remedy(name, text, PYTHON if name == "change the migration" else SQL)
    return out


_RECOUNTS = {("DC002", "duplicate"): _duplicates, ("DC003", "orphan"): _orphans}
