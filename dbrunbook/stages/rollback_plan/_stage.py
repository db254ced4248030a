"""The rollback plan's step: prove the round trip, take (or plan) the backup, write the plan, build the evidence."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbrunbook.core.evidence import (
    BackupEvidence,
    Criterion,
    DevRehearsalEvidence,
    RollbackPlanEvidence,
    RoundTripRecord,
)
from dbrunbook.stages.migration import scripts_for
from dbrunbook.stages.rollback_plan import (
    RoundTrip,
    decision_criteria,
    findings,
    prove,
    render_plan,
    schema_only_findings,
    suggested_timeout,
    summary,
)
from dbrunbook.stages.rollback_plan.backup import BackupPlan, RestoreCheck, backup_and_verify, plan_backup
from dbrunbook.stages.rollback_plan.backup import findings as backup_findings

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class RollbackPlanOutcome:
    """The round trips, the backup (``check`` None when it was only planned), the criteria and the plan's text
    (for the notebook to show), and the rollback plan's evidence."""

    trip: RoundTrip
    schema_trip: RoundTrip | None
    planned: BackupPlan
    check: RestoreCheck | None
    criteria: list[dict[str, str]]
    text: str
    evidence: RollbackPlanEvidence
    summary: str


def run(stage: Stage, *, migration_dir: str = "", restore_from_backup: bool = False, take_backup: bool = True,
        backup_dir: str = "", abort_after_seconds: float = 0) -> RollbackPlanOutcome:
    """Prove the rollback of the run's scripts on a copy of ``stage``'s target, back it up and prove the backup
    restores (``take_backup``; else only plan it, into ``backup_dir`` or the stage folder), and write
    ``rollback-plan.md`` and ``downgrade.sql``; adds the findings to ``stage``. The abort limit is
    ``abort_after_seconds``, else three times stage 04's rehearsed upgrade."""
    trip, schema_trip = prove(stage.target, scripts_for(stage, migration_dir), restore_from_backup=restore_from_backup)
    stage.extend(findings(trip) + schema_only_findings(schema_trip))
    folder = backup_dir or stage.dir
    check = backup_and_verify(stage.target.db, folder) if take_backup else None
    planned = check.backup.plan if check is not None else plan_backup(stage.target.db, folder)
    if check is not None:
        stage.extend(backup_findings(check))
    rehearsal = stage.earlier(DevRehearsalEvidence)
    limit = abort_after_seconds or suggested_timeout(rehearsal.evidence if rehearsal is not None else None)
    criteria = decision_criteria(trip, limit)
    text = render_plan(trip.plan, trip, planned.restore_command, criteria)
    (stage.dir / "rollback-plan.md").write_text(text)
    (stage.dir / "downgrade.sql").write_text(trip.plan.downgrade_sql)
    evidence = RollbackPlanEvidence(
        round_trip=RoundTripRecord.from_json(trip.to_json(), stage=stage.name),
        schema_only_round_trip=RoundTripRecord.from_json(schema_trip.to_json(), stage=stage.name) if schema_trip
        else None,
        backup=BackupEvidence.from_json(check.to_json() if check is not None else {"planned": planned.to_json()},
                                        stage=stage.name),
        decision_criteria=[Criterion(**row) for row in criteria])
    return RollbackPlanOutcome(trip, schema_trip, planned, check, criteria, text, evidence, summary(trip))
