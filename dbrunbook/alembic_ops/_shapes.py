"""Shapes of Alembic history stage 3 must handle: several heads, and constraints without a name.

Several heads (branches with ``branch_labels``, not merged) are upgraded together, as
``alembic upgrade heads`` does; :func:`several_heads` is the MG008 finding that says so.

Without ``MetaData(naming_convention=...)``, SQLAlchemy leaves ``unique=True`` and foreign keys unnamed,
and Alembic's autogenerate writes ``drop_constraint(None, ...)`` in the downgrade: no database can run it
(and SQLite's batch mode cannot even create an unnamed constraint). :func:`name_unnamed` names the
constraints of a revision dbrunbook generates as :data:`NAMING_CONVENTION` would, so both directions run
and the user's own revisions agree once they adopt that convention. :func:`unnamed_operations` reads
revision files (hand-written ones too) for constraint operations without a name; :func:`naming_findings`
turns both into the MG009 finding that recommends the convention.
"""
from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alembic.operations import ops
from alembic.script.revision import RevisionError
from alembic.util import CommandError

from dbrunbook.core.project import copied_scripts
from dbrunbook.core.results import Finding

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

#: The convention dbrunbook recommends, and follows when it names constraints itself.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
#: The lines to add to the models, shown in the finding's fix.
SNIPPET = "\n".join([
    "from sqlalchemy import MetaData",
    "",
    "metadata = MetaData(naming_convention={",
    *(f'    "{key}": "{value}",' for key, value in NAMING_CONVENTION.items()),
    "})",
    "# declarative models: class Base(DeclarativeBase): metadata = metadata",
    "# and give env.py target_metadata = Base.metadata (or metadata)",
])
#: The comment line of a generated revision that lists the names dbrunbook gave.
MARK = "# dbrunbook named: "
#: Operations whose constraint name may be None; the name is their first argument.
_NAMED_OPS = ("drop_constraint", "create_unique_constraint", "create_foreign_key", "create_check_constraint",
              "create_primary_key")


def conventional_name(prefix: str, table: str, columns: list[str], referred: str = "", max_length: int = 63) -> str:
    """The name :data:`NAMING_CONVENTION` gives (``uq_<table>_<cols>``, ``fk_<table>_<cols>_<referred>``).

    A name past the dialect's limit is cut as SQLAlchemy cuts a convention's name, so the two agree.
    """
    name = "_".join([prefix, table, *columns, *([referred] if referred else [])])
    if len(name) > max_length:
        digest = hashlib.md5(name.encode("utf-8"), usedforsecurity=False).hexdigest()
        name = name[: max_length - 8] + "_" + digest[-4:]
    return name


def _max_length(dialect: Dialect) -> int:
    return int(getattr(dialect, "max_constraint_name_length", None) or dialect.max_identifier_length)


def name_unnamed(upgrade_ops: ops.UpgradeOps, downgrade_ops: ops.DowngradeOps, dialect: Dialect) -> list[str]:
    """Name every unnamed unique and foreign key constraint the upgrade adds; re-derive the downgrade; the names given.

    Only constraints the revision *adds* are named: a constraint the database already holds keeps the name it
    has there (an unnamed one, on SQLite, stays unnamed and :func:`unnamed_operations` reports it).
    """
    named: list[str] = []
    limit = _max_length(dialect)
    pending: list[ops.MigrateOperation] = list(upgrade_ops.ops)
    while pending:
        op = pending.pop(0)
        if isinstance(op, ops.OpContainer):
            pending[:0] = op.ops
        elif isinstance(op, ops.CreateUniqueConstraintOp) and op.constraint_name is None:
            op.constraint_name = conventional_name("uq", op.table_name, list(op.columns), max_length=limit)
            named.append(op.constraint_name)
        elif isinstance(op, ops.CreateForeignKeyOp) and op.constraint_name is None:
            op.constraint_name = conventional_name("fk", op.source_table, list(op.local_cols), op.referent_table,
                                                   max_length=limit)
            named.append(op.constraint_name)
    if named:
        # Alembic derived the downgrade from the upgrade; deriving it again carries the names into the drops.
        upgrade_ops.reverse_into(downgrade_ops)
    return named


def mark(names: list[str]) -> str:
    """The comment lines a generated revision's upgrade() starts with when dbrunbook named its constraints."""
    return ("    # The models leave these constraints unnamed (no naming_convention); dbrunbook named them as\n"
            "    # MetaData(naming_convention=...) would, so that the downgrade can drop them by name.\n"
            f"    {MARK}{', '.join(names)}\n")


