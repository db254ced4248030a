"""The ``dbrunbook`` command: thin wrappers over the library.

Each command turns options into plain values, makes one library call and renders the
result. Library errors become one line on stderr and the exit code their class declares
(see :mod:`dbrunbook.errors`); a traceback is never shown.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def exit_interrupted(signum: int, frame: object) -> None:
    """SIGINT while the command starts (its imports, its options): one line and exit 130, never a traceback."""
    os.write(2, b"interrupted\n")
    os._exit(130)


exit_interrupted.dbrunbook_early = True  # type: ignore[attr-defined]  # how invoke knows the handler is ours


def _starting_as_program() -> None:
    """The ``dbrunbook`` script (``python -m dbrunbook`` installs this handler itself): Ctrl-C exits in one line
    until the command runs. Not when imported by another program (tests, a notebook): its SIGINT is its own."""
    if (Path(sys.argv[0]).name == "dbrunbook" and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
        signal.signal(signal.SIGINT, exit_interrupted)


_starting_as_program()

import click  # noqa: E402 - after the handler: importing takes a second, and Ctrl-C may come meanwhile

from dbrunbook import __version__  # noqa: E402
from dbrunbook.errors import (  # noqa: E402
    EXIT_INTERNAL,
    EXIT_STAGE_ERROR,
    DatabaseUnreachable,
    DbrunbookError,
    DbrunbookNote,
    UsageError,
)
from dbrunbook.runbook.progress import StageObserver, StageReporter, observing  # noqa: E402

# dbrunbook.runbook.report (results, the archive, SQLAlchemy) is imported by the commands that print runs, not
# here: `dbrunbook --help` and `lint` must not pay for it.

RUNS_DIR = click.option("--runs-dir", type=click.Path(path_type=Path),
                        help="Folder holding archived runs [default: runs_dir of [tool.dbrunbook] in --project, "
                             "else runs].")
#: ``--project`` of the commands that read archived runs: where [tool.dbrunbook] (runs_dir, trusted_keys) is read.
RUNS_PROJECT = click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                            help="Project root holding pyproject.toml [tool.dbrunbook].")


def _runs_dir(runs_dir: Path | None, project: Path) -> Path:
    """The folder of archived runs: given, else the project's ``runs_dir`` (as ``update`` writes them)."""
    from dbrunbook.core.config import load_run_settings

    return runs_dir if runs_dir is not None else load_run_settings(project).runs_dir
#: ``--format`` of the commands whose output tools read; the JSON documents are described in docs/json.md.
FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
                      help="Text for people, or one JSON document for tools (docs/json.md).")
#: ``--quiet`` of the commands that run stages.
QUIET = click.option("-q", "--quiet", is_flag=True, help="Print only the final report, no progress.")


#: Commands that live in their own module under ``dbrunbook/commands/`` (each defines
#: ``command``), imported only when used or listed.
_LAZY_COMMANDS = {
    "diff": "dbrunbook.cli.commands.diff",
    "lint": "dbrunbook.cli.commands.lint",
    "rewrite": "dbrunbook.cli.commands.rewrite",
    "checks": "dbrunbook.cli.commands.checks",
    "profile": "dbrunbook.cli.commands.profile",
    "backup": "dbrunbook.cli.commands.backup",
    "rehearse": "dbrunbook.cli.commands.rehearse",
    "apply": "dbrunbook.cli.commands.apply",
    "keygen": "dbrunbook.cli.commands.keygen",
    "sign": "dbrunbook.cli.commands.sign",
    "approve": "dbrunbook.cli.commands.approve",
    "notify-test": "dbrunbook.cli.commands.notify_test",
    "explore": "dbrunbook.cli.commands.explore",
}


