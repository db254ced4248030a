"""The shipped explorer notebook, copied with its parameters set, ready for JupyterLab or papermill."""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from dbrunbook.core.secrets import mask_url

#: The notebook's name in the package (``dbrunbook/_notebooks``) and in the folder it is copied to.
NOTEBOOK = "explore-impact.ipynb"
#: The parameters the notebook declares (its cell tagged ``parameters``).
PARAMETERS = ("run", "db", "models", "project", "runs_dir")


def notebook_path() -> Path:
    """The shipped notebook (read-only in an installed package: copy it before running it)."""
    return Path(str(resources.files("dbrunbook") / "_notebooks" / NOTEBOOK))


def write_notebook(folder: Path, **parameters: str) -> Path:
    """Copy the notebook into ``folder`` with ``parameters`` injected after its parameters cell, as papermill
    does; a database URL is written masked (its password stays in the environment, never in the notebook)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"the explorer notebook has no parameter {', '.join(unknown)}")
    values: dict[str, Any] = {k: v for k, v in parameters.items() if v}
    if "://" in values.get("db", ""):
        values["db"] = mask_url(values["db"])
    nb = load_notebook_node(str(notebook_path()))  # papermill's reader gives every cell the tags it looks for
    if values:
        nb = parameterize_notebook(nb, values, kernel_name="python3", language="python")
    folder.mkdir(parents=True, exist_ok=True)
    dest = folder / NOTEBOOK
    nbformat.write(nb, dest)  # type: ignore[no-untyped-call]
    return dest
