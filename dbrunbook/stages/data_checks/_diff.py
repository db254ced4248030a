"""The differences between the live database and the target models that data can trip over.

Alembic's :func:`~alembic.autogenerate.compare_metadata` gives most of them, carrying the
target's Column and Constraint objects. It does not compare CHECK constraints, enum value
lists or primary keys, so those are compared here from the reflected live tables and added as
diffs of the same tuple shape: ``("add_check", CheckConstraint)``, ``("add_pk",
PrimaryKeyConstraint)`` and ``("modify_enum", None, table, column, live_values, values)``.
"""
from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from dbrunbook.core.db import dialect_name
from dbrunbook.schema._canonical import canonical_sql
from dbrunbook.schema._normalise import clause_text

Diff = tuple[Any, ...]


def _flatten(diffs: list[Any]) -> list[Diff]:
    flat: list[Diff] = []
    for diff in diffs:
        flat.extend(_flatten(diff) if isinstance(diff, list) else [diff])
    return flat


def _norm(clause: Any, conn: Connection) -> str:
    # The database's words and the model's compared after parsing (IN vs = ANY, casts, quotes).
    name = dialect_name(conn.engine)
    return canonical_sql(clause_text(clause, conn.dialect), name) or ""


def _checks(conn: Connection, live: sa.Table, target: sa.Table) -> list[Diff]:
    """CHECK constraints of ``target`` that the live table lacks (or holds with another meaning)."""
    have = {_norm(c.sqltext, conn) for c in live.constraints if isinstance(c, sa.CheckConstraint)}
    out: list[Diff] = []
    for constraint in target.constraints:
        if isinstance(constraint, sa.CheckConstraint) and not getattr(constraint, "_type_bound", False):
            if _norm(constraint.sqltext, conn) not in have:
                out.append(("add_check", constraint))
    return out


def _enum_values(column: sa.Column[Any] | None) -> list[str] | None:
    enums = getattr(column.type, "enums", None) if column is not None else None
    return list(enums) if enums else None


def _enums(live: sa.Table, target: sa.Table) -> list[Diff]:
    """Enum columns whose allowed values shrink (or that become enums)."""
    out: list[Diff] = []
    for column in target.columns:
        values = _enum_values(column)
        if values is None or column.name not in live.c:
            continue
        before = _enum_values(live.c[column.name])
        if before is None or set(before) - set(values):
            out.append(("modify_enum", None, target.name, column.name, before, values))
    return out


def _primary_key(live: sa.Table, target: sa.Table) -> list[Diff]:
    now = [c.name for c in live.primary_key.columns]
    wanted = [c.name for c in target.primary_key.columns]
    if wanted and wanted != now and all(name in live.c for name in wanted):
        return [("add_pk", target.primary_key)]
    return []


def diffs(conn: Connection, target: sa.MetaData) -> tuple[list[Diff], sa.MetaData]:
    """All diffs from the live database to ``target``, and the reflected live tables they touch."""
    mc = MigrationContext.configure(conn, opts={"compare_type": True})
    found = _flatten(compare_metadata(mc, target))
    live = sa.MetaData()
    existing = set(sa.inspect(conn).get_table_names())
    shared = [name for name in target.tables if name in existing]
    touched = {table_of(d) for d in found} | set(shared)
    live.reflect(conn, only=sorted(t for t in touched if t in existing))
    for name in shared:
        found.extend(_checks(conn, live.tables[name], target.tables[name]))
        found.extend(_enums(live.tables[name], target.tables[name]))
        found.extend(_primary_key(live.tables[name], target.tables[name]))
    return found, live


def table_of(diff: Diff) -> str:
    """The name of the table a diff is about."""
    op = diff[0]
    if op in ("add_table", "remove_table"):
        return str(diff[1].name)
    if op.startswith("modify_") or op in ("add_column", "remove_column"):
        return str(diff[2])
    obj = diff[1]
    table = getattr(obj, "table", None)
    if table is None:
        table = getattr(obj, "parent", None)
    return str(getattr(table, "name", ""))

