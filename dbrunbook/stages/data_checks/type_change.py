"""Type changed: values that fail to cast, are truncated, overflow, are silently rounded or lose leading zeros.

Failing and silently lossy values are reported separately, in the words of the dialect:
PostgreSQL fails on a too-long VARCHAR, MariaDB in non-strict sql_mode truncates it, SQLite
keeps it. Numbers are checked against the target's integer range or NUMERIC precision and
scale; text becoming a number or a date is matched against the pattern it must have.

Where the dialect converts only through an automatic cast (PostgreSQL: an implicit or
assignment cast in its catalog), a change with none (text to a number, a date, a UUID) fails on
every row unless the ALTER says how to convert (USING), and on an empty table too: that is reported
with the row count and the USING clause (blocking whatever the count), and the values that would
still fail under it are counted as above. Where the migration's own ALTER says USING (the revisions'
``postgresql_using=``), that expression is evaluated on every row instead: a change whose USING
converts every value passes, one whose USING fails blocks with the values that do not cast. A change
that widens the type (integer to bigint, a longer VARCHAR, more NUMERIC digits) is not probed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import sqlalchemy as sa

from dbrunbook.stages.data_checks._base import PYTHON, CheckContext, CheckResult, rule, type_code
from dbrunbook.stages.data_checks._dialect import CAST_PATTERNS, FAILS, Outcome

#: Integer range of each target integer type, most specific first.
_RANGES: list[tuple[type[sa.types.TypeEngine[Any]], int, int]] = [
    (sa.SmallInteger, -(2**15), 2**15 - 1),
    (sa.BigInteger, -(2**63), 2**63 - 1),
    (sa.Integer, -(2**31), 2**31 - 1),
]
#: What the input of the types a text converts to only under USING accepts (PostgreSQL's uuid_in and boolin).
_USING_PATTERNS: list[tuple[type[sa.types.TypeEngine[Any]], str]] = [
    (sa.Uuid, r"^ *[{]?[0-9a-fA-F]{4}(-?[0-9a-fA-F]{4}){7}[}]? *$"),
    (sa.Boolean, r"^ *([tT]([rR]([uU][eE]?)?)?|[yY]([eE][sS]?)?|[oO][nN]|1|[fF]([aA]([lL]([sS][eE]?)?)?)?|[nN][oO]?"
                 r"|[oO][fF][fF]?|0) *$"),
]


#: The text of a number that its value does not keep and that meant something: a leading zero (zip codes, phone
#: numbers, account numbers). Spaces around and a plus sign are formatting: the value says all they said.
_REFORMATTED = r"^ *[-+]?0[0-9]"


@rule("DC005", "type-change", "block",
               safe="convert through a new column with an explicit expression, backfill, then swap")
def check(ctx: CheckContext) -> Iterator[CheckResult]:
    for diff in ctx.of("modify_type"):
        _, _, table_name, column_name, _, _, new = diff
        table = ctx.table(table_name)
        if table is None or column_name not in table.c:
            continue
        column = table.c[column_name]
        if _widens(column.type, new):
            continue  # every value fits unchanged
        using = _using(ctx, table, column, new)
        declared = ctx.converted.get(f"{table_name}.{column_name}", "") if using else ""
        error = _fails_under(ctx, table, declared) if declared else ""
        if declared and not error:
            yield _converts(ctx, table, column, new, declared)
            continue  # the migration's own USING converts every value: no cast of ours is the question
        if using and not declared:
            yield _no_cast(ctx, table, column, new, using)
        migration = _migration(ctx, table, column, new, using) if using and not declared else ""
        under = f" (under USING {declared or using})" if using else ""
        counted = []
        for problem, where, what, fix in _probes(ctx, column, new, bool(using)):
            counted.append(ctx.rows(table, [column], problem, sa.and_(column.is_not(None), where),
                                    f"hold {column_name} values that {what} as {_type_sql(ctx, new)}{under}",
                                    fix=fix, migration=migration))
        yield from counted
        if error and not any(r.count for r in counted):
            yield _using_fails(ctx, table, column, new, declared, error)


def _type_sql(ctx: CheckContext, type_: Any) -> str:
    return str(type_.compile(dialect=ctx.conn.dialect))


def _range(type_: Any) -> tuple[int, int] | None:
    if not isinstance(type_, sa.Integer):
        return None
    low, high = next((lo, hi) for kind, lo, hi in _RANGES if isinstance(type_, kind))
    return (0, high - low) if getattr(type_, "unsigned", False) else (low, high)


def _widens(old: Any, new: Any) -> bool:
    """Every value of ``old`` fits ``new`` unchanged (probing it would only cost a scan, or fail on the limits)."""
    if isinstance(old, sa.String) and isinstance(new, sa.String) and not isinstance(new, sa.Enum):
        return not new.length or (old.length is not None and not isinstance(old, sa.Enum) and old.length <= new.length)
    old_range, new_range = _range(old), _range(new)
    if old_range and new_range:
        return new_range[0] <= old_range[0] and old_range[1] <= new_range[1]
    if isinstance(new, sa.Numeric) and not isinstance(new, sa.Float) and new.precision is not None:
        digits = new.precision - (new.scale or 0)
        if old_range:
            return max(len(str(abs(v))) for v in old_range) <= digits
        if isinstance(old, sa.Numeric) and not isinstance(old, (sa.Float, sa.Integer)) and old.precision is not None:
            return (new.scale or 0) >= (old.scale or 0) and digits >= old.precision - (old.scale or 0)
    return False


def _using(ctx: CheckContext, table: sa.Table, column: sa.Column[Any], new: Any) -> str:
    """The USING expression the ALTER needs, where the dialect has no automatic cast from the old type ("": none)."""
    facts = ctx.dialect.facts
    if facts.using_option() is None:
        return ""
    name = ctx.conn.dialect.identifier_preparer.format_table(table)
    if facts.casts_automatically(ctx.conn, name, column.name, _type_sql(ctx, new)) is not False:
        return ""
    return ctx.sql(sa.cast(sa.column(column.name), new))


def _fails_under(ctx: CheckContext, table: sa.Table, using: str) -> str:
    """Why the migration's own USING expression fails on some row of ``table`` ("" when it converts every one).

    ``COUNT(<expression>)`` evaluates it on every row, read-only, as the ALTER would."""
    name = ctx.conn.dialect.identifier_preparer.format_table(table)
    try:
        ctx.conn.exec_driver_sql(f"SELECT COUNT({using}) FROM {name}").scalar()
    except sa.exc.DBAPIError as exc:
        if ctx.reopen is not None:
            ctx.reopen()
        text = str(exc.orig or exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    return ""


def _converts(ctx: CheckContext, table: sa.Table, column: sa.Column[Any], new: Any, using: str) -> CheckResult:
    """The migration converts with USING, and the expression takes every value: nothing fails."""
    name = ctx.conn.dialect.identifier_preparer.format_table(table)
    return ctx.result(table.name, [column.name], "using", 0,
                      f"the migration converts {column.name} of {table.name} to {_type_sql(ctx, new)} USING "
                      f"{using}, which converts every value", query=f"SELECT COUNT({using}) FROM {name}",
                      evidence={"from": _type_sql(ctx, column.type), "to": _type_sql(ctx, new), "using": using},
                      outcome=Outcome(FAILS, ""))


def _using_fails(ctx: CheckContext, table: sa.Table, column: sa.Column[Any], new: Any, using: str,
                 error: str) -> CheckResult:
    """The migration's USING fails on values no probe of ours describes: the rows it reads, at least one failing."""
    values = sa.select(sa.func.count(column)).select_from(table)
    count = int(ctx.scalar(values) or 0)
    message = (f"the migration's USING {using} fails on {column.name} of {table.name} ({error}): {count} rows hold a "
               f"value, and at least one of them does not convert to {_type_sql(ctx, new)}")
    result = ctx.result(table.name, [column.name], "using_fails", count, message, query=ctx.sql(values),
                        outcome=Outcome(FAILS, "the ALTER ... TYPE fails"), refused=True,
                        evidence={"from": _type_sql(ctx, column.type), "to": _type_sql(ctx, new), "using": using,
                                  "error": error})
    result.remedy("change the migration", f"# USING {using} fails: make it handle every value of {column.name}, "
                  "or fix or quarantine the values it cannot convert first", PYTHON)
    return result


