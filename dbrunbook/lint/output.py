"""Lint findings as text, JSON, GitHub workflow annotations, or one SARIF 2.1.0 log for code scanning.

SARIF (``--format sarif``) is one run whose ``tool.driver`` lists every lint rule (and lint's own
LN codes) with its summary, reason and safe alternative; each finding is a result with the rule's
id, its level (block: error, warn: warning, info: note), its message and fix, and, for a finding
in a file, the file's path relative to the project root (``%SRCROOT%``) and its line. Files lint
could not read are notifications of the run's invocation, which is then not successful. GitHub's
``codeql-action/upload-sarif`` reads it as it is.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, metadata
from pathlib import Path
from typing import Any

from dbrunbook import __version__
from dbrunbook.core import codes
from dbrunbook.core.results import Finding
from dbrunbook.lint import registry

FORMATS = ("text", "json", "github", "sarif")
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_GITHUB_LEVEL = {"info": "notice", "warn": "warning", "block": "error"}
_SARIF_LEVEL = {"info": "note", "warn": "warning", "block": "error"}


def render(findings: Sequence[Finding], fmt: str, *, project: Path = Path("."),
           unreadable: Sequence[str] = ()) -> str:
    """``findings`` in ``fmt`` (one of :data:`FORMATS`); ``unreadable`` files go into SARIF's invocation."""
    if fmt == "json":
        return json.dumps([f.__dict__ for f in findings], indent=2, default=str)
    if fmt == "sarif":
        return json.dumps(sarif(findings, project=project, unreadable=unreadable), indent=2, default=str)
    lines = []
    for f in findings:
        source, line = f.evidence.get("source", ""), f.evidence.get("line", 1)
        if fmt == "github":
            where = f"file={source},line={line}," if source and Path(source).is_file() else ""
            lines.append(f"::{_GITHUB_LEVEL[f.severity]} {where}title={f.code} {f.object}::"
                         f"{_escape(f.message + ' - fix: ' + f.fix)}")
        else:
            lines.append(f"{source}:{line}: {f.severity} {f.code} [{f.object}] {f.message}\n    fix: {f.fix}")
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _information_uri() -> dict[str, str]:
    """``informationUri`` when the installed package names a home page; SARIF makes it optional, and a
    made-up address would send code-scanning users nowhere."""
    try:
        meta = metadata("dbrunbook")
    except PackageNotFoundError:
        return {}
    urls = [u.partition(",")[2].strip() for u in meta.get_all("Project-URL") or []]
    found = next((u for u in [*(meta.get_all("Home-page") or []), *urls] if u.startswith("http")), None)
    return {"informationUri": found} if found else {}


def sarif_rules() -> list[dict[str, Any]]:
    """The SARIF ``reportingDescriptor`` of every lint rule, then of lint's own LN codes."""
    described = [(r.code, r.name, r.summary, r.why, r.safe, r.severity) for r in registry]
    own = {r.code for r in registry}
    described += [(c.code, c.name, c.summary, "", c.fix, c.severity) for c in codes.declared()
                  if c.family == "LN" and c.code not in own]
    return [{"id": code, "name": name, "shortDescription": {"text": summary},
             "fullDescription": {"text": " ".join((why or summary).split())},
             "help": {"text": safe or summary}, "defaultConfiguration": {"level": _SARIF_LEVEL[severity]},
             "properties": {"tags": [code.rstrip("0123456789")]}}
            for code, name, summary, why, safe, severity in described]


def _uri(source: str, project: Path) -> str | None:
    path = Path(source)
    if not source or not path.is_file():
        return None
    try:
        return path.resolve().relative_to(project.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def _result(f: Finding, index: dict[str, int], project: Path) -> dict[str, Any]:
    text = f.message + (f" Fix: {f.fix}" if f.fix else "")
    result: dict[str, Any] = {"ruleId": f.code, "level": _SARIF_LEVEL[f.severity], "message": {"text": text}}
    if f.code in index:
        result["ruleIndex"] = index[f.code]
    uri = _uri(str(f.evidence.get("source", "")), project)
    if uri is not None:
        location: dict[str, Any] = {"uri": uri}
        if not uri.startswith("file:"):
            location["uriBaseId"] = "%SRCROOT%"
        physical: dict[str, Any] = {"artifactLocation": location}
        line = f.evidence.get("line")
        if isinstance(line, int) and line >= 1:
            physical["region"] = {"startLine": line}
        result["locations"] = [{"physicalLocation": physical}]
    result["properties"] = {"object": f.object, **({"revision": f.evidence["revision"]}
                                                   if "revision" in f.evidence else {})}
    return result


def sarif(findings: Sequence[Finding], *, project: Path = Path("."), unreadable: Sequence[str] = ()) -> dict[str, Any]:
    """One SARIF 2.1.0 log of ``findings``: a run of dbrunbook's lint with its rules and results."""
    rules = sarif_rules()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    root = project.resolve().as_uri().rstrip("/") + "/"
    notes = [{"level": "error", "message": {"text": text}} for text in unreadable]
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "dbrunbook", "version": __version__, **_information_uri(),
                            "rules": rules}},
        "originalUriBaseIds": {"%SRCROOT%": {"uri": root}},
        "invocations": [{"executionSuccessful": not unreadable, "toolExecutionNotifications": notes}],
        "results": [_result(f, index, project) for f in findings]}]}
