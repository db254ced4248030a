"""Non-idempotent DDL outside a transaction cannot be re-run after a partial failure.

Where DDL is not transactional (MariaDB/MySQL, or PostgreSQL autocommit blocks), a
migration that fails halfway leaves the earlier statements applied; re-running it then fails
on CREATE of what exists or DROP of what is gone.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

_GUARD = {"create_table": "if_not_exists", "create_index": "if_not_exists", "add_column": "if_not_exists",
          "drop_table": "if_exists", "drop_index": "if_exists", "drop_column": "if_exists"}


#: The equivalent rules of other migration linters.
PEERS = ("squawk: prefer-robust-stmts",)

@registry.rule("ID001", "non-idempotent-outside-transaction", "warn",
               safe="use IF NOT EXISTS / IF EXISTS so the step can be re-run, or run it inside a transaction")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions(*_GUARD):
        if not stmt.in_transaction and not action.details.get(_GUARD[action.kind]):
            yield ctx.finding(stmt, f"{action.kind.replace('_', ' ')} {action.name or action.object} runs outside "
                              "a transaction and cannot be re-run", action.object)
