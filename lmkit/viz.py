"""Plotly figures and HTML views used by the chapters.

Used from chapter 1 on (tokens, BPE steps, embeddings), in chapter 3 (attention
maps), chapter 4 (text sliders) and chapter 5 (results over seeds); the chapters
teach what the figures show.

Importing this module registers the ``"lmkit"`` plotly renderer and makes it
the default: figures are emitted as plotly's mime type, which JupyterLab renders
with its plotly extension and the book build renders offline (``lmkit._mystnb``).
"""

from __future__ import annotations

import html
import statistics
from collections.abc import Mapping, Sequence

import plotly.colors
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.io._base_renderers import MimetypeRenderer

from lmkit.tokenizers import BPETokenizer, Tokenizer

PALETTE = ["#fde2a7", "#b9e4c9", "#c9d7f8", "#f8c9d4", "#d9c9f8", "#c9f0f8", "#f2d7b6", "#e0e0e0"]


class PlotlyJSONRenderer(MimetypeRenderer):
    """A plotly.io renderer that emits plotly's own mime type (the figure as JSON) only:
    JupyterLab renders it, the book build turns it into HTML (``lmkit._mystnb``'s
    myst-nb plugin), and no copy of plotly.js goes into the notebook."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        return {"application/vnd.plotly.v1+json": go.Figure(fig_dict).to_plotly_json()}


pio.renderers["lmkit"] = PlotlyJSONRenderer()
pio.renderers.default = "lmkit"
pio.templates.default = "plotly_white"


def _visible(token: str) -> str:
    return token.replace(" ", "\u00b7").replace("\n", "\u21b5").replace("\t", "\u2192")


def tokens_html(tokens: Sequence[str], ids: Sequence[int] | None = None) -> str:
    """HTML of tokens as coloured boxes (spaces shown as a middle dot, newlines as an arrow).

    With ``ids``, hovering a token shows its id.
    """
    spans = []
    for k, tok in enumerate(tokens):
        title = f' title="id {ids[k]}"' if ids is not None else ""
        spans.append(
            f'<span{title} style="background:{PALETTE[k % len(PALETTE)]};border-radius:3px;padding:1px 2px;'
            f'margin:1px;display:inline-block;font-family:monospace;white-space:pre">{html.escape(_visible(tok))}</span>'
        )
    return "".join(spans)


def compare_tokenizers_html(text: str, tokenizers: Mapping[str, Tokenizer]) -> str:
    """An HTML table: for each tokenizer, the token count and the coloured tokens of ``text``."""
    rows = []
    for name, tok in tokenizers.items():
        ids = tok.encode(text)
        rows.append(
            f"<tr><td style='text-align:left;vertical-align:top;padding-right:1em'><b>{html.escape(name)}</b><br>"
            f"{len(ids)} tokens</td><td style='text-align:left'>{tokens_html(tok.tokens(text), ids)}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _char_spans(tokenizer: BPETokenizer, text: str) -> list[str]:
    """The characters each token completes: a token holding only part of a
    multi-byte character gets "" and the token that finishes it gets the character."""
    pieces, done, buf = [], 0, b""
    for i in tokenizer.encode(text):
        buf += tokenizer.token_bytes(i)
        end = len(buf.decode("utf-8", errors="ignore"))
        pieces.append(text[done:end])
        done = end
    return pieces


def bpe_steps_figure(tokenizer: BPETokenizer, text: str, steps: Sequence[int]) -> go.Figure:
    """A slider over BPE training: how ``text`` is tokenized after each number of merges in ``steps``.

    Each token is a bar as wide as its number of characters, labelled with its text.
    """
    fig = go.Figure()
    for i, n in enumerate(steps):
        pieces = _char_spans(tokenizer.prefix(n), text)
        widths = [len(p) for p in pieces]
        starts = [sum(widths[:k]) for k in range(len(pieces))]
        fig.add_trace(
            go.Bar(
                x=widths,
                base=starts,
                y=[""] * len(pieces),
                orientation="h",
                text=[_visible(p) for p in pieces],
                textposition="inside",
                insidetextanchor="middle",
                textfont={"family": "monospace"},
                marker={"color": [PALETTE[k % len(PALETTE)] for k in range(len(pieces))], "line": {"color": "#555", "width": 1}},
                hovertemplate="%{text}<extra></extra>",
                visible=i == 0,
                name=f"{n} merges",
            )
        )
    sliders = [
        {
            "active": 0,
            "currentvalue": {"prefix": "merges: "},
            "steps": [
                {
                    "label": str(n),
                    "method": "update",
                    "args": [
                        {"visible": [j == i for j in range(len(steps))]},
                        {"title": f"after {n} merges: {len(tokenizer.prefix(n).encode(text))} tokens for {len(text)} characters"},
                    ],
                }
                for i, n in enumerate(steps)
            ],
        }
    ]
    fig.update_layout(
        sliders=sliders,
        title=f"after {steps[0]} merges: {len(tokenizer.prefix(steps[0]).encode(text))} tokens for {len(text)} characters",
        xaxis={"title": "characters", "range": [0, len(text)]},
        yaxis={"visible": False},
        height=260,
        bargap=0.3,
        showlegend=False,
    )
    return fig


def heatmap(
    z: torch.Tensor | Sequence[Sequence[float]], x: Sequence[str], y: Sequence[str], title: str = "", colorscale: str = "Blues"
) -> go.Figure:
    """A labelled heatmap with rows ``y`` and columns ``x`` (row 0 at the top)."""
    z = torch.as_tensor(z).tolist()
    fig = go.Figure(go.Heatmap(z=z, x=list(x), y=list(y), colorscale=colorscale, xgap=1, ygap=1))
    fig.update_layout(title=title, yaxis={"autorange": "reversed", "type": "category"}, xaxis={"type": "category"})
    return fig


def embedding_scatter(points: torch.Tensor, labels: Sequence[str], groups: Sequence[str], title: str = "") -> go.Figure:
    """A 2-D scatter of embeddings ``points`` of shape ``(N, 2)``, labelled, one colour per group."""
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {tuple(points.shape)}")
    fig = go.Figure()
    for g in dict.fromkeys(groups):
        idx = [i for i, gi in enumerate(groups) if gi == g]
        fig.add_trace(
            go.Scatter(
                x=points[idx, 0].tolist(),
                y=points[idx, 1].tolist(),
                mode="markers+text",
                text=[_visible(labels[i]) for i in idx],
                textposition="top center",
                name=g,
            )
        )
    fig.update_layout(title=title, xaxis_title="component 1", yaxis_title="component 2")
    return fig


def pca_2d(x: torch.Tensor) -> torch.Tensor:
    """Project rows of ``x`` ``(N, d)`` onto their first two principal components, ``(N, 2)``."""
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError(f"need at least 2 points with at least 2 dimensions, got shape {tuple(x.shape)}")
    x = x - x.mean(dim=0)
    _, _, v = torch.linalg.svd(x, full_matrices=False)
    return x @ v[:2].T


@torch.no_grad()
def attention_maps(model, ids: Sequence[int]) -> torch.Tensor:
    """Attention weights of every layer and head of a ``lmkit.transformer.GPT`` on one
    sequence of token ids: (n_layers, n_heads, T, T), rows = queries.

    Runs the model once with each attention layer keeping its weights
    (``MultiHeadAttention.keep_weights``), so the maps are those of the model's own forward pass."""
    layers = [block.attn for block in model.blocks]
    for attn in layers:
        attn.keep_weights = True
    try:
        model(torch.tensor([list(ids)]))
        return torch.stack([attn.last_weights[0] for attn in layers])
    finally:
        for attn in layers:
            attn.keep_weights, attn.last_weights = False, None


