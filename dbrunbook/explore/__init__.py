"""Interactive exploration of a change's impact: pick a change, a table or a finding and see what it touches.

The source is a finished run (its typed evidence, read through :mod:`dbrunbook.core.contract`) or a live
database, read-only (its schema snapshot and, with target models, the changes and the data checks)::

    from dbrunbook import explore
    found = explore.open_exploration(run="runs/20250101T000000Z-demo-abc123")   # or db="demo" / a URL
    found.items("change")                  # what can be chosen
    found.detail("table:users")            # dependencies, offending rows, locks, SQL, remedies, findings
    explore.show(found)                    # ipywidgets in JupyterLab; the same, static, anywhere else

The notebook ``dbrunbook/_notebooks/explore-impact.ipynb`` (``dbrunbook explore``) is these calls.
"""
from __future__ import annotations

from dbrunbook.explore._detail import Detail, OffendingRows
from dbrunbook.explore._notebook import NOTEBOOK, notebook_path, write_notebook
from dbrunbook.explore._source import KINDS, Exploration, Item, from_database, from_run, open_exploration
from dbrunbook.explore._view import Explorer, render_html, show, widget

__all__ = ["KINDS", "NOTEBOOK", "Detail", "Exploration", "Explorer", "Item", "OffendingRows", "from_database",
           "from_run", "notebook_path", "open_exploration", "render_html", "show", "widget", "write_notebook"]
