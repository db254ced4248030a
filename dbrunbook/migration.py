"""Stage 3: the Alembic revisions a change needs, and their SQL.

:func:`plan_migration` copies the project's Alembic scripts into the run folder, finds the
revisions pending on the target (or autogenerates one from the target models through
Alembic's API), and renders the upgrade and downgrade SQL for the target's dialect. It only
reads the target. :func:`apply_upgrade` is the doing twin: it runs the upgrade on a
database (dbrunbook only ever passes it a scratch copy) and records every statement.
"""
from __future__ import annotations

import io
import re
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import contextlib
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import URL

from .clone import scratch_copy
from .config import Target, load_metadata
from .db import dialect_name, engine_facts, make_engine
from .errors import ConfigError
from .results import Finding
from .secrets import mask_url

if TYPE_CHECKING:
    from .stage import Stage

_TEMPLATES = Path(__file__).parent / "_templates"


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


@dataclass
class ApplyResult:
    """The outcome of running migrations on a database."""

    ok: bool
    seconds: float
    statements: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    error_type: str = ""
    failed_statement: str = ""


def _ini_escape(value: str) -> str:
    return value.replace("%", "%%")


def _init_scripts(dest: Path, models: str) -> None:
    """A fresh Alembic environment, for projects that do not have one yet."""
    (dest / "versions").mkdir(parents=True)
    hook = ""
    if models:
        hook = ("from dbrunbook.config import load_metadata\n"
                f"target_metadata = load_metadata({models!r})\n")
    (dest / "env.py").write_text((_TEMPLATES / "env.py").read_text().format(target_metadata=hook))
    shutil.copy(_TEMPLATES / "script.py.mako", dest / "script.py.mako")


def alembic_config(target: Target, script_dir: Path) -> Config:
    """An in-memory Alembic config over a copy of the project's scripts at ``script_dir``."""
    if target.alembic_config:
        ini = Path(target.alembic_config)
        if not ini.exists():
            raise ConfigError(f"Alembic config {ini} not found")
        cfg = Config(str(ini))
        location = cfg.get_main_option("script_location")
        if not location:
            raise ConfigError(f"{ini} has no script_location")
        source = Path(location.replace("%(here)s", str(ini.parent)))
        source = source if source.is_absolute() else ini.parent / source
        if not (source / "env.py").exists():
            raise ConfigError(f"Alembic directory {source} not found (no env.py)")
        if not script_dir.exists():
            shutil.copytree(source, script_dir, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        cfg = Config()
        if not script_dir.exists():
            _init_scripts(script_dir, target.models)
    cfg.set_main_option("script_location", str(script_dir))
    cfg.set_main_option("version_locations", str(script_dir / "versions"))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("prepend_sys_path", str(target.project_dir))
    cfg.set_main_option("sqlalchemy.url", _ini_escape(target.db))
    return cfg


def revision_paths(script_dir: Path, revisions: list[str]) -> list[Path]:
    """The files of ``revisions`` in the Alembic scripts at ``script_dir``."""
    scripts = ScriptDirectory(str(script_dir))
    found = (scripts.get_revision(r) for r in revisions)
    return [Path(s.path) for s in found if s is not None]


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (None when Alembic never ran on it)."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise ConfigError(f"the database has several Alembic heads: {', '.join(heads)}")
    return heads[0] if heads else None


def _autogenerate(engine: sa.Engine, target: Target, scripts: ScriptDirectory, message: str) -> Path | None:
    metadata = load_metadata(target.models, target.project_dir)
    batch = engine_facts(engine).render_as_batch
    with engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True, "target_metadata": metadata,
                                                    "render_as_batch": batch})
        script = produce_migrations(mc, metadata)
        if script.upgrade_ops is None or script.downgrade_ops is None or script.upgrade_ops.is_empty():
            return None
        up = render_python_code(script.upgrade_ops, render_as_batch=batch, migration_context=mc)
        down = render_python_code(script.downgrade_ops, render_as_batch=batch, migration_context=mc)
    # render_python_code keeps the imports it needs to itself; dialect types are the usual ones.
    imports = {f"from sqlalchemy.dialects import {name}" for name in ("mysql", "postgresql", "sqlite")
               if re.search(rf"\b{name}\.", up + down)}
    with contextlib.redirect_stdout(io.StringIO()):  # Alembic prints "Generating ..." itself
        rev = scripts.generate_revision(uuid.uuid4().hex[:12], message, head="head",
                                        upgrades=up.strip(), downgrades=down.strip(),
                                        imports="\n".join(sorted(imports)))
    return Path(rev.path) if rev else None