def attention_figure(maps: torch.Tensor, tokens: Sequence[str], title: str = "") -> go.Figure:
    """Heatmaps of attention weights (L, H, T, T) with a dropdown over layers and heads,
    so the static book can show every head without a kernel."""
    L, H = maps.shape[:2]
    labels = [f"{t}:{_visible(tok)}" for t, tok in enumerate(tokens)]
    fig = go.Figure()
    for layer in range(L):
        for h in range(H):
            fig.add_trace(
                go.Heatmap(
                    z=maps[layer, h].tolist(),
                    x=labels,
                    y=labels,
                    colorscale="Blues",
                    zmin=0,
                    zmax=1,
                    visible=layer == 0 and h == 0,
                    showscale=layer == 0 and h == 0,
                )
            )
    buttons = [
        {"label": f"layer {layer}, head {h}", "method": "update", "args": [{"visible": [i == layer * H + h for i in range(L * H)]}]}
        for layer in range(L)
        for h in range(H)
    ]
    # A tall top margin holds the title (in its middle, below the mode bar) and, on its
    # own line at the bottom of the margin, just above the plot, the menu: it never covers the title.
    fig.update_layout(
        title=title,
        margin={"t": 130},
        updatemenus=[{"buttons": buttons, "x": 1.0, "xanchor": "right", "y": 1.01, "yanchor": "bottom"}],
        yaxis={"autorange": "reversed", "title": "query (attends from)"},
        xaxis={"title": "key (attends to)"},
        height=680,
    )
    return fig


def text_slider(texts: Mapping[object, str], title: str, prefix: str) -> go.Figure:
    """A figure that shows one of ``texts`` (in monospace) and a slider over their keys
    that swaps the text shown: interactive in the static book, without a kernel."""
    if not texts:
        raise ValueError("give at least one text")
    keys = list(texts)

    def annotation(text: str) -> list[dict]:
        return [
            {
                "text": html.escape(text, quote=False).replace("\n", "<br>"),
                "x": 0,
                "y": 1,
                "xref": "paper",
                "yref": "paper",
                "showarrow": False,
                "align": "left",
                "xanchor": "left",
                "yanchor": "top",
                "font": {"family": "monospace", "size": 13},
            }
        ]

    fig = go.Figure()
    fig.update_layout(
        title=title,
        height=520,
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=annotation(texts[keys[0]]),
        sliders=[
            {
                "currentvalue": {"prefix": prefix},
                "steps": [{"label": str(k), "method": "relayout", "args": [{"annotations": annotation(texts[k])}]} for k in keys],
            }
        ],
    )
    return fig


