"""Data fingerprints: per table a row count, per column a non-null count and a checksum.

:func:`fingerprint` reads a database in one aggregate query per table; the checksum of a
column is the sum of a hash of each value's text form, so it does not depend on row order
and two databases holding the same values agree without moving a row out of the server.
How a value is hashed is a dialect fact (:attr:`~dbrunbook.dialects.Dialect.checksum_sql`, all of
them in :data:`CHECKSUM_SQL`); SQLite has no hash function, so the dialect registers an aggregate on
the connection (:meth:`~dbrunbook.dialects.Dialect.prepare_checksum`). :func:`compare` names every table and
column whose rows, nulls or values differ, with the counts. :func:`schema_snapshot` is the
schema's counterpart, built with SQLAlchemy reflection, for checks that the schema came back.

Two optional extensions serve a comparison across writes by others (stage 11's print before the apply, stage 12's
after it, on a target the application keeps writing to): ``keys=True`` records, per table with a single-column
integer primary key, that key and its largest value (:attr:`TablePrint.key_max`); ``bounds`` adds to a table's
print the print of its rows whose key is at most a given value (:class:`BoundedPrint`, in the same query), so the
rows that existed before compare apart from those inserted since. A print without them reads and saves as before.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dbrunbook import dialects
from dbrunbook.core.db import dialect_name
from dbrunbook.errors import UsageError

#: SQL of one column's checksum per dialect (the dialects' ``checksum_sql``); ``{c}`` is the quoted column.
#: Each sums a 60-bit slice of the MD5 of the value's text form (an exact numeric sum, so never overflows).
CHECKSUM_SQL: dict[str, str] = {d.name: d.checksum_sql for d in dialects.registered()}


@dataclass
class ColumnPrint:
    """One column's fingerprint."""

    non_null: int
    checksum: str


@dataclass
class BoundedPrint:
    """The print of a table's rows whose key is at most ``upto`` (``None``: no row, the table was empty)."""

    upto: int | None
    rows: int
    columns: dict[str, ColumnPrint] = field(default_factory=dict)

    def as_table(self) -> TablePrint:
        """These rows as a table print, to :func:`compare` with the print taken when ``upto`` was the largest key."""
        return TablePrint(rows=self.rows, columns=dict(self.columns))


@dataclass
class TablePrint:
    """One table's fingerprint: its rows and each column's print.

    ``key``/``key_max``: its single-column integer primary key and largest key (recorded with ``keys=True``);
    ``bounded``: the print of the rows up to a key (taken with ``bounds``)."""

    rows: int
    columns: dict[str, ColumnPrint] = field(default_factory=dict)
    key: str = ""
    key_max: int | None = None
    bounded: BoundedPrint | None = None

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"rows": self.rows, "columns": {c: asdict(p) for c, p in self.columns.items()}}
        if self.key:  # only when recorded: a print without keys saves exactly as before
            raw.update(key=self.key, key_max=self.key_max)
        if self.bounded is not None:
            raw["bounded"] = asdict(self.bounded)
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TablePrint:
        def columns(of: dict[str, Any]) -> dict[str, ColumnPrint]:
            return {c: ColumnPrint(**p) for c, p in of["columns"].items()}

        bounded = raw.get("bounded")
        return cls(rows=raw["rows"], columns=columns(raw), key=raw.get("key") or "", key_max=raw.get("key_max"),
                   bounded=BoundedPrint(bounded["upto"], bounded["rows"], columns(bounded)) if bounded else None)


