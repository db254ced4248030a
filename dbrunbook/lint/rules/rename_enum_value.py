"""Renaming an enum value breaks code that still reads or writes the old label.

ALTER TYPE ... RENAME VALUE is instant, but application servers running the old code keep
sending the old label, which the type no longer accepts, until every one of them runs the
new code.
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


@registry.rule("BC003", "rename-enum-value", "warn", dialects=("postgresql",),
               safe="add the new value (ALTER TYPE ... ADD VALUE), move rows and code to it, stop using the old one")
def check(ctx: LintContext) -> Iterator[Finding]:
    created = {a.name for _, a in ctx.actions("create_type")}
    for stmt, action in ctx.actions("rename_enum_value"):
        if action.name not in created:
            yield ctx.finding(stmt, f"value {action.details.get('value')!r} of enum {action.name} is renamed to "
                              f"{action.details.get('to')!r}", action.name)
