"""ADD COLUMN NOT NULL without a default fails on a table that has rows.

Existing rows would get NULL in the new column, which the constraint forbids, so the
statement errors on any non-empty table. MariaDB and MySQL, even in strict mode, give the
existing rows the type's zero value instead (0, '', 0000-00-00): no failure, but values nobody
chose, so there it warns (the dialect's ``required`` outcome says which).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.dialects import facts
from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import on_existing_table

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


#: The equivalent rules of other migration linters.
PEERS = ("squawk: adding-required-field",)

@registry.rule("MF002", "add-column-not-null-no-default", "block",
               safe="add the column nullable (or with a constant default), backfill, then add NOT NULL")
def check(ctx: LintContext) -> Iterator[Finding]:
    dialect = facts(ctx.dialect)
    fails = dialect.can_fail_on("required")
    for stmt, action in ctx.actions("add_column"):
        # A serial, identity or generated column gets a value on every row without a written default.
        valued = "nextval" in action.details.get("calls", []) or action.details.get("generated")
        if (action.details.get("not_null") and action.details.get("default") is None and not valued
                and on_existing_table(ctx.migration, stmt, action.table)):
            said = "" if fails else f": {dialect.outcomes['required'].words}"
            yield ctx.finding(stmt, f"{action.object} is added NOT NULL without a default{said}", action.object,
                              severity=None if fails else "warn")
