"""Characters and words: the two simplest tokenizers, and what each one costs.

Taught in chapter 1 (language as data); exercise 01 builds both from scratch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import regex

from lmkit.tokenizers.base import check_ids, check_text, pieces

UNK = "<unk>"
WORD_PATTERN = r"\w+|[^\w\s]"
_LAST_SPACE = regex.compile(r"(?r)\s")


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters seen in training."""

    def __init__(self, chars: Iterable[str] = ()) -> None:
        self.itos: list[str] = sorted(set(chars))
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.itos)}

    def train(self, text: str) -> CharTokenizer:
        check_text(text)
        self.__init__(text)  # type: ignore[misc]
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            pos = next(p for p, c in enumerate(text) if c not in self.stoi)
            c = text[pos]
            raise ValueError(
                f"character {c!r} (U+{ord(c):04X}) at position {pos} was never seen in training; "
                f"the vocabulary has {self.vocab_size} characters"
            ) from None

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """The ids of ``"".join(lines)``, one line at a time: characters need no look-ahead."""
        for line in pieces(lines):
            yield from self.encode(line)

    def decode(self, ids: Sequence[int]) -> str:
        check_ids(ids, self.vocab_size)
        return "".join(self.itos[int(i)] for i in ids)

    def tokens(self, text: str) -> list[str]:
        return [self.itos[i] for i in self.encode(text)]


class WordTokenizer:
    """One token per word or punctuation mark; rare and unseen words become ``<unk>``.

    Whitespace is not kept, so ``decode`` joins tokens with single spaces: word
    tokenization loses information, one of its costs.
    """

    def __init__(self, vocab: Sequence[str] = (UNK,), lowercase: bool = False) -> None:
        if not vocab or vocab[0] != UNK:
            raise ValueError(f"the first vocabulary entry must be {UNK!r}")
        self.lowercase = lowercase
        self.itos: list[str] = list(vocab)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("vocabulary entries must be unique")

    def split(self, text: str) -> list[str]:
        """Split text into words and punctuation marks (lower-cased if configured)."""
        if self.lowercase:
            text = text.lower()
        return regex.findall(WORD_PATTERN, text)

    def train(self, text: str, vocab_size: int | None = None, min_count: int = 1) -> WordTokenizer:
        """Keep the ``vocab_size - 1`` most frequent words (ties broken alphabetically), plus ``<unk>``.

        ``vocab_size=None`` keeps every word seen at least ``min_count`` times.
        """
        check_text(text)
        if vocab_size is not None and vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2 (<unk> and one word), got {vocab_size}")
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        counts = Counter(self.split(text))
        counts.pop(UNK, None)
        words = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if vocab_size is not None:
            words = words[: vocab_size - 1]
        self.__init__([UNK, *words], lowercase=self.lowercase)  # type: ignore[misc]
        return self

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    @property
    def unk_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(w, self.unk_id) for w in self.split(text)]

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]:
        """The ids of ``"".join(lines)``, holding back only the text after the last whitespace:
        no word or mark contains whitespace, so the text before it is settled."""
        buf = ""
        for line in pieces(lines):
            buf += line
            last_space = _LAST_SPACE.search(buf)
            if last_space is not None:
                yield from self.encode(buf[: last_space.start()])
                buf = buf[last_space.start() :]
        yield from self.encode(buf)

    def decode(self, ids: Sequence[int]) -> str:
        check_ids(ids, self.vocab_size)
        return " ".join(self.itos[int(i)] for i in ids)

    def tokens(self, text: str) -> list[str]:
        return [w if w in self.stoi else UNK for w in self.split(text)]

    def oov_rate(self, text: str) -> float:
        """Fraction of the words of ``text`` that are not in the vocabulary."""
        ids = self.encode(text)
        if not ids:
            raise ValueError("text has no words")
        return sum(i == self.unk_id for i in ids) / len(ids)
