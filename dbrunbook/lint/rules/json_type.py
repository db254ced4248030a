"""A json column (not jsonb) has no equality operator and cannot be indexed well.

SELECT DISTINCT, UNION, GROUP BY and = on a json column fail with "could not identify an
equality operator for type json"; json is stored as text and re-parsed on every access, and
GIN indexes need jsonb.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("strong_migrations: add_column_json",)


def _is_json(sql_type: object) -> bool:
    return str(sql_type or "").lower().removesuffix("[]") == "json"


@registry.rule("DT001", "prefer-jsonb", "warn", dialects=("postgresql",), safe="use jsonb instead of json")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("add_column", "alter_type", "create_table"):
        columns = action.details.get("columns", {}) if action.kind == "create_table" else {
            action.column: action.details}
        for column, facts in columns.items():
            if _is_json(facts.get("type")):
                yield ctx.finding(stmt, f"{action.table}.{column} is of type json, not jsonb",
                                  f"{action.table}.{column}")
