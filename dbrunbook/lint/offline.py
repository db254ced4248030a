"""Alembic revision files read without a database, each statement tied to the line of the ``op.`` call that made it.

``dbrunbook lint versions/abc_add.py`` runs the revision's ``upgrade()`` and ``downgrade()`` under
Alembic's offline (``as_sql``) MigrationContext for the chosen dialect, as ``alembic upgrade --sql``
does, so nothing connects anywhere. The output buffer records, for every statement Alembic writes,
the line of the revision file being run at that moment: the innermost frame of the call stack that
is in the file. That is the line of the ``op.`` call (the first line of a call spread over several,
in a loop or in a helper function of the file alike), the call site of a helper imported from
elsewhere, and the ``op.execute`` line for raw SQL, which is linted as SQL at that line.

Why at run time rather than by pairing the file's ``op.<name>(`` calls, in the order of its syntax
tree, with the rendered statements: a call renders several statements (``create_table`` with its
indexes) or none, sits in a loop, a branch or a helper, and batch mode queues its calls and emits
them when the ``with`` block ends. Order pairing drifts at the first of these; the stack does not.
Batch operations keep their own ``batch_op.<name>(`` lines: the batch's queue records each call's
line as it is queued and says it again while Alembic replays the queue (where Alembic keeps the
queue as a list, as it has since batch mode exists; otherwise they point at the ``with`` line).

A revision that reads the database cannot be rendered past that point. ``op.get_bind()`` gives a
stand-in that says which dialect it is (revisions branch on ``bind.dialect.name``) and refuses
everything else; what was rendered before is kept, and the rest is a gap (LN006) at the line that
needed the database.
"""
from __future__ import annotations

import ast
import bisect
import importlib.util
import inspect
import io
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext

from dbrunbook.errors import UsageError
from dbrunbook.sql.model import Migration, UnreadableSource, parse_sql


class NeedsDatabase(Exception):
    """The revision asked the stand-in bind for more than its dialect: ``what`` it asked for."""

    def __init__(self, what: str) -> None:
        super().__init__(f"it reads the live database ({what})")
        self.what = what


class OfflineBind:
    """What ``op.get_bind()`` returns offline: the dialect, never a connection."""

    def __init__(self, dialect: Any) -> None:
        self.dialect = dialect
        self.name = dialect.name
        self.engine = self  # bind.engine.name and bind.engine.dialect.name, as on a Connection

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # a library probing for its own protocol (sqlalchemy.inspect): as any object
            raise AttributeError(name)
        raise NeedsDatabase(f"op.get_bind().{name}")


@dataclass(frozen=True)
class Emitted:
    """One chunk of SQL Alembic wrote, and the revision line that was running."""

    line: int
    sql: str


@dataclass
class Rendered:
    """What one function of a revision rendered, and where it stopped (``gap``) if it could not finish."""

    statements: list[Emitted] = field(default_factory=list)
    #: ``{"line": n, "function": "upgrade", "reason": ...}`` when the function raised.
    gap: dict[str, Any] | None = None


@dataclass
class RevisionFile:
    """A revision file rendered offline for one dialect."""

    path: Path
    revision: str
    dialect: str
    #: Lines of ``def upgrade`` and ``def downgrade`` (0: none): where findings about the whole revision point.
    upgrade_line: int
    downgrade_line: int
    upgrade: Rendered
    #: None when the revision has no ``downgrade()``.
    downgrade: Rendered | None


def offline_context(dialect: str, buffer: io.StringIO) -> MigrationContext:
    """Alembic's offline context for ``dialect``, writing SQL to ``buffer`` with literal values."""
    return MigrationContext.configure(dialect_name=dialect, opts={
        "as_sql": True, "output_buffer": buffer, "literal_binds": True})


class _Recorder(io.StringIO):
    """An output buffer that notes which line of the revision file was running at each write."""

    def __init__(self, filename: str) -> None:
        super().__init__()
        self.filename = filename
        self.emitted: list[Emitted] = []
        #: The line of the batch operation being replayed, which the stack no longer shows.
        self.pinned: int | None = None

    def write(self, text: str) -> int:
        if text.strip():
            self.emitted.append(Emitted(self.pinned or self.caller_line(), text))
        return super().write(text)

    def caller_line(self) -> int:
        """The line of the revision file in the innermost frame that runs it (0: none on the stack)."""
        frame = inspect.currentframe()
        while frame is not None:
            if frame.f_code.co_filename == self.filename:
                return frame.f_lineno or 0
            frame = frame.f_back
        return 0


class _Queue(list[Any]):
    """Alembic's queue of batch operations, remembering the revision line of each as it is queued."""

    def __init__(self, items: list[Any], recorder: _Recorder) -> None:
        super().__init__(items)
        self.recorder = recorder
        self.lines = [0] * len(items)

    def append(self, item: Any) -> None:
        super().append(item)
        self.lines.append(self.recorder.caller_line())

    def __iter__(self) -> Iterator[Any]:
        # Alembic replays the queue when the ``with`` block ends: each item's statements get its own line.
        try:
            for line, item in zip(self.lines, super().__iter__(), strict=False):
                self.recorder.pinned = line or None
                yield item
        finally:
            self.recorder.pinned = None


