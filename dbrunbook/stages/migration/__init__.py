"""Stage 03: the Alembic revisions a change needs, their SQL, and a review of it (lint, locks, rollback).

:func:`plan_migration` copies the project's Alembic scripts into the run folder, finds the
revisions pending on the target (or autogenerates one from the target models through
Alembic's API), and renders the upgrade and downgrade SQL for the target's dialect. It only
reads the target. :func:`review_migration` lints that SQL, estimates its locks and pairs it with
the downgrade. The Alembic adapter underneath (:mod:`dbrunbook.alembic_ops.migration`) is
re-exported here, since every later stage applies the scripts this stage planned.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from dbrunbook.alembic_ops._shapes import naming_findings, several_heads
from dbrunbook.alembic_ops.migration import (
    FENCED,
    ApplyResult,
    alembic_config,
    apply_downgrade,
    apply_upgrade,
    autogenerate,
    current_revision,
    pending_revisions,
    render_sql,
    revision_paths,
    run_alembic,
    scripts_head,
)
from dbrunbook.core import contract, fence
from dbrunbook.core.config import Target, load_isolation_level
from dbrunbook.core.db import dialect_name, make_engine
from dbrunbook.core.project import project_path
from dbrunbook.core.results import Finding
from dbrunbook.dialects import OPERATIONS_DIALECT
from dbrunbook.errors import ConfigError

if TYPE_CHECKING:
    from dbrunbook.core.stage import Stage

__all__ = [
    "ApplyResult", "MigrationOutcome", "MigrationPlan", "Review", "alembic_config", "apply_downgrade", "apply_upgrade",
    "current_revision", "findings", "pending_revisions", "plan_migration", "plan_summary", "planned", "render_sql",
    "review_migration", "revision_paths", "run", "run_alembic", "scripts_for",
]


@dataclass
class MigrationPlan:
    """What stage 3 found: the scripts to run, and the SQL they produce."""

    script_dir: Path
    current: str | None
    head: str | None
    revisions: list[str]
    generated: Path | None = None
    upgrade_sql: str = ""
    downgrade_sql: str = ""
    sql_source: str = "offline"
    written_to_project: Path | None = None

    @property
    def empty(self) -> bool:
        return not self.revisions


def plan_migration(target: Target, out_dir: Path, *, message: str = "dbrunbook update",
                   write_to_project: bool = False) -> MigrationPlan:
    """Find or generate the revisions to apply and render their SQL; the target is only read."""
    with fence.guarding(target.db):
        return _plan_migration(target, out_dir, message, write_to_project)


def _plan_migration(target: Target, out_dir: Path, message: str, write_to_project: bool) -> MigrationPlan:
    out_dir.mkdir(parents=True, exist_ok=True)
    script_dir = out_dir / "alembic"
    cfg = alembic_config(target, script_dir)
    scripts = ScriptDirectory.from_config(cfg)
    engine = make_engine(target.db)
    try:
        current = current_revision(engine)
        # Several heads (branch labels, not merged) are upgraded together, as `alembic upgrade heads` does.
        pending = pending_revisions(scripts, current) if scripts.get_heads() else []
        generated = None
        if not pending and target.models:
            generated = autogenerate(engine, target, scripts, message)
            scripts = ScriptDirectory.from_config(cfg)
            pending = pending_revisions(scripts, current)
        # One head is its id; several are joined by commas, sorted as current_revision() joins them.
        head = scripts_head(scripts)
        plan = MigrationPlan(script_dir=script_dir, current=current, head=head, revisions=pending,
                             generated=generated)
        if plan.empty:
            return plan
        plan.upgrade_sql, plan.downgrade_sql, plan.sql_source = render_sql(cfg, target, current)
    except (CommandError, RevisionError) as exc:  # RevisionError: a database at a revision the scripts lack
        raise ConfigError(f"Alembic: {exc}") from None
    finally:
        engine.dispose()
    if write_to_project and generated and target.alembic_config:
        plan.written_to_project = project_path(script_dir, generated)
        if plan.written_to_project is not None:
            plan.written_to_project.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(generated, plan.written_to_project)
    (out_dir / "upgrade.sql").write_text(plan.upgrade_sql)
    (out_dir / "downgrade.sql").write_text(plan.downgrade_sql)
    return plan


def plan_summary(plan: MigrationPlan, run_dir: Path) -> dict[str, Any]:
    """The plan as stage 03's evidence records it, as JSON (:func:`planned` gives it typed)."""
    return planned(plan, run_dir).to_json()


#: How the upgrade SQL names the revision that failed on the schema-only copy (alembic_ops.migration).
_FAILED_AT = re.compile(r"-- upgrade failed on an empty copy at revision (\S+):")


