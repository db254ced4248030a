"""Docs that are generated from the code must match it; the README must keep its promises."""
import re
from pathlib import Path

from dbrunbook.docgen import cli_reference
from dbrunbook.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current():
    assert (ROOT / "docs" / "cli.md").read_text() == cli_reference(), "run: python -m dbrunbook.docgen"


def test_readme_documents_every_exit_code_and_command():
    readme = (ROOT / "README.md").read_text()
    for code in EXIT_CODES:
        assert re.search(rf"^\| {code} \|", readme, re.M), f"exit code {code} missing from README"
    for command in re.findall(r"^## dbrunbook (\w+)", cli_reference(), re.M):
        assert f"dbrunbook {command}" in readme, f"command {command} missing from README"
