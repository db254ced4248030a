"""The change as the pending revisions make it, for data checks when no target models are given.

Most teams write their revisions by hand and pass no ``--models``. The data checks still need the target
schema: :func:`schema_after_revisions` applies the pending revisions to a schema-only copy of the target (in
the fenced Alembic process) and reflects what they produce. :func:`declared_facts` reads what the revisions
declare from their own operations and the SQL they ran: renames (``alter_column(new_column_name=...)``,
``rename_table``), so a rename is not mistaken for a drop that loses data; defaults that fill existing rows; and
the USING of an ``ALTER ... TYPE`` (``postgresql_using=``), which DC005 evaluates instead of reporting that the
ALTER has no cast.

Statements of a revision that change data (a backfill ``UPDATE`` before ``SET NOT NULL``) are invisible to a
schema comparison: the statements the revisions ran on the copy are kept, read in order (:mod:`._statements`),
and counted on the target by :mod:`.statements`. :func:`settle_with_rehearsal` weighs the checks against stage
04's rehearsal on a full copy: where the upgrade passed on the real data, the rows a check counts did not stop
it (the revision's own statements dealt with them), so the check no longer blocks; data a drop destroys still
does.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dbrunbook.core.config import Target
from dbrunbook.core.contract import Recorded
from dbrunbook.core.db import make_engine
from dbrunbook.core.evidence import DevRehearsalEvidence
from dbrunbook.core.results import Finding
from dbrunbook.data.clone import scratch_copy
from dbrunbook.dialects import OPERATIONS_DIALECT
from dbrunbook.schema.snapshot import add_unreflected_indexes, drop_server_made_indexes
from dbrunbook.stages.data_checks._base import CheckResult
from dbrunbook.stages.data_checks._dialect import FAILS
from dbrunbook.stages.data_checks._statements import Steps, read_steps

#: The effect of rows the migration's own statements dealt with: the upgrade passed on the real data.
HANDLED = "handled by the migration"


@dataclass
class RevisionSchema:
    """The target schema as the pending revisions produce it, or why it could not be had."""

    metadata: sa.MetaData | None
    revisions: list[str] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)
    defaulted: set[str] = field(default_factory=set)
    error: str = ""
    #: The data statements the revisions ran on the copy, in order, and what they do to columns.
    steps: Steps | None = None


@dataclass
class Declared:
    """What the revisions declare that a schema comparison cannot see."""

    #: ``{"table.old": "table.new", "old_table": "new_table"}``.
    renames: dict[str, str] = field(default_factory=dict)
    #: The columns added with a default (``"table.column"``): existing rows get that value.
    defaulted: set[str] = field(default_factory=set)
    #: ``"table.column"`` -> the USING expression its ALTER ... TYPE converts the values with.
    converted: dict[str, str] = field(default_factory=dict)


def declared_facts(script_dir: Path, revisions: list[str], ran: str = "", dialect: str = "") -> Declared:
    """What the revisions declare that a schema comparison cannot see, from their operations and the SQL they ran.

    The renames, the columns they add with a default (existing rows get that value, even when a later revision
    drops the default), and the columns whose ALTER ... TYPE says how to convert (USING). ``ran`` is the SQL the
    revisions ran on a copy (in ``dialect``): it holds what revisions that inspect the database do, which their
    operations cannot show offline; a USING is taken from it when given, as the operations are rendered for
    PostgreSQL (``postgresql_using=`` shows there even when the target ignores it).
    """
    from dbrunbook.lint.reversibility import operations_sql
    from dbrunbook.sql.model import parse_sql

    up_sql, _ = operations_sql(script_dir, revisions, unreadable={})
    found = Declared()
    parsed = [parse_sql(up_sql, OPERATIONS_DIALECT, "operations")] + ([parse_sql(ran, dialect, "ran")] if ran else [])
    for migration in parsed:
        for action in (a for s in migration.statements for a in s.actions):
            _declared(found, action, converting=migration is parsed[-1])
    return found


def _declared(found: Declared, action: Any, converting: bool) -> None:
    if action.kind == "create_table" and action.table.startswith("_alembic_tmp_"):
        # A batch copy: a column created with a default gets it in every copied row.
        table = action.table.removeprefix("_alembic_tmp_")
        found.defaulted |= {f"{table}.{name}" for name, facts in (action.details.get("columns") or {}).items()
                            if isinstance(facts, dict) and facts.get("default") is not None}
    to = str(action.details.get("to", ""))
    if action.kind == "rename_column" and to:
        found.renames[f"{action.table}.{action.column}"] = f"{action.table}.{to}"
    elif action.kind == "rename_table" and to:
        found.renames[action.table] = to
    elif action.kind == "add_column" and action.details.get("default") is not None:
        found.defaulted.add(f"{action.table}.{action.column}")
    elif action.kind == "alter_type" and converting and action.details.get("using"):
        found.converted[f"{action.table}.{action.column}"] = str(action.details["using"])


def schema_after_revisions(target: Target, script_dir: Path) -> RevisionSchema:
    """Apply the pending revisions in ``script_dir`` to a schema-only copy of the target and reflect the result."""
    from dbrunbook.alembic_ops.migration import apply_upgrade, pending_for

    cfg, revisions = pending_for(target, script_dir)
    if not revisions:
        return RevisionSchema(None, error="no pending revisions")
    dialect = dialect_name_of(target)
    with scratch_copy(target.db, mode="schema") as url:
        result = apply_upgrade(cfg, url, "heads")
        if not result.ok:
            return RevisionSchema(None, revisions, error=f"the revisions fail on an empty copy: {result.error}")
        copy = make_engine(url)
        try:
            metadata = sa.MetaData()
            metadata.reflect(copy)
            with copy.connect() as conn:
                add_unreflected_indexes(metadata, conn, dialect)
        finally:
            copy.dispose()
    if "alembic_version" in metadata.tables:
        metadata.remove(metadata.tables["alembic_version"])
    drop_server_made_indexes(metadata, dialect)
    try:
        ran = "".join(s["sql"].strip() + ";\n" for s in result.statements)
        declared = declared_facts(script_dir, revisions, ran, dialect)
    except Exception:  # operations that cannot be read offline: nothing declared is known, drops stay drops
        declared = Declared()
    # read_steps never raises: a statement it cannot read is kept, named, with the reason.
    steps = read_steps(result.statements, dialect)
    steps.converted = declared.converted
    return RevisionSchema(metadata, revisions, _live_renames(target, declared.renames), declared.defaulted,
                          steps=steps)


def dialect_name_of(target: Target) -> str:
    """The target's dialect name (MariaDB told apart from MySQL)."""
    from dbrunbook.core.db import dialect_name

    engine = make_engine(target.db)
    try:
        return dialect_name(engine)
    finally:
        engine.dispose()