def _pending(scripts: ScriptDirectory, current: str | None) -> list[str]:
    revs = list(scripts.iterate_revisions("heads", current or "base"))
    return [r.revision for r in reversed(revs)]


def plan_migration(target: Target, out_dir: Path, *, message: str = "dbrunbook update",
                   write_to_project: bool = False) -> MigrationPlan:
    """Find or generate the revisions to apply and render their SQL; the target is only read."""
    out_dir.mkdir(parents=True, exist_ok=True)
    script_dir = out_dir / "alembic"
    cfg = alembic_config(target, script_dir)
    scripts = ScriptDirectory.from_config(cfg)
    engine = make_engine(target.db)
    try:
        current = current_revision(engine)
        heads = scripts.get_heads()
        if len(heads) > 1:
            raise ConfigError(f"the Alembic scripts have several heads: {', '.join(heads)}")
        pending = _pending(scripts, current) if heads and current != heads[0] else []
        generated = None
        if not pending and target.models:
            generated = _autogenerate(engine, target, scripts, message)
            scripts = ScriptDirectory.from_config(cfg)
            pending = _pending(scripts, current)
        plan = MigrationPlan(script_dir=script_dir, current=current, head=scripts.get_current_head(),
                             revisions=pending, generated=generated)
        if plan.empty:
            return plan
        plan.upgrade_sql, plan.downgrade_sql, plan.sql_source = render_sql(cfg, target, current)
    except CommandError as exc:
        raise ConfigError(f"Alembic: {exc}") from None
    finally:
        engine.dispose()
    if write_to_project and generated and target.alembic_config:
        project_versions = Path(Config(target.alembic_config).get_main_option("script_location") or "")
        project_versions = Path(target.alembic_config).parent / project_versions / "versions"
        plan.written_to_project = project_versions / generated.name
        shutil.copy(generated, plan.written_to_project)
    (out_dir / "upgrade.sql").write_text(plan.upgrade_sql)
    (out_dir / "downgrade.sql").write_text(plan.downgrade_sql)
    return plan


def render_sql(cfg: Config, target: Target, current: str | None) -> tuple[str, str, str]:
    """Upgrade and downgrade SQL from ``current`` to head, and how it was obtained.

    Offline (Alembic's ``--sql``) where the dialect allows it, else captured while applying the
    revisions to a schema-only copy of the target.
    """
    engine = make_engine(target.db)
    try:
        offline = engine_facts(engine).offline_sql
    finally:
        engine.dispose()
    if offline:
        return (*_render_offline(cfg, current), "offline")
    return (*_render_on_copy(cfg, target, current), "captured on a schema-only copy")


def _render_offline(cfg: Config, current: str | None) -> tuple[str, str]:
    up, down = io.StringIO(), io.StringIO()
    cfg.output_buffer = up
    command.upgrade(cfg, f"{current}:head" if current else "head", sql=True)
    cfg.output_buffer = down
    command.downgrade(cfg, f"head:{current or 'base'}", sql=True)
    cfg.output_buffer = None
    return up.getvalue(), down.getvalue()


def _render_on_copy(cfg: Config, target: Target, current: str | None) -> tuple[str, str]:
    with scratch_copy(target.db, mode="schema") as url:
        up = apply_upgrade(cfg, url, "head")
        if not up.ok:
            return f"-- upgrade failed on an empty copy: {up.error}\n", ""
        down = apply_downgrade(cfg, url, current or "base")
    return _as_sql(up.statements), _as_sql(down.statements)


def _as_sql(statements: list[dict[str, Any]]) -> str:
    return "".join(s["sql"].strip() + ";\n\n" for s in statements)


