"""A column type change that is not binary-compatible rewrites the table.

ALTER COLUMN ... TYPE holds ACCESS EXCLUSIVE and rewrites every row (and every index on the
column) unless the new type is binary-compatible with the old one: widening varchar(n) to
varchar(m >= n) or text, varchar to text, or numeric gaining precision at the same scale.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import re

from .. import registry
from ._util import on_existing_table

if TYPE_CHECKING:
    from ...results import Finding
    from ..runner import LintContext

_SIZED = re.compile(r"^(varchar|character varying|char|numeric|decimal)\s*(?:\((\d+)(?:\s*,\s*(\d+))?\))?$")
_TEXTISH = {"text", "varchar", "character varying"}


def binary_compatible(old: str, new: str) -> bool:
    """True when PostgreSQL changes ``old`` to ``new`` in the catalog only."""
    old, new = old.lower().strip(), new.lower().strip()
    if old == new or (new == "text" and (_SIZED.match(old) or old == "text") and not old.startswith(("numeric", "decimal"))):
        return True
    o, n = _SIZED.match(old), _SIZED.match(new)
    if not o or not n or o.group(1).startswith("char") != n.group(1).startswith("char"):
        return False
    if o.group(1) in ("numeric", "decimal"):
        return n.group(1) in ("numeric", "decimal") and (n.group(2) is None or (
            o.group(2) is not None and int(n.group(2)) >= int(o.group(2)) and o.group(3) == n.group(3)))
    if o.group(1) in _TEXTISH and n.group(1) in _TEXTISH:
        return n.group(2) is None or (o.group(2) is not None and int(n.group(2)) >= int(o.group(2)))
    return False


#: The equivalent rules of other migration linters.
PEERS = ("squawk: changing-column-type", "strong_migrations: change_column")

@registry.rule("LK002", "type-change-rewrite", "block", dialects=("postgresql",),
               safe="add a new column of the new type, backfill it in batches, then swap names in one short step")
def check(ctx: LintContext) -> Iterator[Finding]:
    for stmt, action in ctx.actions("alter_type"):
        if not on_existing_table(ctx.migration, stmt, action.table):
            continue
        old = (ctx.migration.column_before(stmt, action.table, action.column) or {}).get("type")
        new = action.details.get("type", "")
        if old and binary_compatible(old, new):
            continue
        what = f"from {old} to {new}" if old else f"to {new} (old type unknown)"
        yield ctx.finding(stmt, f"{action.object} changes type {what}: the table and its indexes are rewritten "
                          "under ACCESS EXCLUSIVE", action.object, old_type=old, new_type=new)
