"""A migration without a working downgrade cannot be rolled back.

When the deploy goes wrong the only way back is a restore from backup.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry, reversibility

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


@registry.rule("RB001", "no-downgrade", "warn", safe="write downgrade() so it undoes each upgrade operation")
def check(ctx: LintContext) -> Iterator[Finding]:
    if ctx.rollback is None:
        return
    upgrade, downgrade = ctx.rollback
    if reversibility.changes(upgrade) and not reversibility.changes(downgrade):
        yield ctx.finding(None, "the downgrade is empty or missing", ctx.migration.source)