def seeds_figure(series: Mapping[str, Mapping[str, Sequence[float]]], title: str, yaxis_title: str, percent: bool = False) -> go.Figure:
    """Results of runs that differ only by their seed: ``series[name][category]`` lists one
    value per seed. Each series is a colour, each category a place on the x axis; every seed
    is a dot and their mean a dash, so each difference is seen beside the seeds' spread
    (the legend names the series when there are several)."""
    if not series:
        raise ValueError("give at least one series")
    colours = plotly.colors.qualitative.Plotly
    fig = go.Figure()
    for i, (name, by_category) in enumerate(series.items()):
        if not by_category or not all(by_category.values()):
            raise ValueError(f"series {name!r} needs at least one category, each with at least one value")
        colour = colours[i % len(colours)]
        categories = list(by_category)
        common = {"mode": "markers", "legendgroup": name, "offsetgroup": name}
        fig.add_trace(
            go.Scatter(
                x=[c for c in categories for _ in by_category[c]],
                y=[v for c in categories for v in by_category[c]],
                name=name,
                marker={"color": colour, "size": 8, "opacity": 0.6},
                **common,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=categories,
                y=[statistics.fmean(by_category[c]) for c in categories],
                name=f"{name} (mean)",
                showlegend=False,
                marker={"color": colour, "symbol": "line-ew-open", "size": 26, "line": {"width": 3, "color": colour}},
                **common,
            )
        )
    fig.update_layout(
        title=title,
        scattermode="group",
        showlegend=len(series) > 1,
        yaxis={"title": yaxis_title, "tickformat": ".0%" if percent else ""},
        legend={"orientation": "h", "y": -0.15, "yanchor": "top"},
    )
    return fig


def reliability_figure(bins: Sequence[Mapping[str, float]], title: str) -> go.Figure:
    """A reliability diagram (chapter 6) of ``lmkit.analysis.reliability_bins``' output: a bar
    per bin, as wide as the bin and as high as its accuracy, labelled with its count; a dot
    at its mean confidence; and the diagonal on which a calibrated model's bars would end."""
    if not bins:
        raise ValueError("give at least one bin")
    mids = [(b["lo"] + b["hi"]) / 2 for b in bins]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=mids,
            y=[b["accuracy"] for b in bins],
            width=[b["hi"] - b["lo"] for b in bins],
            text=[str(b["count"]) for b in bins],
            textposition="outside",
            name="accuracy (bar label: answers in the bin)",
            marker={"color": PALETTE[2], "line": {"color": "#555", "width": 1}},
        )
    )
    fig.add_trace(go.Scatter(x=mids, y=[b["confidence"] for b in bins], mode="markers", name="mean confidence", marker={"size": 9}))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="calibrated", line={"dash": "dash", "color": "#888"}))
    fig.update_layout(
        title=title,
        xaxis={"title": "confidence: the probability the model gives its answer", "range": [0, 1], "tickformat": ".0%"},
        yaxis={"title": "share of answers right", "range": [0, 1.1], "tickformat": ".0%"},
        legend={"orientation": "h", "y": -0.2, "yanchor": "top"},
    )
    return fig


def accuracy_figure(series: Mapping[str, Mapping[str, Sequence[bool]]], title: str, xaxis_title: str = "") -> go.Figure:
    """Accuracies with their 95% intervals (chapter 6): ``series[name][category]`` lists whether
    each answer was right. Each series is a colour of bars, each category a place on the x
    axis; the error bars are Wilson intervals (``lmkit.baselines.accuracy_interval``), so that
    a difference can be read against what the number of answers allows."""
    from lmkit.baselines import accuracy_interval  # here, not at the top: importing lmkit.viz does not load the training code

    if not series:
        raise ValueError("give at least one series")
    fig = go.Figure()
    for name, by_category in series.items():
        if not by_category or not all(by_category.values()):
            raise ValueError(f"series {name!r} needs at least one category, each with at least one answer")
        categories = list(by_category)
        right = [sum(map(bool, by_category[c])) for c in categories]
        n = [len(by_category[c]) for c in categories]
        acc = [r / k for r, k in zip(right, n)]
        low, high = zip(*(accuracy_interval(r, k) for r, k in zip(right, n)))
        fig.add_trace(
            go.Bar(
                x=categories,
                y=acc,
                name=name,
                customdata=list(zip(right, n)),
                hovertemplate="%{x}: %{customdata[0]} of %{customdata[1]} right<extra>" + name + "</extra>",
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [h - a for h, a in zip(high, acc)],
                    "arrayminus": [a - lo for a, lo in zip(acc, low)],
                },
            )
        )
    fig.update_layout(
        title=title,
        barmode="group",
        showlegend=len(series) > 1,
        xaxis={"title": xaxis_title, "type": "category"},
        yaxis={"title": "accuracy (95% interval)", "tickformat": ".0%", "range": [0, 1.05]},
        legend={"orientation": "h", "y": -0.2, "yanchor": "top"},
    )
    return fig
