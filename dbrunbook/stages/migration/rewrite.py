"""Safe rewrites: turn an unsafe PostgreSQL revision into a safe multi-step one.

:func:`plan_rewrite` reads the revision's own Alembic operations (rendered offline for
PostgreSQL), and replaces each unsafe statement by its safe sequence:

* lock_timeout and statement_timeout set at the top;
* CREATE/DROP INDEX → CONCURRENTLY IF [NOT] EXISTS, in an autocommit block;
* FOREIGN KEY / CHECK → NOT VALID, then VALIDATE CONSTRAINT;
* UNIQUE / PRIMARY KEY → a concurrent unique index, then the constraint USING INDEX;
* SET NOT NULL → CHECK (col IS NOT NULL) NOT VALID → VALIDATE → SET NOT NULL → drop the check;
* ADD COLUMN with a volatile default → add it bare, SET DEFAULT, backfill in committed batches,
  then NOT NULL as above;
* DROP COLUMN → moved to a second "contract" revision, applied after code stops using it;
* ALTER COLUMN ... TYPE that rewrites the table → a new column kept in step by a trigger,
  backfilled in keyset batches, its indexes and constraints built concurrently, then swapped
  in one short step (:mod:`dbrunbook.stages.migration._rewrite_type`; needs a server to read the old column).

:func:`write_rewrite` is the writing twin. Other dialects get advice, not a rewrite.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import sqlglot
from sqlglot import exp

from dbrunbook import dialects
from dbrunbook.core.project import copied_scripts
from dbrunbook.core.results import Finding
from dbrunbook.dialects import PostgreSQL
from dbrunbook.errors import ConfigError, UsageError
from dbrunbook.lint.runner import LintConfig, lint_migration
from dbrunbook.sql.model import Action, Statement, parse_sql
from dbrunbook.stages.migration._steps import BATCH_ROWS, TIMEOUTS, RewritePlan, Step, _not_null_steps, _q, _validate

if TYPE_CHECKING:
    from alembic.config import Config

    from dbrunbook.core.config import Target

_SILENCE_DROP = "-- dbrunbook-ignore: DS002, RB003 contract step: released code no longer uses the column\n"

_HEADER = '''"""{message}

Safe rewrite of revision {original} by dbrunbook: every step holds its lock briefly or takes
one that lets writes go on.{contract_note}

