"""Stage 12: prove, from the real database, that an applied migration did what the plan said.

:func:`validate` runs the post-migration checks on the upgraded target: the schema matches the
models (PV001), the Alembic revision is the plan's head (PV002), the data is preserved (PV003:
the fingerprint taken before the apply against one taken now, where the differences the schema
changes explain are listed as info, PV004, and everything else blocks, except what only the
application's writes during the apply can explain, PV016, see :mod:`._traffic`) and the database is
healthy after its DDL (PV005-PV010: the probes of :data:`HEALTH` the dialect names in its
``health_probes``). :func:`unchanged` is for an apply that did not happen (a guard refused, the
upgrade failed or was aborted): it proves the target is exactly as it was (PV011). :func:`partial` is
for an apply that stopped partway where DDL commits at once: which revisions applied, which failed,
which of its statements ran, and what it left behind (PV012-PV015, :mod:`._partial`). All only read
the database.
"""
from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from dbrunbook.alembic_ops.migration import alembic_config, current_revision, scripts_head
from dbrunbook.core import contract
from dbrunbook.core.config import Target
from dbrunbook.core.evidence import (
    Evidence,
    EvidenceError,
    GuardedApplyEvidence,
    ProductionPlanEvidence,
    SchemaAnalysisEvidence,
)
from dbrunbook.core.results import Finding
from dbrunbook.data.fingerprint import Fingerprint, FingerprintDiff, compare, fingerprint
from dbrunbook.errors import UsageError
from dbrunbook.schema import Change, as_changes, diff, load_snapshot, snapshot
from dbrunbook.stages.post_migration._checks import Check as Check
from dbrunbook.stages.post_migration._checks import Validation as Validation
from dbrunbook.stages.post_migration._checks import check as _check
from dbrunbook.stages.post_migration._health import HEALTH as HEALTH
from dbrunbook.stages.post_migration._health import HealthProbe as HealthProbe
from dbrunbook.stages.post_migration._health import health as health
from dbrunbook.stages.post_migration._health import probes_of as probes_of
from dbrunbook.stages.post_migration._partial import Stopped, left_behind, relabel, stopped_partway, where_it_stopped
from dbrunbook.stages.post_migration._traffic import Judged, bounds, judge, split
from dbrunbook.stages.schema_analysis import compare as schema_changes

E = TypeVar("E", bound=Evidence)
#: Tables whose content is bookkeeping, not data: the revision check covers Alembic's.
_BOOKKEEPING = ("alembic_version",)
#: Column changes that rewrite a column's stored values on purpose (their checksum may change).
_REWRITING_OPS = ("modify_type", "add_enum_value", "remove_enum_value")


def check_schema(engine: Engine, metadata: sa.MetaData | None) -> Check:
    """PV001: the live schema has no change left against the models."""
    title = "schema matches the models"
    if metadata is None:
        return _check("PV001", title, None, "no models given")
    left = schema_changes(engine, metadata)
    found = [Finding("PV001", "block", f"left to do to match the models: {c.detail}", c.object,
                     {"op": c.op, "kind": c.kind},
                     "the migration did not produce the models' schema: write a follow-up revision "
                     "(dbrunbook update) or fix the models") for c in left]
    return _check("PV001", title, found, f"{len(left)} change(s) left" if left else "no change left")


def check_revision(engine: Engine, expected: str | None) -> Check:
    """PV002: the database is at the revision the plan expects."""
    title = "Alembic revision is the expected head"
    if expected is None:
        return _check("PV002", title, None, "no expected revision")
    current = current_revision(engine)
    found = [] if current == expected else [
        Finding("PV002", "block", f"the database is at revision {current or 'none'}, not {expected}", "alembic_version",
                {"current": current, "expected": expected},
                "find out which revision failed or was skipped; upgrade to the head or roll back")]
    return _check("PV002", title, found, f"at {current or 'none'}")


def head_revision(target: Target) -> str | None:
    """The head of the target's Alembic scripts (None without an Alembic config)."""
    if not target.alembic_config:
        return None
    with tempfile.TemporaryDirectory(prefix="dbrunbook-head-") as scratch:
        return scripts_head(ScriptDirectory.from_config(alembic_config(target, Path(scratch) / "alembic")))


# -- data ----------------------------------------------------------------------------------------

def _column(change: Change) -> str:  # a column change's object is "table.column"
    return change.object.split(".")[1] if "." in change.object else ""


