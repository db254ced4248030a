"""The book of codes (dbrunbook.core.codes) must hold every code the library and the notebooks use, and only those.

The scanner reads the code with ``ast``, not with patterns over the text: a code is a string constant of two
capital letters and three digits anywhere in the library's modules or the templates' code cells (a
``Finding(...)``, ``stage.add(...)``, a helper such as ``_failed("RT001", ...)``, a dict of codes alike). A
code built by an f-string (``f"PP{n:03d}"``) cannot be read off the source: its family must have an
enumerator below, which lists the concrete codes the library builds.
"""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from dbrunbook import docgen
from dbrunbook.core import codes

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "dbrunbook"
NOTEBOOKS = ROOT / "runbooks"


def _enumerate_pp() -> set[str]:
    from dbrunbook.stages.production_plan import CODES
    return set(CODES.values())


#: Families whose codes are built at run time, and how to list the codes built (read the code that builds them).
ENUMERATED = {"PP": _enumerate_pp}


def is_code(value: object) -> bool:
    return (isinstance(value, str) and len(value) == 5 and value[:2].isascii() and value[:2].isupper()
            and value[:2].isalpha() and value[2:].isdigit())


def _prefix(node: ast.expr) -> str:
    """The family a built code starts with (f"PP{n:03d}", "PP%03d" % n, "PP" + str(n)), or ""."""
    if isinstance(node, ast.JoinedStr) and len(node.values) > 1:
        head = node.values[0]
        text = head.value if isinstance(head, ast.Constant) and isinstance(head.value, str) else ""
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)) \
            and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
        text = node.left.value.split("%")[0] if isinstance(node.op, ast.Mod) else node.left.value
    else:
        return ""
    letters = text.rstrip("0123456789")
    return letters if len(letters) == 2 and letters.isascii() and letters.isupper() and letters.isalpha() else ""


def scan_source(source: str, where: str, used: dict[str, list[str]], built: dict[str, list[str]]) -> None:
    """Add the codes ``source`` names (to ``used``) and the families it builds codes of (to ``built``)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and is_code(node.value):
            used.setdefault(node.value, []).append(f"{where}:{node.lineno}")
        elif isinstance(node, (ast.JoinedStr, ast.BinOp)) and _prefix(node):
            built.setdefault(_prefix(node), []).append(f"{where}:{node.lineno}")


def _cells(path: Path) -> list[tuple[int, str]]:
    notebook = nbformat.read(path, as_version=4)
    # IPython syntax (%magic, !shell) becomes plain Python first, as the kernel sees it.
    return [(i, TransformerManager().transform_cell(c.source)) for i, c in enumerate(notebook.cells)
            if c.cell_type == "code"]


def scan() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Every code the library's modules and the notebooks' code cells use, and the families they build."""
    used: dict[str, list[str]] = {}
    built: dict[str, list[str]] = {}
    for path in sorted(LIBRARY.rglob("*.py")):
        if path != LIBRARY / "codes.py":  # the declarations themselves are not uses
            scan_source(path.read_text(), str(path.relative_to(ROOT)), used, built)
    for path in sorted(NOTEBOOKS.rglob("*.ipynb")):
        for index, source in _cells(path):
            scan_source(source, f"{path.relative_to(ROOT)} cell {index}", used, built)
    return used, built


@pytest.fixture(scope="module")
def scanned() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    return scan()


@pytest.fixture(scope="module")
def used(scanned) -> dict[str, list[str]]:
    found = {code: list(where) for code, where in scanned[0].items()}
    for family, where in scanned[1].items():
        if family in ENUMERATED:
            for code in ENUMERATED[family]():
                found.setdefault(code, []).extend(where)
    return found


def test_codes_reference_is_current():
    assert (ROOT / "docs" / "codes.md").read_text() == docgen.codes_reference(), \
        "run: python -m dbrunbook.docgen"


def test_scanner_reads_every_way_a_code_is_written():
    used: dict[str, list[str]] = {}
    built: dict[str, list[str]] = {}
    scan_source('Finding("ZZ001", "warn", "m")\nstage.add("ZZ002", "info", "m")\n_failed("ZZ003", "up", r)\n'
                'CODES = {"a": "ZZ004"}\ncode, what = ("ZZ005", "x")\nx = "ZZ0061"\n"""ZZ007 in a docstring"""\n'
                'y = {i: f"QQ{n:03d}" for n, i in enumerate(ids)}\nz = "RR%03d" % 1\nw = f"{a}ZZ{b}"\n',
                "snippet", used, built)
    assert sorted(used) == ["ZZ001", "ZZ002", "ZZ003", "ZZ004", "ZZ005"]
    assert sorted(built) == ["QQ", "RR"]


def test_every_built_code_family_is_enumerated(scanned):
    unknown = {family: where for family, where in scanned[1].items() if family not in ENUMERATED}
    assert not unknown, f"codes built at run time; add an enumerator to ENUMERATED and declare them: {unknown}"


def test_every_code_used_is_declared(used):
    known = {c.code for c in docgen.all_codes()}
    missing = {code: where for code, where in sorted(used.items()) if code not in known}
    assert not missing, f"declare these codes in dbrunbook/core/codes.py (or register them as rules): {missing}"


def test_every_declared_code_is_used(used):
    unused = [c.code for c in codes.declared() if c.code not in used]
    assert not unused, f"declared in dbrunbook/core/codes.py but used nowhere: {unused}"


def test_rule_codes_come_from_the_registries():
    from dbrunbook.lint import registry as lint

    by_code = {c.code: c for c in docgen.all_codes()}
    rule = lint["DS002"]
    assert by_code["DS002"] == codes.Code("DS002", rule.name, rule.severity, rule.summary, rule.safe, "lint")
    assert {c.registry for c in by_code.values()} == {"", "lint", "design", "checks", "code_impact"}
    assert by_code["MG001"] is codes.MG001 and by_code["DC001"].registry == "checks"


def test_a_code_is_declared_once():
    with pytest.raises(ValueError, match="MG001 declared twice"):
        codes._declare("MG001", "again", "info", "Again.")
    with pytest.raises(ValueError, match="kebab-case"):
        codes._declare("ZZ999", "Not_Kebab", "info", "Bad name.")
    with pytest.raises(ValueError, match="severity"):
        codes._declare("ZZ999", "bad-severity", "error", "Bad severity.")
    assert "ZZ999" not in {c.code for c in codes.declared()}


@pytest.mark.parametrize("code", codes.declared(), ids=lambda c: c.code)
def test_declaration_is_documented(code):
    assert code.family in codes.FAMILIES
    assert code.summary[:1].isupper() and code.summary.endswith("."), "the summary is a sentence"
    assert code.fix or code.severity == "info", "a warn or block code says what to do"
    assert getattr(codes, code.code) is code


def test_every_family_has_a_title_and_a_table():
    text = docgen.codes_reference()
    families = {c.family for c in docgen.all_codes()}
    assert families <= set(codes.FAMILIES)
    for family in families:
        assert f"\n## {family}: " in text
    for c in docgen.all_codes():
        assert f"\n| {c.code} | {c.name} | {c.severity} |" in text


def test_finding_carries_the_code_severity_and_fix():
    f = codes.MG002.finding("no downgrade", "abc123")
    assert (f.code, f.severity, f.object, f.fix) == ("MG002", "warn", "abc123", codes.MG002.fix)
    g = codes.SA001.finding("empty", severity="warn", fix="")
    assert (g.severity, g.fix) == ("warn", "")
