"""Live explorers for JupyterLab (ipywidgets). They need a running kernel, so the
static book shows the same views as plain HTML instead (see ``lmkit.viz``)."""

from __future__ import annotations

from typing import Mapping

import ipywidgets as widgets

from lmkit.tokenizers import Tokenizer
from lmkit.viz import tokens_html


def tokenizer_explorer(tokenizers: Mapping[str, Tokenizer], text: str = "To be, or not to be: that is the question.") -> widgets.VBox:
    """Type text, pick a tokenizer, and see its tokens coloured, their ids and their count."""
    if not tokenizers:
        raise ValueError("give at least one tokenizer")
    box = widgets.Textarea(value=text, description="text", layout=widgets.Layout(width="100%", height="5em"))
    pick = widgets.ToggleButtons(options=list(tokenizers), description="tokenizer")
    view = widgets.HTML()

    def refresh(_: object = None) -> None:
        tok = tokenizers[pick.value]
        try:
            ids = tok.encode(box.value)
        except ValueError as err:  # e.g. a character the char tokenizer never saw
            view.value = f"<span style='color:#b00'>{err}</span>"
            return
        view.value = (
            f"<p><b>{len(ids)} tokens</b> for {len(box.value)} characters "
            f"(vocabulary of {tok.vocab_size})</p>{tokens_html(tok.tokens(box.value), ids)}"
            f"<p style='font-family:monospace;font-size:small'>ids: {ids}</p>"
        )

    box.observe(refresh, names="value")
    pick.observe(refresh, names="value")
    refresh()
    return widgets.VBox([box, pick, view])