def _renamed(before: Fingerprint, changes: list[Change]) -> Fingerprint:
    """``before`` with the plan's confirmed renames applied, so moved data compares under its new name."""
    out = copy.deepcopy(before)
    for c in changes:
        if c.op == "rename_table" and c.before in out.tables:
            out.tables[str(c.after)] = out.tables.pop(str(c.before))
    for c in changes:
        table = out.tables.get(c.table)
        if c.op == "rename_column" and table is not None and c.before in table.columns:
            table.columns[str(c.after)] = table.columns.pop(str(c.before))
            table.key = str(c.after) if table.key == c.before else table.key
    return out


def _explained(diff: FingerprintDiff, changes: list[Change]) -> str:
    """Why the schema changes make ``diff`` expected, or "" when they do not."""
    where = (diff.table, diff.column)
    for c in changes:
        on_column = (c.table, _column(c)) == where
        if diff.what == "table-missing" and c.op == "remove_table" and c.table == diff.table:
            return "the table is dropped by the plan: its rows are an expected loss"
        if diff.what == "table-added" and c.op == "add_table" and c.table == diff.table:
            return "the table is added by the plan"
        if diff.what == "column-missing" and c.op == "remove_column" and on_column:
            return "the column is dropped by the plan: its values are an expected loss"
        if diff.what == "column-added" and c.op == "add_column" and on_column:
            return "the column is added by the plan"
        if diff.what == "values" and c.op in _REWRITING_OPS and on_column:
            return f"the plan changes the column ({c.detail}), so its stored values may change"
        if diff.what == "non-null" and c.op == "modify_nullable" and on_column and c.after is False \
                and (diff.after or 0) > (diff.before or 0):
            return "the plan makes the column NOT NULL: its NULLs were backfilled"
    return ""


def _touches(diff: FingerprintDiff, rename: Change) -> bool:
    """Whether ``diff`` concerns the data a rename moved (a whole table, or one column and its rows)."""
    return diff.table == rename.table and (rename.op == "rename_table" or diff.column in ("", _column(rename)))


def _findings(judged: list[Judged], inserted: dict[str, int], before: Fingerprint) -> list[Finding]:
    """Block (PV003) or warn (PV016) findings for unexplained differences, and info on rows inserted meanwhile."""
    out = []
    for j in judged:
        d = j.diff
        where = f"{d.table}.{d.column}" if d.column else d.table
        evidence = {**d.to_json(), "message": j.message, "columns": [x.to_json() for x in j.folded]}
        if j.severity == "block":
            out.append(Finding("PV003", "block", f"data changed that the plan does not change: {j.message}", where,
                               evidence, "restore the lost or altered values from the backup, or roll back; then "
                               "find out which statement of the migration changed them"))
        else:
            out.append(Finding("PV016", "warn", f"the table changed during the apply; the application wrote to it: "
                               f"{j.message}", where, {**evidence, "inserted": inserted.get(d.table, 0)},
                               "make sure the application's writes account for it (its log, the rows' timestamps); "
                               "if the migration changed these values, restore them from the backup"))
    for name, count in sorted(inserted.items()):
        if count:
            old = before.tables[name]
            out.append(Finding("PV016", "info", f"{count:,} rows inserted during the apply into {name} (key {old.key} "
                               f"above {old.key_max}, its largest before); the {old.rows:,} rows before compared "
                               "apart", name, {"inserted": count, "key": old.key, "key_max_before": old.key_max,
                                               "rows_before": old.rows}))
    return out


def check_data(before: Fingerprint | None, after: Fingerprint, changes: list[Change]) -> Check:
    """PV003/PV004: every data difference since ``before`` is one the schema changes explain."""
    title = "data preserved"
    if before is None:
        return _check("PV003", title, None, "no fingerprint from before the apply")
    renamed = _renamed(before, changes)
    comparable, inserted = split(after)  # the tables stage 11 keyed: their rows from before, apart from new ones
    diffs = [d for d in compare(renamed, comparable) if d.table not in _BOOKKEEPING]
    judged = [(d, _explained(d, changes)) for d in diffs]
    unexplained = [d for d, why in judged if not why]
    weighed = judge(unexplained, renamed, after, inserted, changes)
    expected = [Finding("PV004", "info", f"expected: {d.message}; {why}", f"{d.table}.{d.column}" if d.column
                        else d.table, d.to_json()) for d, why in judged if why]
    moved = [c for c in changes if c.op in ("rename_table", "rename_column") and not any(_touches(d, c) for d in diffs)]
    expected += [Finding("PV004", "info", f"{c.detail}: values moved intact", c.object, {"before": c.before})
                 for c in moved]
    found = _findings(weighed, inserted, renamed) + expected
    lost, traffic = sum(j.severity == "block" for j in weighed), sum(j.severity == "warn" for j in weighed)
    written = f"; {sum(inserted.values()):,} rows inserted during the apply" if any(inserted.values()) else ""
    return _check("PV003", title, found, f"{after.rows:,} rows in {len(after.tables)} tables; {lost} unexplained, "
                  f"{traffic} from the application's writes and {len(diffs) - len(unexplained)} expected "
                  f"difference(s){written}")


