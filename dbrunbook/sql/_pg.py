"""PostgreSQL statements read with pglast (PostgreSQL's own parser) into :class:`Action`s.

Private to :mod:`.model`, which picks this reader for the ``postgresql`` dialect (sqlglot
reads the others). The SQL is split on the semicolons of PostgreSQL's own scanner, so dollar
quoting and comments are handled as the server handles them; each statement is parsed alone,
so one that cannot be parsed does not hide the others. ALTER TABLE is read in :mod:`._pg_alter`.

Every statement maps to actions: a kind the rules know, ``other`` for statements that are
understood and change nothing a rule looks at (a view, a comment, a grant ...), or
``unknown`` for what this reader does not understand, which lint reports (LN004) rather
than dropping.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pglast import ast, parse_sql
from pglast.enums import ObjectType, ReindexObjectType, TransactionStmtKind, VariableSetKind
from pglast.parser import ParseError, scan

from dbrunbook.sql._actions import Action
from dbrunbook.sql._errors import UnreadableSource
from dbrunbook.sql._pg_alter import alter_table, column_facts, insert_action, names, render

__all__ = ["read_statements"]

#: Statements understood to change no table data or definition a rule looks at.
_HARMLESS = {"SelectStmt", "ViewStmt", "CommentStmt", "GrantStmt", "GrantRoleStmt", "CreateSeqStmt",
             "AlterSeqStmt", "CreateExtensionStmt", "CreateFunctionStmt", "DoStmt", "CreateTrigStmt",
             "CreateSchemaStmt", "CreateRoleStmt", "AlterRoleStmt", "CreatePolicyStmt", "AlterPolicyStmt",
             "AlterOwnerStmt", "VariableShowStmt", "NotifyStmt", "ExplainStmt", "AlterDefaultPrivilegesStmt",
             "CompositeTypeStmt", "CreateStatsStmt", "ListenStmt", "UnlistenStmt", "DiscardStmt",
             "CheckPointStmt", "DeclareCursorStmt", "ClosePortalStmt", "FetchStmt", "CallStmt", "CopyStmt",
             "AlterFunctionStmt", "CreatePLangStmt", "SecLabelStmt", "DefineStmt", "CreateCastStmt",
             "CreateConversionStmt", "AlterCollationStmt", "CreateRangeStmt"}

#: DROP of these objects takes no table data with it.
_HARMLESS_DROPS = {ObjectType.OBJECT_VIEW, ObjectType.OBJECT_MATVIEW, ObjectType.OBJECT_SEQUENCE,
                   ObjectType.OBJECT_FUNCTION, ObjectType.OBJECT_PROCEDURE, ObjectType.OBJECT_ROUTINE,
                   ObjectType.OBJECT_TRIGGER, ObjectType.OBJECT_POLICY, ObjectType.OBJECT_RULE,
                   ObjectType.OBJECT_AGGREGATE, ObjectType.OBJECT_OPERATOR, ObjectType.OBJECT_COLLATION,
                   ObjectType.OBJECT_STATISTIC_EXT, ObjectType.OBJECT_CAST}


def _split(sql: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line, text, first words) of each statement; the text keeps the comments before it."""
    try:
        tokens = scan(sql)
    except ParseError as exc:  # an unterminated quote or comment: no statement boundary can be trusted
        raise UnreadableSource(f"cannot read the SQL: {exc}") from None
    start, first, words = 0, None, list[str]()
    for token in tokens:
        if token.name == "ASCII_59":
            if first is not None:
                yield sql.count("\n", 0, first) + 1, sql[start:token.start], words
            start, first, words = token.end + 1, None, []
        elif token.name not in ("SQL_COMMENT", "C_COMMENT"):
            first = token.start if first is None else first
            if len(words) < 3:
                words.append(sql[token.start:token.end + 1])
    if first is not None:
        yield sql.count("\n", 0, first) + 1, sql[start:], words


def read_statements(sql: str, dialect: str) -> Iterator[tuple[int, str, list[Action]]]:
    """(line, text, actions) of each statement of ``sql``; ``[Action('unparsed')]`` for one pglast rejects."""
    for line, chunk, words in _split(sql):
        what = " ".join(words)
        try:
            raws = parse_sql(chunk)
        except ParseError as exc:
            yield line, chunk, [Action("unparsed", details={"what": what, "error": str(exc)})]
            continue
        actions = [a for raw in raws for a in actions_of(raw.stmt, dialect)]
        for action in actions:
            if action.kind == "unknown":
                action.details.setdefault("what", what)
        yield line, chunk, actions or [Action("other")]


