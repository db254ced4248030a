"""Classify each change and link it to what depends on it, with rows and bytes.

Classes (a change may have several; its ``kind`` is the most serious, in :data:`KINDS` order):

- ``destructive``: loses data (a dropped column or table);
- ``may-fail``: can fail on existing data (NOT NULL, unique, foreign key, check, type change);
- ``breaking``: backward-incompatible for code that is running now (rename, drop, required column);
- ``locking``: rewrites the table or scans it under a lock;
- ``additive`` and ``neutral``: safe for data and running code.

Dependencies come from the *source* snapshot: foreign keys pointing at the changed table or
column, indexes and constraints that contain it, and views whose definition reads it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dbrunbook import dialects
from dbrunbook.schema._model import Snapshot, Table
from dbrunbook.schema.diff import Change, SchemaDiff

#: Most serious first.
KINDS = ("destructive", "may-fail", "breaking", "locking", "additive", "neutral")

#: Classes per operation; ``add_column`` is decided by the column itself (see :func:`_classes`).
_CLASSES: dict[str, tuple[str, ...]] = {
    "add_table": ("additive",), "remove_table": ("destructive", "breaking"), "rename_table": ("breaking",),
    "modify_table_comment": ("neutral",), "remove_column": ("destructive", "breaking"),
    "rename_column": ("breaking",), "modify_type": ("may-fail", "locking"), "modify_default": ("neutral",),
    "modify_comment": ("neutral",), "modify_identity": ("locking",),
    "modify_pk": ("may-fail", "breaking", "locking"), "add_fk": ("may-fail", "locking"), "remove_fk": ("neutral",),
    "modify_fk": ("locking",), "add_unique": ("may-fail", "locking"), "remove_unique": ("neutral",),
    "add_index": ("locking",), "remove_index": ("neutral",), "add_check": ("may-fail", "locking"),
    "remove_check": ("neutral",), "add_enum": ("additive",), "remove_enum": ("breaking",),
    "add_enum_value": ("additive",), "remove_enum_value": ("may-fail", "breaking"), "add_sequence": ("additive",),
    "remove_sequence": ("breaking",), "modify_sequence": ("neutral",), "add_view": ("additive",),
    "remove_view": ("breaking",), "modify_view": ("breaking",),
}
#: Operations after which a dependent object no longer works as written.
_BREAKS_DEPENDENTS = {"remove_table", "rename_table", "remove_column", "rename_column", "modify_type", "modify_pk"}
_TABLE_OPS = {"remove_table", "rename_table", "modify_pk"}
#: The problems of a type change (as the dialects name them): whether one can fail decides "may-fail".
_CAST_PROBLEMS = ("too_long", "overflow", "bad_cast", "enum")


#: Type families whose every value fits the later members unchanged, smallest first (snapshot spellings).
_LADDERS = (("TINYTEXT", "TEXT", "MEDIUMTEXT", "LONGTEXT"), ("TINYBLOB", "BLOB", "MEDIUMBLOB", "LONGBLOB"),
            ("TINYINT", "SMALLINT", "MEDIUMINT", "INTEGER", "BIGINT"))
_STRINGS = re.compile(r"^(VARCHAR|CHARACTER VARYING|NVARCHAR)(?:\((\d+)\))?$")
_UNBOUNDED = ("TEXT", "MEDIUMTEXT", "LONGTEXT")


_NUMERIC = re.compile(r"^(NUMERIC|DECIMAL)\((\d+)(?:, ?(\d+))?\)$")
#: The decimal digits every value of each integer type holds.
_INTEGER_DIGITS = {"SMALLINT": 4, "MEDIUMINT": 6, "INTEGER": 9, "INT": 9, "BIGINT": 18}


def _fits_rounded(old: str, new: str) -> bool:
    """Every value of NUMERIC(p, s) ``old`` fits the integer type ``new`` once rounded: the change cannot fail on a
    row (the fractions it drops are data lost, which stage 05 counts on the rows)."""
    numeric, digits = _NUMERIC.match(old.strip().upper()), _INTEGER_DIGITS.get(new.strip().upper())
    return bool(numeric and digits is not None
                and int(numeric.group(2)) - int(numeric.group(3) or 0) <= digits)


def widens(old: str, new: str) -> bool:
    """Every value of type ``old`` fits ``new`` unchanged: a longer VARCHAR, VARCHAR or TEXT to a larger TEXT,
    a larger integer (so the change cannot fail on a row). Anything else, or a spelling not known here: False."""
    old, new = old.strip().upper(), new.strip().upper()
    for ladder in _LADDERS:
        if old in ladder and new in ladder:
            return ladder.index(new) >= ladder.index(old)
    short, long = _STRINGS.match(old), _STRINGS.match(new)
    if short and long:
        return long.group(2) is None or (short.group(2) is not None and int(long.group(2)) >= int(short.group(2)))
    # A VARCHAR fits any TEXT of 64 KiB or more (MySQL caps a VARCHAR at that, and PostgreSQL's text is unbounded).
    return bool(short) and new in _UNBOUNDED


def classify(change: Change, source: Snapshot, added: Mapping[tuple[str, str], dict[str, Any]] | None = None) \
        -> list[str]:
    """The impact classes of ``change`` against the ``source`` schema; ``added``: the columns the same change adds
    ((table, column) -> the added column), which hold no value yet."""
    if change.op == "modify_type" and (widens(str(change.before), str(change.after))
                                       or _fits_rounded(str(change.before), str(change.after))):
        return ["locking"]  # no row can make it fail; the table may still be rewritten under a lock
    dialect = dialects.get(source.dialect)
    if change.op == "modify_type" and dialect is not None and not dialect.can_fail_on(*_CAST_PROBLEMS):
        return ["locking"]  # SQLite's batch copy casts every value: stage 05 counts what it changes
    if change.op == "add_column":
        col = change.after or {}
        required = not col.get("nullable", True) and col.get("default") is None and not col.get("identity") \
            and not col.get("autoincrement")
        if not required:
            return ["additive"]
        rows = (source.tables.get(change.table) or Table(change.table)).rows
        # MariaDB fills the existing rows with the type's zero value instead of failing: only the code breaks.
        fails = dialect is None or dialect.can_fail_on("required")
        return ["may-fail", "breaking"] if rows and fails else ["breaking"]
    if change.op == "modify_nullable":
        return ["may-fail", "locking"] if change.after is False else ["additive"]
    if change.op == "add_fk" and _on_new_empty_columns(change, added or {}):
        return ["locking"]  # every row holds NULL there: no row can break the key (Buildbot's 065)
    return list(_CLASSES.get(change.op, ("neutral",)))


def _on_new_empty_columns(change: Change, added: Mapping[tuple[str, str], dict[str, Any]]) -> bool:
    """The foreign key ``change`` adds is on columns the same change adds without a default."""
    columns = (change.after or {}).get("columns") or []
    return bool(columns) and all((change.table, c) in added and added[(change.table, c)].get("default") is None
                                 for c in columns)


def assess(result: SchemaDiff) -> list[Change]:
    """Fill in kind, classes, rows and dependencies of every change in ``result``; returns the changes."""
    added = {(c.table, str((c.after or {}).get("name"))): dict(c.after or {}) for c in result.changes
             if c.op == "add_column"}
    for change in result.changes:
        change.classes = classify(change, result.source, added)
        change.kind = min(change.classes, key=KINDS.index)
        table = result.source.tables.get(change.table)
        if table is not None and change.rows_affected is None and change.op not in ("add_table",):
            change.rows_affected = table.rows
        change.dependencies = dependencies(change, result.source)
        if table is not None:
            change.extra.setdefault("table_bytes", table.bytes)
    return result.changes


def _column_of(change: Change) -> str | None:
    if change.op == "rename_column":
        return str(change.before)
    if "." in change.object and change.op.endswith(("column", "type", "nullable", "default", "comment", "identity")):
        return change.object.split(".", 1)[1]
    return None


def dependencies(change: Change, source: Snapshot) -> list[dict[str, Any]]:
    """Objects of ``source`` that depend on what ``change`` touches, each with rows and bytes."""
    table_name = str(change.before) if change.op == "rename_table" else change.table
    table = source.tables.get(table_name)
    if change.op == "add_fk":
        return _fk_target(change, source)
    if table is None or change.op.startswith("add_"):
        return []
    column = _column_of(change)
    if column is None and change.op not in _TABLE_OPS:
        return []
    breaks = change.op in _BREAKS_DEPENDENTS
    deps: list[dict[str, Any]] = []

    def add(kind: str, name: str | None, owner: Table, columns: list[str], breaking: bool) -> None:
        deps.append({"type": kind, "name": name or f"{owner.name}({', '.join(columns)})", "table": owner.name,
                     "columns": columns, "breaks": breaking, "rows": owner.rows, "bytes": owner.bytes})

    for other in source.tables.values():
        for fk in other.foreign_keys:
            if fk.ref_table == table.name and (column is None or column in fk.ref_columns):
                add("foreign_key", fk.name, other, fk.columns, breaks)
    if column is not None:
        for fk in table.foreign_keys:
            if column in fk.columns:
                add("foreign_key", fk.name, table, fk.columns, breaks)
        for ix in table.indexes:
            if column in ix.columns:
                add("index", ix.name, table, ix.columns, breaks)
        for uq in table.uniques:
            if column in uq.columns:
                add("unique", uq.name, table, uq.columns, breaks)
        if column in table.primary_key:
            add("primary_key", f"{table.name}.primary_key", table, table.primary_key, breaks)
        for ck in table.checks:
            if re.search(rf"\b{re.escape(column.lower())}\b", ck.sqltext or ""):
                add("check", ck.name, table, [column], breaks)
    for view in source.views.values():
        if table.name in view.tables and (column is None or column in view.columns):
            deps.append({"type": "view", "name": view.name, "table": table.name, "columns": [column] if column else [],
                         "breaks": breaks or change.op == "modify_type", "rows": None, "bytes": None})
    return deps


def _fk_target(change: Change, source: Snapshot) -> list[dict[str, Any]]:
    fk = change.after or {}
    ref = source.tables.get(fk.get("ref_table", ""))
    if ref is None:
        return []
    return [{"type": "referenced_table", "name": ref.name, "table": ref.name, "columns": fk.get("ref_columns", []),
             "breaks": False, "rows": ref.rows, "bytes": ref.bytes}]
