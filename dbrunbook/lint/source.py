"""What lint reads: SQL files, and Alembic revisions rendered to SQL for the target's dialect.

A revision spec is ``""`` (the revisions pending on the target: current → head), a revision
id, a range ``A:B``, or the path of a revision file. PostgreSQL and MariaDB SQL is rendered
offline (``upgrade --sql``) through Alembic's API; SQLite's batch operations need the live
table, so its SQL is captured while migrating a schema-only copy. The target is only read:
for its current revision and the column definitions the rules compare against.
"""
from __future__ import annotations

import ast
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from dbrunbook.alembic_ops.migration import (
    alembic_config,
    apply_downgrade,
    apply_upgrade,
    current_revision,
    revision_paths,
    run_alembic,
)
from dbrunbook.core import fence
from dbrunbook.core.config import Target
from dbrunbook.core.db import dialect_name, make_engine
from dbrunbook.core.results import Finding
from dbrunbook.data.clone import scratch_copy
from dbrunbook.dialects import OPERATIONS_DIALECT, facts
from dbrunbook.errors import ConfigError, DatabaseUnreachable, UsageError
from dbrunbook.lint.pysilence import PySilence, apply_silences, python_silences
from dbrunbook.lint.reversibility import operations_sql
from dbrunbook.lint.runner import LintConfig, LintReport, lint_migration
from dbrunbook.sql.model import parse_sql

_FAILED = "-- upgrade failed on a schema-only copy"


@dataclass
class RenderedRevisions:
    """Upgrade and downgrade SQL of some revisions, for one dialect."""

    dialect: str
    revisions: list[str]
    upgrade_sql: str
    downgrade_sql: str
    source: str
    #: SQL captured online runs inside the transaction Alembic opened (no BEGIN in the text).
    in_transaction: bool = False
    known_columns: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: The revisions' own Alembic operations rendered for PostgreSQL (upgrade, downgrade):
    #: what reversibility compares, the same on every dialect.
    operations: tuple[str, str] = ("", "")
    #: ``# dbrunbook-ignore`` comments of the revision files, and LN001 for those without a reason.
    silences: list[PySilence] = field(default_factory=list)
    unreasoned: list[Finding] = field(default_factory=list)


def revision_id(path: Path) -> str:
    """The ``revision = "..."`` of an Alembic revision file."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError) as exc:
        raise UsageError(f"cannot read revision file {path}: {exc}") from None
    for node in tree.body:
        if not isinstance(node, (ast.AnnAssign, ast.Assign)):
            continue
        target: ast.expr = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
        value = node.value
        if isinstance(target, ast.Name) and target.id == "revision" and isinstance(value, ast.Constant):
            return str(value.value)
    raise UsageError(f"{path} is not an Alembic revision (no revision = '...')")


def known_columns(target: Target) -> dict[tuple[str, str], dict[str, Any]]:
    """Column definitions of the target (read-only); empty when it cannot be reached."""
    from dbrunbook.schema.snapshot import snapshot

    engine = make_engine(target.db)
    try:
        snap = snapshot(engine, sizes=False)
    except DatabaseUnreachable:
        return {}
    finally:
        engine.dispose()
    return {(t.name, c.name): {"type": c.type.lower(), "not_null": not c.nullable, "default": c.default}
            for t in snap.tables.values() for c in t.columns}


def _range(scripts: ScriptDirectory, spec: str, target: Target) -> tuple[str | None, str]:
    """Where the revisions ``spec`` names start (None: base; maybe several heads, comma-joined) and end.

    ``""`` or ``heads``: from the database's revision(s) to every head, as ``alembic upgrade heads``;
    ``A:B``: from A to B (each may be ``base``, ``heads``, ``label@head``; an empty B is every head);
    a revision id or name (``label@head``, or ``head`` when there is one head): that revision alone.
    """
    if ":" in spec:
        start, _, end = spec.partition(":")
        return (None if start in ("", "base") else start), end or "heads"
    if spec and spec != "heads":
        script = scripts.get_revision(spec)
        if script is None:
            raise ConfigError(f"no Alembic revision {spec}")
        down = script.down_revision
        if isinstance(down, (tuple, list)):
            raise UsageError(f"revision {spec} is a merge point; lint a range instead")
        return down, script.revision
    engine = make_engine(target.db)
    try:
        return current_revision(engine), "heads"
    finally:
        engine.dispose()


def render_revisions(target: Target, spec: str = "", workdir: Path | None = None) -> RenderedRevisions:
    """Render the upgrade and downgrade SQL of the revisions ``spec`` names, for the target's dialect."""
    with fence.guarding(target.db):
        return _render_revisions(target, spec, workdir)


