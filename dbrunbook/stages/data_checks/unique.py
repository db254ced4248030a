"""UNIQUE or PRIMARY KEY added: groups of rows sharing the new key.

Creating the unique index fails on every dialect while two rows share a value (rows with a
NULL in the key do not count: NULLs are distinct). The count is the surplus rows, the ones
that must change or go so that one row per value remains; the sample shows whole groups.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import CheckContext, CheckResult, rule, unused_alias


@rule("DC002", "unique", "block",
               safe="merge or quarantine the duplicates, then add the constraint")
def check(ctx: CheckContext) -> Iterator[CheckResult]:
    for diff in ctx.of("add_constraint", "add_index", "add_pk"):
        obj = diff[1]
        if diff[0] == "add_constraint" and not isinstance(obj, sa.UniqueConstraint):
            continue
        if diff[0] == "add_index" and not obj.unique:
            continue
        # A key on a renamed table or column is checked on its live names (diff[2:], see _diff).
        live_name, renamed = (diff[2], diff[3]) if len(diff) > 3 else (obj.table.name, {})
        table = ctx.table(live_name)
        if table is None:
            continue
        key = _key(ctx, table, obj, renamed)
        if key is not None:
            yield _duplicates(ctx, table, *key, obj.name or "")


def _key(ctx: CheckContext, table: sa.Table, obj: Any, renamed: dict[str, str]) -> tuple[list[Any], Any] | None:
    """The live expressions of the new key and the rows it covers (a partial index's WHERE; None: every row).

    A unique index on expressions (``lower(email)``) keys on them, as the database evaluates them; a partial one
    (``WHERE deleted_at IS NULL``) only on the rows it covers: the rows it leaves out cannot make it fail.
    """
    elements: list[Any] = []
    for element in getattr(obj, "expressions", None) or list(obj.columns):
        if isinstance(element, sa.Column):
            name = renamed.get(element.name, element.name)
            if name not in table.c:
                return None  # a column the migration adds: nothing to count yet
            elements.append(table.c[name])
        else:
            elements.append(sa.literal_column(str(element.compile(dialect=ctx.conn.dialect))))
    if not elements:
        return None
    where = getattr(obj, "dialect_kwargs", {}).get(f"{ctx.conn.dialect.name}_where")
    if where is not None and not isinstance(where, sa.ClauseElement):
        where = sa.text(str(where))
    return elements, where


def _duplicates(ctx: CheckContext, table: sa.Table, columns: list[Any], covered: Any, name: str) -> CheckResult:
    # One GROUP BY gives the totals (window sums over the groups) and the first groups to show.
    # Every output column carries our own label, so no user column name (n, rows, ...) can clash.
    width = len(columns)
    keys = [c.label(f"dbrunbook_k{i}") for i, c in enumerate(columns)]
    within = [covered] if covered is not None else []
    groups = (sa.select(*keys, sa.func.count().label("dbrunbook_n")).select_from(table)
              .where(*(c.is_not(None) for c in columns), *within)
              .group_by(*columns).having(sa.func.count() > 1).subquery("dbrunbook_dup"))
    group_keys = [groups.c[f"dbrunbook_k{i}"] for i in range(width)]
    first = sa.select(*group_keys, sa.func.count().over().label("dbrunbook_groups"),
                      sa.func.sum(groups.c.dbrunbook_n).over().label("dbrunbook_rows")) \
        .order_by(*group_keys).limit(ctx.sample)
    shown_groups = ctx.conn.execute(first).all()
    n_groups = int(shown_groups[0][width]) if shown_groups else 0
    in_groups = int(shown_groups[0][width + 1]) if shown_groups else 0
    surplus = in_groups - n_groups
    key = ctx.key(table)
    names = [c.name if isinstance(c, sa.Column) else str(c) for c in columns]
    shown = [*key, *[c if isinstance(c, sa.Column) else c.label(f"dbrunbook_k{i}")
                     for i, c in enumerate(columns) if c not in key]]
    sample = pd.DataFrame(columns=[c.name for c in shown])
    if shown_groups:
        values = [tuple(row[:width]) for row in shown_groups]
        match = sa.tuple_(*columns).in_(values) if width > 1 else columns[0].in_([v[0] for v in values])
        sample = ctx.frame(sa.select(*shown).select_from(table).where(match, *within).order_by(*columns, *key))
    only = f" among the rows where {covered}" if covered is not None else ""
    result = ctx.result(table.name, names, "duplicate", surplus,
                        f"{surplus} duplicate rows of {table.name} in {n_groups} groups "
                        f"({in_groups} rows) share ({', '.join(names)}){only}",
                        sample=sample, query=ctx.sql(first),
                        evidence={"groups": n_groups, "rows_in_groups": in_groups, "constraint": name,
                                  **({"where": str(covered)} if covered is not None else {})})
    # The quarantine pairs each row with an earlier one of its group by plain column equality: not for a key on
    # expressions or over part of the table, where it would move the wrong rows.
    plain = covered is None and all(isinstance(c, sa.Column) for c in columns)
    if surplus and key and plain:
        moved = ctx.quarantine(table, _later_duplicates(table, columns, key), f"{names[0]}_duplicate")
        if moved:
            result.remedy("move all but the first row (lowest key) of each group to a quarantine table", moved)
    return result


def _later_duplicates(table: sa.Table, columns: list[sa.Column[Any]], key: list[sa.Column[Any]]) -> Any:
    """The rows of a duplicate group that have an earlier row (a lower primary key) in it: all but the first."""
    earlier = unused_alias(table, table)
    before = sa.tuple_(*(earlier.c[k.name] for k in key)) < sa.tuple_(*key) if len(key) > 1 \
        else earlier.c[key[0].name] < key[0]
    return sa.exists().where(*(earlier.c[c.name] == c for c in columns), before)
