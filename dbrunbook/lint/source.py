"""What lint reads: SQL files, and Alembic revisions rendered to SQL for the target's dialect.

A revision spec is ``""`` (the revisions pending on the target: current → head), a revision
id, a range ``A:B``, or the path of a revision file. PostgreSQL and MariaDB SQL is rendered
offline (``upgrade --sql``) through Alembic's API; SQLite's batch operations need the live
table, so its SQL is captured while migrating a schema-only copy. The target is only read:
for its current revision, the column definitions the rules compare against, its tables' sizes
(which lock findings quote) and its server version.

A revision *file* is read on its own, with no project and no database (:func:`lint_revision_file`,
rendered by :mod:`.offline`), so each statement keeps the line of the ``op.`` call that made it.
Given a database, the same rendering is linted against the target's columns and sizes; a revision
that needs the database to render falls back to the project's path above.
"""
from __future__ import annotations

import ast
import contextlib
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
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
from dbrunbook.core.config import Target, load_isolation_level
from dbrunbook.core.db import dialect_name, make_engine
from dbrunbook.core.results import Finding
from dbrunbook.data.clone import scratch_copy
from dbrunbook.dialects import OPERATIONS_DIALECT, facts
from dbrunbook.errors import ConfigError, DatabaseUnreachable, UsageError
from dbrunbook.lint.offline import RevisionFile, as_migration, render_revision_file
from dbrunbook.lint.pysilence import PySilence, apply_silences, python_silences
from dbrunbook.lint.reversibility import operations_sql
from dbrunbook.lint.runner import LintConfig, LintReport, lint_migration
from dbrunbook.sql.model import Migration, parse_sql

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
    sizes: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    server_version: int | None = None
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


@dataclass
class LiveFacts:
    """What lint reads of the target: its columns, its tables' rows and bytes, its server's major version."""

    columns: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    sizes: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    server_version: int | None = None

    def lend(self, migration: Migration) -> None:
        """Give ``migration`` these facts (its own known columns, if any, win)."""
        migration.known_columns = {**migration.known_columns, **self.columns}
        migration.sizes, migration.server_version = dict(self.sizes), self.server_version


def live_facts(url: str, *, sizes: bool = True) -> LiveFacts:
    """The target's columns, sizes and server version (read-only); empty when it cannot be reached.

    Row counts are the catalog's estimates; a table estimated empty is looked at (one row at most)
    before lint says it is empty, since a table never analysed is estimated at 0 rows too.
    """
    from dbrunbook.schema.snapshot import snapshot

    engine = make_engine(url)
    try:
        snap = snapshot(engine, sizes=sizes)
        version = (engine.dialect.server_version_info or (None,))[0]
        measured = {name: (t.rows, t.bytes) for name, t in snap.tables.items()} if sizes else {}
        with engine.connect() as conn:
            for name, (rows, nbytes) in measured.items():
                probe = sa.select(sa.literal(1)).select_from(sa.table(name)).limit(1)
                try:
                    if rows == 0 and conn.execute(probe).first():
                        measured[name] = (None, nbytes)
                except sa.exc.SQLAlchemyError:  # not readable by this user: the estimate is not vouched for
                    measured[name] = (None, nbytes)
                    conn.rollback()
    except DatabaseUnreachable:
        return LiveFacts()
    finally:
        engine.dispose()
    columns = {(t.name, c.name): {"type": c.type.lower(), "not_null": not c.nullable, "default": c.default}
               for t in snap.tables.values() for c in t.columns}
    return LiveFacts(columns, measured, version if isinstance(version, int) else None)


def known_columns(target: Target) -> dict[tuple[str, str], dict[str, Any]]:
    """Column definitions of the target (read-only); empty when it cannot be reached."""
    return live_facts(target.db, sizes=False).columns


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
            if not revisions:  # nothing pending, or an empty range: nothing to render
                return RenderedRevisions("", [], "", "", spec or "pending revisions")
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
    live = live_facts(target.db)
    rendered.known_columns, rendered.sizes, rendered.server_version = live.columns, live.sizes, live.server_version
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
    config = config or LintConfig()
    rendered = render_revisions(target, spec)
    if not rendered.revisions:
        empty = parse_sql("", OPERATIONS_DIALECT, rendered.source)
        said = f"no revisions in {spec}" if spec else "no pending revisions (the database is at head)"
        return LintReport(empty, [], [], nothing=said)
    # A project whose runner migrates on an AUTOCOMMIT session: what Alembic renders as one transaction is none.
    autocommit = load_isolation_level(target.project_dir) == "AUTOCOMMIT"
    migration = parse_sql(rendered.upgrade_sql, rendered.dialect, rendered.source,
                          in_transaction=(rendered.in_transaction or config.assume_in_transaction) and not autocommit,
                          autocommit=autocommit)
    LiveFacts(rendered.known_columns, rendered.sizes, rendered.server_version).lend(migration)
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


