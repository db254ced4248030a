"""Do the planned revisions make the change stage 01 found? Stage 03's check of its own plan (MG010).

Stage 01 computes the change from the live schema to the models; stage 03 plans the revisions that should make
it, often one written by Alembic's autogenerate, which leaves things out: CHECK constraints, enum values, some
server defaults and types. :func:`check_plan` applies the planned revisions to a schema-only copy of the target
and diffs what they leave with the models (:mod:`dbrunbook.alembic_ops.agreement`, shared with stage 01); each
difference is a part of the change the plan does not make, or makes differently. With nothing planned, the live
schema is what the plan leaves. Pending revisions stage 01 already compared are not applied twice: its recorded
differences are read back. An upgrade that fails on the copy is stage 04's finding (and MG003's): the check is
then skipped with a note.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dbrunbook.alembic_ops.agreement import compare_revisions, disagreements
from dbrunbook.core import codes
from dbrunbook.core.config import load_metadata
from dbrunbook.core.evidence import SchemaAnalysisEvidence
from dbrunbook.core.results import Finding
from dbrunbook.schema import Change, as_changes, snapshot, snapshot_metadata

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage
    from dbrunbook.stages.migration import MigrationPlan

#: What autogenerate leaves out, by the kind of difference: the operation to add to the revision.
_EMITS = {
    "add_check": "autogenerate does not emit CHECK constraints; add op.create_check_constraint({name}, {table}, "
                 "{what})",
    "add_enum_value": "autogenerate does not emit enum value changes; add the value in the revision "
                      "(PostgreSQL: op.execute(\"ALTER TYPE ... ADD VALUE '{what}'\"))",
    "modify_default": "autogenerate compares server defaults only with compare_server_default; add "
                      "op.alter_column({table}, {column}, server_default=...)",
    "modify_type": "autogenerate misses some type changes; add op.alter_column({table}, {column}, type_=...)",
    "modify_nullable": "add op.alter_column({table}, {column}, nullable=...)",
}


@dataclass
class PlanAgreement:
    """The planned revisions against the models: the parts of stage 01's change they leave out or make
    differently, or why that is not known (``note``)."""

    revisions: list[str]
    differences: list[Change] = field(default_factory=list)
    #: Why the comparison did not run ("" when it did).
    note: str = ""
    #: True when stage 01's comparison of the same pending revisions was read back instead of run again.
    reused: bool = False


def check_plan(stage: Stage, plan: MigrationPlan) -> PlanAgreement | None:
    """Compare what ``plan`` leaves with ``stage``'s models; None when there is nothing to compare against (stage
    01 did not run, or no models were given). Never raises: a failure is the ``note``."""
    recorded = stage.earlier(SchemaAnalysisEvidence)
    if recorded is None or not stage.target.models:
        return None
    revisions = list(plan.revisions)
    if plan.upgrade_sql.startswith("-- upgrade failed"):
        return PlanAgreement(revisions, note="not compared: the upgrade fails on a schema-only copy (MG003)")
    earlier = recorded.evidence
    if plan.generated is None and revisions and earlier.revisions_compared == revisions:
        if earlier.disagreements is None:
            return PlanAgreement(revisions, note=f"not compared: {earlier.comparison_error or 'stage 01 could not'}",
                                 reused=True)
        return _tagged(PlanAgreement(revisions, as_changes(earlier.disagreements), reused=True), earlier)
    if not revisions and not earlier.changes:
        return PlanAgreement(revisions)  # nothing planned and nothing to make: no schema to read
    try:
        metadata = load_metadata(stage.target.models, stage.target.project_dir)
        if not revisions:
            # Nothing planned: what the plan leaves is the live schema, read as it is.
            live = snapshot(stage.engine, sizes=False)
            found = disagreements(live, snapshot_metadata(metadata, live.dialect), metadata)
            return _tagged(PlanAgreement(revisions, found), earlier)
    except Exception as exc:  # stage 03 goes on without the check; the note says why
        return PlanAgreement(revisions, note=f"not compared: {type(exc).__name__}: {exc}".strip().splitlines()[0])
    compared = compare_revisions(stage.target, metadata, plan.script_dir, revisions)
    if compared is None:
        return PlanAgreement(revisions)
    if compared.error:
        return PlanAgreement(revisions, note=f"not compared: {compared.error}")
    return _tagged(PlanAgreement(revisions, compared.differences), earlier)


def _tagged(agreement: PlanAgreement, earlier: SchemaAnalysisEvidence) -> PlanAgreement:
    """Mark each difference that is part of stage 01's change (``extra["in_change"]``): same object."""
    changed = {c.object for c in as_changes(earlier.changes)}
    for difference in agreement.differences:
        difference.extra["in_change"] = difference.object in changed
    return agreement


def hint(difference: Change) -> str:
    """What to add to (or remove from) the revision so that it makes ``difference`` as the models say."""
    column = difference.object[len(difference.table) + 1:] if difference.table else difference.object
    what = str((difference.after or [""])[0]) if isinstance(difference.after, list) else str(difference.after)
    unnamed = difference.object.startswith(f"{difference.table}(")
    template = _EMITS.get(difference.op)
    if template is not None:
        return template.format(name=repr("ck_...") if unnamed else repr(difference.object),
                               table=repr(difference.table), column=repr(column), what=what if
                               difference.op == "add_enum_value" else repr(what))
    verb, _, kind = difference.op.partition("_")
    noun = kind.replace("_", " ")
    if verb == "add":
        return f"add the operation that creates {noun} {difference.object}"
    if verb == "remove":
        return f"the revisions make {noun} {difference.object}, which the models lack: remove it from the revision " \
               f"or add it to the models"
    return f"alter {difference.object} in the revision as the models say ({noun})"


def agreement_findings(agreement: PlanAgreement | None, plan: MigrationPlan) -> list[Finding]:
    """MG010 when the planned revisions leave out part of the change (every difference listed, with what to add)."""
    if agreement is None or agreement.note or not agreement.differences:
        return []
    revisions = agreement.revisions
    planned = "no revision is planned, so the plan" if not revisions else \
        ("the generated revision" if plan.generated is not None and len(revisions) == 1 else
         f"revision {revisions[0]}" if len(revisions) == 1 else f"the {len(revisions)} planned revisions")
    ours = [d for d in agreement.differences if d.extra.get("in_change")]
    others = [d for d in agreement.differences if not d.extra.get("in_change")]
    several = len(revisions) > 1  # "the 45 planned revisions do not make", "the generated revision does not make"
    parts = []
    if ours:
        parts.append(f"{'do' if several else 'does'} not make {len(ours)} part(s) of the change stage 01 found: "
                     + "; ".join(d.extra["disagreement"] for d in ours))
    if others:
        parts.append(f"{'leave' if several else 'leaves'} {len(others)} other difference(s) with the models: "
                     + "; ".join(d.extra["disagreement"] for d in others))
    head = revisions[-1] if revisions else ""
    where = f"edit {'the generated revision' if plan.generated is not None else 'revision'} {head}: " if head \
        else "write a revision (alembic revision) that makes it: autogenerate found nothing to write; "
    hints = list(dict.fromkeys(hint(d) for d in agreement.differences))
    return [codes.MG010.finding(
        f"{planned} " + ", and ".join(parts), head,
        {"revisions": revisions, "generated": plan.generated is not None,
         "differences": [{"op": d.op, "table": d.table, "object": d.object, "migrations": d.before,
                          "models": d.after, "says": d.extra["disagreement"], "in_change": d.extra["in_change"],
                          "fix": hint(d)} for d in agreement.differences]},
        fix=where + "; ".join(hints))]
