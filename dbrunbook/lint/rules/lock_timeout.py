"""A migration that takes locks without a lock_timeout can stall the whole application.

A DDL statement waiting for its lock (behind one long query) makes every later query on the
table queue behind it. A short lock timeout makes the migration fail fast and retry instead.
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

@registry.rule("LK008", "missing-lock-timeout", "warn", dialects=("postgresql", "mariadb", "mysql"),
               safe="SET lock_timeout = '5s' (MariaDB/MySQL: SET SESSION lock_wait_timeout = 5) at the top")
def check(ctx: LintContext) -> Iterator[Finding]:
    name = facts(ctx.dialect).lock_timeout_setting  # the session setting that bounds lock waits
    if name is None:
        return
    hit = first_lock_without(ctx, name)
    if hit:
        stmt, action = hit
        table = action.table or f"the table of index {action.name}"
        yield ctx.finding(stmt, f"{table} is locked with no {name} set before", action.table,
                          fix=f"SET {name} ... before the first statement that locks a table")
