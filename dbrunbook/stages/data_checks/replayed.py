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
import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import PYTHON, SQL, CheckContext, CheckResult
from dbrunbook.stages.data_checks._replay_sql import column_of
from dbrunbook.stages.data_checks._statements import DataStatement, Steps
from dbrunbook.stages.data_checks.statements import Replay, _reason, _shown


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
    # A partial index's key is counted over the rows its WHERE covers, which the replayed rows do not carry:
    # its live count stands.
    if state is None or not set(columns) <= set(state.columns) or result.evidence.get("where"):
        return result
    if state.inexact:
        return _inexact(result, state.inexact)
    rows = state.named(table)
    keys = [rows.c[c] for c in columns]
    groups = sa.select(*keys, sa.func.count().label("dbrunbook_n")).select_from(rows) \
        .where(*(k.is_not(None) for k in keys)).group_by(*keys).having(sa.func.count() > 1)
    dup = groups.subquery("dbrunbook_dup")
    query = sa.select(sa.func.count(), sa.func.sum(dup.c.dbrunbook_n))
    n_groups, in_groups = [int(v or 0) for v in ctx.conn.execute(query).one()]
    surplus = in_groups - n_groups
    live = replay.live(table)
    key = live[1] if live else []
    shown = _shown(key, columns, state.columns)
    # The first groups, whole: joined back to their rows (MariaDB takes no LIMIT in an IN subquery).
    first = sa.select(*(dup.c[c] for c in columns)).order_by(*(dup.c[c] for c in columns)).limit(ctx.sample) \
        .subquery("dbrunbook_first")
    sample = sa.select(*(column_of(rows, c) for c in shown)) \
        .select_from(rows.join(first, sa.and_(*(rows.c[c] == first.c[c] for c in columns)))) \
        .order_by(*(column_of(rows, c) for c in [*columns, *(k for k in key if k not in columns)]))
    names, listed = _names(earlier), ", ".join(columns)
    return _recounted(
        ctx, result, "duplicate", surplus, earlier, sample, shown, query,
        left=f"{surplus} duplicate rows of {table} in {n_groups} groups ({in_groups} rows) still share ({listed}) "
             f"after {names}, when the migration adds the constraint",
        cleared=f"{names} leaves no two rows of {table} sharing ({listed}) before the migration constrains it",
        change=f"# {names} leaves these duplicates: remove (or change) all but one row of each ({listed}) group "
               f"before the constraint",
        listing=("the groups left", groups), groups=n_groups, rows_in_groups=in_groups)


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
    state, up = replay.state(child, at), replay.state(parent, at)
    if state is None or up is None or not set(columns) <= set(state.columns) or not set(refs) <= set(up.columns):
        return result
    if state.inexact or up.inexact:
        return _inexact(result, state.inexact or up.inexact)
    rows = state.named(child)
    parents = up.named("dbrunbook_parent" if child != "dbrunbook_parent" else "dbrunbook_parent_")
    has_parent = sa.exists().where(*(parents.c[r] == rows.c[c] for r, c in zip(refs, columns, strict=True)))
    orphaned = sa.and_(*(rows.c[c].is_not(None) for c in columns), ~has_parent)
    query = sa.select(sa.func.count()).select_from(rows).where(orphaned)
    count = int(ctx.scalar(query) or 0)
    live = replay.live(child)
    key = live[1] if live else []
    shown = _shown(key, columns, state.columns)
    listing = sa.select(*(column_of(rows, c) for c in shown)).select_from(rows).where(orphaned) \
        .order_by(*(column_of(rows, k) for k in key))
    names = _names(earlier)
    return _recounted(
        ctx, result, "orphan", count, earlier, listing.limit(ctx.sample), shown, query,
        left=f"{count} rows of {child} still have no matching row in {parent} ({', '.join(refs)}) after {names}, "
             f"when the migration adds the foreign key",
        cleared=f"{names} leaves no row of {child} without its row in {parent} before the migration adds the key",
        change=f"# {names} leaves these orphans: delete them, or set ({', '.join(columns)}) to NULL or to an "
               f"existing {parent} row, before the foreign key",
        listing=("the orphans left", listing))


def _names(earlier: list[DataStatement]) -> str:
    return ", ".join(s.name for s in earlier)


def _recounted(ctx: CheckContext, result: CheckResult, problem: str, count: int, earlier: list[DataStatement],
               sample: sa.Select[Any], shown: list[str], query: sa.ClauseElement, *, left: str, cleared: str,
               change: str, listing: tuple[str, sa.Select[Any]], **counted: Any) -> CheckResult:
    """``result`` counted again: ``count`` rows the constraint still meets (``left``, with the dialect's words for
    what the migration then does), or none (``cleared``); the ``sample`` of them, and the remedies: ``change``
    the migration, or look at the rows by ``listing``. ``counted``: more evidence, before what every recount says."""
    outcome = ctx.dialect.outcome(problem)
    evidence = {**result.evidence, **counted, "after": [s.text for s in earlier], "counted_before": result.count}
    out = CheckResult(result.code, result.name, result.table, list(result.columns), result.problem, count,
                      outcome.effect, f"{left}; {outcome.words}" if count else cleared,
                      ctx.frame(sample) if count else pd.DataFrame(columns=shown), evidence,
                      query=ctx.sql(query))
    if count:
        out.remedy("change the migration", change, PYTHON)
        out.remedy(listing[0], ctx.sql(listing[1]) + ";", SQL)
    return out


_RECOUNTS = {("DC002", "duplicate"): _duplicates, ("DC003", "orphan"): _orphans}
