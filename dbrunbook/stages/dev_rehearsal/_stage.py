"""Stage 04's step: rehearse the upgrade on a copy of the target and build the evidence."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from dbrunbook.alembic_ops.migration import ApplyResult
from dbrunbook.core import contract
from dbrunbook.core.evidence import AlembicRun, DevRehearsalEvidence, RevisionTiming
from dbrunbook.stages.dev_rehearsal import Rehearsal, findings, rehearse
from dbrunbook.stages.migration import scripts_for
from dbrunbook.stages.staging import Scale

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class DevRehearsalOutcome:
    """The rehearsal (for the notebook to show) and the evidence stage 04 records."""

    rehearsal: Rehearsal
    evidence: DevRehearsalEvidence
    summary: str


def _alembic_run(result: ApplyResult, stage: str = "") -> AlembicRun:
    """An upgrade's or downgrade's outcome as evidence records it."""
    return AlembicRun.from_json(asdict(result), stage=stage)


def rehearsed(rehearsal: Rehearsal) -> DevRehearsalEvidence:
    """Stage 04's evidence of ``rehearsal``."""
    stage = contract.DEV_REHEARSAL.name
    return DevRehearsalEvidence(
        revision_before=rehearsal.revision_before, revision_after=rehearsal.revision_after,
        upgrade=_alembic_run(rehearsal.upgrade, stage), target_revision_unchanged=rehearsal.target_revision_unchanged,
        revisions=[RevisionTiming.from_json(t, stage=stage) for t in rehearsal.revisions],
        probes=[asdict(p) for p in rehearsal.probes], tests=asdict(rehearsal.tests) if rehearsal.tests else None,
        clone=rehearsal.clone, mode=rehearsal.mode, rows=rehearsal.rows, tests_skipped=rehearsal.tests_skipped)


def run(stage: Stage, *, migration_dir: str = "", mode: str = "full", sample_rows: int = 1000, probes: bool = True,
        scale: str = "") -> DevRehearsalOutcome:
    """Upgrade a copy of ``stage``'s target (``mode``: full, schema or sample of ``sample_rows``; grown first by
    ``scale``, a factor like 10x or TABLE=ROWS pairs) with the run's scripts, probe the new constraints; adds
    the findings to ``stage``."""
    result = rehearse(stage.target, scripts_for(stage, migration_dir), mode=mode, rows=sample_rows, probes=probes,
                      scale=Scale.parse(scale) if scale else None)
    stage.extend(findings(result))
    summary = "upgrade applied on a copy" if result.upgrade.ok else f"upgrade fails on a copy: {result.upgrade.error}"
    return DevRehearsalOutcome(result, rehearsed(result), summary)
