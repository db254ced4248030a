"""The evidence of stage 01 (schema analysis)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.core.evidence._base import Evidence, grouped, optional


@dataclass
class SchemaAnalysisEvidence(Evidence):
    """What stage 01 found: the classified changes, the rename hints, where the live schema was saved, and
    whether the pending revisions produce the models."""

    #: Each change as ``dbrunbook.schema.Change.to_json`` writes it, read back by ``dbrunbook.schema.as_changes``
    #: (the schema layer sits above this one and owns that shape).
    changes: list[dict[str, Any]]
    rename_hints: list[dict[str, Any]] = field(default_factory=list)
    #: The live schema before the change (``01-schema-analysis/schema-before.json``, relative to the run
    #: folder); None when nothing was compared.
    snapshot: str | None = None
    #: With models and pending revisions both given, the revisions applied to a schema-only copy to compare
    #: what they make with the models; the three keys are absent when there was nothing to compare.
    revisions_compared: list[str] | None = optional(group="models_vs_revisions")
    #: Each difference from what the revisions make to what the models say, as a change (``Change.to_json``);
    #: empty when they agree, None when they could not be compared (``comparison_error`` says why).
    disagreements: list[dict[str, Any]] | None = grouped("models_vs_revisions")
    comparison_error: str | None = grouped("models_vs_revisions")