def actions_of(node: Any, dialect: str) -> list[Action]:
    """The actions of one parsed statement; ``unknown`` for a statement this reader does not understand."""
    name = type(node).__name__
    reader = _READERS.get(name)
    if reader is not None:
        return reader(node, dialect)
    if name in _HARMLESS:
        return [Action("other", details={"statement": name})]
    return [Action("unknown", details={"statement": name})]


def _rel(node: Any) -> str:
    return str(node.relname) if isinstance(node, ast.RangeVar) else ""


def _alter(node: Any, dialect: str) -> list[Action]:
    if node.objtype not in (ObjectType.OBJECT_TABLE, ObjectType.OBJECT_FOREIGN_TABLE):
        return [Action("other", _rel(node.relation), details={"statement": f"alter {node.objtype.name[7:].lower()}"})]
    return alter_table(node, dialect)


def _create_table(node: Any, dialect: str) -> list[Action]:
    columns = {str(c.colname): column_facts(c, dialect) for c in node.tableElts or () if isinstance(c, ast.ColumnDef)}
    return [Action("create_table", _rel(node.relation), details={
        "if_not_exists": bool(node.if_not_exists), "columns": columns, "as_select": False,
        "temporary": node.relation.relpersistence == "t"})]


def _create_table_as(node: Any, dialect: str) -> list[Action]:
    if node.objtype != ObjectType.OBJECT_TABLE:
        return [Action("other", details={"statement": "create materialized view"})]
    return [Action("create_table", _rel(node.into.rel), details={
        "if_not_exists": bool(node.if_not_exists), "columns": {}, "as_select": True})]


def _create_index(node: Any, dialect: str) -> list[Action]:
    columns = [str(p.name) for p in node.indexParams or () if isinstance(p, ast.IndexElem) and p.name]
    return [Action("create_index", _rel(node.relation), name=str(node.idxname or ""), details={
        "concurrently": bool(node.concurrent), "unique": bool(node.unique),
        "if_not_exists": bool(node.if_not_exists), "columns": columns})]


def _drop(node: Any, dialect: str) -> list[Action]:
    details = {"if_exists": bool(node.missing_ok), "concurrently": bool(node.concurrent)}
    kinds = {ObjectType.OBJECT_TABLE: "drop_table", ObjectType.OBJECT_INDEX: "drop_index",
             ObjectType.OBJECT_TYPE: "drop_type", ObjectType.OBJECT_DOMAIN: "drop_type"}
    kind = kinds.get(node.removeType)
    if kind is None:
        word = node.removeType.name[7:].lower()
        return [Action("other" if node.removeType in _HARMLESS_DROPS else "unknown",
                       details={"statement": f"drop {word}"})]
    out = []
    for obj in node.objects or ():
        name = names(obj.names if isinstance(obj, ast.TypeName) else obj)
        if kind == "drop_table":
            out.append(Action(kind, name, details=dict(details)))
        else:
            out.append(Action(kind, name=name, details=dict(details)))
    return out


def _truncate(node: Any, dialect: str) -> list[Action]:
    return [Action("truncate", _rel(r)) for r in node.relations or ()]


def _set(node: Any, dialect: str) -> list[Action]:
    if node.kind in (VariableSetKind.VAR_SET_DEFAULT, VariableSetKind.VAR_RESET):
        value = "DEFAULT"
    elif node.kind == VariableSetKind.VAR_SET_VALUE and node.args:
        value = ", ".join(_const(a) for a in node.args)
    else:  # SET TRANSACTION ..., RESET ALL, SET ... FROM CURRENT
        return [Action("other", details={"statement": "set"})]
    # The whole dotted name: a custom setting such as foo.lock_timeout is not lock_timeout.
    return [Action("set", name=str(node.name).lower(), details={"value": value, "local": bool(node.is_local)})]


def _const(node: Any) -> str:
    if isinstance(node, ast.A_Const) and node.val is not None:
        value = node.val
        for attr in ("sval", "ival", "fval", "boolval"):
            if hasattr(value, attr):
                return str(getattr(value, attr))
    return render(node)


def _transaction(node: Any, dialect: str) -> list[Action]:
    kind = node.kind
    if kind in (TransactionStmtKind.TRANS_STMT_BEGIN, TransactionStmtKind.TRANS_STMT_START):
        return [Action("begin")]
    if kind in (TransactionStmtKind.TRANS_STMT_COMMIT, TransactionStmtKind.TRANS_STMT_ROLLBACK,
                TransactionStmtKind.TRANS_STMT_PREPARE):
        return [Action("commit")]
    return [Action("other", details={"statement": "savepoint"})]


def _update(node: Any, dialect: str) -> list[Action]:
    return [Action("dml", _rel(node.relation), details={"verb": "update"})]


