"""The evidence of stage 07 (tests)."""
from __future__ import annotations

from dataclasses import dataclass

from dbrunbook.core.evidence._base import Evidence, Record, grouped, optional


@dataclass
class TestCommandRun(Record):
    """The user's test command run against the migrated copy (its output is masked)."""

    __test__ = False  # not a pytest test class, despite its name

    command: str
    passed: bool
    returncode: int | None
    seconds: float
    output: str = ""
    timed_out: bool = False


@dataclass
class NPlusOneSuspect(Record):
    """A SELECT shape one test ran ``count`` times (QC001)."""

    test: str
    shape: str
    count: int


@dataclass
class TestsEvidence(Evidence):
    """What stage 07 ran: the test command on a migrated copy, and the queries counted per test.

    With no test command the sidecar holds none of these keys; the keys of the counts are there only
    when the tests ran.
    """

    __test__ = False  # not a pytest test class, despite its name

    clone: str | None = grouped("run")
    upgrade_ok: bool | None = grouped("run")
    #: Why the command was not run (the upgrade fails on the copy); "" when it ran.
    tests_skipped: str | None = grouped("run")
    tests: TestCommandRun | None = grouped("run")
    #: ``07-tests/query-counts.jsonl``; None when the command did not load the counting plugin.
    query_counts: str | None = grouped("counts")
    n_plus_one: list[NPlusOneSuspect] | None = grouped("counts")
    query_counts_tests: int | None = optional(group="counts")
    n_plus_one_threshold: int | None = optional(group="counts")
    #: Why the queries were not counted.
    query_counts_note: str | None = optional(group="counts")

    def gathered(self) -> bool:
        return self.tests is not None or bool(self.tests_skipped)  # a reason not to run them is evidence too
