"""Stage 5 data checks: read-only queries generated from the change, run on the target's data.

:func:`run_checks` takes the change from the live database to the target as the project's one
diff engine gives it (:mod:`dbrunbook.schema`: stage 01's recorded changes, else computed the
same way), translated for the checks in :mod:`._diff`, then runs every registered check on one
read-only connection under the dialect's statement timeout. Each check counts the rows the
migration would trip over and samples them (primary key plus the columns involved); a check
proving that the migration fails or loses data blocks, and offers remedies as SQL to review.
Nothing is written to the target.

One check per module, registered on :data:`registry` under a code (``DC0xx``)::

    DC001 not-null        NOT NULL added / required column added without default
    DC002 unique          UNIQUE or PRIMARY KEY added: duplicate groups
    DC003 foreign-key     FOREIGN KEY added: orphan rows
    DC004 check           CHECK added or narrowed, enum values removed
    DC005 type-change     values that fail to cast, are truncated, overflow or get rounded
    DC006 dropped         non-null values, rows and bytes a drop destroys

Without models the target schema comes from the pending revisions, and so do the statements that change data
(:mod:`.statements`): each UPDATE / DELETE / INSERT ... SELECT is counted and sampled (DC110-DC113), and DC001,
DC002 and DC003 are counted on the rows as the migration's own statements leave them (:mod:`.replayed`). A
type change whose revision says how to convert (USING) is judged by that expression on the rows.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dbrunbook.core.db import dialect_name
from dbrunbook.core.results import Finding
from dbrunbook.schema import Change
from dbrunbook.stages.data_checks._base import UNKNOWN, CheckContext, CheckResult, failed, read_only, registry, run_rule
from dbrunbook.stages.data_checks._dialect import session_dialect
from dbrunbook.stages.data_checks._diff import compute, translate
from dbrunbook.stages.data_checks._revisions import ChangeSource, change_source, settle, unexplained
from dbrunbook.stages.data_checks._statements import Steps

__all__ = ["ChangeSource", "CheckReport", "CheckResult", "DataChecksOutcome", "change_source", "registry", "run",
           "run_checks", "settle", "unexplained"]


@dataclass
class CheckReport:
    """The results of all checks of one change, and which tables the change touches."""

    results: list[CheckResult]
    tables: list[str]
    dialect: str
    strict: bool
    diffs: list[str] = field(default_factory=list)
    #: The data statements of the pending revisions, in the order the migration runs them.
    statements: list[dict[str, Any]] = field(default_factory=list)

    @property
    def blocking(self) -> list[CheckResult]:
        return [r for r in self.results if r.severity == "block"]

    def findings(self) -> list[Finding]:
        """One finding per check that found rows (or could not run, or whose statement is refused whatever the
        rows)."""
        return [r.finding() for r in self.results if r.count or r.refused]

    def summary(self) -> str:
        hits = [r for r in self.results if r.count > 0 or (r.refused and r.severity == "block")]
        if not hits:
            return f"{len(self.results)} data checks on {len(self.tables)} tables found no offending rows"
        parts = ", ".join(f"{r.count} {r.problem} in {r.object}" for r in hits)
        return f"{len(self.blocking)} of {len(self.results)} data checks block: {parts}"

    def table(self) -> list[dict[str, Any]]:
        """Rows for an overview DataFrame."""
        return [{"code": r.code, "check": r.name, "object": r.object, "problem": r.problem, "rows": r.count,
                 "effect": r.effect, "severity": r.severity, "message": r.message} for r in self.results]

    def to_json(self) -> dict[str, Any]:
        return {"dialect": self.dialect, "strict": self.strict, "tables": self.tables, "diffs": self.diffs,
                "results": [r.to_json() for r in self.results], "statements": self.statements}


def run_checks(engine: Engine, metadata: sa.MetaData, sample: int = 10, timeout_ms: int = 60_000,
               include: Sequence[str] = (), exclude: Sequence[str] = (), steps: Steps | None = None, *,
               changes: Sequence[Change] | None = None, renames: Mapping[str, str] | None = None,
               models: bool = True) -> CheckReport:
    """Run the data checks of the change from ``engine``'s database to ``metadata``, read-only.

    ``changes``: the typed change (stage 01's); without it, it is computed as stage 01 does, with the confirmed
    ``renames`` (old -> new) and ``models`` (False when ``metadata`` was reflected from the copy the pending
    revisions upgraded). With ``steps`` (the data statements of the pending revisions), each is counted and
    sampled, and DC001 is counted after the migration's own backfills."""
    name = dialect_name(engine)
    with read_only(engine, timeout_ms) as (conn, reopen):
        typed = list(changes) if changes is not None else compute(conn, metadata, renames, models=models)
        found = translate(conn, metadata, typed)
        dialect = session_dialect(conn, name)
        ctx = CheckContext(conn, dialect, found.live, metadata, found.diffs, sample=sample, reopen=reopen,
                           converted=dict(steps.converted) if steps is not None else {})
        results: list[CheckResult] = []
        touched: set[str] = set()
        for rule in registry.select(include, exclude, dialect=name):
            ctx.rule = rule
            try:
                results.extend(run_rule(rule, ctx))
            except Exception as exc:  # one check that cannot run must not hide the others: reported
                reopen()
                results.append(failed(ctx, rule.name, exc))
        if steps is not None:
            results, touched = _with_statements(ctx, results, steps)
    tables = sorted((found.tables | touched) - {""})
    return CheckReport(results, tables, name, dialect.strict, found.described,
                       [s.to_json() for s in steps.statements] if steps is not None else [])


def _with_statements(ctx: CheckContext, results: list[CheckResult], steps: Steps) -> tuple[list[CheckResult],
                                                                                           set[str]]:
    """The results with DC001 counted after the migration's backfills, and one per data statement; and the
    target's tables those statements touch."""
    from dbrunbook.stages.data_checks.replayed import after_statements
    from dbrunbook.stages.data_checks.statements import Replay, after_backfills, statement_results

    try:
        replay = Replay(ctx, steps)
        results = after_statements(ctx, after_backfills(ctx, results, steps, replay), steps, replay)
        results += statement_results(ctx, steps, replay)
        return results, {s.table for s in steps.statements if s.table and replay.live(s.table) is not None}
    except Exception as exc:  # the statements add to the checks; failing to read them must not hide the checks
        ctx.reopen()
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return results + [CheckResult("DC113", "statement-not-analysed", "", [], "not_analysed", -1, UNKNOWN,
                                      f"the migration's data statements were not analysed: "
                                      f"{why[0] if why else type(exc).__name__}")], set()


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.data_checks._stage import DataChecksOutcome, run  # noqa: E402
