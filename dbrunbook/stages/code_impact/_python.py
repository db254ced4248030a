"""Find watched tables and columns in one Python file, with :mod:`ast` (the code is never run).

Recognised: attributes of mapped classes (``User.legacy_notes``) and of a table's columns
(``users.c.legacy_notes``, ``users.c["legacy_notes"]``), keyword arguments of constructors,
``filter_by`` and ``values``, ``getattr(User, "x")``, and string literals (f-strings with
their fields read as placeholders) that parse as SQL. A class or table is resolved through
the models' mapped classes, ``__tablename__`` in the code, ``Table("name", ...)`` and
``metadata.tables["name"]``. Anything else that only matches by name (``row.legacy_notes``,
``row["legacy_notes"]``) is kept only in a file that touches the table, and is marked so.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from dbrunbook.stages.code_impact import _sql
from dbrunbook.stages.code_impact._model import InsertSite, Reference, Watch

_VERBS = {"select", "query", "insert", "update", "delete"}
_TABLE_FACTORIES = {"Table", "table"}
_COLUMN_SETS = {"c", "columns"}


def tablenames(tree: ast.Module) -> dict[str, str]:
    """Class name -> table name for classes in ``tree`` that set ``__tablename__`` to a string."""
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
                targets = stmt.targets if isinstance(stmt, ast.Assign) else \
                    [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
                if any(isinstance(t, ast.Name) and t.id == "__tablename__" for t in targets) \
                        and isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found[node.name] = value.value
    return found


def _name(node: ast.expr) -> str:
    """The last name of a Name or Attribute (``sa.Table`` -> Table), else empty."""
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _string(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _table_names_for(cls: str) -> set[str]:
    """Table names a class name suggests: OrderItem -> order_item, order_items; Category -> categories."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", cls).lower()
    return {snake, snake + "s", snake + "es", snake[:-1] + "ies" if snake.endswith("y") else snake}


