"""Stage 1: what changes between the live schema and the target models, and what it risks.

:func:`compare` runs Alembic's comparison of the live database with the target ``MetaData``
(read-only) and turns each difference into a :class:`Change` classified as additive,
breaking (for running code), destructive (loses data), may-fail (on existing data) or
neutral. Drops are measured: a dropped column or table says how many values it holds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from .results import Finding

KINDS = ("additive", "neutral", "breaking", "may-fail", "destructive")


@dataclass
class Change:
    """One difference between the live schema and the target."""

    op: str
    table: str
    object: str
    kind: str
    detail: str
    rows_affected: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _flatten(diffs: list[Any]) -> list[tuple[Any, ...]]:
    flat: list[tuple[Any, ...]] = []
    for diff in diffs:
        flat.extend(_flatten(diff) if isinstance(diff, list) else [diff])
    return flat


def _column_change(diff: tuple[Any, ...]) -> Change:
    op, _schema, table, column, info, old, new = diff
    if op == "modify_nullable":
        kind = "may-fail" if new is False else "additive"
        detail = f"{'NOT NULL' if new is False else 'NULL'} (was {'NULL' if old else 'NOT NULL'})"
    elif op == "modify_type":
        kind, detail = "may-fail", f"type {old} -> {new}"
    elif op == "modify_default":
        kind, detail = "neutral", f"server default {old!r} -> {new!r}"
    else:
        kind, detail = "neutral", f"{op.replace('modify_', '')} {old!r} -> {new!r}"
    return Change(op, table, f"{table}.{column}", kind, detail)


def _change(diff: tuple[Any, ...]) -> Change:
    op = diff[0]
    if op.startswith("modify_"):
        return _column_change(diff)
    if op in ("add_column", "remove_column"):
        _, _schema, table, column = diff
        if op == "remove_column":
            return Change(op, table, f"{table}.{column.name}", "destructive", "column dropped")
        required = not column.nullable and column.server_default is None and not column.primary_key
        kind = "breaking" if required else "additive"
        return Change(op, table, f"{table}.{column.name}", kind,
                      f"{column.type} {'NOT NULL without default' if required else 'added'}")
    if op in ("add_table", "remove_table"):
        table = diff[1]
        return Change(op, table.name, table.name, "additive" if op == "add_table" else "destructive",
                      "table added" if op == "add_table" else "table dropped")
    obj = diff[1]
    table = getattr(getattr(obj, "table", None), "name", "") or getattr(obj, "parent", sa.Table).name
    name = obj.name or "(unnamed)"
    if op in ("add_constraint", "add_fk"):
        what = "foreign key" if op == "add_fk" else type(obj).__name__
        cols = ", ".join(c.name for c in getattr(obj, "columns", []))
        return Change(op, table, name, "may-fail", f"{what} on ({cols}) added")
    if op == "add_index":
        kind = "may-fail" if obj.unique else "additive"
        return Change(op, table, name, kind, f"{'unique ' if obj.unique else ''}index added")
    return Change(op, table, name, "neutral", op.replace("_", " "))


def _measure(engine: sa.Engine, change: Change) -> None:
    """Count what a destructive change would destroy."""
    meta = sa.MetaData()
    try:
        table = sa.Table(change.table, meta, autoload_with=engine)
    except sa.exc.NoSuchTableError:
        return
    with engine.connect() as conn:
        if change.op == "remove_column":
            column = table.c[change.object.split(".", 1)[1]]
            query = sa.select(sa.func.count()).where(column.is_not(None))
        else:
            query = sa.select(sa.func.count()).select_from(table)
        change.rows_affected = int(conn.execute(query.select_from(table)).scalar_one())


def compare(engine: sa.Engine, metadata: sa.MetaData) -> list[Change]:
    """The changes from the live database to ``metadata``, classified and measured."""
    with engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = _flatten(compare_metadata(mc, metadata))
    changes = [_change(d) for d in diffs]
    for change in changes:
        if change.kind == "destructive":
            _measure(engine, change)
    return changes


def findings(changes: list[Change]) -> list[Finding]:
    """Findings for the changes that need attention."""
    out = []
    for c in changes:
        if c.kind == "destructive":
            lost = c.rows_affected or 0
            out.append(Finding("SA001", "block" if lost else "warn",
                               f"{c.detail}: {lost} non-empty values would be lost" if c.op == "remove_column"
                               else f"{c.detail}: {lost} rows would be lost",
                               c.object, {"rows": lost},
                               "copy the data elsewhere first, or stop using the column in code and drop it in a later release"))
        elif c.kind == "breaking":
            out.append(Finding("SA002", "warn", f"{c.detail}: running code that does not know it will fail",
                               c.object, {}, "add it nullable or with a server default, backfill, then tighten"))
        elif c.kind == "may-fail":
            out.append(Finding("SA003", "warn", f"{c.detail}: may fail on existing rows", c.object, {},
                               "check the data first (stage 05) or add the constraint NOT VALID and validate later"))
    return out
