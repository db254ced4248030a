"""The views of an exploration: static HTML of one choice, and an ipywidgets explorer that updates as one picks.

:func:`show` displays both in one output: JupyterLab renders the widget; papermill, nbval, nbconvert and any
viewer without a live kernel keep the static HTML of the default choice (the same output's ``text/html``).
"""
from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from typing import Any

from dbrunbook.explore._detail import Detail
from dbrunbook.explore._source import KINDS, Exploration

#: The sections of a detail, in the order of the explorer's tabs: title and the function rendering it.
SECTIONS = ("Dependencies", "Offending rows", "Locks", "SQL", "Remedies", "Findings")


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    if not rows:
        return ""
    cols = columns or list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f'<table class="dbrunbook-explore"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(value: Any) -> str:
    if value is None:
        return "<i>NULL</i>"
    if isinstance(value, list):
        return html.escape(", ".join(str(v) for v in value))
    return html.escape(str(value))


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def _none(what: str) -> str:
    return f"<p><i>{html.escape(what)}</i></p>"


def section(detail: Detail, name: str) -> str:
    """The HTML of one section (one of :data:`SECTIONS`) of ``detail``."""
    if name == "Dependencies":
        return _table(detail.dependencies, ["type", "name", "table", "columns", "relation", "breaks"]) \
            or _none("nothing depends on it")
    if name == "Offending rows":
        parts = []
        for r in detail.rows:
            parts.append(f"<p><b>{html.escape(r.code)}</b> {html.escape(r.severity)}: {html.escape(r.message)}</p>")
            parts.append(_table(r.sample) if r.count and r.sample else _none("no offending row"))
            if r.query:
                parts.append(_pre(r.query))
        return "".join(parts) or _none("no data check on it (run stage 05, or give target models)")
    if name == "Locks":
        rows = [{k: v for k, v in asdict(lk).items() if k != "sql"} for lk in detail.locks]
        return _table(rows) or _none("no lock estimate (stage 03 records them)")
    if name == "SQL":
        return "".join(_pre(s) for s in detail.sql) or _none("no SQL")
    if name == "Remedies":
        return "".join(f"<p><b>{html.escape(k)}</b></p>{_pre(v)}" for k, v in detail.remedies.items()) \
            or _none("no remedy needed or offered")
    if name == "Findings":
        rows = [{"stage": s, "severity": f.severity, "code": f.code, "object": f.object, "message": f.message}
                for s, f in detail.findings]
        return _table(rows) or _none("no finding")
    raise ValueError(f"no section {name!r}; one of {SECTIONS}")


def header(detail: Detail) -> str:
    lines = "".join(f"<li>{html.escape(s)}</li>" for s in detail.summary)
    return f"<h3>{html.escape(detail.title)}</h3><ul>{lines}</ul>"


def render_html(found: Exploration, key: str | None = None) -> str:
    """Static HTML: what can be chosen, and the full detail of ``key`` (default: :meth:`Exploration.default`)."""
    counts = ", ".join(f"{len(found.items(k))} {k}s" for k in KINDS)
    parts = [f'<div class="dbrunbook-explore"><p><b>Exploring {html.escape(found.source)}</b>: {counts}.</p>']
    parts += [_none(n) for n in found.notes]
    first = found.default()
    chosen = key or (first.key if first else None)
    if chosen is None:
        return "".join(parts) + _none("nothing to explore") + "</div>"
    detail = found.detail(chosen)
    parts.append(header(detail))
    for name in SECTIONS:
        parts.append(f"<h4>{name}</h4>{section(detail, name)}")
    return "".join(parts) + "</div>"


@dataclass(repr=False)  # its exploration would fill pages
class Explorer:
    """The widgets of the explorer; changing ``kind`` or ``choice`` updates ``header`` and the ``sections``."""

    found: Exploration
    box: Any
    kind: Any
    choice: Any
    header: Any
    tabs: Any
    sections: dict[str, Any]

    def select(self, key: str) -> None:
        """Show ``key`` (an item's key), as a person picking it would."""
        self.kind.value = key.partition(":")[0]
        self.choice.value = key

    def _kind_changed(self, change: dict[str, Any]) -> None:
        items = self.found.items(change["new"])
        self.choice.options = [(i.label, i.key) for i in items] or [("(none)", "")]
        self.choice.value = items[0].key if items else ""
        self._refresh()

    def _choice_changed(self, change: dict[str, Any]) -> None:
        self._refresh()

    def _refresh(self) -> None:
        key = self.choice.value
        if not key:
            self.header.value = _none(f"no {self.kind.value} to explore") + "".join(_none(n) for n in self.found.notes)
            for widget in self.sections.values():
                widget.value = ""
            return
        detail = self.found.detail(key)
        self.header.value = header(detail)
        for name, widget in self.sections.items():
            widget.value = section(detail, name)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget for a live frontend and, in the same output, the static HTML for every other reader."""
        bundle: dict[str, Any] = self.box._repr_mimebundle_(**kwargs)
        bundle["text/html"] = render_html(self.found, self.choice.value or None)
        return bundle


def widget(found: Exploration) -> Explorer:
    """The explorer: a kind (change, table, finding), a choice of it, and tabs of its detail that update."""
    import ipywidgets as w

    kinds = [k for k in KINDS if found.items(k)] or list(KINDS)
    first = found.default()
    kind = w.ToggleButtons(options=kinds, value=first.kind if first else kinds[0], description="Explore")
    choice = w.Dropdown(options=[("(none)", "")], value="", description="Choice",
                        layout=w.Layout(width="90%"))
    head = w.HTML()
    sections = {name: w.HTML() for name in SECTIONS}
    tabs = w.Tab(children=list(sections.values()))
    for i, name in enumerate(SECTIONS):
        tabs.set_title(i, name)
    box = w.VBox([w.HTML(f"<b>Exploring {html.escape(found.source)}</b>"), kind, choice, head, tabs])
    explorer = Explorer(found, box, kind, choice, head, tabs, sections)
    explorer._kind_changed({"new": kind.value})
    kind.observe(explorer._kind_changed, names="value")
    choice.observe(explorer._choice_changed, names="value")
    return explorer


def show(found: Exploration) -> Explorer:
    """Display the explorer (static HTML of its default choice where no widget can run); returns it."""
    from IPython.display import display

    explorer = widget(found)
    display(explorer)  # type: ignore[no-untyped-call]
    return explorer
