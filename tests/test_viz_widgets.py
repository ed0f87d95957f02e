"""Tests for lmkit.viz, lmkit.widgets and the myst-nb plotly plugin (lmkit._mystnb).

These check structure, not looks: what the figures and HTML contain (one bar
per token, one trace per group, escaped text), and that the plotly figures go
out as plotly's mime type only, without a copy of plotly.js in the notebook or
the book page.
"""

from __future__ import annotations

import html
import re
import types

import ipywidgets as widgets
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import torch
from docutils import nodes

import lmkit.viz  # noqa: F401  (registers the "lmkit" renderer)
from lmkit._mystnb import PLOTLY_MIME, PlotlyMimeRenderer
from lmkit.finetune import answer, end_id
from lmkit.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer
from lmkit.transformer import GPT, GPTConfig
from lmkit.viz import (
    PlotlyJSONRenderer,
    bpe_steps_figure,
    compare_tokenizers_html,
    embedding_scatter,
    heatmap,
    pca_2d,
    seeds_figure,
    text_slider,
    tokens_html,
)
from lmkit.widgets import answers_html, ask_widget, tokenizer_explorer

TEXT = "To be, or not to be: that is the question. Whether 'tis nobler in the mind to suffer\n" * 3


def small_figure() -> go.Figure:
    fig = go.Figure(go.Bar(x=["a", "b", "c"], y=[3, 1, 2], name="bars"))
    fig.add_trace(go.Scatter(x=[0, 1, 2], y=[0.5, 1.5, 2.5], mode="lines", name="line"))
    fig.update_layout(title="small")
    return fig


def visible_text(token_text: str) -> str:
    """Undo the display mapping of lmkit.viz (middle dot, return arrow)."""
    return token_text.replace("\u00b7", " ").replace("\u21b5", "\n")


# --- the "lmkit" plotly renderer ------------------------------------------------------------


def test_importing_viz_makes_lmkit_the_default_renderer():
    assert pio.renderers.default == "lmkit"
    assert isinstance(pio.renderers["lmkit"], PlotlyJSONRenderer)


def test_renderer_emits_only_the_plotly_mime_type_and_round_trips():
    fig = small_figure()
    bundle = pio.renderers["lmkit"].to_mimebundle(fig.to_dict())
    # Only plotly's own mime type: no text/html fallback carrying plotly.js.
    assert list(bundle) == [PLOTLY_MIME]
    back = go.Figure(bundle[PLOTLY_MIME])
    assert len(back.data) == len(fig.data)
    for got, want in zip(back.data, fig.data):
        assert got.type == want.type
        assert list(got.x) == list(want.x)
        assert list(got.y) == list(want.y)
        assert got.name == want.name
    assert back.layout.title.text == "small"
    assert back == fig


# --- the myst-nb plugin -----------------------------------------------------------------------


def test_mystnb_plugin_ignores_other_mime_types():
    data = types.SimpleNamespace(mime_type="text/html", content="<b>hi</b>")
    assert PlotlyMimeRenderer.handle_mime(None, data, False) is None


def test_mystnb_plugin_renders_plotly_as_html_without_plotly_js():
    content = pio.renderers["lmkit"].to_mimebundle(small_figure().to_dict())[PLOTLY_MIME]
    data = types.SimpleNamespace(mime_type=PLOTLY_MIME, content=content)
    out = PlotlyMimeRenderer.handle_mime(None, data, True)
    assert isinstance(out, list) and len(out) == 1
    node = out[0]
    assert isinstance(node, nodes.raw)
    assert node["format"] == "html"
    text = node.astext()
    assert "plotly-graph-div" in text
    assert "Plotly.newPlot" in text
    # plotly.js itself is several MB; the page loads it once from _static, so
    # each figure must carry only its data and no script fetched from a CDN.
    assert len(text) < 100_000
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert "cdn.plot.ly" not in text


# --- tokens_html ------------------------------------------------------------------------------


def span_texts(markup: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r"<span[^>]*>(.*?)</span>", markup, flags=re.S)]


def test_tokens_html_one_span_per_token():
    tokens = ["To", " be", ",", " or"]
    markup = tokens_html(tokens)
    assert markup.count("<span") == len(tokens)
    assert [visible_text(t) for t in span_texts(markup)] == tokens
    assert "title=" not in markup


def test_tokens_html_escapes_and_shows_whitespace():
    markup = tokens_html(["<unk>", "a b", "\n", "&"])
    assert "&lt;unk&gt;" in markup
    assert "<unk>" not in markup
    assert "&amp;" in markup
    assert span_texts(markup) == ["<unk>", "a\u00b7b", "\u21b5", "&"]


