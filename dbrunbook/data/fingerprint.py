"""Data fingerprints: per table a row count, per column a non-null count and a checksum.

:func:`fingerprint` reads a database in one aggregate query per table; the checksum of a
column is the sum of a hash of each value's text form, so it does not depend on row order
and two databases holding the same values agree without moving a row out of the server.
How a value is hashed is a dialect fact (:attr:`~dbrunbook.dialects.Dialect.checksum_sql`, all of
them in :data:`CHECKSUM_SQL`); SQLite has no hash function, so the dialect registers an aggregate on
the connection (:meth:`~dbrunbook.dialects.Dialect.prepare_checksum`). :func:`compare` names every table and
column whose rows, nulls or values differ, with the counts. :func:`schema_snapshot` is the
schema's counterpart, built with SQLAlchemy reflection, for checks that the schema came back.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
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
class TablePrint:
    """One table's fingerprint: its rows and each column's print."""

    rows: int
    columns: dict[str, ColumnPrint] = field(default_factory=dict)


@dataclass
class Fingerprint:
    """The data fingerprint of a database (or of some of its tables)."""

    dialect: str
    tables: dict[str, TablePrint] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Fingerprint:
        tables = {name: TablePrint(rows=t["rows"], columns={c: ColumnPrint(**p) for c, p in t["columns"].items()})
                  for name, t in raw.get("tables", {}).items()}
        return cls(dialect=raw["dialect"], tables=tables, seconds=raw.get("seconds", 0.0))

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


def _print_table(conn: Connection, checksum_sql: str, table: sa.Table) -> TablePrint:
    quote = conn.dialect.identifier_preparer.quote
    names = [c.name for c in table.columns]
    parts = ["COUNT(*)"]
    for name in names:
        parts += [f"COUNT({quote(name)})", checksum_sql.format(c=quote(name))]
    # Quoting comes from the dialect; the statement has no parameters.
    query: Any = sa.select(*[sa.literal_column(p) for p in parts]).select_from(table)
    row = conn.execute(query).one()
    columns = {name: ColumnPrint(non_null=int(row[1 + 2 * i]), checksum=str(int(row[2 + 2 * i])))
               for i, name in enumerate(names)}
    return TablePrint(rows=int(row[0]), columns=columns)


def fingerprint(engine: Engine, tables: Iterable[str] | None = None) -> Fingerprint:
    """Fingerprint ``tables`` (default: every table) of the database behind ``engine``."""
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
    result = Fingerprint(dialect=dialect)
    with engine.connect() as conn:
        facts.prepare_checksum(conn)
        for name in wanted:
            table = sa.Table(name, metadata, autoload_with=conn)
            result.tables[name] = _print_table(conn, facts.checksum_sql, table)
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