def _assigned_attributes(scope: ast.AST) -> dict[str, set[str]]:
    """Per variable, the attributes set on it in ``scope`` (``u.country = ...``)."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(scope):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name):
            found.setdefault(node.value.id, set()).add(node.attr)
    return found


@dataclass
class FileScan(ast.NodeVisitor):
    """The references and INSERTs of one parsed Python file."""

    file: str
    source: str
    watch: Watch
    dialect: str | None = None
    references: list[Reference] = field(default_factory=list)
    inserts: list[InsertSite] = field(default_factory=list)
    _lines: list[str] = field(default_factory=list)
    _aliases: dict[str, str] = field(default_factory=dict)
    _tables: dict[str, str] = field(default_factory=dict)
    _touched: set[str] = field(default_factory=set)
    _by_name: list[Reference] = field(default_factory=list)
    _skip: set[int] = field(default_factory=set)
    _scopes: list[ast.AST] = field(default_factory=list)
    _set_in_scope: dict[int, dict[str, set[str]]] = field(default_factory=dict)
    _names: set[str] | None = None

    def run(self, tree: ast.Module) -> FileScan:
        """Scan ``tree`` (parsed from ``source``)."""
        self._lines = self.source.splitlines()
        for node in ast.walk(tree):
            self._learn(node)
        self._scopes = [tree]
        self.visit(tree)
        self._keep_by_name()
        return self

    def _learn(self, node: ast.AST) -> None:
        """Docstrings, import aliases and variables that hold a table, before the visit."""
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and _string(first.value) is not None:
                self._skip.add(id(first.value))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.asname:
                    self._aliases[alias.asname] = alias.name
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            var, value = node.targets[0].id, node.value
            if isinstance(value, ast.Call) and _name(value.func) == "aliased" and value.args:
                self._aliases[var] = _name(value.args[0])
            else:
                table = self._table_expr(value)
                if table is not None:
                    self._tables[var] = table

    def _table_expr(self, node: ast.expr) -> str | None:
        """The table an expression builds or looks up: Table("t"), metadata.tables["t"], User.__table__."""
        if isinstance(node, ast.Call) and _name(node.func) in _TABLE_FACTORIES and node.args:
            return _string(node.args[0])
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "tables":
            return _string(node.slice)
        if isinstance(node, ast.Attribute) and node.attr == "__table__":
            found = self._resolve(node.value)
            return found[0] if found else None
        return None

    def _resolve(self, node: ast.expr) -> tuple[str, str] | None:
        """(table, via) for a mapped class or a table expression; via is model, table or name."""
        if isinstance(node, ast.Name):
            if node.id in self._tables:
                return self._tables[node.id], "table"
            cls = self._aliases.get(node.id, node.id)
            if cls in self.watch.classes:
                return self.watch.classes[cls], "model"
            guesses = sorted(_table_names_for(cls) & self.watch.tables()) if cls[:1].isupper() else []
            return (guesses[0], "name") if guesses else None
        if isinstance(node, ast.Call) and _name(node.func) == "aliased" and node.args:
            return self._resolve(node.args[0])
        table = self._table_expr(node)
        return (table, "table") if table is not None else None

    # -- recording ------------------------------------------------------------------------

    def _code(self, line: int) -> str:
        return self._lines[line - 1].strip()[:200] if 0 < line <= len(self._lines) else ""

    def _ref(self, node: ast.AST, table: str, column: str | None, access: str, via: str, construct: str,
             line: int | None = None, gated: bool = False) -> None:
        """Record a reference; a ``gated`` one is kept only if the file touches its table (see _keep_by_name)."""
        line = line or int(getattr(node, "lineno", 1))
        ref = Reference(self.file, line, self._code(line), table, column, access, via, construct)
        (self._by_name if gated else self.references).append(ref)

    def _column(self, node: ast.AST, table: str, via: str, key: str, access: str, construct: str) -> None:
        column = self.watch.column_of_attribute(table, key) if via == "model" else key
        if column in self.watch.columns(table):
            self._ref(node, table, column, access, via, construct)

    def _name_only(self, node: ast.AST, name: str, access: str, construct: str) -> None:
        for table in sorted(self.watch.tables_with_column(name)):
            self._ref(node, table, name, access, "name", construct, gated=True)

    def _keep_by_name(self) -> None:
        """Keep name-only matches for tables this file touches and no other touched table has the column."""
        for ref in self._by_name:
            others = {t for t in self._touched - {ref.table}
                      if ref.column in self.watch.target_columns.get(t, set())}
            if ref.table in self._touched and not others:
                self.references.append(ref)

    # -- visiting -------------------------------------------------------------------------

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self._scopes.append(node)
        self.generic_visit(node)
        self._scopes.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Name(self, node: ast.Name) -> None:
        found = self._resolve(node)
        if found is not None:
            self._table_used(node, *found)

    def _table_used(self, node: ast.AST, table: str, via: str) -> None:
        """A mapped class or table object is used: the file touches it; a dropped or renamed one is a reference."""
        if via != "name":
            self._touched.add(table)
        if table in self.watch.dropped_tables or table in self.watch.renamed_tables:
            self._ref(node, table, None, "table", via, "name")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        access = "write" if isinstance(node.ctx, ast.Store) else "read"
        owner = self._resolve(node.value)
        if owner is not None:
            self._touched.add(owner[0])
            self._column(node, owner[0], owner[1], node.attr, access, "attribute")
        elif isinstance(node.value, ast.Attribute) and node.value.attr in _COLUMN_SETS:
            table = self._resolve(node.value.value)
            if table is not None:
                self._column(node, table[0], table[1], node.attr, access, "attribute")
            else:
                self._name_only(node, node.attr, access, "attribute")
        elif node.attr in self._watched_names():
            self._name_only(node, node.attr, access, "attribute")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        key = _string(node.slice)
        table = self._table_expr(node)
        if table is not None:
            self._table_used(node, table, "table")
        elif key is not None and isinstance(node.value, ast.Attribute) and node.value.attr in _COLUMN_SETS \
                and (owner := self._resolve(node.value.value)) is not None:
            self._column(node, owner[0], owner[1], key, "read", "subscript")
        elif key is not None and key in self._watched_names():
            self._name_only(node, key, "read", "subscript")
        self.generic_visit(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        if isinstance(node.value, ast.Call) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            self._call(node.value, lambda: self._set_later(node.targets[0]))
            for child in ast.iter_child_nodes(node.value):
                self.visit(child)
            self.visit(node.targets[0])
        else:
            self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        self._call(node, set)
        self.generic_visit(node)

    def _set_later(self, target: ast.expr) -> set[str]:
        """Attributes set on the variable ``target`` in the current function (worked out when first asked)."""
        scope = self._scopes[-1]
        if id(scope) not in self._set_in_scope:
            self._set_in_scope[id(scope)] = _assigned_attributes(scope)
        return self._set_in_scope[id(scope)].get(target.id, set()) if isinstance(target, ast.Name) else set()

    def _call(self, node: ast.Call, set_later: Callable[[], set[str]]) -> None:
        func = node.func
        keys = [k.arg for k in node.keywords if k.arg]
        splat = any(k.arg is None for k in node.keywords)
        if _name(func) == "getattr" and len(node.args) >= 2 and (attr := _string(node.args[1])) is not None:
            owner = self._resolve(node.args[0])
            if owner is not None:
                self._column(node, owner[0], owner[1], attr, "read", "getattr")
            return
        owner = self._resolve(func) if isinstance(func, ast.Name) else None
        if owner is not None and owner[1] == "model":
            for key in keys:
                self._column(node, owner[0], "model", key, "write", "keyword")
            if not splat:
                columns = [self.watch.column_of_attribute(owner[0], k) for k in [*keys, *sorted(set_later())]]
                self._insert(node, owner[0], columns, "model", "constructor")
            return
        if not isinstance(func, ast.Attribute):
            return
        if func.attr in ("filter_by", "values", "update"):
            dict_keys = [_string(k) for a in node.args if isinstance(a, ast.Dict) for k in a.keys]
            names = keys + [k for k in dict_keys if k is not None]
            chain = self._chain(func.value)
            access = "read" if func.attr == "filter_by" else "write"
            for key in names:
                if chain is not None:
                    self._column(node, chain[0], chain[1], key, access, "keyword")
                elif key in self._watched_names():
                    self._name_only(node, key, access, "keyword")
            if chain is not None and func.attr == "values" and chain[2] == "insert" and not splat \
                    and None not in dict_keys:
                self._insert(node, chain[0], names, chain[1], "values")
        elif func.attr in ("execute", "executemany") and len(node.args) >= 2:
            chain = self._chain(node.args[0])
            rows = node.args[1].elts if isinstance(node.args[1], ast.List) else [node.args[1]]
            if chain is not None and chain[2] == "insert" and rows and all(isinstance(r, ast.Dict) for r in rows):
                sets = [{_string(k) for k in r.keys} for r in rows if isinstance(r, ast.Dict)]
                if all(None not in s for s in sets):
                    common = set.intersection(*sets)
                    self._insert(node, chain[0], sorted(c for c in common if c), chain[1], "execute")

    def _chain(self, node: ast.expr) -> tuple[str, str, str] | None:
        """(table, via, verb) of a statement chain: select(User)..., users.insert()..., session.query(X)..."""
        while isinstance(node, (ast.Call, ast.Attribute)):
            if isinstance(node, ast.Call):
                verb = _name(node.func)
                if verb in _VERBS and node.args:
                    first = node.args[0]
                    owner = self._resolve(first.value if isinstance(first, ast.Attribute) else first)
                    if owner is not None:
                        return owner[0], owner[1], verb
                if verb in _VERBS and isinstance(node.func, ast.Attribute) \
                        and (owner := self._resolve(node.func.value)) is not None:
                    return owner[0], owner[1], verb
                node = node.func
            else:
                node = node.value
        return None

    def _insert(self, node: ast.AST, table: str, columns: list[str], via: str, construct: str) -> None:
        if via != "name" and (table in self.watch.required or table in self.watch.reshaped):
            line = getattr(node, "lineno", 1)
            self.inserts.append(InsertSite(self.file, line, self._code(line), table, columns, via, construct))

    def _watched_names(self) -> set[str]:
        if self._names is None:
            self._names = self.watch.column_names()
        return self._names

    # -- SQL in string literals -----------------------------------------------------------

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and id(node) not in self._skip:
            self._sql(node, node.value)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        text = "".join(v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "?"
                       for v in node.values)
        self._sql(node, text)
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                self.visit(value.value)

    def _sql(self, node: ast.expr, text: str) -> None:
        if not _sql.LOOKS_LIKE_SQL.match(text):
            return
        found = _sql.analyse(text, self.watch, self.dialect)
        if found is None:
            return
        hits, inserts = found
        for hit in hits:
            self._touched.add(hit.table)
            self._ref(node, hit.table, hit.column, hit.access, "sql", "sql", self._line_in(node, text, hit.offset))
        for ins in inserts:
            self._touched.add(ins.table)
            line = self._line_in(node, text, ins.offset)
            self.inserts.append(InsertSite(self.file, line, self._code(line), ins.table, ins.columns, "sql", "sql"))

    def _line_in(self, node: ast.expr, text: str, offset: int) -> int:
        """The source line of ``offset`` in a literal: exact for triple-quoted text, else its first line."""
        start, end = node.lineno, node.end_lineno or node.lineno
        if text.count("\n") == end - start:
            return start + text.count("\n", 0, offset)
        return start