def test_tokens_html_puts_ids_in_titles():
    markup = tokens_html(["a", "b", "a"], ids=[7, 8, 7])
    assert re.findall(r'title="id (\d+)"', markup) == ["7", "8", "7"]


def test_tokens_html_empty():
    assert tokens_html([]) == ""


# --- compare_tokenizers_html ------------------------------------------------------------------


def test_compare_tokenizers_html_one_row_per_tokenizer_with_counts():
    char_tok = CharTokenizer().train(TEXT)
    word_tok = WordTokenizer().train(TEXT)
    sample = "To be, or not to be"
    markup = compare_tokenizers_html(sample, {"chars": char_tok, "words": word_tok})
    rows = re.findall(r"<tr>.*?</tr>", markup, flags=re.S)
    assert len(rows) == 2
    # 19 characters; words: To be , or not to be -> 7 tokens.
    assert "<b>chars</b>" in rows[0] and f"{len(sample)} tokens" in rows[0]
    assert "<b>words</b>" in rows[1] and "7 tokens" in rows[1]
    assert rows[0].count("<span") == len(sample)
    assert rows[1].count("<span") == 7


def test_compare_tokenizers_html_escapes_names():
    markup = compare_tokenizers_html("ab", {"<chars>": CharTokenizer().train("ab")})
    assert "&lt;chars&gt;" in markup


# --- bpe_steps_figure ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer().train(TEXT, vocab_size=256 + 40)


def test_bpe_steps_figure_traces_and_slider(bpe):
    text = "To be, or not to be:\nthat is the question."
    steps = [0, 5, 20, 40]
    fig = bpe_steps_figure(bpe, text, steps)
    assert len(fig.data) == len(steps)
    assert [bool(t.visible) for t in fig.data] == [True, False, False, False]
    slider_steps = fig.layout.sliders[0].steps
    assert len(slider_steps) == len(steps)
    for i, (step, n) in enumerate(zip(slider_steps, steps)):
        assert step.label == str(n)
        mask = step.args[0]["visible"]
        assert len(mask) == len(steps)
        assert [j for j, v in enumerate(mask) if v] == [i]


def test_bpe_steps_figure_bars_cover_the_text(bpe):
    text = "To be, or not to be:\nthat is the question."
    steps = [0, 5, 20, 40]
    fig = bpe_steps_figure(bpe, text, steps)
    lengths = []
    for trace, n in zip(fig.data, steps):
        widths = list(trace.x)
        assert sum(widths) == len(text)
        # Bars are laid end to end: each starts where the previous one ends.
        assert list(trace.base) == [sum(widths[:k]) for k in range(len(widths))]
        assert "".join(visible_text(t) for t in trace.text) == text
        assert len(widths) == len(bpe.prefix(n).encode(text))
        lengths.append(len(widths))
    # More merges never make the text longer, and 40 merges do shorten it.
    assert lengths == sorted(lengths, reverse=True)
    assert lengths[-1] < lengths[0]


def test_bpe_steps_figure_bars_cover_non_ascii_text():
    # A byte-level token can hold part of a multi-byte character: with no merges
    # "é" is two byte tokens. The bars are meant to be measured in characters
    # (x axis "characters", range [0, len(text)]), so they must still add up to
    # the text, not overflow it with one bar per byte of "é".
    tok = BPETokenizer().train("café crème " * 20, vocab_size=256 + 5)
    text = "café crème"
    fig = bpe_steps_figure(tok, text, [0, 5])
    for trace in fig.data:
        assert sum(trace.x) == len(text)
        assert "".join(visible_text(t) for t in trace.text) == text


def test_bpe_steps_figure_repeated_step_still_shows_only_one_trace(bpe):
    # The initial visibility must follow the slider's first position (index 0),
    # not every step whose value happens to equal steps[0].
    fig = bpe_steps_figure(bpe, "to be", [5, 20, 5])
    assert [bool(t.visible) for t in fig.data] == [True, False, False]


# --- heatmap, embedding_scatter, pca_2d ----------------------------------------------------------


def test_heatmap_keeps_shape_and_labels():
    z = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    fig = heatmap(z, x=["a", "b", "c"], y=["r1", "r2"], title="t")
    (trace,) = fig.data
    assert [list(row) for row in trace.z] == z.tolist()
    assert list(trace.x) == ["a", "b", "c"]
    assert list(trace.y) == ["r1", "r2"]
    assert fig.layout.title.text == "t"
    # Row 0 at the top, as in a matrix.
    assert fig.layout.yaxis.autorange == "reversed"


