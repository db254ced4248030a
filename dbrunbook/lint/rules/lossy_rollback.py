"""A rollback that cannot restore data: the upgrade destroys what the downgrade would need.

Dropping a column or table, truncating, or narrowing a type loses values; the downgrade can
recreate the structure but not the data.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry, reversibility

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext


@registry.rule("RB003", "lossy-rollback", "warn",
               safe="keep the data (rename or copy it aside) until the change is proven, or document the restore")
def check(ctx: LintContext) -> Iterator[Finding]:
    if ctx.rollback is None:
        return
    for item in reversibility.check(*ctx.rollback):
        if item.lossy:
            yield ctx.finding(item.statement, f"rolling back {item.description} cannot restore {item.lost}",
                              item.object, source=ctx.rollback[0].source, lost=item.lost)
