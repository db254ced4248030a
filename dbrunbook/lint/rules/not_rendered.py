"""A revision could not be rendered to SQL without a database, so part of it is not linted.

A revision file is linted offline by running its upgrade() and downgrade() under Alembic's
offline context, where nothing connects. A revision that reads the live database
(``op.get_bind().execute``, ``sqlalchemy.inspect``, a Session), or whose code raises, stops
there: what it rendered before is linted, the rest is not, and this finding points at the line
where it stopped and says why. When it is downgrade() that stops, the rollback pairing (RB
rules) is not checked.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


@registry.rule("LN006", "not-rendered-offline", "warn",
               safe="lint it with --db (its SQL is then captured on a schema-only copy), or review the rest by hand")
def check(ctx: LintContext) -> Iterator[Finding]:
    for gap in ctx.migration.gaps:
        function = gap.get("function", "upgrade")
        lost = ("its rollback pairing is not checked" if function == "downgrade"
                else "what it does from here on is not linted")
        yield ctx.finding(None, f"{function}() cannot be rendered without a database: {gap.get('reason', '')}; "
                          f"{lost}", line=gap.get("line", 1), function=function)
