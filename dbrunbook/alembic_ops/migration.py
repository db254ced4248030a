"""Alembic, driven from outside: revisions pending on a database, their SQL, and running them.

Every Alembic command (and with it the project's env.py) runs in a child process
(:mod:`dbrunbook.alembic_ops._child`) that can reach only the database it was given.
:func:`render_sql` is the planning twin of :func:`apply_upgrade` / :func:`apply_downgrade`: it
returns the SQL an upgrade would run without changing the database it reads. Stage 03
(:mod:`dbrunbook.stages.migration`) builds its plan from these.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from dbrunbook.alembic_ops._shapes import mark, name_unnamed
from dbrunbook.core.config import Target, load_metadata, read_pyproject
from dbrunbook.core.db import engine_facts, make_engine
from dbrunbook.core.evidence import AlembicRun
from dbrunbook.core.fence import sandbox_environment
from dbrunbook.core.project import alembic_config as alembic_config
from dbrunbook.core.project import copied_scripts
from dbrunbook.core.secrets import kernel_environment, mask_url, parse_url, resolve_url, secret_values
from dbrunbook.data.clone import scratch_copy
from dbrunbook.dialects import sqlalchemy_modules
from dbrunbook.errors import ConfigError

_TEMPLATES = Path(__file__).resolve().parents[1] / "_templates"


#: The outcome of running migrations on a database: the record stages keep of it, as they keep it.
ApplyResult = AlembicRun


def revision_paths(script_dir: Path, revisions: list[str]) -> list[Path]:
    """The files of ``revisions`` in the Alembic scripts at ``script_dir`` (a copy, every version location)."""
    scripts = copied_scripts(script_dir)
    found = (scripts.get_revision(r) for r in revisions)
    return [Path(s.path) for s in found if s is not None]


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at (None when Alembic never ran on it).

    A database at several heads (branches applied and not merged) is at all of them: their ids sorted and
    joined by commas, the form a plan records as ``current`` and ``head`` so that the two compare as strings.
    """
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return ",".join(sorted(heads)) if heads else None


def scripts_head(scripts: ScriptDirectory) -> str | None:
    """The head of ``scripts``: with several (branches not merged), all of them as :func:`current_revision` writes
    a database at several heads, so that the two compare as strings. (``get_current_head`` raises there.)"""
    return ",".join(sorted(scripts.get_heads())) or None


def autogenerate(engine: sa.Engine, target: Target, scripts: ScriptDirectory, message: str) -> Path | None:
    """Write a revision from the models' differences with the database, on top of every head of the scripts.

    Constraints the models leave unnamed get the names a naming convention would give them, so that the
    downgrade can drop them (the revision says so in a comment that stage 03's MG009 finding reads).
    """
    metadata = load_metadata(target.models, target.project_dir)
    batch = engine_facts(engine).render_as_batch
    with engine.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True, "target_metadata": metadata,
                                                    "render_as_batch": batch})
        script = produce_migrations(mc, metadata)
        if script.upgrade_ops is None or script.downgrade_ops is None or script.upgrade_ops.is_empty():
            return None
        named = name_unnamed(script.upgrade_ops, script.downgrade_ops, conn.dialect)
        up = render_python_code(script.upgrade_ops, render_as_batch=batch, migration_context=mc)
        down = render_python_code(script.downgrade_ops, render_as_batch=batch, migration_context=mc)
    # render_python_code keeps the imports it needs to itself; dialect types are the usual ones.
    imports = {f"from sqlalchemy.dialects import {name}" for name in sqlalchemy_modules()
               if re.search(rf"\b{name}\.", up + down)}
    with contextlib.redirect_stdout(io.StringIO()):  # Alembic prints "Generating ..." itself
        # "heads": with several heads (a database at every branch's head) the revision merges them.
        rev = scripts.generate_revision(uuid.uuid4().hex[:12], message, head="heads",
                                        upgrades=((mark(named) if named else "") + up).strip(),
                                        downgrades=down.strip(), imports="\n".join(sorted(imports)))
    return Path(rev.path) if rev else None


