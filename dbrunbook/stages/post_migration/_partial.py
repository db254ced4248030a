"""Stage 12 after an apply that stopped partway, where DDL commits statement by statement (MariaDB, MySQL).

There a failed (or aborted) upgrade leaves the revisions before the failing one applied and recorded
in ``alembic_version``, and whatever statements of the failing one ran before its failure. From stage
11's record (its statements, in order, and Alembic's own version-table updates that close each
revision) :func:`stopped_partway` says which pending revisions were applied, which failed and which
never ran; :func:`where_it_stopped` turns that into findings (PV012, PV013, PV015) and
:func:`left_behind` names what the failed revision left in the schema (PV014): the live schema
against the snapshot taken before the apply, less what the applied revisions' statements made, each
object with the SQL that removes it, rendered by Alembic for the target's dialect.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from dbrunbook.alembic_ops.migration import current_revision
from dbrunbook.core.evidence import GuardedApplyEvidence
from dbrunbook.core.results import Finding
from dbrunbook.schema import Change, Snapshot, diff, load_snapshot, snapshot
from dbrunbook.stages.post_migration._checks import Check, check

#: Alembic's update (or first insert) of the version table: it closes the revision it names.
_VERSION_MARK = re.compile(r"version_num\s*=\s*'([^']+)'|\(\s*version_num\s*\)\s*VALUES\s*\(\s*'([^']+)'", re.I)
#: The comment Alembic writes before each revision's statements in offline SQL (stage 03's upgrade.sql).
_RUNNING = re.compile(r"^-- Running upgrade \S* -> (\S+)[ \t]*$", re.M)
_STRING = re.compile(r"'(?:[^']|'')*'")
_WORD = re.compile(r'`([^`]+)`|"([^"]+)"|\[([^\]]+)\]|([A-Za-z_][A-Za-z0-9_$]*)')
#: Removal order: what depends on others goes first (a view on its table, a key on its column).
_ORDER = ("add_view", "add_fk", "add_check", "add_unique", "add_index", "add_column", "add_table", "add_sequence")


@dataclass
class Stopped:
    """Where an apply that stopped partway left the target, as stage 11's record tells it."""

    pending: list[str]
    applied: list[str]
    failed: str  # "" when every pending revision was applied and the apply failed after them
    never_ran: list[str]
    revision_before: str | None
    #: Statements that ran and committed, per revision (the failed one's too), in order; no version-table update.
    ran: dict[str, list[str]] = field(default_factory=dict)
    failed_statement: str = ""
    error: str = ""
    #: The failed revision's reviewed statements that did not run; None when the reviewed SQL does not say.
    remaining: list[str] | None = None
    ini: str = ""

    @property
    def recorded(self) -> str | None:
        """The revision ``alembic_version`` should name: the last applied, else the one before the apply."""
        return self.applied[-1] if self.applied else self.revision_before

    def stamp(self, revision: str | None) -> str:
        """The command that sets the ``alembic_version`` row to ``revision``."""
        return f"alembic {f'-c {self.ini} ' if self.ini else ''}stamp {revision or 'base'}"


def _one_line(sql: str) -> str:
    return " ".join(sql.split()).rstrip(";")


def _version(sql: str) -> str | None:
    text = sql.lstrip()
    mark = _VERSION_MARK.search(text) if text[:6].upper() in ("UPDATE", "INSERT") else None
    return (mark.group(1) or mark.group(2)) if mark else None


def stopped_partway(apply: GuardedApplyEvidence, upgrade_sql: str = "") -> Stopped | None:
    """Where the apply stopped, when it failed after statements committed; None otherwise.

    None when it applied, when it was rolled back (transactional DDL: :func:`unchanged` proves the
    target as it was), and when no statement of it completed. ``upgrade_sql`` is the reviewed SQL
    (stage 03's ``upgrade.sql``): it gives the failed revision's statements that did not run.
    """
    if apply.applied or apply.rolled_back is not False:
        return None
    completed = [s for s in apply.statements if not s.get("failed")]
    if not completed:
        return None  # nothing committed: unchanged() proves it
    pending = list(apply.revisions or [])
    applied: list[str] = []
    ran: dict[str, list[str]] = {}
    group: list[str] = []
    for statement in completed:
        revision = _version(str(statement["sql"]))
        if revision is None:
            group.append(_one_line(str(statement["sql"])))
        else:  # Alembic updates the version table as the last statement of each revision
            applied.append(revision)
            ran[revision], group = group, []
    failed = next((r for r in pending if r not in applied), "")
    if failed:
        ran[failed] = group
    stopped = Stopped(pending=pending, applied=applied, failed=failed,
                      never_ran=pending[pending.index(failed) + 1:] if failed else [],
                      revision_before=apply.revision_before, ran=ran,
                      failed_statement=_one_line(apply.failed_statement or ""), error=apply.error,
                      ini=apply.history.ini if apply.history else "")
    if failed and upgrade_sql:
        reviewed = _reviewed(upgrade_sql).get(failed)
        done = len(group) + (1 if stopped.failed_statement else 0)
        stopped.remaining = reviewed[done:] if reviewed is not None and done <= len(reviewed) else None
    return stopped