def _render_revisions(target: Target, spec: str, workdir: Path | None) -> RenderedRevisions:
    if spec.endswith(".py"):
        spec = revision_id(Path(spec))
    with tempfile.TemporaryDirectory(prefix="dbrunbook-lint-") as tmp:
        cfg = alembic_config(target, Path(workdir or tmp) / "alembic")
        try:
            scripts = ScriptDirectory.from_config(cfg)
            start, end = _range(scripts, spec, target)
            try:
                # As Alembic upgrades: the ancestors of the end that are not below the start (one or several heads).
                starts = tuple(start.split(",")) if start else ()
                below = {r.revision for r in scripts.iterate_revisions(starts, "base")} if starts else set()
                revisions = [r.revision for r in reversed(list(scripts.iterate_revisions(end, "base")))
                             if r.revision not in below]
            except RevisionError as exc:  # an unknown or ambiguous name: not an error of dbrunbook
                raise ConfigError(f"Alembic: {exc}") from None
            engine = make_engine(target.db)
            dialect = dialect_name(engine)
            engine.dispose()
            offline = _offline(cfg, start, end, target.db) if facts(dialect).offline_sql else None
            if offline is not None:
                rendered = RenderedRevisions(dialect, revisions, *offline, spec or "pending revisions")
            else:
                up, down = _captured(cfg, target, start, end)
                rendered = RenderedRevisions(dialect, revisions, up, down, spec or "pending revisions",
                                             in_transaction=facts(dialect).transactional_ddl)
            unreadable: dict[str, str] = {}
            rendered.operations = operations_sql(Path(scripts.dir), revisions, unreadable=unreadable)
            rendered.silences, rendered.unreasoned = python_silences(revision_paths(Path(scripts.dir), revisions))
            rendered.unreasoned += [Finding("LN005", "info", f"revision {rev}'s operations cannot be read without a "
                                            f"database ({why}): its rollback pairing was not checked", rev)
                                    for rev, why in unreadable.items()]
        except CommandError as exc:
            raise ConfigError(f"Alembic: {exc}") from None
    rendered.known_columns = known_columns(target)
    return rendered


def _offline(cfg: Any, start: str | None, end: str, url: str) -> tuple[str, str] | None:
    """Offline SQL of the range, or None when a revision cannot be rendered without a database."""
    steps = run_alembic(cfg, url, [("upgrade", f"{start}:{end}" if start else end),
                                   ("downgrade", f"{end}:{start or 'base'}")], sql=True)
    if len(steps) == 2 and all(step.ok for step in steps):
        return steps[0].output, steps[1].output
    return None


def _as_sql(statements: list[dict[str, Any]]) -> str:
    return "".join(s["sql"].strip() + ";\n\n" for s in statements)


def _captured(cfg: Any, target: Target, start: str | None, end: str) -> tuple[str, str]:
    with scratch_copy(target.db, mode="schema") as url:
        engine = make_engine(url)
        try:
            current = current_revision(engine)
        finally:
            engine.dispose()
        if current != start:
            moved = apply_upgrade(cfg, url, start) if start else apply_downgrade(cfg, url, "base")
            if not moved.ok and start:
                moved = apply_downgrade(cfg, url, start)
            if not moved.ok:
                raise UsageError(f"cannot bring a schema copy to revision {start}: {moved.error}")
        steps = run_alembic(cfg, url, [("upgrade", end), ("downgrade", start or "base")])
    if not steps[0].ok:
        return f"{_FAILED}: {steps[0].error}\n", ""
    down = _as_sql(steps[1].statements) if len(steps) > 1 and steps[1].ok else ""
    return _as_sql(steps[0].statements), down


def lint_revisions(target: Target, spec: str = "", config: LintConfig | None = None) -> LintReport:
    """Lint the revisions ``spec`` names (pending ones by default) as SQL for the target's dialect."""
    rendered = render_revisions(target, spec)
    migration = parse_sql(rendered.upgrade_sql, rendered.dialect, rendered.source,
                          in_transaction=rendered.in_transaction)
    migration.known_columns = {**migration.known_columns, **rendered.known_columns}
    up, down = (parse_sql(sql, OPERATIONS_DIALECT, f"{rendered.source} (operations)") for sql in rendered.operations)
    up.known_columns = dict(migration.known_columns)
    for silenced in (migration, up):
        apply_silences(silenced, rendered.silences)
    report = lint_migration(migration, config, rollback=(up, down))
    report.findings[:0] = rendered.unreasoned
    if rendered.upgrade_sql.startswith(_FAILED):
        report.findings.insert(0, Finding("LN002", "block", rendered.upgrade_sql.strip("- \n"), rendered.source,
                                          {"source": rendered.source}, "fix the revision so it runs on this dialect"))
    return report
