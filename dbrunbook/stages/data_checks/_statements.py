"""The statements of a migration that change data, read from the SQL the pending revisions ran, in order.

Stage 05 applies the pending revisions to a schema-only copy and records every statement they run
(:func:`dbrunbook.stages.data_checks._revisions.schema_after_revisions`). :func:`read_steps` reads that list
with the dialect's own parser (pglast for PostgreSQL, sqlglot for the others, as :mod:`dbrunbook.sql.model`
does): each ``UPDATE``, ``DELETE`` and ``INSERT ... SELECT`` becomes a :class:`DataStatement` holding its
table, alias, WHERE and assignments as SQL text of the dialect, and the schema statements around them say
which columns the migration adds (with their default) and where a column becomes NOT NULL. Nothing is run
here; :mod:`.statements` counts on the target. A data statement that cannot be read is kept, with the
reason, so that it is named rather than skipped.

A statement the revision ran with bound parameters (``sa.text`` with values, a Core ``update()`` / ``delete()``)
is read from its text with the values inlined, as the Alembic process records it beside the driver's text
(:func:`dbrunbook.alembic_ops._child._beside`): it is counted like one written with literals. One run through
``exec_driver_sql`` with the driver's own parameters stays unreadable, with the reason.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dbrunbook import dialects

#: Tables whose rows are Alembic's bookkeeping or a batch operation's copy, not the application's data.
_VERSION_TABLE = "alembic_version"
_BATCH_PREFIX = "_alembic_tmp_"
_VERBS = ("UPDATE", "DELETE", "INSERT", "WITH", "MERGE", "REPLACE")
_DRIVER_PARAMS = ("it runs through exec_driver_sql with the driver's own parameters, whose values the capture "
                  "does not record")


@dataclass
class DataStatement:
    """One statement of the migration that changes rows, as far as it could be read."""

    index: int
    sql: str
    verb: str                 # update | delete | insert
    table: str
    alias: str = ""
    #: The WHERE condition as SQL of the dialect; None when the statement has none.
    where: str | None = None
    #: UPDATE: column -> the expression it is set to.
    sets: dict[str, str] = field(default_factory=dict)
    #: INSERT ... SELECT: the SELECT.
    select: str = ""
    #: Columns the statement reads (its WHERE and expressions), unqualified.
    reads: list[str] = field(default_factory=list)
    #: Why the statement cannot be analysed ("" when it can).
    unreadable: str = ""
    #: ``sql`` has each ``%`` written twice, as the driver (``format`` / ``pyformat``) received it.
    doubled: bool = False
    #: ``sql`` is the statement with the values of its bound parameters written in as literals.
    inlined: bool = False

    @property
    def text(self) -> str:
        """The statement on one line, shortened, for people: each ``%`` once, as the revision wrote it."""
        one = " ".join(self.sql.split())
        if self.doubled:  # the driver's doubling; :mod:`._replay_sql` undoes it on ``sql`` for the replay
            one = one.replace("%%", "%")
        return one if len(one) <= 200 else one[:197] + "..."

    @property
    def name(self) -> str:
        """How findings name it: its position among the migration's statements and its first words."""
        return f"statement {self.index + 1} ({self.text})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reshape:
    """A schema statement after which the rows of a table have other columns."""

    index: int
    table: str
    #: ``add`` (``column`` with ``default``), ``rename`` (``column`` to ``to``), or ``copy``: a batch operation's
    #: copy into a new table, whose ``columns`` each take the column named (a rename when the names differ), or
    #: their ``defaults`` (or NULL) when None.
    kind: str
    column: str = ""
    to: str = ""
    default: str | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    defaults: dict[str, str | None] = field(default_factory=dict)


