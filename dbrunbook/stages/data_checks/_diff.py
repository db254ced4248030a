"""The change from the live database to the target, in the shape the data checks read.

The change comes from the project's one diff engine (:mod:`dbrunbook.schema`): stage 01's recorded
:class:`~dbrunbook.schema.Change` objects when it ran (so stage 05 judges the change stage 01 reported), else
computed here the same way, a live :func:`~dbrunbook.schema.snapshot` against
:func:`~dbrunbook.schema.snapshot_metadata` of the target. Each typed change is translated into a tuple that
carries the SQLAlchemy objects the checks build their queries from: the target's new columns and constraints
(looked up in the target ``MetaData``), the reflected live tables and columns for what is dropped::

    ("add_column", None, table, Column)            ("remove_column", None, table, Column)
    ("modify_nullable", None, table, column, {}, nullable_before, nullable)
    ("modify_type", None, table, column, {}, type_before, type)
    ("add_constraint", UniqueConstraint, table, {column: live column})     (an added unique key: the live
    ("add_index", Index, table, {column: live column})                    table and columns it is checked on)
    ("add_pk", PrimaryKeyConstraint)
    ("add_fk", ForeignKeyConstraint, table, {column: live column}, referred table)
    ("add_check", CheckConstraint)
    ("modify_enum", None, table, column, values_before, values)
    ("add_table", Table)                  ("remove_table", Table)

A confirmed rename (``renames`` in ``[tool.dbrunbook]``, or declared by a revision) is a ``rename_*`` change,
never a drop and an add: it loses no data, so it becomes no tuple, and later changes of the renamed column or
table are checked on its live name. A non-native enum is plain text in the database, so no schema diff sees
its values: those of the target's enum columns are compared with the live column here (``modify_enum``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dbrunbook.core.db import dialect_name
from dbrunbook.errors import ConfigError
from dbrunbook.schema import Change, diff, snapshot, snapshot_metadata
from dbrunbook.schema._canonical import canonical_sql
from dbrunbook.schema._normalise import clause_text

Diff = tuple[Any, ...]


@dataclass
class Found:
    """The change translated for the checks, the reflected live tables, and what each piece of it says."""

    diffs: list[Diff]
    live: sa.MetaData
    #: One line per typed change (``"modify_type users.age"``), and per enum compared with the models.
    described: list[str] = field(default_factory=list)
    #: The tables the change touches, by their live name and their target name.
    tables: set[str] = field(default_factory=set)


def compute(conn: Connection, target: sa.MetaData, renames: Mapping[str, str] | None = None, *,
            models: bool = True) -> list[Change]:
    """The typed changes from ``conn``'s database to ``target``, as stage 01 computes them.

    ``models``: False when ``target`` was reflected from the copy the pending revisions upgraded. A ``renames``
    entry that names no source or target object is left out (stage 01 reports it), not a reason to check nothing.
    """
    live = snapshot(conn.engine, sizes=False)
    wanted = snapshot_metadata(target, conn.dialect, models=models)
    try:
        return diff(live, wanted, renames).changes
    except ConfigError:
        return diff(live, wanted).changes


def translate(conn: Connection, target: sa.MetaData, changes: list[Change]) -> Found:
    """The tuples the checks read for ``changes``, with the live tables they touch reflected on ``conn``."""
    tables = {t: t for t in target.tables}
    columns: dict[tuple[str, str], str] = {}
    for change in changes:
        if change.op == "rename_table" and isinstance(change.before, str):
            tables[change.table] = change.before
        elif change.op == "rename_column" and isinstance(change.before, str) and isinstance(change.after, str):
            columns[(change.table, change.after)] = change.before
    existing = set(sa.inspect(conn).get_table_names())
    wanted = ({tables.get(c.table, c.table) for c in changes} | set(tables.values())) & existing
    live = sa.MetaData()
    live.reflect(conn, only=sorted(wanted))
    found = Found([], live, [describe(c) for c in changes])
    names = _Names(tables, columns)
    for change in changes:
        found.diffs.extend(_translate(conn, target, live, names, change))
        if change.table:
            found.tables |= {change.table, names.table(change.table)}
    seen = {(d[2], d[3]) for d in found.diffs if d[0] == "modify_enum"}
    for extra in _model_enums(target, live, names):
        if (extra[2], extra[3]) not in seen:
            found.diffs.append(extra)
            found.described.append(f"modify_enum {extra[2]}.{extra[3]}")
    found.tables |= {table_of(d) for d in found.diffs} - {""}
    return found


def describe(change: Change) -> str:
    """One line for a typed change: its operation and ``table.object`` (``"add_check runs.ck_runs_status"``)."""
    t, obj = change.table, change.object
    named = obj if not t or obj == t or obj.startswith((f"{t}.", f"{t}(")) else f"{t}.{obj}"
    return f"{change.op} {named}"


@dataclass
class _Names:
    """Target names to live names: a renamed table or column is still under its old name in the database."""

    tables: dict[str, str]
    columns: dict[tuple[str, str], str]

    def table(self, name: str) -> str:
        return self.tables.get(name, name)

    def column(self, table: str, name: str) -> str:
        return self.columns.get((table, name), name)


def _column_name(change: Change) -> str:
    """The column of a change whose object is ``table.column`` (either may hold dots of its own)."""
    return change.object[len(change.table) + 1:]


def _translate(conn: Connection, target: sa.MetaData, live: sa.MetaData, names: _Names,
               change: Change) -> list[Diff]:
    op, t = change.op, change.table
    goal, now = target.tables.get(t), live.tables.get(names.table(t))
    if op == "remove_table":
        return [("remove_table", now if now is not None else sa.Table(t, sa.MetaData()))]
    if op == "add_table":
        return [("add_table", goal)] if goal is not None else []
    if op == "remove_enum_value":
        return _removed_value(target, live, names, change)
    if goal is None:
        return []
    if op == "add_column":
        name = (change.after or {}).get("name") or _column_name(change)
        return [("add_column", None, names.table(t), goal.c[name])] if name in goal.c else []
    if op == "remove_column":
        name = (change.before or {}).get("name") or _column_name(change)
        column = now.c[name] if now is not None and name in now.c else sa.Column(name)
        return [("remove_column", None, names.table(t), column)]
    if op in ("modify_type", "modify_nullable"):
        name = _column_name(change)
        if name not in goal.c:
            return []
        live_name = names.column(t, name)
        new = goal.c[name].type if op == "modify_type" else change.after
        out: list[Diff] = [(op, None, names.table(t), live_name, {}, change.before, new)]
        return out + (_enum(goal, now, name, live_name) if op == "modify_type" else [])
    if op == "modify_pk":
        return [("add_pk", goal.primary_key)] if goal.primary_key.columns else []
    if op == "add_fk":
        fk = _foreign_key(goal, change.after or {})
        columns = {c.name: names.column(t, c.name) for c in goal.c}
        referred = str((change.after or {}).get("ref_table", ""))
        return [("add_fk", fk, names.table(t), columns, names.table(referred))] if fk is not None else []
    if op == "add_unique":  # a UNIQUE constraint or a unique index: the diff keys both by their columns
        columns = {c.name: names.column(t, c.name) for c in goal.c}  # checked on the live names of renamed ones
        return [(kind, key, names.table(t), columns) for kind, key in _unique(goal, list(change.after or []),
                                                                          change.object)]
    if op == "add_check":
        check = _check(conn, goal, str((change.after or [""])[0]))
        return [("add_check", check)] if check is not None else []
    # add_index is a non-unique index (a unique one is add_unique), which no row can fail; the other changes
    # (defaults, comments, dropped keys, views, sequences) change no stored value.
    return []


def _foreign_key(table: sa.Table, wanted: Mapping[str, Any]) -> sa.ForeignKeyConstraint | None:
    for fk in table.foreign_key_constraints:
        # Read from the key's text: resolving ``fk.referred_table`` raises when the models lack it.
        refs = [e.target_fullname.rsplit(".", 1) for e in fk.elements]
        if list(fk.column_keys) == list(wanted.get("columns", [])) \
                and [r[-1] for r in refs] == list(wanted.get("ref_columns", [])) \
                and refs and refs[0][0].split(".")[-1] == wanted.get("ref_table"):
            return fk
    return None


def _unique(table: sa.Table, key: list[Any], name: str) -> list[Diff]:
    """The target's UNIQUE constraint on the columns of ``key``, else its unique index on them, else its unique
    index named ``name`` (one on expressions, ``lower(email)``, whose text the diff wrote canonically)."""
    cols = [str(k) for k in key]
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and [c.name for c in constraint.columns] == cols:
            return [("add_constraint", constraint)]
    unique = [index for index in table.indexes if index.unique]
    for index in unique:
        if [e.name if isinstance(e, sa.Column) else None for e in index.expressions] == cols:
            return [("add_index", index)]
    return [("add_index", index) for index in unique if index.name == name][:1]


def _check(conn: Connection, table: sa.Table, sqltext: str) -> sa.CheckConstraint | None:
    """The target's CHECK whose canonical text (as :func:`~dbrunbook.schema.snapshot_metadata` writes it) is
    ``sqltext``."""
    name = dialect_name(conn.engine)
    for constraint in table.constraints:
        if isinstance(constraint, sa.CheckConstraint) and not getattr(constraint, "_type_bound", False) \
                and canonical_sql(clause_text(constraint.sqltext, conn.dialect), name) == sqltext:
            return constraint
    return None


def _enum_values(column: sa.Column[Any] | None) -> list[str] | None:
    enums = getattr(column.type, "enums", None) if column is not None else None
    return list(enums) if enums else None


def _enum(goal: sa.Table, now: sa.Table | None, name: str, live_name: str) -> list[Diff]:
    """``modify_enum`` when the target column is an enum whose values the live column does not all keep."""
    values = _enum_values(goal.c[name]) if name in goal.c else None
    if values is None or now is None or live_name not in now.c:
        return []
    before = _enum_values(now.c[live_name])
    if before is not None and not set(before) - set(values):
        return []
    return [("modify_enum", None, now.name, live_name, before, values)]


def _removed_value(target: sa.MetaData, live: sa.MetaData, names: _Names, change: Change) -> list[Diff]:
    """An enum value removed: of a column's inline ENUM (MariaDB), or of a named enum type (PostgreSQL), which
    every target column of that type loses."""
    value = str(change.before)
    owner = change.object[:len(change.object) - len(value) - 1]
    if change.table:
        wanted = [(change.table, owner[len(change.table) + 1:])]
    else:
        wanted = [(t.name, c.name) for t in target.tables.values() for c in t.columns
                  if isinstance(c.type, sa.Enum) and c.type.name == owner]
    out: list[Diff] = []
    for table, column in wanted:
        if table in target.tables:
            now = live.tables.get(names.table(table))
            out += _enum(target.tables[table], now, column, names.column(table, column))
    return out


def _model_enums(target: sa.MetaData, live: sa.MetaData, names: _Names) -> list[Diff]:
    """Enum columns of the target whose live column holds plain text: the values of a non-native enum are the
    models' alone (the DDL is the same VARCHAR), so no schema diff sees them."""
    out: list[Diff] = []
    for goal in target.tables.values():
        now = live.tables.get(names.table(goal.name))
        if now is None:
            continue
        for column in goal.columns:
            live_name = names.column(goal.name, column.name)
            if isinstance(column.type, sa.Enum) and live_name in now.c and _enum_values(now.c[live_name]) is None:
                out += _enum(goal, now, column.name, live_name)
    return out


def table_of(diff: Diff) -> str:
    """The name of the table a diff is about."""
    op = diff[0]
    if op in ("add_table", "remove_table"):
        return str(diff[1].name)
    if op.startswith("modify_") or op in ("add_column", "remove_column"):
        return str(diff[2])
    if op in ("add_constraint", "add_index", "add_fk") and len(diff) > 2:
        return str(diff[2])  # the live name of the table the key is checked on
    obj = diff[1]
    table = getattr(obj, "table", None)
    if table is None:
        table = getattr(obj, "parent", None)
    return str(getattr(table, "name", ""))
