"""Run the selected lint rules over a migration, honouring silences and configuration.

Configuration comes from the ``lint`` table of ``[tool.dbrunbook]``::

    [tool.dbrunbook.lint]
    include = ["LK*", "DS*"]        # codes or names, fnmatch patterns; all rules if empty
    exclude = ["ID001"]
    severity = { BC001 = "block" }  # override a rule's default severity
    fail_on = "block"               # default --fail-on of `dbrunbook lint`
    per_file_ignores = { "versions/0001_*.py" = ["DS002"] }   # codes or names left out for those files
    exclude_files = ["versions/legacy_*.py"]                   # files never linted
    pg_version = 15                 # the PostgreSQL the rules judge for (default: the server's, else 13)
    assume_in_transaction = true    # SQL files run inside a transaction their runner opens

A file pattern is a glob matched against the file's path relative to the project root, or any
tail of it (``versions/0001_*.py`` matches ``migrations/versions/0001_base.py``).

Two findings come from lint itself rather than a rule: LN001 (a silence without a reason)
and LN002/LN003 (a revision that fails on a schema copy, a statement that cannot be parsed).

A statement is silenced for one rule by a comment in it or just before it that names the
code and gives a reason: ``-- dbrunbook-ignore: LK003 table holds 20 rows``. A silence
without a reason silences nothing and is itself reported (LN001).

When the migration carries the target's table sizes (``Migration.sizes``: ``lint --db``, the
stages), each locking (LK) and may-fail (MF) finding says how big its table is, or that it is
empty on the target.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from dbrunbook.core.config import read_pyproject
from dbrunbook.core.results import SEVERITIES, Finding, verdict_of
from dbrunbook.core.rules import Rule
from dbrunbook.errors import ConfigError
from dbrunbook.lint import registry
from dbrunbook.sql.model import Action, Migration, Statement, parse_sql
from dbrunbook.sql.state import BATCH_PREFIX

#: The PostgreSQL major version rules judge for when neither --pg-version, the config nor a live server says.
DEFAULT_PG_VERSION = 13
#: Families whose findings say how big their table is when the sizes are known.
_SIZED_FAMILIES = ("LK", "MF")
_KEYS = {"include", "exclude", "severity", "fail_on", "per_file_ignores", "exclude_files", "pg_version",
         "assume_in_transaction"}


@dataclass(frozen=True)
class LintConfig:
    """Which rules run, how severe their findings are, and what the SQL runs on."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    severity: dict[str, str] = field(default_factory=dict)
    fail_on: str = "block"
    #: File pattern -> codes or names (fnmatch patterns) whose findings are left out for those files.
    per_file_ignores: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: File patterns never linted.
    exclude_files: tuple[str, ...] = ()
    #: The PostgreSQL major version to judge for; None: the live server's, else :data:`DEFAULT_PG_VERSION`.
    pg_version: int | None = None
    #: SQL files run inside a transaction their runner opens (as Alembic runs revisions on PostgreSQL).
    assume_in_transaction: bool = False

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> LintConfig:
        """Read the ``lint`` table of ``[tool.dbrunbook]``; unknown keys and bad values are errors."""
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"unknown keys in [tool.dbrunbook.lint]: {', '.join(unknown)}")
        severity = dict(table.get("severity", {}))
        for code, value in [*severity.items(), ("fail_on", table.get("fail_on", "block"))]:
            if value not in SEVERITIES:
                raise ConfigError(f"[tool.dbrunbook.lint] {code} must be one of {', '.join(SEVERITIES)}, not {value!r}")
        ignores = table.get("per_file_ignores", {})
        if not isinstance(ignores, dict) or not all(_strings(v) for v in ignores.values()):
            raise ConfigError('[tool.dbrunbook.lint] per_file_ignores must map file patterns to lists of codes, '
                              'e.g. { "versions/0001_*.py" = ["DS002"] }')
        excluded = table.get("exclude_files", [])
        if not _strings(excluded):
            raise ConfigError("[tool.dbrunbook.lint] exclude_files must be a list of file patterns")
        assume = table.get("assume_in_transaction", False)
        if not isinstance(assume, bool):
            raise ConfigError("[tool.dbrunbook.lint] assume_in_transaction must be true or false")
        version = table.get("pg_version")
        return cls(tuple(table.get("include", ())), tuple(table.get("exclude", ())), severity,
                   table.get("fail_on", "block"), {str(k): tuple(v) for k, v in ignores.items()}, tuple(excluded),
                   None if version is None else pg_major(version, "[tool.dbrunbook.lint] pg_version"), assume)

    def excludes_file(self, path: str) -> bool:
        """True when ``path`` (relative to the project root) matches ``exclude_files``."""
        return any(_path_matches(path, pattern) for pattern in self.exclude_files)

    def keep(self, path: str, findings: list[Finding]) -> list[Finding]:
        """``findings`` of the file ``path`` without those its ``per_file_ignores`` leave out."""
        patterns = [c for pattern, codes in self.per_file_ignores.items() if _path_matches(path, pattern)
                    for c in codes]
        return [f for f in findings if not any(fnmatch.fnmatch(name, p) for p in patterns for name in _names(f))]