@dataclass
class Steps:
    """What the migration does to data, in the order it runs."""

    dialect: str
    statements: list[DataStatement] = field(default_factory=list)
    #: The statements that change which columns rows have (added, renamed, copied by a batch operation).
    reshapes: list[Reshape] = field(default_factory=list)
    #: "table.column" -> the first statement after which the column is NOT NULL.
    tightened: dict[str, int] = field(default_factory=dict)
    #: Statements the migration ran in all (data or not).
    count: int = 0
    #: ``unique:table:a,b`` / ``foreign_key:table:a`` -> the first statement that adds that constraint (or index).
    constrained: dict[str, int] = field(default_factory=dict)
    #: "table.column" -> the USING expression the migration's ALTER ... TYPE converts it with (set by
    #: :func:`._revisions.schema_after_revisions` from what the revisions declare).
    converted: dict[str, str] = field(default_factory=dict)
    #: A batch operation's new table, until its copy statement: table -> (columns' defaults).
    pending: dict[str, dict[str, str | None]] = field(default_factory=dict, repr=False)

    def before(self, table: str, index: int) -> list[DataStatement]:
        """The data statements on ``table`` that run before statement ``index``."""
        return [s for s in self.statements if s.table == table and s.index < index]

    def tightening(self, table: str, column: str) -> int:
        """The statement that makes ``table.column`` NOT NULL (the end of the migration when none is seen)."""
        return self.tightened.get(f"{table}.{column}", self.count)

    def constraining(self, kind: str, table: str, columns: list[str]) -> int:
        """The statement that adds the ``kind`` (``unique`` or ``foreign_key``) constraint on ``table.columns`` (the
        end of the migration when none is seen: a batch operation adds it with its copy, at the end)."""
        return self.constrained.get(f"{kind}:{table}:{','.join(columns)}", self.count)


def _ours(table: str) -> bool:
    return bool(table) and table != _VERSION_TABLE and not table.startswith(_BATCH_PREFIX)


def read_steps(ran: Sequence[str | Mapping[str, Any]], dialect: str) -> Steps:
    """The data statements and schema facts of the statements ``ran`` (in ``dialect``), never raising.

    Each statement is its SQL text, or the statement as the Alembic process records it (``{"sql": ...}`` with
    ``inlined`` / ``inline_error`` / ``driver_params`` / ``adds_rows`` / ``doubles_percent``, see
    :func:`dbrunbook.alembic_ops._child._beside`). A statement run once per parameter set is read once per set,
    each at the statement's position.
    """
    steps = Steps(dialect, count=len(ran))
    for index, item in enumerate(ran):
        recorded: Mapping[str, Any] = {"sql": item} if isinstance(item, str) else item
        if recorded.get("adds_rows"):  # an INSERT of given values: it touches no row the target has
            continue
        inlined = [str(sql).strip() for sql in recorded.get("inlined") or ()]
        why = "" if inlined else str(recorded.get("inline_error") or "") or \
            (_DRIVER_PARAMS if recorded.get("driver_params") else "")
        first = len(steps.statements)
        for sql in inlined or [str(recorded.get("sql", "")).strip()]:
            _read_one(steps, index, sql, dialect)
        for stmt in steps.statements[first:]:
            stmt.doubled, stmt.inlined = bool(recorded.get("doubles_percent")), bool(inlined)
            stmt.unreadable = why or stmt.unreadable
    return steps


def _read_one(steps: Steps, index: int, sql: str, dialect: str) -> None:
    from dbrunbook.sql.model import parse_sql

    try:
        for stmt in parse_sql(sql, dialect).statements:
            for action in stmt.actions:
                _note(steps, index, sql, action, dialect)
    except Exception as exc:  # SQL no reader takes (or a reader's surprise): a data statement is still named
        _unreadable(steps, index, sql, f"it cannot be read: {exc}")


def _unreadable(steps: Steps, index: int, sql: str, why: str) -> None:
    """Keep a data statement the parser rejects, named by its verb and (from its tokens) its table."""
    words = sql.split(None, 1)
    if not words or words[0].upper() not in _VERBS:
        return
    table = _table_token(sql, steps.dialect)
    if table is None or _ours(table):
        steps.statements.append(DataStatement(index, sql, words[0].lower(), table or "", unreadable=why))


def _table_token(sql: str, dialect: str) -> str | None:
    """The table an unparsable UPDATE / DELETE FROM / INSERT INTO names, read from the dialect's tokens."""
    import sqlglot

    try:
        tokens = [t.text for t in sqlglot.Dialect.get_or_raise(dialects.facts(dialect).sqlglot).tokenize(sql)][:4]
    except Exception:  # a statement even the tokenizer rejects: its table is not known
        return None
    upper = [t.upper() for t in tokens]
    for i, word in enumerate(upper[:-1]):
        if word in ("UPDATE", "FROM", "INTO"):
            return tokens[i + 1]
    return None