def findings(plan: MigrationPlan) -> list[Finding]:
    """What stage 3 reports before the lint rules look at the SQL."""
    if plan.empty:
        return [Finding("MG000", "info", "nothing to migrate: the database is at head, and no revision is pending or "
                                         "generated from the models"),
                *several_heads(plan.head, plan.current, plan.script_dir)]
    out = [Finding("MG001", "info", f"{len(plan.revisions)} revision(s) to apply: {', '.join(plan.revisions)}"),
           *several_heads(plan.head, plan.current, plan.script_dir)]
    upgrade_failed = plan.upgrade_sql.startswith("-- upgrade failed")
    if not plan.downgrade_sql.strip() and upgrade_failed:
        # Not rendered rather than missing: the downgrade never ran (the upgrade before it failed).
        out.append(Finding("MG002", "warn", "the downgrade SQL is unknown: the upgrade fails first, so the "
                           "downgrade was not rendered", plan.head or "",
                           fix="make the upgrade run (MG003/MG007), then the downgrade is rendered and checked"))
    elif not plan.downgrade_sql.strip():
        out.append(Finding("MG002", "warn", "the migration has no downgrade SQL", plan.head or "",
                           fix="write downgrade() so the change can be rolled back"))
    if upgrade_failed and FENCED in plan.upgrade_sql:
        out.append(Finding("MG007", "block", plan.upgrade_sql.strip("- \n"), "env.py",
                           fix="in env.py: connection = config.attributes.get('connection'); if it is set, "
                               "context.configure(connection=connection, ...) instead of making an engine "
                               "(see the README, 'Your env.py')"))
    elif upgrade_failed:
        # The revision whose upgrade failed, as the copy's run recorded it; the head only when it did not say.
        found = _FAILED_AT.match(plan.upgrade_sql)
        failed = found.group(1) if found else ""
        out.append(Finding("MG003", "block", plan.upgrade_sql.strip("- \n"), failed or plan.head or "",
                           {"revision": failed} if failed else {}))
    elif plan.downgrade_sql.startswith("-- downgrade failed"):
        out.append(Finding("MG006", "warn", plan.downgrade_sql.strip("- \n"), plan.head or "",
                           fix="make downgrade() run on an empty copy of the upgraded schema"))
    if plan.sql_source.startswith("captured") and "offline rendering failed" in plan.sql_source:
        several = "," in (plan.head or "") or "," in (plan.current or "")
        why = ("Alembic renders no SQL offline from or to several heads" if several else
               "a revision that inspects the database (op.get_bind()) cannot be rendered offline")
        out.append(Finding("MG005", "info", f"SQL {plan.sql_source}", plan.head or "",
                           fix=f"{why}; the SQL shown is what it ran on a schema-only copy"))
    out += naming_findings(plan.generated, plan.script_dir, plan.revisions)
    return out


def scripts_for(stage: Stage, migration_dir: str = "") -> Path:
    """The Alembic scripts a later stage applies: given, from stage 03 of the run, or planned anew."""
    if migration_dir:
        return Path(migration_dir)
    earlier = contract.MIGRATION.dir(stage.run_dir) / "alembic"
    if earlier.exists():
        return earlier
    return plan_migration(stage.target, stage.dir).script_dir


@dataclass
class Review:
    """Stage 3's review of the planned SQL: lint findings, locks, and reversibility."""

    findings: list[Finding]
    silenced: list[Finding]
    locks: list[Any]
    reversals: list[Any]
    throughput: float | None
    sizes: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The review as JSON for the stage's sidecar."""
        return {"lint": {"findings": len(self.findings), "silenced": [f.__dict__ for f in self.silenced]},
                "locks": [row.to_json() for row in self.locks],
                "reversibility": [r.to_row() for r in self.reversals],
                "throughput_bytes_per_second": self.throughput,
                "max_blocked_seconds": max((row.blocked_seconds for row in self.locks), default=0.0)}


def review_migration(plan: MigrationPlan, target: Target, *, measure: bool = True) -> Review:
    """Lint the plan's upgrade SQL, estimate its locks, and check its rollback; the target is only read."""
    from dbrunbook.lint import lint_migration, load_config, locks, parse_sql, reversibility
    from dbrunbook.lint.pysilence import silence_revisions
    from dbrunbook.lint.source import known_columns

    if plan.empty:
        return Review([], [], [], [], None)
    engine = make_engine(target.db)
    try:
        with engine.connect():  # the server's version: rules that depend on it (--pg-version in lint) read it
            version = (engine.dialect.server_version_info or (None,))[0]
        dialect, captured = dialect_name(engine), plan.sql_source != "offline"
    finally:
        engine.dispose()
    # A project whose runner migrates on an AUTOCOMMIT session: the BEGIN Alembic renders opens nothing there.
    autocommit = load_isolation_level(target.project_dir) == "AUTOCOMMIT"
    migration = parse_sql(plan.upgrade_sql, dialect, "upgrade.sql", in_transaction=captured and not autocommit,
                          autocommit=autocommit)
    migration.known_columns = {**migration.known_columns, **known_columns(target)}
    # Sizes before the rules run: lock findings then say how big the table is, or that it is empty.
    sizes = locks.table_sizes(target.db)
    migration.sizes, migration.server_version = dict(sizes), version if isinstance(version, int) else None
    raised: list[Finding] = []
    unreadable: dict[str, str] = {}
    up_sql, down_sql = reversibility.operations_sql(plan.script_dir, plan.revisions, unreadable=unreadable)
    for revision, why in unreadable.items():
        # Usually a revision that inspects the live database; its SQL above was captured by running it.
        raised.append(Finding("MG004", "info", f"revision {revision}'s operations cannot be read without a "
                                               f"database ({why}): its rollback pairing was not checked",
                              revision, fix="review its downgrade() by hand; the round trip (--rollback-plan) "
                                            "runs it on a copy"))
    ops_up = parse_sql(up_sql, OPERATIONS_DIALECT, "operations")
    ops_down = parse_sql(down_sql, OPERATIONS_DIALECT, "operations")
    raised += silence_revisions(plan.script_dir, plan.revisions, migration, ops_up)
    report = lint_migration(migration, load_config(target.project_dir), rollback=(ops_up, ops_down))
    report.findings[:0] = raised
    throughput = locks.measure_throughput(target.db) if measure else None
    return Review(report.findings, report.silenced, locks.analyse(migration, sizes, throughput),
                  reversibility.check(ops_up, ops_down), throughput, sizes)


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.migration._stage import MigrationOutcome, planned, run  # noqa: E402
