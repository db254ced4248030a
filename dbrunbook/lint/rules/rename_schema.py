"""Renaming a schema breaks every query that names it.

Code, views in other schemas, functions, search_path settings and grants written with the
old name fail or silently resolve elsewhere as soon as the rename commits.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("squawk: renaming-object",)


@registry.rule("BC004", "rename-schema", "warn", dialects=("postgresql",),
               safe="create the new schema, move objects and code over, drop the old schema in a later release")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("rename_schema"):
        yield ctx.finding(stmt, f"schema {action.name} is renamed to {action.details.get('to')}", action.name)