def _reviewed(sql: str) -> dict[str, list[str]]:
    """Each revision's statements in offline SQL, by Alembic's "Running upgrade" comments; no version-table update."""
    marks = list(_RUNNING.finditer(sql))
    out = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        body = sql[mark.end():following.start() if following else len(sql)]
        statements = [_one_line(chunk) for chunk in body.split(";\n\n") if _one_line(chunk)]
        out[mark.group(1)] = [s for s in statements if _version(s) is None]
    return out


def where_it_stopped(engine: Engine, stopped: Stopped) -> list[Check]:
    """PV012 (where the target stands), PV013 (the failed revision's statements) and PV015 (the version row)."""
    now = current_revision(engine)
    applied = ", ".join(stopped.applied) or "none"
    failed = (f"{stopped.failed} failed" + (f" at its statement {len(stopped.ran[stopped.failed]) + 1} "
                                            f"({stopped.failed_statement}: {stopped.error})"
                                            if stopped.failed_statement else f" ({stopped.error})")
              if stopped.failed else f"every pending revision was applied, then the apply failed ({stopped.error})")
    message = (f"the apply stopped partway: the target is at revision {now or 'none'}; of the pending "
               f"{', '.join(stopped.pending)}, applied: {applied}; {failed}"
               + (f"; never ran: {', '.join(stopped.never_ran)}" if stopped.never_ran else ""))
    fix = (f"either remove what {stopped.failed} left (the PV014 SQL, in the order listed) so the target is exactly "
           f"at {stopped.recorded or 'base'}, fix the cause and apply a new plan; or run the statements of "
           f"{stopped.failed} that did not run (PV013) by hand, then {stopped.stamp(stopped.failed)}"
           if stopped.failed else "find out why the apply failed after its last revision (stage 11's error)")
    evidence: dict[str, Any] = {"revision_now": now, "revision_before": stopped.revision_before,
                                "pending": stopped.pending, "applied": stopped.applied, "failed": stopped.failed,
                                "never_ran": stopped.never_ran, "error": stopped.error}
    where = [Finding("PV012", "block", message, "alembic_version", evidence, fix)]
    if now != stopped.recorded:
        where.append(Finding("PV015", "block", f"alembic_version names {now or 'no revision'}, but the last revision "
                             f"stage 11 recorded as applied is {stopped.recorded or 'none (none applied)'}",
                             "alembic_version", {"revision_now": now, "recorded": stopped.recorded},
                             stopped.stamp(stopped.recorded)))
    checks = [check("PV012", "where the apply stopped", where, message.split(": ", 1)[1])]
    if stopped.failed:
        checks.append(_statements(stopped))
    return checks


def _statements(stopped: Stopped) -> Check:
    ran = stopped.ran[stopped.failed]
    numbered = "; ".join(f"[{i}] {sql}" for i, sql in enumerate(ran, 1)) or "none"
    parts = [f"statements of the failed revision {stopped.failed} that ran and committed: {numbered}"]
    if stopped.failed_statement:
        parts.append(f"failed: [{len(ran) + 1}] {stopped.failed_statement}")
    if stopped.remaining is not None:
        first = len(ran) + 1 + bool(stopped.failed_statement)
        parts.append("did not run: " + ("; ".join(f"[{i}] {sql}" for i, sql in enumerate(stopped.remaining, first))
                                        or "none"))
    else:
        parts.append("the statements that did not run are not known (no reviewed SQL with Alembic's revision "
                     "comments in the plan run)")
    found = Finding("PV013", "info", "; ".join(parts), stopped.failed,
                    {"ran": ran, "failed": stopped.failed_statement, "not_run": stopped.remaining})
    return check("PV013", f"statements of the failed revision {stopped.failed}", [found],
                 f"{len(ran)} ran, {'1 failed' if stopped.failed_statement else 'none failed'}")


# -- what the failed revision left behind -------------------------------------------------------------------------

def _words(text: str) -> set[str]:
    return {next(g for g in m.groups() if g).lower() for m in _WORD.finditer(_STRING.sub(" ", text))}


def _names(change: Change) -> set[str]:
    """The identifiers a statement making ``change`` must name: its table and the object's own name(s)."""
    obj = change.object.rsplit(".", 1)[0] if change.op.endswith("_enum_value") else change.object
    return _words(change.table) | _words(obj)


def _made_by(change: Change, statements: list[str]) -> list[tuple[int, str]]:
    names = _names(change)
    return [(i, sql) for i, sql in enumerate(statements, 1) if names <= _words(sql)]


def _describe(change: Change) -> str:
    what = change.op.split("_", 1)[1].replace("_", " ").replace("fk", "foreign key")
    return f"{what} {change.object}" + ("" if change.table in ("", change.object.split(".")[0]) else
                                        f" on {change.table}")