Revision ID: {revision}
Revises: {down}
"""
from alembic import op

revision = {revision!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


def _pg(node: exp.Expression) -> str:
    return node.sql("postgres")


def _backfill(table: str, column: str, value: str) -> Step:
    t, c = _q(table), _q(column)
    return Step(f"DO $$ DECLARE n bigint; BEGIN LOOP UPDATE {t} SET {c} = {value} WHERE ctid IN "
                f"(SELECT ctid FROM {t} WHERE {c} IS NULL LIMIT {BATCH_ROWS}); GET DIAGNOSTICS n = ROW_COUNT; "
                f"EXIT WHEN n = 0; COMMIT; END LOOP; END $$", autocommit=True)


def _safe_steps(stmt: Statement, action: Action, plan: RewritePlan) -> list[Step] | None:
    """The safe sequence for one action; None keeps the statement as it is."""
    node: exp.Expression = sqlglot.parse_one(stmt.text, read="postgres")  # type: ignore[assignment]
    kind, d = action.kind, action.details
    if kind in ("create_index", "drop_index") and not d.get("concurrently"):
        node.set("concurrently", True)
        node.set("exists", True)
        return [Step(_pg(node), autocommit=True)]
    if kind == "add_constraint" and d.get("type") in ("foreign_key", "check") and not d.get("not_valid"):
        node.set("not_valid", True)
        return [Step(_pg(node)), _validate(action.table, action.name)]
    if kind == "add_constraint" and d.get("type") in ("unique", "primary_key") and not d.get("using_index"):
        cols = ", ".join(_q(c) for c in dict.fromkeys(d.get("columns", [])) if c != action.name)
        ctype = "UNIQUE" if d["type"] == "unique" else "PRIMARY KEY"
        return [Step(f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {_q(action.name)} ON {_q(action.table)} ({cols})",
                     autocommit=True),
                Step(f"ALTER TABLE {_q(action.table)} ADD CONSTRAINT {_q(action.name)} {ctype} "
                     f"USING INDEX {_q(action.name)}")]
    if kind == "set_not_null":
        return _not_null_steps(action.table, action.column)
    if kind == "add_column" and d.get("volatile_default") and d.get("default") is None:
        plan.advice.append(f"{action.object}: a serial column rewrites the table; add a bigint column, "
                           "create the sequence, set the default, and backfill in batches")
    if kind == "add_column" and d.get("volatile_default") and d.get("default") is not None:
        t, c = _q(action.table), _q(action.column)
        steps = [Step(f"ALTER TABLE {t} ADD COLUMN {c} {d['type']}"),
                 Step(f"ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {d['default']}"),
                 _backfill(action.table, action.column, d["default"])]
        return steps + (_not_null_steps(action.table, action.column) if d.get("not_null") else [])
    if kind == "drop_column":
        plan.contract.append(Step(_SILENCE_DROP + stmt.text))
        return []
    if kind == "alter_type":
        from dbrunbook.stages.migration._rewrite_type import type_change_steps

        return type_change_steps(action, plan)
    if kind == "add_column" and d.get("not_null") and d.get("default") is None:
        plan.advice.append(f"{action.object}: NOT NULL without default cannot be made safe without a value; "
                           "add a default or add it nullable and backfill")
    return None


def plan_rewrite(script_dir: Path, revision: str, url: str | None = None, cfg: Config | None = None) -> RewritePlan:
    """The safe rewrite of ``revision`` from the scripts at ``script_dir`` (nothing is written).

    ``url`` names a PostgreSQL server: a type change is rewritten only when the old column can be
    read there, on a scratch database migrated to the revision's parent (``cfg``, or a bare
    config over ``script_dir``); the target itself is never touched.
    """
    from alembic.config import Config

    from dbrunbook.lint.reversibility import operations_sql
    from dbrunbook.stages.migration._rewrite_type import parent_columns

    script = copied_scripts(script_dir).get_revision(revision)
    if script is None:
        raise ConfigError(f"no Alembic revision {revision} in {script_dir}")
    down = script.down_revision
    if isinstance(down, (tuple, list)):
        raise UsageError(f"revision {revision} is a merge point; it cannot be rewritten")
    up_sql, down_sql = operations_sql(script_dir, [script.revision])
    plan = RewritePlan(script.revision, down)
    plan.expand = [Step(f"SET {name} = '{value}'") for name, value in TIMEOUTS.items()]
    upgrade = parse_sql(up_sql, PostgreSQL.name)
    retyped = {(a.table, a.column) for _, a in upgrade.actions("alter_type")}
    if url and retyped:
        if cfg is None:
            cfg = Config()
            cfg.set_main_option("script_location", str(script_dir))
        try:
            plan.columns, plan.columns_read = parent_columns(cfg, url, down, retyped), True
        except ConfigError as exc:  # the type changes keep their plain ALTER, with this as the reason
            plan.advice.append(f"type changes not rewritten: {exc}")
    for stmt in upgrade.statements:
        steps: list[Step] = []
        for action in stmt.actions:
            safe = _safe_steps(stmt, action, plan)
            if safe is None:
                steps = [Step(stmt.text)]
                break
            steps += safe
        plan.expand += steps
    dropped = {(a.table, a.column) for _, a in upgrade.actions("drop_column")}
    for stmt in parse_sql(down_sql, PostgreSQL.name).statements:
        restores = any(a.kind == "add_column" and (a.table, a.column) in dropped for a in stmt.actions)
        (plan.contract_down if restores else plan.expand_down).append(stmt.text)
    return plan


def _body(steps: list[Step]) -> str:
    lines: list[str] = []
    in_block = False
    for step in steps:
        if step.autocommit and not in_block:
            lines.append("    with op.get_context().autocommit_block():")
        in_block = step.autocommit
        indent = "        " if in_block else "    "
        lines.append(f"{indent}op.execute({step.sql!r})")
    return "\n".join(lines) or "    pass"


def render(plan: RewritePlan, contract_id: str | None = None) -> list[tuple[str, str]]:
    """(revision id, Python source) of the expand revision and, if any, the contract revision."""
    contract_id = contract_id or uuid.uuid4().hex[:12]
    note = (f"\n\nColumn drops are in revision {contract_id}: deploy code that no longer uses them first."
            if plan.contract else "")
    down_steps = [Step(sql) for sql in plan.expand_down]
    files = [(plan.original, _HEADER.format(message=f"safe rewrite of {plan.original}", original=plan.original,
                                            contract_note=note, revision=plan.original, down=plan.down_revision,
                                            upgrade=_body(plan.expand), downgrade=_body(down_steps)))]
    if plan.contract:
        steps = [Step(f"SET {name} = '{value}'") for name, value in TIMEOUTS.items()] + plan.contract
        files.append((contract_id, _HEADER.format(
            message=f"contract step of {plan.original}: drop columns code no longer uses",
            original=plan.original, contract_note="", revision=contract_id, down=plan.original,
            upgrade=_body(steps), downgrade=_body([Step(sql) for sql in plan.contract_down]))))
    return files


def write_rewrite(plan: RewritePlan, out_dir: Path) -> list[Path]:
    """Write the rewritten revision(s) into ``out_dir``; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for number, (rev, source) in enumerate(render(plan), start=1):
        path = out_dir / f"{plan.original}_safe_{number}_{rev}.py"
        path.write_text(source)
        written.append(path)
    return written


