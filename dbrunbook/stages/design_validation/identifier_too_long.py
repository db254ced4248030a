"""Identifier longer than the dialect allows.

PostgreSQL silently truncates names past 63 bytes (two long index names can then collide);
MariaDB refuses names past 64 characters.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext


@registry.rule("DV008", "identifier-too-long", "block", safe="shorten the name (or set a naming convention that does)")
def check(ctx: DesignContext) -> Iterator[Finding]:
    limit = ctx.facts.max_identifier_length
    for table in ctx.tables():
        names = [("table", table.name), *(("column", c.name) for c in table.columns),
                 *(("index", i.name) for i in table.indexes), *(("foreign key", f.name) for f in table.foreign_keys),
                 *(("constraint", c.name) for c in [*table.uniques, *table.checks])]
        for what, name in names:
            if name and len(name.encode()) > limit:
                yield ctx.finding(f"{what} name {name} is {len(name.encode())} bytes, over {ctx.facts.label}'s {limit}",
                                  name, {"table": table.name, "length": len(name.encode()), "limit": limit})
