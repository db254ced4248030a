"""N+1 suspects from the statements each of the user's tests ran (stage 07).

While stage 07 runs the user's test command against the migrated copy, the pytest plugin
``dbrunbook/_plugins/dbrunbook_querycount.py`` counts every test's SQL statements by *shape* (the
statement with its values, placeholders and IN-lists normalised) and appends one JSON line per test
to a log. This module sets up the environment that loads the plugin, reads its log, and turns it
into findings: a test in which one SELECT shape ran ``threshold`` times or more is an N+1 suspect
(**QC001**, warn): the same query issued once per row of an earlier result.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dbrunbook.core.results import Finding
from dbrunbook.errors import UsageError
from dbrunbook.stages.dev_rehearsal._querylog import LOG_ENV, PLUGIN, PLUGIN_DIR, parse_log, plugin_environment

#: Repeats of one SELECT shape in one test from which it is reported as an N+1 suspect.
DEFAULT_THRESHOLD = 10
#: Characters of a shape shown in messages and the table.
SHORT = 120
#: Statement starts that read rows (the N in N+1 is a read repeated per row).
_READS = ("SELECT", "WITH")


@dataclass
class TestCounts:
    """One test's statements: the total and the shapes that ran at least twice."""

    __test__ = False  # not a pytest test class, despite its name

    test: str
    statements: int
    shapes: dict[str, int] = field(default_factory=dict)

    def worst_select(self) -> tuple[str, int]:
        """The most repeated SELECT shape and its count (``("", 0)`` when none repeats)."""
        reads = [(n, s) for s, n in self.shapes.items() if s.lstrip()[:6].upper().startswith(_READS)]
        n, s = max(reads, default=(0, ""))
        return s, n


@dataclass
class Suspect:
    """A SELECT shape a test ran ``count`` times: probably once per row of an earlier result."""

    test: str
    shape: str
    count: int


def read_log(path: str | Path) -> list[TestCounts]:
    """The per-test counts in a log written by the plugin (or by :func:`write_log`)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read the query-count log {path}: {exc.strerror}") from exc
    return counts_from(parse_log(text))


def counts_from(records: Iterable[Mapping[str, Any]]) -> list[TestCounts]:
    """Per-test counts from parsed log lines (``TestRun.query_counts``)."""
    return [TestCounts(str(r["test"]), int(r.get("statements") or 0),
                       {str(s): int(n) for s, n in (r.get("shapes") or {}).items()}) for r in records]


def write_log(counts: Iterable[TestCounts], path: str | Path) -> Path:
    """Write ``counts`` as JSON lines (the plugin's format) to ``path``."""
    target = Path(path)
    target.write_text("".join(json.dumps(asdict(c)) + "\n" for c in counts), encoding="utf-8")
    return target


def suspects(counts: Iterable[TestCounts], threshold: int = DEFAULT_THRESHOLD) -> list[Suspect]:
    """Every (test, SELECT shape) that ran ``threshold`` times or more, most repeated first."""
    if threshold < 2:
        raise UsageError(f"the N+1 threshold must be at least 2, not {threshold}")
    found = [Suspect(c.test, s, n) for c in counts for s, n in c.shapes.items()
             if n >= threshold and s.lstrip()[:6].upper().startswith(_READS)]
    return sorted(found, key=lambda x: (-x.count, x.test, x.shape))


def shorten(shape: str, width: int = SHORT) -> str:
    """``shape`` cut to ``width`` characters, marked when cut."""
    return shape if len(shape) <= width else shape[:width - 3] + "..."


def findings(counts: Iterable[TestCounts], threshold: int = DEFAULT_THRESHOLD) -> list[Finding]:
    """One QC001 warning per N+1 suspect, naming the test, the query shape, the count and the fix."""
    return [Finding("QC001", "warn", f"{s.test} ran one SELECT {s.count} times: {shorten(s.shape)}", s.test,
                    {"test": s.test, "shape": s.shape, "count": s.count, "threshold": threshold},
                    "load the related rows with the first query: selectinload() or joinedload() on the "
                    "relationship, or one query with IN (...) over the keys")
            for s in suspects(counts, threshold)]


def table(counts: Iterable[TestCounts]) -> list[dict[str, Any]]:
    """Per test: its statements, its most repeated SELECT shape (shortened) and that shape's count."""
    rows = []
    for c in counts:
        shape, n = c.worst_select()
        rows.append({"test": c.test, "statements": c.statements, "worst shape": shorten(shape), "count": n})
    return sorted(rows, key=lambda r: (-r["count"], -r["statements"], r["test"]))


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.tests._stage import TestsOutcome, run  # noqa: E402

__all__ = ["DEFAULT_THRESHOLD", "LOG_ENV", "PLUGIN", "PLUGIN_DIR", "SHORT", "Suspect", "TestCounts", "TestsOutcome",
           "counts_from", "findings", "parse_log", "plugin_environment", "read_log", "run", "shorten", "suspects",
           "table", "write_log"]
