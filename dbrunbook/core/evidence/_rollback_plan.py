"""The evidence of the rollback plan: the round trip on a copy, the backup, the decision criteria."""
from __future__ import annotations

from dataclasses import dataclass, field

from dbrunbook.core.evidence._base import Evidence, Record, grouped, optional
from dbrunbook.core.evidence._dev_rehearsal import AlembicRun


@dataclass
class RollbackSteps(Record):
    """What the rollback of the change is, before anything runs."""

    current: str | None
    head: str | None
    downgrade_to: str
    downgrade_sql: str
    restore_from_backup: bool
    steps: list[str] = field(default_factory=list)


@dataclass
class DataDifference(Record):
    """One difference between two fingerprints (``dbrunbook.data.fingerprint.FingerprintDiff``)."""

    table: str
    column: str
    what: str
    before: int | None
    after: int | None
    message: str = ""


@dataclass
class RoundTripRecord(Record):
    """Upgrade, downgrade and upgrade again on a copy, and what did not come back."""

    plan: RollbackSteps
    completed: bool
    lossless: bool
    upgrade: AlembicRun
    downgrade: AlembicRun | None = None
    reupgrade: AlembicRun | None = None
    schema_diff: list[str] = field(default_factory=list)
    data_diff: list[DataDifference] = field(default_factory=list)
    reupgrade_schema_diff: list[str] = field(default_factory=list)
    rows_before: int | None = None
    rows_upgraded: int | None = None


@dataclass
class PlannedBackup(Record):
    """What a backup runs, and how its file is restored."""

    dialect: str
    path: str
    command: str
    restore_command: str
    tool: str
    package: str


@dataclass
class TakenBackup(PlannedBackup):
    """A backup taken: the plan, and the file's size, checksum and time."""

    size: int
    seconds: float
    sha256: str


@dataclass
class BackupEvidence(Record):
    """The rollback plan's backup: taken and restored (``backup`` and the check), or only ``planned``."""

    backup: TakenBackup | None = optional()
    planned: PlannedBackup | None = optional()
    restore_seconds: float | None = grouped("verified")
    rows: int | None = grouped("verified")
    ok: bool | None = grouped("verified")
    diffs: list[DataDifference] | None = grouped("verified")

    @property
    def restore_command(self) -> str | None:
        """How to restore the backup taken, else the planned one."""
        found = self.backup or self.planned
        return found.restore_command if found else None


@dataclass
class Criterion(Record):
    """A signal that triggers the rollback, its threshold, and what to do then."""

    signal: str
    threshold: str
    action: str


@dataclass
class RollbackPlanEvidence(Evidence):
    """What the rollback plan proved: the round trip (and on a schema-only copy when the data stopped the
    upgrade), the backup, and the criteria that trigger the rollback."""

    round_trip: RoundTripRecord
    schema_only_round_trip: RoundTripRecord | None = None
    backup: BackupEvidence = field(default_factory=BackupEvidence)
    decision_criteria: list[Criterion] = field(default_factory=list)