def after_print(engine: Engine, before: Fingerprint | None, changes: list[Change]) -> Fingerprint:
    """The fingerprint now; each table stage 11 keyed also bounded to its rows from before (see :mod:`._traffic`)."""
    return fingerprint(engine, bounds=bounds(_renamed(before, changes), changes) if before is not None else None)


def validate(engine: Engine, target_metadata: sa.MetaData | None, before: Fingerprint | None,
             changes: Iterable[Change | Mapping[str, Any]] | None, expected_revision: str | None) -> Validation:
    """Check the upgraded database: schema, revision, data against ``before``, and health."""
    planned = as_changes(changes)
    after = after_print(engine, before, planned)
    changed = {c.table for c in planned if c.table} if planned else None  # unknown changes: probe every table
    checks = [check_schema(engine, target_metadata), check_revision(engine, expected_revision),
              check_data(before, after, planned), *health(engine, changed)]
    return Validation(checks, after, current_revision(engine))


def unchanged(engine: Engine, before: Fingerprint | None, revision_before: str | None,
              schema_before: str | Path | None = None, *, started: bool = True) -> Validation:
    """Prove a target the migration did not apply to is exactly as it was (data, revision, schema).

    Without a fingerprint from before, unchanged data is only vouched for when the upgrade never ``started`` (a
    dry run, a refusal): then an unchanged schema and revision is all there is to prove, and it is info."""
    after, revision = after_print(engine, before, []), current_revision(engine)
    comparable, inserted = split(after)  # what the application wrote meanwhile is told apart (see ._traffic)
    judged = judge(compare(before, comparable), before, after, inserted, []) if before is not None else []
    problems = [j.message for j in judged if j.severity == "block"]
    traffic = _findings([j for j in judged if j.severity != "block"], inserted, before) if before is not None else []
    if revision != revision_before:
        problems.insert(0, f"revision is {revision or 'none'}, {revision_before or 'none'} before")
    if schema_before is not None:
        problems += [f"schema against {Path(schema_before).name}: {c.op} {c.object}: {c.detail}"
                     for c in diff(load_snapshot(schema_before), snapshot(engine, sizes=False)).changes]
    compared = ", ".join(name for name, given in (("data", before), ("revision", ""), ("schema", schema_before))
                         if given is not None)
    if problems:
        found = Finding("PV011", "block", f"the migration was not applied, yet the target changed: {problems[0]}"
                        + (f" (and {len(problems) - 1} more)" if problems[1:] else ""), "", {"differences": problems},
                        "a statement ran before the failure and was not rolled back (DDL without transactions "
                        "commits at once): compare with the backup and restore, or finish the change by hand")
    else:
        vouched = before is not None or not started
        found = Finding("PV011", "info" if vouched else "warn", f"target unchanged ({compared} compared): "
                        f"{len(after.tables)} tables, {after.rows:,} rows, revision {revision or 'none'}", "",
                        {"rows": after.rows, "revision": revision})
    checks = [_check("PV011", "target unchanged", [found, *traffic], f"{len(problems)} difference(s)"),
              *health(engine)]
    return Validation(checks, after, revision)


def partial(engine: Engine, record: ApplyRecord, stopped: Stopped) -> Validation:
    """Say where an apply that stopped partway left the target (PV012-PV015), its data and its health."""
    left, changes = left_behind(engine, record.schema_before, stopped)
    after = after_print(engine, record.before, changes)
    data = check_data(record.before, after, changes)  # the changes found explain their own data differences
    relabel(data.findings, left, stopped.failed)
    tables = {c.table for c in changes if c.table}
    checks = [*where_it_stopped(engine, stopped), left, data, *health(engine, tables or None)]
    return Validation(checks, after, current_revision(engine))


