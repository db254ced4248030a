"""Timestamp without time zone (PostgreSQL).

``timestamp without time zone`` stores wall-clock time with no zone: the same instant written
from two servers in different zones compares wrong, and daylight-saving changes repeat an hour.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext


@registry.rule("DV005", "timestamp-without-tz", "info", safe="use timestamptz (DateTime(timezone=True))",
               dialects=("postgresql",))
def check(ctx: DesignContext) -> Iterator[Finding]:
    for table in ctx.tables():
        for col in table.columns:
            if col.type.startswith("TIMESTAMP WITHOUT TIME ZONE"):
                yield ctx.finding(f"{table.name}.{col.name} is a timestamp without time zone",
                                  f"{table.name}.{col.name}", {"type": col.type})
