"""ALTER DOMAIN ADD CONSTRAINT checks every column of the domain, in every table, under lock.

Adding a constraint (or NOT NULL) to a domain scans every table with a column of that
domain, each while it is locked against writes, all in one statement. NOT VALID skips the
check of existing rows; VALIDATE CONSTRAINT then checks them without blocking writes.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("squawk: ban-alter-domain-with-add-constraint",)


@registry.rule("LK015", "domain-constraint-scan", "warn", dialects=("postgresql",),
               safe="ALTER DOMAIN ... ADD CONSTRAINT ... NOT VALID; then ALTER DOMAIN ... VALIDATE CONSTRAINT")
def check(ctx: LintContext) -> Iterator[Finding]:
    created = {a.name for _, a in ctx.actions("create_domain")}
    for stmt, action in ctx.actions("alter_domain"):
        op = action.details.get("op")
        if action.name in created or not (op == "set_not_null" or (op == "add_constraint"
                                                                   and not action.details.get("not_valid"))):
            continue
        what = "NOT NULL" if op == "set_not_null" else f"constraint {action.details.get('constraint') or ''}".strip()
        yield ctx.finding(stmt, f"{what} added to domain {action.name} is checked against every column of the "
                          "domain in every table, under lock", action.name)