class _Group(click.Group):
    """Maps dbrunbook errors to one line and their exit code; loads command modules lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        present = [n for n, m in _LAZY_COMMANDS.items() if importlib.util.find_spec(m) is not None]
        return sorted([*super().list_commands(ctx), *present])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in _LAZY_COMMANDS and importlib.util.find_spec(_LAZY_COMMANDS[name]) is not None:
            command: click.Command = importlib.import_module(_LAZY_COMMANDS[name]).command
            return command
        return super().get_command(ctx, name)

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Run as the program, the command ends the process itself once its output is flushed: its kernels are
        # shut down and its record written by then, and an interpreter exit could otherwise wait forever in
        # libzmq's context termination for a message to a kernel that is gone (seen after a Ctrl-C under load).
        program = getattr(signal.getsignal(signal.SIGINT), "dbrunbook_early", False)
        try:
            return super().main(*args, **kwargs)
        except SystemExit as exc:
            if not program:
                raise
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                click.echo(exc.code, err=True)
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def invoke(self, ctx: click.Context) -> Any:
        # Run as the program, Ctrl-C exited at once until now; from here it is a KeyboardInterrupt that the
        # command's own cleanup sees (kernels, scratch copies, the run's record), reported below in one line.
        program = getattr(signal.getsignal(signal.SIGINT), "dbrunbook_early", False)
        if program:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_note
                return super().invoke(ctx)
        except DbrunbookError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            if program:  # a second Ctrl-C must not cut the one line short with a traceback
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            click.echo(_interrupted(exc), err=True)
            sys.exit(130)  # as the program, main() then ends the process at once (a stage's thread may unwind)
        except BrokenPipeError:  # the reader went away (`| head`): not a bug; exit as a shell's SIGPIPE does
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
            sys.exit(141)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            unreachable = _unreachable(exc)
            if unreachable is not None:
                click.echo(f"error: {unreachable}", err=True)
                sys.exit(unreachable.exit_code)
            if os.environ.get("DBRUNBOOK_DEBUG"):
                raise
            # A bug of ours: still one line, but its own exit code, so CI does not read it as "blocked".
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"error: unexpected {type(exc).__name__}: {first} "
                       "(a bug in dbrunbook; set DBRUNBOOK_DEBUG=1 to see the traceback)", err=True)
            sys.exit(EXIT_INTERNAL)
        finally:
            if program:  # the command is done: a Ctrl-C while the interpreter exits prints nothing
                signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupted(exc: KeyboardInterrupt) -> str:
    """The one line of a Ctrl-C: the run's record when a run was interrupted, and what was under way."""
    run_dir = getattr(exc, "run_dir", None)
    if run_dir is None:
        return "interrupted; scratch copies were dropped"
    from dbrunbook.core.archive import describe_under_way, load_manifest

    try:
        where = describe_under_way(load_manifest(run_dir).get("under_way"))
    except DbrunbookError:
        where = ""
    return f"interrupted; the run is recorded as interrupted: {run_dir}" + (f"; {where}" if where else "")


def _unreachable(exc: Exception) -> DatabaseUnreachable | None:
    """A driver's failure to connect, raised past the commands' own checks, as :class:`DatabaseUnreachable`.

    SQLAlchemy leaves ``statement`` unset when the error came from opening the connection, not from a
    statement; the URL is not known here, and the driver's message names the host, never the password.
    """
    from sqlalchemy.exc import InterfaceError, OperationalError

    if not isinstance(exc, (OperationalError, InterfaceError)) or exc.statement is not None:
        return None
    text = str(exc.orig or exc).strip().splitlines()
    return DatabaseUnreachable("the database", text[0] if text else type(exc).__name__)


def _show_note(message: Warning | str, category: type[Warning], filename: str, lineno: int,
               file: Any = None, line: str | None = None) -> None:
    """Print dbrunbook's notes as one ``note:`` line on stderr; other warnings as Python prints them."""
    if issubclass(category, DbrunbookNote):
        click.echo(f"note: {message}", err=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


@contextlib.contextmanager
def reporting(quiet: bool, fmt: str = "text", cells: bool = False) -> Iterator[StageObserver | None]:
    """The progress of the runs started inside: on stdout, on stderr when stdout carries JSON, or none.

    ``cells``: papermill draws its own bars on stderr, so the progress is plain lines, not a spinner.
    """
    if quiet:
        yield None
        return
    with StageReporter(sys.stderr if fmt == "json" else sys.stdout, live=not cells) as reporter, \
            observing(reporter):
        yield reporter


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="dbrunbook")
def main() -> None:
    """Make database schema changes safe: analyse, check, rehearse and archive them as notebooks."""


