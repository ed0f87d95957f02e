"""Baselines that learn nothing or only count. Taught in chapter 0 (introduction).

- A bag-of-words sentiment scorer with a word list: no training, no context, a
  sentence is positive when it holds more positive than negative lexicon words.
  Chapter 0 measures how far this gets; later chapters compare learned models
  against it on the same held-out split.
- A bigram language model by counting (``BigramLM``): chapter 0 samples from it,
  chapter 4 puts it on the ladder of every model of the course.
- What it takes to compare a learned model with them fairly: a confidence
  interval for an accuracy (``accuracy_interval``), a paired bootstrap for the
  difference of two classifiers on the same sentences (``paired_bootstrap``), and
  the sentiment LSTM of chapter 2 trained and scored in one call
  (``train_sentiment_lstm``, ``predict_sentiment``), with the words of every
  sentence optionally shuffled, to test whether it uses their order.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import regex
import torch

from lmkit.data import Example, load_sentiment, train_val_split
from lmkit.rnn import SequenceClassifier
from lmkit.tokenizers import WordTokenizer
from lmkit.train import History, TrainConfig, train

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


def accuracy_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for an accuracy of ``correct`` out of ``n`` (95% for z = 1.96):
    the range of true accuracies that the sample is compatible with."""
    if n < 1 or not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n and n >= 1, got correct={correct}, n={n}")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # clamped: rounding can put an end a hair outside [0, 1] (-1e-17 for correct = 0)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_bootstrap(a: Sequence[int], b: Sequence[int], n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of mean(a) - mean(b), resampling the same items for both.

    ``a`` and ``b`` score the same items for two classifiers (1 right, 0 wrong, or a
    fraction: the share of seeds that got the item right); pairing removes the items'
    own difficulty from the comparison.
    """
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"need two non-empty sequences of equal length, got {len(a)} and {len(b)}")
    diff = torch.tensor(a, dtype=torch.float64) - torch.tensor(b, dtype=torch.float64)
    idx = torch.randint(len(diff), (n_boot, len(diff)), generator=torch.Generator().manual_seed(seed))
    means = diff[idx].mean(dim=1)
    return means.quantile(0.025).item(), means.quantile(0.975).item()


# The chapter 2 sentiment classifier: an LSTM over words, 300 steps of batches of 32.
SENTIMENT_TRAIN = TrainConfig(steps=300, lr=3e-3, weight_decay=0.1, eval_every=300, eval_batches=1, progress=False)


def sentiment_words(examples: Sequence[Example]) -> WordTokenizer:
    """The word vocabulary of the sentiment classifier: lower-cased words seen twice in ``examples``."""
    return WordTokenizer(lowercase=True).train(" ".join(ex.text for ex in examples), min_count=2)


def pad_sentences(
    examples: Sequence[Example], words: WordTokenizer, shuffle: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids padded with 0 into (B, T_max), the lengths (B,) and the labels (B,).

    With a ``shuffle`` generator, the tokens of each sentence are put in a random order
    (the same bag of words, its order destroyed).
    """
    ids = [torch.tensor(words.encode(ex.text) or [words.unk_id]) for ex in examples]
    if shuffle is not None:
        ids = [i[torch.randperm(len(i), generator=shuffle)] for i in ids]
    lengths = torch.tensor([len(i) for i in ids])
    labels = torch.tensor([ex.label for ex in examples])
    return torch.nn.utils.rnn.pad_sequence(ids, batch_first=True), lengths, labels


def train_sentiment_lstm(
    examples: Sequence[Example],
    words: WordTokenizer,
    seed: int = 0,
    shuffle_words: bool = False,
    config: TrainConfig = SENTIMENT_TRAIN,
) -> tuple[SequenceClassifier, History]:
    """Chapter 2's many-to-one LSTM (32-dim embeddings, 64 units), trained on ``examples``
    with ``lmkit.train.train``; ``seed`` sets the initial weights and the batches.
    ``shuffle_words`` trains on sentences whose words were put in a random order."""
    X, L, Y = pad_sentences(examples, words, torch.Generator().manual_seed(seed) if shuffle_words else None)
    batches = torch.Generator().manual_seed(seed)

    def batch(split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(X), (32,), generator=batches)  # "val" is scored on training batches too
        return X[idx][:, : L[idx].max()], L[idx], Y[idx]

    torch.manual_seed(seed)
    model = SequenceClassifier(words.vocab_size, n_classes=2, embed_dim=32, hidden_size=64)
    history = train(model, batch, config)
    return model.eval(), history


@torch.no_grad()
def predict_sentiment(
    model: SequenceClassifier, words: WordTokenizer, examples: Sequence[Example], shuffle: torch.Generator | None = None
) -> list[int]:
    """The classifier's label (0 or 1) for each example, its words shuffled with ``shuffle`` if given."""
    X, L, _ = pad_sentences(examples, words, shuffle)
    return model(X, L)[0].argmax(dim=-1).tolist()


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
