"""Byte-pair encoding as in the textbook: short functions written to be read, not to be fast.

Taught in chapter 1 (language as data); exercise 01 asks for these same functions.
Ids 0-255 are the bytes of the UTF-8 text; merge number ``k`` makes the id ``256 + k``.
``merges`` maps each merged pair to its new id, in the order the pairs were learned.

:class:`lmkit.tokenizers.fast.BPETokenizer` learns the same merges and gives the
same encodings, but keeps its pair counts up to date instead of recounting them;
the tests hold the two to each other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import regex

from lmkit.tokenizers.base import Pair, check_text


def pair_counts(ids: Sequence[int]) -> Counter[Pair]:
    """Count adjacent pairs: ``[1, 2, 1, 2] -> {(1, 2): 2, (2, 1): 1}``."""
    return Counter(zip(ids, ids[1:]))


def merge_pair(ids: Sequence[int], pair: Pair, new_id: int) -> list[int]:
    """A new list with every occurrence of ``pair``, scanning left to right (no overlaps), replaced by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _chunks(text: str, pattern: str | None) -> list[str]:
    return regex.findall(pattern, text) if pattern is not None else [text]


def bpe_train(text: str, vocab_size: int, pattern: str | None = None) -> dict[Pair, int]:
    """Learn ``vocab_size - 256`` merges: recount every pair after each merge, merge the
    most frequent one (ties: the smallest pair). Stops early when no pair is left.

    ``pattern`` (e.g. ``GPT2_SPLIT_PATTERN``) cuts the text into chunks that merges
    never cross. The cost is (merges x text length): the yardstick that shows why
    ``BPETokenizer.train`` keeps its counts up to date instead.
    """
    check_text(text)
    if vocab_size < 256:
        raise ValueError(f"vocab_size must be at least 256, got {vocab_size}")
    chunks = [list(c.encode("utf-8")) for c in _chunks(text, pattern) if c]
    merges: dict[Pair, int] = {}
    for new_id in range(256, vocab_size):
        counts: Counter[Pair] = Counter()
        for chunk in chunks:  # pairs within each chunk, never across two
            counts.update(zip(chunk, chunk[1:]))
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges[pair] = new_id
        chunks = [merge_pair(chunk, pair, new_id) for chunk in chunks]
    return merges


def bpe_encode(text: str, merges: dict[Pair, int], pattern: str | None = None) -> list[int]:
    """The ids of ``text``: in each chunk, merge the earliest-learned pair present, again and again."""
    out: list[int] = []
    for chunk in _chunks(text, pattern):
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            learned = [p for p in pair_counts(ids) if p in merges]
            if not learned:
                break
            pair = min(learned, key=merges.__getitem__)
            ids = merge_pair(ids, pair, merges[pair])
        out.extend(ids)
    return out


def bpe_decode(ids: Sequence[int], merges: dict[Pair, int]) -> str:
    """The text of ``ids``: join the bytes of all tokens, then decode once (a character
    may be cut between tokens); bytes that are not valid UTF-8 become U+FFFD."""
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), new_id in merges.items():
        vocab[new_id] = vocab[a] + vocab[b]
    for pos, i in enumerate(ids):
        if i not in vocab:
            raise ValueError(f"token id {i} at position {pos} is neither a byte (0-255) nor made by one of the {len(merges)} merges")
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")
