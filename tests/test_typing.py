"""The library is strictly typed (settings in pyproject.toml [tool.mypy]); this keeps it so."""
from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[1]


def test_mypy_strict_is_clean(monkeypatch):
    monkeypatch.chdir(ROOT)  # [tool.mypy] names its files relative to the project root
    out, err, status = api.run(["--config-file", "pyproject.toml", "--no-error-summary"])
    assert status == 0, out + err
