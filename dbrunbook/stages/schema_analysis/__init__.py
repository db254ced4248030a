"""Stage 1: what changes between the live schema and the target models, and what it risks.

:func:`analyse` snapshots the live database (read-only), describes the target ``MetaData`` in
the same model, diffs the two (:mod:`dbrunbook.schema`), classifies each change and names what
depends on it. Drops are measured: a dropped column or table says how many values it holds.
:func:`findings` turns the result into coded findings; :func:`relations_figure` draws the
affected tables and their foreign keys. With models and pending revisions both given,
:func:`compare_revisions` checks that the revisions produce the models (:mod:`._agreement`).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dbrunbook.core.evidence import SchemaAnalysisEvidence
from dbrunbook.core.results import Finding
from dbrunbook.schema import (
    KINDS,
    Change,
    RenameHint,
    SchemaDiff,
    as_changes,
    assess,
    diff,
    snapshot,
    snapshot_metadata,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from dbrunbook.core.stage import Stage

__all__ = ["KINDS", "Agreement", "Change", "SchemaAnalysisOutcome", "analyse", "compare", "compare_revisions",
           "disagreements", "findings", "relations_figure", "run", "run_changes", "summary", "table"]


def analyse(engine: sa.Engine, metadata: sa.MetaData, renames: Mapping[str, str] | None = None,
            save_dir: Path | None = None, *, models: bool = True) -> SchemaDiff:
    """Snapshot, diff against ``metadata``, classify and measure; saves ``schema-before.json`` to ``save_dir``.

    ``models``: False when ``metadata`` was reflected from the copy the pending revisions upgraded (no models
    given); its types are then compared as a database's, strictly."""
    before = snapshot(engine)
    if save_dir is not None:
        before.save(Path(save_dir) / "schema-before.json")
    target = snapshot_metadata(metadata, engine.dialect, models=models)
    result = diff(before, target, renames)
    assess(result)
    for change in result.changes:
        if change.kind == "destructive":
            _measure(engine, change)
    return result


def summary(changes: list[Change]) -> str:
    """Stage 01's headline: how many changes, by kind."""
    kinds = ", ".join(f"{sum(c.kind == k for c in changes)} {k}" for k in KINDS if any(c.kind == k for c in changes))
    return f"{len(changes)} changes: {kinds}" if kinds else "no schema change"


def compare(engine: sa.Engine, metadata: sa.MetaData, renames: Mapping[str, str] | None = None) -> list[Change]:
    """The changes from the live database to ``metadata``, classified and measured."""
    return analyse(engine, metadata, renames).changes


def run_changes(stage: Stage, metadata: sa.MetaData | None) -> tuple[list[Change], str]:
    """The schema changes of ``stage``'s run, and where they came from.

    Stage 01's recorded changes when it ran (so later stages judge the same changes), else computed
    from ``metadata`` read-only, else none.
    """
    from dbrunbook.core.config import load_renames

    recorded = stage.earlier(SchemaAnalysisEvidence)
    if recorded is not None:
        return as_changes(recorded.evidence.changes), recorded.stage
    if metadata is not None:
        return compare(stage.engine, metadata, load_renames(stage.target.project_dir)), "computed"
    return [], "none"


def _measure(engine: sa.Engine, change: Change) -> None:
    """Count exactly what a destructive change would destroy (unknown, None, when the database cannot say)."""
    with engine.connect() as conn:
        if change.op == "remove_column":
            # The object is "table.column"; either name may hold dots of its own.
            column: sa.ColumnClause[Any] = sa.column(change.object[len(change.table) + 1:])
            query = sa.select(sa.func.count()).select_from(sa.table(change.table, column)).where(column.is_not(None))
        else:
            query = sa.select(sa.func.count()).select_from(sa.table(change.table))
        try:
            change.rows_affected = int(conn.execute(query).scalar_one())
        except sa.exc.SQLAlchemyError as exc:
            change.rows_affected = None
            change.extra["measure_error"] = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]


def table(changes: list[Change]) -> list[dict[str, Any]]:
    """One row per change for display: kind, op, object, detail, rows, dependencies named."""
    return [{"kind": c.kind, "op": c.op, "object": c.object, "detail": c.detail, "rows_affected": c.rows_affected,
             "classes": ", ".join(c.classes),
             "depends": ", ".join(f"{d['type']} {d['name']}" + (" (breaks)" if d["breaks"] else "")
                                  for d in c.dependencies)}
            for c in changes]


