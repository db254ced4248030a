"""Generated rows for any reflected schema: every table filled, parents first, within its constraints.

Nothing here knows a project. A column's values come from what the database reflects: its type and
length, NULL or NOT NULL, enum values, CHECK constraints (``col IN (...)``, ``col = ANY (ARRAY[...])``,
bounds and MariaDB's ``json_valid(col)``, read with sqlglot), primary and unique keys (never repeated)
and foreign keys (pointing at rows already inserted, so parents go first in the order of the reflected
foreign keys). Server-generated keys (autoincrement, identity) are left to the database and read back.
A batch the database still refuses (a CHECK that could not be read) is inserted row by row and the
refused rows are dropped and counted, so the caller sees what the generator could not honour.
"""
from __future__ import annotations

import datetime as dt
import decimal
import json
import random
import string
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import sqlglot
from sqlalchemy.dialects import mysql
from sqlglot import exp

#: Tables that belong to the migration tool, not the application.
SKIP = ("alembic_version",)
_SQLGLOT = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}
#: Draws of one row before it is given up (its foreign-key picks kept colliding with a unique key).
_TRIES = 30
_NULLS = 0.1
_EPOCH = dt.datetime(2020, 1, 1)
_FIVE_YEARS = 5 * 365 * 24 * 3600
_KEY_CHARS = string.ascii_lowercase + string.digits
_TEXT_CHARS = string.ascii_letters + string.digits + "  .,-_"
_MISSING = object()


@dataclass
class Filled:
    """What :func:`fill` inserted: rows per table, rows the database refused, and why tables stayed short."""

    rows: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Rules:
    """What the CHECK constraints and enum types of a table allow, per column."""

    allowed: dict[str, list[Any]] = field(default_factory=dict)
    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)
    json: set[str] = field(default_factory=set)


def fill(url: str | sa.URL, rows: int = 200, seed: int = 0, skip: tuple[str, ...] = SKIP) -> Filled:
    """Insert about ``rows`` generated rows into every table of the database at ``url``."""
    engine = sa.create_engine(url)
    try:
        return _fill(engine, rows, seed, skip)
    finally:
        engine.dispose()


def _fill(engine: sa.Engine, rows: int, seed: int, skip: tuple[str, ...]) -> Filled:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    dialect = engine.dialect.name
    inspector = sa.inspect(engine)
    filled = Filled()
    pools: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        if table.name in skip:
            continue
        rnd = random.Random(f"{seed}:{table.name}")
        rules = _rules(table, engine, inspector, dialect)
        drawn = _draw(table, rules, _uniques(table, inspector), pools, rows, rnd, filled.notes, dialect)
        refused = _insert(engine, table, drawn, filled.notes)
        with engine.connect() as conn:
            pools[table.name] = [dict(r._mapping) for r in conn.execute(sa.select(table))]
        filled.rows[table.name] = len(pools[table.name])
        if refused:
            filled.refused[table.name] = refused
    return filled


