"""DROP DATABASE destroys a whole database.

Every table, row and object in it is gone, and every client connected to it fails; no
downgrade can bring it back. A migration has no business doing it.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("squawk: ban-drop-database",)


@registry.rule("DS005", "drop-database", "block", dialects=("postgresql", "mariadb", "mysql"),
               safe="drop databases by hand, after a backup, outside the migrations")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("drop_database"):
        yield ctx.finding(stmt, f"database {action.name} is dropped with everything in it", action.name)