def _delete(node: Any, dialect: str) -> list[Action]:
    if _rel(node.relation).lower() == "pg_enum":
        return [Action("drop_enum_value", name="pg_enum")]
    return [Action("dml", _rel(node.relation), details={"verb": "delete"})]


def _create_enum(node: Any, dialect: str) -> list[Action]:
    values = [str(v.sval) for v in node.vals or ()]
    return [Action("create_type", name=names(node.typeName), details={"values": values})]


def _alter_enum(node: Any, dialect: str) -> list[Action]:
    if node.oldVal:
        return [Action("rename_enum_value", name=names(node.typeName),
                       details={"value": str(node.oldVal), "to": str(node.newVal)})]
    return [Action("add_enum_value", name=names(node.typeName), details={"value": str(node.newVal)})]


def _rename(node: Any, dialect: str) -> list[Action]:
    kind, to = node.renameType, str(node.newname)
    if kind == ObjectType.OBJECT_TABLE:
        return [Action("rename_table", _rel(node.relation), details={"to": to})]
    if kind == ObjectType.OBJECT_COLUMN and node.relationType == ObjectType.OBJECT_TABLE:
        return [Action("rename_column", _rel(node.relation), str(node.subname), details={"to": to})]
    if kind in (ObjectType.OBJECT_TYPE, ObjectType.OBJECT_DOMAIN):
        return [Action("rename_type", name=names(node.object), details={"to": to})]
    if kind == ObjectType.OBJECT_SCHEMA:
        return [Action("rename_schema", name=str(node.subname), details={"to": to})]
    return [Action("other", _rel(node.relation), details={"statement": f"rename {kind.name[7:].lower()}", "to": to})]


def _reindex(node: Any, dialect: str) -> list[Action]:
    target = node.kind.name.removeprefix("REINDEX_OBJECT_").lower()
    concurrently = any(p.defname == "concurrently" and render(p.arg).lower() not in ("false", "off", "0")
                       if p.arg is not None else p.defname == "concurrently" for p in node.params or ())
    table = _rel(node.relation) if node.kind == ReindexObjectType.REINDEX_OBJECT_TABLE else ""
    name = _rel(node.relation) if node.relation is not None else str(node.name or "")
    return [Action("reindex", table, name=name, details={"concurrently": concurrently, "target": target})]


def _vacuum(node: Any, dialect: str) -> list[Action]:
    full = any(o.defname == "full" for o in node.options or ())
    if not node.is_vacuumcmd:
        return [Action("other", details={"statement": "analyze"})]
    tables = [_rel(r.relation) for r in node.rels or ()] or [""]
    return [Action("vacuum", t, details={"full": full}) for t in tables]


def _cluster(node: Any, dialect: str) -> list[Action]:
    return [Action("cluster", _rel(node.relation), name=str(node.indexname or ""))]


def _lock(node: Any, dialect: str) -> list[Action]:
    return [Action("lock_table", _rel(r), details={"mode": int(node.mode)}) for r in node.relations or ()]


def _drop_database(node: Any, dialect: str) -> list[Action]:
    return [Action("drop_database", name=str(node.dbname), details={"if_exists": bool(node.missing_ok)})]


def _alter_domain(node: Any, dialect: str) -> list[Action]:
    ops = {"C": "add_constraint", "X": "drop_constraint", "V": "validate_constraint", "O": "set_not_null",
           "N": "drop_not_null", "T": "set_default"}
    constraint = node.def_ if isinstance(node.def_, ast.Constraint) else None
    return [Action("alter_domain", name=names(node.typeName), details={
        "op": ops.get(str(node.subtype), "other"),
        "constraint": str(node.name or getattr(constraint, "conname", "") or ""),
        "not_valid": bool(constraint is not None and constraint.skip_validation)})]


def _create_domain(node: Any, dialect: str) -> list[Action]:
    return [Action("create_domain", name=names(node.domainname))]


_READERS: dict[str, Callable[[Any, str], list[Action]]] = {
    "AlterTableStmt": _alter, "CreateStmt": _create_table, "CreateTableAsStmt": _create_table_as,
    "IndexStmt": _create_index, "DropStmt": _drop, "TruncateStmt": _truncate, "VariableSetStmt": _set,
    "TransactionStmt": _transaction, "InsertStmt": lambda n, d: [insert_action(n)], "UpdateStmt": _update,
    "DeleteStmt": _delete, "CreateEnumStmt": _create_enum, "AlterEnumStmt": _alter_enum, "RenameStmt": _rename,
    "ReindexStmt": _reindex, "VacuumStmt": _vacuum, "ClusterStmt": _cluster, "LockStmt": _lock,
    "DropdbStmt": _drop_database, "AlterDomainStmt": _alter_domain, "CreateDomainStmt": _create_domain,
}
