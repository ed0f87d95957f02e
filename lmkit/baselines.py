"""Baselines that learn nothing or only count. Taught in chapter 0 (introduction).

- A bag-of-words sentiment scorer with a word list: no training, no context, a
  sentence is positive when it holds more positive than negative lexicon words.
  Chapter 0 measures how far this gets; later chapters compare learned models
  against it on the same held-out split.
- A bigram language model by counting (``BigramLM``): chapter 0 samples from it,
  chapter 4 puts it on the ladder of every model of the course.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import regex
import torch

from lmkit.data import Example, load_sentiment, train_val_split

WORD = regex.compile(r"[a-z0-9'-]+")


def bow_tokenize(text: str) -> list[str]:
    """Lower-case ``text`` and return its runs of letters, digits, apostrophes and hyphens."""
    return WORD.findall(text.lower())


def lexicon_score(tokens: Sequence[str], positive: Collection[str], negative: Collection[str]) -> int:
    """Number of positive minus number of negative tokens (repeats count every time)."""
    return sum(t in positive for t in tokens) - sum(t in negative for t in tokens)


def lexicon_predict(text: str, positive: Collection[str], negative: Collection[str], default: int = 1) -> int:
    """1 if the score is positive, 0 if negative, ``default`` on a tie (e.g. no lexicon word)."""
    score = lexicon_score(bow_tokenize(text), positive, negative)
    return 1 if score > 0 else 0 if score < 0 else default


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Fraction of predictions equal to their label."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("cannot compute accuracy of zero examples")
    return sum(int(p) == int(y) for p, y in zip(predictions, labels)) / len(labels)


def sentiment_split(val_fraction: float = 0.2, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """The course's fixed train/held-out split of all 3000 sentiment sentences.

    Every chapter that classifies sentiment evaluates on this same held-out set.
    """
    return train_val_split(load_sentiment(), val_fraction=val_fraction, seed=seed)


class BigramLM:
    """A language model that predicts the next token from the current one only, by
    counting: ``probs[a, b]`` is p(next = b | current = a), estimated from the pairs of
    a token stream with add-one smoothing, so that no probability is exactly 0."""

    def __init__(self, vocab_size: int) -> None:
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.vocab_size = vocab_size
        self.probs = torch.full((vocab_size, vocab_size), 1.0 / vocab_size)  # before counting: uniform

    def fit(self, ids: torch.Tensor) -> BigramLM:
        """Count the pairs of consecutive ids of the 1-D stream ``ids``; returns self."""
        ids = self._check(ids)
        counts = torch.ones(self.vocab_size, self.vocab_size)  # add-one smoothing
        counts.index_put_((ids[:-1], ids[1:]), torch.ones(len(ids) - 1), accumulate=True)
        self.probs = counts / counts.sum(dim=1, keepdim=True)  # row a: p(next | current = a)
        return self

    def bits(self, ids: torch.Tensor) -> float:
        """Mean bits per token to encode ``ids[1:]``, each given the one before it."""
        ids = self._check(ids)
        return -torch.log2(self.probs[ids[:-1], ids[1:]]).mean().item()

    def sample(self, first: int, n: int, generator: torch.Generator | None = None) -> list[int]:
        """``n`` ids drawn one after another, starting after the id ``first``."""
        if not 0 <= first < self.vocab_size:
            raise ValueError(f"first must be an id in [0, {self.vocab_size}), got {first}")
        out, current = [], first
        for _ in range(n):
            current = int(torch.multinomial(self.probs[current], 1, generator=generator))
            out.append(current)
        return out

    def _check(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 1 or len(ids) < 2:
            raise ValueError(f"need a 1-D stream of at least 2 token ids, got shape {tuple(ids.shape)}")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ValueError(f"ids must be integer token ids, got dtype {ids.dtype}")
        if ids.min() < 0 or ids.max() >= self.vocab_size:
            raise ValueError(f"ids must lie in [0, {self.vocab_size}), got values from {int(ids.min())} to {int(ids.max())}")
        return ids.long()
