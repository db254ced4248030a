"""The evidence of stage 09 (staging volume)."""
from __future__ import annotations

from dataclasses import dataclass, field

from dbrunbook.core.evidence._base import Evidence, Record


@dataclass
class TimingPointRecord(Record):
    """The upgrade timed on a copy grown by ``scale``."""

    scale: float
    rows: int
    seconds: float
    ok: bool
    error: str = ""
    grow_seconds: float = 0.0
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class StagingEvidence(Evidence):
    """What stage 09 measured: the upgrade timed at each size, the fitted line, and the prediction."""

    points: list[TimingPointRecord]
    intercept: float = 0.0
    slope: float = 0.0
    production_rows: int = 0
    #: None when nothing could be predicted.
    predicted_seconds: float | None = None