def lint_revision_file(path: Path, dialect: str, config: LintConfig | None = None, *, project: Path = Path("."),
                       db: str | None = None, target: Target | None = None) -> LintReport | None:
    """Lint one revision file, each finding at the line of the ``op.`` call it is about; None: not a revision.

    Without ``db`` nothing connects: the operations are rendered offline for ``dialect`` and the
    rules judge them without the target's columns. With ``db`` the same rendering is judged
    against the target's columns, sizes and server version; a revision that needs the database to
    render is then linted through ``target``'s project (:func:`lint_revisions`) when given.
    """
    config = config or LintConfig()
    source = str(path)
    # The revision's code runs in this process: with a target named, it may only read it.
    with fence.guarding(db) if db else contextlib.nullcontext():
        revision = render_revision_file(path, dialect, project)
    if revision is None:
        return None
    if db and target is not None and (revision.upgrade.gap or revision.downgrade and revision.downgrade.gap):
        return _lint_captured(revision, target, config)
    in_tx = facts(dialect).transactional_ddl or config.assume_in_transaction
    migration = as_migration(revision.upgrade, dialect, source, in_transaction=in_tx,
                             default_line=revision.upgrade_line)
    if revision.downgrade is not None and revision.downgrade.gap is not None:
        migration.gaps.append(dict(revision.downgrade.gap))
    if db:
        live_facts(db).lend(migration)
    rollback = _rollback(revision, migration, project)
    silences, unreasoned = python_silences([path])
    for each in {id(m): m for m in (migration, *(rollback or ()))}.values():
        apply_silences(each, silences, by_line=True)
    report = lint_migration(migration, config, rollback=rollback)
    report.findings[:0] = unreasoned
    for finding in report.findings + report.silenced:
        if finding.evidence.get("source") in (source, f"{source} (operations)", path.name):  # path.name: LN001
            finding.evidence["source"] = source
        # A finding about the whole revision: at ``def downgrade`` for the rollback rules, else ``def upgrade``.
        rollback_rule = finding.code.startswith("RB") and revision.downgrade_line
        finding.evidence.setdefault("line", revision.downgrade_line if rollback_rule else revision.upgrade_line)
        finding.evidence.setdefault("revision", revision.revision)
    return report


def _rollback(revision: RevisionFile, migration: Migration, project: Path) -> tuple[Migration, Migration] | None:
    """The upgrade/downgrade pair the RB rules compare, rendered for the operations' dialect; None if unknown."""
    if revision.upgrade.gap is not None or (revision.downgrade is not None and revision.downgrade.gap is not None):
        return None  # a half-rendered side would look like a missing or incomplete downgrade
    ops = revision
    if revision.dialect != OPERATIONS_DIALECT:
        ops = render_revision_file(revision.path, OPERATIONS_DIALECT, project) or revision
    source = f"{revision.path} (operations)"
    up = migration if ops is revision else as_migration(ops.upgrade, OPERATIONS_DIALECT, source,
                                                        in_transaction=False, default_line=ops.upgrade_line)
    down = as_migration(ops.downgrade or replace(ops.upgrade, statements=[], gap=None), OPERATIONS_DIALECT, source,
                        in_transaction=False, default_line=ops.downgrade_line or ops.upgrade_line)
    up.known_columns = dict(migration.known_columns)
    return up, down


def _lint_captured(revision: RevisionFile, target: Target, config: LintConfig) -> LintReport:
    """Lint a revision that needs the database through its project; findings at the lines the offline SQL shows."""
    report = lint_revisions(target, revision.revision, config)
    offline = as_migration(revision.upgrade, revision.dialect, str(revision.path), in_transaction=False,
                           default_line=revision.upgrade_line)
    lines = {}
    for stmt in reversed(offline.statements):
        lines[stmt.text[:500]] = stmt.line
    for finding in report.findings + report.silenced:
        finding.evidence.update(source=str(revision.path), revision=revision.revision,
                                line=lines.get(finding.evidence.get("sql", ""), revision.upgrade_line))
    return report
