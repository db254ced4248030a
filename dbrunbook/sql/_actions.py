"""Actions, and how each sqlglot statement tree becomes them (the model's reading of SQL).

Private to :mod:`.model`, which splits the SQL, parses each statement and keeps the actions
read here; :class:`Action` is re-exported there.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from dbrunbook import dialects

#: Functions whose value differs per row, per dialect (each dialect's ``volatile_functions``): a default
#: using one makes ADD COLUMN rewrite the table. Stable functions (now(), current_timestamp,
#: statement_timestamp()) give one value per statement and are stored once in the catalog; they are not listed.
VOLATILE_FUNCTIONS: dict[str, frozenset[str]] = {d.name: d.volatile_functions for d in dialects.registered()}


@dataclass
class Action:
    """One change a statement makes, e.g. ``add_column`` of ``orders.currency``."""

    kind: str
    table: str = ""
    column: str = ""
    name: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def object(self) -> str:
        return ".".join(p for p in (self.table, self.column or self.name) if p)


def _name(node: exp.Expression | None) -> str:
    if node is None:
        return ""
    if isinstance(node, (exp.Table, exp.Column)):
        return node.name
    return node.name if hasattr(node, "name") else str(node)


def _type_of(node: exp.Expression | None, read: str) -> str:
    return node.sql(read).lower() if node is not None else ""


def _drop_target(node: exp.Drop) -> str:
    targets = node.args.get("tables") or node.expressions
    return _name(targets[0]) if targets else ""


def _default_of(coldef: exp.ColumnDef) -> exp.Expression | None:
    for constraint in coldef.args.get("constraints") or []:
        if isinstance(constraint.kind, exp.DefaultColumnConstraint):
            value: exp.Expression | None = constraint.kind.this
            return value
    return None


def _not_null(coldef: exp.ColumnDef) -> bool:
    return any(isinstance(c.kind, exp.NotNullColumnConstraint) and not c.kind.args.get("allow_null")
               for c in coldef.args.get("constraints") or [])


def _column_facts(coldef: exp.ColumnDef, read: str, dialect: str) -> dict[str, Any]:
    default = _default_of(coldef)
    # Named as the dialect spells them (sqlglot calls random() Rand): the table is per dialect.
    calls = {str(f.this).lower() if isinstance(f, exp.Anonymous) else f.sql(read).split("(", 1)[0].strip().lower()
             for f in (default.find_all(exp.Func) if default is not None else [])}
    sql_type = _type_of(coldef.args.get("kind"), read)
    found = dialects.get(dialect)
    if found is not None and sql_type in found.serial_types:
        calls.add("nextval")  # a serial column is an integer with a nextval() default
    return {"type": sql_type, "not_null": _not_null(coldef),
            "default": default.sql(read) if default is not None else None,
            "volatile_default": sorted(calls & (found.volatile_functions if found else frozenset())),
            "calls": sorted(calls), "if_not_exists": bool(coldef.args.get("exists"))}


def _not_null_columns(expr: Any) -> list[str]:
    """Columns a CHECK expression proves NOT NULL: ``col IS NOT NULL``, alone or ANDed with others."""
    if isinstance(expr, exp.Paren):
        return _not_null_columns(expr.this)
    if isinstance(expr, exp.And):
        return [c for part in expr.flatten() for c in _not_null_columns(part)]
    if (isinstance(expr, exp.Not) and isinstance(expr.this, exp.Is) and isinstance(expr.this.this, exp.Column)
            and isinstance(expr.this.expression, exp.Null)):
        return [expr.this.this.name]
    return []


def _constraint_action(node: exp.Expression, table: str, alter: exp.Alter, read: str) -> Action:
    constraint = node.find(exp.Constraint)
    name = _name(constraint.this) if constraint else ""
    parts = constraint.expressions if constraint else node.expressions
    first = parts[0] if parts else node
    ctype = {exp.ForeignKey: "foreign_key", exp.UniqueColumnConstraint: "unique",
             exp.PrimaryKey: "primary_key", exp.PrimaryKeyColumnConstraint: "primary_key",
             exp.CheckColumnConstraint: "check"}.get(type(first), "other")
    if isinstance(first, exp.IndexColumnConstraint):  # MySQL: ALTER TABLE t ADD INDEX ix (c)
        return Action("create_index", table, name=_name(first.this), details={
            "concurrently": False, "unique": False, "if_not_exists": False,
            "columns": [c.name for c in first.expressions]})
    schema = first.this if isinstance(first.this, exp.Schema) else None
    if schema is not None and not name:  # MySQL: ADD UNIQUE INDEX ix (c) names the index in a schema node
        name = _name(schema.this)
    references = ""
    if isinstance(first, exp.ForeignKey):
        ref = first.find(exp.Reference)
        references = _name(ref.find(exp.Table)) if ref else ""
        columns = [_name(c) for c in first.expressions]
    elif ctype == "check":
        columns = []
    else:
        columns = [c.name for c in (schema.expressions if schema is not None else first.find_all(exp.Identifier))]
    return Action("add_constraint", table, name=name, details={
        "type": ctype, "not_valid": bool(alter.args.get("not_valid")), "references": references,
        "columns": columns, "using_index": False,
        "expression": first.this.sql(read) if ctype == "check" and first.this is not None else "",
        "not_null_columns": _not_null_columns(first.this) if ctype == "check" else []})


def _alter_actions(alter: exp.Alter, read: str, dialect: str) -> list[Action]:
    table = _name(alter.this)
    if str(alter.args.get("kind", "")).upper() != "TABLE":
        return [Action("other", table)]
    actions = []
    options = {p.key.removesuffix("property"): p.this.name.upper() for p in alter.args.get("options") or []
               if isinstance(p.args.get("this"), (exp.Var, exp.Identifier))}
    for node in alter.args.get("actions") or []:
        if isinstance(node, exp.ColumnDef):
            actions.append(Action("add_column", table, node.name, details=_column_facts(node, read, dialect)))
        elif isinstance(node, exp.ModifyColumn):
            coldef = node.this
            facts = _column_facts(coldef, read, dialect)
            if node.args.get("rename_from") is not None:
                facts["renamed_from"] = _name(node.args["rename_from"])
            actions.append(Action("modify_column", table, coldef.name, details=facts))
        elif isinstance(node, exp.AlterColumn):
            actions.append(_alter_column(node, table, read))
        elif isinstance(node, exp.Drop):
            kind = str(node.args.get("kind") or "").upper()
            target = _drop_target(node)
            kinds = {"COLUMN": "drop_column", "INDEX": "drop_index", "CONSTRAINT": "drop_constraint",
                     "PRIMARY KEY": "drop_constraint", "FOREIGN KEY": "drop_constraint"}
            action = Action(kinds.get(kind, "drop_column" if not kind else "other"), table,
                            details={"if_exists": bool(node.args.get("exists"))})
            if action.kind == "drop_column":
                action.column = target
            else:
                action.name = target
            actions.append(action)
        elif isinstance(node, exp.AddConstraint):
            actions.append(_constraint_action(node, table, alter, read))
        elif isinstance(node, exp.RenameColumn):
            actions.append(Action("rename_column", table, _name(node.this), details={"to": _name(node.args["to"])}))
        elif isinstance(node, exp.AlterRename) and (to := _rename_to(alter)):
            # RENAME a TO b without COLUMN (PostgreSQL, SQLite) renames a column; sqlglot
            # reads it as a rename of the table to a with a stray "TO b".
            actions.append(Action("rename_column", table, _name(node.this), details={"to": to}))
        elif isinstance(node, exp.AlterRename):
            actions.append(Action("rename_table", table, details={"to": _name(node.this)}))
        else:
            actions.append(Action("other", table))
    for action in actions:
        action.details.setdefault("algorithm", options.get("algorithm", ""))
        action.details.setdefault("lock", options.get("lock", ""))
    return actions


def _rename_to(alter: exp.Alter) -> str:
    """The b of ``ALTER TABLE t RENAME a TO b`` as sqlglot leaves it (an option), or ''."""
    to = [p for p in alter.args.get("options") or [] if isinstance(p, exp.ToTableProperty)]
    return _name(to[0].this) if len(to) == 1 else ""


def _alter_column(node: exp.AlterColumn, table: str, read: str) -> Action:
    column = _name(node.this)
    if node.args.get("dtype") is not None:
        using = node.args.get("using")
        return Action("alter_type", table, column, details={
            "type": _type_of(node.args["dtype"], read),
            "using": using.sql(read) if isinstance(using, exp.Expression) else ""})
    if node.args.get("allow_null") is not None:
        return Action("drop_not_null" if node.args["allow_null"] else "set_not_null", table, column)
    if node.args.get("drop"):
        return Action("drop_default", table, column)
    if node.args.get("default") is not None:
        return Action("set_default", table, column, details={"default": node.args["default"].sql(read)})
    return Action("other", table, column)


def _command_actions(node: exp.Command, read: str) -> list[Action]:
    """Forms sqlglot leaves unparsed, read from its tokens."""
    tokens = [t.text for t in sqlglot.Dialect.get_or_raise(read).tokenize(f"{node.this} {node.expression}")]
    words = [t.upper() for t in tokens]
    if words[:2] == ["ALTER", "TABLE"] and "VALIDATE" in words:
        return [Action("validate_constraint", tokens[2], name=tokens[words.index("CONSTRAINT") + 1])]
    if words[:2] == ["ALTER", "TABLE"] and "USING" in words and "INDEX" in words and "CONSTRAINT" in words:
        ctype = "primary_key" if "PRIMARY" in words else "unique"
        return [Action("add_constraint", tokens[2], name=tokens[words.index("CONSTRAINT") + 1],
                       details={"type": ctype, "using_index": True, "not_valid": False, "columns": [],
                                "index": tokens[words.index("INDEX") + 1]})]
    if words[:2] == ["ALTER", "TYPE"]:
        if "ADD" in words and "VALUE" in words:
            return [Action("add_enum_value", name=tokens[2], details={"value": tokens[words.index("VALUE") + 1]})]
        if "RENAME" in words and words[words.index("RENAME") + 1] == "TO":
            return [Action("rename_type", name=tokens[2], details={"to": tokens[-1]})]
    if words[:2] == ["DELETE", "FROM"] and "PG_ENUM" in words:
        return [Action("drop_enum_value", name="pg_enum")]
    # An opaque command no rule can judge: reported (LN004), not dropped.
    rest = node.expression.name if isinstance(node.expression, exp.Literal) else ""
    return [Action("unknown", details={"what": " ".join(f"{node.this} {rest}".split()[:3])})]


def _insert_action(node: exp.Insert) -> Action:
    """INSERT, and for ``INSERT INTO t (cols) SELECT ... FROM s``: which columns of s fill which of t."""
    written = node.this.this if isinstance(node.this, exp.Schema) else node.this
    details: dict[str, Any] = {"verb": "insert", "source": "", "copies": []}
    select = node.expression
    if isinstance(select, exp.Select) and isinstance(select.args.get("from_"), exp.From):
        source = select.args["from_"].this
        details["source"] = _name(source) if isinstance(source, exp.Table) and not select.args.get("joins") else ""
        columns = [_name(c) for c in node.this.expressions] if isinstance(node.this, exp.Schema) else []
        if columns and len(columns) == len(select.expressions) and not select.is_star:
            details["copies"] = [[column, [c.name for c in expr.find_all(exp.Column)]]
                                 for column, expr in zip(columns, select.expressions, strict=True)]
    return Action("dml", _name(written), details=details)


def actions_of(node: exp.Expression | None, read: str, dialect: str) -> list[Action]:
    """The actions of one parsed statement (``[Action(\"other\")]`` for what no rule looks at)."""
    if node is None:
        return []
    if isinstance(node, exp.Alter):
        return _alter_actions(node, read, dialect)
    if isinstance(node, exp.Create):
        kind = str(node.args.get("kind", "")).upper()
        if kind == "INDEX":
            index = node.this
            cols = [c.name for c in index.find_all(exp.Column)]
            return [Action("create_index", _name(index.args.get("table")), name=_name(index.this), details={
                "concurrently": bool(node.args.get("concurrently")), "unique": bool(node.args.get("unique")),
                "if_not_exists": bool(node.args.get("exists")), "columns": cols})]
        if kind == "TABLE":
            schema = node.this
            table = _name(schema.this if isinstance(schema, exp.Schema) else schema)
            columns = {c.name: _column_facts(c, read, dialect) for c in node.find_all(exp.ColumnDef)}
            return [Action("create_table", table, details={"if_not_exists": bool(node.args.get("exists")),
                                                           "columns": columns,
                                                           "as_select": isinstance(node.expression, exp.Query)})]
        if kind == "TYPE":
            values = [v.name for v in node.expression.expressions] if node.expression is not None else []
            return [Action("create_type", name=_name(node.this), details={"values": values})]
        return [Action("other")]
    if isinstance(node, exp.Drop):
        kind = str(node.args.get("kind", "")).upper()
        name = _drop_target(node)
        details = {"if_exists": bool(node.args.get("exists")), "concurrently": bool(node.args.get("concurrently"))}
        if kind == "TABLE":
            return [Action("drop_table", name, details=details)]
        if kind == "INDEX":
            on = node.args.get("cluster")
            return [Action("drop_index", _name(on.this) if on is not None else "", name=name, details=details)]
        if kind == "TYPE":
            return [Action("drop_type", name=name, details=details)]
        found = dialects.get(dialect)
        if kind == "DATABASE" or (kind == "SCHEMA" and found is not None and found.schema_is_database):
            return [Action("drop_database", name=name or _name(node.this), details=details)]
        return [Action("other")]
    if isinstance(node, exp.TruncateTable):
        return [Action("truncate", _name(t)) for t in node.expressions]
    if isinstance(node, exp.Set):
        out = []
        for item in node.expressions:
            eq = item.this
            if isinstance(eq, exp.EQ):
                value = eq.expression.name if isinstance(eq.expression, exp.Literal) else eq.expression.sql(read)
                # The whole dotted name: a custom setting such as foo.lock_timeout is not lock_timeout.
                name = eq.this.sql(read) if isinstance(eq.this, exp.Column) and eq.this.table else eq.this.name
                out.append(Action("set", name=name.lower(), details={"value": value}))
        return out or [Action("other")]
    if isinstance(node, exp.Transaction):
        return [Action("begin")]
    if isinstance(node, (exp.Commit, exp.Rollback)):
        return [Action("commit")]
    if isinstance(node, exp.Insert):
        return [_insert_action(node)]
    if isinstance(node, (exp.Update, exp.Delete)):
        written = node.find(exp.Table)
        return [Action("dml", _name(written), details={"verb": node.key})]
    if isinstance(node, exp.Command):
        return _command_actions(node, read)
    return [Action("other")]
