"""The detail of one choice: what depends on it, the rows in its way, its locks, its SQL, remedies, findings.

A change, a table and a finding are joined to the rest by table and column: a data check, a lock estimate,
a statement or a finding belongs to a change when it is on the change's table and (when both name columns)
on one of its columns. The schema snapshot adds what the recorded change does not list: foreign keys in
and out, indexes, unique and check constraints, and views reading the table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbrunbook.core.evidence import LockEstimate
from dbrunbook.core.results import Finding
from dbrunbook.errors import UsageError
from dbrunbook.schema import Change, Constraint, ForeignKey, Index, Snapshot

if TYPE_CHECKING:
    from dbrunbook.explore._source import Exploration

#: Operations whose object is ``table.column``.
_COLUMN_OPS = ("column", "type", "nullable", "default", "comment", "identity")


@dataclass
class OffendingRows:
    """One data check's rows: how many, a sample (primary key and the columns involved) and the query."""

    code: str
    severity: str
    message: str
    table: str
    columns: list[str]
    count: int
    sample: list[dict[str, Any]] = field(default_factory=list)
    query: str = ""


@dataclass
class Detail:
    """Everything about one choice, as plain data (the views render it; a notebook may use it directly)."""

    kind: str
    key: str
    title: str
    summary: list[str] = field(default_factory=list)
    #: ``{"type", "name", "table", "columns", "relation", "breaks"}`` per dependent or depended-on object.
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    rows: list[OffendingRows] = field(default_factory=list)
    locks: list[LockEstimate] = field(default_factory=list)
    sql: list[str] = field(default_factory=list)
    #: Name to remedy: SQL to review (a data check's) or a sentence (a finding's fix).
    remedies: dict[str, str] = field(default_factory=dict)
    findings: list[tuple[str, Finding]] = field(default_factory=list)


def detail(found: Exploration, key: str) -> Detail:
    """The :class:`Detail` of ``key`` (``change:N``, ``table:NAME``, ``finding:N``) in ``found``."""
    kind, _, rest = key.partition(":")
    try:
        if kind == "change":
            return _change(found, int(rest), key)
        if kind == "table":
            if rest not in found.tables():
                raise KeyError(rest)
            return _table(found, rest, key)
        if kind == "finding":
            return _finding(found, int(rest), key)
    except (ValueError, IndexError, KeyError):
        pass
    raise UsageError(f"nothing to explore under {key!r}; choose an item of Exploration.items()")


def change_columns(change: Change) -> list[str]:
    """The columns a change is about; [] when it is about a whole table (or they cannot be told)."""
    if change.op == "rename_column":
        return [str(change.before), str(change.after)]
    if "." in change.object and change.op.endswith(_COLUMN_OPS):
        return [change.object.split(".", 1)[1]]
    value = change.after if change.after is not None else change.before
    if isinstance(value, dict) and isinstance(value.get("columns"), list):
        return [str(c) for c in value["columns"]]
    if isinstance(value, list) and value and isinstance(value[0], list):  # an index: [columns, where]
        return [str(c) for c in value[0]]
    if isinstance(value, list) and all(isinstance(c, str) for c in value):
        return list(value)
    return []


def _on(table: str, columns: list[str], other_table: str, other_columns: list[str]) -> bool:
    """Whether something on ``other_table(other_columns)`` concerns ``table(columns)``."""
    return other_table == table and (not columns or not other_columns or bool(set(columns) & set(other_columns)))


def _object_place(obj: str, found: Exploration) -> tuple[str, list[str]]:
    """The table and columns a finding's object names: ``users.email``, ``users``, a change's object (a
    constraint being added) or the name of an index or constraint of the schema."""
    for change in found.changes:
        if change.object == obj and "." not in obj:
            return change.table, change_columns(change)
    schema = found.schema
    table, _, column = obj.partition(".")
    if schema is not None and table not in schema.tables:
        for t in schema.tables.values():
            named: list[Index | Constraint | ForeignKey] = [*t.indexes, *t.uniques, *t.checks, *t.foreign_keys]
            hit = next((n for n in named if n.name == obj), None)
            if hit is not None:
                return t.name, list(hit.columns)
    return table, [column] if column else []


def _rows(found: Exploration, table: str, columns: list[str]) -> list[OffendingRows]:
    return [OffendingRows(str(r.get("code", "")), str(r.get("severity", "")), str(r.get("message", "")),
                          str(r.get("table", "")), list(r.get("columns", [])), int(r.get("count", 0)),
                          list(r.get("sample", [])), str(r.get("query", "")))
            for r in found.checks if _on(table, columns, str(r.get("table", "")), list(r.get("columns", [])))]


