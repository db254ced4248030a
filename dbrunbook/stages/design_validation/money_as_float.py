"""Money stored as a floating-point number.

Binary floating point cannot hold most decimal fractions exactly (0.1 + 0.2 != 0.3); sums of
prices and balances drift by cents. Columns whose name says money are checked.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext

_MONEY = re.compile(r"(price|amount|total|cost|balance|fee|salary|money|payment|tax|revenue)", re.IGNORECASE)
_FLOAT = re.compile(r"^(FLOAT|REAL|DOUBLE)")


@registry.rule("DV004", "money-as-float", "warn", safe="use NUMERIC(precision, scale), e.g. NUMERIC(12, 2)")
def check(ctx: DesignContext) -> Iterator[Finding]:
    for table in ctx.tables():
        for col in table.columns:
            if _MONEY.search(col.name) and _FLOAT.match(col.type):
                yield ctx.finding(f"{table.name}.{col.name} holds money as {col.type}", f"{table.name}.{col.name}",
                                  {"type": col.type})
