"""Byte-level BPE made fast: a pair index for training, a heap for encoding, streaming input.

Taught in chapter 1 (language as data), which trains it on the whole corpus. The
algorithm is the textbook one of :mod:`lmkit.tokenizers.bpe` (same merges, same
encodings); what changes is the bookkeeping: training keeps its pair counts up to
date instead of recounting them, and encoding finds the next merge with a heap.
"""

from __future__ import annotations

import heapq
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import regex

from lmkit.tokenizers.base import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, Pair, check_ids, check_text, pieces


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


# Where a letter meets a non-letter, or a digit a non-digit, the GPT-2 and GPT-4
# patterns always end a chunk, and no match tried before that point reads past the
# character after it (every alternative stops at the end of its run; a contraction
# such as "'ll" lies inside the run). So the chunks before such a point are settled,
# whatever text comes next. (?r) searches from the end: the last settled point.
_SETTLED = regex.compile(r"(?r)(?<=\p{L})\P{L}|(?<=\p{N})\P{N}")
_STREAMABLE = (GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN)


class BPETokenizer:
    """Byte-level byte-pair encoding, as in GPT-2.

    Text is UTF-8 encoded, so the 256 byte values are the base vocabulary and no
    string is ever out of vocabulary. Training repeatedly merges the most
    frequent adjacent pair into a new token. ``pattern`` (e.g.
    ``GPT2_SPLIT_PATTERN``) pre-splits text into chunks that merges never cross;
    ``None`` treats the text as one sequence. Special tokens (e.g.
    ``"<|endoftext|>"``) are whole tokens that are never split or merged.

    Ids: ``train`` numbers the bytes by value (0-255), merge ``k`` as ``256 + k``
    and the special tokens last. A tokenizer read from GPT-2 files
    (:func:`lmkit.tokenizers.load_gpt2`) keeps the numbering of the files:
    ``byte_ids[b]`` is the id of byte ``b``. Either way merged ids increase in the
    order the merges were learned, because the encoder applies merges by id.
    """

    def __init__(self, pattern: str | None = None) -> None:
        self.pattern = pattern
        self._split = regex.compile(pattern) if pattern is not None else None
        self.byte_ids: list[int] = list(range(256))
        self.merges: dict[Pair, int] = {}
        self.special_tokens: dict[str, int] = {}
        self._build()

    # --- state derived from byte ids, merges and specials
    def _build(self) -> None:
        self.vocab: dict[int, bytes] = {i: bytes([b]) for b, i in enumerate(self.byte_ids)}
        for (a, b), i in self.merges.items():
            self.vocab[i] = self.vocab[a] + self.vocab[b]
        self._byte_table = None if self.byte_ids == list(range(256)) else list(self.byte_ids)
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

    def _numbered_as_trained(self, n_merges: int) -> bool:
        """Whether the bytes and the first ``n_merges`` merges have the ids ``train`` gives them."""
        merged = [i for _, i in zip(range(n_merges), self.merges.values())]
        return max(self.byte_ids) < 256 and merged == list(range(256, 256 + n_merges))

    def _chunks(self, text: str) -> list[str]:
        return self._split.findall(text) if self._split is not None else [text]

    def train(self, text: str, vocab_size: int, special_tokens: Sequence[str] = (), verbose: bool = False) -> BPETokenizer:
        """Learn ``vocab_size - 256 - len(special_tokens)`` merges from ``text``.

        Stops early, with a warning, if the text runs out of pairs to merge.
        """
        check_text(text)
        special_tokens = list(dict.fromkeys(special_tokens))
        if any(not s for s in special_tokens):
            raise ValueError("special tokens must be non-empty strings")
        if vocab_size < 256 + len(special_tokens):
            raise ValueError(
                f"vocab_size={vocab_size} is too small: byte-level BPE needs 256 byte tokens plus {len(special_tokens)} special token(s)"
            )
        # Special tokens are cut out of the training text so no merge touches them.
        # Longest first, so a special token that extends another is cut out whole.
        by_length = sorted(special_tokens, key=len, reverse=True)
        parts = regex.split("|".join(regex.escape(s) for s in by_length), text) if special_tokens else [text]
        chunks: Counter[bytes] = Counter()
        for part in parts:
            chunks.update(c.encode("utf-8") for c in self._chunks(part) if c)
        index = _PairIndex(dict(chunks))
        self.byte_ids = list(range(256))
        self.merges = {}
        vocab = {i: bytes([i]) for i in range(256)}
        n_merges = vocab_size - 256 - len(special_tokens)
        for k in range(n_merges):
            best = index.most_frequent()
            if best is None:
                warnings.warn(
                    f"training text ran out of pairs after {k} merges; vocab_size is {256 + k + len(special_tokens)}, not {vocab_size}",
                    stacklevel=2,
                )
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
        if not self._numbered_as_trained(n_merges):
            raise ValueError("prefix needs the bytes at ids 0-255 and merge k at id 256 + k; this tokenizer's files number them otherwise")
        tok = BPETokenizer(self.pattern)
        tok.byte_ids = list(self.byte_ids)
        tok.merges = dict(list(self.merges.items())[:n_merges])
        tok._build()
        return tok

    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Apply the merges in the order they were learned, lowest id first.

        A heap of (id, position) finds the next merge without rescanning the
        chunk, so a long chunk (no pre-split) encodes in O(n log n).
        """
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = list(chunk) if self._byte_table is None else [self._byte_table[b] for b in chunk]
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

    def _encode_ordinary(self, text: str) -> list[int]:
        """Encode text in which no special token is looked for."""
        ids: list[int] = []
        for chunk in self._chunks(text):
            ids.extend(self._encode_chunk(chunk.encode("utf-8")))
        return ids

    def encode(self, text: str, allow_special: bool = True) -> list[int]:
        """Encode text to ids. Special-token strings in ``text`` become their ids
        (or, with ``allow_special=False``, are encoded as ordinary text)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not allow_special or self._special_split is None:
            return self._encode_ordinary(text)
        ids: list[int] = []
        for part in self._special_split.split(text):
            if part in self.special_tokens:
                ids.append(self.special_tokens[part])
            else:
                ids.extend(self._encode_ordinary(part))
        return ids

    def encode_iterable(self, lines: Iterable[str], allow_special: bool = True) -> Iterator[int]:
        """Encode a text file (or any iterable of strings) as it is read: yields
        exactly the ids of ``encode("".join(lines))``.

        Text is held back until the chunks in it are settled: a pre-split chunk may
        span lines (``"a\\n\\n"`` is one chunk under GPT-2's pattern) and a special
        token may be cut between two lines. With ``GPT2_SPLIT_PATTERN`` or
        ``GPT4_SPLIT_PATTERN`` what is held back is the text since the last end of a
        word or number, plus one line: memory stays bounded. With no pattern the
        whole text between special tokens is one chunk, and with another pattern
        lmkit does not know where its chunks are settled: then that whole text is held.
        """
        specials = self._special_split if allow_special else None
        longest = max(map(len, self.special_tokens)) if specials is not None else 0
        settled = _SETTLED if self.pattern in _STREAMABLE else None
        buf = ""
        for line in pieces(lines):
            # Everything before `start` was searched with the previous line: nothing was missed there.
            start = max(0, len(buf) - longest)
            buf += line
            while specials is not None:
                found = specials.search(buf, start)
                # Settled only if every special token that could start at or before it fits in buf.
                if found is None or found.start() + longest > len(buf):
                    break
                yield from self._encode_ordinary(buf[: found.start()])
                yield self.special_tokens[found.group()]
                buf, start = buf[found.end() :], 0
            if settled is not None:
                # No special token starts before len(buf) - longest + 1, and a settled point needs the character after it.
                limit = min(len(buf) - longest + 1, len(buf) - 1)
                point = settled.search(buf, start, limit + 1) if limit >= start else None
                if point is not None:
                    yield from self._encode_ordinary(buf[: point.start()])
                    buf = buf[point.start() :]
        yield from self.encode(buf, allow_special)

    def token_bytes(self, i: int) -> bytes:
        """The bytes that token ``i`` stands for (a special token's UTF-8 string)."""
        check_ids([i], self.vocab_size)
        return self.inverse_special[i].encode("utf-8") if i in self.inverse_special else self.vocab[i]

    def decode(self, ids: Sequence[int]) -> str:
        """Decode ids to text; byte sequences that are not valid UTF-8 (a character
        cut in the middle) become U+FFFD."""
        check_ids(ids, self.vocab_size)
        return b"".join(self.token_bytes(int(i)) for i in ids).decode("utf-8", errors="replace")

    def tokens(self, text: str) -> list[str]:
        return [self.token_bytes(i).decode("utf-8", errors="replace") for i in self.encode(text)]

    # --- persistence (GPT-2's file format: lmkit.tokenizers.gpt2)
    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer to a JSON file."""
        if not self._numbered_as_trained(len(self.merges)):
            raise ValueError(
                "this tokenizer keeps the ids of the GPT-2 files it was read from, which this format cannot record: use save_gpt2"
            )
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