def lint_plan(plan: RewritePlan, config: LintConfig | None = None) -> list[Finding]:
    """Lint findings of the rewritten upgrade SQL as it will run (must be none at warn or above)."""
    steps = plan.expand + plan.contract
    sql, in_tx = [], True
    for step in steps:
        if step.autocommit and in_tx:
            sql.append("COMMIT")
        elif not step.autocommit and not in_tx:
            sql.append("BEGIN")
        in_tx = not step.autocommit
        sql.append(step.sql)
    text = "BEGIN;\n" + ";\n".join(sql) + ";\nCOMMIT;\n"
    return lint_migration(parse_sql(text, PostgreSQL.name, "rewrite"), config).findings


@dataclass
class RewriteResult:
    """What ``dbrunbook rewrite`` did: files written, remaining lint findings, advice."""

    dialect: str
    files: list[Path]
    findings: list[Finding]
    advice: list[str]


def rewrite_revision(target: Target, revision: str, out_dir: Path) -> RewriteResult:
    """Write the safe rewrite of ``revision`` into ``out_dir`` (PostgreSQL); advice only elsewhere."""
    import tempfile

    from dbrunbook.alembic_ops.migration import alembic_config
    from dbrunbook.core.db import dialect_name, make_engine
    from dbrunbook.lint.source import lint_revisions

    engine = make_engine(target.db)
    dialect = dialect_name(engine)
    engine.dispose()
    if not rewrites(dialect):
        report = lint_revisions(target, revision)
        advice = [f"{f.code} {f.object}: {f.fix}" for f in report.findings if f.severity != "info"]
        return RewriteResult(dialect, [], report.findings, advice or ["nothing unsafe found"])
    with tempfile.TemporaryDirectory(prefix="dbrunbook-rewrite-") as tmp:
        scripts = Path(tmp) / "alembic"
        cfg = alembic_config(target, scripts)  # copies the project's scripts there
        plan = plan_rewrite(scripts, revision, target.db, cfg)
    return RewriteResult(dialect, write_rewrite(plan, out_dir), lint_plan(plan), plan.advice)


def rewrites(dialect: str) -> bool:
    """Whether dbrunbook writes safe rewrites for ``dialect`` (PostgreSQL's); the others get the lint advice."""
    found = dialects.get(dialect)
    return found is not None and found.safe_rewrites


def rewrite_planned(script_dir: Path, revisions: list[str], dialect: str, out_dir: Path,
                    findings: list[Finding], url: str | None = None) -> RewriteResult:
    """Stage 3's rewrite: safe files for each planned PostgreSQL revision, else the findings' advice.

    With ``url`` (the target), type changes are rewritten too (see :func:`plan_rewrite`).
    """
    advice = [f"{f.code} {f.object}: {f.fix}" for f in findings if f.severity != "info"]
    if not rewrites(dialect):
        return RewriteResult(dialect, [], [], advice)
    files: list[Path] = []
    remaining: list[Finding] = []
    advice = []
    for revision in revisions:
        try:
            plan = plan_rewrite(script_dir, revision, url)
        except Exception as exc:  # the revision's own code (e.g. it inspects the live database): no rewrite for it
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            advice.append(f"{revision}: not rewritten, its operations cannot be read without a database "
                          f"({type(exc).__name__}: {why}); review it by hand")
            continue
        files += write_rewrite(plan, out_dir)
        remaining += lint_plan(plan)
        advice += plan.advice
    return RewriteResult(dialect, files, remaining, advice)
