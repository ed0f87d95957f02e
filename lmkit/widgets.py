"""Live explorers for JupyterLab (ipywidgets). They need a running kernel, so the
static book shows the same views as plain HTML instead (see ``lmkit.viz``).

Offered in chapter 1 (tokenizer explorer) and chapter 3 (attention explorer).
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as widgets

from lmkit.tokenizers import Tokenizer
from lmkit.viz import attention_maps, heatmap, tokens_html


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


def attention_explorer(model, tokenizer: Tokenizer, text: str = "ROMEO:\nWhat light through yonder window breaks?") -> widgets.VBox:
    """Type text and pick a layer and a head of a trained GPT (``lmkit.transformer.GPT``)
    to see which earlier tokens each token attends to."""
    from IPython.display import display

    box = widgets.Textarea(value=text, description="text", layout=widgets.Layout(width="100%", height="4em"))
    layer = widgets.IntSlider(value=0, min=0, max=model.config.n_layers - 1, description="layer")
    head = widgets.IntSlider(value=0, min=0, max=model.config.n_heads - 1, description="head")
    out = widgets.Output()

    def refresh(_: object = None) -> None:
        out.clear_output(wait=True)
        with out:
            try:
                ids = tokenizer.encode(box.value)[-model.config.context :]
            except ValueError as err:
                print(err)
                return
            if not ids:
                print("type some text")
                return
            maps = attention_maps(model, ids)  # (L, H, T, T)
            labels = [f"{t}:{tok}" for t, tok in enumerate(tokenizer.tokens(tokenizer.decode(ids)))]
            fig = heatmap(
                maps[layer.value, head.value],
                x=labels,
                y=labels,
                title=f"layer {layer.value}, head {head.value}: row = query, column = key",
            )
            fig.update_layout(height=600)
            display(fig)

    for w in (box, layer, head):
        w.observe(refresh, names="value")
    refresh()
    return widgets.VBox([box, widgets.HBox([layer, head]), out])
