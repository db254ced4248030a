"""Stage 02's step: run the design rules on the target design and count the findings per rule."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbrunbook.core.config import load_metadata
from dbrunbook.core.evidence import DesignValidationEvidence
from dbrunbook.core.results import Finding
from dbrunbook.stages.design_validation._runner import validate

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class DesignValidationOutcome:
    """The design findings (for the notebook to show) and the evidence stage 02 records."""

    findings: list[Finding]
    evidence: DesignValidationEvidence
    summary: str


def run(stage: Stage, *, rules: str = "", skip_rules: str = "") -> DesignValidationOutcome:
    """Run the design rules (``rules``/``skip_rules``: comma-separated codes or names) on the target models,
    or the live schema without models; adds the findings to ``stage``."""
    target = stage.target
    metadata = load_metadata(target.models, target.project_dir) if target.models else None
    found = validate(stage.engine, metadata, include=[r for r in rules.split(",") if r],
                     exclude=[r for r in skip_rules.split(",") if r])
    stage.extend(found)
    by_rule = {code: sum(f.code == code for f in found) for code in sorted({f.code for f in found})}
    summary = f"{len(found)} design findings" + (": " + ", ".join(f"{n} {c}" for c, n in by_rule.items())
                                                 if found else "")
    return DesignValidationOutcome(found, DesignValidationEvidence(findings_by_rule=by_rule), summary)
