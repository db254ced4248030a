"""Stage 12's step: read the apply's records, validate the target, save its fingerprint, build the evidence."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbrunbook.core.config import load_metadata, load_run_settings
from dbrunbook.core.evidence import CheckRow, PostMigrationEvidence
from dbrunbook.core.notify import notify
from dbrunbook.stages.guarded_apply import notification_findings
from dbrunbook.stages.post_migration import ApplyRecord, Validation, check_record, head_revision, read_records
from dbrunbook.stages.post_migration._partial import Stopped

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage

_STATE = {None: "no apply record, target validated as it is", True: "applied migration validated",
          False: "migration not applied, target checked for changes"}


def _stopped(stopped: Stopped) -> str:
    applied = ", ".join(stopped.applied) or "none"
    return (f"apply stopped partway (applied: {applied}; failed: {stopped.failed})" if stopped.failed
            else f"apply failed after applying {applied}")


@dataclass
class PostMigrationOutcome:
    """The records read and the validation (for the notebook to show), and stage 12's evidence."""

    record: ApplyRecord
    validation: Validation
    evidence: PostMigrationEvidence
    summary: str


def run(stage: Stage, *, plan_run: str = "") -> PostMigrationOutcome:
    """Validate ``stage``'s target after the apply of ``plan_run`` recorded in ``stage``'s run (stage 11): the
    schema, the revision, the data and the database's health, or that nothing changed when it did not apply;
    saves ``fingerprint-after.json`` and adds the findings to ``stage``. Reads the target only."""
    record = read_records(stage.run_dir, plan_run)
    target = stage.target
    metadata = load_metadata(target.models, target.project_dir) if target.models else None
    for note in record.notes:
        stage.add("PV000", "warn", note, fix="validate through dbrunbook apply PLAN_RUN, which records the apply")
    result = check_record(stage.engine, metadata, record, head_revision(target))
    stage.extend(result.findings)
    if result.fingerprint_after is not None:
        result.fingerprint_after.save(stage.dir / "fingerprint-after.json")
    evidence = PostMigrationEvidence(applied=record.applied, plan_run=plan_run, revision=result.revision,
                                     checks=[CheckRow.from_json(row, stage=stage.name) for row in result.table()],
                                     fingerprint_after=stage.path("fingerprint-after.json"))
    blocking = sum(f.severity == "block" for f in stage.findings)
    state = _STATE[record.applied] if record.stopped is None else _stopped(record.stopped)
    summary = f"{state}: {len(result.checks)} checks, {blocking} blocking finding(s)"
    if blocking:  # the people on call hear of it from the channel the apply told, not only from the record
        delivery = notify("validation-failed", {"summary": summary, "run": stage.run_dir.name, "target": target.db,
                                                "plan_run": plan_run, "revision": result.revision},
                          load_run_settings(target.project_dir))
        stage.extend(notification_findings([delivery.to_json()]))
    return PostMigrationOutcome(record, result, evidence, summary)