def pending_revisions(scripts: ScriptDirectory, current: str | None) -> list[str]:
    """The revisions ``alembic upgrade heads`` applies from ``current`` (comma-joined heads), in order.

    As Alembic upgrades: every ancestor of every head that is not already below a current head, so a
    database at one branch's head still gets the other branches' revisions.
    """
    applied = {r.revision for r in scripts.iterate_revisions(tuple(current.split(",")), "base")} if current else set()
    return [r.revision for r in reversed(list(scripts.iterate_revisions("heads", "base")))
            if r.revision not in applied]


def pending_for(target: Target, script_dir: Path) -> tuple[Config, list[str]]:
    """The Alembic config of ``target`` over the scripts in ``script_dir``, and the revisions pending on it."""
    cfg = alembic_config(target, script_dir)
    engine = make_engine(target.db)
    try:
        current = current_revision(engine)
    finally:
        engine.dispose()
    return cfg, pending_revisions(ScriptDirectory.from_config(cfg), current)


def render_sql(cfg: Config, target: Target, current: str | None) -> tuple[str, str, str]:
    """Upgrade and downgrade SQL from ``current`` to head, and how it was obtained.

    Offline (Alembic's ``--sql``) where the dialect allows it and every revision can be rendered without a
    database; otherwise captured while applying the revisions to a schema-only copy of the target (a revision
    that inspects the database, ``op.get_bind()``, cannot be rendered offline).
    """
    engine = make_engine(target.db)
    try:
        offline = engine_facts(engine).offline_sql
    finally:
        engine.dispose()
    why = "SQLite's batch operations need the live table"
    if offline:
        steps = run_alembic(cfg, target.db, [("upgrade", f"{current}:head" if current else "head"),
                                             ("downgrade", f"head:{current or 'base'}")], sql=True)
        if len(steps) == 2 and all(step.ok for step in steps):
            return steps[0].output, steps[1].output, "offline"
        failed = steps[-1]
        why = f"offline rendering failed: {failed.error_type}: {failed.error}"
    up, down = _render_on_copy(cfg, target, current)
    return up, down, f"captured on a schema-only copy ({why})"


def _render_on_copy(cfg: Config, target: Target, current: str | None) -> tuple[str, str]:
    # Upgrade to every head; come back to each current head (a database may stand at several).
    back = [("downgrade", rev) for rev in (current.split(",") if current else ["base"])]
    with scratch_copy(target.db, mode="schema") as url:
        steps = run_alembic(cfg, url, [("upgrade", "heads"), *back])
    if not steps[0].ok:
        failed = failed_revision(steps[0], pending_revisions(ScriptDirectory.from_config(cfg), current))
        at = f" at revision {failed}" if failed else ""
        return f"-- upgrade failed on an empty copy{at}: {steps[0].error}\n", ""
    if len(steps) < 1 + len(back) or not all(s.ok for s in steps[1:]):
        why = steps[-1].error if len(steps) > 1 else "not run"
        return _as_sql(steps[0].statements), f"-- downgrade failed on an empty copy: {why}\n"
    return _as_sql(steps[0].statements), "".join(_as_sql(s.statements) for s in steps[1:])


#: Alembic's record that a revision was applied: the version table set to it (UPDATE or INSERT).
_VERSION_MARK = re.compile(r"version_num\s*=\s*'([^']+)'|\(\s*version_num\s*\)\s*VALUES\s*\(\s*'([^']+)'", re.I)


def failed_revision(result: ApplyResult, pending: list[str]) -> str:
    """The revision whose upgrade failed in ``result``: the first of ``pending`` (in upgrade order) that Alembic
    did not record in its version table among the statements the child ran ("" when none failed)."""
    if result.ok:
        return ""
    applied = set()
    for statement in result.statements:
        sql = str(statement["sql"]).lstrip()
        mark = _VERSION_MARK.search(sql) if sql[:6].upper() in ("UPDATE", "INSERT") else None
        if mark:
            applied.add(mark.group(1) or mark.group(2))
    return next((r for r in pending if r not in applied), "")


def _as_sql(statements: list[dict[str, Any]]) -> str:
    return "".join(s["sql"].strip() + ";\n\n" for s in statements)


