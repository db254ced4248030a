"""The public API: every exported name resolves, and importing the package stays light."""
import subprocess
import sys

import dbrunbook


def test_every_public_name_resolves():
    missing = [name for name in dbrunbook.__all__ if getattr(dbrunbook, name, None) is None]
    assert missing == []


def test_import_does_not_pull_in_papermill_or_pandas():
    code = "import sys, dbrunbook; print(sorted(m for m in ('papermill', 'pandas', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
