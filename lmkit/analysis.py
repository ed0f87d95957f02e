"""Measures of what a language model's outputs show, computed from the outputs alone.

Taught in chapter 6 (what language models learn, and where they fail); exercise 06
writes its own ``expected_calibration_error`` and ``longest_copied_span``. No model
is run here: ``lmkit.failures`` produces the outputs, these functions measure them.

- calibration: ``reliability_bins`` and ``expected_calibration_error`` compare the
  probability a model gives its answers with how often those answers are right;
- memorisation: ``longest_copied_span`` and ``ngram_overlap`` compare a text with the
  training text;
- form: ``real_word_share``, ``line_lengths`` and ``punctuation_rate`` compare a sample
  with real text;
- loops: ``repeated_share`` and ``distinct_ngram_ratio`` measure how much a text repeats
  itself.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence

import torch

PUNCTUATION = "!,.:;?'-&$"  # the corpus's characters other than letters, digits and whitespace
_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)*")  # letters, with inner apostrophes: "know't", "o'er"


def _flat(values: Sequence | torch.Tensor, name: str) -> list[float]:
    if isinstance(values, torch.Tensor):
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(values.shape)}")
        values = values.tolist()
    return [float(v) for v in values]


def _checked(confidence: Sequence | torch.Tensor, correct: Sequence | torch.Tensor, n_bins: int) -> tuple[list[float], list[float]]:
    conf, right = _flat(confidence, "confidence"), _flat(correct, "correct")
    if not conf:
        raise ValueError("no predictions: confidence and correct are empty")
    if len(conf) != len(right):
        raise ValueError(f"confidence has {len(conf)} values but correct has {len(right)}")
    if any(not 0.0 <= c <= 1.0 for c in conf):  # also rejects NaN
        raise ValueError("confidence values must lie in [0, 1]")
    if any(r not in (0.0, 1.0) for r in right):
        raise ValueError("correct values must be booleans or 0/1")
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    return conf, right


def reliability_bins(confidence: Sequence | torch.Tensor, correct: Sequence | torch.Tensor, n_bins: int = 10) -> list[dict]:
    """The predictions grouped by confidence into ``n_bins`` equal-width bins over [0, 1]:
    one dict per non-empty bin, in bin order, with the bin's edges ``lo`` and ``hi``, its
    ``count``, and the mean ``confidence`` and ``accuracy`` of its predictions.

    Confidence ``c`` falls in bin ``min(int(c * n_bins), n_bins - 1)``: bins include their
    lower edge, and ``c = 1`` joins the last bin. A calibrated model has accuracy close to
    confidence in every bin.
    """
    conf, right = _checked(confidence, correct, n_bins)
    members: dict[int, list[int]] = {}
    for i, c in enumerate(conf):
        members.setdefault(min(int(c * n_bins), n_bins - 1), []).append(i)
    return [
        {
            "lo": b / n_bins,
            "hi": (b + 1) / n_bins,
            "count": len(idx),
            "confidence": sum(conf[i] for i in idx) / len(idx),
            "accuracy": sum(right[i] for i in idx) / len(idx),
        }
        for b, idx in sorted(members.items())
    ]


def expected_calibration_error(confidence: Sequence | torch.Tensor, correct: Sequence | torch.Tensor, n_bins: int = 10) -> float:
    """The gap between confidence and accuracy, bin by bin (``reliability_bins``), averaged
    with each bin weighted by its share of the predictions: 0 for a calibrated model, up to 1."""
    bins = reliability_bins(confidence, correct, n_bins)
    n = sum(b["count"] for b in bins)
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins)


def longest_copied_span(text: str, source: str) -> tuple[int, int]:
    """``(length, start)`` of the longest substring of ``text`` that occurs somewhere in
    ``source``, the earliest such start on a tie; ``(0, 0)`` when no character of ``text``
    occurs in ``source``.

    One pass over the starts, growing the best length found so far: a start is extended
    only while it beats the best, and every substring of a copied span is itself copied,
    so no start needs a second look. About ``len(text)`` searches of ``source``.
    """
    if not text:
        raise ValueError("text is empty: there is no span to look for")
    best, where = 0, 0
    for start in range(len(text)):
        if start + best >= len(text):  # no later start can be longer
            break
        while start + best < len(text) and text[start : start + best + 1] in source:
            best, where = best + 1, start
    return best, where


def ngram_overlap(text: str, source: str, n: int) -> float:
    """The share of ``text``'s character n-grams (one at every start 0 .. len(text) - n)
    that occur somewhere in ``source``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if len(text) < n:
        raise ValueError(f"the text has {len(text)} characters, fewer than n={n}")
    starts = range(len(text) - n + 1)
    return sum(text[i : i + n] in source for i in starts) / len(starts)


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased: runs of letters, with apostrophes inside a word kept."""
    return [w.lower() for w in _WORD.findall(text)]


def real_word_share(text: str, vocabulary: Collection[str]) -> float:
    """The share of ``text``'s words (``words``) that are in ``vocabulary`` (lower-case words)."""
    found = words(text)
    if not found:
        raise ValueError("the text has no words")
    return sum(w in vocabulary for w in found) / len(found)


def line_lengths(text: str) -> list[int]:
    """Characters of each non-empty line of ``text``."""
    return [len(line) for line in text.split("\n") if line.strip()]


def punctuation_rate(text: str) -> float:
    """Punctuation marks (``PUNCTUATION``) per character of ``text`` that is not whitespace."""
    visible = [c for c in text if not c.isspace()]
    if not visible:
        raise ValueError("the text has no visible characters")
    return sum(c in PUNCTUATION for c in visible) / len(visible)


def _ngrams(text: str, n: int) -> list[str]:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if len(text) < n:
        raise ValueError(f"the text has {len(text)} characters, fewer than n={n}")
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def distinct_ngram_ratio(text: str, n: int) -> float:
    """Distinct character n-grams of ``text`` over all of them: 1 when none repeats, near
    0 for a text that loops on a short phrase."""
    grams = _ngrams(text, n)
    return len(set(grams)) / len(grams)


def repeated_share(text: str, n: int = 20) -> float:
    """The share of ``text``'s characters covered by an n-gram that occurs more than once
    in ``text``: 0 for a text that never repeats ``n`` characters, 1 for one that is a
    loop from start to end. With ``n`` around 20, written prose scores near 0 (a repeat
    of 20 characters is rare within a page), a model stuck in a loop near 1."""
    grams = _ngrams(text, n)
    seen = Counter(grams)
    covered = [False] * len(text)
    for i, g in enumerate(grams):
        if seen[g] > 1:
            covered[i : i + n] = [True] * n
    return sum(covered) / len(text)