def test_heatmap_accepts_nested_lists():
    fig = heatmap([[1, 2], [3, 4]], x=["a", "b"], y=["c", "d"])
    assert [list(row) for row in fig.data[0].z] == [[1, 2], [3, 4]]


@pytest.mark.parametrize("shape", [(4,), (4, 3), (4, 1), (2, 2, 2)])
def test_embedding_scatter_rejects_points_not_n_by_2(shape):
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        embedding_scatter(torch.zeros(shape), ["a"] * 4, ["g"] * 4)


def test_embedding_scatter_one_trace_per_group_in_order_of_appearance():
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0]])
    labels = ["a", "e", " ", "b", "i"]
    groups = ["consonant", "vowel", "space", "consonant", "vowel"]
    fig = embedding_scatter(points, labels, groups)
    assert [t.name for t in fig.data] == ["consonant", "vowel", "space"]
    consonants, vowels, spaces = fig.data
    assert list(consonants.x) == [0.0, 3.0] and list(consonants.y) == [0.0, 3.0]
    assert list(consonants.text) == ["a", "b"]
    assert list(vowels.x) == [1.0, 4.0]
    assert list(vowels.text) == ["e", "i"]
    assert list(spaces.text) == ["\u00b7"]  # a space label is made visible


def test_pca_2d_shape_and_centred():
    x = torch.randn(50, 8, generator=torch.Generator().manual_seed(0)) + 3.0
    y = pca_2d(x)
    assert y.shape == (50, 2)
    assert torch.allclose(y.mean(dim=0), torch.zeros(2), atol=1e-5)
    # First component carries at least as much variance as the second.
    assert y[:, 0].var() >= y[:, 1].var()


def dist(x: torch.Tensor) -> torch.Tensor:
    # Exact pairwise distances: for more than 25 rows cdist by default uses
    # |a|^2 + |b|^2 - 2ab, which in float32 is off by ~1e-3 for close points.
    return torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")


def test_pca_2d_preserves_distances_of_planar_data():
    # Points on a 2-D plane (through an offset) inside 5-D space: the first two
    # principal components span that plane, so projecting loses nothing.
    g = torch.Generator().manual_seed(0)
    coeffs = torch.randn(40, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.0], dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(5, 2, generator=g, dtype=torch.float64))  # orthonormal columns
    x = coeffs @ basis.T + torch.randn(5, generator=g, dtype=torch.float64)
    y = pca_2d(x)
    assert y.shape == (40, 2)
    assert torch.allclose(dist(y), dist(x), atol=1e-4)
    # Also in float32, the dtype of model weights.
    y32 = pca_2d(x.float())
    assert torch.allclose(dist(y32), dist(x.float()), atol=1e-4)


# --- tokenizer_explorer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizers():
    return {"chars": CharTokenizer().train(TEXT), "words": WordTokenizer().train(TEXT)}


def count_shown(view: widgets.HTML) -> int:
    match = re.search(r"<b>(\d+) tokens</b>", view.value)
    assert match, view.value
    return int(match.group(1))


def test_tokenizer_explorer_layout_and_initial_view(tokenizers):
    box = tokenizer_explorer(tokenizers)
    assert isinstance(box, widgets.VBox)
    text_area, pick, view = box.children
    assert isinstance(text_area, widgets.Textarea)
    assert isinstance(pick, widgets.ToggleButtons)
    assert isinstance(view, widgets.HTML)
    assert list(pick.options) == ["chars", "words"]
    assert pick.value == "chars"
    default = "To be, or not to be: that is the question."
    assert text_area.value == default
    assert count_shown(view) == len(default)


def test_tokenizer_explorer_follows_text_and_tokenizer(tokenizers):
    box = tokenizer_explorer(tokenizers, text="to be")
    text_area, pick, view = box.children
    assert count_shown(view) == 5
    text_area.value = "to be or not"
    assert count_shown(view) == 12
    pick.value = "words"
    assert count_shown(view) == 4
    assert f"vocabulary of {tokenizers['words'].vocab_size}" in view.value
    text_area.value = "to be, or not to be"
    assert count_shown(view) == 7


def test_tokenizer_explorer_shows_error_for_unseen_character(tokenizers):
    box = tokenizer_explorer(tokenizers)
    text_area, _, view = box.children
    text_area.value = "to be \u00e9"  # "é" is not in the training text
    assert "tokens</b>" not in view.value
    assert "never seen" in view.value
    assert "\u00e9" in view.value
    # Fixing the text brings the token view back.
    text_area.value = "to be"
    assert count_shown(view) == 5


def test_tokenizer_explorer_needs_a_tokenizer():
    with pytest.raises(ValueError):
        tokenizer_explorer({})


