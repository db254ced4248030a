"""Readable forms of a scan's findings: rows for a table, and a one-line summary."""
from __future__ import annotations

from typing import Any

from dbrunbook.core.results import Finding
from dbrunbook.stages.code_impact._scan import CodeImpact


def table(found: list[Finding]) -> list[dict[str, Any]]:
    """One row per finding: where (file:line), the code, the change it hits, severity and code."""
    return [{"where": f"{f.evidence.get('file')}:{f.evidence.get('line')}", "code": f.evidence.get("code", ""),
             "object": f.object, "change": f.evidence.get("change", ""), "rule": f.code, "severity": f.severity,
             "match": f.evidence.get("match", "")} for f in found]


def summary(impact: CodeImpact, found: list[Finding]) -> str:
    """One line: files scanned, findings by severity, and the files they are in."""
    files = sorted({str(f.evidence.get("file")) for f in found})
    if impact.watch.empty:
        return f"no change that code can trip over ({len(impact.scanned)} files scanned)"
    if not found:
        return f"{len(impact.scanned)} files scanned: no code uses what the change breaks"
    counts = ", ".join(f"{n} {s}" for s in ("block", "warn", "info")
                       if (n := sum(f.severity == s for f in found)))
    return f"{len(impact.scanned)} files scanned: {counts} in {', '.join(files[:5])}" \
        + (f" and {len(files) - 5} more" if len(files) > 5 else "")
