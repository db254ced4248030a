"""What there is to explore, read from a finished run or from a live database (read-only).

A run gives everything its stages recorded: stage 01's changes and the schema snapshot it compared against,
stage 03's upgrade SQL and lock estimates, stage 05's data checks (offending rows and remedies) and every
stage's findings. A live database gives its schema and, with target models, the changes and the data checks
run now on one read-only connection; lock estimates and the migration SQL need a run (``dbrunbook update``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbrunbook.core import contract
from dbrunbook.core.evidence import LockEstimate
from dbrunbook.core.results import Finding, load_result
from dbrunbook.errors import UsageError
from dbrunbook.schema import Change, Snapshot, as_changes, load_snapshot
from dbrunbook.schema.impact import KINDS as SEVERITY_ORDER

#: What a person can pick, in the order the explorer offers them.
KINDS = ("change", "table", "finding")

#: Alembic writes each statement of its SQL followed by ";" and a blank line (offline and captured alike).
_TERMINATOR = ";\n\n"


@dataclass(frozen=True)
class Item:
    """One choice: ``key`` names it for :meth:`Exploration.detail` (``change:2``, ``table:users``, ``finding:5``)."""

    kind: str
    key: str
    label: str


@dataclass
class Exploration:
    """A run's (or a live database's) changes, schema, data checks, locks, SQL and findings, ready to explore."""

    #: What was read: ``run <id>`` or the masked database URL.
    source: str
    schema: Snapshot | None = None
    changes: list[Change] = field(default_factory=list)
    #: ``(stage, finding)`` for every finding recorded (a live database: the checks' and the analysis').
    findings: list[tuple[str, Finding]] = field(default_factory=list)
    #: Each data check's result as ``dbrunbook.stages.data_checks.CheckResult.to_json`` writes it.
    checks: list[dict[str, Any]] = field(default_factory=list)
    locks: list[LockEstimate] = field(default_factory=list)
    #: The upgrade SQL, one statement each (stage 03's ``upgrade.sql``).
    upgrade_sql: list[str] = field(default_factory=list)
    #: What this source cannot show, said once (e.g. lock estimates of a live database).
    notes: list[str] = field(default_factory=list)

    def tables(self) -> list[str]:
        """The tables of the schema, and those only the changes or checks name (a table being added)."""
        names = set(self.schema.tables) if self.schema else set()
        names.update(c.table for c in self.changes if c.table)
        names.update(str(r["table"]) for r in self.checks if r.get("table"))
        return sorted(names)

    def items(self, kind: str) -> list[Item]:
        """The choices of ``kind`` (one of :data:`KINDS`); changes most serious first."""
        if kind == "change":
            order = sorted(range(len(self.changes)), key=lambda i: _rank(self.changes[i].kind))
            return [Item("change", f"change:{i}", f"{self.changes[i].kind or 'change'}: {self.changes[i].object} "
                         f"- {self.changes[i].detail}") for i in order]
        if kind == "table":
            return [Item("table", f"table:{t}", _table_label(t, self.schema)) for t in self.tables()]
        if kind == "finding":
            order = sorted(range(len(self.findings)), key=lambda i: _SEVERITY.get(self.findings[i][1].severity, 9))
            return [Item("finding", f"finding:{i}", _finding_label(*self.findings[i])) for i in order]
        raise UsageError(f"nothing to explore of kind {kind!r}; choose one of {', '.join(KINDS)}")

    def default(self) -> Item | None:
        """The first choice shown: the most serious change, else the first table, else the worst finding."""
        for kind in KINDS:
            found = self.items(kind)
            if found:
                return found[0]
        return None

    def detail(self, key: str) -> Any:
        """The :class:`~dbrunbook.explore.Detail` of the choice ``key`` (an :class:`Item`'s key)."""
        from dbrunbook.explore._detail import detail

        return detail(self, key)


_SEVERITY = {"block": 0, "warn": 1, "info": 2}


def _rank(kind: str) -> int:
    return SEVERITY_ORDER.index(kind) if kind in SEVERITY_ORDER else len(SEVERITY_ORDER)


def _table_label(name: str, schema: Snapshot | None) -> str:
    table = schema.tables.get(name) if schema else None
    if table is None:
        return f"{name} (new)"
    return f"{name} ({table.rows} rows)" if table.rows is not None else name


def _finding_label(stage: str, f: Finding) -> str:
    where = f" [{f.object}]" if f.object else ""
    return f"{f.severity} {f.code}{where} ({stage}): {f.message}"[:160]


def split_sql(text: str) -> list[str]:
    """The statements of Alembic's SQL output, each without its terminator."""
    return [s.strip().rstrip(";").strip() for s in text.split(_TERMINATOR) if s.strip().rstrip(";").strip()]


# -- a finished run ----------------------------------------------------------------------------------------------

def from_run(run_dir: str | Path) -> Exploration:
    """Everything ``run_dir``'s stages recorded; a stage that did not run leaves its part empty."""
    run = Path(run_dir)
    if not run.is_dir():
        raise UsageError(f"run folder {run} not found")
    found = Exploration(source=f"run {run.name}")
    analysis = contract.load(run, contract.SCHEMA_ANALYSIS)
    if analysis is not None:
        found.changes = as_changes(analysis.changes)
        if analysis.snapshot and (run / analysis.snapshot).is_file():
            found.schema = load_snapshot(run / analysis.snapshot)
    migration = contract.load(run, contract.MIGRATION)
    if migration is not None:
        found.locks = list(migration.review.locks)
        upgrade = contract.MIGRATION.dir(run) / "upgrade.sql"
        if upgrade.is_file():
            found.upgrade_sql = split_sql(upgrade.read_text())
    else:
        found.notes.append("stage 03 did not run: no migration SQL and no lock estimates")
    checks = contract.load(run, contract.DATA_CHECKS)
    if checks is not None and checks.checks is not None:
        found.checks = list(checks.checks.results)
    else:
        found.notes.append("stage 05 ran no data checks: no offending rows")
    for stage in contract.STAGES:
        name = stage.recorded_name(run)
        result = load_result(run, name) if name else None
        if result is not None:
            found.findings.extend((result.stage, f) for f in result.findings)
    return found


# -- a live database ---------------------------------------------------------------------------------------------

def from_database(url: str, models: str = "", project_dir: str | Path | None = None, sample: int = 10) -> Exploration:
    """A live database, read-only: its schema; with ``models`` also the changes to them and the data checks."""
    from dbrunbook.core.config import load_metadata, load_renames
    from dbrunbook.core.db import check_connection, make_engine
    from dbrunbook.core.secrets import mask_url
    from dbrunbook.schema import snapshot
    from dbrunbook.stages import schema_analysis
    from dbrunbook.stages.data_checks import run_checks

    project = Path(project_dir) if project_dir else None
    engine = make_engine(url)
    try:
        check_connection(engine)
        found = Exploration(source=mask_url(engine.url))
        if not models:
            found.schema = snapshot(engine)
            found.notes.append("no target models given: the schema only, no changes and no data checks")
        else:
            metadata = load_metadata(models, project)
            result = schema_analysis.analyse(engine, metadata, load_renames(project) if project else None)
            found.schema, found.changes = result.source, result.changes
            found.findings = [("schema analysis", f) for f in schema_analysis.findings(result.changes, result.hints)]
            report = run_checks(engine, metadata, sample=sample)
            found.checks = [r.to_json() for r in report.results]
            found.findings += [("data checks", f) for f in report.findings()]
        found.notes.append("lock estimates and the migration SQL come from a run (dbrunbook update)")
    finally:
        engine.dispose()
    return found


def open_exploration(run: str = "", db: str = "", models: str = "", project: str = "",
                     runs_dir: str = "") -> Exploration:
    """The notebook's entry: ``run`` (folder, id or ``latest``) if given, else the database ``db``.

    ``db`` may name a registered target (``demo``: the demo shop, built on first use), whose models are used
    unless ``models`` is given. ``runs_dir`` (for a run id) defaults to the project's ``runs_dir``.
    """
    from dbrunbook.core.archive import find_run
    from dbrunbook.core.config import load_run_settings
    from dbrunbook.core.stage import named_target

    project_dir = Path(project or ".").resolve()
    if run:
        folder = Path(runs_dir) if runs_dir else load_run_settings(project_dir).runs_dir
        return from_run(find_run(run, folder if folder.is_absolute() else project_dir / folder))
    if not db:
        raise UsageError("nothing to explore: give a run (folder, id or latest) or a database URL")
    named = named_target(db)
    if named is not None:
        return from_database(named.db, models or named.models, named.project_dir)
    return from_database(db, models, project_dir)
