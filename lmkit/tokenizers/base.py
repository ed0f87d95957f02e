"""What every tokenizer shares: the interface, the pre-split patterns, the checks of input.

Taught in chapter 1 (language as data).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

# Pre-split patterns: BPE merges never cross a chunk boundary, so words,
# numbers, punctuation and whitespace runs are merged separately.
GPT2_SPLIT_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""

Pair = tuple[int, int]


class Tokenizer(Protocol):
    """What every tokenizer in the course provides."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def encode_iterable(self, lines: Iterable[str]) -> Iterator[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def tokens(self, text: str) -> list[str]: ...


def check_ids(ids: Sequence[int], vocab_size: int) -> None:
    for pos, i in enumerate(ids):
        if not 0 <= int(i) < vocab_size:
            raise ValueError(f"token id {int(i)} at position {pos} is not in the vocabulary (ids run from 0 to {vocab_size - 1})")


def check_text(text: str, what: str = "training text") -> None:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError(f"{what} is empty")


def pieces(lines: Iterable[str]) -> Iterator[str]:
    """The strings of ``lines``, each checked to be a str (a file opened in binary mode is not)."""
    for k, line in enumerate(lines):
        if not isinstance(line, str):
            raise TypeError(f"line {k} is a {type(line).__name__}, not a str (open files in text mode)")
        yield line
