"""ALTER TABLE, column definitions and constraints read from pglast nodes into :class:`Action`s.

Private to :mod:`._pg`. A constraint written inside a column definition (``ADD COLUMN b text
UNIQUE``, ``... REFERENCES users (id)``, ``... PRIMARY KEY``) becomes an ``add_constraint``
action beside the ``add_column``, as if it were written separately, so the constraint and
index rules see it.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pglast import ast
from pglast.enums import AlterTableType as AT
from pglast.enums import BoolExprType, ConstrType, NullTestType
from pglast.stream import RawStream

from dbrunbook import dialects
from dbrunbook.sql._actions import Action

#: Types that are shorthand for an integer with a sequence default.
_SERIAL = {"serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"}

#: ALTER TABLE commands understood to change nothing a rule looks at.
_HARMLESS = {AT.AT_ChangeOwner, AT.AT_SetStatistics, AT.AT_SetStorage, AT.AT_SetCompression, AT.AT_SetOptions,
             AT.AT_ResetOptions, AT.AT_SetRelOptions, AT.AT_ResetRelOptions, AT.AT_ReplaceRelOptions,
             AT.AT_ReplicaIdentity, AT.AT_ClusterOn, AT.AT_DropCluster, AT.AT_GenericOptions,
             AT.AT_AlterColumnGenericOptions, AT.AT_EnableTrig, AT.AT_EnableAlwaysTrig, AT.AT_EnableReplicaTrig,
             AT.AT_EnableTrigAll, AT.AT_EnableTrigUser, AT.AT_DisableTrig, AT.AT_DisableTrigAll,
             AT.AT_DisableTrigUser, AT.AT_EnableRule, AT.AT_EnableAlwaysRule, AT.AT_EnableReplicaRule,
             AT.AT_DisableRule, AT.AT_DetachPartitionFinalize}

_ROW_SECURITY = {AT.AT_EnableRowSecurity: "enable", AT.AT_DisableRowSecurity: "disable",
                 AT.AT_ForceRowSecurity: "force", AT.AT_NoForceRowSecurity: "no force"}


def render(node: Any) -> str:
    """``node`` printed back as SQL (``pg_catalog.`` left out of type names)."""
    if node is None:
        return ""
    return str(RawStream()(node)).replace("pg_catalog.", "")


def names(node: Any) -> str:
    """The last part of a qualified name (a tuple of String nodes, a TypeName, or a RangeVar)."""
    if isinstance(node, ast.TypeName):
        node = node.names
    if isinstance(node, ast.RangeVar):
        return str(node.relname)
    if isinstance(node, (tuple, list)) and node:
        last = node[-1]
        return str(last.sval) if isinstance(last, ast.String) else render(last)
    return str(node.sval) if isinstance(node, ast.String) else ""


def _nodes(node: Any) -> Iterator[Any]:
    """``node`` and every AST node inside it, depth first."""
    if isinstance(node, ast.Node):
        yield node
        for attr in node:
            yield from _nodes(getattr(node, attr))
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from _nodes(item)


def _calls(node: Any) -> set[str]:
    """Lower-cased names of every function called anywhere inside ``node``."""
    return {names(n.funcname).lower() for n in _nodes(node) if isinstance(n, ast.FuncCall)}


def column_facts(coldef: Any, dialect: str) -> dict[str, Any]:
    """The facts rules read of a column definition: type, NOT NULL, default, volatile calls, generated."""
    sql_type = render(coldef.typeName).lower()
    constraints = list(coldef.constraints or ())
    default = next((c.raw_expr for c in constraints if c.contype == ConstrType.CONSTR_DEFAULT), None)
    calls = _calls(default)
    identity = any(c.contype == ConstrType.CONSTR_IDENTITY for c in constraints)
    if sql_type in _SERIAL or identity:
        calls.add("nextval")  # each existing row takes its own value from the sequence
    generated = next((c for c in constraints if c.contype == ConstrType.CONSTR_GENERATED), None)
    not_null = bool(coldef.is_not_null) or any(
        c.contype in (ConstrType.CONSTR_NOTNULL, ConstrType.CONSTR_PRIMARY) for c in constraints)
    return {"type": sql_type, "not_null": not_null, "default": render(default) if default is not None else None,
            "volatile_default": sorted(calls & _volatile(dialect)),
            "calls": sorted(calls), "if_not_exists": False, "identity": identity,
            "generated": "stored" if generated is not None else "",
            "generated_expression": render(generated.raw_expr) if generated is not None else ""}


def _volatile(dialect: str) -> frozenset[str]:
    found = dialects.get(dialect)
    return found.volatile_functions if found else frozenset()


def not_null_columns(expr: Any) -> list[str]:
    """Columns a CHECK expression proves NOT NULL: ``col IS NOT NULL``, alone or ANDed with others."""
    if isinstance(expr, ast.BoolExpr) and expr.boolop == BoolExprType.AND_EXPR:
        return [c for arg in expr.args or () for c in not_null_columns(arg)]
    if (isinstance(expr, ast.NullTest) and expr.nulltesttype == NullTestType.IS_NOT_NULL
            and isinstance(expr.arg, ast.ColumnRef)):
        return [names(expr.arg.fields)]
    return []


def constraint_action(con: Any, table: str, column: str = "") -> Action | None:
    """The ``add_constraint`` of a table constraint, or of one written in ``column``'s definition."""
    kinds = {ConstrType.CONSTR_FOREIGN: "foreign_key", ConstrType.CONSTR_UNIQUE: "unique",
             ConstrType.CONSTR_PRIMARY: "primary_key", ConstrType.CONSTR_CHECK: "check",
             ConstrType.CONSTR_EXCLUSION: "exclusion"}
    ctype = kinds.get(con.contype)
    if ctype is None:
        return None
    own = [names(k) for k in (con.fk_attrs if ctype == "foreign_key" else con.keys) or ()]
    details: dict[str, Any] = {
        "type": ctype, "not_valid": bool(con.skip_validation), "references": names(con.pktable),
        "columns": own or ([column] if column and ctype != "check" else []),
        "using_index": bool(con.indexname), "expression": render(con.raw_expr) if ctype == "check" else "",
        "not_null_columns": not_null_columns(con.raw_expr) if ctype == "check" else [], "inline": bool(column)}
    if con.indexname:
        details["index"] = str(con.indexname)
    return Action("add_constraint", table, name=str(con.conname or _default_name(table, ctype, details["columns"])),
                  details=details)


