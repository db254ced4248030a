"""The child process in which dbrunbook runs Alembic, and with it the project's ``env.py``.

``python -m dbrunbook.alembic_ops._child REQUEST.json RESULT.json``: the parent
(:func:`dbrunbook.alembic_ops.migration.run_alembic`) writes the request, starts this process with an environment whose
usual URL variables point at the scratch copy, and reads the result. Running here rather than in the stage
kernel gives three things no in-process call can:

* the :mod:`fence` in ``sandbox`` mode: only the scratch copy can be reached, whatever ``env.py`` does
  (a URL from the environment, from application settings, ``engine_from_config``, a raw DBAPI connect);
* no running event loop, so an async ``env.py`` (``alembic init -t async``) can call ``asyncio.run()``;
* a clean interpreter: the project's imports and module-level state do not leak into the stage.

Online, every statement any engine runs is captured (``env.py`` may ignore the connection it is handed and
build its own engine, which the fence only lets reach the copy). Offline (``sql``), Alembic renders SQL into a
buffer and no database may be reached at all.

With ``alembic_isolation_level`` in the project's ``[tool.dbrunbook]`` (``AUTOCOMMIT`` for a project whose own
runner migrates on an AUTOCOMMIT connection, e.g. Dagster's ``CREATE INDEX CONCURRENTLY`` revisions), every
connection to the copy runs at that level: the one handed to ``env.py`` and any ``env.py`` opens itself.
"""
from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Statements that only read or set up a session; not part of what a migration does.
_NOT_MIGRATION = ("PRAGMA", "SELECT", "SHOW", "DESCRIBE")
#: Markers of an async env.py (the async drivers are each dialect's ``async_drivers``).
_ASYNC_MARKERS = ("async_engine_from_config", "create_async_engine", "AsyncEngine")
#: The parameter sets of one execution rendered with their values inlined, at most: each becomes a statement a
#: reader counts on its own, and an executemany of more is a bulk load rather than a statement to count.
_INLINED_SETS = 20


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def _fenced(exc: BaseException | None) -> Any:
    from dbrunbook.errors import TargetFenced

    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, TargetFenced):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _reads(env_py: Path, *names: str) -> bool:
    """Whether ``env.py``'s source mentions any of ``names`` (it is the user's file; it is read, not run, here)."""
    try:
        source = env_py.read_text()
    except OSError:
        return False
    return any(name in source for name in names)


def _async_url(url: Any, env_py: Path) -> Any:
    """The copy's URL with an async driver when ``env.py`` builds an async engine from ``sqlalchemy.url``."""
    import importlib.util

    from dbrunbook import dialects

    if not _reads(env_py, *_ASYNC_MARKERS):
        return url
    dialect = dialects.get(url.get_backend_name())
    for module, driver in dialect.async_drivers if dialect else ():
        if importlib.util.find_spec(module) is not None:
            return url.set(drivername=driver)
    return url


def _config(request: dict[str, Any]) -> Any:
    from alembic.config import Config

    ini = request.get("ini")
    cfg = Config(ini, ini_section=request.get("section") or "alembic") if ini else Config()
    for name, value in request.get("options", {}).items():
        cfg.set_main_option(name, str(value).replace("%", "%%"))
    return cfg


