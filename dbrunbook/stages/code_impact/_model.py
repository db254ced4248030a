"""What the code scan looks for (:class:`Watch`) and what it finds (:class:`Reference`, :class:`InsertSite`).

A :class:`Watch` is built once from the schema changes (and the target models, for defaults
and mapped classes): the tables and columns that are dropped, renamed, made required or
narrowed. The scanners record only references to watched names, so a large project yields a
short list.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from dbrunbook.schema import Change
from dbrunbook.sql.types import binary_compatible

#: Integer types from narrowest to widest; a move to the left narrows.
_INT_RANK = {"smallint": 0, "tinyint": 0, "mediumint": 1, "integer": 2, "int": 2, "bigint": 3}
_SIZED = re.compile(r"^([a-z ]+?)\s*(?:\((\d+)(?:\s*,\s*(\d+))?\))?(?:\s+unsigned)?$")
_TEXT = {"text", "clob", "longtext", "mediumtext", "character varying", "varchar", "char", "character",
         "nvarchar", "nchar"}


@dataclass
class Required:
    """A column the change makes NOT NULL without a server default: every INSERT must supply it."""

    change: Change
    #: The model gives it a Python-side default, so ORM and Core inserts through the models fill it.
    client_default: bool = False


@dataclass
class Reference:
    """One place in the code that names a watched table or column."""

    file: str
    line: int
    code: str
    table: str
    column: str | None
    #: read, write (UPDATE SET, attribute assignment, keyword values) or table (the table itself).
    access: str
    #: How the table was resolved: model (a mapped class), table (a Table object), sql, or name.
    via: str
    #: The construct: attribute, keyword, subscript, sql, getattr.
    construct: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class InsertSite:
    """An INSERT (SQL, Core or an ORM constructor) and the columns it supplies (None: by position)."""

    file: str
    line: int
    code: str
    table: str
    columns: list[str] | None
    via: str
    construct: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Watch:
    """The tables and columns whose references can break, keyed by their old (current) names."""

    dropped_tables: dict[str, Change] = field(default_factory=dict)
    dropped_columns: dict[tuple[str, str], Change] = field(default_factory=dict)
    renamed_tables: dict[str, Change] = field(default_factory=dict)
    renamed_columns: dict[tuple[str, str], Change] = field(default_factory=dict)
    required: dict[str, dict[str, Required]] = field(default_factory=dict)
    narrowed: dict[tuple[str, str], Change] = field(default_factory=dict)
    #: Tables that gain or lose columns: an INSERT without a column list breaks on them.
    reshaped: dict[str, Change] = field(default_factory=dict)
    #: Mapped class name -> table name, from the models and from ``__tablename__`` in the code.
    classes: dict[str, str] = field(default_factory=dict)
    #: (table, attribute key) -> column name, where a mapped attribute is named unlike its column.
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Column names per table in the target models, to tell a by-name match from a live column.
    target_columns: dict[str, set[str]] = field(default_factory=dict)
    _tables: set[str] | None = field(default=None, repr=False, compare=False)
    _columns: dict[str, set[str]] | None = field(default=None, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.dropped_tables or self.dropped_columns or self.renamed_tables or self.renamed_columns
                    or self.required or self.narrowed or self.reshaped)

    def tables(self) -> set[str]:
        """Every table whose references or inserts are of interest (computed once: the watch is built whole)."""
        if self._tables is None:
            self._tables = self._all_tables()
        return self._tables

    def _all_tables(self) -> set[str]:
        return {*self.dropped_tables, *self.renamed_tables, *self.required, *self.reshaped,
                *(t for t, _ in (*self.dropped_columns, *self.renamed_columns, *self.narrowed))}

    def table(self, name: str, quoted: bool = True) -> str | None:
        """The watched table called ``name`` (case-insensitively unless ``quoted``), or None."""
        return _lookup(name, self.tables(), quoted)

    def columns(self, table: str) -> set[str]:
        """Column names of ``table`` whose references can break (dropped, renamed, narrowed)."""
        if self._columns is None:
            self._columns = {}
            for t, c in (*self.dropped_columns, *self.renamed_columns, *self.narrowed):
                self._columns.setdefault(t, set()).add(c)
        return self._columns.get(table, set())

    def column_names(self) -> set[str]:
        """Every watched column name, of any table."""
        return {c for t in self.tables() for c in self.columns(t)}

    def column(self, table: str, name: str, quoted: bool = True) -> str | None:
        """The watched column of ``table`` called ``name``, or None."""
        return _lookup(name, self.columns(table), quoted)

    def tables_with_column(self, name: str) -> set[str]:
        """Watched tables with a watched column called ``name``."""
        return {t for t in self.tables() if name in self.columns(t)}

    def column_of_attribute(self, table: str, key: str) -> str:
        return self.attributes.get((table, key), key)


def _lookup(name: str, names: Iterable[str], quoted: bool) -> str | None:
    names = set(names)
    if name in names:
        return name
    if not quoted:  # unquoted SQL identifiers fold case
        return next((n for n in sorted(names) if n.lower() == name.lower()), None)
    return None


def narrows(old: str, new: str) -> bool:
    """True when a value of type ``old`` may not fit ``new`` (shorter, smaller, fewer digits, other family)."""
    o, n = old.lower().strip(), new.lower().strip()
    if o == n or binary_compatible(o, n) or n in ("text", "clob", "longtext"):
        return False
    a, b = _SIZED.match(o), _SIZED.match(n)
    if not a or not b:
        return True
    base_a, base_b = a.group(1), b.group(1)
    if base_a in _INT_RANK and base_b in _INT_RANK:
        return _INT_RANK[base_b] < _INT_RANK[base_a]
    if base_a in _INT_RANK and base_b in ("numeric", "decimal"):
        return b.group(2) is not None and int(b.group(2)) - int(b.group(3) or 0) < 19
    if base_a in _TEXT and base_b in _TEXT:
        return b.group(2) is not None and (a.group(2) is None or int(b.group(2)) < int(a.group(2)))
    if base_a in ("numeric", "decimal") and base_b in ("numeric", "decimal"):
        if b.group(2) is None:
            return False
        if a.group(2) is None:
            return True
        sa_, sb = int(a.group(3) or 0), int(b.group(3) or 0)
        return int(b.group(2)) - sb < int(a.group(2)) - sa_ or sb < sa_
    return True


def build_watch(changes: Iterable[Change], metadata: sa.MetaData | None = None,
                classes: Mapping[str, str] | None = None,
                attributes: Mapping[tuple[str, str], str] | None = None) -> Watch:
    """The :class:`Watch` for ``changes``; ``metadata`` (the target models) tells defaults and live columns."""
    watch = Watch(classes=dict(classes or {}), attributes=dict(attributes or {}))
    changes = list(changes)
    if metadata is not None:
        watch.target_columns = {t.name: {c.name for c in t.columns} for t in metadata.tables.values()}
    new_defaults = {c.object for c in changes if c.op == "modify_default" and c.after is not None}
    for c in changes:
        column = c.object.split(".", 1)[1] if "." in c.object else ""
        if c.op == "remove_table":
            watch.dropped_tables[c.table] = c
        elif c.op == "rename_table":
            watch.renamed_tables[str(c.before)] = c
        elif c.op == "remove_column":
            watch.dropped_columns[(c.table, column)] = c
            watch.reshaped.setdefault(c.table, c)
        elif c.op == "rename_column":
            watch.renamed_columns[(c.table, str(c.before))] = c
        elif c.op == "modify_type" and narrows(str(c.before), str(c.after)):
            watch.narrowed[(c.table, column)] = c
        elif c.op == "add_column":
            watch.reshaped.setdefault(c.table, c)
            if "NOT NULL without default" in c.detail:
                _require(watch, c, column, metadata)
        elif c.op == "modify_nullable" and c.after is False and c.object not in new_defaults:
            _require(watch, c, column, metadata)
    return watch


def _require(watch: Watch, change: Change, column: str, metadata: sa.MetaData | None) -> None:
    table = metadata.tables.get(change.table) if metadata is not None else None
    col = table.c.get(column) if table is not None else None
    if col is not None and (col.server_default is not None or col.identity is not None):
        return
    client = col is not None and col.default is not None
    watch.required.setdefault(change.table, {})[column] = Required(change, client)
