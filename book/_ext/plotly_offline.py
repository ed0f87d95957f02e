"""Serve plotly.js from the book itself, once, so figures work offline.

Figures are emitted as HTML that expects a global ``Plotly`` (see lmkit.viz).
The script is copied from the installed plotly package, so the library in the
page always matches the one that produced the figures.
"""

import shutil
from pathlib import Path

import plotly
from sphinx.application import Sphinx

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def copy_plotly_js(app: Sphinx, exception: Exception | None) -> None:
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PLOTLY_JS, static / "plotly.min.js")


def setup(app: Sphinx) -> dict:
    app.add_js_file("plotly.min.js")
    app.connect("build-finished", copy_plotly_js)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
