"""Do the pending revisions produce the models? Stage 01's second source of the change, checked against the first.

With both target models and pending revisions, the change is known twice: the live schema against the models,
and the live schema against what the revisions make. :func:`compare_revisions` applies the revisions to a
schema-only copy (in the fenced Alembic process), snapshots the copy and diffs it with the models rendered for the
same dialect: each difference left is one the upgrade would leave between the database and the code, as
``alembic check`` run after the upgrade would report it. The comparison lives in
:mod:`dbrunbook.alembic_ops.agreement`, shared with stage 03 (which checks the revisions it planned); this module
turns its result into stage 01's findings.
"""
from __future__ import annotations

from dbrunbook.alembic_ops.agreement import Agreement, compare_revisions, describe, disagreements, migrated_snapshot
from dbrunbook.core import codes
from dbrunbook.core.results import Finding

__all__ = ["Agreement", "agreement_findings", "compare_revisions", "describe", "disagreements", "migrated_snapshot"]


def agreement_findings(agreement: Agreement | None, models: str) -> list[Finding]:
    """SA006 when the revisions do not produce the models (every difference listed), SA007 when that is unknown."""
    if agreement is None:
        return []
    revisions = agreement.revisions
    pending = "the pending revisions" if not revisions else f"revision {revisions[0]}" if len(revisions) == 1 \
        else f"the {len(revisions)} pending revisions ({revisions[0]} .. {revisions[-1]})"
    head = revisions[-1] if revisions else ""  # the object: the revision the upgrade ends at
    if agreement.error:
        return [codes.SA007.finding(f"could not check that {pending} make the models {models}: "
                                    f"{agreement.error}", head, {"revisions": revisions, "error": agreement.error})]
    if not agreement.differences:
        return []
    listed = "; ".join(c.extra["disagreement"] for c in agreement.differences)
    return [codes.SA006.finding(
        f"{pending} {'does' if len(revisions) == 1 else 'do'} not produce the models {models}: "
        f"{len(agreement.differences)} difference(s): {listed}", head,
        {"revisions": agreement.revisions,
         "differences": [{"op": c.op, "table": c.table, "object": c.object, "migrations": c.before,
                          "models": c.after, "says": c.extra["disagreement"]} for c in agreement.differences]})]