def _live_renames(target: Target, renames: dict[str, str]) -> dict[str, str]:
    """The renames of tables and columns the target has today (a rename inside a table the migration creates,
    or of a column it adds, is no change of the live schema)."""
    engine = make_engine(target.db)
    try:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        # A column renamed in a table the revisions renamed first is named by the table's new name: look it up
        # live under the old one (a live table's: a batch copy's _alembic_tmp_ table is renamed too).
        back = {new: old for old, new in renames.items() if "." not in old and old in tables}

        def live_table(old: str) -> str:
            table = old.split(".", 1)[0]
            return back.get(table, table)

        columns = {t: {c["name"] for c in inspector.get_columns(t)}
                   for t in {live_table(old) for old in renames if "." in old} & tables}
    finally:
        engine.dispose()
    return {old: new for old, new in renames.items()
            if (old in tables if "." not in old else old.split(".", 1)[1] in columns.get(live_table(old), set()))}


def without_declared(results: list[CheckResult], renames: dict[str, str], defaulted: set[str]) -> list[CheckResult]:
    """Drop results the revisions' own operations answer: a rename is no drop (DC006), and a new column added
    with a default needs no value from anyone (DC001 "required")."""
    renamed_tables = {old for old in renames if "." not in old}

    def answered(r: CheckResult) -> bool:
        if r.code == "DC006":
            return r.object in renames or r.object in renamed_tables or r.object.split(".")[0] in renamed_tables
        return r.problem == "required" and r.object in defaulted

    return [r for r in results if not answered(r)]


