"""Removing a value from an enum fails on rows that hold it, and old code still writes it.

PostgreSQL cannot drop an enum value: the type is recreated (rename, create, convert every
column, which rewrites the tables) or pg_enum is edited by hand. MariaDB/MySQL rebuild the
table with ALGORITHM=COPY and turn stored values that vanished into errors or ''.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


def _values(sql_type: str) -> list[str]:
    return re.findall(r"'((?:[^']|'')*)'", sql_type) if sql_type.lower().startswith("enum") else []


@registry.rule("DS004", "enum-value-removal", "block", dialects=("postgresql", "mariadb", "mysql"),
               safe="keep the value; stop writing it in code, migrate rows to another value, and only add values "
                    "(ALTER TYPE ... ADD VALUE)")
def check(ctx: LintContext) -> Iterator[Finding]:
    renamed = {}
    for stmt, action in ctx.actions("rename_type", "create_type", "drop_enum_value", "modify_column"):
        if action.kind == "rename_type":
            renamed[action.name] = stmt
        elif action.kind == "create_type" and action.name in renamed:
            yield ctx.finding(stmt, f"enum {action.name} is recreated with {action.details['values']}: values may be "
                              "removed and every column of the type is rewritten", action.name)
        elif action.kind == "drop_enum_value":
            yield ctx.finding(stmt, "enum values are deleted from pg_enum by hand", "pg_enum")
        elif action.kind == "modify_column":
            old = _values((ctx.migration.column_before(stmt, action.table, action.column) or {}).get("type", ""))
            lost = sorted(set(old) - set(_values(action.details.get("type", ""))))
            if old and lost and _values(action.details.get("type", "")):
                yield ctx.finding(stmt, f"{action.object} loses enum values {lost}", action.object, lost=lost)
