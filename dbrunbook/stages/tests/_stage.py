"""Stage 07's step: run the application's tests on a migrated copy, count their queries, build the evidence."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbrunbook.core.evidence import NPlusOneSuspect, TestCommandRun, TestsEvidence
from dbrunbook.stages.dev_rehearsal import Rehearsal, findings_for_tests, rehearse
from dbrunbook.stages.migration import scripts_for
from dbrunbook.stages.tests import DEFAULT_THRESHOLD, TestCounts, counts_from, findings, suspects, write_log

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage

#: Why the queries of a test run were not counted.
NOT_COUNTED = ("the test command did not load the pytest plugin "
               "(not a pytest command, or SQLAlchemy not importable in its environment)")


@dataclass
class TestsOutcome:
    """The rehearsal that ran the tests and their query counts (None when not run or not counted), and the
    evidence stage 07 records."""

    __test__ = False  # not a pytest test class, despite its name

    rehearsal: Rehearsal | None
    counts: list[TestCounts] | None
    evidence: TestsEvidence
    summary: str


def _counted(evidence: TestsEvidence, counts: list[TestCounts] | None, threshold: int, path: str) -> None:
    """Record the per-test counts' file and the N+1 suspects (read back by stage 08's PF009)."""
    if counts is None:
        evidence.query_counts_note = NOT_COUNTED
        return
    evidence.query_counts, evidence.query_counts_tests, evidence.n_plus_one_threshold = path, len(counts), threshold
    evidence.n_plus_one = [NPlusOneSuspect(s.test, s.shape, s.count) for s in suspects(counts, threshold)]


def run(stage: Stage, *, test_cmd: str = "", migration_dir: str = "", test_timeout: float = 900.0,
        mode: str = "full", sample_rows: int = 1000, n_plus_one_threshold: int = DEFAULT_THRESHOLD) -> TestsOutcome:
    """Run ``test_cmd`` against a copy of ``stage``'s target upgraded with the run's scripts; writes
    ``tests.log`` and ``query-counts.jsonl`` and adds the findings to ``stage``. No command: nothing runs."""
    result, counts, evidence = None, None, TestsEvidence()
    if test_cmd:
        result = rehearse(stage.target, scripts_for(stage, migration_dir), mode=mode, rows=sample_rows, probes=False,
                          test_cmd=test_cmd, test_timeout=test_timeout)
        tests = result.tests
        evidence = TestsEvidence(clone=result.clone, upgrade_ok=result.upgrade.ok, tests_skipped=result.tests_skipped,
                                 tests=TestCommandRun(tests.command, tests.passed, tests.returncode, tests.seconds,
                                                      tests.output, tests.timed_out) if tests else None)
        if tests is not None:
            (stage.dir / "tests.log").write_text(tests.output)
            # the per-test counts go to a file beside the log; the evidence keeps its path and the suspects
            if tests.query_counts is not None:
                counts = counts_from(tests.query_counts)
                write_log(counts, stage.dir / "query-counts.jsonl")
            _counted(evidence, counts, n_plus_one_threshold, stage.path("query-counts.jsonl"))
    stage.extend(findings_for_tests(result))
    if counts:
        stage.extend(findings(counts, n_plus_one_threshold))
    summary = ("tests not run: no test command" if result is None else
               f"tests not run: {result.tests_skipped}" if result.tests is None else
               "tests pass on the migrated copy" if result.tests.passed else "tests fail on the migrated copy")
    return TestsOutcome(result, counts, evidence, summary)
