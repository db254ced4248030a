"""Alembic projects as they are: script_location, version locations and sqlalchemy.url read as Alembic reads them."""
from __future__ import annotations

import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from dbrunbook.core.config import Target, load_target
from dbrunbook.core.project import (
    AlembicProject,
    alembic_config,
    copied_scripts,
    ini_url,
    project_path,
    resolve_project,
)
from dbrunbook.errors import ConfigError

ENV_PY = "from alembic import context\n"  # never run here: the tests read scripts, they do not migrate


def write_env(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "env.py").write_text(ENV_PY)
    (folder / "script.py.mako").write_text("")
    return folder


def write_revision(folder: Path, rev: str, down: str | None, **extra: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{rev}_step.py"
    labels = extra.get("branch_labels")
    path.write_text(f"revision = {rev!r}\ndown_revision = {down!r}\nbranch_labels = {labels!r}\n"
                    "depends_on = None\n\ndef upgrade():\n    pass\n\ndef downgrade():\n    pass\n")
    return path


def write_ini(path: Path, body: str, logging: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "[alembic]\n" + body
    if logging:
        text += ("\n[loggers]\nkeys = root\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = generic\n\n"
                 "[logger_root]\nlevel = WARNING\nhandlers = console\n\n[handler_console]\n"
                 "class = logging.StreamHandler\nargs = (sys.stderr,)\nformatter = generic\n\n"
                 "[formatter_generic]\nformat = %(levelname)s %(message)s\n")
    path.write_text(text)
    return path


def target(ini: Path, project: Path, db: str = "sqlite:///x.db") -> Target:
    return Target.from_url(db, alembic_config=str(ini), project_dir=project)


def revisions(cfg_or_scripts: object) -> dict[str, Path]:
    scripts = (cfg_or_scripts if isinstance(cfg_or_scripts, ScriptDirectory)
               else ScriptDirectory.from_config(cfg_or_scripts))  # type: ignore[arg-type]
    return {s.revision: Path(s.path) for s in scripts.walk_revisions()}


# --- script_location -------------------------------------------------------------------------------------------

def test_relative_script_location_is_read_from_the_project_folder_as_alembic_does(tmp_path):
    project = tmp_path / "app"
    write_env(project / "migrations")
    write_env(project / "deploy" / "migrations")  # beside the ini: Alembic would not look here first
    ini = write_ini(project / "deploy" / "alembic.ini", "script_location = migrations\n")
    assert resolve_project(ini, project).script_dir == (project / "migrations").resolve()


def test_relative_script_location_falls_back_to_the_ini_folder(tmp_path):
    project = tmp_path / "app"
    write_env(project / "deploy" / "migrations")
    ini = write_ini(project / "deploy" / "alembic.ini", "script_location = migrations\n")
    assert resolve_project(ini, project).script_dir == (project / "deploy" / "migrations").resolve()


def test_missing_script_location_names_every_path_tried(tmp_path):
    ini = write_ini(tmp_path / "deploy" / "alembic.ini", "script_location = nowhere\n")
    with pytest.raises(ConfigError) as err:
        resolve_project(ini, tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path / "nowhere") in message
    assert str(tmp_path / "deploy" / "nowhere") in message


def test_here_is_the_ini_folder(tmp_path):
    write_env(tmp_path / "conf" / "scripts")
    ini = write_ini(tmp_path / "conf" / "alembic.ini", "script_location = %(here)s/scripts\n")
    assert resolve_project(ini, tmp_path / "elsewhere").script_dir == (tmp_path / "conf" / "scripts").resolve()


def test_package_resource_script_location(tmp_path, monkeypatch):
    package = tmp_path / "libs" / "myapp_dbrb"
    (package).mkdir(parents=True)
    (package / "__init__.py").write_text("")
    write_env(package / "migrations")
    write_revision(package / "migrations" / "versions", "a1", None)
    monkeypatch.syspath_prepend(str(tmp_path / "libs"))
    ini = write_ini(tmp_path / "alembic.ini", "script_location = myapp_dbrb:migrations\n")
    project = resolve_project(ini, tmp_path)
    assert project.script_dir == (package / "migrations").resolve()
    cfg = alembic_config(target(ini, tmp_path), tmp_path / "run" / "alembic")
    assert list(revisions(cfg)) == ["a1"]


def test_missing_package_is_a_one_line_config_error(tmp_path):
    ini = write_ini(tmp_path / "alembic.ini", "script_location = no_such_pkg_dbrb:migrations\n")
    with pytest.raises(ConfigError, match="no_such_pkg_dbrb") as err:
        resolve_project(ini, tmp_path)
    assert "\n" not in str(err.value)


def test_tool_alembic_in_pyproject_is_alembics_fallback(tmp_path):
    write_env(tmp_path / "src" / "migrations")
    (tmp_path / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "%(here)s/src/migrations"\n')
    ini = write_ini(tmp_path / "alembic.ini", "sqlalchemy.url = sqlite:///app.db\n")
    assert resolve_project(ini, tmp_path).script_dir == (tmp_path / "src" / "migrations").resolve()


def test_a_run_folder_inside_the_scripts_is_refused(tmp_path):
    write_env(tmp_path / "migrations")
    ini = write_ini(tmp_path / "alembic.ini", "script_location = migrations\n")
    with pytest.raises(ConfigError, match="cannot be copied into itself"):
        alembic_config(target(ini, tmp_path), tmp_path / "migrations" / "runs" / "alembic")
    assert not (tmp_path / "migrations" / "runs").exists()


# --- version locations ------------------------------------------------------------------------------------------

def two_locations(tmp_path: Path, separator: str) -> Path:
    """A project with revisions in the script dir, in a sibling folder, and in a per-dialect folder."""
    write_env(tmp_path / "migrations")
    write_revision(tmp_path / "migrations" / "versions", "c1", None)
    write_revision(tmp_path / "versions_common", "c2", "c1")
    write_revision(tmp_path / "versions_pg", "p1", "c2")
    locations = ["%(here)s/migrations/versions", "%(here)s/versions_common", "%(here)s/versions_pg"]
    joined = {"path_separator = os": ":", "version_path_separator = space": " ", "": " "}[separator]
    return write_ini(tmp_path / "alembic.ini", f"script_location = migrations\n{separator}\n"
                     f"version_locations = {joined.join(locations)}\n")


@pytest.mark.parametrize("separator", ["path_separator = os", "version_path_separator = space", ""])
def test_every_version_location_is_copied_and_read_from_the_copy(tmp_path, separator):
    ini = two_locations(tmp_path, separator)
    script_dir = tmp_path / "run" / "alembic"
    # Alembic's own reading of the ini, deprecation warnings included.
    with pytest.warns(DeprecationWarning) if "version_path" in separator or not separator else nullcontext():
        project = resolve_project(ini, tmp_path)
        cfg = alembic_config(target(ini, tmp_path), script_dir)
    assert [p.name for p in project.version_locations] == ["versions", "versions_common", "versions_pg"]
    found = revisions(cfg)
    assert set(found) == {"c1", "c2", "p1"}
    assert all(path.is_relative_to(script_dir) for path in found.values()), found
    assert len({path.parent for path in found.values()}) == 3  # each location has its own copy
    assert set(revisions(copied_scripts(script_dir))) == {"c1", "c2", "p1"}
    assert project_path(script_dir, found["p1"]) == (tmp_path / "versions_pg" / found["p1"].name).resolve()


# Alembic warns, as it does on the project itself: nested in the copy as in the project, each file is read once.
@pytest.mark.filterwarnings("ignore:File .* loaded twice")
def test_nested_locations_are_copied_once_and_recursion_is_kept(tmp_path):
    write_env(tmp_path / "migrations")
    write_revision(tmp_path / "shared", "s1", None)
    write_revision(tmp_path / "shared" / "pg", "s2", "s1")
    write_revision(tmp_path / "shared" / "pg" / "2024", "s3", "s2")  # only found recursively
    ini = write_ini(tmp_path / "alembic.ini", "script_location = migrations\npath_separator = os\n"
                    "recursive_version_locations = true\n"
                    "version_locations = %(here)s/shared:%(here)s/shared/pg\n")
    script_dir = tmp_path / "run" / "alembic"
    cfg = alembic_config(target(ini, tmp_path), script_dir)
    found = revisions(cfg)
    assert set(found) == {"s1", "s2", "s3"}
    assert all(path.is_relative_to(script_dir) for path in found.values())
    assert cfg.get_main_option("recursive_version_locations") == "true"


def test_a_copy_is_reused_not_refreshed(tmp_path):
    ini = two_locations(tmp_path, "path_separator = os")
    script_dir = tmp_path / "run" / "alembic"
    alembic_config(target(ini, tmp_path), script_dir)
    write_revision(tmp_path / "versions_pg", "p2", "p1")  # the project moves on after the copy
    assert set(revisions(alembic_config(target(ini, tmp_path), script_dir))) == {"c1", "c2", "p1"}


def test_other_options_logging_and_section_stay_visible_to_env_py(tmp_path):
    write_env(tmp_path / "migrations")
    ini = write_ini(tmp_path / "alembic.ini", "script_location = migrations\nfoo = %(here)s/bar\n"
                    "file_template = %%%%(rev)s_%%%%(slug)s\nsqlalchemy.url = sqlite:///ini.db\n", logging=True)
    cfg = alembic_config(target(ini, tmp_path, "sqlite:///given.db"), tmp_path / "run" / "alembic")
    assert cfg.get_main_option("foo") == f"{tmp_path}/bar"
    assert cfg.get_main_option("file_template") == "%%(rev)s_%%(slug)s"
    assert cfg.get_main_option("sqlalchemy.url") == "sqlite:///given.db"
    assert cfg.config_file_name == str(ini) and cfg.config_ini_section == "alembic"
    assert cfg.file_config.has_section("formatter_generic")  # env.py's fileConfig reads the ini itself
    assert Path(cfg.get_main_option("script_location") or "") == tmp_path / "run" / "alembic"


def test_without_an_ini_a_fresh_environment_is_written(tmp_path):
    script_dir = tmp_path / "run" / "alembic"
    cfg = alembic_config(Target.from_url("sqlite:///x.db", project_dir=tmp_path), script_dir)
    assert (script_dir / "env.py").exists() and (script_dir / "versions").is_dir()
    assert revisions(cfg) == {}


# --- sqlalchemy.url -----------------------------------------------------------------------------------------------

def test_the_ini_url_names_the_target_when_nothing_else_does(tmp_path):
    write_env(tmp_path / "migrations")
    write_ini(tmp_path / "alembic.ini", "script_location = migrations\nsqlalchemy.url = sqlite:///app.db\n")
    loaded = load_target(tmp_path, alembic_config="alembic.ini")
    assert loaded.db == f"sqlite:///{tmp_path}/app.db"  # relative to the project, as Alembic opens it there
    assert load_target(tmp_path, db="sqlite:///other.db", alembic_config="alembic.ini").db == "sqlite:///other.db"


def test_the_ini_url_is_interpolated_and_unescaped(tmp_path):
    ini = write_ini(tmp_path / "conf" / "alembic.ini", "sqlalchemy.url = sqlite:///%(here)s/a%%b.db\n")
    assert ini_url(ini, tmp_path) == f"sqlite:///{tmp_path}/conf/a%b.db"


@pytest.mark.parametrize("value", ["", '""', "driver://user:pass@localhost/dbname", "${DATABASE_URL}"])
def test_a_placeholder_url_is_no_url(tmp_path, value):
    write_env(tmp_path / "migrations")
    ini = write_ini(tmp_path / "alembic.ini", f"script_location = migrations\nsqlalchemy.url = {value}\n")
    assert ini_url(ini, tmp_path) is None and resolve_project(ini, tmp_path).url is None
    with pytest.raises(ConfigError) as err:
        load_target(tmp_path, alembic_config="alembic.ini")
    message = str(err.value)
    assert message.startswith("no database given") and "\n" not in message
    for place in ("--db", "[tool.dbrunbook]", f"sqlalchemy.url in {ini}"):
        assert place in message


def test_a_template_ini_is_a_one_line_error_only_where_its_value_is_needed(tmp_path):
    write_env(tmp_path / "migrations")
    write_ini(tmp_path / "alembic.ini", "script_location = migrations\n"
              "sqlalchemy.url = postgresql://app:s3cret@db/%(DB_NAME)s\n")
    with pytest.raises(ConfigError) as err:
        load_target(tmp_path, alembic_config="alembic.ini")
    assert "%(DB_NAME)s" in str(err.value) and "\n" not in str(err.value) and "s3cret" not in str(err.value)
    # Given --db, the template URL is replaced and never read.
    cfg = alembic_config(load_target(tmp_path, db="sqlite:///x.db", alembic_config="alembic.ini"),
                         tmp_path / "run" / "alembic")
    assert cfg.get_main_option("sqlalchemy.url") == "sqlite:///x.db"


def test_a_template_script_location_is_a_one_line_error(tmp_path):
    ini = write_ini(tmp_path / "alembic.ini", "script_location = %(APP_ROOT)s/migrations\n")
    with pytest.raises(ConfigError, match=r"script_location in \[alembic\] uses %\(APP_ROOT\)s") as err:
        resolve_project(ini, tmp_path)
    assert "\n" not in str(err.value)


def test_the_cli_reports_a_template_ini_on_one_line(tmp_path):
    write_env(tmp_path / "migrations")
    write_ini(tmp_path / "alembic.ini", "script_location = migrations\nsqlalchemy.url = %(DB_URL)s\n")
    result = subprocess.run([sys.executable, "-m", "dbrunbook", "update", "--alembic-config", "alembic.ini",
                             "--out", str(tmp_path / "runs")], capture_output=True, text=True, cwd=tmp_path,
                            timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "%(DB_URL)s" in lines[0], result.stderr


# --- a real packaged project ---------------------------------------------------------------------------------------

def test_mlflow_packaged_ini_resolves_from_site_packages(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    site_packages = Path(mlflow.__file__).parent.parent
    ini = site_packages / "mlflow" / "store" / "db_migrations" / "alembic.ini"
    project = resolve_project(ini, site_packages)
    assert project == AlembicProject(ini=ini, section="alembic", script_dir=ini.parent.resolve(),
                                     version_locations=(), url=None)
    assert len(revisions(ScriptDirectory(str(project.script_dir)))) >= 60
    script_dir = tmp_path / "run" / "alembic"
    found = revisions(alembic_config(target(ini, site_packages), script_dir))
    assert len(found) >= 60 and all(path.is_relative_to(script_dir) for path in found.values())
