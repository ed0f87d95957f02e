"""A myst-nb plugin that renders plotly figures in the static book.

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
    # Prefer the figure over any fallback representation, in every builder.
    mime_priority_overrides = [("*", PLOTLY_MIME, 1)]

    @staticmethod
    def handle_mime(renderer: Any, data: Any, inline: bool) -> list[nodes.Element] | None:
        if data.mime_type != PLOTLY_MIME:
            return None
        html = pio.to_html(data.content, include_plotlyjs=False, full_html=False, config={"responsive": True}, validate=False)
        return [nodes.raw(text=html, format="html", classes=["output", "text_html"])]
