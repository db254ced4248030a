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


# -- the README's sample output is a real run's ------------------------------------------------------------------

_VOLATILE = [
    (re.compile(r"\d{8}T\d{6}Z-demo-[0-9a-f]{6}"), "RUN"),  # the run's id
    (re.compile(r"sqlite:///\S*/dbrunbook-demo\b"), "sqlite:///…/dbrunbook-demo"),  # where the demo was written
    (re.compile(r"(?<=\s)/\S*/dbrunbook-demo\b"), "…/dbrunbook-demo"),
    (re.compile(r"\b\d+(?:\.\d+)?s\b"), "Ns"),  # timings
    (re.compile(r"\b[0-9a-f]{12}\b"), "REV"),  # the generated revision's id
]


def _report(text: str) -> list[str]:
    """The final report of a demo run (from its ``run`` line to its verdict), with what varies between runs masked."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("run ") and "target sqlite" in line)
    end = next(i for i, line in enumerate(lines) if i > start and line.startswith("verdict: "))
    out = []
    for line in lines[start:end + 1]:
        for pattern, mask in _VOLATILE:
            line = pattern.sub(mask, line)
        out.append(line.rstrip())
    return out


def test_the_readme_sample_output_is_what_the_demo_prints(tmp_path):
    """The README shows a real demo run's report. DBRUNBOOK_UPDATE_README=1 rewrites it from this run."""
    import os
    import subprocess
    import sys

    demo = subprocess.run([sys.executable, "-m", "dbrunbook", "demo", "--quiet",
                           "--out", str(tmp_path / "dbrunbook-demo")], capture_output=True, text=True, timeout=600)
    assert demo.returncode == 1, demo.stderr  # the demo's change blocks, on purpose
    readme = ROOT / "README.md"
    text = readme.read_text()
    if os.environ.get("DBRUNBOOK_UPDATE_README"):
        lines = text.splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("run ") and "target sqlite" in line)
        end = next(i for i, line in enumerate(lines) if i > start and line.startswith("verdict: "))
        shown = demo.stdout.splitlines()
        first = next(i for i, line in enumerate(shown) if line.startswith("run "))
        last = next(i for i, line in enumerate(shown) if i > first and line.startswith("verdict: "))
        real = [_VOLATILE[2][0].sub(_VOLATILE[2][1], _VOLATILE[1][0].sub(_VOLATILE[1][1], line)).rstrip()
                for line in shown[first:last + 1]]
        readme.write_text("\n".join(lines[:start] + real + lines[end + 1:]) + "\n")
        text = readme.read_text()
    assert _report(text) == _report(demo.stdout), "the README's sample output is stale: DBRUNBOOK_UPDATE_README=1"