def _default_name(table: str, ctype: str, columns: list[str]) -> str:
    """The name PostgreSQL gives an unnamed constraint (t_pkey, t_a_key, t_a_fkey, t_check)."""
    suffix = {"primary_key": "pkey", "unique": "key", "foreign_key": "fkey", "check": "check", "exclusion": "excl"}
    parts = [table] + ([] if ctype == "primary_key" else columns[:1]) + [suffix[ctype]]
    return "_".join(parts)[:63]


def _add_column(cmd: Any, table: str, dialect: str) -> list[Action]:
    coldef = cmd.def_
    facts = column_facts(coldef, dialect)
    facts["if_not_exists"] = bool(cmd.missing_ok)
    column = str(coldef.colname)
    out = [Action("add_column", table, column, details=facts)]
    for con in coldef.constraints or ():
        action = constraint_action(con, table, column)
        if action is not None:
            out.append(action)
    return out


def _command(cmd: Any, table: str, dialect: str) -> list[Action]:
    st, column = cmd.subtype, str(cmd.name or "")
    if st == AT.AT_AddColumn:
        return _add_column(cmd, table, dialect)
    if st == AT.AT_DropColumn:
        return [Action("drop_column", table, column, details={"if_exists": bool(cmd.missing_ok)})]
    if st == AT.AT_AlterColumnType:
        return [Action("alter_type", table, column, details={
            "type": render(cmd.def_.typeName).lower(), "using": render(cmd.def_.raw_default)})]
    if st in (AT.AT_SetNotNull, AT.AT_DropNotNull):
        return [Action("set_not_null" if st == AT.AT_SetNotNull else "drop_not_null", table, column)]
    if st == AT.AT_ColumnDefault:
        if cmd.def_ is None:
            return [Action("drop_default", table, column)]
        return [Action("set_default", table, column, details={"default": render(cmd.def_)})]
    if st == AT.AT_AddConstraint:
        action = constraint_action(cmd.def_, table)
        return [action] if action is not None else [Action("unknown", table, details={"command": "add constraint"})]
    if st == AT.AT_DropConstraint:
        return [Action("drop_constraint", table, name=column, details={"if_exists": bool(cmd.missing_ok)})]
    if st == AT.AT_ValidateConstraint:
        return [Action("validate_constraint", table, name=column)]
    if st in (AT.AT_DetachPartition, AT.AT_AttachPartition):
        kind = "detach_partition" if st == AT.AT_DetachPartition else "attach_partition"
        return [Action(kind, table, name=names(cmd.def_.name), details={"concurrently": bool(cmd.def_.concurrent)})]
    if st in _ROW_SECURITY:
        return [Action("row_security", table, details={"mode": _ROW_SECURITY[st]})]
    if st in _HARMLESS:
        return [Action("other", table, details={"command": st.name[3:]})]
    return [Action("unknown", table, column, details={"command": st.name[3:],
                                                      "what": f"ALTER TABLE {table} {st.name[3:]}"})]


def alter_table(node: Any, dialect: str) -> list[Action]:
    """One action per command of ``ALTER TABLE t cmd, cmd ...`` (more for a column with constraints)."""
    table = names(node.relation)
    actions = [a for cmd in node.cmds or () for a in _command(cmd, table, dialect)]
    for action in actions:
        action.details.setdefault("algorithm", "")
        action.details.setdefault("lock", "")
        action.details.setdefault("if_table_exists", bool(node.missing_ok))
    return actions


def insert_action(node: Any) -> Action:
    """INSERT, and for ``INSERT INTO t (cols) SELECT ... FROM s``: which columns of s fill which of t."""
    details: dict[str, Any] = {"verb": "insert", "source": "", "copies": []}
    select = node.selectStmt
    if isinstance(select, ast.SelectStmt) and select.fromClause and not select.valuesLists:
        sources = select.fromClause
        details["source"] = names(sources[0]) if len(sources) == 1 and isinstance(sources[0], ast.RangeVar) else ""
        columns = [str(c.name) for c in node.cols or ()]
        targets = list(select.targetList or ())
        star = any(isinstance(t.val, ast.ColumnRef) and isinstance((t.val.fields or (None,))[-1], ast.A_Star)
                   for t in targets)
        if columns and len(columns) == len(targets) and not star:
            details["copies"] = [[column, _column_refs(target.val)]
                                 for column, target in zip(columns, targets, strict=True)]
    return Action("dml", names(node.relation), details=details)


def _column_refs(node: Any) -> list[str]:
    """The column names ``node`` reads, in order."""
    return [names(n.fields) for n in _nodes(node) if isinstance(n, ast.ColumnRef)]
