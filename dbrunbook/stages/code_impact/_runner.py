"""Run the code-impact rules over a scan: each rule turns references or INSERTs into findings."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dbrunbook.core.results import Finding
from dbrunbook.core.rules import Rule
from dbrunbook.schema import Change
from dbrunbook.stages.code_impact._model import InsertSite, Reference, Watch
from dbrunbook.stages.code_impact._scan import CodeImpact


@dataclass
class ImpactContext:
    """What a code-impact rule looks at: the watch list, the references and the INSERTs found."""

    impact: CodeImpact
    rule: Rule | None = None

    @property
    def watch(self) -> Watch:
        return self.impact.watch

    def references(self, *, columns: bool) -> Iterator[Reference]:
        """References to columns (``columns=True``) or to tables themselves."""
        return (r for r in self.impact.references if (r.column is not None) == columns)

    def inserts(self) -> Iterator[InsertSite]:
        return iter(self.impact.inserts)

    def finding(self, site: Reference | InsertSite, change: Change, what: str, object: str,
                fix: str | None = None, **evidence: Any) -> Finding:
        """A finding at ``site``: ``file:line`` + ``what``; a match by name only warns and says so."""
        assert self.rule is not None
        by_name = site.via == "name"
        message = f"{site.file}:{site.line} {what}" + (" (matched by name)" if by_name else "")
        facts = {"file": site.file, "line": site.line, "code": site.code, "change": change.detail,
                 "op": change.op, "match": site.via, "construct": site.construct, **evidence}
        severity = "warn" if by_name and self.rule.severity == "block" else None
        return self.rule.finding(message, object, facts, severity, fix)


def verb(ref: Reference) -> str:
    """What the code does with the name, in words."""
    return {"write": "writes", "table": "uses table"}.get(ref.access, "reads")


def findings(impact: CodeImpact, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[Finding]:
    """Findings of the selected code-impact rules (CI001 ...) on ``impact``, in file and line order."""
    from dbrunbook.stages.code_impact import registry

    ctx = ImpactContext(impact)
    found: list[Finding] = []
    for rule in registry.select(include, exclude):
        ctx.rule = rule
        found.extend(rule.check(ctx))
    return sorted(found, key=lambda f: (f.evidence.get("file", ""), f.evidence.get("line", 0), f.code))