def _params(values: tuple[str, ...]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        name, sep, raw = item.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(f"--param wants NAME=VALUE, not {item!r}")
        try:
            params[name] = json.loads(raw)
        except json.JSONDecodeError:
            params[name] = raw
    return params


def _run_options(f: Any) -> Any:
    for option in reversed([
        click.option("--stages", help="Comma-separated stages to run (e.g. 01,03 or schema-analysis)."),
        click.option("--out", type=click.Path(path_type=Path),
                     help="Folder receiving the run folder [default: runs_dir of [tool.dbrunbook], else runs]."),
        click.option("--keep-going", is_flag=True, help="Run later stages after a stage raised."),
        click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                     help="Parameter for the stages that declare NAME (JSON or text)."),
        click.option("--progress/--no-progress", default=False,
                     help="Also show each stage's cell-by-cell bar (papermill's, on stderr)."),
        click.option("--runbooks", type=click.Path(file_okay=False, exists=True, path_type=Path),
                     help="Folder of stage templates to run instead of the bundled ones."),
        FORMAT,
        QUIET,
    ]):
        f = option(f)
    return f


@main.command()
@click.option("--db", envvar="DBRUNBOOK_DB", help="Target database URL (or env DBRUNBOOK_DB).")
@click.option("--models", help="Target models as module:attr (MetaData or declarative base).")
@click.option("--alembic-config", type=click.Path(), help="The project's alembic.ini.")
@click.option("--project", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              help="Project root holding pyproject.toml [tool.dbrunbook].")
@click.option("--dry-run", is_flag=True, help="Write nothing outside the run folder.")
@click.option("--rollback-plan", is_flag=True, help="Also prove and document the rollback.")
@click.option("--test-cmd", help="Your test command, run against the migrated copy (stage 07).")
@click.option("--scale", help="Rehearse on a copy grown to this size, e.g. 10x or users=1000000 (stage 04).")
@click.option("-j", "--jobs", type=click.IntRange(min=0), default=0,
              help="Stages run at once, each in its own kernel, once what they read is done [default: 0, one "
                   "per core, at most two]; 1 runs them one by one.")
@_run_options
def update(db: str | None, models: str | None, alembic_config: str | None, project: Path, dry_run: bool,
           rollback_plan: bool, test_cmd: str | None, scale: str | None, jobs: int, stages: str | None,
           out: Path | None, keep_going: bool, params: tuple[str, ...], progress: bool, runbooks: Path | None,
           fmt: str, quiet: bool) -> None:
    """Analyse, check and rehearse a schema change; never changes the target database."""
    from dbrunbook.core.config import load_run_settings, load_target
    from dbrunbook.runbook import RunOptions, run_runbook

    target = load_target(project, db=db, models=models, alembic_config=alembic_config)
    settings = load_run_settings(project)
    shortcuts = {"test_cmd": test_cmd, "scale": scale}
    options = RunOptions(stages=stages.split(",") if stages else settings.stages, out=out or settings.runs_dir,
                         dry_run=dry_run, rollback_plan=rollback_plan, keep_going=keep_going, jobs=jobs,
                         parameters={**{k: v for k, v in shortcuts.items() if v}, **_params(params)},
                         project_parameters=settings.parameters, progress=progress, runbooks=runbooks)
    with reporting(quiet, fmt, cells=progress) as on_stage:
        options.on_stage = on_stage
        run = run_runbook(target, options)
    finish_run(run, fmt)


def finish_run(run: Any, fmt: str = "text") -> None:
    """Print a finished run and exit with its documented code (shared by the commands that run stages)."""
    from dbrunbook.runbook.report import render_run, run_exit_code, run_json

    click.echo(_dumps(run_json(run.path)) if fmt == "json" else render_run(run.path))
    code = run_exit_code(run)
    if code == EXIT_STAGE_ERROR and run.failed:
        click.echo(f"error: stage {run.failed.name} raised; see {run.path / run.failed.notebook}", err=True)
    sys.exit(code)


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("dbrunbook-demo"), show_default=True,
              help="Where to write the demo project (must not exist or be empty).")
@click.option("--db", help="Build the demo database here instead of SQLite (an empty database).")
@click.option("--users", type=click.IntRange(400, 2_000_000), default=20_000, show_default=True,
              help="Demo users (orders and items are twice as many).")