def _note(steps: Steps, index: int, sql: str, action: Any, dialect: str) -> None:
    kind, table, column, details = action.kind, action.table, action.column, action.details
    constraint = _constraint(kind, details)
    if constraint and _ours(table) and details.get("columns"):
        steps.constrained.setdefault(f"{constraint}:{table}:{','.join(map(str, details['columns']))}", index)
    if kind == "add_column" and _ours(table):
        steps.reshapes.append(Reshape(index, table, "add", column, default=details.get("default")))
        if details.get("not_null"):
            steps.tightened.setdefault(f"{table}.{column}", index)
    elif kind == "rename_column" and _ours(table) and details.get("to"):
        steps.reshapes.append(Reshape(index, table, "rename", column, str(details["to"])))
    if kind == "modify_column" and _ours(table) and details.get("renamed_from"):  # MariaDB: CHANGE old new ...
        steps.reshapes.append(Reshape(index, table, "rename", str(details["renamed_from"]), column))
    elif kind == "set_not_null" or (kind == "modify_column" and details.get("not_null")):
        steps.tightened.setdefault(f"{table}.{column}", index)
    elif kind == "create_table" and table.startswith(_BATCH_PREFIX):
        # A batch operation copies the table into a new one: its columns exist from here on (a new one gets its
        # default), and a NOT NULL column in the copy is tightened by the copy.
        real = table.removeprefix(_BATCH_PREFIX)
        columns = {name: facts for name, facts in (details.get("columns") or {}).items() if isinstance(facts, dict)}
        steps.pending[real] = {name: facts.get("default") for name, facts in columns.items()}
        for name, facts in columns.items():
            if facts.get("not_null"):
                steps.tightened.setdefault(f"{real}.{name}", index)
    elif kind == "dml" and table.startswith(_BATCH_PREFIX):
        _copy(steps, index, table.removeprefix(_BATCH_PREFIX), details)
    elif kind == "dml" and _ours(table):
        read = _read(sql, dialect)
        if read is not None:
            read.index = index
            steps.statements.append(read)
    elif kind in ("unparsed", "unknown"):
        _unreadable(steps, index, sql, f"it cannot be parsed: {details.get('error') or 'unknown syntax'}")


def _constraint(kind: str, details: dict[str, Any]) -> str | None:
    """``unique`` for a UNIQUE / PRIMARY KEY constraint or unique index, ``foreign_key`` for a foreign key."""
    if kind == "create_index":
        return "unique" if details.get("unique") else None
    if kind != "add_constraint":
        return None
    return {"primary_key": "unique", "unique": "unique", "foreign_key": "foreign_key"}.get(str(details.get("type")))


def _copy(steps: Steps, index: int, table: str, details: dict[str, Any]) -> None:
    """The copy of a batch operation: each column of the new table takes the one column it reads (a rename when
    the names differ), the others their default; a copy that cannot be read so makes the new columns defaults."""
    defaults = steps.pending.pop(table, {})
    copies = {str(c[0]): [str(r) for r in c[1]] for c in details.get("copies") or [] if len(c) == 2}
    columns = {name: (copies[name][0] if len(copies.get(name, [])) == 1 else name if name in copies else None)
               for name in defaults}
    if not copies:  # unread: columns keep their names, and the new ones get their defaults
        columns = {name: name for name in defaults}
    steps.reshapes.append(Reshape(index, table, "copy", columns=columns, defaults=defaults))


def _read(sql: str, dialect: str) -> DataStatement | None:
    """The statement read by the dialect's parser; None for one that adds literal rows (INSERT ... VALUES)."""
    facts = dialects.facts(dialect)
    try:
        if facts.sql_reader == "pglast":
            return _read_pglast(sql)
        return _read_sqlglot(sql, facts.sqlglot)
    except Exception as exc:  # a parser's surprise on real SQL must not stop the stage: the statement is named
        words = sql.split(None, 1)
        return DataStatement(0, sql, words[0].lower() if words else "", "", unreadable=f"cannot read it: {exc}")


