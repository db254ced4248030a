"""Stage 8's report: the summary line, the timing chart, N+1 and backup timing.

Split from the package's ``__init__`` only to keep modules short; the names are re-exported there.
"""
from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING

from dbrunbook.core import contract
from dbrunbook.core.evidence import BackupTiming, RollbackPlanEvidence, TestsEvidence
from dbrunbook.core.results import Finding

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dbrunbook.stages.performance import Comparison


def summary(c: Comparison) -> str:
    """One line for the stage result."""
    if c.schema_error:
        return f"not compared: the upgrade fails even on an empty copy: {c.schema_error}"
    lost = sum(1 for q in c.queries if q.lost_index())
    slower = [q.ratio for q in c.queries if q.ratio is not None]
    timing = (f", slowest change {max(slower):.1f}x" if slower else "") if c.timed else ", not timed (empty copy)"
    return (f"{len(c.queries)} queries on {len(c.touched)} touched table(s), {c.mode} copy: "
            f"{lost} lost an index{timing}")


def plot(c: Comparison) -> Figure:
    """Median milliseconds per query before and after the upgrade (or why there is nothing to plot)."""
    from matplotlib.figure import Figure

    timed = [q for q in c.queries if q.before.ms is not None and q.after.ms is not None]
    figure = Figure(figsize=(8, max(2.5, 0.45 * len(timed) + 1.5)))
    ax = figure.subplots()
    if not timed:
        why = ("the upgrade fails on the data: timings on an empty copy would mean nothing" if c.upgrade_error
               else "no query was timed")
        ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
        ax.set_axis_off()
        return figure
    ys = range(len(timed))
    ax.barh([y + 0.2 for y in ys], [q.before.ms or 0 for q in timed], height=0.4, label="before")
    ax.barh([y - 0.2 for y in ys], [q.after.ms or 0 for q in timed], height=0.4, label="after")
    ax.set_yticks(list(ys), [q.query.id for q in timed])
    ax.invert_yaxis()
    ax.set_xlabel(f"median ms of {c.repeats} runs")
    ax.set_title(f"Query time before and after the upgrade ({c.mode} copy)")
    ax.legend()
    figure.tight_layout()
    return figure


def n_plus_one_findings(tests: TestsEvidence | None) -> list[Finding]:
    """N+1 suspects counted in stage 07's test run (QC001), or why they were not measured."""
    tests = tests or TestsEvidence()
    if tests.n_plus_one is not None:
        suspects = tests.n_plus_one
        measured = {"query_counts": tests.query_counts, "tests": tests.query_counts_tests,
                    "threshold": tests.n_plus_one_threshold, "suspects": [s.to_json() for s in suspects[:20]]}
        if suspects:
            worst = max(suspects, key=lambda s: s.count)
            return [Finding("PF009", "info", f"N+1: {len(suspects)} suspect(s) in stage 07 (QC001), worst "
                                             f"{worst.test} with one SELECT run {worst.count} times",
                            "tests", measured, "load related rows with selectinload()/joinedload() or one IN query")]
        return [Finding("PF009", "info", f"N+1: none found over {tests.query_counts_tests or 0} tests in "
                                         f"stage 07 (no SELECT repeated {tests.n_plus_one_threshold} times "
                                         "in one test)", "tests", measured)]
    if tests.tests is not None and tests.tests.command:
        why = tests.query_counts_note or "stage 07 ran the tests without counting queries"
    else:
        why = f"stage 07 did not run the tests: {tests.tests_skipped}" if tests.tests_skipped \
            else "no test command ran in stage 07"
    return [Finding("PF009", "info", f"N+1 queries not measured: {why}", "tests",
                    fix="run the application's tests with pytest in stage 07 (--test-cmd \"pytest\"): "
                        "it counts each test's queries by shape")]


def measure_backup(url: str) -> BackupTiming:
    """Take a backup of ``url`` into a temporary folder, restore and compare it; size and durations."""
    from dbrunbook.stages.rollback_plan.backup import backup_and_verify

    with tempfile.TemporaryDirectory(prefix="dbrunbook-backup-") as folder:
        check = backup_and_verify(url, folder)
    return BackupTiming("measured", size=check.backup.size, seconds=round(check.backup.seconds, 3),
                        restore_seconds=round(check.restore_seconds, 3), restored_ok=check.ok)


def backup_findings(rollback: RollbackPlanEvidence | None,
                    measured: BackupTiming | None = None) -> tuple[BackupTiming, list[Finding]]:
    """Backup size and duration: measured here, else from the rollback plan's verified backup, else not measured."""
    timing = measured
    taken = rollback.backup if rollback is not None else None
    if timing is None and taken is not None and taken.backup is not None:
        timing = BackupTiming(contract.ROLLBACK_PLAN.name, size=taken.backup.size, seconds=taken.backup.seconds,
                              restore_seconds=taken.restore_seconds, restored_ok=taken.ok)
    if timing is None:
        return BackupTiming("not measured"), [Finding(
            "PF010", "info", "backup and restore time not measured", "backup",
            fix="run with the rollback plan (--rollback-plan) or set measure_backup = True")]
    restore = f", restored in {timing.restore_seconds:.2f}s" if timing.restore_seconds is not None else ""
    return timing, [Finding("PF010", "info", f"backup of {timing.size or 0:,} bytes took {timing.seconds or 0:.2f}s"
                                             f"{restore} ({timing.source})", "backup", timing.to_json())]
