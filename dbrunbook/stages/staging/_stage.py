"""Stage 09's step: time the upgrade on grown copies, fit the curve, predict, chart, and build the evidence."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbrunbook.core.evidence import StagingEvidence, TimingPointRecord
from dbrunbook.stages.migration import scripts_for
from dbrunbook.stages.staging import TimingCurve, findings, plot, timing_curve

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class StagingOutcome:
    """The timing curve and its chart (for the notebook to show), and stage 09's evidence."""

    curve: TimingCurve
    chart: Path
    evidence: StagingEvidence
    summary: str


def timed(curve: TimingCurve) -> StagingEvidence:
    """Stage 09's evidence of ``curve``."""
    return StagingEvidence(
        points=[TimingPointRecord(p.scale, p.rows, p.seconds, p.ok, p.error, p.grow_seconds, p.skipped)
                for p in curve.points],
        intercept=curve.intercept, slope=curve.slope, production_rows=curve.production_rows,
        predicted_seconds=curve.predicted_seconds)


def run(stage: Stage, *, migration_dir: str = "", scales: Sequence[float] = (1, 2, 3), production_rows: int = 0,
        base_mode: str = "full", sample_rows: int = 1000, repeats: int = 1,
        max_seconds: float = 60.0) -> StagingOutcome:
    """Time the upgrade of ``stage``'s target on copies grown by ``scales`` and predict it at ``production_rows``
    (0: the target's rows); writes ``timing.png`` and adds the findings to ``stage``."""
    curve = timing_curve(stage.target, scripts_for(stage, migration_dir), scales=scales,
                         production_rows=production_rows or None, mode=base_mode, rows=sample_rows, repeats=repeats)
    stage.extend(findings(curve, max_seconds=max_seconds))
    chart = stage.dir / "timing.png"
    plot(curve).savefig(chart, dpi=100)
    failed, sizes = sum(not p.ok for p in curve.points), len(curve.points)
    if not failed:
        summary = curve.headline()
    elif curve.fitted:
        summary = f"the upgrade fails at {failed} of {sizes} sizes; {curve.headline()} from the others"
    else:
        summary = f"the upgrade fails at {failed} of {sizes} sizes: no prediction"
    return StagingOutcome(curve, chart, timed(curve), summary)
