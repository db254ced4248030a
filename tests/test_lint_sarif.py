"""`dbrunbook lint --format sarif` validates against the SARIF 2.1.0 schema and says what code scanning reads."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from dbrunbook import __version__
from dbrunbook.cli import main
from dbrunbook.lint import registry
from helpers.lint_project import UNSAFE

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-2.1.0.json").read_text())
BAD_SQL = "CREATE INDEX ix_orders_created_at ON orders (created_at);\nALTER TABLE users DROP COLUMN legacy_notes;\n"


def _sarif(tmp_path: Path, *targets: str, code: int | None = None) -> dict:
    result = CliRunner().invoke(main, ["lint", *targets, "--project", str(tmp_path), "--dialect", "postgresql",
                                       "--format", "sarif"])
    if code is not None:
        assert result.exit_code == code, result.output
    log = json.loads(result.stdout)
    jsonschema.Draft4Validator(SCHEMA).validate(log)  # raises with the path of the first violation
    return log


def _files(tmp_path: Path) -> tuple[Path, Path]:
    sql = tmp_path / "db" / "upgrade.sql"
    revision = tmp_path / "migrations" / "versions" / "0002_unsafe.py"
    for path, text in ((sql, BAD_SQL), (revision, UNSAFE)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return sql, revision


def test_the_log_validates_and_describes_every_rule(tmp_path):
    sql, revision = _files(tmp_path)
    log = _sarif(tmp_path, str(sql), str(revision), code=1)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "dbrunbook" and driver["version"] == __version__
    assert driver.get("informationUri", "https://").startswith("https://")  # only a real home page
    rules = {r["id"]: r for r in driver["rules"]}
    for rule in registry:
        described = rules[rule.code]
        assert described["name"] == rule.name and described["shortDescription"]["text"] == rule.summary
        assert described["help"]["text"] == rule.safe
        assert described["defaultConfiguration"]["level"] == {"block": "error", "warn": "warning",
                                                              "info": "note"}[rule.severity]
    assert {"LN001", "LN003"} <= set(rules)  # lint's own codes, so every result's rule is described


def test_results_point_at_files_relative_to_the_project_and_their_lines(tmp_path):
    sql, revision = _files(tmp_path)
    run = _sarif(tmp_path, str(sql), str(revision))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    located = {}
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note") and result["message"]["text"]
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        located.setdefault(result["ruleId"], set()).add((location["artifactLocation"]["uri"],
                                                         location["region"]["startLine"]))
    drop = next(i for i, line in enumerate(revision.read_text().splitlines(), 1) if "op.drop_column" in line)
    assert located["DS002"] == {("db/upgrade.sql", 2), ("migrations/versions/0002_unsafe.py", drop)}
    assert ("db/upgrade.sql", 1) in located["LK003"]
    assert next(r for r in run["results"] if r["ruleId"] == "DS002")["level"] == "error"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == tmp_path.resolve().as_uri() + "/"


def test_an_empty_run_and_an_unreadable_file_are_valid_logs(tmp_path):
    (tmp_path / "ok.sql").write_text("SELECT 1;\n")
    empty = _sarif(tmp_path, str(tmp_path / "ok.sql"), code=0)["runs"][0]
    assert empty["results"] == [] and empty["invocations"][0]["executionSuccessful"] is True
    (tmp_path / "broken.sql").write_text("ALTER TABLE t ADD COLUMN 'oops;\n")
    broken = _sarif(tmp_path, str(tmp_path / "broken.sql"), code=2)["runs"][0]
    invocation = broken["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "cannot read the SQL" in invocation["toolExecutionNotifications"][0]["message"]["text"]


@pytest.mark.parametrize("mutate", [
    lambda log: log["runs"][0]["results"][0].update(level="blocker"),
    lambda log: log["runs"][0]["results"][0]["locations"][0]["physicalLocation"].update(region={"startLine": 0}),
    lambda log: log.update(version="2.0.0"),
])
def test_the_schema_catches_a_broken_log(tmp_path, mutate):
    """The vendored schema is not a no-op: a wrong level, line or version fails validation."""
    sql, _ = _files(tmp_path)
    log = _sarif(tmp_path, str(sql))
    mutate(log)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SCHEMA).validate(log)
