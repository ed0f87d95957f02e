"""Bundled corpora and data sets, train/val splits and batches.

Taught in chapter 1 (language as data); the character streams and batches are
used by chapters 2-4.

Everything is read from ``lmkit/datasets/`` inside the package: nothing is
downloaded, so the course works offline.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal, TypeVar

import torch

from lmkit.tokenizers import CharTokenizer

SentimentSource = Literal["amazon", "imdb", "yelp"]
SENTIMENT_SOURCES: tuple[SentimentSource, ...] = ("amazon", "imdb", "yelp")
_SENTIMENT_FILES = {
    "amazon": "amazon_cells_labelled.txt",
    "imdb": "imdb_labelled.txt",
    "yelp": "yelp_labelled.txt",
}

S = TypeVar("S", bound=Sequence)


def _read(*parts: str) -> str:
    return resources.files("lmkit").joinpath("datasets/" + "/".join(parts)).read_text(encoding="utf-8")


@cache
def load_shakespeare() -> str:
    """Return the tiny Shakespeare corpus (1,115,394 ASCII characters)."""
    return _read("tinyshakespeare.txt")


@dataclass(frozen=True)
class Example:
    """One labelled sentence: ``label`` is 1 (positive) or 0 (negative)."""

    text: str
    label: int
    source: SentimentSource


def load_sentiment(sources: SentimentSource | Sequence[SentimentSource] = SENTIMENT_SOURCES) -> list[Example]:
    """Return the labelled sentences of the given sources, in file order.

    Each source has 1000 sentences, 500 positive and 500 negative.
    """
    if isinstance(sources, str):
        sources = (sources,)
    examples = []
    for source in sources:
        if source not in _SENTIMENT_FILES:
            raise ValueError(f"unknown sentiment source {source!r}; choose from {SENTIMENT_SOURCES}")
        for line in _read("sentiment", _SENTIMENT_FILES[source]).splitlines():
            if not line.strip():
                continue
            # Split on the last tab: sentences may contain quotes, so no CSV reader.
            text, label = line.rsplit("\t", 1)
            examples.append(Example(text.strip(), int(label), source))
    return examples


@cache
def load_lexicon() -> tuple[frozenset[str], frozenset[str]]:
    """Return the Hu & Liu opinion lexicon as ``(positive_words, negative_words)``."""

    def words(name: str) -> frozenset[str]:
        return frozenset(w.strip() for w in _read("sentiment", name).splitlines() if w.strip())

    return words("positive-words.txt"), words("negative-words.txt")


def train_val_split(data: S, val_fraction: float = 0.1, seed: int | None = None) -> tuple[S, S]:
    """Split a sequence (text, list, tensor) into ``(train, val)``.

    With ``seed=None`` the split is contiguous (the first ``1 - val_fraction``
    for training), as for a corpus, where shuffling would leak neighbouring text
    into validation. With a seed, the items are shuffled first (deterministic
    for a given seed), as for a data set of independent examples; the result
    is then a list.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    n = len(data)
    n_train = int(round(n * (1.0 - val_fraction)))
    if n_train == 0 or n_train == n:
        raise ValueError(f"cannot split {n} items with val_fraction={val_fraction}: one side would be empty")
    if seed is not None:
        items = list(data)
        random.Random(seed).shuffle(items)
        return items[:n_train], items[n_train:]  # type: ignore[return-value]
    return data[:n_train], data[n_train:]  # type: ignore[return-value]


def get_batch(
    data: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample a batch of random windows of a token stream for next-token prediction.

    Args:
        data: 1-D integer tensor of token ids, shape ``(N,)``.
        block_size: context length ``T``.
        batch_size: number of windows ``B``.
        generator: a seeded ``torch.Generator`` for reproducible batches.

    Returns:
        ``(x, y)``, both int64 of shape ``(B, T)``, with ``y[b, t] == x[b, t + 1]``
        inside a window: the target is always the next token.
    """
    if data.ndim != 1:
        raise ValueError(f"data must be a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if data.dtype.is_floating_point or data.dtype == torch.bool:
        raise ValueError(f"data must hold integer token ids, got dtype {data.dtype}")
    if block_size < 1 or batch_size < 1:
        raise ValueError(f"block_size and batch_size must be positive, got {block_size} and {batch_size}")
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens; need more than block_size={block_size}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    return windows(data, starts, block_size)


def windows(data: torch.Tensor, starts: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The windows of ``block_size`` tokens of the stream ``data`` (N,) that begin at
    ``starts`` (B,), and their next tokens: ``(x, y)``, int64 of shape (B, T) with
    ``y[b, t] == data[starts[b] + t + 1]``."""
    offsets = torch.arange(block_size)
    x = data[starts[:, None] + offsets].long()  # (B, T)
    y = data[starts[:, None] + offsets + 1].long()  # (B, T)
    return x, y


def char_data() -> tuple[CharTokenizer, torch.Tensor, torch.Tensor]:
    """The corpus as characters: its tokenizer and the 90/10 train/val token streams
    that chapters 2-4 and the shipped models use."""
    text = load_shakespeare()
    tokenizer = CharTokenizer().train(text)
    data = torch.tensor(tokenizer.encode(text))
    train_data, val_data = train_val_split(data, val_fraction=0.1)
    return tokenizer, train_data, val_data
