"""The "old" language technology: a bag-of-words sentiment scorer with a word list.

No training, no context: a sentence is positive when it holds more positive
than negative lexicon words. Chapter 0 measures how far this gets; later
chapters compare learned models against it on the same held-out split.
"""

from __future__ import annotations

from typing import Collection, Sequence

import regex

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
