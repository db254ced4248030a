"""Rule registries: one rule per module, registered once under a stable code.

A rule module's docstring is the rule's documentation: its first line is the summary,
the rest says why. The module defines one ``check`` function and registers it::

    \"\"\"Foreign key without a covering index.

    Deleting a parent row scans the child table ...
    \"\"\"
    from dbrunbook.stages.design_validation import registry

    @registry.rule("DV001", "fk-without-index", "warn", safe="CREATE INDEX ... ON child (fk)")
    def check(ctx):
        yield ctx.finding(...)

Registries are named (``design``, ``lint``); a second rule with a code already taken fails
at import. Other packages add rules through the entry-point group ``dbrunbook.<registry>``.
"""
from __future__ import annotations

import fnmatch
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from dbrunbook.core.results import SEVERITIES, Finding

CheckFn = Callable[..., Iterable[Finding]]


@dataclass(frozen=True)
class Rule:
    """A registered rule and its documentation."""

    code: str
    name: str
    severity: str
    summary: str
    why: str
    safe: str
    check: CheckFn = field(repr=False, compare=False)
    dialects: tuple[str, ...] = ()

    def applies_to(self, dialect: str) -> bool:
        return not self.dialects or dialect in self.dialects

    def finding(self, message: str, object: str = "", evidence: dict[str, Any] | None = None,
                severity: str | None = None, fix: str | None = None) -> Finding:
        """A finding of this rule, with its code, default severity and safe alternative."""
        return Finding(self.code, severity or self.severity, message, object, evidence or {},
                       self.safe if fix is None else fix)


class Registry:
    """A named set of rules, keyed by unique code."""

    def __init__(self, name: str, package: str) -> None:
        self.name = name
        self.package = package
        self._rules: dict[str, Rule] = {}
        self._loaded = False

    def rule(self, code: str, name: str, severity: str, *, safe: str,
             dialects: Sequence[str] = ()) -> Callable[[CheckFn], CheckFn]:
        """Register the decorated ``check`` under ``code``; the module docstring documents it."""
        if severity not in SEVERITIES:
            raise ValueError(f"rule {code}: severity must be one of {SEVERITIES}")

        def register(check: CheckFn) -> CheckFn:
            if code in self._rules:
                raise ValueError(f"{self.name} rule code {code} registered twice "
                                 f"({self._rules[code].check.__module__} and {check.__module__})")
            doc = (sys.modules[check.__module__].__doc__ or check.__doc__ or "").strip()
            summary, _, why = doc.partition("\n")
            if not summary:
                raise ValueError(f"rule {code} has no docstring")
            self._rules[code] = Rule(code, name, severity, summary.strip(), why.strip(), safe, check,
                                     tuple(dialects))
            return check

        return register

    def load(self) -> None:
        """Import every rule module of the package and of installed plugins, once."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        for entry in entry_points(group=f"dbrunbook.{self.name}"):
            entry.load()

    def __iter__(self) -> Iterator[Rule]:
        self.load()
        return iter(sorted(self._rules.values(), key=lambda r: r.code))

    def __getitem__(self, code: str) -> Rule:
        self.load()
        return self._rules[code]

    def select(self, include: Sequence[str] = (), exclude: Sequence[str] = (),
               dialect: str | None = None) -> list[Rule]:
        """Rules whose code or name matches an ``include`` pattern (all if none) and no ``exclude``."""
        def matches(rule: Rule, patterns: Sequence[str]) -> bool:
            return any(fnmatch.fnmatch(rule.code, p) or fnmatch.fnmatch(rule.name, p) for p in patterns)

        return [r for r in self if (not include or matches(r, include)) and not matches(r, exclude)
                and (dialect is None or r.applies_to(dialect))]
