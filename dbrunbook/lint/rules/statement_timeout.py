"""A migration without a statement timeout can hold its locks for as long as it runs.

A statement that scans or rewrites a large table keeps everything it blocks waiting; a
statement timeout bounds that and turns an unexpectedly slow step into a clean failure.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.dialects import facts
from dbrunbook.lint import registry
from dbrunbook.lint.rules._util import first_lock_without

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


#: The equivalent rules of other migration linters.
PEERS = ("squawk: require-timeout-settings",)

@registry.rule("LK009", "missing-statement-timeout", "warn", dialects=("postgresql", "mariadb", "mysql"),
               safe="SET statement_timeout = '15min' (MariaDB: SET SESSION max_statement_time = 900) at the top")
def check(ctx: LintContext) -> Iterator[Finding]:
    name = facts(ctx.dialect).statement_timeout_setting  # the session setting that bounds a statement's run time
    if name is None:
        return
    hit = first_lock_without(ctx, name)
    if hit:
        stmt, action = hit
        table = action.table or f"the table of index {action.name}"
        yield ctx.finding(stmt, f"{table} is changed with no {name} set before", action.table,
                          fix=f"SET {name} ... before the first statement that locks a table")
