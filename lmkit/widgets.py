"""Live explorers for JupyterLab (ipywidgets). They need a running kernel, so the
static book shows the same views as plain HTML instead (see ``lmkit.viz`` and
``answers_html`` below).

Offered in chapter 1 (tokenizer explorer), chapter 3 (attention explorer) and
chapter 5 (ask the finetuned model).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence

import ipywidgets as widgets

from lmkit.finetune import answer
from lmkit.template import format_prompt
from lmkit.tokenizers import CharTokenizer, Tokenizer
from lmkit.transformer import GPT
from lmkit.viz import attention_maps, heatmap, tokens_html


def tokenizer_explorer(tokenizers: Mapping[str, Tokenizer], text: str = "To be, or not to be: that is the question.") -> widgets.VBox:
    """Type text, pick a tokenizer, and see its tokens coloured, their ids and their count."""
    if not tokenizers:
        raise ValueError("give at least one tokenizer")
    box = widgets.Textarea(value=text, description="text", layout=widgets.Layout(width="auto", height="5em"))
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

    box = widgets.Textarea(value=text, description="text", layout=widgets.Layout(width="auto", height="4em"))
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


def _text_html(text: str | None) -> str:
    """Model text as written: escaped, line breaks and runs of spaces kept."""
    if not text:
        return "<i style='color:#888'>(empty)</i>"
    # A block of its own: the widget's HTML sets a tall line height meant for one-line labels.
    return f"<div class='lmkit-text' style='font-family:monospace;white-space:pre-wrap;line-height:1.4'>{html.escape(text)}</div>"


def ask_widget(
    model: GPT,
    tokenizer: CharTokenizer,
    instruction: str = "Who speaks this line?",
    input: str = "O Romeo, Romeo! wherefore art thou Romeo?",
    max_new_tokens: int | None = None,
) -> widgets.VBox:
    """Type an instruction (and an input, for the tasks that take one; leave it empty for
    those that don't), press Ask, and read an instruction-finetuned model's answer: the
    prompt it reads, then its greedy answer up to the end marker (``lmkit.finetune.answer``),
    at most ``max_new_tokens`` long (None: as long as the context leaves room for; the
    prompt and the answer share the context)."""
    instruction_box = widgets.Text(value=instruction, description="instruction", layout=widgets.Layout(width="auto"))
    input_box = widgets.Textarea(value=input, description="input", layout=widgets.Layout(width="auto", height="4em"))
    ask = widgets.Button(description="Ask", button_style="primary")
    view = widgets.HTML()

    def respond(_: object = None) -> None:
        given = input_box.value or None
        ask.disabled = True  # one question at a time: clicks during an answer would queue up
        try:
            prompt = format_prompt(instruction_box.value, given)
            reply = answer(model, tokenizer, instruction_box.value, given, max_new_tokens=max_new_tokens)
        except ValueError as err:  # an empty instruction, a character the tokenizer never saw, a prompt too long
            view.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"
        else:
            view.value = (
                f"<p><b>the model reads</b></p>{_text_html(prompt)}<p><b>it answers</b> ({len(reply)} characters)</p>{_text_html(reply)}"
            )
        finally:
            ask.disabled = False

    ask.on_click(respond)
    respond()
    return widgets.VBox([instruction_box, input_box, ask, view])


def answers_html(rows: Iterable[Sequence[str | None]], answer_headers: Sequence[str] = ("answer",)) -> str:
    """The static stand-in for ``ask_widget``: a table of precomputed questions and answers.

    Each row is ``(instruction, input, answer, ...)`` with one answer per header, e.g. the
    same prompt answered before and after finetuning; ``input`` may be None or empty.
    """
    body = []
    for row in rows:
        if len(row) != 2 + len(answer_headers):
            raise ValueError(
                f"each row needs an instruction, an input and {len(answer_headers)} answer(s) {tuple(answer_headers)}; got {row!r}"
            )
        instruction, given, *answers = row
        cells = [html.escape(instruction), _text_html(given) if given else "", *(_text_html(a) for a in answers)]
        body.append("<tr>" + "".join(f"<td style='text-align:left;vertical-align:top'>{c}</td>" for c in cells) + "</tr>")
    if not body:
        raise ValueError("give at least one row")
    headers = ["instruction", "input", *answer_headers]
    head = "<tr>" + "".join(f"<th style='text-align:left'>{html.escape(h)}</th>" for h in headers) + "</tr>"
    return "<table>" + head + "".join(body) + "</table>"
