"""The evidence of stage 06 (code impact)."""
from __future__ import annotations

from dataclasses import dataclass

from dbrunbook.core.evidence._base import Evidence


@dataclass
class CodeImpactEvidence(Evidence):
    """What stage 06 scanned: where the changes came from, the references file and the counts."""

    #: ``01-schema-analysis`` (the changes it recorded), ``computed`` or ``none``.
    changes_from: str
    #: ``06-code-impact/references.json``, relative to the run folder.
    references: str = ""
    files_scanned: int = 0
    files_skipped: int = 0
    reference_count: int = 0
    insert_count: int = 0
