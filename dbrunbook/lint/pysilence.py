"""Silences written as Python comments in Alembic revisions, tied to the operation they precede.

An author silences a rule where they wrote the operation::

    # dbrunbook-ignore: DS002 the notes were exported to the CRM in ticket OPS-12
    op.drop_column("users", "legacy_notes")

The comment applies to the operation call on the same line or the next one below it; that
call's string arguments (and the table of an enclosing ``batch_alter_table``) name the objects
it touches. Each statement of the rendered SQL whose actions touch only those objects is
silenced for the codes given, exactly as a ``-- dbrunbook-ignore`` comment inside the SQL
would silence it. When the statements carry the revision lines they came from (a revision
file linted offline, :mod:`.offline`), every statement of the call's lines is silenced too,
whatever it touches (``op.execute("UPDATE ...")`` names no object). A comment without a
reason silences nothing and is reported (LN001).
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from dbrunbook.alembic_ops.migration import revision_paths
from dbrunbook.core.results import Finding
from dbrunbook.sql.model import _SILENCE, Action, Migration

#: Prefix of the temporary table Alembic's batch mode copies a table into.
_BATCH_COPY = "_alembic_tmp_"


@dataclass(frozen=True)
class PySilence:
    """One ``# dbrunbook-ignore`` comment and the names of the operation it sits on."""

    code: str
    reason: str
    names: frozenset[str]
    source: str
    line: int
    #: The first and last line of the operation call the comment sits on.
    first: int = 0
    last: int = 0


def _comments(text: str) -> list[tuple[int, str]]:
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.COMMENT:
            found.append((tok.start[0], tok.string))
    return found


def _strings(call: ast.Call) -> set[str]:
    values = [*call.args, *(k.value for k in call.keywords)]
    names = {v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)}
    for v in values:  # op.create_index("ix", "t", ["a", "b"]): the columns are names too
        if isinstance(v, (ast.List, ast.Tuple)):
            names |= {e.value for e in v.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return names


def _operations(tree: ast.AST) -> list[tuple[int, int, set[str]]]:
    """Each operation call: first line, last line, the names it touches."""
    calls: list[tuple[int, int, set[str]]] = []

    def visit(node: ast.AST, batch: set[str]) -> None:
        if isinstance(node, ast.With):
            inner = set(batch)
            for item in node.items:
                expr = item.context_expr
                if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute) \
                        and expr.func.attr == "batch_alter_table":
                    inner |= _strings(expr)
            for body_node in node.body:
                visit(body_node, inner)
            return
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) \
                and isinstance(node.value.func, ast.Attribute):
            call = node.value
            calls.append((call.lineno, call.end_lineno or call.lineno, _strings(call) | batch))
            return
        for child in ast.iter_child_nodes(node):
            visit(child, batch)

    visit(tree, set())
    return sorted(calls)


def python_silences(paths: list[Path]) -> tuple[list[PySilence], list[Finding]]:
    """The silences in the revision files ``paths``, and an LN001 finding for each without a reason."""
    silences: list[PySilence] = []
    unreasoned: list[Finding] = []
    for path in paths:
        text = path.read_text()
        try:
            operations = _operations(ast.parse(text, str(path)))
            comments = _comments(text)
        except (SyntaxError, tokenize.TokenError):
            continue  # the revision does not import either: Alembic reports that itself
        for line, comment in comments:
            for match in _SILENCE.finditer(comment):
                op = next((o for o in operations if o[0] <= line <= o[1] or o[0] > line), None)
                reason = (match.group(2) or "").strip()
                for code in re.split(r"\s*,\s*", match.group(1)):
                    if not reason:
                        unreasoned.append(Finding(
                            "LN001", "warn", f"the silence of {code} gives no reason, so it silences nothing", "",
                            {"source": path.name, "line": line},
                            f"write the reason after the code: # dbrunbook-ignore: {code} <why>"))
                    elif op is not None:
                        silences.append(PySilence(code, reason, frozenset(op[2]), path.name, line, op[0], op[1]))
    return silences, unreasoned


def _touches_only(action: Action, names: frozenset[str]) -> bool:
    table = action.table[len(_BATCH_COPY):] if action.table.startswith(_BATCH_COPY) else action.table
    parts = [p for p in (table, action.column, action.name) if p]
    return bool(parts) and all(p in names for p in parts)


def apply_silences(migration: Migration, silences: list[PySilence], *, by_line: bool = False) -> None:
    """Silence the statements of ``migration`` whose every change is on an operation's objects.

    ``by_line``: the statements' lines are the revision file's (:func:`.offline.as_migration`), so
    the statements of the operation's own lines are silenced as well.
    """
    for stmt in migration.statements:
        changes = [a for a in stmt.actions if a.kind not in ("begin", "commit", "set", "other", "unparsed")]
        for silence in silences:
            if (by_line and silence.first <= stmt.line <= silence.last) or \
                    (changes and all(_touches_only(a, silence.names) for a in changes)):
                stmt.silenced.setdefault(silence.code, f"{silence.reason} ({silence.source}:{silence.line})")


def silence_revisions(script_dir: Path, revisions: list[str], *migrations: Migration) -> list[Finding]:
    """Apply the revisions' Python silences to ``migrations``; the LN001 findings of those without a reason."""
    silences, unreasoned = python_silences(revision_paths(script_dir, revisions))
    for migration in migrations:
        apply_silences(migration, silences)
    return unreasoned