def _read_pglast(sql: str) -> DataStatement | None:
    from pglast import ast, parse_sql
    from pglast.stream import RawStream

    def text(node: Any) -> str:
        return str(RawStream()(node))

    def walk(node: Any) -> Any:
        if isinstance(node, ast.Node):
            yield node
            for attr in node:
                yield from walk(getattr(node, attr))
        elif isinstance(node, (tuple, list)):
            for item in node:
                yield from walk(item)

    def columns(*nodes: Any) -> list[str]:
        refs: list[Any] = [n.fields for n in walk(nodes) if isinstance(n, ast.ColumnRef) and n.fields]
        return sorted({str(f[-1].sval) for f in refs if isinstance(f[-1], ast.String)})

    def params(node: Any) -> bool:
        return any(isinstance(n, ast.ParamRef) for n in walk(node))

    node: Any = parse_sql(sql)[0].stmt
    relation = node.relation
    table = str(relation.relname)
    alias = str(relation.alias.aliasname) if relation.alias is not None else ""
    where = node.whereClause if not isinstance(node, ast.InsertStmt) else None
    out = DataStatement(0, sql, {"UpdateStmt": "update", "DeleteStmt": "delete"}.get(type(node).__name__, "insert"),
                        table, alias, text(where) if where is not None else None)
    if isinstance(node, ast.InsertStmt):
        select = node.selectStmt
        if not isinstance(select, ast.SelectStmt) or select.valuesLists:
            return None
        out.select = text(select)
    elif isinstance(node, ast.UpdateStmt):
        targets: list[Any] = list(node.targetList or ())
        if any(not isinstance(t.val, ast.Node) or t.indirection or isinstance(t.val, ast.MultiAssignRef)
               for t in targets):
            out.unreadable = "it assigns several columns at once or into parts of a column"
        else:
            out.sets = {str(t.name): text(t.val) for t in targets}
        out.reads = columns(where, *(t.val for t in targets))
    else:
        out.reads = columns(where)
    if getattr(node, "withClause", None) is not None:
        out.unreadable = "it has a WITH clause"
    elif getattr(node, "fromClause", None) or getattr(node, "usingClause", None):
        out.unreadable = "it joins other tables (FROM / USING)"
    elif relation.schemaname:
        out.unreadable = f"it names the schema {relation.schemaname}"
    elif params(node):
        out.unreadable = "it runs with bound parameters, whose values the capture does not record"
    return out


def _read_sqlglot(sql: str, read: str) -> DataStatement | None:
    import sqlglot
    from sqlglot import exp

    node = sqlglot.parse_one(sql, read=read)
    target = node.this.this if isinstance(node, exp.Insert) and isinstance(node.this, exp.Schema) else node.this
    if not isinstance(node, (exp.Update, exp.Delete, exp.Insert)) or not isinstance(target, exp.Table):
        words = sql.split(None, 1)
        return DataStatement(0, sql, words[0].lower() if words else "", "", unreadable="it is no plain "
                             "UPDATE, DELETE or INSERT")
    where = node.args.get("where")
    condition = where.this if isinstance(where, exp.Where) else None
    out = DataStatement(0, sql, node.key, target.name, target.alias, condition.sql(read) if condition else None)

    def columns(*nodes: Any) -> list[str]:
        return sorted({c.name for n in nodes if n is not None for c in n.find_all(exp.Column) if c.name})

    if isinstance(node, exp.Insert):
        if not isinstance(node.expression, exp.Query):
            return None
        out.select = node.expression.sql(read)
    elif isinstance(node, exp.Update):
        if not all(isinstance(e, exp.EQ) and isinstance(e.this, exp.Column) for e in node.expressions):
            out.unreadable = "it assigns several columns at once"
        else:
            out.sets = {e.this.name: e.expression.sql(read) for e in node.expressions}
        out.reads = columns(condition, *(e.expression for e in node.expressions))
    else:
        out.reads = columns(condition)
    if node.args.get("with") is not None or node.args.get("with_") is not None:
        out.unreadable = "it has a WITH clause"
    elif target.args.get("joins") or node.args.get("from") or node.args.get("from_") or node.args.get("using") \
            or node.args.get("tables"):
        out.unreadable = "it joins other tables (FROM / USING / JOIN)"
    elif node.args.get("limit") or node.args.get("order"):
        out.unreadable = "it has ORDER BY / LIMIT: which rows it touches depends on the order"
    elif target.args.get("db"):
        out.unreadable = f"it names the schema {target.args['db'].name}"
    elif any(True for _ in node.find_all(exp.Placeholder, exp.Parameter)):
        out.unreadable = "it runs with bound parameters, whose values the capture does not record"
    return out
