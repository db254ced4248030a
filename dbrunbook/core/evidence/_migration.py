"""The evidence of stage 03 (migration): the revisions to apply and the review of their SQL."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.core.evidence._base import Evidence, Record, grouped, optional


@dataclass
class LintSummary(Record):
    """How many lint findings the upgrade SQL has, and the ones silenced (each a finding with its reason)."""

    findings: int = 0
    silenced: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LockEstimate(Record):
    """One statement's lock and the seconds it blocks writes (``dbrunbook.lint.locks.LockRow``)."""

    statement: int
    sql: str
    table: str
    action: str
    lock: str
    blocks: str
    algorithm: str
    rewrite: bool
    scan: bool
    rows: int | None
    bytes: int | None
    blocked_seconds: float


@dataclass
class Reversal(Record):
    """One upgrade operation and the downgrade operation that undoes it (``lint.reversibility``)."""

    statement: int
    operation: str
    undone_by: str
    undone: bool
    lossy: bool
    lost: str


@dataclass
class MigrationReview(Record):
    """The review of the upgrade SQL: lint, lock estimates, reversibility."""

    lint: LintSummary = field(default_factory=LintSummary)
    locks: list[LockEstimate] = field(default_factory=list)
    reversibility: list[Reversal] = field(default_factory=list)
    throughput_bytes_per_second: float | None = None
    max_blocked_seconds: float = 0.0


@dataclass
class RewriteSummary(Record):
    """The safe rewrite of the planned revisions: files written (relative to the run folder), advice, and
    the lint codes the rewrite leaves."""

    files: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)


@dataclass(kw_only=True)  # keyword-only, so the fields keep the order of the sidecar's keys
class MigrationEvidence(Evidence):
    """What stage 03 planned: revisions, scripts, how the SQL was obtained, and its review.

    Paths are relative to the run folder; the SQL itself is in ``03-migration/upgrade.sql`` and
    ``downgrade.sql`` (:data:`dbrunbook.core.contract.MIGRATION`).
    """

    current: str | None
    #: One string; several heads are joined by commas (``heads`` lists them).
    head: str | None
    heads: list[str] = field(default_factory=list)
    revisions: list[str]
    script_dir: str | None
    #: The revision generated from the models, when one was.
    generated: str | None = None
    written_to_project: str | None = None
    #: ``offline``, or ``captured on a schema-only copy (...)``.
    sql_source: str = "offline"
    review: MigrationReview = field(default_factory=MigrationReview)
    rewrite: RewriteSummary = field(default_factory=RewriteSummary)
    #: With stage 01's change and the models, the planned revisions applied to a schema-only copy and compared
    #: with the models: each part of the change they do not make, or make differently, as a change
    #: (``dbrunbook.schema.Change.to_json``, described in ``extra["disagreement"]``); empty when they make it all.
    #: None when the comparison could not run (``comparison_note`` says why); both keys absent when not compared.
    disagreements: list[dict[str, Any]] | None = optional(group="plan_vs_models")
    comparison_note: str | None = grouped("plan_vs_models")
