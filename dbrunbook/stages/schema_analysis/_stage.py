"""Stage 01's step: compare the live schema with the target, and record the changes and the snapshot.

With models and pending revisions both given, the models set the change and the revisions are checked against
them (:mod:`._agreement`): a revision that does not produce the models is a finding of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbrunbook.core import codes, contract
from dbrunbook.core.config import load_renames
from dbrunbook.core.evidence import SchemaAnalysisEvidence
from dbrunbook.core.results import Finding
from dbrunbook.schema import Change, SchemaDiff
from dbrunbook.stages.data_checks import ChangeSource, change_source
from dbrunbook.stages.schema_analysis import analyse, findings, summary
from dbrunbook.stages.schema_analysis._agreement import Agreement, agreement_findings, compare_revisions

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage


@dataclass
class SchemaAnalysisOutcome:
    """What stage 01 compared and found (for the notebook to show), and the evidence it records."""

    source: ChangeSource
    result: SchemaDiff | None
    evidence: SchemaAnalysisEvidence
    summary: str
    #: The models against what the pending revisions make; None when not both were there to compare.
    agreement: Agreement | None = None

    @property
    def changes(self) -> list[Change]:
        return self.result.changes if self.result is not None else []


def run(stage: Stage) -> SchemaAnalysisOutcome:
    """Analyse the change of ``stage``'s target: to the models when given, else to what the pending revisions
    produce (on a schema-only copy); with both, check that the revisions produce the models. Saves
    ``schema-before.json`` and adds the findings to ``stage``."""
    source = change_source(stage.target, work_dir=stage.dir)
    renames = {**load_renames(stage.target.project_dir), **source.renames}
    result = analyse(stage.engine, source.metadata, renames, save_dir=stage.dir, models=source.source == "models") \
        if source.metadata is not None else None
    changes, hints = (result.changes, result.hints) if result is not None else ([], [])
    stage.extend(findings(changes, hints))
    failed = not_analysed(source)
    stage.extend(failed)
    agreement = None
    if source.source == "models" and source.metadata is not None and stage.target.alembic_config:
        agreement = compare_revisions(stage.target, source.metadata, stage.dir / "alembic")
        stage.extend(agreement_findings(agreement, stage.target.models))
    evidence = SchemaAnalysisEvidence(
        changes=[c.to_json() for c in changes], rename_hints=[h.to_json() for h in hints],
        snapshot=contract.SCHEMA_ANALYSIS.path("schema-before.json") if result is not None else None)
    if agreement is not None:
        evidence.revisions_compared = agreement.revisions
        evidence.disagreements = None if agreement.error else [c.to_json() for c in agreement.differences]
        evidence.comparison_error = agreement.error
    headline = summary(changes) if result is not None else source.note if not failed \
        else f"not analysed: {failed[0].evidence['error']}"
    if agreement is not None and agreement.differences:
        headline += f"; the revisions do not produce the models ({len(agreement.differences)} differences)"
    return SchemaAnalysisOutcome(source, result, evidence, headline, agreement)


def not_analysed(source: ChangeSource) -> list[Finding]:
    """SA008 when there is no target schema because the pending revisions fail on the schema-only copy: the
    change could not be analysed, which is no pass. None when there is a target or genuinely nothing to compare."""
    if source.metadata is not None or not source.error:
        return []
    error = source.error
    return [codes.SA008.finding(f"the change could not be analysed: no target models given, and {error}", "",
                                {"error": error})]
