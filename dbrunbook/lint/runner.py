"""Run the selected lint rules over a migration, honouring silences and configuration.

Configuration comes from the ``lint`` table of ``[tool.dbrunbook]``::

    [tool.dbrunbook.lint]
    include = ["LK*", "DS*"]        # codes or names, fnmatch patterns; all rules if empty
    exclude = ["ID001"]
    severity = { BC001 = "block" }  # override a rule's default severity
    fail_on = "block"               # default --fail-on of `dbrunbook lint`

Two findings come from lint itself rather than a rule: LN001 (a silence without a reason)
and LN002/LN003 (a revision that fails on a schema copy, a statement that cannot be parsed).

A statement is silenced for one rule by a comment in it or just before it that names the
code and gives a reason: ``-- dbrunbook-ignore: LK003 table holds 20 rows``. A silence
without a reason silences nothing and is itself reported (LN001).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from dbrunbook.core.config import read_pyproject
from dbrunbook.errors import ConfigError
from dbrunbook.core.results import SEVERITIES, Finding, verdict_of
from dbrunbook.core.rules import Rule
from dbrunbook.lint import registry
from dbrunbook.sql.model import Action, Migration, Statement, parse_sql


@dataclass(frozen=True)
class LintConfig:
    """Which rules run and how severe their findings are."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    severity: dict[str, str] = field(default_factory=dict)
    fail_on: str = "block"

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> "LintConfig":
        """Read the ``lint`` table of ``[tool.dbrunbook]``; unknown keys and bad values are errors."""
        unknown = sorted(set(table) - {"include", "exclude", "severity", "fail_on"})
        if unknown:
            raise ConfigError(f"unknown keys in [tool.dbrunbook.lint]: {', '.join(unknown)}")
        severity = dict(table.get("severity", {}))
        for code, value in [*severity.items(), ("fail_on", table.get("fail_on", "block"))]:
            if value not in SEVERITIES:
                raise ConfigError(f"[tool.dbrunbook.lint] {code} must be one of {', '.join(SEVERITIES)}, not {value!r}")
        return cls(tuple(table.get("include", ())), tuple(table.get("exclude", ())), severity,
                   table.get("fail_on", "block"))


def load_config(project_dir: Path | None = None) -> LintConfig:
    """The lint configuration of the project at ``project_dir`` (defaults if it has none)."""
    table = read_pyproject(project_dir or Path.cwd()).get("lint", {})
    if not isinstance(table, dict):
        raise ConfigError("[tool.dbrunbook] lint must be a table")
    return LintConfig.from_table(table)


@dataclass
class LintContext:
    """What a rule's ``check`` sees: the migration, and a way to report on a statement."""

    migration: Migration
    rule: Rule
    #: The (upgrade, downgrade) pair the RB rules compare; None when no downgrade is known.
    rollback: tuple[Migration, Migration] | None = None

    @property
    def dialect(self) -> str:
        return self.migration.dialect

    def actions(self, *kinds: str) -> Iterator[tuple[Statement, Action]]:
        return self.migration.actions(*kinds)

    def finding(self, stmt: Statement | None, message: str, object: str = "", fix: str | None = None,
                source: str | None = None, **evidence: Any) -> Finding:
        """A finding of the current rule about ``stmt`` (None: about the migration as a whole)."""
        where: dict[str, Any] = {"source": self.migration.source if source is None else source}
        if stmt is not None:
            where.update(statement=stmt.index, line=stmt.line, sql=stmt.text[:500])
        return self.rule.finding(message, object or (stmt.table if stmt else ""), {**where, **evidence}, fix=fix)


@dataclass
class LintReport:
    """The findings of one lint run, and those silenced with a reason."""

    migration: Migration
    findings: list[Finding]
    silenced: list[Finding]

    @property
    def verdict(self) -> str:
        return verdict_of(self.findings)

    def at_or_above(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if SEVERITIES.index(f.severity) >= SEVERITIES.index(severity)]


def lint_migration(migration: Migration, config: LintConfig | None = None, downgrade: Migration | None = None,
                   rollback: tuple[Migration, Migration] | None = None) -> LintReport:
    """Run the configured rules over ``migration``; silenced findings are kept apart.

    The RB rules compare ``rollback`` (an upgrade/downgrade pair, e.g. the revisions' own
    operations) or else ``migration`` with ``downgrade``; without either they stay silent.
    """
    config = config or LintConfig()
    if rollback is None and downgrade is not None:
        rollback = (migration, downgrade)
    findings: list[Finding] = []
    silenced: list[Finding] = []
    by_index: dict[tuple[Any, Any], Statement] = {(migration.source, s.index): s for s in migration.statements}
    if rollback is not None:
        by_index.update({(rollback[0].source, s.index): s for s in rollback[0].statements})
    for rule in registry.select(config.include, config.exclude, migration.dialect):
        ctx = LintContext(migration, rule, rollback)
        for finding in rule.check(ctx):
            finding.severity = config.severity.get(rule.code, finding.severity)
            stmt = by_index.get((finding.evidence.get("source"), finding.evidence.get("statement", -1)))
            reason = stmt.silenced.get(rule.code) if stmt else None
            if reason:
                finding.evidence["silenced"] = reason
                silenced.append(finding)
            else:
                findings.append(finding)
    for stmt in migration.statements:
        if stmt.kind == "unparsed":
            findings.append(Finding("LN003", "warn", f"lint cannot parse this statement as {migration.dialect} SQL",
                                    "", {"source": migration.source, "statement": stmt.index, "line": stmt.line,
                                         "sql": stmt.text[:500]}, "review the statement by hand"))
        for code in stmt.unreasoned:
            findings.append(Finding("LN001", "warn", f"the silence of {code} gives no reason, so it silences nothing",
                                    stmt.table, {"source": migration.source, "statement": stmt.index,
                                                 "line": stmt.line, "sql": stmt.text[:500]},
                                    f"write the reason after the code: -- dbrunbook-ignore: {code} <why>"))
    return LintReport(migration, findings, silenced)


def lint_sql(sql: str, dialect: str, config: LintConfig | None = None, source: str = "",
             downgrade_sql: str | None = None,
             known_columns: dict[tuple[str, str], dict[str, Any]] | None = None) -> LintReport:
    """Parse ``sql`` for ``dialect`` and lint it; ``downgrade_sql`` enables the RB rules."""
    migration = parse_sql(sql, dialect, source)
    for key, value in (known_columns or {}).items():
        migration.known_columns.setdefault(key, value)
    downgrade = parse_sql(downgrade_sql, dialect, source) if downgrade_sql is not None else None
    return lint_migration(migration, config, downgrade)

