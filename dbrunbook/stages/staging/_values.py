"""How stage 9 replays each column of a table it grows: type families, the profile pass, fresh values.

Replaying a table's rows ``k`` times copies most columns as they are. A column that must not
repeat (one column of each primary key or unique constraint, and undeclared near-unique integer
or text columns such as e-mails) gets a *fresh* value instead, a function of the original value
and ``k`` only, so a foreign key can apply its parent's function and still point at a row:

- integers and decimals (float, double, numeric) are shifted by ``k`` times their span;
- text gets an ``r<k>-`` prefix; where that outgrows the column's length, the MD5 of the value and
  ``k``, cut to the length (SQLite does not enforce lengths: the prefix always);
- UUIDs become the MD5 of the value and ``k``; binary values likewise (or a prefix on SQLite);
- dates, times and timestamps move by ``k`` times their span (SQLite: whole days, keeping the text
  of the time exactly).

A composite key needs only one of its columns fresh: the first that can be, integers first, never
a foreign key (which follows its parent). How a family is shifted on each dialect is the
dialect's (:mod:`dbrunbook.dialects`: ``span_seconds``, ``digest_text``, ``fresh_uuid``, ``fresh_bytes``,
``shift_time``); a key none of whose columns can be made fresh (booleans, JSON, enums) is
reported by :func:`choose_rules` and the table is left as it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from dbrunbook import dialects

INTEGER, DECIMAL, TEXT, UUID, DATE, DATETIME, TIME, BINARY, OTHER = (
    "integer", "decimal", "text", "uuid", "date", "datetime", "time", "binary", "other")
#: Families in the order a column is picked to carry a composite key's fresh value.
PREFERENCE = (INTEGER, TEXT, UUID, DATETIME, DATE, DECIMAL, BINARY, TIME)
#: Rules that make a value no row held before (as opposed to ``copy`` and ``parent``).
FRESH = ("shift", "prefix", "uuid", "interval", "bytes")

#: A column whose distinct values cover at least this share of its non-null rows is replayed
#: as a fresh value, not a copy (e-mails, external ids), so growth does not invent duplicates.
NEAR_UNIQUE = 0.9
#: Fewer non-null values than this say too little to call an undeclared column near-unique.
NEAR_UNIQUE_MIN_ROWS = 20


@dataclass
class ColumnRule:
    """How one column is replayed: copied, made fresh (by ``rule``), or following a parent key."""

    rule: str  # copy | shift | prefix | uuid | interval | bytes | parent
    span: Any = 0
    length: int | None = None
    parent: tuple[str, str] | None = None
    family: str = ""


def family(column: sa.Column[Any]) -> str:
    """The type family of ``column`` that decides how it can get fresh values."""
    t = column.type
    if isinstance(t, (sa.Boolean, sa.Enum, sa.JSON, sa.Interval)):
        return OTHER
    if isinstance(t, sa.Integer):
        return INTEGER
    if isinstance(t, (sa.Numeric, sa.Float)):  # SQLAlchemy 2.1: Float is no Numeric any more
        return DECIMAL
    if isinstance(t, sa.Uuid):
        return UUID
    if isinstance(t, sa.String):
        return TEXT
    if isinstance(t, sa.DateTime):
        return DATETIME
    if isinstance(t, sa.Date):
        return DATE
    if isinstance(t, sa.Time):
        return TIME
    if isinstance(t, (sa.LargeBinary, sa.BINARY, sa.VARBINARY)):
        return BINARY
    return OTHER


# -- the profile pass ---------------------------------------------------------------------------

def profile_query(table: sa.Table, dialect: str) -> sa.Select[Any]:
    """One aggregate pass: rows, non-null counts, distinct counts of integer and text, numeric and time spans.

    Every label is positional (``n3``), so no user column name reaches it; distinct counts and
    spans are only asked of types that compare (PostgreSQL's ``json`` has no equality).
    """
    facts = dialects.facts(dialect)
    parts: list[sa.ColumnElement[Any]] = [sa.func.count().label("rows")]
    for i, col in enumerate(table.columns):
        kind = family(col)
        parts.append(sa.func.count(col).label(f"n{i}"))
        if kind in (INTEGER, TEXT):
            parts.append(sa.func.count(sa.distinct(col)).label(f"d{i}"))
        if kind in (INTEGER, DECIMAL):
            parts += [sa.func.min(col).label(f"lo{i}"), sa.func.max(col).label(f"hi{i}")]
        span = facts.span_seconds(col) if kind in (DATE, DATETIME, TIME) else None
        if span is not None:
            parts.append(span.label(f"s{i}"))
    return sa.select(*parts).select_from(table)


# -- choosing the rules -------------------------------------------------------------------------

def _span(low: Any, high: Any) -> Any:
    """A shift that moves every value past the whole range: an int, or a Decimal for decimals."""
    if low is None or high is None:
        return 1
    if isinstance(low, int) and isinstance(high, int):
        return high - low + 1
    return Decimal(math.floor(Decimal(str(high)) - Decimal(str(low)))) + 1


def fresh_rule(col: sa.Column[Any], i: int, profile: dict[str, Any], dialect: str) -> ColumnRule | None:
    """The rule giving ``col`` values no row holds yet, or None when its type has none."""
    kind = family(col)
    facts = dialects.facts(dialect)
    # Built only to ask whether the dialect can make such a value (None: it cannot).
    probe: sa.ColumnElement[Any] = sa.literal_column("v")
    round_k: sa.ColumnElement[Any] = sa.literal(1)
    if kind in (INTEGER, DECIMAL):
        return ColumnRule("shift", span=_span(profile.get(f"lo{i}"), profile.get(f"hi{i}")), family=kind)
    if kind == TEXT:
        return ColumnRule("prefix", length=getattr(col.type, "length", None), family=kind)
    if kind == UUID and facts.fresh_uuid(probe, round_k) is not None:
        return ColumnRule("uuid", family=kind)
    if kind == BINARY and facts.fresh_bytes(probe, round_k) is not None:
        return ColumnRule("bytes", length=getattr(col.type, "length", None), family=kind)
    if kind in (DATE, DATETIME, TIME) and f"s{i}" in profile:
        seconds = profile[f"s{i}"]
        if seconds is None and profile[f"n{i}"]:
            return None  # values the database cannot read as times (SQLite text): no safe shift
        days = kind == DATE or (kind == DATETIME and facts.timestamps_shift_in_days)
        unit = 86400 if days else 1
        return ColumnRule("interval", span=math.floor(float(seconds or 0) / unit) + 1, family=kind)
    return None


def choose_rules(table: sa.Table, profile: dict[str, Any], dialect: str, unique_sets: list[tuple[str, ...]],
                 following: set[str]) -> tuple[dict[str, ColumnRule], str]:
    """The rule of every column, and why the table cannot grow (empty when it can).

    ``following`` are the foreign-key columns whose parent grows at least as many rounds: they
    get fresh values from their parent's rule.
    """
    rules = {c.name: ColumnRule("copy", family=family(c)) for c in table.columns}
    index = {c.name: i for i, c in enumerate(table.columns)}
    foreign = {c.name for fk in table.foreign_key_constraints for c in fk.columns}
    for col in table.columns:  # near-unique values a constraint does not declare (e-mails, codes)
        if col.name in foreign:
            continue  # a reference follows its parent instead
        i = index[col.name]
        nonnull, distinct = profile[f"n{i}"], profile.get(f"d{i}")
        if distinct is not None and nonnull >= NEAR_UNIQUE_MIN_ROWS and distinct >= NEAR_UNIQUE * nonnull:
            rules[col.name] = fresh_rule(col, i, profile, dialect) or rules[col.name]
    for names in sorted(unique_sets, key=len):
        if any(rules[n].rule in FRESH or n in following for n in names):
            continue
        made = [(n, fresh_rule(table.c[n], index[n], profile, dialect)) for n in names if n not in foreign]
        usable = sorted(((n, r) for n, r in made if r is not None), key=lambda p: PREFERENCE.index(p[1].family))
        if not usable:
            types = ", ".join(f"{n} {table.c[n].type}" for n in names)
            why = "references a parent that grows less" if set(names) & foreign else "has no synthetic rule"
            return rules, f"no column of unique key ({types}) can take fresh values: it {why}"
        name, rule = usable[0]
        rules[name] = rule
    return rules, ""


def unique_sets(table: sa.Table) -> list[tuple[str, ...]]:
    """The column sets that must not repeat: primary key, unique constraints, unique indexes on columns."""
    sets = [tuple(c.name for c in table.primary_key.columns)] if table.primary_key.columns else []
    sets += [tuple(c.name for c in u.columns) for u in table.constraints if isinstance(u, sa.UniqueConstraint)]
    for index in table.indexes:
        names = [c.name for c in index.expressions if isinstance(c, sa.Column)]
        if index.unique and names and len(names) == len(index.expressions):
            sets.append(tuple(names))
    return [s for s in dict.fromkeys(sets) if s]


# -- the replayed values ------------------------------------------------------------------------

def _text(k: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.cast(k, sa.String(12))


def fresh_value(col: sa.ColumnElement[Any], rule: ColumnRule, k: sa.ColumnElement[Any],
                dialect: str) -> sa.ColumnElement[Any]:
    """The value of ``col`` in replay ``k`` under a fresh ``rule``."""
    facts = dialects.facts(dialect)
    if rule.rule == "shift":
        step: sa.ColumnElement[Any] = k * rule.span if isinstance(rule.span, int) \
            else k * sa.literal_column(format(Decimal(rule.span), "f"), sa.Numeric())
        return col + step
    if rule.rule == "prefix":
        value = sa.literal("r") + _text(k) + sa.literal("-") + sa.cast(col, sa.String())
        digest = facts.digest_text(col, k) if rule.length else None
        if digest is None:
            return value
        # Cutting the prefixed value would make values that differ only at their end collide.
        return sa.case((sa.func.char_length(value) <= rule.length, value), else_=sa.func.substr(digest, 1, rule.length))
    if rule.rule == "uuid":
        made = facts.fresh_uuid(col, k)
        assert made is not None  # fresh_rule gives "uuid" only where the dialect makes one
        return made
    if rule.rule == "bytes":
        made = facts.fresh_bytes(col, k)
        assert made is not None  # likewise
        return sa.func.substr(made, 1, rule.length) if rule.length and rule.length < 16 else made
    if rule.rule == "interval":
        return facts.shift_time(col, k * int(rule.span), rule.family)
    return col