@QUIET
def demo(out: Path, db: str | None, users: int, quiet: bool) -> None:
    """Write the demo shop project and run `update --dry-run` on it."""
    from dbrunbook.demo import run_demo

    if not quiet:
        click.echo(f"writing the demo project to {out} ...")
    with reporting(quiet):
        run = run_demo(out, db=db, users=users)
    finish_run(run)


@main.command("runs")
@RUNS_DIR
@RUNS_PROJECT
@FORMAT
def runs_(runs_dir: Path | None, project: Path, fmt: str) -> None:
    """List archived runs."""
    from dbrunbook.runbook import list_runs
    from dbrunbook.runbook.report import render_runs, runs_json

    found = list_runs(_runs_dir(runs_dir, project))
    click.echo(_dumps(runs_json(found)) if fmt == "json" else render_runs(found))


@main.command()
@click.argument("run")
@RUNS_DIR
@RUNS_PROJECT
@FORMAT
def show(run: str, runs_dir: Path | None, project: Path, fmt: str) -> None:
    """Show a run's stages, verdicts and findings (RUN: id, unique part of one, path, or latest)."""
    from dbrunbook.runbook import find_run
    from dbrunbook.runbook.report import render_run, run_json

    path = find_run(run, _runs_dir(runs_dir, project))
    document, text = (run_json(path), None) if fmt == "json" else (None, render_run(path))
    status, where = _interrupted_run(path)
    if document is not None:
        document.update({"under_way": where} if status != "complete" else {})
        click.echo(_dumps(document))
    else:
        click.echo(text)
        if status != "complete":  # the stages above are what the run completed; this is where it stopped
            from dbrunbook.core.archive import describe_under_way

            click.echo(f"status: {status.upper()}" + (f"; {describe_under_way(where)}" if where else ""))


def _interrupted_run(path: Path) -> tuple[str, dict[str, Any] | None]:
    """The run's status, and for a run that did not complete, the stage it stopped in (:func:`under_way`)."""
    from dbrunbook.core.archive import load_manifest, run_status, under_way

    manifest = load_manifest(path)
    status = run_status(manifest)
    return status, (under_way(path, manifest) if status != "complete" else None)


@main.command()
@click.argument("run")
@RUNS_DIR
@RUNS_PROJECT
@FORMAT
def verify(run: str, runs_dir: Path | None, project: Path, fmt: str) -> None:
    """Recompute a run folder's hashes against its manifest and check its signatures; any change fails.

    With trusted_keys in [tool.dbrunbook], the run must bear a valid author signature by one of them; any
    signature that does not verify fails (the manifest changed after it was signed).
    """
    from dbrunbook.core.config import load_run_settings
    from dbrunbook.core.signing import trusted_keys, verify_signed_run
    from dbrunbook.errors import VerificationFailed
    from dbrunbook.runbook import find_run
    from dbrunbook.runbook.report import verify_json

    path = find_run(run, _runs_dir(runs_dir, project))
    try:
        manifest, signatures = verify_signed_run(path, trusted_keys(load_run_settings(project)))
    except VerificationFailed as exc:  # SignatureInvalid too: both exit 4
        if fmt == "json":  # the document on stdout, the one-line error on stderr, exit 4
            click.echo(_dumps(verify_json(path, None, exc.problems)))
        raise
    if fmt == "json":
        click.echo(_dumps(verify_json(path, manifest, [], [s.to_json() for s in signatures])))
    else:
        signed = "; ".join(s.detail for s in signatures) or "not signed"
        click.echo(f"OK: {len(manifest['files'])} files of {path.name} match the manifest; {signed}")


def _dumps(document: Any) -> str:
    return json.dumps(document, indent=2, default=str)


@main.command()
@click.argument("run")
@RUNS_DIR
@RUNS_PROJECT
@click.option("--out", type=click.Path(path_type=Path), help="Folder for the HTML (default: RUN-html beside it).")
def export(run: str, runs_dir: Path | None, project: Path, out: Path | None) -> None:
    """Export a run as HTML, one page per stage with inputs hidden, plus an index."""
    from dbrunbook.runbook import export_run, find_run

    click.echo(f"wrote {export_run(find_run(run, _runs_dir(runs_dir, project)), out)}")


if __name__ == "__main__":  # pragma: no cover
    main()
