"""Stages 4 and 7: apply the migration to a scratch copy of the target, and record what happened.

:func:`rehearse` copies the target (:func:`dbrunbook.data.clone.scratch_copy`), optionally grows the
copy to a production-like volume (:func:`dbrunbook.stages.staging.grow`), runs the upgrade on it with
every statement and revision timed, and returns the outcome, including the database's exact
error when it fails. After a successful upgrade it probes (:mod:`dbrunbook.stages.dev_rehearsal.probes`)
each constraint the migration adds with a row that constraint must reject (and a control row that
differs only there, which must be accepted), and runs the user's test command against the copy with ``DATABASE_URL`` and
``DBRUNBOOK_CLONE_URL`` exported, counting its SQL per test (:mod:`dbrunbook.stages.tests`). The target is
only read; the copy is always dropped.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from alembic.script import ScriptDirectory
from sqlalchemy.engine import URL

from dbrunbook.alembic_ops.migration import (
    ApplyResult,
    alembic_config,
    apply_upgrade,
    current_revision,
    pending_revisions,
)
from dbrunbook.core import fence
from dbrunbook.core.config import Target
from dbrunbook.core.db import check_connection, make_engine
from dbrunbook.core.results import Finding
from dbrunbook.core.secrets import MASK, mask_url, resolve_url, secret_values
from dbrunbook.data.clone import scratch_copy
from dbrunbook.stages.dev_rehearsal._querylog import parse_log, plugin_environment
from dbrunbook.stages.dev_rehearsal.probes import Probe, constraint_snapshot, probe_findings, run_probes
from dbrunbook.stages.staging import Scale, grow

#: Characters of a test command's output kept in the record (the end, where failures are).
OUTPUT_TAIL = 20_000
#: What marks the end of one revision among the captured statements: Alembic's own
#: bookkeeping of the version table, which names the revision just applied.
_VERSION_MARK = re.compile(r"version_num\s*=\s*'([^']+)'|\(\s*version_num\s*\)\s*VALUES\s*\(\s*'([^']+)'", re.I)


@dataclass
class TestRun:
    """The user's test command, run against the migrated copy."""

    __test__ = False  # not a pytest test class, despite its name

    command: str
    passed: bool
    returncode: int | None
    seconds: float
    output: str
    timed_out: bool = False
    #: Per test, its statements counted by shape (see :mod:`dbrunbook.stages.tests`); None when not
    #: counted: counting was off, or the command did not load the pytest plugin.
    query_counts: list[dict[str, Any]] | None = None


