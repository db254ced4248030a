"""The evidence of stage 01 (schema analysis)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.core.evidence._base import Evidence


@dataclass
class SchemaAnalysisEvidence(Evidence):
    """What stage 01 found: the classified changes, the rename hints, where the live schema was saved."""

    #: Each change as ``dbrunbook.schema.Change.to_json`` writes it, read back by ``dbrunbook.schema.as_changes``
    #: (the schema layer sits above this one and owns that shape).
    changes: list[dict[str, Any]]
    rename_hints: list[dict[str, Any]] = field(default_factory=list)
    #: The live schema before the change (``01-schema-analysis/schema-before.json``, relative to the run
    #: folder); None when nothing was compared.
    snapshot: str | None = None