def marked(path: Path) -> list[str]:
    """The names dbrunbook gave in the generated revision at ``path`` (its :func:`mark` line)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        if line.strip().startswith(MARK):
            return [name.strip() for name in line.strip()[len(MARK):].split(",") if name.strip()]
    return []


@dataclass
class Unnamed:
    """A constraint operation in a revision file whose name is None."""

    function: str
    line: int
    operation: str
    table: str

    @property
    def drops(self) -> bool:
        return self.operation == "drop_constraint"


def _string(node: ast.expr | None) -> str:
    return str(node.value) if isinstance(node, ast.Constant) and isinstance(node.value, str) else "?"


def _argument(call: ast.Call, position: int, keyword: str) -> ast.expr | None:
    found = next((k.value for k in call.keywords if k.arg == keyword), None)
    return found if found is not None or len(call.args) <= position else call.args[position]


def _batch_tables(function: ast.FunctionDef) -> dict[str, str]:
    """``with op.batch_alter_table("t") as batch_op``: the table behind each batch alias."""
    tables: dict[str, str] = {}
    for node in ast.walk(function):
        if not isinstance(node, ast.With):
            continue
        for item in node.items:
            call = item.context_expr
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "batch_alter_table" and isinstance(item.optional_vars, ast.Name)):
                tables[item.optional_vars.id] = _string(_argument(call, 0, "table_name"))
    return tables


def unnamed_operations(path: Path) -> list[Unnamed]:
    """The constraint operations of ``upgrade()`` and ``downgrade()`` in ``path`` whose name is None."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (OSError, SyntaxError):
        return []  # an unreadable revision is reported where its SQL is rendered
    found: list[Unnamed] = []
    for function in tree.body:
        if not isinstance(function, ast.FunctionDef) or function.name not in ("upgrade", "downgrade"):
            continue
        batches = _batch_tables(function)
        for node in ast.walk(function):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _NAMED_OPS):
                continue
            name = _argument(node, 0, "constraint_name")
            if not (isinstance(name, ast.Constant) and name.value is None):
                continue
            owner = node.func.value
            in_batch = isinstance(owner, ast.Name) and owner.id in batches
            keyword = "source_table" if node.func.attr == "create_foreign_key" else "table_name"
            table = batches[owner.id] if in_batch and isinstance(owner, ast.Name) else _string(
                _argument(node, 1, keyword))
            found.append(Unnamed(function.name, node.lineno, node.func.attr, table))
    return sorted(found, key=lambda u: u.line)  # ast.walk goes breadth first; the file reads top down


def _files(script_dir: Path, revisions: list[str]) -> dict[str, Path]:
    try:
        scripts = copied_scripts(script_dir)
        return {r: Path(found.path) for r in revisions if (found := scripts.get_revision(r)) is not None}
    except (CommandError, RevisionError, OSError):  # unreadable scripts are reported where they are rendered
        return {}


def naming_findings(generated: Path | None, script_dir: Path, revisions: list[str]) -> list[Finding]:
    """MG009: constraints without a name, named by dbrunbook in a generated revision or left None in one."""
    out: list[Finding] = []
    given = marked(generated) if generated else []
    if given:
        # warn: dbrunbook fixed this revision, but the user's own autogenerated revisions will drop by no name.
        out.append(Finding(
            "MG009", "warn", f"the models leave {len(given)} constraint(s) unnamed (their MetaData has no "
            f"naming_convention): dbrunbook named {', '.join(given)} in the generated revision, as the "
            "convention below would, so its downgrade can drop them", ", ".join(given),
            {"named": given, "naming_convention": NAMING_CONVENTION},
            f"add a naming convention to the models' MetaData so your own revisions name them alike:\n{SNIPPET}"))
    for revision, path in _files(script_dir, revisions).items():
        unnamed = unnamed_operations(path)
        if not unnamed:
            continue
        drops = [u for u in unnamed if u.drops]
        shown = "; ".join(f"{u.function}() line {u.line}: {u.operation}(None) on {u.table}" for u in unnamed)
        why = ("no database can drop a constraint by no name" if drops else
               "the database picks a name that a later drop_constraint() cannot know; SQLite's batch mode "
               "refuses an unnamed constraint")
        out.append(Finding(
            "MG009", "warn" if drops else "info", f"revision {revision} has constraint operations without a "
            f"name ({shown}): {why}", revision,
            {"operations": [u.__dict__ for u in unnamed], "naming_convention": NAMING_CONVENTION},
            "name each constraint in the revision (the name it has in the database, or uq_<table>_<columns> / "
            "fk_<table>_<columns>_<referred table> as the convention gives it), and add a naming convention "
            f"to the models' MetaData so autogenerate names them:\n{SNIPPET}"))
    return out


def several_heads(head: str | None, current: str | None, script_dir: Path) -> list[Finding]:
    """MG008: the scripts (or the database) have several heads, upgraded together to all heads.

    ``head`` and ``current`` are a plan's: one revision, or several joined by commas.
    """
    heads = head.split(",") if head else []
    at = current.split(",") if current else []
    if len(heads) < 2 and len(at) < 2:
        return []
    try:
        scripts = copied_scripts(script_dir)
        labels = {r: sorted(found.branch_labels) for r in {*heads, *at}
                  if (found := scripts.get_revision(r)) is not None and found.branch_labels}
    except (CommandError, RevisionError, OSError):  # the labels only decorate the message
        labels = {}

    def named(revisions: list[str]) -> str:
        return ", ".join(f"{r} (label {', '.join(labels[r])})" if labels.get(r) else r for r in revisions)

    if len(heads) > 1:
        # warn: `alembic upgrade head` fails on these scripts, and an unmerged fork is often an accident.
        severity = "warn"
        message = f"several heads: {named(heads)}; the plan upgrades to all heads (`alembic upgrade heads`)"
        fix = ("run `alembic upgrade heads` (not `head`) in production, as the plan does; if the branches are "
               "one history, merge them: `alembic merge heads -m merge`")
    else:
        severity = "info"
        message = (f"the database is at several heads: {named(at)}; the plan's revisions merge them into "
                   f"{head} (`alembic upgrade heads`)")
        fix = "run `alembic upgrade heads` in production, as the plan does"
    return [Finding("MG008", severity, message, head or "", {"heads": heads, "current": at, "labels": labels}, fix)]