def pg_major(value: Any, what: str = "--pg-version") -> int:
    """The major version of ``value`` (``13``, ``"13"``, ``"13.4"``, ``"9.6"`` -> 9); a ConfigError if it is none."""
    text = str(value).strip()
    head = text.split(".")[0]
    if isinstance(value, bool) or not head.isdigit() or int(head) < 9:
        raise ConfigError(f"{what} must be a PostgreSQL major version such as 13, not {value!r}")
    return int(head)


def _strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _path_matches(path: str, pattern: str) -> bool:
    """``pattern`` matches ``path`` or one of its tails (``versions/x.py`` matches ``migrations/versions/x.py``)."""
    parts = PurePosixPath(path).parts
    return any(fnmatch.fnmatch("/".join(parts[k:]), pattern) for k in range(len(parts)))


def _names(finding: Finding) -> tuple[str, ...]:
    """The code of ``finding``, and its rule's name when a rule made it."""
    try:
        return finding.code, registry[finding.code].name
    except KeyError:  # LN001, LN003 ...: lint's own findings have a code only
        return (finding.code,)


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
    #: The PostgreSQL major version to judge for: --pg-version or the config, the live server's, else the default.
    pg_version: int = DEFAULT_PG_VERSION
    #: False when ``pg_version`` is only :data:`DEFAULT_PG_VERSION`: a rule says a statement fails on an
    #: older server only when it was told which server.
    pg_version_known: bool = False

    @property
    def dialect(self) -> str:
        return self.migration.dialect

    def actions(self, *kinds: str) -> Iterator[tuple[Statement, Action]]:
        return self.migration.actions(*kinds)

    def finding(self, stmt: Statement | None, message: str, object: str = "", fix: str | None = None,
                source: str | None = None, severity: str | None = None, **evidence: Any) -> Finding:
        """A finding of the current rule about ``stmt`` (None: about the migration as a whole); ``severity``
        overrides the rule's where the dialect makes the problem milder."""
        where: dict[str, Any] = {"source": self.migration.source if source is None else source}
        if stmt is not None:
            where.update(statement=stmt.index, line=stmt.line, sql=stmt.text[:500])
        return self.rule.finding(message, object or (stmt.table if stmt else ""), {**where, **evidence},
                                 severity=severity, fix=fix)


@dataclass
class LintReport:
    """The findings of one lint run, and those silenced with a reason."""

    migration: Migration
    findings: list[Finding]
    silenced: list[Finding]
    #: Why there was nothing to lint (no pending revisions, an empty range); "" when there was.
    nothing: str = ""

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
    known = config.pg_version or migration.server_version
    for rule in registry.select(config.include, config.exclude, migration.dialect):
        ctx = LintContext(migration, rule, rollback, known or DEFAULT_PG_VERSION, known is not None)
        for finding in rule.check(ctx):
            finding.severity = config.severity.get(rule.code, finding.severity)
            stmt = by_index.get((finding.evidence.get("source"), finding.evidence.get("statement", -1)))
            if stmt is not None and migration.sizes and finding.code.startswith(_SIZED_FAMILIES):
                _say_size(finding, stmt, migration.sizes)
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


def describe_size(table: str, rows: int | None, nbytes: int | None) -> str:
    """``users: 1.2M rows, 340 MB``, or ``users is empty on the target``; "" when neither is known."""
    if rows == 0:
        return f"{table} is empty on the target"
    parts = [f"{_count(rows)} rows" if rows is not None else "", _bytes(nbytes) if nbytes is not None else ""]
    shown = ", ".join(p for p in parts if p)
    return f"{table}: {shown}" if shown else ""


def _count(n: int) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + unit
    return str(n)


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _say_size(finding: Finding, stmt: Statement, sizes: dict[str, tuple[int | None, int | None]]) -> None:
    """Add the size of the finding's table (from the target's snapshot) to its message and evidence."""
    named = finding.object.split(".")[0]
    tables = [named, *(a.table.removeprefix(BATCH_PREFIX) for a in stmt.actions if a.table)]
    table = next((t for t in tables if t in sizes), None)
    if table is None:
        return
    rows, nbytes = sizes[table]
    said = describe_size(table, rows, nbytes)
    if said:
        finding.message = f"{finding.message} ({said})"
        finding.evidence.update(table_rows=rows, table_bytes=nbytes)


def lint_sql(sql: str, dialect: str, config: LintConfig | None = None, source: str = "",
             downgrade_sql: str | None = None,
             known_columns: dict[tuple[str, str], dict[str, Any]] | None = None) -> LintReport:
    """Parse ``sql`` for ``dialect`` and lint it; ``downgrade_sql`` enables the RB rules."""
    migration = parse_sql(sql, dialect, source, in_transaction=bool(config and config.assume_in_transaction))
    for key, value in (known_columns or {}).items():
        migration.known_columns.setdefault(key, value)
    downgrade = parse_sql(downgrade_sql, dialect, source) if downgrade_sql is not None else None
    return lint_migration(migration, config, downgrade)