def _no_cast(ctx: CheckContext, table: sa.Table, column: sa.Column[Any], new: Any, using: str) -> CheckResult:
    """Every row blocks the ALTER: the dialect refuses it before reading a value, even on an empty table."""
    count_query = sa.select(sa.func.count()).select_from(table)
    count = int(ctx.scalar(count_query) or 0)
    key = ctx.key(table)
    shown = [*key, *([column] if column not in key else [])]
    sample = ctx.frame(sa.select(*shown).order_by(*shown).limit(ctx.sample)) if count else \
        pd.DataFrame(columns=[c.name for c in shown])
    old_sql, new_sql = _type_sql(ctx, column.type), _type_sql(ctx, new)
    label = ctx.dialect.facts.label
    message = (f"{count} rows of {table.name}, every one: {label} has no automatic cast of "
               f"{column.name} from {old_sql} to {new_sql}") if count else \
        (f"{table.name} is empty, but {label} has no automatic cast of {column.name} from {old_sql} to {new_sql}: "
         f"the ALTER ... TYPE without USING is refused by {label} for any row count; convert USING {using}")
    outcome = Outcome(FAILS, f"ALTER ... TYPE without USING fails on every row (column cannot be cast "
                             f"automatically): convert USING {using}")
    result = ctx.result(table.name, [column.name], "no_cast", count, message, outcome=outcome, sample=sample,
                        query=ctx.sql(count_query), evidence={"from": old_sql, "to": new_sql, "using": using},
                        refused=True)
    option = str(ctx.dialect.facts.using_option())

    def alter(expression: str) -> Callable[[Any], None]:
        options: dict[str, Any] = {"type_": new, "existing_type": column.type, option: expression}
        return lambda op: op.alter_column(table.name, column.name, **options)

    result.remedy("convert with USING (the values that do not cast still fail: see the other DC005 results)",
                  ctx.ddl(alter(using)))
    pattern = _pattern(column, new, True)
    if pattern and column.nullable:
        value = sa.column(column.name, column.type)
        safe = ctx.sql(sa.case((value.regexp_match(pattern), sa.cast(value, new))))
        result.remedy("convert with USING, turning the values that do not cast into NULL (quarantine them first)",
                      ctx.ddl(alter(safe)))
    result.remedy("change the migration", _migration(ctx, table, column, new, using), PYTHON)
    return result