@contextlib.contextmanager
def _capture(engine: sa.Engine) -> Iterator[list[dict[str, Any]]]:
    statements: list[dict[str, Any]] = []

    def before(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        conn.info["dbrunbook_t0"] = time.perf_counter()

    def after(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        elapsed = time.perf_counter() - conn.info.pop("dbrunbook_t0", time.perf_counter())
        if not sql.lstrip().upper().startswith(("PRAGMA", "SELECT", "SHOW")):
            statements.append({"sql": sql, "seconds": round(elapsed, 6)})

    sa.event.listen(engine, "before_cursor_execute", before)
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)
        sa.event.remove(engine, "after_cursor_execute", after)


def _run_command(cfg: Config, url: URL | str, fn: Any, revision: str) -> ApplyResult:
    engine = make_engine(url)
    started = time.perf_counter()
    failed: dict[str, str] = {}

    def on_error(context: Any) -> None:
        failed["sql"] = str(context.statement or "")

    sa.event.listen(engine, "handle_error", on_error)
    try:
        with _capture(engine) as statements, engine.connect() as conn:
            cfg.attributes["connection"] = conn
            # For env.py files that build their own engine: the real URL, in memory only.
            real = engine.url.render_as_string(hide_password=False)
            cfg.set_main_option("sqlalchemy.url", _ini_escape(real))
            try:
                fn(cfg, revision)
                conn.commit()
            except Exception as exc:  # the database's own error is the evidence we record
                conn.rollback()
                orig = getattr(exc, "orig", None) or exc
                return ApplyResult(ok=False, seconds=time.perf_counter() - started, statements=statements,
                                   error=str(orig).strip().splitlines()[0] if str(orig).strip() else repr(orig),
                                   error_type=type(orig).__name__, failed_statement=failed.get("sql", ""))
            return ApplyResult(ok=True, seconds=time.perf_counter() - started, statements=statements)
    finally:
        cfg.attributes.pop("connection", None)
        cfg.set_main_option("sqlalchemy.url", _ini_escape(mask_url(url)))
        engine.dispose()


def apply_upgrade(cfg: Config, url: URL | str, revision: str = "head") -> ApplyResult:
    """Upgrade the database at ``url`` to ``revision``, recording statements and the error if any."""
    return _run_command(cfg, url, command.upgrade, revision)


def apply_downgrade(cfg: Config, url: URL | str, revision: str) -> ApplyResult:
    """Downgrade the database at ``url`` to ``revision``, recording statements and the error if any."""
    return _run_command(cfg, url, command.downgrade, revision)


def plan_summary(plan: MigrationPlan, run_dir: Path) -> dict[str, Any]:
    """The plan as JSON for the stage's sidecar; paths relative to the run folder."""
    def rel(path: Path | None) -> str | None:
        return str(path.relative_to(run_dir)) if path and path.is_relative_to(run_dir) else (str(path) if path else None)

    return {"current": plan.current, "head": plan.head, "revisions": plan.revisions,
            "script_dir": rel(plan.script_dir), "generated": rel(plan.generated),
            "written_to_project": str(plan.written_to_project) if plan.written_to_project else None,
            "sql_source": plan.sql_source}


def findings(plan: MigrationPlan) -> list[Finding]:
    """What stage 3 reports before the lint rules look at the SQL."""
    if plan.empty:
        return [Finding("MG000", "info", "nothing to migrate: the database is at head and matches the models")]
    out = [Finding("MG001", "info", f"{len(plan.revisions)} revision(s) to apply: {', '.join(plan.revisions)}")]
    if not plan.downgrade_sql.strip():
        out.append(Finding("MG002", "warn", "the migration has no downgrade SQL", plan.head or "",
                           fix="write downgrade() so the change can be rolled back"))
    if plan.upgrade_sql.startswith("-- upgrade failed"):
        out.append(Finding("MG003", "block", plan.upgrade_sql.strip("- \n"), plan.head or ""))
    return out


def scripts_for(stage: Stage, migration_dir: str = "") -> Path:
    """The Alembic scripts a later stage applies: given, from stage 03 of the run, or planned anew."""
    if migration_dir:
        return Path(migration_dir)
    earlier = stage.run_dir / "03-migration" / "alembic"
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
    from . import locks, reversibility
    from .lint import load_config, lint_migration, parse_sql
    from .lint.pysilence import silence_revisions
    from .lint.source import known_columns

    if plan.empty:
        return Review([], [], [], [], None)
    engine = make_engine(target.db)
    dialect, captured = dialect_name(engine), not engine_facts(engine).offline_sql
    engine.dispose()
    migration = parse_sql(plan.upgrade_sql, dialect, "upgrade.sql", in_transaction=captured)
    migration.known_columns = {**migration.known_columns, **known_columns(target)}
    raised: list[Finding] = []
    try:
        up_sql, down_sql = reversibility.operations_sql(plan.script_dir, plan.revisions)
    except Exception as exc:  # the revision's own code raised: that is the finding, not a stage error
        up_sql = down_sql = ""
        raised.append(Finding("MG004", "block", f"a revision raised while its operations were read: "
                                                f"{type(exc).__name__}: {exc}", plan.head or ""))
    ops_up, ops_down = parse_sql(up_sql, "postgresql", "operations"), parse_sql(down_sql, "postgresql", "operations")
    raised += silence_revisions(plan.script_dir, plan.revisions, migration, ops_up)
    report = lint_migration(migration, load_config(target.project_dir), rollback=(ops_up, ops_down))
    report.findings[:0] = raised
    sizes = locks.table_sizes(target.db)
    throughput = locks.measure_throughput(target.db) if measure else None
    return Review(report.findings, report.silenced, locks.analyse(migration, sizes, throughput),
                  reversibility.check(ops_up, ops_down), throughput, sizes)