# -- what stage 12 reads from the records --------------------------------------------------------

@dataclass
class ApplyRecord:
    """What stage 12 knows of the apply: stage 11's sidecar, and stages 10 and 01 of the plan run."""

    applied: bool | None = None  # None: no apply record
    before: Fingerprint | None = None
    revision_before: str | None = None
    expected_revision: str | None = None
    changes: list[Change] = field(default_factory=list)
    schema_before: Path | None = None
    notes: list[str] = field(default_factory=list)
    #: Set when the apply failed after statements committed (DDL without transactions): where it stopped.
    stopped: Stopped | None = None
    #: False when the upgrade never started (a dry run, or guards refused): nothing of ours touched the data.
    started: bool = True


def _load(folder: Path, kind: type[E], broken: list[str]) -> E | None:
    """``kind`` of the plan run in ``folder``; None, with why in ``broken``, when its sidecar breaks the contract."""
    try:
        return contract.load(folder, kind)
    except EvidenceError as exc:
        broken.append(f"{exc}: not used")
        return None


def read_records(apply_dir: str | Path, plan_run: str | Path) -> ApplyRecord:
    """Read stage 11's sidecar in the apply run ``apply_dir`` and stages 10 and 01 of ``plan_run``."""
    if not str(plan_run):
        return ApplyRecord(notes=["no plan run given: the target is validated as it is, against its models"])
    plan_dir = Path(plan_run)
    if not plan_dir.is_dir():
        raise UsageError(f"plan run {plan_run} not found")
    apply = contract.load(apply_dir, GuardedApplyEvidence)
    if apply is None:
        return ApplyRecord(notes=[f"no apply record ({contract.GUARDED_APPLY.name}) in {apply_dir}: the target is "
                                  "validated as it is, against its models"])
    broken: list[str] = []  # records of the plan run that break the contract: read as absent, and said so
    production = _load(plan_dir, ProductionPlanEvidence, broken)
    analysed = _load(plan_dir, SchemaAnalysisEvidence, broken)
    plan = production.plan if production is not None else None
    record = ApplyRecord(applied=apply.applied, revision_before=apply.revision_before,
                         expected_revision=(plan.revision_to if plan else None) or apply.revision_to,
                         changes=as_changes(analysed.changes if analysed else []),
                         started=apply.seconds is not None)
    saved, snap = apply.fingerprint_before, plan.schema_before if plan else None
    record.before = Fingerprint.load(Path(apply_dir) / saved) if saved else None
    # An accepted drift guard means the plan's snapshot is not the state the apply started from.
    drifted = any(g.id == "no-schema-drift" and not g.ok for g in apply.guards)
    record.schema_before = plan_dir / snap if snap and not drifted else None
    reviewed = plan_dir / plan.upgrade_sql if plan and plan.upgrade_sql else None
    record.stopped = stopped_partway(apply, reviewed.read_text() if reviewed and reviewed.is_file() else "")
    record.notes = broken + [note for note, absent in (
        # Only an upgrade that started needs the fingerprint: a dry run or a refused apply touched nothing, and
        # the schema and revision checks (PV011) prove that without it.
        ("stage 11 saved no fingerprint before the apply: the data cannot be compared",
         not saved and record.started),
        ("the schema had drifted from the plan's snapshot (accepted at apply time): it is not compared", drifted),
        (f"no production plan ({contract.PRODUCTION_PLAN.name}) in {plan_dir}", production is None),
        (f"no schema analysis ({contract.SCHEMA_ANALYSIS.name}) in {plan_dir}: no data change is explained",
         analysed is None),
    ) if absent]
    return record


def check_record(engine: Engine, metadata: sa.MetaData | None, record: ApplyRecord, head: str | None) -> Validation:
    """Validate as the record calls for: after an apply, after one that stopped partway, after a refused one, or
    the target as it is."""
    if record.stopped is not None:
        return partial(engine, record, record.stopped)
    if record.applied is False:
        return unchanged(engine, record.before, record.revision_before, record.schema_before,
                         started=record.started)
    return validate(engine, metadata, record.before, record.changes, record.expected_revision or head)


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.post_migration._stage import PostMigrationOutcome as PostMigrationOutcome  # noqa: E402
from dbrunbook.stages.post_migration._stage import run as run  # noqa: E402
