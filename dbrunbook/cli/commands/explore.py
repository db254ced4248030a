"""``dbrunbook explore``: open the explorer notebook on a run or a live database in JupyterLab.

The notebook (shipped in the package) is copied with its parameters set into a working folder, so the
installed one is never changed, then JupyterLab starts on the copy. A database password is never written
into the copy: the server, and so its kernels, get it from the environment, as the stages do.
"""
from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import click

from dbrunbook.cli import RUNS_DIR, RUNS_PROJECT, _runs_dir
from dbrunbook.errors import UnknownRunError, UsageError

LAB_MISSING = "JupyterLab is not installed: pip install 'dbrunbook[lab]' (or use --print-path for the notebook only)"


@click.command("explore")
@click.argument("run", required=False)
@click.option("--db", help="Explore this live database (read-only) instead of a run: a URL, or demo.")
@click.option("--models", help="Target models as module:attr, compared with --db [default: the project's].")
@RUNS_DIR
@RUNS_PROJECT
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder receiving the notebook [default: a new temporary folder].")
@click.option("--print-path", is_flag=True, help="Write the notebook, print its path and start no server.")
@click.option("--no-browser", is_flag=True, help="Start JupyterLab without opening a browser (it prints the URL).")
@click.option("--lab-arg", "lab_args", multiple=True, metavar="ARG",
              help="Passed on to jupyter lab, e.g. --lab-arg=--port=8899; repeatable.")
def command(run: str | None, db: str | None, models: str | None, runs_dir: Path | None, project: Path,
            out: Path | None, print_path: bool, no_browser: bool, lab_args: tuple[str, ...]) -> None:
    """Pick a change, table or finding of RUN (default: latest) or of --db and see its impact, in JupyterLab."""
    from dbrunbook.core.archive import find_run
    from dbrunbook.core.config import Target, load_target
    from dbrunbook.core.db import check_connection, make_engine
    from dbrunbook.core.stage import named_target
    from dbrunbook.explore import write_notebook

    if run and db:
        raise UsageError("give RUN or --db, not both")
    target: Target | None = None
    if db:
        named = named_target(db)
        target = named or load_target(project, db=db, models=models)
        with target.environment():  # the masked URL's password, lent while connecting once
            engine = make_engine(target.db)
            try:  # unreachable: exit 5 here, not a traceback in the notebook
                check_connection(engine)
            finally:
                engine.dispose()
        params = {"db": db if named else target.db, "models": models or target.models,
                  "project": str(target.project_dir)}
    else:
        folder = _runs_dir(runs_dir, project)
        try:
            params = {"run": str(find_run(run or "latest", folder)), "project": str(project.resolve())}
        except UnknownRunError:
            if run:
                raise
            raise UsageError(f"no run in {folder} to explore; give RUN, --runs-dir or --db URL "
                             "(--db demo: the demo)") from None
    notebook = write_notebook((out or Path(tempfile.mkdtemp(prefix="dbrunbook-explore-"))).resolve(), **params)
    if print_path:
        click.echo(str(notebook))
        return
    if importlib.util.find_spec("jupyterlab") is None:
        raise UsageError(LAB_MISSING)
    click.echo(f"opening {notebook} in JupyterLab; run all cells, then choose (Ctrl-C stops the server)")
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={notebook.parent}", notebook.name,
            *(["--no-browser"] if no_browser else []), *lab_args]
    # a database's password reaches the server (and so its kernels) through the environment only
    with target.environment() if target is not None else contextlib.nullcontext():
        try:
            code = subprocess.call(argv, cwd=notebook.parent)
        except KeyboardInterrupt:  # the server stops with its own message; no dbrunbook error on top
            code = 0
    raise SystemExit(code)