@dataclass
class Fingerprint:
    """The data fingerprint of a database (or of some of its tables)."""

    dialect: str
    tables: dict[str, TablePrint] = field(default_factory=dict)
    seconds: float = 0.0
    #: Taken with ``keys=True``: each table with a single-column integer key has it recorded, so a table
    #: without one had none (a print from before keys were recorded says nothing of them).
    keyed: bool = False

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        raw: dict[str, Any] = {"dialect": self.dialect, "seconds": self.seconds,
                               "tables": {name: t.to_json() for name, t in self.tables.items()}}
        if self.keyed:
            raw["keyed"] = True
        return raw

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Fingerprint:
        tables = {name: TablePrint.from_json(t) for name, t in raw.get("tables", {}).items()}
        return cls(dialect=raw["dialect"], tables=tables, seconds=raw.get("seconds", 0.0),
                   keyed=bool(raw.get("keyed", False)))

    def save(self, path: str | Path) -> Path:
        """Write the fingerprint as JSON to ``path``."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n")
        return out

    @classmethod
    def load(cls, path: str | Path) -> Fingerprint:
        """Read a fingerprint written by :meth:`save`."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read fingerprint {path}: {exc}") from None


@dataclass
class FingerprintDiff:
    """One difference between two fingerprints; ``column`` is empty for table-level ones."""

    table: str
    column: str
    what: str  # table-missing | table-added | rows | column-missing | column-added | non-null | values
    before: int | None
    after: int | None

    @property
    def message(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return _MESSAGES[self.what].format(where=where, before=self.before, after=self.after,
                                           lost=(self.before or 0) - (self.after or 0))

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "message": self.message}


_MESSAGES = {
    "table-missing": "table {where} is gone ({before} rows before)",
    "table-added": "table {where} is new ({after} rows)",
    "rows": "table {where} has {after} rows, {before} before",
    "column-missing": "column {where} is gone ({before} non-null values before)",
    "column-added": "column {where} is new ({after} non-null values)",
    "non-null": "column {where} has {after} non-null values, {before} before ({lost} did not come back)",
    "values": "column {where} holds different values ({before} non-null before and after)",
}


def _table_names(engine: Engine) -> list[str]:
    return sorted(sa.inspect(engine).get_table_names())


def integer_key(table: sa.Table) -> str:
    """The table's primary key column when it is a single integer column (keys that grow as rows are added)."""
    columns = list(table.primary_key.columns)
    return columns[0].name if len(columns) == 1 and isinstance(columns[0].type, sa.Integer) else ""


def _print_table(conn: Connection, checksum_sql: str, table: sa.Table, key: str = "",
                 bound: tuple[str, int | None] | None = None) -> TablePrint:
    quote = conn.dialect.identifier_preparer.quote
    names = [c.name for c in table.columns]
    if bound is not None and bound[0] not in names:
        bound = None  # the key is gone (dropped or renamed): nothing to bound the rows by
    upto = bound[1] if bound is not None else None
    within = bound is not None and upto is not None
    # ``upto`` goes into the SQL as int(): a number, never text; the bounded aggregates share the table's one scan,
    # so the rows before and the rows inserted since are counted at the same moment.
    test = f"{quote(bound[0])} <= {int(upto)}" if bound is not None and upto is not None else ""
    parts = ["COUNT(*)"] + ([f"MAX({quote(key)})"] if key else []) + (
        [f"SUM(CASE WHEN {test} THEN 1 ELSE 0 END)"] if within else [])
    first = len(parts)
    for name in names:
        parts += [f"COUNT({quote(name)})", checksum_sql.format(c=quote(name))]
        if within:
            only = f"CASE WHEN {test} THEN {quote(name)} END"
            parts += [f"COUNT({only})", checksum_sql.format(c=only)]
    # Quoting comes from the dialect; the statement has no parameters.
    query: Any = sa.select(*[sa.literal_column(p) for p in parts]).select_from(table)
    row = conn.execute(query).one()
    step = 4 if within else 2

    def column(at: int) -> ColumnPrint:
        return ColumnPrint(non_null=int(row[at]), checksum=str(int(row[at + 1])))

    columns = {name: column(first + step * i) for i, name in enumerate(names)}
    result = TablePrint(rows=int(row[0]), columns=columns, key=key,
                        key_max=int(row[1]) if key and row[1] is not None else None)
    if within:
        result.bounded = BoundedPrint(upto, int(row[first - 1] or 0),
                                      {name: column(first + step * i + 2) for i, name in enumerate(names)})
    elif bound is not None:  # the table was empty: no row existed before
        result.bounded = BoundedPrint(None, 0, {name: ColumnPrint(0, "0") for name in names})
    return result