def removal_sql(change: Change, now: Snapshot, dialect: sa.Dialect) -> str:
    """The SQL that removes an object ``change`` added, as Alembic renders it for ``dialect``; "" when none can."""
    buffer = io.StringIO()
    ops = Operations(MigrationContext.configure(dialect=dialect, opts={
        "as_sql": True, "output_buffer": buffer, "literal_binds": True}))
    name, table = change.object.split(".")[-1], change.table
    if "(" in change.object and change.op != "add_table":
        return ""  # an unnamed key or index: there is no name to drop it by
    unique_index = change.op == "add_unique" and table in now.tables and any(
        i.unique and i.name == name for i in now.tables[table].indexes)
    if change.op == "add_column":
        ops.drop_column(table, name)
    elif change.op == "add_index" or unique_index:
        ops.drop_index(name, table_name=table)
    elif change.op in ("add_unique", "add_fk", "add_check"):
        ops.drop_constraint(name, table, type_={"add_unique": "unique", "add_fk": "foreignkey",
                                                "add_check": "check"}[change.op])
    elif change.op == "add_table":
        ops.drop_table(table)
    elif change.op == "add_view":
        ops.execute(f"DROP VIEW {dialect.identifier_preparer.quote(name)}")
    elif change.op == "add_sequence":
        ops.execute(sa.schema.DropSequence(sa.Sequence(name)))
    else:
        return ""
    return "; ".join(_one_line(s) for s in buffer.getvalue().split(";\n") if _one_line(s))


def left_behind(engine: Engine, schema_before: Path | None, stopped: Stopped) -> tuple[Check, list[Change]]:
    """PV014: each change since the snapshot that no applied revision's statement made; and every change found."""
    title = f"objects left behind by {stopped.failed or 'the apply'}"
    if schema_before is None:
        return check("PV014", title, [Finding(
            "PV014", "warn", "what the failed revision left cannot be named: the plan run has no schema snapshot "
            "from before the apply (or the schema had drifted from it)", stopped.failed, {},
            "compare the schema with the backup by hand")], "no snapshot from before the apply"), []
    now = snapshot(engine, sizes=False)
    changes = diff(load_snapshot(schema_before), now).changes
    failed_ran = stopped.ran.get(stopped.failed, [])
    found, expected = [], 0
    for change in sorted(changes, key=lambda c: _ORDER.index(c.op) if c.op in _ORDER else len(_ORDER)):
        by_applied = [(r, i, sql) for r in stopped.applied for i, sql in _made_by(change, stopped.ran.get(r, []))]
        by_failed = _made_by(change, failed_ran)
        if by_applied and not by_failed:
            expected += 1
            continue
        found.append(_left(change, by_applied, by_failed, stopped, removal_sql(change, now, engine.dialect)))
    changed = sum(f.severity == "warn" for f in found)
    detail = "; ".join(part for part in (
        f"{len(found) - changed} left behind" if len(found) > changed else "nothing left behind",
        f"{changed} made by an applied revision and changed by the failed one" if changed else "",
        f"{expected} made by the applied revisions alone") if part)
    return check("PV014", title, found, detail), changes


def _left(change: Change, by_applied: list[tuple[str, int, str]], by_failed: list[tuple[int, str]],
          stopped: Stopped, sql: str) -> Finding:
    what = _describe(change)
    evidence: dict[str, Any] = {"op": change.op, "table": change.table, "detail": change.detail,
                                "revision": stopped.failed if by_failed else None, "remove_sql": sql}
    if by_applied:  # made by an applied revision, then changed by the failed one: it belongs, its definition may not
        revision, number, made = by_applied[0]
        i, statement = by_failed[0]
        evidence.update(applied_by=revision, statement=statement)
        return Finding("PV014", "warn", f"{what} ({change.detail}) was made by the applied revision {revision} (its "
                       f"statement {number}: {made}), then changed by statement [{i}] of the failed revision "
                       f"{stopped.failed}: {statement}; the schema alone does not tell whether that change is undone",
                       change.object, evidence, f"compare it with {revision}'s statement; if [{i}] changed it, undo "
                       "that by hand (the failed revision's downgrade() shows how)")
    if by_failed:
        i, statement = by_failed[0]
        evidence["statement"] = statement
        message = (f"{what} ({change.detail}) was left behind by the failed revision {stopped.failed} "
                   f"(its statement [{i}]: {statement})")
    else:
        message = (f"{what} ({change.detail}) differs from the schema before the apply, yet no statement the apply "
                   "ran names it: it was not expected")
    if change.op.startswith("remove_"):
        return Finding("PV014", "block", f"{message}; what it held is gone", change.object, evidence,
                       "restore it from the backup (the failed revision's downgrade() shows its definition)")
    return Finding("PV014", "block", message, change.object, evidence,
                   sql or f"undo by hand ({change.detail}): the failed revision's downgrade() shows how")


def relabel(findings: list[Finding], left: Check, failed: str) -> list[Finding]:
    """PV004 calls a difference expected "by the plan": for an object the failed revision left, it was not."""
    objects = {f.object for f in left.findings}
    for f in findings:
        if f.code == "PV004" and f.object in objects:
            what = f.message.removeprefix("expected: ").split("; ", 1)[0]
            f.message = f"not planned to stay: {what}; the failed revision {failed} left it (see PV014)"
    return findings
