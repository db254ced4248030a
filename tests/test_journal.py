"""The run journal: a run that is interrupted (Ctrl-C) or killed is still on the record.

A real ``dbrunbook update`` on a stage that takes long is stopped with SIGINT or SIGKILL once its journal says the
stage is under way; the run folder must hold a manifest that ``runs`` lists as interrupted and ``verify`` refuses
as incomplete, naming what completed. Ctrl-C exits 130 with one line and no traceback.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dbrunbook.runbook.engine import runbook_folder

SLOW_CELL = "import time\ntime.sleep(60)\n"


def _slow_runbooks(tmp_path: Path) -> Path:
    """The real stage 01 template, then a copy of stage 02 whose first code cell sleeps."""
    import nbformat

    folder = tmp_path / "runbooks"
    folder.mkdir()
    shutil.copy(runbook_folder() / "01-schema-analysis.ipynb", folder)
    notebook = nbformat.read(runbook_folder() / "02-design-validation.ipynb", as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    code[1].source = SLOW_CELL + code[1].source
    nbformat.write(notebook, folder / "02-design-validation.ipynb")
    return folder


def _start(tmp_path: Path, demo_db: str, runbooks: Path) -> tuple[subprocess.Popen[str], Path]:
    runs = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "dbrunbook", "update", "--db", demo_db, "--dry-run",
                             "--runbooks", str(runbooks), "--out", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # wait for the journal to record stage 01 done, stage 02 under way
        manifests = list(runs.glob("*/manifest.json"))
        if manifests and json.loads(manifests[0].read_text()).get("stages"):
            return proc, manifests[0].parent
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the run did not reach stage 02: {proc.communicate()}")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dbrunbook", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_an_interrupted_run_is_on_the_record(demo, dialect, tmp_path, how):
    proc, run_dir = _start(tmp_path, demo.db, _slow_runbooks(tmp_path))
    time.sleep(1.0)  # inside stage 02's sleeping cell
    os.killpg(proc.pid, getattr(signal, how)) if how == "SIGKILL" else proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert [s["name"] for s in manifest["stages"]][:1] == ["01-schema-analysis"]
    if how == "SIGINT":
        assert proc.returncode == 130, (out, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert manifest["status"] == "interrupted"
    else:
        assert manifest["status"] == "running"  # the process had no chance to say more
    listed = _cli("runs", "--runs-dir", str(run_dir.parent))
    assert "INTERRUPTED after 01-schema-analysis" in listed.stdout, listed.stdout
    verify = _cli("verify", str(run_dir))
    assert verify.returncode == 4 and "interrupted" in verify.stderr, verify.stderr
