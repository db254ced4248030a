"""Table read by many sequential scans: an index on its filtered columns is probably missing.

Uses the live database's usage statistics (pg_stat_user_tables, reset with the statistics):
a table with many rows that is scanned sequentially far more often than through an index is
being filtered on columns no index covers.
"""
from __future__ import annotations

from collections.abc import Iterator

from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation import registry
from dbrunbook.stages.design_validation._runner import DesignContext

#: A table is worth an index once it has this many rows and this many sequential scans.
MIN_ROWS = 1_000
MIN_SEQ_SCANS = 50


@registry.rule("DV010", "missing-index-filtered", "info",
               safe="find the filtering queries (pg_stat_statements) and index their WHERE columns",
               dialects=("postgresql",))
def check(ctx: DesignContext) -> Iterator[Finding]:
    for name, stats in sorted(ctx.usage.items()):
        if name not in ctx.design.tables:
            continue
        if stats["rows"] >= MIN_ROWS and stats["seq_scan"] >= MIN_SEQ_SCANS and stats["seq_scan"] > stats["idx_scan"]:
            yield ctx.finding(f"{name}: {stats['seq_scan']} sequential scans read {stats['seq_tup_read']} rows "
                              f"({stats['idx_scan']} index scans)", name, dict(stats))
