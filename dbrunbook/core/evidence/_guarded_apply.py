"""The evidence of stage 11 (guarded apply): the guards, what ran, and how it ended."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.core.evidence._base import Evidence, Record, grouped, optional
from dbrunbook.core.evidence._dev_rehearsal import RevisionTiming


@dataclass
class GuardRecord(Record):
    """One precondition of the apply: whether it held, why, and whether the user accepted it failing."""

    id: str
    ok: bool
    detail: str
    accepted: bool = False


@dataclass
class HistoryRecord(Record):
    """Where the planned revisions stand in the project's own Alembic history."""

    ini: str = ""
    versions: str = ""
    present: list[str] = field(default_factory=list)
    #: Generated revisions written into the project before the upgrade: ``revision``, ``source``, ``dest``.
    write: list[dict[str, str]] = field(default_factory=list)
    problem: str = ""


@dataclass
class Refusal(Record):
    """What the apply raised when it refused (another apply holds the target, the revision moved ...)."""

    message: str
    guards: list[GuardRecord] = field(default_factory=list)
    holder: dict[str, Any] | None = None


@dataclass
class GuardedApplyEvidence(Evidence):
    """What stage 11 did with the plan run: its guards, and, when a plan run was given, the plan's limits
    (the ``plan`` keys) and, when it applied, the outcome (the ``outcome`` keys).

    Paths are relative to the apply run folder, except ``plan_run`` and ``script_dir`` (absolute).
    """

    plan_run: str
    plan_run_id: str
    applied: bool
    aborted: bool
    guards: list[GuardRecord] = field(default_factory=list)
    statements: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    monitor: list[dict[str, Any]] = field(default_factory=list)
    target: str | None = grouped("plan")
    dialect: str | None = grouped("plan")
    revision_now: str | None = grouped("plan")
    revision_from: str | None = grouped("plan")
    revision_to: str | None = grouped("plan")
    revisions: list[str] | None = grouped("plan")
    script_dir: str | None = grouped("plan")
    session: list[str] | None = grouped("plan")
    abort_after_seconds: float | None = grouped("plan")
    lock_timeout_ms: int | None = grouped("plan")
    statement_timeout_ms: int | None = grouped("plan")
    transactional: bool | None = grouped("plan")
    outside_transaction: list[str] | None = grouped("plan")
    monitor_queries: list[str] | None = grouped("plan")
    expected_seconds: float | None = grouped("plan")
    restore_command: str | None = grouped("plan")
    accepted: list[str] | None = grouped("plan")
    history: HistoryRecord | None = grouped("plan")
    sql_source: str | None = grouped("plan")
    lock_retries: int | None = grouped("plan")
    retry_budget_seconds: float | None = grouped("plan")
    retry_backoff_seconds: float | None = grouped("plan")
    lock_holder: str | None = grouped("plan")
    #: ``alembic_isolation_level`` of ``[tool.dbrunbook]`` the revisions ran at ("" when not set).
    isolation_level: str | None = grouped("plan")
    reviewed_statements: int | None = grouped("plan")
    revision_before: str | None = grouped("plan")
    revision_after: str | None = grouped("plan")
    #: ``11-guarded-apply/fingerprint-before.json``, taken just before the upgrade; None when it did not start.
    fingerprint_before: str | None = grouped("plan")
    seconds: float | None = grouped("outcome")
    revision_timings: list[RevisionTiming] | None = grouped("outcome")
    error_type: str | None = grouped("outcome")
    failed_statement: str | None = grouped("outcome")
    rolled_back: bool | None = grouped("outcome")
    written_to_project: list[str] | None = grouped("outcome")
    attempts: list[dict[str, Any]] | None = grouped("outcome")
    sql_mismatch: dict[str, Any] | None = grouped("outcome")
    lock: dict[str, Any] | None = grouped("outcome")
    #: Each notification of the apply (``core.notify.Delivery.to_json``): started, blocked, aborted, finished.
    notifications: list[dict[str, Any]] | None = optional()
    refused: Refusal | None = optional()