def _recording_batch(original: Callable[..., AbstractContextManager[Any]],
                     recorder: _Recorder) -> Callable[..., AbstractContextManager[Any]]:
    @contextmanager
    def batch_alter_table(*args: Any, **kw: Any) -> Iterator[Any]:
        with original(*args, **kw) as batch_op:
            impl = getattr(batch_op, "impl", None)
            queued = getattr(impl, "batch", None)
            if type(queued) is list:
                impl.batch = _Queue(queued, recorder)  # type: ignore[union-attr]
            yield batch_op
    return batch_alter_table


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NeedsDatabase):
        return str(exc)
    text = str(exc).strip()
    if type(exc).__name__ == "NoInspectionAvailable" and OfflineBind.__name__ in text:
        return "it inspects the live database (sqlalchemy.inspect(op.get_bind()))"
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _failing_line(exc: BaseException, filename: str) -> int:
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == filename]
    return (lines[-1] or 0) if lines else 0


def _render(fn: Callable[[], Any], name: str, dialect: str, filename: str) -> Rendered:
    recorder = _Recorder(filename)
    context = offline_context(dialect, recorder)
    rendered = Rendered()
    with Operations.context(context) as ops:
        bind = OfflineBind(context.dialect)
        # Instance attributes: the module proxy ``op`` looks its methods up on this instance.
        setattr(ops, "get_bind", lambda: bind)  # noqa: B010
        setattr(ops, "batch_alter_table", _recording_batch(ops.batch_alter_table, recorder))  # noqa: B010
        try:
            fn()
        except Exception as exc:  # the revision's own code: what it rendered is kept, the rest is a gap
            rendered.gap = {"line": _failing_line(exc, filename), "function": name, "reason": _reason(exc)}
    rendered.statements = recorder.emitted
    return rendered


def _shape(tree: ast.Module) -> tuple[str | None, int, int]:
    """The ``revision = "..."`` of a revision file and the lines of its upgrade and downgrade functions."""
    revision, lines = None, {"upgrade": 0, "downgrade": 0}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "revision" for t in targets) \
                    and isinstance(node.value, ast.Constant):
                revision = str(node.value.value)
        elif isinstance(node, ast.FunctionDef) and node.name in lines:
            lines[node.name] = node.lineno
    return revision, lines["upgrade"], lines["downgrade"]


def _load(path: Path, filename: str, project: Path) -> ModuleType:
    """Import the revision file as Alembic does, with the project on ``sys.path`` and no bytecode written."""
    name = f"_dbrunbook_lint_{abs(hash(filename))}"
    spec = importlib.util.spec_from_file_location(name, filename)
    if spec is None or spec.loader is None:
        raise UsageError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    saved = sys.dont_write_bytecode, list(sys.path)
    sys.dont_write_bytecode = True
    sys.path.insert(0, str(project.resolve()))
    sys.modules[name] = module  # dataclasses and typing look the module up while it is executed
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
        sys.dont_write_bytecode, sys.path[:] = saved
    return module


def render_revision_file(path: Path, dialect: str, project: Path = Path(".")) -> RevisionFile | None:
    """Render the revision file at ``path`` offline for ``dialect``; None when it is not an Alembic revision.

    A file that does not parse as Python raises :class:`UnreadableSource`; a revision whose code raises (it
    needs a database, an import fails) is rendered up to that point, the rest recorded as a gap.
    """
    text = path.read_text()
    try:
        tree = ast.parse(text, str(path))
    except SyntaxError as exc:
        raise UnreadableSource(f"{path}:{exc.lineno or 0}: does not parse as Python: {exc.msg}") from None
    revision, up_line, down_line = _shape(tree)
    if revision is None or not up_line:
        return None
    filename = str(path.resolve())
    try:
        module = _load(path, filename, project)
    except UsageError:
        raise
    except Exception as exc:  # an import of the revision failed: nothing could be rendered
        gap = {"line": _failing_line(exc, filename) or 1, "function": "import", "reason": _reason(exc)}
        return RevisionFile(path, revision, dialect, up_line, down_line, Rendered(gap=gap), None)
    up = _render(module.upgrade, "upgrade", dialect, filename)
    down_fn = getattr(module, "downgrade", None)
    down = _render(down_fn, "downgrade", dialect, filename) if callable(down_fn) else None
    for rendered, line in ((up, up_line), (down, down_line)):
        if rendered is not None and rendered.gap is not None and not rendered.gap["line"]:
            rendered.gap["line"] = line
    return RevisionFile(path, revision, dialect, up_line, down_line, up, down)


def as_migration(rendered: Rendered, dialect: str, source: str, *, in_transaction: bool,
                 default_line: int) -> Migration:
    """The rendered SQL parsed as one migration whose statements carry the revision lines they came from.

    ``in_transaction``: the statements run inside the transaction Alembic opens (PostgreSQL's
    transactional DDL); an autocommit block's COMMIT and BEGIN are in the SQL itself. A gap
    becomes one of the migration's ``gaps``; statements written outside the file's own code
    point at ``default_line``.
    """
    starts: list[int] = []
    lines: list[int] = []
    text = io.StringIO()
    at = 1
    for emitted in rendered.statements:
        chunk = emitted.sql if emitted.sql.endswith("\n") else emitted.sql + "\n"
        starts.append(at)
        lines.append(emitted.line or default_line)
        text.write(chunk)
        at += chunk.count("\n")
    migration = parse_sql(text.getvalue(), dialect, source, in_transaction=in_transaction)
    for stmt in migration.statements:
        at = bisect.bisect_right(starts, stmt.line) - 1
        stmt.line = lines[at] if at >= 0 else default_line
    if rendered.gap is not None:
        migration.gaps.append(dict(rendered.gap))
    return migration
