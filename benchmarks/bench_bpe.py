"""Benchmark lmkit's byte-level BPE on the tiny Shakespeare corpus.

For each pre-split pattern (none, GPT-2, GPT-4) it trains a tokenizer to
``--vocab-size`` tokens on the whole corpus, encodes the whole corpus, and
reports the train and encode times (best of ``--repeats`` runs), the time of
``encode_iterable`` over the corpus's lines, the number of tokens, the
compression (characters per token) and whether ``decode(encode(corpus)) == corpus``
and ``encode_iterable`` gave the same ids as ``encode``.

With ``--naive`` it also times the readable textbook trainer,
``lmkit.tokenizers.bpe_train`` (recount every pair after every merge), against
``BPETokenizer.train`` on a slice of the corpus, and checks that both learn the
same merges.

Run from the repository root:

    .venv/bin/python benchmarks/bench_bpe.py [--repeats N] [--vocab-size V] [--naive]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from typing import TypeVar

from lmkit.data import load_shakespeare
from lmkit.tokenizers import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BPETokenizer, bpe_train

PATTERNS: dict[str, str | None] = {"none": None, "gpt2": GPT2_SPLIT_PATTERN, "gpt4": GPT4_SPLIT_PATTERN}

T = TypeVar("T")


def best_of(repeats: int, fn: Callable[..., T], *args: object) -> tuple[float, T]:
    """Run ``fn(*args)`` ``repeats`` times; return the shortest wall time and the last result.

    The minimum is the least noisy estimate of the cost itself: slower runs are
    slower because of other load on the machine, not because of the code.
    """
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result  # type: ignore[return-value]


def train_fast(pattern: str | None, text: str, vocab_size: int) -> BPETokenizer:
    return BPETokenizer(pattern).train(text, vocab_size)


def encode_fresh(tok: BPETokenizer, text: str) -> list[int]:
    tok._build()  # drop the chunk cache, so every repeat encodes from scratch
    return tok.encode(text)


def stream_fresh(tok: BPETokenizer, lines: list[str]) -> list[int]:
    tok._build()
    return list(tok.encode_iterable(lines))


def bench_full(corpus: str, vocab_size: int, repeats: int) -> None:
    print(f"corpus: {len(corpus):,} characters; vocab_size={vocab_size}; best of {repeats} run(s)")
    header = f"{'pattern':<8} {'train s':>9} {'encode s':>9} {'stream s':>9} {'tokens':>10} {'chars/token':>12} {'round trip':>11}"
    print(header)
    print("-" * len(header))
    lines = corpus.splitlines(keepends=True)
    for name, pattern in PATTERNS.items():
        train_s, tok = best_of(repeats, train_fast, pattern, corpus, vocab_size)
        encode_s, ids = best_of(repeats, encode_fresh, tok, corpus)
        stream_s, streamed = best_of(repeats, stream_fresh, tok, lines)
        ok = tok.decode(ids) == corpus and streamed == ids
        print(f"{name:<8} {train_s:>9.2f} {encode_s:>9.2f} {stream_s:>9.2f} {len(ids):>10,} {len(corpus) / len(ids):>12.2f} {str(ok):>11}")


def bench_naive(corpus: str, n_chars: int, vocab_size: int, repeats: int) -> None:
    text = corpus[:n_chars]
    print()
    print(f"bpe_train (recounts) vs BPETokenizer.train on the first {len(text):,} characters, vocab_size={vocab_size}")
    header = f"{'pattern':<8} {'naive s':>9} {'lmkit s':>9} {'speed-up':>9} {'same merges':>12}"
    print(header)
    print("-" * len(header))
    for name, pattern in PATTERNS.items():
        naive_s, expected = best_of(repeats, bpe_train, text, vocab_size, pattern)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a short slice may run out of pairs
            lmkit_s, tok = best_of(repeats, train_fast, pattern, text, vocab_size)
        same = list(tok.merges.items()) == list(expected.items())
        print(f"{name:<8} {naive_s:>9.2f} {lmkit_s:>9.3f} {naive_s / lmkit_s:>8.0f}x {str(same):>12}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per measurement; the best is reported (default 1)")
    parser.add_argument("--vocab-size", type=int, default=1024, help="vocabulary size to train to (default 1024)")
    parser.add_argument("--naive", action="store_true", help="also time the readable recount-every-merge trainer, bpe_train")
    parser.add_argument("--naive-chars", type=int, default=50_000, help="corpus slice for --naive (default 50000)")
    parser.add_argument("--naive-vocab-size", type=int, default=512, help="vocabulary size for --naive (default 512)")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    corpus = load_shakespeare()
    bench_full(corpus, args.vocab_size, args.repeats)
    if args.naive:
        bench_naive(corpus, args.naive_chars, args.naive_vocab_size, args.repeats)


if __name__ == "__main__":
    main()
