"""docs/rules.md is generated from the lint registry and must match it."""
from pathlib import Path

from dbrunbook.lint import registry, render_rules_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_rules_reference_is_current():
    assert (ROOT / "docs" / "rules.md").read_text() == render_rules_markdown(), \
        "run: python -m dbrunbook.lint.docs > docs/rules.md"


def test_every_rule_has_a_section():
    text = render_rules_markdown()
    for rule in registry:
        assert f"\n## {rule.code}\n" in text and rule.safe in text