def run_alembic(cfg: Config, url: URL | str, steps: list[tuple[str, str]], *, sql: bool = False) -> list[ApplyResult]:
    """Run Alembic ``steps`` (``("upgrade", "head")``, ...) on the database at ``url``, in a fenced child process.

    The child (:mod:`dbrunbook.alembic_ops._child`) may reach only ``url``: the project's ``env.py`` gets the
    connection in ``config.attributes["connection"]``, ``sqlalchemy.url`` and the usual URL variables point at
    ``url``, and any connection to another database is refused before a statement runs. With ``sql`` the steps
    are rendered offline and no database may be reached at all. Returns one result per step that ran; the
    runs stop at the first failure.
    """
    real = resolve_url(url)
    target = cfg.get_main_option("sqlalchemy.url") or None
    project = cfg.attributes.get("dbrunbook_project_dir") or cfg.get_main_option("prepend_sys_path") or "."
    options = {k: v for k, v in (cfg.get_section(cfg.config_ini_section) or {}).items()}
    with tempfile.TemporaryDirectory(prefix="dbrunbook-alembic-") as tmp:
        request, result = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request.write_text(json.dumps({
            "project_dir": str(project), "ini": cfg.config_file_name, "section": cfg.config_ini_section,
            "options": options, "url": mask_url(real), "sql": sql, "allowed": [] if sql else [mask_url(real)],
            "steps": [{"command": c, "revision": r} for c, r in steps], "flask_app": _flask_app(Path(project))}))
        shown = real if not sql else parse_url(mask_url(real))
        env = sandbox_environment(dict(os.environ), target, shown)
        env.update(kernel_environment(real))
        done = subprocess.run([sys.executable, "-m", "dbrunbook.alembic_ops._child", str(request), str(result)],
                              cwd=str(project), env=env, capture_output=True)
        if done.returncode in (130, -signal.SIGINT):
            raise KeyboardInterrupt
        if not result.exists():
            tail = done.stderr.decode(errors="replace").strip().splitlines()
            why = tail[-1] if tail else f"exit status {done.returncode}"
            for secret in secret_values(real):
                why = why.replace(secret, "***")
            return [ApplyResult(ok=False, seconds=0.0, error=f"the Alembic process died: {why}",
                                error_type="ChildProcessError")]
        payload = json.loads(result.read_text())
    return [ApplyResult(ok=s["ok"], seconds=s["seconds"], statements=s["statements"], error=_explain(s),
                        error_type=s.get("error_type", ""), failed_statement=s.get("failed_statement", ""),
                        output=s.get("output", ""), fenced=s.get("fenced") or {}) for s in payload["steps"]]


#: How a result says that env.py reached past the scratch copy (the fence refused it).
FENCED = "env.py reached for"


def _flask_app(project: Path) -> str:
    """The Flask app whose context a Flask-Migrate env.py needs: ``flask_app`` in [tool.dbrunbook], or FLASK_APP."""
    try:
        configured = read_pyproject(project).get("flask_app", "")
    except ConfigError:
        configured = ""
    return str(configured or os.environ.get("FLASK_APP", ""))


def _explain(step: dict[str, Any]) -> str:
    fenced = step.get("fenced")
    if not fenced:
        return str(step.get("error", ""))
    # The copy of env.py lives in a scratch folder: its name and line are what the user can find.
    where = f" ({Path(fenced['where']).name})" if fenced.get("where") else ""
    return (f"{FENCED} {fenced['target']}{where}, not the scratch copy it was given; dbrunbook refused "
            "the connection and ran nothing there. Make env.py use config.attributes['connection'] when it is set")


def _one(cfg: Config, url: URL | str, command_name: str, revision: str) -> ApplyResult:
    results = run_alembic(cfg, url, [(command_name, revision)])
    return results[-1]


def apply_upgrade(cfg: Config, url: URL | str, revision: str = "heads") -> ApplyResult:
    """Upgrade the database at ``url`` (a scratch copy) to ``revision``, recording statements and the error if any."""
    return _one(cfg, url, "upgrade", revision)


def apply_downgrade(cfg: Config, url: URL | str, revision: str) -> ApplyResult:
    """Downgrade the database at ``url`` (a scratch copy) to ``revision``, recording statements and the error if any."""
    return _one(cfg, url, "downgrade", revision)


