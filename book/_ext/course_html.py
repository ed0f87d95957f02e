"""HTML touches for the course book (a local Sphinx extension).

- Serve plotly.js from the book itself, once, so figures work offline. Figures
  are emitted as HTML that expects a global ``Plotly`` (see lmkit._mystnb); the
  script is copied from the installed plotly package, so the library in the page
  always matches the one that produced the figures.
- Offer every chapter as a notebook: the theme's download menu gets an
  ``.ipynb`` entry, the notebook myst-nb made of the page's MyST source (code
  and text, to run in JupyterLab), next to the source itself.
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


def offer_notebook(app: Sphinx, pagename: str, templatename: str, context: dict, doctree: object) -> None:
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if app.builder.format != "html" or not executed.exists():
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(executed, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app: Sphinx) -> dict:
    app.add_js_file("plotly.min.js")
    app.connect("build-finished", copy_plotly_js)
    # Before the theme builds its header buttons (priority 501), which read ipynb_source.
    app.connect("html-page-context", offer_notebook, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
