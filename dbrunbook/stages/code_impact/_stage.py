"""Stage 06's step: scan the project's code for what the change breaks, write the references, build the evidence."""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbrunbook.core.config import load_metadata
from dbrunbook.core.db import dialect_name
from dbrunbook.core.evidence import CodeImpactEvidence
from dbrunbook.core.results import Finding
from dbrunbook.schema import Change
from dbrunbook.stages.code_impact._runner import findings
from dbrunbook.stages.code_impact._scan import MAX_BYTES, CodeImpact, scan
from dbrunbook.stages.code_impact._table import summary
from dbrunbook.stages.schema_analysis import run_changes

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class CodeImpactOutcome:
    """The changes judged, the scan and its findings (for the notebook to show), and stage 06's evidence."""

    changes: list[Change]
    impact: CodeImpact
    findings: list[Finding]
    evidence: CodeImpactEvidence
    summary: str


def run(stage: Stage, *, source_dirs: Sequence[str] = (), exclude: Sequence[str] = (),
        max_file_bytes: int = MAX_BYTES) -> CodeImpactOutcome:
    """Scan ``stage``'s project (``source_dirs``, less ``exclude``) for code the run's changes break (stage 01's,
    else computed read-only); writes ``references.json`` and adds the findings to ``stage``."""
    target = stage.target
    metadata = load_metadata(target.models, target.project_dir) if target.models else None
    changes, changes_from = run_changes(stage, metadata)
    impact = scan(target.project_dir, changes, metadata=metadata, models=target.models,
                  alembic_config=target.alembic_config, source_dirs=source_dirs, exclude=exclude,
                  dialect=dialect_name(stage.engine), max_bytes=max_file_bytes)
    found = findings(impact)
    stage.extend(found)
    (stage.dir / "references.json").write_text(json.dumps(impact.to_json(), indent=2) + "\n")
    evidence = CodeImpactEvidence(changes_from=changes_from, references=stage.path("references.json"),
                                  files_scanned=len(impact.scanned), files_skipped=len(impact.skipped),
                                  reference_count=len(impact.references), insert_count=len(impact.inserts))
    return CodeImpactOutcome(changes, impact, found, evidence, summary(impact, found))
