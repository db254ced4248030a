"""The library call behind ``dbrunbook lint``: lint files and revisions with the project's config."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from dbrunbook.core.config import load_target, read_pyproject
from dbrunbook.core.results import Finding
from dbrunbook.dialects import OPERATIONS_DIALECT, of_url
from dbrunbook.errors import ConfigError, UsageError
from dbrunbook.lint.runner import lint_sql, load_config
from dbrunbook.lint.source import lint_revisions


@dataclass
class MultiReport:
    """Findings over several lint targets, and the configured failing severity."""

    findings: list[Finding]
    silenced: list[Finding]
    fail_on: str


def _dialect(project: Path, db: str | None) -> str:
    url = db or read_pyproject(project).get("db")
    if not url or str(url).startswith("env:"):
        return OPERATIONS_DIALECT
    return of_url(str(url)).name


def lint_targets(targets: Sequence[str], *, project: Path = Path("."), db: str | None = None,
                 alembic_config: str | None = None, dialect: str | None = None,
                 include: Sequence[str] = (), exclude: Sequence[str] = ()) -> MultiReport:
    """Lint each target (a .sql file, a revision file, a revision id or range; none: pending revisions)."""
    config = load_config(project)
    if include or exclude:
        config = replace(config, include=tuple(include) or config.include, exclude=config.exclude + tuple(exclude))
    findings: list[Finding] = []
    silenced: list[Finding] = []
    for item in targets or [""]:
        if item.endswith(".sql"):
            path = Path(item)
            if not path.is_file():
                raise UsageError(f"{item}: no such SQL file")
            report = lint_sql(path.read_text(), dialect or _dialect(project, db), config, source=item)
        else:
            if item.endswith(".py") and not Path(item).is_file():
                raise UsageError(f"{item}: no such revision file")
            try:
                target = load_target(project, db=db, alembic_config=alembic_config)
            except ConfigError as exc:
                raise ConfigError(f"linting revision {item or 'pending'} needs the project: {exc}") from None
            report = lint_revisions(target, item, config)
            for f in report.findings + report.silenced:
                f.evidence.setdefault("revision", item)
                if item.endswith(".py"):
                    f.evidence["source"], f.evidence["line"] = item, 1
        findings += report.findings
        silenced += report.silenced
    return MultiReport(findings, silenced, config.fail_on)