class _Recorder:
    """Statements run by any engine of this process, with timings, and the one that failed.

    Each statement is recorded as ``{"sql": the text the driver received, "seconds": ...}``, with what readers of
    that text need beside it (:func:`_beside`): whether the driver's paramstyle doubles each ``%``, and, for a
    statement run with bound parameters, the statement with their values inlined (or why it could not be).
    """

    def __init__(self) -> None:
        self.statements: list[dict[str, Any]] = []
        self.failed = ""

    def install(self) -> None:
        import sqlalchemy as sa
        from sqlalchemy.engine import Engine

        sa.event.listen(Engine, "before_cursor_execute", self.before)
        sa.event.listen(Engine, "after_cursor_execute", self.after)
        sa.event.listen(Engine, "handle_error", self.on_error)

    def before(self, conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        conn.info["dbrunbook_t0"] = time.perf_counter()

    def after(self, conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        elapsed = time.perf_counter() - conn.info.pop("dbrunbook_t0", time.perf_counter())
        if not sql.lstrip().upper().startswith(_NOT_MIGRATION):
            self.statements.append({"sql": sql, "seconds": round(elapsed, 6), **_beside(context)})

    def on_error(self, context: Any) -> None:
        self.failed = str(context.statement or "")


def _beside(context: Any) -> dict[str, Any]:
    """What a reader of a recorded statement needs beside the driver's text; never raises (it runs in the hook).

    ``doubles_percent``: the text has each ``%`` written twice, as SQLAlchemy writes it for a ``format`` /
    ``pyformat`` driver. A statement compiled from SQLAlchemy (``sa.text`` with values, Core ``update()`` /
    ``delete()``) with bound parameters: ``inlined``, the statement with each parameter set's values written in
    as literals, one text per set (in the same ``%`` convention), or ``inline_error``, why not; ``adds_rows`` for a
    Core INSERT of given values (``op.bulk_insert``), which touches no existing row. A statement run through
    ``exec_driver_sql`` with the driver's own parameters: ``driver_params`` (SQLAlchemy never saw their types).
    """
    facts: dict[str, Any] = {}
    try:
        if context.dialect.paramstyle in ("format", "pyformat"):
            facts["doubles_percent"] = True
        compiled = context.compiled
        if compiled is None:
            if any(context.parameters or ()):
                facts["driver_params"] = True
            return facts
        if not getattr(compiled, "bind_names", None):
            return facts
        statement = compiled.statement
        if getattr(compiled, "isinsert", False) and getattr(statement, "select", None) is None:
            facts["adds_rows"] = True
            return facts
        sets = list(context.compiled_parameters or ())
        if len(sets) > _INLINED_SETS:
            facts["inline_error"] = (f"it runs once for each of {len(sets)} parameter sets (more than "
                                     f"{_INLINED_SETS} to count one by one), whose values are not inlined")
            return facts
        facts["inlined"] = [_inline(compiled, context.dialect, values) for values in sets]
    except Exception as exc:  # a value without a literal form (JSON, an array, a custom type): the reason is kept
        facts.pop("inlined", None)
        facts["inline_error"] = ("it runs with bound parameters whose values cannot be written as SQL: "
                                 f"{_first_line(exc)}")
    return facts


def _inline(compiled: Any, dialect: Any, values: dict[str, Any]) -> str:
    """``compiled``'s statement with ``values`` (bind name -> value) written in as literals, by the same dialect.

    The compiled statement may be a cached one, first compiled for another execution: its binds are named by
    ``compiled.bind_names``, and ``values`` are this execution's, so each bind of it takes this execution's value.
    """
    import warnings

    import sqlalchemy as sa
    from sqlalchemy.sql import visitors

    names = compiled.bind_names
    source: Any = compiled.statement
    if getattr(compiled, "isupdate", False):
        # ``conn.execute(t.update().where(...), [{"name": ...}, ...])``: the compiler set the columns the
        # parameters name, with binds of its own (none of the statement's); as values of the statement they are
        # written in like the others.
        own = {names.get(e) for e in visitors.iterate(source) if isinstance(e, sa.BindParameter)}
        taken = {name: value for name, value in values.items() if name not in own and name in source.table.c}
        source = source.values(taken) if taken else source

    def valued(element: Any, **kw: Any) -> Any:
        name = names.get(element) if isinstance(element, sa.BindParameter) else None
        if name is None or name not in values:
            return None
        return element._with_value(values[name], maintain_key=True, required=False)

    statement: Any = visitors.replacement_traverse(source, {}, valued)
    with warnings.catch_warnings():  # "rendering literal NULL": a NULL is what the driver was sent, too
        warnings.simplefilter("ignore")
        return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _isolate(level: str, copy: Any) -> None:
    """Open every connection to ``copy`` at the isolation ``level``, whichever engine (ours or env.py's) opens it.

    ``env.py`` may build its own engine from ``sqlalchemy.url`` or an environment variable, so no engine argument
    of ours reaches it, and rewriting the URL cannot carry an isolation level. SQLAlchemy's own engine-wide
    ``isolation_level`` execution option is an ``engine_connect`` hook that sets it on each new connection; this is
    the same hook, on every engine of this process, sync or async (an async engine's connections are its sync
    engine's), and only for the copy (nothing else can be reached here: the fence refuses it).
    """
    if not level:
        return
    import sqlalchemy as sa
    from sqlalchemy.engine import Engine

    from dbrunbook.core.fence import identity

    wanted = identity(copy)

    def at_level(conn: Any) -> None:
        if identity(conn.engine.url) == wanted:
            conn.execution_options(isolation_level=level)

    sa.event.listen(Engine, "engine_connect", at_level)


def _step_result(ok: bool, started: float, recorder: _Recorder | None, exc: BaseException | None = None,
                 output: str = "") -> dict[str, Any]:
    result: dict[str, Any] = {"ok": ok, "seconds": round(time.perf_counter() - started, 6), "output": output,
                              "statements": list(recorder.statements) if recorder else [],
                              "failed_statement": recorder.failed if recorder and not ok else ""}
    if exc is not None:
        fenced = _fenced(exc)
        orig = fenced or getattr(exc, "orig", None) or exc
        result.update(error=_first_line(orig), error_type=type(orig).__name__)
        if fenced is not None:
            result["fenced"] = {"target": fenced.target, "where": fenced.where}
    return result


def _run_online(request: dict[str, Any]) -> list[dict[str, Any]]:
    from alembic import command

    from dbrunbook.alembic_ops.handed import hand_over
    from dbrunbook.core.config import load_isolation_level
    from dbrunbook.core.db import make_engine
    from dbrunbook.core.secrets import resolve_url

    cfg = _config(request)
    url = resolve_url(request["url"])
    # The project's runner's level (run() moved into the project folder): [tool.dbrunbook] of the project.
    _isolate(load_isolation_level(Path(request.get("project_dir") or ".")), url)
    env_py = Path(cfg.get_main_option("script_location") or ".") / "env.py"
    cfg.set_main_option("sqlalchemy.url", _async_url(url, env_py).render_as_string(hide_password=False)
                        .replace("%", "%%"))
    recorder = _Recorder()
    recorder.install()
    results: list[dict[str, Any]] = []
    engine = make_engine(url)
    try:
        for step in request["steps"]:
            fn = command.upgrade if step["command"] == "upgrade" else command.downgrade
            recorder.statements, recorder.failed = [], ""
            started = time.perf_counter()
            with engine.connect() as conn:
                hand_over(cfg, conn)
                try:
                    fn(cfg, step["revision"])
                    conn.commit()
                except Exception as exc:  # the database's (or env.py's) own error is the evidence
                    conn.rollback()
                    results.append(_step_result(False, started, recorder, exc))
                    break
                finally:
                    cfg.attributes.pop("connection", None)
            results.append(_step_result(True, started, recorder))
    finally:
        engine.dispose()
    return results


def _run_offline(request: dict[str, Any]) -> list[dict[str, Any]]:
    from alembic import command

    cfg = _config(request)
    cfg.set_main_option("sqlalchemy.url", str(request["url"]).replace("%", "%%"))
    results: list[dict[str, Any]] = []
    for step in request["steps"]:
        fn = command.upgrade if step["command"] == "upgrade" else command.downgrade
        buffer = io.StringIO()
        cfg.output_buffer = buffer
        started = time.perf_counter()
        try:
            fn(cfg, step["revision"], sql=True)
        except Exception as exc:  # a revision that needs a live database cannot be rendered offline
            results.append(_step_result(False, started, None, exc, buffer.getvalue()))
            break
        results.append(_step_result(True, started, None, output=buffer.getvalue()))
    return results


def run(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Run the request's Alembic steps under the fence; one result per step run (stops at the first failure)."""
    import os

    from dbrunbook.core import fence

    project = request.get("project_dir")
    if project:
        os.chdir(project)
        sys.path.insert(0, project)
    fence.sandbox(*request.get("allowed", []))
    # Alembic and env.py print and log; the parent reads only the result file.
    env_py = Path(str(request.get("options", {}).get("script_location", "."))) / "env.py"
    flask_app = request.get("flask_app", "") if _reads(env_py, "current_app") else ""
    with contextlib.redirect_stdout(sys.stderr), _flask_context(flask_app):
        return _run_offline(request) if request.get("sql") else _run_online(request)


@contextlib.contextmanager
def _flask_context(app_path: str) -> Iterator[None]:
    """The application context a Flask-Migrate ``env.py`` reads ``current_app`` from (as ``flask db`` gives it).

    The app is loaded the way the ``flask`` command loads it (a module, ``module:app`` or a factory call); its
    URL comes from the environment, which points at the scratch copy here, or the fence refuses it.
    """
    if not app_path:
        yield
        return
    from flask.cli import ScriptInfo

    app = ScriptInfo(app_import_path=app_path).load_app()
    with app.app_context():
        yield


def main(argv: list[str]) -> int:
    request_path, result_path = Path(argv[0]), Path(argv[1])
    request = json.loads(request_path.read_text())
    try:
        steps = run(request)
        payload: dict[str, Any] = {"steps": steps}
    except KeyboardInterrupt:  # Ctrl-C (or a revision that raises it): the parent stops as the user asked
        return 130
    except BaseException as exc:  # env.py failed before any step could start: still a result, not a crash
        payload = {"steps": [_step_result(False, time.perf_counter(), None, exc)]}
    result_path.write_text(json.dumps(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
