"""A statement lint does not understand is checked by no rule.

The parser read it (or could not), but it maps to no change the rules know, so nothing
vouches for it: a lock it takes, a table it rewrites or data it removes would pass unseen.
Lint names it instead of dropping it. Review it by hand; once reviewed, silence it on the
statement with the reason.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from dbrunbook.lint import registry

if TYPE_CHECKING:
    from dbrunbook.core.results import Finding
    from dbrunbook.lint.runner import LintContext

#: The equivalent rules of other migration linters.
PEERS = ("strong_migrations: execute",)


@registry.rule("LN004", "statement-not-understood", "warn",
               safe="review the statement by hand, then silence it: -- dbrunbook-ignore: LN004 <what you checked>")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt in ctx.migration.statements:
        unknown = [a for a in stmt.actions if a.kind == "unknown"]
        if unknown:
            what = "; ".join(dict.fromkeys(str(a.details.get("what") or stmt.text[:40]) for a in unknown))
            yield ctx.finding(stmt, f"lint does not understand {what}: no rule checked it", unknown[0].table,
                              statement_kind=unknown[0].details.get("statement") or unknown[0].details.get("command"))