def _uniques(table: sa.Table, inspector: sa.Inspector) -> list[tuple[str, ...]]:
    """Column tuples that may not repeat: the primary key, unique constraints and unique indexes."""
    keys = {tuple(c.name for c in table.primary_key.columns)}
    keys |= {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
    keys |= {tuple(c for c in i["column_names"] if c is not None) for i in inspector.get_indexes(table.name)
             if i.get("unique") and None not in i["column_names"]}  # an expression index is not a column key
    return [k for k in keys if k]


def _rules(table: sa.Table, engine: sa.Engine, inspector: sa.Inspector, dialect: str) -> _Rules:
    rules = _Rules()
    for column in table.columns:
        if isinstance(column.type, sa.Enum) and column.type.enums:
            rules.allowed[column.name] = list(column.type.enums)
    for text in _check_texts(table.name, engine, inspector, dialect):
        try:
            tree = sqlglot.parse_one(text, read=_SQLGLOT.get(dialect))
        except sqlglot.errors.SqlglotError:
            continue  # an unreadable CHECK is caught by the row-by-row fallback of _insert
        found = _Rules()
        _read_check(tree, found)
        _narrow(rules, found)
    return rules


def _narrow(rules: _Rules, check: _Rules) -> None:
    """Add one CHECK's rules: a row must pass every CHECK (MariaDB keeps an old status CHECK beside a new one)."""
    for name, values in check.allowed.items():
        both = [v for v in rules.allowed.get(name, values) if v in values]
        rules.allowed[name] = both or values  # nothing passes both: the database will say so, row by row
    for name, low in check.low.items():
        rules.low[name] = max(low, rules.low.get(name, low))
    for name, high in check.high.items():
        rules.high[name] = min(high, rules.high.get(name, high))
    rules.json |= check.json


#: MariaDB's catalog of CHECKs: SQLAlchemy's reflection misses the column-level ones.
_MARIADB_CHECKS = sa.text("SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                          "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = :table")


def _check_texts(table: str, engine: sa.Engine, inspector: sa.Inspector, dialect: str) -> list[str]:
    if dialect in ("mariadb", "mysql"):
        try:
            with engine.connect() as conn:
                return [str(r[0]) for r in conn.execute(_MARIADB_CHECKS, {"table": table})]
        except sa.exc.DBAPIError:
            pass  # MySQL's CHECK_CONSTRAINTS has no TABLE_NAME; its reflection reads them all
    try:
        return [c["sqltext"] for c in inspector.get_check_constraints(table)]
    except NotImplementedError:
        return []


def _read_check(tree: Any, rules: _Rules) -> None:
    for isin in tree.find_all(exp.In):
        _allow(rules, _column(isin.this), [_literal(e) for e in isin.expressions])
    for eq in tree.find_all(exp.EQ):
        right = _unwrap(eq.expression)
        if isinstance(right, exp.Any):  # PostgreSQL stores IN (...) as = ANY (ARRAY[...])
            array = _unwrap(right.this)
            values = [_literal(e) for e in array.expressions] if isinstance(array, exp.Array) else [_MISSING]
            _allow(rules, _column(eq.this), values)
        else:
            _allow(rules, _column(eq.this), [_literal(right)], union=True)
    for cmp in tree.find_all(exp.GT, exp.GTE, exp.LT, exp.LTE):
        name, bound = _column(cmp.this), _literal(cmp.expression)
        if name and isinstance(bound, (int, float)) and not isinstance(bound, bool):
            target = rules.low if isinstance(cmp, (exp.GT, exp.GTE)) else rules.high
            target[name] = bound + (1 if isinstance(cmp, exp.GT) else -1 if isinstance(cmp, exp.LT) else 0)
    for call in tree.find_all(exp.Anonymous):
        if call.name.lower() == "json_valid":  # MariaDB's JSON columns are LONGTEXT with this CHECK
            for col in call.find_all(exp.Column):
                rules.json.add(col.name)


def _allow(rules: _Rules, name: str | None, values: list[Any], union: bool = False) -> None:
    if not name or any(v is _MISSING for v in values):
        return
    values = [v for v in values if v is not None]
    if union and name in rules.allowed:
        rules.allowed[name] = list(dict.fromkeys([*rules.allowed[name], *values]))
    elif values:
        rules.allowed[name] = values


def _unwrap(node: exp.Expression) -> exp.Expression:
    while isinstance(node, (exp.Cast, exp.Paren)):
        node = node.this
    return node


def _column(node: exp.Expression) -> str | None:
    node = _unwrap(node)
    return node.name if isinstance(node, exp.Column) else None


def _literal(node: exp.Expression) -> Any:
    node = _unwrap(node)
    if isinstance(node, exp.Neg):
        inner = _literal(node.this)
        return -inner if isinstance(inner, (int, float)) else _MISSING
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Boolean):
        return node.this
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = str(node.this)
        return float(text) if any(c in text for c in ".eE") else int(text)
    return _MISSING


def _server_generated(table: sa.Table, column: sa.Column[Any], dialect: str) -> bool:
    """True for a value the database assigns (autoincrement, identity, computed), which the generator leaves out."""
    if column.computed is not None or column.identity is not None:
        return True
    if table.autoincrement_column is not column:
        return False
    # Only a column declared exactly INTEGER is SQLite's rowid alias; BIGINT keys are not assigned.
    return dialect != "sqlite" or type(column.type).__name__.upper() == "INTEGER"


def _draw(table: sa.Table, rules: _Rules, uniques: list[tuple[str, ...]], pools: dict[str, list[dict[str, Any]]],
          count: int, rnd: random.Random, notes: list[str], dialect: str) -> list[dict[str, Any]]:
    """Up to ``count`` rows for ``table``; rows whose keys keep colliding are left out."""
    # A key the database would assign is still drawn when a CHECK pins its values (a one-row table).
    generated = [c for c in table.columns if c.name in rules.allowed or not _server_generated(table, c, dialect)]
    in_key = {name for key in uniques for name in key}
    fks = sorted((fk for fk in table.foreign_key_constraints if fk.referred_table is not table),
                 key=lambda fk: -len(fk.columns))
    for fk in fks:
        if not pools.get(fk.referred_table.name) and not all(c.nullable for c in fk.columns):
            notes.append(f"{table.name}: left empty, its parent {fk.referred_table.name} has no rows")
            return []
    own = {c.name for fk in table.foreign_key_constraints if fk.referred_table is table for c in fk.columns}
    seen: dict[tuple[str, ...], set[tuple[Any, ...]]] = {key: set() for key in uniques}
    drawn: list[dict[str, Any]] = []
    for i in range(count):
        for _ in range(_TRIES):
            row = {c.name: _value(c, i, rnd, rules, c.name in in_key) for c in generated}
            for name in own:  # a self-reference points nowhere yet: NULL where allowed
                row[name] = None
            if _pick_parents(row, fks, pools, rnd) and _fresh(row, seen):
                drawn.append(row)
                break
    return drawn


def _pick_parents(row: dict[str, Any], fks: list[sa.ForeignKeyConstraint],
                  pools: dict[str, list[dict[str, Any]]], rnd: random.Random) -> bool:
    """Point each foreign key at a parent row agreeing with the columns already chosen; False if none does."""
    chosen: set[str] = set()
    for fk in fks:
        pairs = [(e.parent.name, e.column.name) for e in fk.elements]
        pool = pools.get(fk.referred_table.name, [])
        if all(row_col.nullable for row_col in fk.columns) and (not pool or rnd.random() < _NULLS):
            for name, _ in pairs:
                if name not in chosen:
                    row[name] = None
            continue
        parents = [p for p in pool
                   if all(p[ref] == row[name] for name, ref in pairs if name in chosen)]
        parents = [p for p in parents if all(p[ref] is not None for _, ref in pairs)]
        if not parents:
            return False
        parent = rnd.choice(parents)
        for name, ref in pairs:
            row[name] = parent[ref]
            chosen.add(name)
    return True


def _fresh(row: dict[str, Any], seen: dict[tuple[str, ...], set[tuple[Any, ...]]]) -> bool:
    """Record the row's unique keys; False (nothing recorded) if one repeats."""
    keys = {}
    for key in seen:
        values = tuple(_folded(row.get(name)) for name in key)
        if None in values:
            continue  # NULLs never collide in a unique key
        if values in seen[key]:
            return False
        keys[key] = values
    for key, values in keys.items():
        seen[key].add(values)
    return True


def _folded(value: Any) -> Any:
    # MySQL's default collations compare case- and trailing-space-insensitively.
    return value.lower().rstrip() if isinstance(value, str) else value


def _value(column: sa.Column[Any], i: int, rnd: random.Random, rules: _Rules, unique: bool) -> Any:
    """A value for ``column`` in row ``i``; ``unique`` makes it differ from every other row's."""
    name = column.name
    if column.nullable and not column.primary_key and rnd.random() < _NULLS:
        return None
    if name in rules.allowed:
        return rnd.choice(rules.allowed[name])
    if name in rules.json:
        return json.dumps({"n": i, "tag": _word(rnd, 6, _KEY_CHARS)})
    value = _typed(column.type, i, rnd, unique)
    if isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool):
        low, high = rules.low.get(name), rules.high.get(name)
        if low is not None and value < low:
            value = type(value)(low)
        if high is not None and value > high:
            value = type(value)(high)
    if value is _MISSING:
        return None if column.nullable else str(i)
    return value