def settle_with_rehearsal(results: list[CheckResult],
                          rehearsal: Recorded[DevRehearsalEvidence] | None) -> list[CheckResult]:
    """Weigh checks derived from revisions against stage 04: a passed full-copy upgrade refutes "it fails"."""
    if rehearsal is None or rehearsal.verdict == "block" or rehearsal.evidence.mode != "full":
        return results
    for result in results:
        if result.effect == FAILS and (result.count > 0 or result.refused):  # what a drop loses stays lost
            result.effect = HANDLED
            result.message += (" (but the upgrade passed on a full copy in stage 04: the revision's own statements "
                               "deal with these rows)")
    return results


@dataclass
class ChangeSource:
    """Where stage 05's target schema comes from: the models, else the pending revisions."""

    metadata: sa.MetaData | None
    source: str            # "models" | "revisions" | "" (nothing to check)
    note: str
    renames: dict[str, str] = field(default_factory=dict)
    defaulted: set[str] = field(default_factory=set)
    #: The data statements of the pending revisions (None when the revisions were not run on a copy).
    steps: Steps | None = None
    #: Why there is no target schema although there were revisions to run: they failed on the schema-only copy
    #: ("" when there is a target schema, or genuinely nothing to compare).
    error: str = ""


def change_source(target: Target, script_dir: Path | None = None, work_dir: Path | None = None) -> ChangeSource:
    """The target models when given; otherwise the schema the pending revisions produce.

    The revisions are those in ``script_dir`` (a copy made earlier in the run), else in a copy of the project's
    Alembic scripts made in ``work_dir``.
    """
    from dbrunbook.alembic_ops.migration import alembic_config
    from dbrunbook.core.config import load_metadata

    if target.models:
        # The revisions still say what the models cannot: renames, and defaults that fill existing rows.
        metadata = load_metadata(target.models, target.project_dir)
        try:
            found = schema_after_revisions(target, script_dir) if script_dir is not None else None
        except Exception:  # what the revisions declare only refines the models' checks: without it, they still run
            found = None
        renames, defaulted = (found.renames, found.defaulted) if found is not None else ({}, set())
        return ChangeSource(metadata, "models", f"models {target.models}", renames, defaulted,
                            found.steps if found is not None else None)
    if script_dir is None and work_dir is not None and target.alembic_config:
        script_dir = work_dir / "alembic"
        alembic_config(target, script_dir)
    if script_dir is None:
        return ChangeSource(None, "", "no target models and no Alembic scripts: nothing to check")
    found = schema_after_revisions(target, script_dir)
    if found.metadata is None:
        # Revisions that fail on the copy leave no target schema: a check that could not run, unlike none pending.
        return ChangeSource(None, "", f"no target models given, and {found.error}: nothing to check",
                            error=found.error if found.revisions else "")
    return ChangeSource(found.metadata, "revisions", f"the schema after revision(s) {', '.join(found.revisions)}",
                        found.renames, found.defaulted, found.steps)


def settle(results: list[CheckResult], source: ChangeSource,
           rehearsal: Recorded[DevRehearsalEvidence] | None) -> list[CheckResult]:
    """The results with what the revisions declare weighed in, and for checks derived from revisions alone,
    stage 04's evidence too (with models, the models are the authority on what must hold)."""
    results = without_declared(results, source.renames, source.defaulted)
    return settle_with_rehearsal(results, rehearsal) if source.source == "revisions" else results


def unexplained(results: list[CheckResult], rehearsal: Recorded[DevRehearsalEvidence] | None) -> list[Finding]:
    """DC104 when stage 04's upgrade failed on the data and no data check found rows that explain it.

    The revision's own code (a data migration in Python, an UPDATE that casts) fails on rows no schema
    comparison describes: say so, with the rehearsal's error and revision, rather than pass in silence.
    """
    if rehearsal is None or any(r.severity == "block" for r in results):
        return []
    failed = next((f for f in rehearsal.findings if f.code == "RH001"), None)
    if failed is None:
        return []
    revision = str(failed.evidence.get("revision") or failed.object)
    return [Finding("DC104", "warn", f"the upgrade fails on the data at revision {revision} "
                    f"({failed.evidence.get('error', failed.message)}) and no data check explains it: the "
                    "revision's own statements or code fail on rows no schema comparison describes", revision,
                    {"statement": failed.evidence.get("statement", ""), "revision": revision},
                    "read the failing statement in stage 04 and the revision's upgrade(); query the rows it "
                    "reads for the values it cannot handle")]
