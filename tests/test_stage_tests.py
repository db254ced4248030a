"""Stage 07 executed with papermill: the user's test command against a migrated copy."""
from __future__ import annotations

import sys
import textwrap

import pytest

from dbrunbook import RunOptions, run_runbook, verify_run
from dbrunbook.core.results import load_result
from dbrunbook.demo import repair_demo_data
from test_clone_sample import scratch_gone

_CHECK = textwrap.dedent('''
    import os, sys
    import sqlalchemy as sa
    engine = sa.create_engine(os.environ["DATABASE_URL"])
    columns = [c["name"] for c in sa.inspect(engine).get_columns("orders")]
    print("orders columns:", columns)
    sys.exit(0 if "currency" in columns else 7)
''')


def _run(demo, tmp_path, **parameters):
    run = run_runbook(demo.target(), RunOptions(out=tmp_path / "runs", stages=["07"], parameters=parameters))
    assert [s.status for s in run.stages] != ["error"], run.stages
    return run, load_result(run.path, "07-tests")


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_no_test_command_is_an_info_finding_and_the_stage_is_skipped_not_passed(demo, tmp_path):
    run, result = _run(demo, tmp_path)
    assert result.verdict == "skipped" and run.stages[0].status == "skipped"  # nothing was looked at
    assert [f.code for f in result.findings] == ["RH023"]
    assert run.verdict == "pass"  # ranked with pass for the run's verdict and exit code
    from dbrunbook.runbook.report import render_run, run_json

    assert "07-tests               SKIPPED" in render_run(run.path)
    assert run_json(run.path)["stages"][0]["status"] == "skipped"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_passing_tests_are_recorded(demo, dialect, tmp_path):
    repair_demo_data(demo.db)
    script = tmp_path / "check.py"
    script.write_text(_CHECK)
    run, result = _run(demo, tmp_path, test_cmd=f"{sys.executable} {script}")
    assert result.verdict == "pass", result.findings
    assert result.data["tests"]["passed"] and result.data["tests"]["returncode"] == 0
    assert "currency" in (run.path / "07-tests" / "tests.log").read_text()
    assert scratch_gone(result.data["clone"], dialect)
    verify_run(run.path)


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_failing_tests_block_with_their_output(demo, tmp_path):
    repair_demo_data(demo.db)
    command = f"{sys.executable} -c \"print('assert 1 == 2 in test_checkout'); raise SystemExit(3)\""
    _, result = _run(demo, tmp_path, test_cmd=command)
    assert result.verdict == "block"
    failed = next(f for f in result.findings if f.code == "RH021")
    assert failed.evidence["returncode"] == 3 and "test_checkout" in failed.evidence["output_tail"]


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_tests_are_not_run_on_an_upgrade_that_fails(demo, tmp_path):
    _, result = _run(demo, tmp_path, test_cmd="true")
    assert result.verdict == "warn"
    assert [f.code for f in result.findings] == ["RH022"]
    assert result.data["upgrade_ok"] is False and result.data["tests"] is None
