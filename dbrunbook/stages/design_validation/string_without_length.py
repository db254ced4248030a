"""String column without a length where the dialect needs one.

MariaDB and MySQL refuse ``VARCHAR`` without a length: the CREATE TABLE fails at deploy time,
long after the models were reviewed.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext

_UNSIZED = ("VARCHAR", "NVARCHAR", "STRING", "UNICODE")


@registry.rule("DV006", "string-without-length", "block",
               safe="give the column a length, e.g. String(255), or use Text", dialects=("mariadb", "mysql"))
def check(ctx: DesignContext) -> Iterator[Finding]:
    for table in ctx.tables():
        for col in table.columns:
            if ctx.facts.varchar_needs_length and col.type in _UNSIZED:
                yield ctx.finding(f"{table.name}.{col.name} is {col.type} without a length", f"{table.name}.{col.name}",
                                  {"type": col.type})