def _typed(type_: sa.types.TypeEngine[Any], i: int, rnd: random.Random, unique: bool) -> Any:
    """A value of ``type_`` (the order matters: Enum is a String, Float a Numeric)."""
    if isinstance(type_, sa.Enum):
        return rnd.choice(type_.enums) if type_.enums else _MISSING
    if isinstance(type_, sa.Boolean) or isinstance(type_, mysql.TINYINT) and type_.display_width == 1:
        return bool(i % 2) if unique else rnd.random() < 0.5
    if isinstance(type_, sa.Integer):
        small = isinstance(type_, (sa.SmallInteger, mysql.TINYINT))
        return i + 1 if unique else rnd.randint(0, 100 if small else 1_000_000)
    if isinstance(type_, sa.Float):
        return round(i + rnd.random(), 6) if unique else round(rnd.uniform(-1000, 1000), 6)
    if isinstance(type_, sa.Numeric):
        scale = type_.scale or 0
        top = min(10 ** max((type_.precision or 10) - scale, 1) - 1, 1_000_000)
        number = i + 1 if unique else rnd.uniform(0, top)
        return decimal.Decimal(str(round(number, scale))) if scale else decimal.Decimal(int(number))
    if isinstance(type_, sa.DateTime):
        moment = _EPOCH + dt.timedelta(seconds=i * 3600 + rnd.randrange(3600) if unique else rnd.randrange(_FIVE_YEARS))
        return moment.replace(tzinfo=dt.UTC) if type_.timezone else moment
    if isinstance(type_, sa.Date):
        return (_EPOCH + dt.timedelta(days=i if unique else rnd.randrange(5 * 365))).date()
    if isinstance(type_, sa.Time):
        return dt.time(rnd.randrange(24), rnd.randrange(60), rnd.randrange(60))
    if isinstance(type_, sa.Interval):
        return dt.timedelta(seconds=i if unique else rnd.randrange(86400))
    if isinstance(type_, sa.JSON):
        return {"n": i, "tag": _word(rnd, 6, _KEY_CHARS)}
    if isinstance(type_, sa.Uuid):
        value = uuid.UUID(int=rnd.getrandbits(128), version=4)
        return value if type_.as_uuid else str(value)
    if isinstance(type_, sa.LargeBinary):
        return rnd.randbytes(min(type_.length or 32, 32))
    if isinstance(type_, sa.ARRAY):
        return [_typed(type_.item_type, i, rnd, False) for _ in range(2)]
    if isinstance(type_, sa.String):
        return _string(type_.length, i, rnd, unique)
    return _MISSING


def _string(length: int | None, i: int, rnd: random.Random, unique: bool) -> str:
    room = min(length or 40, 40)
    if unique:
        # The row number first, so a short column still tells rows apart.
        return f"{i:x}-{_word(rnd, room, _KEY_CHARS)}"[:room]
    return _word(rnd, rnd.randint(1, room), _TEXT_CHARS).strip() or "x"


def _word(rnd: random.Random, size: int, chars: str) -> str:
    return "".join(rnd.choice(chars) for _ in range(size))


def _insert(engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]], notes: list[str]) -> int:
    """Insert ``rows``; on refusal, row by row. Returns how many rows the database refused."""
    if not rows:
        return 0
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        return 0
    except sa.exc.SQLAlchemyError:
        pass
    refused, first = 0, ""
    for row in rows:
        try:
            with engine.begin() as conn:
                conn.execute(table.insert(), [row])
        except sa.exc.SQLAlchemyError as exc:
            refused += 1
            first = first or str(getattr(exc, "orig", exc)).splitlines()[0]
    if refused:
        notes.append(f"{table.name}: the database refused {refused} of {len(rows)} rows: {first}")
    return refused