def _migration(ctx: CheckContext, table: sa.Table, column: sa.Column[Any], new: Any, using: str) -> str:
    return (f"op.alter_column({table.name!r}, {column.name!r}, existing_type={type_code(column.type)}, "
            f"type_={type_code(new)}, {ctx.dialect.facts.using_option()}={using!r})")


def _pattern(column: sa.Column[Any], new: Any, needs_using: bool) -> str | None:
    """The pattern a text must match to convert to ``new`` (None: no pattern, or not a text)."""
    if not isinstance(column.type, sa.String):
        return None
    if isinstance(new, sa.Integer):
        return CAST_PATTERNS["integer"]
    if isinstance(new, sa.Numeric) and not isinstance(new, sa.Float):
        return CAST_PATTERNS["numeric"]
    if isinstance(new, (sa.Date, sa.DateTime)):
        return CAST_PATTERNS["date"]
    # These convert without USING elsewhere, each in its own way (MariaDB's BOOLEAN is a number, SQLite's UUID text).
    return next((p for kind, p in _USING_PATTERNS if isinstance(new, kind)), None) if needs_using else None


def _probes(ctx: CheckContext, column: sa.Column[Any], new: Any,
            needs_using: bool) -> Iterator[tuple[str, Any, str, Any]]:
    """(problem, predicate, words, fix expression) for each way ``column`` can break as ``new``."""
    old = column.type
    is_text, is_number = isinstance(old, sa.String), isinstance(old, (sa.Numeric, sa.Float, sa.Integer))
    pattern = _pattern(column, new, needs_using)
    if pattern:
        yield "bad_cast", ~column.regexp_match(pattern), "do not cast", sa.null() if column.nullable else None
        if isinstance(new, (sa.Integer, sa.Numeric)) and not isinstance(new, sa.Float):
            # A zip code 01234 casts, to 1234: the value converts and what it said is gone.
            yield ("reformatted", sa.and_(column.regexp_match(pattern), column.regexp_match(_REFORMATTED)),
                   "lose their leading zeros", None)
    elif isinstance(new, sa.String) and not isinstance(new, sa.Text) and new.length:
        value = column if is_text else sa.cast(column, sa.Text)
        yield ("too_long", ctx.dialect.chars(value) > new.length, f"are longer than {new.length} characters",
               sa.func.substr(column, 1, new.length))
    elif isinstance(new, sa.Integer) and is_number:
        low, high = _range(new) or (0, 0)
        # The limits are bound as the new type: as the old one, a wider limit would not even bind.
        yield ("overflow", sa.or_(column < sa.literal(low, new), column > sa.literal(high, new)),
               f"are outside {low}..{high}", None)
        if not isinstance(old, sa.Integer):
            yield "rounded", column != ctx.dialect.round(column, 0), "lose their fraction", ctx.dialect.round(column, 0)
    elif isinstance(new, sa.Numeric) and not isinstance(new, sa.Float) and new.precision is not None and is_number:
        scale = new.scale or 0
        limit = 10 ** (new.precision - scale)
        yield ("overflow", sa.func.abs(column) >= limit, f"need more than {new.precision - scale} integer digits",
               None)
        old_scale = getattr(old, "scale", None) if not isinstance(old, sa.Float) else None
        if not isinstance(old, sa.Integer) and not (old_scale is not None and old_scale <= scale):
            yield "rounded", column != ctx.dialect.round(column, scale), f"have more than {scale} decimals", \
                ctx.dialect.round(column, scale)