@dataclass
class Rehearsal:
    """The outcome of one rehearsal."""

    revision_before: str | None
    revision_after: str | None
    upgrade: ApplyResult
    target_revision_unchanged: bool
    revisions: list[dict[str, Any]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    tests: TestRun | None = None
    clone: str = ""
    mode: str = "full"
    rows: dict[str, int] = field(default_factory=dict)
    tests_skipped: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rehearse(target: Target, script_dir: Path, mode: str = "full", *, rows: int = 1000,
             probes: bool = True, test_cmd: str = "", test_timeout: float = 900.0,
             scale: Scale | None = None) -> Rehearsal:
    """Upgrade a scratch copy of ``target`` to head with the scripts in ``script_dir``.

    ``mode``/``rows`` choose the copy (full, schema, sample of ``rows`` per table); ``scale``
    grows it first; ``probes`` checks the new constraints reject what they must; ``test_cmd``
    runs the user's tests against the migrated copy.
    """
    with fence.guarding(target.db):
        return _rehearse(target, script_dir, mode, rows, probes, test_cmd, test_timeout, scale)


def _rehearse(target: Target, script_dir: Path, mode: str, rows: int, probes: bool, test_cmd: str,
              test_timeout: float, scale: Scale | None) -> Rehearsal:
    cfg = alembic_config(target, script_dir)
    engine = make_engine(target.db)
    check_connection(engine)
    before = current_revision(engine)
    engine.dispose()  # PostgreSQL copies by TEMPLATE only when nobody is connected
    pending = pending_revisions(ScriptDirectory.from_config(cfg), before)
    with scratch_copy(target.db, mode=mode, rows=rows) as url:
        grown = grow(url, scale) if scale is not None else {}
        snapshot = constraint_snapshot(url) if probes else None
        result = apply_upgrade(cfg, url, "heads")
        copy = make_engine(url)
        after = current_revision(copy)
        copy.dispose()
        outcome = Rehearsal(before, after, result, True, revision_timings(result, pending),
                            clone=mask_url(url), mode=mode, rows=grown)
        if result.ok and snapshot is not None:
            outcome.probes = run_probes(url, snapshot)
        if result.ok and test_cmd:
            outcome.tests = run_tests(test_cmd, resolve_url(url), cwd=target.project_dir, timeout=test_timeout,
                                      target=target.db)
        elif test_cmd:
            outcome.tests_skipped = f"the upgrade fails on the copy: {result.error}"
    engine = make_engine(target.db)
    outcome.target_revision_unchanged = current_revision(engine) == before
    engine.dispose()
    return outcome


def revision_timings(result: ApplyResult, pending: list[str]) -> list[dict[str, Any]]:
    """Per revision: statements, their summed time, and whether it completed.

    Alembic records each applied revision in its version table; that statement closes the
    revision's group. Statements after the last one belong to the revision that failed.
    """
    timings: list[dict[str, Any]] = []
    group: list[dict[str, Any]] = []
    for statement in result.statements:
        group.append(statement)
        sql = statement["sql"].lstrip()
        mark = _VERSION_MARK.search(sql) if sql[:6].upper() in ("UPDATE", "INSERT") else None
        if mark:
            timings.append(_timing(mark.group(1) or mark.group(2), group, True))
            group = []
    remaining = [r for r in pending if r not in {t["revision"] for t in timings}]
    if group or not result.ok:
        timings.append(_timing(remaining[0] if remaining else "?", group, result.ok))
    return timings


def _timing(revision: str, statements: list[dict[str, Any]], ok: bool) -> dict[str, Any]:
    seconds = sum(s["seconds"] for s in statements)
    slowest: dict[str, Any] = max(statements, key=lambda s: s["seconds"], default={"sql": "", "seconds": 0.0})
    return {"revision": revision, "ok": ok, "statements": len(statements), "seconds": round(seconds, 6),
            "slowest_sql": str(slowest["sql"]).strip()[:200], "slowest_seconds": slowest["seconds"]}


def mask_output(text: str, url: URL | str) -> str:
    """``text`` with every form of the URL's secrets replaced by the mask."""
    for secret in secret_values(url):
        for form in sorted({secret, quote(secret, safe=""), quote_plus(secret), quote(secret)}, key=len, reverse=True):
            text = text.replace(form, MASK)
    return text


def environment_for_tests(url: URL, query_log: Path | None = None, target: str | None = None) -> dict[str, str]:
    """The environment a test command sees: ours with every URL variable (and any naming ``target``) on the copy.

    With ``query_log``, pytest also loads the query-counting plugin (its folder prepended to
    ``PYTHONPATH``, ``-p`` appended to ``PYTEST_ADDOPTS``), which appends its counts there.
    """
    real = url.render_as_string(hide_password=False)
    env = {**fence.sandbox_environment(dict(os.environ), target, url), "DBRUNBOOK_CLONE_URL": real}
    return {**env, **plugin_environment(query_log)} if query_log is not None else env


def run_tests(command: str, url: URL, cwd: Path | None = None, timeout: float = 900.0,
              count_queries: bool = True, target: str | None = None) -> TestRun:
    """Run ``command`` (a shell command line) against the database at ``url``; record the outcome.

    The output is recorded with the URL's password masked. The command runs in its own
    process group, so a timeout or Ctrl-C stops its children too before the copy is dropped.
    With ``count_queries`` a pytest command counts each test's statements by shape
    (``TestRun.query_counts``); other commands ignore it.
    """
    with tempfile.TemporaryDirectory(prefix="dbrunbook-querycount-") as folder:
        log = Path(folder) / "query-counts.jsonl" if count_queries else None
        run = _run_command(command, url, cwd, timeout, environment_for_tests(url, log, target))
        if log is not None and log.exists():  # absent: the command did not load the plugin
            run.query_counts = parse_log(mask_output(log.read_text(errors="replace"), url))
    return run


def _run_command(command: str, url: URL, cwd: Path | None, timeout: float, env: dict[str, str]) -> TestRun:
    started = time.perf_counter()
    proc = subprocess.Popen(command, shell=True, cwd=str(cwd) if cwd else None, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(proc)
        out, _ = proc.communicate()
    except BaseException:
        _stop(proc)
        raise
    text = mask_output(out.decode(errors="replace"), url)[-OUTPUT_TAIL:]
    return TestRun(command=mask_output(command, url), passed=proc.returncode == 0 and not timed_out,
                   returncode=proc.returncode, seconds=round(time.perf_counter() - started, 3),
                   output=text, timed_out=timed_out)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def findings(rehearsal: Rehearsal) -> list[Finding]:
    """Findings of a rehearsal: the failure with its statement, or the timing, probes and tests."""
    up = rehearsal.upgrade
    out = []
    if not up.ok:
        failed = next((t["revision"] for t in rehearsal.revisions if not t.get("ok")), "")
        at = f" at revision {failed}" if failed else ""
        out.append(Finding("RH001", "block", f"the upgrade fails on a copy of the data{at}: {up.error}",
                           failed or up.error_type, {"statement": up.failed_statement.strip()[:2000],
                                                     "error": up.error, "revision": failed},
                           "fix the offending rows or change the migration; see stage 05 for the rows"))
    if not rehearsal.target_revision_unchanged:
        out.append(Finding("RH002", "block", "the target's revision changed during the rehearsal", "target"))
    if up.ok:
        out.append(Finding("RH000", "info", f"upgrade applied on a copy in {up.seconds:.2f}s "
                                            f"({len(up.statements)} statements)", "",
                           {"seconds": up.seconds, "revisions": rehearsal.revisions}))
    out.extend(probe_findings(rehearsal.probes))
    out.extend(findings_for_tests(rehearsal))
    return out


def findings_for_tests(rehearsal: Rehearsal | None) -> list[Finding]:
    """Pass or fail of the user's test command, or why it was not run (None: no command given)."""
    if rehearsal is None:
        return [Finding("RH023", "info", "no test command given: the application's tests were not run", "tests",
                        fix="pass the command as the test_cmd parameter, for example pytest -x")]
    if rehearsal.tests is not None:
        return [finding_for_test_run(rehearsal.tests)]
    if rehearsal.tests_skipped:
        return [Finding("RH022", "warn", f"the test command was not run: {rehearsal.tests_skipped}", "tests",
                        fix="make the upgrade pass first (stage 04 shows why it fails)")]
    return []


def finding_for_test_run(tests: TestRun) -> Finding:
    """Pass or fail of the user's test command, with the end of its output as evidence."""
    evidence = {"command": tests.command, "returncode": tests.returncode, "seconds": tests.seconds,
                "output_tail": tests.output[-2000:]}
    if tests.passed:
        return Finding("RH020", "info", f"the test command passed against the migrated copy in {tests.seconds:.1f}s",
                       "tests", evidence)
    why = "timed out" if tests.timed_out else f"exited with {tests.returncode}"
    return Finding("RH021", "block", f"the test command {why} against the migrated copy", "tests", evidence,
                   "read the output; the application does not work with the new schema")


# The stage's step builds on the functions above, so it is imported last.
from dbrunbook.stages.dev_rehearsal._stage import DevRehearsalOutcome as DevRehearsalOutcome  # noqa: E402
from dbrunbook.stages.dev_rehearsal._stage import rehearsed as rehearsed  # noqa: E402
from dbrunbook.stages.dev_rehearsal._stage import run as run  # noqa: E402
