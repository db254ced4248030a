"""Stage 08's step: compare the queries before and after the upgrade, chart them, report N+1 and backup time."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbrunbook.core.db import dialect_name
from dbrunbook.core.evidence import BackupTiming, PerformanceEvidence, RollbackPlanEvidence, TestsEvidence
from dbrunbook.stages.migration import scripts_for
from dbrunbook.stages.performance import Comparison, compare_performance, findings
from dbrunbook.stages.performance._queries import load_queries
from dbrunbook.stages.performance._report import backup_findings, n_plus_one_findings, plot, summary
from dbrunbook.stages.performance._report import measure_backup as measured_backup

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class PerformanceOutcome:
    """The comparison, its chart and the backup timing (for the notebook to show), and stage 08's evidence."""

    comparison: Comparison
    chart: Path
    backup: BackupTiming
    evidence: PerformanceEvidence
    summary: str


def performed(comparison: Comparison, stage: Stage, backup: BackupTiming) -> PerformanceEvidence:
    """Stage 08's evidence of ``comparison``: the facts and rows (the plans themselves are in plans.json)."""
    c = comparison
    return PerformanceEvidence(
        dialect=c.dialect, mode=c.mode, timed=c.timed, repeats=c.repeats, touched=c.touched,
        dropped_indexes=c.dropped_indexes, skipped=c.skipped, fk_without_index=c.fk_without_index,
        upgrade_error=c.upgrade_error, schema_error=c.schema_error, queries=c.table(), plans=stage.path("plans.json"),
        chart=stage.path("timings.png"), backup=backup, changes=[change.to_json() for change in c.changes])


def run(stage: Stage, *, migration_dir: str = "", queries_file: str = "", queries: Sequence[str] = (),
        repeats: int = 3, slower_ratio: float = 2.0, min_slower_ms: float = 1.0, timeout_seconds: float = 10.0,
        mode: str = "full", sample_rows: int = 1000, measure_backup: bool = False) -> PerformanceOutcome:
    """Plan and time the user's queries and the generated lookups before and after upgrading a copy of
    ``stage``'s target; write ``plans.json`` and ``timings.png``; add the PF findings, stage 07's N+1 suspects
    and the backup time (``measure_backup``: take and restore one here, else the rollback plan's) to ``stage``."""
    scripts = scripts_for(stage, migration_dir)
    user_queries = load_queries(dialect_name(stage.engine), queries_file, list(queries), stage.target.project_dir)
    stage.engine.dispose()  # PostgreSQL copies by TEMPLATE only when nobody is connected
    comparison = compare_performance(stage.target, scripts, user_queries, repeats=repeats, mode=mode,
                                     rows=sample_rows, timeout_seconds=timeout_seconds)
    (stage.dir / "plans.json").write_text(json.dumps(comparison.plans_json(), indent=2, default=str) + "\n")
    stage.extend(findings(comparison, slower_ratio=slower_ratio, min_ms=min_slower_ms))
    chart = stage.dir / "timings.png"
    plot(comparison).savefig(chart, dpi=100)
    tests = stage.earlier(TestsEvidence)
    stage.extend(n_plus_one_findings(tests.evidence if tests is not None else None))
    rollback = stage.earlier(RollbackPlanEvidence)
    backup, notes = backup_findings(rollback.evidence if rollback is not None else None,
                                    measured_backup(stage.target.db) if measure_backup else None)
    stage.extend(notes)
    return PerformanceOutcome(comparison, chart, backup, performed(comparison, stage, backup), summary(comparison))
