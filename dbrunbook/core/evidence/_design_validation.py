"""The evidence of stage 02 (design validation)."""
from __future__ import annotations

from dataclasses import dataclass, field

from dbrunbook.core.evidence._base import Evidence


@dataclass
class DesignValidationEvidence(Evidence):
    """What stage 02 found: the number of findings per design rule code."""

    findings_by_rule: dict[str, int] = field(default_factory=dict)