def fingerprint(engine: Engine, tables: Iterable[str] | None = None, *, keys: bool = False,
                bounds: Mapping[str, tuple[str, int | None]] | None = None) -> Fingerprint:
    """Fingerprint ``tables`` (default: every table) of the database behind ``engine``.

    With ``keys``, each table's single-column integer key and its largest value are recorded. ``bounds`` maps a
    table to ``(key column, largest key)``: its print then also holds the print of its rows up to that key
    (:attr:`TablePrint.bounded`); a table not named, or whose key column is gone, has none."""
    dialect = dialect_name(engine)
    facts = dialects.get(dialect)
    if facts is None:
        raise UsageError(f"no fingerprint checksum for dialect {dialect!r}")
    started = time.perf_counter()
    wanted = sorted(tables) if tables is not None else _table_names(engine)
    known = set(_table_names(engine))
    missing = [t for t in wanted if t not in known]
    if missing:
        raise UsageError(f"no table {', '.join(missing)} to fingerprint")
    metadata = sa.MetaData()
    result = Fingerprint(dialect=dialect, keyed=keys)
    bounds = bounds or {}
    with engine.connect() as conn:
        facts.prepare_checksum(conn)
        for name in wanted:
            table = sa.Table(name, metadata, autoload_with=conn)
            result.tables[name] = _print_table(conn, facts.checksum_sql, table, integer_key(table) if keys else "",
                                               bounds.get(name))
        conn.rollback()
    result.seconds = round(time.perf_counter() - started, 6)
    return result


def _compare_table(name: str, before: TablePrint, after: TablePrint) -> list[FingerprintDiff]:
    diffs = []
    if before.rows != after.rows:
        diffs.append(FingerprintDiff(name, "", "rows", before.rows, after.rows))
    for col, old in before.columns.items():
        new = after.columns.get(col)
        if new is None:
            diffs.append(FingerprintDiff(name, col, "column-missing", old.non_null, None))
        elif new.non_null != old.non_null:
            diffs.append(FingerprintDiff(name, col, "non-null", old.non_null, new.non_null))
        elif new.checksum != old.checksum:
            diffs.append(FingerprintDiff(name, col, "values", old.non_null, new.non_null))
    for col, new in after.columns.items():
        if col not in before.columns:
            diffs.append(FingerprintDiff(name, col, "column-added", None, new.non_null))
    return diffs


def compare(before: Fingerprint, after: Fingerprint) -> list[FingerprintDiff]:
    """Every table and column whose rows, non-null count or values differ, with counts."""
    diffs: list[FingerprintDiff] = []
    for name, old in sorted(before.tables.items()):
        new = after.tables.get(name)
        if new is None:
            diffs.append(FingerprintDiff(name, "", "table-missing", old.rows, None))
        else:
            diffs.extend(_compare_table(name, old, new))
    for name, new in sorted(after.tables.items()):
        if name not in before.tables:
            diffs.append(FingerprintDiff(name, "", "table-added", None, new.rows))
    return diffs


def schema_snapshot(engine: Engine, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The schema's structure as JSON (the :mod:`dbrunbook.schema` snapshot without sizes)."""
    from dbrunbook.schema import snapshot

    raw = snapshot(engine, exclude=list(exclude), sizes=False).to_json()
    for table in raw["tables"].values():  # statistics are not structure
        table["rows"] = table["bytes"] = None
    raw["source"] = raw["taken_at"] = ""
    return raw


def compare_schema(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What differs between two :func:`schema_snapshot` results, one line per difference."""
    from dbrunbook.schema import Snapshot, diff

    changes = diff(Snapshot.from_json(before), Snapshot.from_json(after)).changes
    return [f"{c.op} {c.object}: {c.detail}" for c in changes]
