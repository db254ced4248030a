"""`dbrunbook apply` stopped by Ctrl-C (SIGINT) or SIGKILL before it touches the target, during its DDL, after commit.

Each time, a real ``dbrunbook apply PLAN_RUN`` runs in a session of its own with a private TMPDIR, and is stopped at
a point read from the outside: its run record appears (nothing touched yet), its stage 11 records the intent while
another session holds the lock its ALTER TABLE waits for (the DDL under way), or stage 11 records the outcome
(committed). Then the run is on the record (``runs`` lists it interrupted, ``show`` says where it stopped, ``verify``
refuses it), the intent is on the record once the apply began, the target is at the old revision with the old
schema or at the new one with the new schema, the apply lock is free, no kernel folder is left, and Ctrl-C exits 130
with one line and no traceback.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from dbrunbook.cli import main
from dbrunbook.core.db import make_engine
from dbrunbook.runbook._kernel import PREFIX
from dbrunbook.stages.guarded_apply import holder
from helpers.apply_plan import Blocker, Planned, plan_once

#: Where the apply is stopped: its run record exists; its ALTER waits on another session's lock; it committed.
POINTS = ("before-target", "during-ddl", "after-commit")
#: The apply's lock waits end after its lock timeout (2 s by default): a session of a killed apply that still
#: waits on the server gives up by then, before the blocker lets it through.
LOCK_TIMEOUT_SECONDS = 2.0
#: A session waiting for the lock that ALTER TABLE customers needs, as each server shows it.
_WAITING = {
    "postgresql": "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                  "AND wait_event_type = 'Lock' AND query LIKE 'ALTER TABLE%'",
    "mariadb": "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for table metadata%' "
               "AND DB = DATABASE() AND INFO LIKE 'ALTER TABLE%'",
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def planned(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    yield from plan_once(request.param, tmp_path_factory)


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("point", POINTS)
def test_an_apply_stopped_anywhere_is_on_the_record_and_leaves_the_target_old_or_new(planned: Planned, tmp_path,
                                                                                     point, how):
    planned.reset()
    before = planned.state()
    runs = planned.plan_run.parent
    earlier = set(runs.iterdir())
    blocker = Blocker(planned) if point == "during-ddl" else None
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "dbrunbook", "apply", str(planned.plan_run), "--project",
                                 str(planned.project)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "TMPDIR": str(private_tmp)}, start_new_session=True)
        run_dir = _wait_for(proc, runs, earlier, point, planned)
        os.killpg(proc.pid, getattr(signal, how))  # a terminal's Ctrl-C signals the whole foreground group
        out, err = proc.communicate(timeout=120)
        if blocker is not None:
            time.sleep(LOCK_TIMEOUT_SECONDS + 1)  # a killed apply's session that still waits times out first
    finally:
        if blocker is not None:
            blocker.release()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()

    if how == "SIGINT":
        assert proc.returncode == 130, (out, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert "interrupted" in err and str(run_dir) in err, err
    else:
        assert proc.returncode == -signal.SIGKILL, (out, err)

    # the record: listed as interrupted with what it completed; show says where it stopped; verify refuses it
    manifest = json.loads((run_dir / "manifest.json").read_text())
    listed = _cli("runs", "--runs-dir", str(runs))
    [line] = [line for line in listed.stdout.splitlines() if line.startswith(run_dir.name)]
    assert "INTERRUPTED after" in line, listed.stdout
    shown = _cli("show", str(run_dir))
    assert shown.exit_code == 0 and "status: INTERRUPTED" in shown.stdout, shown.stdout + shown.stderr
    verified = _cli("verify", str(run_dir))
    assert verified.exit_code == 4 and "the run is interrupted" in verified.stderr, verified.stderr
    assert run_dir.name in verified.stderr and len(verified.stderr.strip().splitlines()) == 1, verified.stderr
    steps = _steps(run_dir)
    revision, schema, data = planned.state()
    if point == "before-target":
        assert "intent" not in steps  # stopped before stage 11 began: nothing was to be touched
        assert (revision, schema, data) == before
    else:
        intent = steps["intent"]  # on the record before the first statement ran
        assert (intent["revision_from"], intent["revision_to"]) == ("0001", "0002"), intent
        assert "11-guarded-apply was under way; it intended to apply 0002 (0001 -> 0002)" in shown.stdout
        assert "it intended to apply 0002" in verified.stderr
    if point == "during-ddl":  # the DDL never got its lock: nothing of it stays
        assert (revision, schema, data) == before
        if how == "SIGINT":  # the interrupted run looked at the target once its kernel was killed
            assert steps["outcome"]["interrupted"] and steps["outcome"]["revision_after"] == "0001", steps
            assert "the target was at 0001 (the old revision)" in err, err
        else:
            assert "outcome" not in steps and "it recorded no outcome" in shown.stdout, shown.stdout
    if point == "after-commit":  # committed: the new revision and the whole change
        assert steps["outcome"]["applied"] is True and revision == "0002", steps
        columns = {c["name"] for c in schema["tables"]["customers"]["columns"]}
        assert "phone" in columns and "ix_customers_email" in {i["name"] for i in schema["tables"]["customers"]
                                                               ["indexes"]}
        assert data["customers"]["rows"] == before[2]["customers"]["rows"]
    assert manifest["status"] == ("interrupted" if how == "SIGINT" else "running")
    assert holder(planned.url) is None  # the apply lock went with the process
    assert _kernel_folders(private_tmp) == []


def _wait_for(proc: subprocess.Popen[str], runs: Path, earlier: set[Path], point: str, planned: Planned) -> Path:
    """The apply's run folder, once the apply reached ``point``."""
    deadline = time.monotonic() + 240
    run_dir = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the apply ended before {point}: {proc.communicate()}")
        new = [p for p in set(runs.iterdir()) - earlier if (p / "manifest.json").is_file()]
        if new:
            [run_dir] = new
            steps = _steps(run_dir)
            if point == "before-target" or (point == "after-commit" and "outcome" in steps):
                return run_dir
            if point == "during-ddl" and "intent" in steps and _ddl_waits(planned):
                return run_dir
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"the apply did not reach {point} ({run_dir}): {proc.communicate()}")


def _ddl_waits(planned: Planned) -> bool:
    """The apply's ALTER TABLE waits on the blocker's lock (SQLite shows no waits: a moment into the attempt)."""
    if planned.dialect == "sqlite":
        time.sleep(1.0)
        return True
    engine = make_engine(planned.url)
    try:
        with engine.connect() as conn:
            return bool(conn.execute(sa.text(_WAITING[planned.dialect])).scalar())
    finally:
        engine.dispose()


def _steps(run_dir: Path) -> dict:
    path = run_dir / "11-guarded-apply" / "journal.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _kernel_folders(tmp: Path) -> list[str]:
    """The kernel folders left in ``tmp``, after the kernels' watchdog had its moment."""
    deadline = time.monotonic() + 10
    while (left := [p.name for p in tmp.glob(f"{PREFIX}*")]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def _cli(*args: str) -> Result:
    """``dbrunbook ARGS`` in this process (the record is read as a child process would; it starts in no time)."""
    return CliRunner().invoke(main, list(args))
