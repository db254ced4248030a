"""The run journal: a run that is interrupted (Ctrl-C) or killed is still on the record.

A real ``dbrunbook update`` is stopped with SIGINT or SIGKILL at several points: while the command starts (its
imports: Ctrl-C there once printed a 65-line traceback), before its run folder exists, between two stages (the
next stage's kernel starting) and inside a stage. A run folder that was announced must hold a manifest that
``runs`` lists as interrupted with what completed, that ``show`` says stopped and where, and that ``verify``
refuses, naming it. Ctrl-C exits 130 with one line and no traceback, and no kernel folder stays in the temp dir.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from nbformat.v4 import new_code_cell, new_notebook

from dbrunbook.cli import main
from dbrunbook.runbook._kernel import PREFIX

#: The second stage says it is inside its cell (a file in the private temp dir), then sleeps.
SLEEPING = "sleeping-in-02"


def _runbooks(tmp_path: Path) -> Path:
    """Two stages that record a result: the first at once, the second after a minute."""
    folder = tmp_path / "books"
    folder.mkdir()
    for name, body in (("01-first", ""), ("02-second", f"import pathlib, tempfile\npathlib.Path(tempfile."
                                                       f"gettempdir(), {SLEEPING!r}).touch()\ntime.sleep(60)\n")):
        book = new_notebook(cells=[
            new_code_cell('db = "demo"\nrun_dir = ""', metadata={"tags": ["parameters"]}),
            new_code_cell(f"import time\n{body}from dbrunbook import StageResult, record\n"
                          f"record(StageResult(stage={name!r}, verdict='pass', summary='done'), run_dir)"),
        ])
        book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(book, folder / f"{name}.ipynb")
    return folder


def _update(tmp_path: Path, *python_flags: str) -> tuple[subprocess.Popen[str], Path, Path]:
    """``dbrunbook update`` of an empty SQLite database in a session of its own, with a private temp dir."""
    db = tmp_path / "target.db"
    sa.create_engine(f"sqlite:///{db}").connect().close()
    private_tmp, runs = tmp_path / "tmp", tmp_path / "runs"
    private_tmp.mkdir()
    proc = subprocess.Popen([sys.executable, *python_flags, "-m", "dbrunbook", "update", "--db", f"sqlite:///{db}",
                             "--dry-run", "--runbooks", str(_runbooks(tmp_path)), "--out", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(private_tmp)}, start_new_session=True)
    return proc, runs, private_tmp


def _one_line(proc: subprocess.Popen[str], out: str, err: str) -> str:
    assert proc.returncode == 130, (out, err)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("import time:")]
    assert "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("module", ["click", "sqlalchemy", "papermill"])
def test_ctrl_c_while_update_starts_exits_130_in_one_line(tmp_path, module):
    # `-X importtime` prints each module as its import ends: the signal comes while the command's own imports
    # run (click, sqlalchemy: the command module's; papermill: the stages', before the run folder exists).
    proc, runs, private_tmp = _update(tmp_path, "-X", "importtime")
    for line in proc.stderr:  # type: ignore[union-attr]
        if line.split("|")[-1].strip() == module or proc.poll() is not None:
            break
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert _one_line(proc, out, err).startswith("interrupted")
    assert not runs.exists() or not any(runs.iterdir()), list(runs.iterdir())  # nothing was announced
    assert _kernel_folders(private_tmp) == []


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("point", ["between-stages", "during-stage"])
def test_an_interrupted_run_is_on_the_record(tmp_path, point, how):
    proc, runs, private_tmp = _update(tmp_path)
    run_dir = _wait_for(proc, runs, private_tmp, point)
    os.killpg(proc.pid, getattr(signal, how))  # a terminal's Ctrl-C signals the whole foreground group
    out, err = proc.communicate(timeout=120)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]] == ["01-first"], manifest["stages"]
    if how == "SIGINT":
        line = _one_line(proc, out, err)
        assert line.startswith(f"interrupted; the run is recorded as interrupted: {run_dir}"), line
        assert manifest["status"] == "interrupted" and manifest["under_way"]["stage"] == "02-second"
    else:
        assert proc.returncode == -signal.SIGKILL
        assert manifest["status"] == "running"  # the process had no chance to say more
    listed = _cli("runs", "--runs-dir", str(runs))
    assert f"{run_dir.name}  PASS" in listed.stdout and "INTERRUPTED after 01-first" in listed.stdout, listed.stdout
    shown = _cli("show", str(run_dir))
    assert shown.exit_code == 0 and "status: INTERRUPTED; 02-second " in shown.stdout, shown.stdout
    if point == "during-stage":
        assert "02-second was under way" in shown.stdout
    verify = _cli("verify", str(run_dir))
    assert verify.exit_code == 4 and "the run is interrupted: its record ends after 01-first" in verify.stderr
    assert run_dir.name in verify.stderr and "Traceback" not in verify.stderr, verify.stderr
    assert _kernel_folders(private_tmp) == []


def _wait_for(proc: subprocess.Popen[str], runs: Path, private_tmp: Path, point: str) -> Path:
    """The run folder once stage 01 is on the record (``between-stages``), or stage 02 is inside its cell."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        manifests = list(runs.glob("*/manifest.json"))
        if manifests and json.loads(manifests[0].read_text()).get("stages"):
            if point == "between-stages" or (private_tmp / SLEEPING).exists():
                return manifests[0].parent
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"the run did not reach {point}: {proc.communicate()}")


def _kernel_folders(tmp: Path) -> list[str]:
    """The kernel folders left in ``tmp``, after the kernels' watchdog had its moment."""
    deadline = time.monotonic() + 10
    while (left := [p.name for p in tmp.glob(f"{PREFIX}*")]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _cli(*args: str) -> Result:
    """``dbrunbook ARGS`` in this process (the record is read as a child process would; it starts in no time)."""
    return CliRunner().invoke(main, list(args))
