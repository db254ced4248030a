"""Guards that keep the architecture so: layers point down, one stage package per notebook, ruff, old paths.

The layer contract and the ruff rules live in pyproject.toml; these tests run them, so that a change that breaks
them fails the suite (and the fast lane) rather than a review.
"""
from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from dbrunbook._compat import MOVED

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: What `ruff check` covers.
RUFF_PATHS = ["dbrunbook", "tests"]
#: Paths excused from ruff, passed as ``--extend-exclude``: none now; keep it so.
RUFF_PENDING: list[str] = []


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a console script of this venv (the one running the tests) from the project root."""
    return subprocess.run([str(BIN / name), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept() -> None:
    """Layers only point down and the modules of a package import each other without a cycle."""
    result = _tool("lint-imports", "--no-cache", "--no-logo")
    assert result.returncode == 0, result.stdout + result.stderr


def stage_package(notebook: Path) -> str:
    """The package a stage notebook calls: ``05-data-checks.ipynb`` -> ``dbrunbook.stages.data_checks``."""
    name = notebook.stem
    number, _, rest = name.partition("-")
    if number.isdigit():
        name = rest
    return "dbrunbook.stages." + name.replace("-", "_")


def _notebooks() -> list[Path]:
    runbooks = ROOT / "runbooks"
    return sorted([*runbooks.glob("*.ipynb"), *(runbooks / "apply").glob("*.ipynb")])


def test_stage_package_names_follow_the_notebook() -> None:
    assert stage_package(Path("runbooks/05-data-checks.ipynb")) == "dbrunbook.stages.data_checks"
    assert stage_package(Path("runbooks/apply/11-guarded-apply.ipynb")) == "dbrunbook.stages.guarded_apply"
    assert stage_package(Path("runbooks/rollback-plan.ipynb")) == "dbrunbook.stages.rollback_plan"


@pytest.mark.parametrize("notebook", _notebooks(), ids=lambda p: p.relative_to(ROOT / "runbooks").as_posix())
def test_each_notebook_has_its_stage_package(notebook: Path) -> None:
    package = stage_package(notebook)
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations is not None, (
        f"{notebook.relative_to(ROOT)} has no package {package} (dbrunbook/stages/{package.rsplit('.', 1)[1]}/)")


def test_each_stage_package_has_its_notebook() -> None:
    packages = {p.parent.name for p in (ROOT / "dbrunbook" / "stages").glob("*/__init__.py")}
    named = {stage_package(nb).rsplit(".", 1)[1] for nb in _notebooks()}
    assert len(_notebooks()) >= 12
    assert packages - named == set(), "stage packages without a notebook in runbooks/"


def test_ruff_is_clean() -> None:
    """The rules of pyproject.toml [tool.ruff]; `ruff check --fix` repairs most of what this reports."""
    pending = [arg for path in RUFF_PENDING for arg in ("--extend-exclude", path)]
    result = _tool("ruff", "check", "--no-cache", "--output-format", "concise", *pending, *RUFF_PATHS)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_paths_give_the_module_at_its_new_place(old: str) -> None:
    moved = importlib.import_module(f"dbrunbook.{old}")
    assert moved is importlib.import_module(f"dbrunbook.{MOVED[old]}")