def _remedies(found: Exploration, table: str, columns: list[str],
              findings: list[tuple[str, Finding]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in found.checks:
        if _on(table, columns, str(r.get("table", "")), list(r.get("columns", []))) and r.get("count"):
            for name, sql in dict(r.get("remedies", {})).items():
                out[f"{r.get('code')} {name}"] = str(sql)
    for _, f in findings:
        if f.fix and not f.code.startswith("DC"):  # a data check's fix is its remedies, listed above
            out.setdefault(f"{f.code} {f.object}".strip(), f.fix)
    return out


def _mentions(statement: str, table: str) -> bool:
    return re.search(rf"(?<![\w$]){re.escape(table)}(?![\w$])", statement, re.IGNORECASE) is not None


def _sql(found: Exploration, table: str) -> list[str]:
    """The upgrade statements on ``table``: those its lock estimates name (a batch's temporary copy too), and
    those that mention it."""
    locked = {lk.statement - 1 for lk in found.locks if lk.table == table}
    return [s for i, s in enumerate(found.upgrade_sql) if i in locked or _mentions(s, table)]


def _findings_on(found: Exploration, table: str, columns: list[str]) -> list[tuple[str, Finding]]:
    return [(stage, f) for stage, f in found.findings if _on(table, columns, *_object_place(f.object, found))]


def structure(schema: Snapshot | None, table: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """What ties ``table`` (``columns`` of it, when given) to the rest of ``schema``: keys, indexes, views."""
    if schema is None or table not in schema.tables:
        return []
    cols = columns or []
    own = schema.tables[table]
    deps: list[dict[str, Any]] = []

    def add(kind: str, name: str | None, owner: str, on: list[str], relation: str) -> None:
        if not cols or set(cols) & set(on) or kind == "view":
            deps.append({"type": kind, "name": name or f"{owner}({', '.join(on)})", "table": owner, "columns": on,
                         "relation": relation, "breaks": False})

    for other in schema.tables.values():
        for fk in other.foreign_keys:
            if fk.ref_table == table:
                add("foreign_key", fk.name, other.name, fk.ref_columns,
                    f"{other.name}({', '.join(fk.columns)}) references it")
    for fk in own.foreign_keys:
        add("foreign_key", fk.name, table, fk.columns, f"references {fk.ref_table}({', '.join(fk.ref_columns)})")
    if own.primary_key:
        add("primary_key", f"{table}.primary_key", table, own.primary_key, "primary key")
    for ix in own.indexes:
        add("index", ix.name, table, ix.columns, "unique index" if ix.unique else "index")
    for uq in own.uniques:
        add("unique", uq.name, table, uq.columns, "unique constraint")
    for ck in own.checks:
        add("check", ck.name, table, [c.name for c in own.columns if c.name in (ck.sqltext or "")], ck.sqltext or "")
    for view in schema.views.values():
        if table in view.tables and (not cols or not view.columns or set(cols) & set(view.columns)):
            add("view", view.name, table, cols, "view reads it")
    return deps


def _merge(recorded: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The change's recorded dependencies (they know what breaks), then the snapshot's others."""
    seen = {(d.get("type"), d.get("name")) for d in recorded}
    return [*recorded, *(d for d in found if (d["type"], d["name"]) not in seen)]


def _change(found: Exploration, index: int, key: str) -> Detail:
    change = found.changes[index]
    cols = change_columns(change)
    findings = _findings_on(found, change.table, cols)
    summary = [f"{change.op} on {change.table}: {change.detail}", f"kind: {change.kind} ({', '.join(change.classes)})"]
    if change.rows_affected is not None:
        summary.append(f"rows affected: {change.rows_affected}")
    return Detail("change", key, f"{change.kind or 'change'}: {change.object}", summary,
                  _merge(change.dependencies, structure(found.schema, change.table, cols)),
                  _rows(found, change.table, cols), [lk for lk in found.locks if lk.table == change.table],
                  _sql(found, change.table), _remedies(found, change.table, cols, findings), findings)


def _table(found: Exploration, name: str, key: str) -> Detail:
    table = found.schema.tables.get(name) if found.schema else None
    summary = [f"{len(table.columns)} columns; {table.rows} rows; {table.bytes} bytes" if table is not None
               else "not in the schema yet (a change adds it)"]
    changes = [c for c in found.changes if c.table == name]
    summary += [f"change: {c.kind} {c.object} - {c.detail}" for c in changes]
    findings = _findings_on(found, name, [])
    return Detail("table", key, f"table {name}", summary, structure(found.schema, name), _rows(found, name, []),
                  [lk for lk in found.locks if lk.table == name], _sql(found, name),
                  _remedies(found, name, [], findings), findings)


def _finding(found: Exploration, index: int, key: str) -> Detail:
    from dbrunbook.core import codes

    stage, finding = found.findings[index]
    table, cols = _object_place(finding.object, found)
    code = next((c for c in codes.declared() if c.code == finding.code), None)
    summary = [f"{finding.severity} in {stage}: {finding.message}"]
    if code is not None:
        summary.append(f"{code.code} {code.name}: {code.summary}")
    summary += [f"{k}: {v}" for k, v in finding.evidence.items() if k not in ("sample", "query", "sql")]
    # evidence "sql" is a statement; "query" is a data check's SQL but elsewhere a query's name (stage 08)
    sql = [str(finding.evidence[k]) for k in ("sql", "query")
           if str(finding.evidence.get(k) or "").lstrip().upper().startswith(("SELECT", "WITH", "ALTER", "CREATE",
                                                                               "UPDATE", "DELETE", "INSERT", "DROP"))]
    sql += _sql(found, table) if table else []
    remedies = _remedies(found, table, cols, [(stage, finding)]) if table else {}
    if finding.fix and finding.code.startswith("DC") and not remedies:
        remedies["fix"] = finding.fix
    return Detail("finding", key, f"{finding.code} {finding.object}".strip(), summary,
                  structure(found.schema, table, cols), _rows(found, table, cols),
                  [lk for lk in found.locks if lk.table == table], list(dict.fromkeys(sql)), remedies,
                  [(stage, finding)])