# --- text_slider ----------------------------------------------------------------------------


def test_text_slider_one_step_per_text_showing_that_text():
    texts = {0: "ROMEO:\nnoise", 500: "JULIET:\nA & B <b>", 2000: "plain"}
    fig = text_slider(texts, "Samples", "step: ")
    assert fig.layout.title.text == "Samples"
    slider = fig.layout.sliders[0]
    assert slider.currentvalue.prefix == "step: "
    assert [step.label for step in slider.steps] == ["0", "500", "2000"]
    shown = [step.args[0]["annotations"][0]["text"] for step in slider.steps]
    # line breaks become <br>; text that looks like markup is escaped, so it is shown as written
    assert shown == ["ROMEO:<br>noise", "JULIET:<br>A &amp; B &lt;b&gt;", "plain"]
    assert fig.layout.annotations[0].text == shown[0]  # the first text is shown before the slider moves
    assert fig.layout.annotations[0].font.family == "monospace"


def test_text_slider_needs_a_text():
    with pytest.raises(ValueError, match="at least one text"):
        text_slider({}, "empty", "")


# --- ask_widget and answers_html ------------------------------------------------------------------

QUESTION_TEXT = "Q: Who speaks this line?\nO Romeo, Romeo! wherefore art thou Romeo?\nA: JULIET\nSpell this word backwards."


@pytest.fixture(scope="module")
def char_tok():
    return CharTokenizer().train(QUESTION_TEXT)


def constant_model(tokenizer: CharTokenizer, token: int) -> GPT:
    """A GPT (with the end token) whose every next token is ``token``: the final norm outputs
    the unit vector e0 whatever it reads, and only ``token``'s (tied) embedding row has a
    non-zero first component, so that token has the one largest logit."""
    model = GPT(GPTConfig(vocab_size=end_id(tokenizer) + 1, context=128, d_model=8, n_layers=1, n_heads=2)).eval()
    with torch.no_grad():
        model.norm.weight.zero_()
        model.norm.bias.zero_()
        model.norm.bias[0] = 1.0
        model.tok_emb.weight.zero_()
        model.tok_emb.weight[token, 0] = 1.0
    return model


def shown(view: widgets.HTML) -> list[str]:
    """The prompt and the answer that the widget shows, as plain text."""
    return [html.unescape(t) for t in re.findall(r"<div class='lmkit-text'[^>]*>(.*?)</div>", view.value, flags=re.S)]


def test_ask_widget_layout_and_first_answer(char_tok):
    model = constant_model(char_tok, char_tok.encode("o")[0])
    box = ask_widget(model, char_tok, max_new_tokens=5)
    instruction, given, button, view = box.children
    assert isinstance(instruction, widgets.Text)
    assert isinstance(given, widgets.Textarea)
    assert isinstance(button, widgets.Button) and button.description == "Ask" and not button.disabled
    assert isinstance(view, widgets.HTML)
    # The default question is answered at once: the model always says "o", five times.
    assert shown(view) == ["Q: Who speaks this line?\nO Romeo, Romeo! wherefore art thou Romeo?\nA: ", "ooooo"]
    assert "(5 characters)" in view.value


def test_ask_widget_answers_as_long_as_the_context_allows(char_tok):
    model = constant_model(char_tok, char_tok.encode("o")[0])
    instruction, given, button, view = ask_widget(model, char_tok).children
    prompt = "Q: Who speaks this line?\nO Romeo, Romeo! wherefore art thou Romeo?\nA: "
    assert shown(view) == [prompt, "o" * (128 - len(prompt))]
    given.value = "Romeo " * 16  # 25 + 96 + 4 = 125 characters of prompt: room for 3
    button.click()
    assert shown(view)[1] == "ooo"


def test_ask_widget_stops_at_the_end_token(char_tok):
    box = ask_widget(constant_model(char_tok, end_id(char_tok)), char_tok)
    assert "(0 characters)" in box.children[3].value
    assert "(empty)" in box.children[3].value


def test_ask_widget_answers_what_is_typed_on_click(char_tok):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=end_id(char_tok) + 1, context=128, d_model=16, n_layers=1, n_heads=2)).eval()
    instruction, given, button, view = ask_widget(model, char_tok, max_new_tokens=12).children
    instruction.value = "Spell this word backwards."
    given.value = "Romeo"
    assert "Spell this word" not in view.value  # nothing is asked before the click
    button.click()
    expected = answer(model, char_tok, "Spell this word backwards.", "Romeo", max_new_tokens=12)
    assert shown(view) == ["Q: Spell this word backwards.\nRomeo\nA: ", expected]
    # An empty input box: the template without an input line.
    given.value = ""
    button.click()
    assert shown(view) == ["Q: Spell this word backwards.\nA: ", answer(model, char_tok, "Spell this word backwards.", max_new_tokens=12)]


