"""The runbook and the ``dbrunbook`` command, run the way the tests run them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from dbrunbook import RunOptions, run_runbook
from dbrunbook.core.config import Target
from dbrunbook.core.results import StageResult, load_result
from dbrunbook.runbook import Run


def run_stages(target: Target, out: Path, stages: list[str], parameters: dict[str, Any] | None = None,
               **options: Any) -> tuple[Run, StageResult]:
    """Run ``stages`` on ``target`` into the runs folder ``out``: the run, and the result its last stage recorded.

    ``parameters`` are the stages' parameters; ``options`` any other :class:`RunOptions` field (``dry_run``, ...).
    """
    run = run_runbook(target, RunOptions(out=out, stages=stages, parameters=parameters or {}, **options))
    return run, load_result(run.path, run.stages[-1].name)


def dbrunbook(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m dbrunbook ARGS`` in a child process, as a user runs it; ``env`` adds to the environment.

    ``DBRUNBOOK_DB`` of the shell running the tests is not passed on: a test names its database itself.
    """
    base = {k: v for k, v in os.environ.items() if k != "DBRUNBOOK_DB"}
    return subprocess.run([sys.executable, "-m", "dbrunbook", *args], capture_output=True, text=True,
                          cwd=cwd, env={**base, **(env or {})}, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    """The command failed as a user sees it: exit ``code``, one ``error:`` line holding ``words``, no traceback."""
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0]
