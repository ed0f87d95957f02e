"""Tokenizers: characters, words (with ``<unk>``) and byte-level BPE.

All three share one interface: ``train(text, ...)`` returns the tokenizer,
``encode(text) -> list[int]``, ``decode(ids) -> str``, ``tokens(text) -> list[str]``
(the pieces, for display) and ``vocab_size``.
"""

from __future__ import annotations

import heapq
import json
import os
import warnings
from collections import Counter
from typing import Iterable, Protocol, Sequence

import regex

# Pre-split patterns: BPE merges never cross a chunk boundary, so words,
# numbers, punctuation and whitespace runs are merged separately.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)
UNK = "<unk>"

Pair = tuple[int, int]


class Tokenizer(Protocol):
    """What every tokenizer in the course provides."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def tokens(self, text: str) -> list[str]: ...


def _check_ids(ids: Sequence[int], vocab_size: int) -> None:
    for pos, i in enumerate(ids):
        if not 0 <= int(i) < vocab_size:
            raise ValueError(f"token id {int(i)} at position {pos} is not in the vocabulary (ids run from 0 to {vocab_size - 1})")


def _check_text(text: str, what: str = "training text") -> None:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError(f"{what} is empty")


class CharTokenizer:
    """One token per character; the vocabulary is the sorted set of characters seen in training."""

    def __init__(self, chars: Iterable[str] = ()) -> None:
        self.itos: list[str] = sorted(set(chars))
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(self.itos)}

    def train(self, text: str) -> CharTokenizer:
        _check_text(text)
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

    def decode(self, ids: Sequence[int]) -> str:
        _check_ids(ids, self.vocab_size)
        return "".join(self.itos[int(i)] for i in ids)

    def tokens(self, text: str) -> list[str]:
        return [self.itos[i] for i in self.encode(text)]


WORD_PATTERN = r"\w+|[^\w\s]"


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
        _check_text(text)
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

    def decode(self, ids: Sequence[int]) -> str:
        _check_ids(ids, self.vocab_size)
        return " ".join(self.itos[int(i)] for i in ids)

    def tokens(self, text: str) -> list[str]:
        return [w if w in self.stoi else UNK for w in self.split(text)]

    def oov_rate(self, text: str) -> float:
        """Fraction of the words of ``text`` that are not in the vocabulary."""
        ids = self.encode(text)
        if not ids:
            raise ValueError("text has no words")
        return sum(i == self.unk_id for i in ids) / len(ids)


# --- byte-pair encoding -------------------------------------------------------------


def get_pair_counts(ids: Sequence[int]) -> Counter[Pair]:
    """Count adjacent pairs: ``[1, 2, 1, 2] -> {(1, 2): 2, (2, 1): 1}``."""
    return Counter(zip(ids, ids[1:]))


def merge(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` (left to right) by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def naive_bpe_train(text: str, vocab_size: int, pattern: str | None = None) -> dict[Pair, int]:
    """Textbook BPE training: recount every pair of the whole text after each merge.

    Learns the same merges as ``BPETokenizer(pattern).train(text, vocab_size)``
    (ties go to the smallest pair) at a cost of (merges x text length): the
    yardstick that shows why the tokenizer keeps its counts up to date instead.
    """
    _check_text(text)
    if vocab_size < 256:
        raise ValueError(f"vocab_size must be at least 256, got {vocab_size}")
    pieces = regex.findall(pattern, text) if pattern is not None else [text]
    chunks = [list(p.encode("utf-8")) for p in pieces if p]
    merges: dict[Pair, int] = {}
    for new_id in range(256, vocab_size):
        counts: Counter[Pair] = Counter()
        for chunk in chunks:
            counts.update(zip(chunk, chunk[1:]))
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges[pair] = new_id
        chunks = [merge(chunk, pair, new_id) for chunk in chunks]
    return merges


class _PairIndex:
    """Token sequences as linked lists, with pair counts kept up to date as pairs merge.

    A merge visits only the positions where the pair occurs, so training costs
    about the number of merged occurrences rather than (merges x corpus size).
    Each position carries a weight: the number of times its chunk occurs in the
    corpus, so repeated chunks are stored once.
    """

    def __init__(self, chunks: dict[bytes, int]) -> None:
        self.ids: list[int] = []
        self.weight: list[int] = []
        self.next: list[int] = []
        self.prev: list[int] = []
        for chunk, count in chunks.items():
            start = len(self.ids)
            n = len(chunk)
            self.ids.extend(chunk)
            self.weight.extend([count] * n)
            self.next.extend(range(start + 1, start + n))
            self.next.append(-1)
            self.prev.append(-1)
            self.prev.extend(range(start, start + n - 1))
        self.alive = [True] * len(self.ids)
        self.counts: dict[Pair, int] = {}
        self.where: dict[Pair, set[int]] = {}
        for i, j in enumerate(self.next):
            if j != -1:
                self._add((self.ids[i], self.ids[j]), i)
        self.heap = [(-c, p) for p, c in self.counts.items()]
        heapq.heapify(self.heap)

    def _add(self, pair: Pair, pos: int) -> None:
        self.counts[pair] = self.counts.get(pair, 0) + self.weight[pos]
        self.where.setdefault(pair, set()).add(pos)

    def _remove(self, pair: Pair, pos: int) -> None:
        self.counts[pair] -= self.weight[pos]
        positions = self.where.get(pair)
        if positions is not None:
            positions.discard(pos)

    def most_frequent(self) -> tuple[Pair, int] | None:
        """The most frequent pair (ties: the smallest pair), or None if no pair is left."""
        while self.heap:
            neg, pair = self.heap[0]
            if self.counts.get(pair, 0) == -neg and neg < 0:
                return pair, -neg
            heapq.heappop(self.heap)  # stale entry: the count changed since it was pushed
        return None

    def merge(self, pair: Pair, new_id: int) -> None:
        a, b = pair
        ids, nxt, prv = self.ids, self.next, self.prev
        changed: set[Pair] = set()
        for i in sorted(self.where.pop(pair, ())):
            j = nxt[i]
            # Overlaps ("aaa" with pair (a, a)) invalidate later positions: re-check.
            if not self.alive[i] or ids[i] != a or j == -1 or ids[j] != b:
                continue
            p, n = prv[i], nxt[j]
            if p != -1:
                self._remove((ids[p], a), p)
                changed.add((ids[p], a))
            if n != -1:
                self._remove((b, ids[n]), j)
                changed.add((b, ids[n]))
            self.counts[pair] -= self.weight[i]
            ids[i] = new_id
            self.alive[j] = False
            nxt[i] = n
            if n != -1:
                prv[n] = i
                self._add((new_id, ids[n]), i)
                changed.add((new_id, ids[n]))
            if p != -1:
                self._add((ids[p], new_id), p)
                changed.add((ids[p], new_id))
        self.counts.pop(pair, None)
        for q in changed:
            c = self.counts.get(q, 0)
            if c > 0:
                heapq.heappush(self.heap, (-c, q))
            else:
                self.counts.pop(q, None)
                self.where.pop(q, None)


class BPETokenizer:
    """Byte-level byte-pair encoding, as in GPT-2.

    Text is UTF-8 encoded, so the 256 byte values are the base vocabulary and no
    string is ever out of vocabulary. Training repeatedly merges the most
    frequent adjacent pair into a new token. ``pattern`` (e.g.
    ``GPT2_SPLIT_PATTERN``) pre-splits text into chunks that merges never cross;
    ``None`` treats the text as one sequence. Special tokens (e.g.
    ``"<|endoftext|>"``) are whole tokens that are never split or merged; they
    take the last ids.
    """

    def __init__(self, pattern: str | None = None) -> None:
        self.pattern = pattern
        self._split = regex.compile(pattern) if pattern is not None else None
        self.merges: dict[Pair, int] = {}
        self.special_tokens: dict[str, int] = {}
        self._build()

    # --- state derived from merges and specials
    def _build(self) -> None:
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for (a, b), i in self.merges.items():
            self.vocab[i] = self.vocab[a] + self.vocab[b]
        self.inverse_special = {i: s for s, i in self.special_tokens.items()}
        self._special_split = (
            regex.compile("(" + "|".join(regex.escape(s) for s in sorted(self.special_tokens, key=len, reverse=True)) + ")")
            if self.special_tokens
            else None
        )
        self._cache: dict[bytes, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges) + len(self.special_tokens)

    def _chunks(self, text: str) -> list[str]:
        return self._split.findall(text) if self._split is not None else [text]

    def train(self, text: str, vocab_size: int, special_tokens: Sequence[str] = (), verbose: bool = False) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Stops early, with a warning, if the text runs out of pairs to merge.
        """
        _check_text(text)
        special_tokens = list(dict.fromkeys(special_tokens))
        if any(not s for s in special_tokens):
            raise ValueError("special tokens must be non-empty strings")
        if vocab_size < 256 + len(special_tokens):
            raise ValueError(
                f"vocab_size={vocab_size} is too small: byte-level BPE needs 256 byte tokens "
                f"plus {len(special_tokens)} special token(s)"
            )
        # Special tokens are cut out of the training text so no merge touches them.
        # Longest first, so a special token that extends another is cut out whole.
        by_length = sorted(special_tokens, key=len, reverse=True)
        pieces = regex.split("|".join(regex.escape(s) for s in by_length), text) if special_tokens else [text]
        chunks: Counter[bytes] = Counter()
        for piece in pieces:
            chunks.update(c.encode("utf-8") for c in self._chunks(piece) if c)
        index = _PairIndex(dict(chunks))
        self.merges = {}
        vocab = {i: bytes([i]) for i in range(256)}
        n_merges = vocab_size - 256 - len(special_tokens)
        for k in range(n_merges):
            best = index.most_frequent()
            if best is None:
                warnings.warn(f"training text ran out of pairs after {k} merges; vocab_size is {256 + k + len(special_tokens)}, not {vocab_size}", stacklevel=2)
                break
            pair, count = best
            new_id = 256 + k
            index.merge(pair, new_id)
            self.merges[pair] = new_id
            vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
            if verbose:
                print(f"merge {k + 1}/{n_merges}: {vocab[pair[0]]!r} + {vocab[pair[1]]!r} -> {new_id} ({count} occurrences)")
        first_special = 256 + len(self.merges)
        self.special_tokens = {s: first_special + i for i, s in enumerate(special_tokens)}
        self._build()
        return self

    def prefix(self, n_merges: int) -> BPETokenizer:
        """A copy that keeps only the first ``n_merges`` merges (no special tokens):
        the tokenizer as it was at that step of training."""
        if not 0 <= n_merges <= len(self.merges):
            raise ValueError(f"n_merges must be between 0 and {len(self.merges)}, got {n_merges}")
        tok = BPETokenizer(self.pattern)
        tok.merges = dict(list(self.merges.items())[:n_merges])
        tok._build()
        return tok

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Apply the merges in the order they were learned, lowest rank first.

        A heap of (rank, position) finds the next merge without rescanning the
        chunk, so a long chunk (no pre-split) encodes in O(n log n).
        """
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = list(chunk)
        n = len(ids)
        if n < 2 or not self.merges:
            return ids
        merges = self.merges
        nxt = list(range(1, n)) + [-1]
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = [(merges[p], i) for i, p in enumerate(zip(ids, ids[1:])) if p in merges]
        heapq.heapify(heap)
        while heap:
            rank, i = heapq.heappop(heap)
            j = nxt[i] if alive[i] else -1
            if j == -1 or merges.get((ids[i], ids[j])) != rank:
                continue  # stale: this position changed after the entry was pushed
            ids[i] = rank
            alive[j] = False
            k = nxt[j]
            nxt[i] = k
            if k != -1:
                prv[k] = i
                r = merges.get((rank, ids[k]))
                if r is not None:
                    heapq.heappush(heap, (r, i))
            p = prv[i]
            if p != -1:
                r = merges.get((ids[p], rank))
                if r is not None:
                    heapq.heappush(heap, (r, p))
        out = [t for t, live in zip(ids, alive) if live]
        if len(chunk) <= 64:  # short chunks (words) repeat a lot; long ones do not
            self._cache[chunk] = out
        return out

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        """Encode text to ids. Special-token strings in ``text`` become their ids
        (or, with ``allow_special=False``, are encoded as ordinary text)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        parts = self._special_split.split(text) if (allow_special and self._special_split is not None) else [text]
        ids: list[int] = []
        for part in parts:
            if part in self.special_tokens and allow_special:
                ids.append(self.special_tokens[part])
                continue
            for chunk in self._chunks(part):
                ids.extend(self._encode_chunk(chunk.encode("utf-8")))
        return ids

    def token_bytes(self, i: int) -> bytes:
        """The bytes that token ``i`` stands for (a special token's UTF-8 string)."""
        _check_ids([i], self.vocab_size)
        return self.inverse_special[i].encode("utf-8") if i in self.inverse_special else self.vocab[i]

    def decode(self, ids: Sequence[int]) -> str:
        """Decode ids to text; byte sequences that are not valid UTF-8 (a character
        cut in the middle) become U+FFFD."""
        _check_ids(ids, self.vocab_size)
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def tokens(self, text: str) -> list[str]:
        return [self.token_bytes(i).decode("utf-8", errors="replace") for i in self.encode(text)]

    # --- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to a JSON file."""
        state = {
            "format": "lmkit-bpe",
            "version": 1,
            "pattern": self.pattern,
            "merges": [[a, b] for (a, b) in self.merges],
            "special_tokens": self.special_tokens,
        }
        with open(path, "w", encoding="utf-8") as f:
            json.dump(state, f, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer written by ``save``."""
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        if not isinstance(state, dict) or state.get("format") != "lmkit-bpe":
            raise ValueError(f"{path} is not an lmkit BPE tokenizer file")
        if state.get("version") != 1:
            raise ValueError(f"{path} has unsupported version {state.get('version')!r}")
        tok = cls(state["pattern"])
        tok.merges = {(a, b): 256 + k for k, (a, b) in enumerate(state["merges"])}
        tok.special_tokens = {s: int(i) for s, i in state["special_tokens"].items()}
        tok._build()
        return tok