def findings(changes: list[Change], hints: list[RenameHint] | tuple[RenameHint, ...] = ()) -> list[Finding]:
    """Findings for the changes that need attention, and for likely renames."""
    out = []
    for c in changes:
        if c.kind == "destructive":
            lost = c.rows_affected or 0
            what = "non-empty values" if c.op == "remove_column" else "rows"
            counted = f"{lost} {what} would be lost" if "measure_error" not in c.extra \
                else f"could not count the {what} that would be lost: {c.extra['measure_error']}"
            out.append(Finding("SA001", "block" if lost else "warn", f"{c.detail}: {counted}",
                               c.object, {"rows": lost},
                               "copy the data elsewhere first, or stop using the column in code and drop it "
                               "in a later release"))
        elif c.kind == "breaking":
            out.append(Finding("SA002", "warn", f"{c.detail}: running code that does not know it will fail",
                               c.object, {}, "add it nullable or with a server default, backfill, then tighten"))
        elif c.kind == "may-fail":
            out.append(Finding("SA003", "warn", f"{c.detail}: may fail on existing rows", c.object,
                               {"rows": c.rows_affected},
                               "check the data first (stage 05) or add the constraint NOT VALID and validate later"))
        broken = [d for d in c.dependencies if d["breaks"] and (d["type"] == "view" or d["table"] != c.table)]
        if broken:
            names = ", ".join(f"{d['type']} {d['name']}" for d in broken)
            out.append(Finding("SA004", "block", f"{c.detail}: breaks {names}", c.object,
                               {"dependencies": broken}, "change or drop the dependent objects in the same migration"))
    for h in hints:
        out.append(Finding("SA005", "warn", f"{h.what} {h.old} -> {h.new} looks like a rename "
                           f"(confidence {h.confidence:.2f}); as drop + add it loses data",
                           f"{h.table}.{h.new}" if h.what == "column" else h.new,
                           {"confidence": h.confidence, "evidence": h.evidence},
                           f"if it is a rename, add {h.config} to renames in [tool.dbrunbook]"))
    return out


def relations_figure(result: SchemaDiff) -> Figure:
    """A picture of the changed tables, their neighbours by foreign key, and the kind of change."""
    from matplotlib.figure import Figure

    source, target = result.source, result.target
    changed: dict[str, str] = {}
    for c in result.changes:
        if c.table:
            worst = changed.get(c.table)
            changed[c.table] = c.kind if worst is None or KINDS.index(c.kind) < KINDS.index(worst) else worst
    edges = {(t.name, fk.ref_table) for snap in (source, target) for t in snap.tables.values()
             for fk in t.foreign_keys if t.name in changed or fk.ref_table in changed}
    nodes = sorted(set(changed) | {n for e in edges for n in e})
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    ax.set_axis_off()
    if not nodes:
        ax.text(0.5, 0.5, "no changes", ha="center", va="center")
        return fig
    import math

    pos = {n: (math.cos(2 * math.pi * i / len(nodes)), math.sin(2 * math.pi * i / len(nodes)))
           for i, n in enumerate(nodes)}
    for child, parent in edges:
        (x1, y1), (x2, y2) = pos[child], pos[parent]
        ax.annotate("", xy=(x2, y2), xytext=(x1, y1), arrowprops={"arrowstyle": "->", "color": "grey",
                                                                   "shrinkA": 28, "shrinkB": 28})
    colours = {"destructive": "#d62728", "may-fail": "#ff7f0e", "breaking": "#9467bd", "locking": "#bcbd22",
               "additive": "#2ca02c", "neutral": "#7f7f7f"}
    for n, (x, y) in pos.items():
        kind = changed.get(n)
        rows = (source.tables.get(n) or target.tables.get(n))
        label = f"{n}\n{kind or 'unchanged'}" + (f"\n{rows.rows} rows" if rows and rows.rows is not None else "")
        ax.text(x, y, label, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "fc": colours.get(kind or "", "white"), "alpha": 0.4})
    ax.set_xlim(-1.5, 1.5)
    ax.set_ylim(-1.5, 1.5)
    ax.set_title("Affected tables (arrows: foreign keys, child -> parent)")
    return fig


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.schema_analysis._agreement import Agreement, compare_revisions, disagreements  # noqa: E402
from dbrunbook.stages.schema_analysis._stage import SchemaAnalysisOutcome, run  # noqa: E402
