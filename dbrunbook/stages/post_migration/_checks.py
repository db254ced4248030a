"""A check of stage 12 and a whole validation: the types every part of the stage builds."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dbrunbook.core.results import Finding, verdict_of
from dbrunbook.data.fingerprint import Fingerprint


@dataclass
class Check:
    """One post-migration check: its code, what it proves, how it went, and its findings."""

    code: str
    title: str
    status: str  # pass | warn | block | skipped
    detail: str
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "title": self.title, "status": self.status, "detail": self.detail,
                "findings": len(self.findings)}


@dataclass
class Validation:
    """Every check of one validation, and the fingerprint of the data as it is now."""

    checks: list[Check]
    fingerprint_after: Fingerprint | None = None
    revision: str | None = None

    @property
    def findings(self) -> list[Finding]:
        return [f for c in self.checks for f in c.findings]

    @property
    def verdict(self) -> str:
        return verdict_of(self.findings)

    def table(self) -> list[dict[str, Any]]:  # one row per check, for display and for the sidecar
        return [c.to_json() for c in self.checks]


def check(code: str, title: str, findings: list[Finding] | None, detail: str) -> Check:
    """A check whose status follows its findings; ``None`` findings: it could not run (skipped)."""
    return Check(code, title, "skipped" if findings is None else verdict_of(findings), detail, findings or [])
