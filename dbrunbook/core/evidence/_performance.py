"""The evidence of stage 08 (performance)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.core.evidence._base import Evidence, Record, grouped


@dataclass
class BackupTiming(Record):
    """How long a backup and its restore take: measured by stage 08, from the rollback plan, or not measured."""

    #: ``measured``, ``rollback-plan`` or ``not measured``.
    source: str
    size: int | None = grouped("measured")
    seconds: float | None = grouped("measured")
    restore_seconds: float | None = grouped("measured")
    restored_ok: bool | None = grouped("measured")


@dataclass
class PerformanceEvidence(Evidence):
    """What stage 08 compared: the queries' plans and times before and after the upgrade, on which copy."""

    dialect: str
    #: The copy the plans come from: ``full``, ``sample`` or ``schema``.
    mode: str
    timed: bool
    repeats: int = 3
    #: The tables the change touches, and each change as the schema engine states it (``Change.to_json``), from
    #: a schema-only copy before and after the upgrade.
    touched: list[str] = field(default_factory=list)
    dropped_indexes: dict[str, list[str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    fk_without_index: list[dict[str, Any]] = field(default_factory=list)
    #: The upgrade failed on the copy with data: the plans come from a schema-only copy, untimed.
    upgrade_error: str = ""
    #: The upgrade failed even without data: nothing was compared.
    schema_error: str = ""
    #: One row per query (``Comparison.table``): paths, times, ratio and costs before and after.
    queries: list[dict[str, Any]] = field(default_factory=list)
    #: ``08-performance/plans.json`` and ``timings.png``, relative to the run folder.
    plans: str = ""
    chart: str = ""
    backup: BackupTiming = field(default_factory=lambda: BackupTiming("not measured"))
    changes: list[dict[str, Any]] = field(default_factory=list)