@pytest.mark.parametrize(
    "instruction, given, message",
    [
        ("   ", "", "the instruction is empty"),
        ("Who speaks this line?", "O Romeo #", "never seen"),  # no "#" in the tokenizer's text
        ("Who speaks this line?", "Romeo " * 17, "fills the model's context of 128"),  # 25 + 102 + 4 > 127
    ],
)
def test_ask_widget_shows_errors_and_recovers(char_tok, instruction, given, message):
    model = constant_model(char_tok, char_tok.encode("o")[0])
    instruction_box, input_box, button, view = ask_widget(model, char_tok, max_new_tokens=5).children
    instruction_box.value, input_box.value = instruction, given
    button.click()
    assert message in html.unescape(view.value) and "color:#b00" in view.value
    assert not button.disabled
    instruction_box.value, input_box.value = "Who speaks this line?", ""
    button.click()
    assert shown(view) == ["Q: Who speaks this line?\nA: ", "ooooo"]


def test_ask_widget_explains_a_model_without_the_end_token(char_tok):
    pretrained = GPT(GPTConfig(vocab_size=char_tok.vocab_size, context=128, d_model=8, n_layers=1, n_heads=2)).eval()
    view = ask_widget(pretrained, char_tok).children[3]
    assert "no &lt;end&gt; token" in view.value and "finetune it first" in view.value


def test_answers_html_one_row_per_question_escaped():
    rows = [
        ("Who speaks this line?", "O Romeo, Romeo!", "JULIET", "ROMEO:\nO"),
        ("Say <b>", None, "a & b", ""),
    ]
    markup = answers_html(rows, answer_headers=("finetuned", "pretrained"))
    headers = re.findall(r"<th[^>]*>(.*?)</th>", markup)
    assert headers == ["instruction", "input", "finetuned", "pretrained"]
    table_rows = re.findall(r"<tr><td.*?</tr>", markup, flags=re.S)
    assert len(table_rows) == 2
    assert "Say &lt;b&gt;" in table_rows[1] and "<b>" not in table_rows[1]
    assert "a &amp; b" in table_rows[1]
    assert "(empty)" in table_rows[1]  # an empty answer is shown as such, not as a blank cell
    assert [html.unescape(t) for t in re.findall(r"<div class='lmkit-text'[^>]*>(.*?)</div>", table_rows[0], flags=re.S)] == [
        "O Romeo, Romeo!",
        "JULIET",
        "ROMEO:\nO",
    ]


def test_answers_html_checks_its_rows():
    with pytest.raises(ValueError, match="at least one row"):
        answers_html([])
    with pytest.raises(ValueError, match="1 answer"):
        answers_html([("instruction", "input", "answer", "one too many")])


# --- seeds_figure (chapter 5) -----------------------------------------------------------------


def test_seeds_figure_a_dot_per_seed_and_a_dash_at_the_mean():
    series = {
        "masked": {"speaker": [0.5, 0.7], "count": [0.2, 0.4, 0.9]},
        "every token": {"speaker": [0.1, 0.3]},
    }
    fig = seeds_figure(series, "Variants", "accuracy", percent=True)
    dots, means, other_dots, other_means = fig.data
    assert list(dots.x) == ["speaker", "speaker", "count", "count", "count"]
    assert list(dots.y) == [0.5, 0.7, 0.2, 0.4, 0.9]
    assert list(means.x) == ["speaker", "count"]
    assert means.y == pytest.approx([0.6, 0.5])  # worked out by hand
    assert list(other_means.y) == pytest.approx([0.2])
    # one legend entry per series; its mean shares the colour and the place on the axis
    assert [t.showlegend for t in fig.data] == [None, False, None, False]
    assert dots.marker.color == means.marker.color != other_dots.marker.color
    assert dots.offsetgroup == means.offsetgroup == "masked"
    assert fig.layout.scattermode == "group"
    assert fig.layout.yaxis.tickformat == ".0%"
    assert fig.layout.showlegend
    one = seeds_figure({"bits": series["masked"]}, "t", "bits")
    assert one.layout.yaxis.tickformat == ""
    assert not one.layout.showlegend  # a single series needs no legend


def test_seeds_figure_needs_values():
    with pytest.raises(ValueError, match="at least one series"):
        seeds_figure({}, "t", "y")
    with pytest.raises(ValueError, match="'empty'"):
        seeds_figure({"empty": {"speaker": []}}, "t", "y")
