"""The rollback plan, and its proof: a round trip on a scratch copy with data fingerprints.

:func:`plan_rollback` only reads: it names the revision to go back to, the downgrade SQL and
the steps of the proof. :func:`round_trip` is its doing twin, always on a scratch copy of the
target (:func:`dbrunbook.data.clone.scratch_copy`): upgrade, fingerprint, downgrade, then compare
the schema (by reflection) and the data fingerprint with the copy as it was, upgrade again
(a migration must be re-runnable) and compare that schema with the first upgrade's. Every
column whose data did not come back is named with its counts; such a lossy downgrade blocks
unless the plan restores data from a backup. :func:`decision_criteria` lists the signals
that should trigger the rollback in production.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from dbrunbook.alembic_ops.migration import (
    ApplyResult,
    alembic_config,
    apply_downgrade,
    apply_upgrade,
    current_revision,
    render_sql,
    scripts_head,
)
from dbrunbook.core.config import Target
from dbrunbook.core.db import make_engine
from dbrunbook.core.evidence import DevRehearsalEvidence
from dbrunbook.core.results import Finding
from dbrunbook.data.clone import scratch_copy
from dbrunbook.data.fingerprint import (
    Fingerprint,
    FingerprintDiff,
    compare,
    compare_schema,
    fingerprint,
    schema_snapshot,
)

#: Alembic's own bookkeeping table: its row moves with every step, so it is not data to prove.
_VERSION_TABLE = "alembic_version"

STEPS = (
    "copy the target to a scratch database",
    "fingerprint schema and data of the copy",
    "upgrade the copy to head",
    "fingerprint the upgraded schema and data",
    "downgrade the copy to the revision it started at",
    "compare schema and data with the copy as it was",
    "upgrade the copy again (the migration must be re-runnable)",
    "compare that schema with the first upgrade",
    "drop the copy",
)


@dataclass
class RollbackPlan:
    """What the rollback of this change is, before anything runs."""

    current: str | None
    head: str | None
    downgrade_to: str
    downgrade_sql: str
    restore_from_backup: bool
    steps: list[str] = field(default_factory=lambda: list(STEPS))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RoundTrip:
    """What happened on the scratch copy, step by step."""

    plan: RollbackPlan
    upgrade: ApplyResult
    downgrade: ApplyResult | None = None
    reupgrade: ApplyResult | None = None
    schema_diff: list[str] = field(default_factory=list)
    data_diff: list[FingerprintDiff] = field(default_factory=list)
    reupgrade_schema_diff: list[str] = field(default_factory=list)
    before: Fingerprint | None = None
    upgraded: Fingerprint | None = None

    @property
    def completed(self) -> bool:
        """Every step ran without error."""
        return bool(self.upgrade.ok and self.downgrade and self.downgrade.ok and self.reupgrade and self.reupgrade.ok)

    @property
    def lossless(self) -> bool:
        return self.completed and not self.schema_diff and not self.data_diff and not self.reupgrade_schema_diff

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan.to_json(),
            "completed": self.completed,
            "lossless": self.lossless,
            "upgrade": asdict(self.upgrade),
            "downgrade": asdict(self.downgrade) if self.downgrade else None,
            "reupgrade": asdict(self.reupgrade) if self.reupgrade else None,
            "schema_diff": self.schema_diff,
            "data_diff": [d.to_json() for d in self.data_diff],
            "reupgrade_schema_diff": self.reupgrade_schema_diff,
            "rows_before": self.before.rows if self.before else None,
            "rows_upgraded": self.upgraded.rows if self.upgraded else None,
        }


def _downgrade_sql(target: Target, script_dir: Path, current: str | None) -> str:
    return render_sql(alembic_config(target, Path(script_dir)), target, current)[1]


def plan_rollback(target: Target, script_dir: Path, *, restore_from_backup: bool = False) -> RollbackPlan:
    """The rollback of upgrading ``target`` with the scripts in ``script_dir``; only reads the target."""
    cfg = alembic_config(target, Path(script_dir))
    engine = make_engine(target.db)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    head = scripts_head(ScriptDirectory.from_config(cfg))
    sql = _downgrade_sql(target, script_dir, current) if head != current else ""
    return RollbackPlan(current=current, head=head, downgrade_to=current or "base", downgrade_sql=sql,
                        restore_from_backup=restore_from_backup)


def _state(url: URL) -> tuple[dict[str, Any], Fingerprint]:
    engine = make_engine(url)
    try:
        return schema_snapshot(engine, exclude=[_VERSION_TABLE]), fingerprint(engine)
    finally:
        engine.dispose()


def _data_only(print_: Fingerprint) -> Fingerprint:
    tables = {k: v for k, v in print_.tables.items() if k != _VERSION_TABLE}
    return Fingerprint(dialect=print_.dialect, tables=tables, seconds=print_.seconds)


def round_trip(target: Target, script_dir: Path, *, restore_from_backup: bool = False,
               mode: str = "full", plan: RollbackPlan | None = None) -> RoundTrip:
    """Run the rollback proof on a scratch copy of ``target``; the target is only read."""
    plan = plan or plan_rollback(target, script_dir, restore_from_backup=restore_from_backup)
    cfg = alembic_config(target, Path(script_dir))
    with scratch_copy(target.db, mode=mode) as url:
        schema_before, before = _state(url)
        trip = RoundTrip(plan=plan, upgrade=apply_upgrade(cfg, url, "heads"), before=before)
        if not trip.upgrade.ok:
            return trip
        schema_upgraded, trip.upgraded = _state(url)
        trip.downgrade = apply_downgrade(cfg, url, plan.downgrade_to)
        if not trip.downgrade.ok:
            return trip
        schema_after, after = _state(url)
        trip.schema_diff = compare_schema(schema_before, schema_after)
        trip.data_diff = compare(_data_only(before), _data_only(after))
        trip.reupgrade = apply_upgrade(cfg, url, "heads")
        if trip.reupgrade.ok:
            trip.reupgrade_schema_diff = compare_schema(schema_upgraded, _state(url)[0])
    return trip


def prove(target: Target, script_dir: Path, *,
          restore_from_backup: bool = False) -> tuple[RoundTrip, RoundTrip | None]:
    """The round trip on a full copy; when the upgrade fails on the data, also on a schema-only copy."""
    trip = round_trip(target, script_dir, restore_from_backup=restore_from_backup)
    if trip.upgrade.ok:
        return trip, None
    # The data stops the upgrade; the schema half of the proof still tells whether downgrade() is right.
    return trip, round_trip(target, script_dir, mode="schema", plan=trip.plan)


def schema_only_findings(trip: RoundTrip | None) -> list[Finding]:
    """What the round trip on a schema-only copy adds when the data stopped the full one."""
    if trip is None:
        return []
    if trip.lossless:
        return [Finding("RT010", "info", "on a schema-only copy upgrade, downgrade and upgrade again succeed and "
                                         "the schema comes back; the data is proven only once the upgrade "
                                         "succeeds on it")]
    problems = [f.message for f in findings(trip) if f.severity != "info"]
    return [Finding("RT011", "warn", f"even without data the round trip fails: {p}") for p in problems]


def _failed(code: str, step: str, result: ApplyResult) -> Finding:
    return Finding(code, "block", f"the {step} fails on a copy: {result.error}", result.error_type,
                   {"statement": result.failed_statement.strip()[:2000], "error": result.error},
                   "fix the migration so that this step succeeds; no rollback is proven until it does")


def findings(trip: RoundTrip) -> list[Finding]:
    """Findings of a round trip: failed steps, schema that did not come back, lost data."""
    out: list[Finding] = []
    if not trip.upgrade.ok:
        return [_failed("RT001", "upgrade", trip.upgrade)]
    if trip.downgrade is not None and not trip.downgrade.ok:
        return [_failed("RT002", "downgrade", trip.downgrade)]
    for line in trip.schema_diff:
        out.append(Finding("RT003", "block", f"the downgrade does not restore the schema: {line}", "",
                           fix="make downgrade() recreate exactly what upgrade() changed"))
    backup = trip.plan.restore_from_backup
    for diff in trip.data_diff:
        out.append(Finding("RT004", "warn" if backup else "block", f"data does not come back: {diff.message}",
                           f"{diff.table}.{diff.column}" if diff.column else diff.table, diff.to_json(),
                           "restore these columns from the backup (stage 08 / dbrunbook backup)" if backup
                           else "keep the data in upgrade() (rename, do not drop) or plan a restore from backup"))
    if trip.reupgrade is not None and not trip.reupgrade.ok:
        out.append(_failed("RT005", "second upgrade (after the downgrade)", trip.reupgrade))
    for line in trip.reupgrade_schema_diff:
        out.append(Finding("RT006", "block", f"upgrading again gives another schema: {line}", "",
                           fix="make upgrade() depend only on the schema it starts from"))
    if trip.lossless:
        out.append(Finding("RT000", "info", "upgrade, downgrade and upgrade again succeed; schema and data "
                                            "come back exactly", "",
                           {"rows": trip.before.rows if trip.before else 0}))
    return out


def decision_criteria(trip: RoundTrip | None = None, timeout_seconds: float | None = None) -> list[dict[str, str]]:
    """The signals that trigger the rollback during the production change, and what to do then."""
    # The downgrade is the answer only where it was proven to bring everything back.
    proven = trip is not None and trip.lossless and not trip.plan.restore_from_backup
    how = ("run the downgrade SQL" if proven
           else "restore the backup (the downgrade is not proven to bring the data back)")
    limit = f"{timeout_seconds:.0f}s" if timeout_seconds else "the rehearsed time times 3"
    return [
        {"signal": "a migration statement fails", "threshold": "any error", "action": how},
        {"signal": "the migration runs too long", "threshold": f"longer than {limit}", "action": how},
        {"signal": "post-deploy checks fail", "threshold": "any blocking check in the post-deploy stage",
         "action": how},
        {"signal": "application error rate rises", "threshold": "above the agreed error budget after deploy",
         "action": how},
        {"signal": "lock waits pile up", "threshold": "sessions waiting on the migrated tables for over 30s",
         "action": "cancel the migration, then " + how},
    ]


def suggested_timeout(rehearsal: DevRehearsalEvidence | None, factor: float = 3.0, floor: float = 60.0) -> float | None:
    """A time limit for the production migration: ``factor`` times the rehearsed upgrade, at least ``floor``."""
    if rehearsal is None or not rehearsal.upgrade.ok:
        return None
    return max(floor, factor * rehearsal.upgrade.seconds)


def render_plan(plan: RollbackPlan, trip: RoundTrip | None, restore_command: str,
                criteria: list[dict[str, str]]) -> str:
    """The rollback plan as Markdown: proof, triggers, downgrade SQL and restore command."""
    if trip is None:
        proof = "not run"
    elif trip.lossless:
        proof = "upgrade, downgrade and upgrade again succeed on a copy; schema and data come back exactly"
    elif not trip.completed:
        failed = next(r for r in (trip.upgrade, trip.downgrade, trip.reupgrade) if r is not None and not r.ok)
        proof = f"NOT PROVEN: a step fails on a copy: {failed.error}"
    else:
        lines = trip.schema_diff + [d.message for d in trip.data_diff] + trip.reupgrade_schema_diff
        proof = "the round trip loses something:\n" + "\n".join(f"- {line}" for line in lines)
    rows = "\n".join(f"| {c['signal']} | {c['threshold']} | {c['action']} |" for c in criteria)
    return (f"# Rollback plan: {plan.head} back to {plan.downgrade_to}\n\n"
            f"## Proof\n\n{proof}\n\n"
            f"## When to roll back\n\n| signal | threshold | action |\n|---|---|---|\n{rows}\n\n"
            f"## Restore the backup\n\n```\n{restore_command}\n```\n\n"
            f"## Downgrade SQL\n\n```sql\n{plan.downgrade_sql.strip() or '-- nothing to undo'}\n```\n")


def summary(trip: RoundTrip) -> str:
    """One line for the stage result."""
    if trip.lossless:
        return "rollback proven: schema and data come back, and the upgrade re-applies"
    if not trip.completed:
        failed = next(r for r in (trip.upgrade, trip.downgrade, trip.reupgrade) if r is not None and not r.ok)
        return f"rollback not proven: a step fails on a copy: {failed.error}"
    lost = len(trip.data_diff) + len(trip.schema_diff) + len(trip.reupgrade_schema_diff)
    how = "planned restore from the backup" if trip.plan.restore_from_backup else "no restore planned"
    return f"rollback round trip loses {lost} thing(s) ({how})"


def steps_table(trip: RoundTrip | None, copy: str = "full") -> list[dict[str, Any]]:
    """One row per step of a round trip, for display."""
    if trip is None:
        return []
    steps = [("upgrade", trip.upgrade), ("downgrade", trip.downgrade), ("upgrade again", trip.reupgrade)]
    return [{"copy": copy, "step": name, "ok": r.ok, "seconds": round(r.seconds, 3),
             "statements": len(r.statements), "error": r.error} for name, r in steps if r is not None]


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.rollback_plan._stage import RollbackPlanOutcome as RollbackPlanOutcome  # noqa: E402
from dbrunbook.stages.rollback_plan._stage import run as run  # noqa: E402
