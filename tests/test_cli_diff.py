"""``dbrunbook diff`` from the command line: URL, models and snapshot sides; text and JSON."""
import json

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from dbrunbook.cli import main
from dbrunbook.core.db import make_engine
from dbrunbook.schema import snapshot

MODELS = '''import sqlalchemy as sa
metadata = sa.MetaData()
sa.Table("people", metadata, sa.Column("id", sa.Integer, primary_key=True),
         sa.Column("full_name", sa.String(100), nullable=False), sa.Column("age", sa.Integer))
'''


@pytest.fixture
def project(db_url, tmp_path):
    (tmp_path / "app_models.py").write_text(MODELS)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE people (id INTEGER PRIMARY KEY, fullname VARCHAR(100) NOT NULL)"))
    snapshot(engine).save(tmp_path / "before.json")
    engine.dispose()
    yield tmp_path
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE people"))
    engine.dispose()


def run(*args):
    return CliRunner().invoke(main, ["diff", *args], catch_exceptions=False)


def test_text_and_json_output(project, db_url):
    result = run(db_url, "app_models:metadata", "--project", str(project))
    assert result.exit_code == 0, result.output
    assert "add_column" in result.output and "people.age" in result.output
    assert "rename hint column people.fullname -> full_name" in result.output
    result = run(str(project / "before.json"), "app_models:metadata", "--project", str(project), "--format", "json")
    data = json.loads(result.output)
    assert {(c["op"], c["object"]) for c in data["changes"]} == {
        ("add_column", "people.age"), ("add_column", "people.full_name"), ("remove_column", "people.fullname")}
    assert data["rename_hints"][0]["new"] == "full_name"


def test_exit_code_and_confirmed_rename(project, db_url):
    same = run(db_url, str(project / "before.json"), "--exit-code")
    assert same.exit_code == 0 and same.output.strip() == "no differences"
    differs = run(db_url, "app_models:metadata", "--project", str(project), "--exit-code",
                  "--rename", "people.fullname=people.full_name")
    assert differs.exit_code == 1
    assert "rename_column" in differs.output and "remove_column" not in differs.output


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
@pytest.mark.parametrize("args, message, code", [
    (["nope.json", "x:y"], "snapshot file nope.json not found", 2),
    (["before.json", "not-a-spec"], "neither a database URL", 2),
    (["no_such_module:metadata", "before.json"], "cannot import models module", 2),
    (["before.json", "--rename", "a=b=c", "before.json"], "renames", 2),
    (["sqlite:///no-such.db", "before.json"], "no such database file", 5),
])
def test_bad_input_is_one_line(project, args, message, code, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["diff", *args])
    assert result.exit_code == code and message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)
def test_renames_confirmed_in_pyproject(project, db_url):
    (project / "pyproject.toml").write_text('[tool.dbrunbook]\nrenames = { "people.fullname" = "people.full_name" }\n')
    result = run(db_url, "app_models:metadata", "--project", str(project), "--format", "json")
    ops = {(c["op"], c["object"]) for c in json.loads(result.output)["changes"]}
    assert ops == {("rename_column", "people.full_name"), ("add_column", "people.age")}
    (project / "pyproject.toml").write_text('[tool.dbrunbook]\nrenames = { "people.fullname" = "other.full_name" }\n')
    bad = CliRunner().invoke(main, ["diff", db_url, "app_models:metadata", "--project", str(project)])
    assert bad.exit_code == 2 and "renames" in bad.output
