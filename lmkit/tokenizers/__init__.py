"""Tokenizers: characters, words (with ``<unk>``) and byte-level BPE.

Taught in chapter 1 (language as data); exercise 01 writes the readable ones.
Import from here; the modules follow minbpe's split, one idea each:

- ``base``: the interface every tokenizer follows and the pre-split patterns;
- ``words``: :class:`CharTokenizer` and :class:`WordTokenizer`;
- ``bpe``: the textbook BPE, written to be read (``pair_counts``, ``merge_pair``,
  ``bpe_train``, ``bpe_encode``, ``bpe_decode``);
- ``fast``: :class:`BPETokenizer`, the same algorithm with incremental pair counts
  and a heap encoder, and ``encode_iterable`` for files;
- ``gpt2``: GPT-2's ``vocab.json`` + ``merges.txt`` files (``save_gpt2``, ``load_gpt2``).

Every tokenizer has ``encode(text) -> list[int]``, ``encode_iterable(lines)``,
``decode(ids) -> str``, ``tokens(text) -> list[str]`` (the pieces, for display)
and ``vocab_size``; ``train(text, ...)`` returns the tokenizer.
"""

from lmkit.tokenizers.base import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, Pair, Tokenizer
from lmkit.tokenizers.bpe import bpe_decode, bpe_encode, bpe_train, merge_pair, pair_counts
from lmkit.tokenizers.fast import BPETokenizer
from lmkit.tokenizers.gpt2 import load_gpt2, save_gpt2
from lmkit.tokenizers.words import UNK, WORD_PATTERN, CharTokenizer, WordTokenizer

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "GPT4_SPLIT_PATTERN",
    "UNK",
    "WORD_PATTERN",
    "BPETokenizer",
    "CharTokenizer",
    "Pair",
    "Tokenizer",
    "WordTokenizer",
    "bpe_decode",
    "bpe_encode",
    "bpe_train",
    "load_gpt2",
    "merge_pair",
    "pair_counts",
    "save_gpt2",
]
