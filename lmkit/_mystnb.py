"""A myst-nb plugin that renders plotly figures in the static book.

Part of the book build (every chapter's figures), not taught in a chapter.

Figures carry only plotly's own mime type (JupyterLab renders it natively). When
the book is built, myst-nb hands that mime type to this plugin (registered as
an entry point in pyproject.toml), which emits the figure's HTML. The page gets
plotly.js once, from the book's ``_static`` folder, so it works offline.
"""

from __future__ import annotations

from typing import Any

import plotly.io as pio
from docutils import nodes

PLOTLY_MIME = "application/vnd.plotly.v1+json"


class PlotlyMimeRenderer:
    """myst-nb's mime renderer plugin for plotly's mime type (not a plotly.io renderer:
    that is ``lmkit.viz.PlotlyJSONRenderer``, which emits the mime type this one reads)."""

    # Prefer the figure over any fallback representation, in every builder.
    mime_priority_overrides = [("*", PLOTLY_MIME, 1)]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        if data.mime_type != PLOTLY_MIME:
            return None
        html = pio.to_html(data.content, include_plotlyjs=False, full_html=False, config={"responsive": True}, validate=False)
        return [nodes.raw(text=html, format="html", classes=["output", "text_html"])]
