"""Type changed: values that fail to cast, are truncated, overflow or are silently rounded.

Failing and silently lossy values are reported separately, in the words of the dialect:
PostgreSQL fails on a too-long VARCHAR, MariaDB in non-strict sql_mode truncates it, SQLite
keeps it. Numbers are checked against the target's integer range or NUMERIC precision and
scale; text becoming a number or a date is matched against the pattern it must have.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import CheckContext, CheckResult, rule
from dbrunbook.stages.data_checks._dialect import CAST_PATTERNS

#: Integer range of each target integer type, most specific first.
_RANGES: list[tuple[type[sa.types.TypeEngine[Any]], int, int]] = [
    (sa.SmallInteger, -(2**15), 2**15 - 1),
    (sa.BigInteger, -(2**63), 2**63 - 1),
    (sa.Integer, -(2**31), 2**31 - 1),
]


@rule("DC005", "type-change", "block",
               safe="convert through a new column with an explicit expression, backfill, then swap")
def check(ctx: CheckContext) -> Iterator[CheckResult]:
    for diff in ctx.of("modify_type"):
        _, _, table_name, column_name, _, _, new = diff
        table = ctx.table(table_name)
        if table is None or column_name not in table.c:
            continue
        column = table.c[column_name]
        for problem, where, what, fix in _probes(ctx, column, new):
            yield ctx.rows(table, [column], problem, sa.and_(column.is_not(None), where),
                           f"hold {column_name} values that {what} as {new}", fix=fix,
                           migration=f"op.alter_column({table_name!r}, {column_name!r}, type_=..., "
                                     f"postgresql_using=<explicit expression>)")


def _probes(ctx: CheckContext, column: sa.Column[Any], new: Any) -> Iterator[tuple[str, Any, str, Any]]:
    """(problem, predicate, words, fix expression) for each way ``column`` can break as ``new``."""
    old = column.type
    is_text, is_number = isinstance(old, sa.String), isinstance(old, (sa.Numeric, sa.Float, sa.Integer))
    if isinstance(new, sa.String) and not isinstance(new, sa.Text) and new.length:
        value = column if is_text else sa.cast(column, sa.Text)
        yield ("too_long", ctx.dialect.chars(value) > new.length, f"are longer than {new.length} characters",
               sa.func.substr(column, 1, new.length))
    elif isinstance(new, sa.Integer):
        low, high = next((lo, hi) for kind, lo, hi in _RANGES if isinstance(new, kind))
        if is_text:
            yield "bad_cast", ~column.regexp_match(CAST_PATTERNS["integer"]), "do not cast", None
        elif is_number:
            yield "overflow", sa.or_(column < low, column > high), f"are outside {low}..{high}", None
            if not isinstance(old, sa.Integer):
                yield "rounded", column != ctx.dialect.round(column, 0), "lose their fraction", \
                    ctx.dialect.round(column, 0)
    elif isinstance(new, sa.Numeric) and not isinstance(new, sa.Float) and new.precision is not None:
        scale = new.scale or 0
        if is_text:
            yield "bad_cast", ~column.regexp_match(CAST_PATTERNS["numeric"]), "do not cast", None
        elif is_number:
            limit = 10 ** (new.precision - scale)
            yield ("overflow", sa.func.abs(column) >= limit, f"need more than {new.precision - scale} integer digits",
                   None)
            if not isinstance(old, sa.Integer):
                yield "rounded", column != ctx.dialect.round(column, scale), f"have more than {scale} decimals", \
                    ctx.dialect.round(column, scale)
    elif isinstance(new, (sa.Date, sa.DateTime)) and is_text:
        yield "bad_cast", ~column.regexp_match(CAST_PATTERNS["date"]), "do not cast", None
