"""The evidence of stage 04 (dev rehearsal), and the record of one Alembic run it shares with the rollback plan."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.core.evidence._base import Evidence, Record


@dataclass
class AlembicRun(Record):
    """An upgrade or downgrade run on a copy (``dbrunbook.alembic_ops.migration.ApplyResult``)."""

    ok: bool
    seconds: float
    #: Each statement that ran: ``sql`` and ``seconds``.
    statements: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    error_type: str = ""
    failed_statement: str = ""
    output: str = ""
    #: Set when env.py reached for a database other than the copy (``target``, ``where``).
    fenced: dict[str, str] = field(default_factory=dict)


@dataclass
class RevisionTiming(Record):
    """One revision of an upgrade: its statements, their summed time, and whether it completed."""

    revision: str
    ok: bool
    statements: int
    seconds: float
    slowest_sql: str = ""
    slowest_seconds: float = 0.0


@dataclass
class DevRehearsalEvidence(Evidence):
    """What stage 04 saw on its copy: the revisions before and after, the upgrade, each revision, the probes."""

    revision_before: str | None
    revision_after: str | None
    upgrade: AlembicRun
    target_revision_unchanged: bool
    revisions: list[RevisionTiming] = field(default_factory=list)
    #: Each constraint probe (``dev_rehearsal.probes.Probe``): kind, table, columns, status, error, note, values.
    probes: list[dict[str, Any]] = field(default_factory=list)
    #: Stage 04 runs no test command (stage 07 does): always None here.
    tests: dict[str, Any] | None = None
    clone: str = ""
    #: The copy: ``full``, ``schema`` or ``sample``.
    mode: str = "full"
    #: Rows per table the copy was grown to, when it was.
    rows: dict[str, int] = field(default_factory=dict)
    tests_skipped: str = ""
