"""The library call behind ``dbrunbook lint``: lint files and revisions with the project's config."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from dbrunbook.core.config import Target, load_target, read_pyproject
from dbrunbook.core.results import Finding
from dbrunbook.dialects import OPERATIONS_DIALECT, of_url
from dbrunbook.errors import ConfigError, UsageError
from dbrunbook.lint.runner import LintConfig, LintReport, lint_sql, load_config, pg_major
from dbrunbook.lint.source import lint_revision_file, lint_revisions
from dbrunbook.sql.model import UnreadableSource


@dataclass
class MultiReport:
    """Findings over several lint targets, and the configured failing severity."""

    findings: list[Finding]
    silenced: list[Finding]
    fail_on: str
    #: How many targets were linted; 0 is "nothing to lint" (``notes`` says why).
    linted: int = 0
    #: Targets left out and why: excluded by ``exclude_files``, not a revision, no pending revisions.
    notes: list[str] = field(default_factory=list)
    #: Files that cannot be read at all (SQL or Python that does not parse): exit 2, after the findings.
    unreadable: list[str] = field(default_factory=list)


def _dialect(project: Path, db: str | None) -> str:
    url = db or read_pyproject(project).get("db")
    if not url or str(url).startswith("env:"):
        return OPERATIONS_DIALECT
    return of_url(str(url)).name


def _relative(path: Path, project: Path) -> str:
    """``path`` relative to the project root, as config file patterns and SARIF name it."""
    try:
        return path.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _config(project: Path, include: Sequence[str], exclude: Sequence[str], pg_version: int | str | None,
            assume_in_transaction: bool | None) -> LintConfig:
    config = load_config(project)
    return replace(config, include=tuple(include) or config.include, exclude=config.exclude + tuple(exclude),
                   pg_version=pg_major(pg_version) if pg_version is not None else config.pg_version,
                   assume_in_transaction=config.assume_in_transaction if assume_in_transaction is None
                   else assume_in_transaction)


def lint_targets(targets: Sequence[str], *, project: Path = Path("."), db: str | None = None,
                 alembic_config: str | None = None, dialect: str | None = None,
                 include: Sequence[str] = (), exclude: Sequence[str] = (), pg_version: int | str | None = None,
                 assume_in_transaction: bool | None = None) -> MultiReport:
    """Lint each target (a .sql file, a revision file, a revision id or range; none: pending revisions).

    A revision file is linted offline unless ``db`` is given (:func:`.source.lint_revision_file`).
    ``pg_version`` and ``assume_in_transaction`` override the config's; None keeps it.
    """
    config = _config(project, include, exclude, pg_version, assume_in_transaction)
    out = MultiReport([], [], config.fail_on)
    for item in targets or [""]:
        if item.endswith((".sql", ".py")):
            report = _lint_file(Path(item), out, config, project, db, alembic_config, dialect)
        else:
            report = lint_revisions(_target(project, db, alembic_config, item), item, config)
            for f in report.findings + report.silenced:
                f.evidence.setdefault("revision", item)
        if report is None:
            continue
        if report.nothing:
            out.notes.append(report.nothing)
            continue
        out.linted += 1
        out.findings += report.findings
        out.silenced += report.silenced
    return out


def _target(project: Path, db: str | None, alembic_config: str | None, item: str) -> Target:
    try:
        return load_target(project, db=db, alembic_config=alembic_config)
    except ConfigError as exc:
        raise ConfigError(f"linting revision {item or 'pending'} needs the project: {exc}") from None


def _lint_file(path: Path, out: MultiReport, config: LintConfig, project: Path, db: str | None,
               alembic_config: str | None, dialect: str | None) -> LintReport | None:
    """Lint one .sql or revision file with its per-file ignores; None when it is left out or unreadable."""
    kind = "SQL" if path.suffix == ".sql" else "revision"
    if not path.is_file():
        raise UsageError(f"{path}: no such {kind} file")
    where = _relative(path, project)
    if config.excludes_file(where):
        out.notes.append(f"{path}: excluded by exclude_files")
        return None
    try:
        if path.suffix == ".sql":
            report: LintReport | None = lint_sql(path.read_text(), dialect or _dialect(project, db), config,
                                                 source=str(path))
        else:
            target = load_target(project, db=db, alembic_config=alembic_config) if db else None
            report = lint_revision_file(
                path, of_url(target.db).name if target else dialect or _dialect(project, None), config,
                project=project, db=target.db if target else None,
                target=target if target is not None and target.alembic_config else None)
    except UnreadableSource as exc:
        message = str(exc)
        out.unreadable.append(message if message.startswith(str(path)) else f"{path}: {message}")
        return None
    if report is None:
        out.notes.append(f"{path}: not an Alembic revision (no revision = ... and upgrade()), skipped")
        return None
    report.findings, report.silenced = config.keep(where, report.findings), config.keep(where, report.silenced)
    return report
