"""Stage 05's step: run the data checks, profile and fingerprint the touched tables, plan the backfills.

The checks judge the change stage 01 recorded when it ran (the same typed changes, renames included), else the
change computed here the same way.

Every artifact of the stage is written here (``checks.json``, ``profile.json``, ``fingerprint.json``,
``backfill-<table>-<column>.sql``), and the evidence is built from the same objects.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbrunbook.core.config import load_renames
from dbrunbook.core.evidence import CheckRun, DataChecksEvidence, DevRehearsalEvidence, SchemaAnalysisEvidence
from dbrunbook.data.fingerprint import Fingerprint, fingerprint
from dbrunbook.errors import ConfigError
from dbrunbook.schema import Change, as_changes
from dbrunbook.stages.data_checks import CheckReport, run_checks
from dbrunbook.stages.data_checks._revisions import ChangeSource, change_source, settle, unexplained
from dbrunbook.stages.data_checks.backfill import BackfillPlan, backfill_plans
from dbrunbook.stages.data_checks.backfill import findings as backfill_findings
from dbrunbook.stages.data_checks.profile import TableProfile, profile_tables
from dbrunbook.stages.data_checks.profile import findings as profile_findings
from dbrunbook.stages.migration import scripts_for

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class DataChecksOutcome:
    """The checks, profiles and backfill plans of stage 05 (for the notebook to show), and its evidence."""

    source: ChangeSource
    report: CheckReport | None
    profiles: list[TableProfile]
    #: The touched tables that exist now, fingerprinted for the rehearsal and the post-migration checks.
    fingerprint: Fingerprint
    plans: list[BackfillPlan]
    evidence: DataChecksEvidence
    summary: str


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _checks(stage: Stage, source: ChangeSource, sample: int, timeout_ms: int) -> CheckReport | None:
    """The checks of the change, weighed against what the revisions declare and stage 04's rehearsal."""
    if source.metadata is None:
        return None
    report = run_checks(stage.engine, source.metadata, sample=sample, timeout_ms=timeout_ms, steps=source.steps,
                        changes=_recorded_changes(stage), renames=_renames(stage, source),
                        models=source.source == "models")
    rehearsal = stage.earlier(DevRehearsalEvidence)
    report.results = settle(report.results, source, rehearsal)
    stage.extend(unexplained(report.results, rehearsal))
    stage.extend(report.findings())
    _write_json(stage.dir / "checks.json", report.to_json())
    return report


def _recorded_changes(stage: Stage) -> list[Change] | None:
    """Stage 01's typed changes, when it ran and compared (None: compute them here)."""
    recorded = stage.earlier(SchemaAnalysisEvidence)
    if recorded is None or recorded.evidence.snapshot is None:
        return None
    return as_changes(recorded.evidence.changes)


def _renames(stage: Stage, source: ChangeSource) -> dict[str, str]:
    """The renames stage 01 applies: confirmed in ``[tool.dbrunbook]``, and declared by the revisions."""
    try:
        confirmed = load_renames(stage.target.project_dir)
    except ConfigError:  # stage 01 reports a malformed renames table; the checks go on with the declared ones
        confirmed = {}
    return {**confirmed, **source.renames}


def _plannable(report: CheckReport) -> CheckReport:
    """The report without the columns the migration adds and backfills itself: the fix is in its own backfill
    (DC001 says which rows it leaves NULL), and a plan for a column the target does not have cannot be made."""
    kept = [r for r in report.results if not r.evidence.get("added_by_migration")]
    return CheckReport(kept, report.tables, report.dialect, report.strict, report.diffs, report.statements)


def run(stage: Stage, *, sample_limit: int = 10, check_timeout_seconds: float = 120,
        exact_distinct_limit: int = 1_000_000, backfills: dict[str, str] | None = None, batch_size: int = 10_000,
        timed_batches: int = 1) -> DataChecksOutcome:
    """Check ``stage``'s target data against the change (the models, else the schema the pending revisions
    produce), read-only under ``check_timeout_seconds``; profile and fingerprint the touched tables; plan the
    backfills (``backfills``: an SQL expression per ``table.column``), timed on a scratch copy. Writes the
    stage's artifacts and adds the findings to ``stage``."""
    source = change_source(stage.target, scripts_for(stage))
    timeout_ms = int(check_timeout_seconds * 1000)
    report = _checks(stage, source, sample_limit, timeout_ms)
    tables = report.tables if report is not None else []
    profiles = profile_tables(stage.engine, tables, exact_limit=exact_distinct_limit, timeout_ms=timeout_ms)
    _write_json(stage.dir / "profile.json", [p.to_json() for p in profiles])
    stage.extend(profile_findings(profiles))
    # Fingerprints of the touched tables that exist now, for the rehearsal and post-migration checks.
    existing = [t for t in tables if sa.inspect(stage.engine).has_table(t)]
    saved = fingerprint(stage.engine, tables=existing)
    saved.save(stage.dir / "fingerprint.json")
    plans = backfill_plans(stage.engine, stage.target.db, _plannable(report), backfills or {}, batch_size=batch_size,
                           timed_batches=timed_batches, metadata=source.metadata) if report is not None else []
    for plan in plans:
        (stage.dir / f"backfill-{plan.table}-{plan.column}.sql").write_text(plan.script() + "\n")
    stage.extend(backfill_findings(plans))
    evidence = DataChecksEvidence(
        checks=CheckRun.from_json(report.to_json(), stage=stage.name) if report is not None else None,
        profile=[p.to_json() for p in profiles], fingerprint=stage.path("fingerprint.json"),
        backfills=[p.to_json() for p in plans])
    return DataChecksOutcome(source, report, profiles, saved, plans, evidence,
                             report.summary() if report is not None else source.note)
