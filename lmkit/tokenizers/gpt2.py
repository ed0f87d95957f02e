"""GPT-2's tokenizer files, read and written: ``vocab.json`` and ``merges.txt``.

Taught in chapter 1 (language as data). The format other tools use (OpenAI's GPT-2,
HuggingFace ``tokenizers``): ``vocab.json`` maps each token, spelled with GPT-2's
printable stand-in for each byte, to its id; ``merges.txt`` is a ``#version`` line,
then one merge per line, the two tokens separated by a space, in the order learned.
The files do not record the pre-split pattern: pass it to :func:`load_gpt2`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lmkit.tokenizers.base import GPT2_SPLIT_PATTERN, Pair
from lmkit.tokenizers.fast import BPETokenizer

MERGES_HEADER = "#version: 0.2"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's stand-in character for each byte. Printable Latin-1 bytes stand for
    themselves; the others (control characters, the space, ...) for characters from
    U+0100 on, in byte order. So every token is a string without spaces: " the" is "Ġthe"."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    stand_in = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in stand_in]
    stand_in.update({b: chr(256 + n) for n, b in enumerate(others)})
    return stand_in


def _spelled(token: bytes, stand_in: dict[int, str]) -> str:
    return "".join(stand_in[b] for b in token)


def save_gpt2(tokenizer: BPETokenizer, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``vocab.json`` and ``merges.txt`` into ``directory`` (created if needed);
    return their paths. Special tokens go into ``vocab.json`` as they are written."""
    stand_in = bytes_to_unicode()
    vocab: dict[str, int] = {}
    for i in sorted(tokenizer.vocab):
        spelled = _spelled(tokenizer.vocab[i], stand_in)
        if spelled in vocab:
            raise ValueError(f"tokens {vocab[spelled]} and {i} are both {tokenizer.vocab[i]!r}: vocab.json can hold only one")
        vocab[spelled] = i
    for s, i in tokenizer.special_tokens.items():
        if s in vocab:
            raise ValueError(f"special token {s!r} is spelled like token {vocab[s]}: vocab.json can hold only one of them")
        vocab[s] = i
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab_path, merges_path = directory / "vocab.json", directory / "merges.txt"
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(dict(sorted(vocab.items(), key=lambda kv: kv[1])), f, ensure_ascii=False)
    lines = [MERGES_HEADER] + [
        f"{_spelled(tokenizer.vocab[a], stand_in)} {_spelled(tokenizer.vocab[b], stand_in)}" for a, b in tokenizer.merges
    ]
    merges_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return vocab_path, merges_path


def _read_vocab(path: Path) -> dict[str, int]:
    with open(path, encoding="utf-8") as f:
        vocab = json.load(f)
    if not isinstance(vocab, dict) or not all(type(i) is int for i in vocab.values()):
        raise ValueError(f"{path} must be a JSON object mapping each token to an integer id")
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        seen: dict[int, str] = {}
        for token, i in vocab.items():
            if i in seen:
                raise ValueError(f"{path}: id {i} is given to both {seen[i]!r} and {token!r}")
            seen[i] = token
        missing = sorted(set(range(ids[-1] + 1)) - set(ids))
        raise ValueError(f"{path}: ids are not contiguous from 0: {len(missing)} missing, the first {missing[:5]}")
    return vocab


def _read_merges(path: Path, vocab: dict[str, int], byte_ids: list[int]) -> dict[Pair, int]:
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].startswith("#version"):
        raise ValueError(f"{path} does not start with a '#version' line: it is not a GPT-2 merges file")
    made = set(byte_ids)  # the tokens that exist so far: bytes, then each merge's result
    merges: dict[Pair, int] = {}
    last = -1
    for n, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        pair = line.split(" ")
        if len(pair) != 2:
            raise ValueError(f"{path}, line {n}: expected two tokens separated by one space, got {line!r}")
        for token in pair:
            if token not in vocab:
                raise ValueError(f"{path}, line {n}: merges the unknown token {token!r} (it is not in vocab.json)")
            if vocab[token] not in made:
                raise ValueError(f"{path}, line {n}: merges {token!r} before any earlier line makes it")
        a, b = pair
        if a + b not in vocab:
            raise ValueError(f"{path}, line {n}: the merged token {a + b!r} is not in vocab.json")
        new_id = vocab[a + b]
        if new_id <= last:
            raise ValueError(
                f"{path}, line {n}: the merged token {a + b!r} has id {new_id}, below an earlier merge's; "
                "lmkit needs merged ids that increase line by line (it applies merges by id)"
            )
        merges[(vocab[a], vocab[b])] = new_id
        made.add(new_id)
        last = new_id
    return merges


def load_gpt2(directory: str | os.PathLike, pattern: str | None = GPT2_SPLIT_PATTERN) -> BPETokenizer:
    """Read ``vocab.json`` and ``merges.txt`` from ``directory`` into a :class:`BPETokenizer`
    that keeps the files' ids. Tokens of ``vocab.json`` that are neither a byte nor made
    by a merge (e.g. ``"<|endoftext|>"``) become special tokens."""
    directory = Path(directory)
    vocab = _read_vocab(directory / "vocab.json")
    byte_ids = []
    for b, char in bytes_to_unicode().items():
        if char not in vocab:
            raise ValueError(f"{directory / 'vocab.json'} has no token for byte {b} ({char!r}); byte-level BPE needs all 256")
        byte_ids.append((b, vocab[char]))
    tok = BPETokenizer(pattern)
    tok.byte_ids = [i for _, i in sorted(byte_ids)]
    tok.merges = _read_merges(directory / "merges.txt", vocab, tok.byte_ids)
    plain = set(tok.byte_ids) | set(tok.merges.values())
    tok.special_tokens = {token: i for token, i in sorted(vocab.items(), key=lambda kv: kv[1]) if i not in plain}
    tok._build()
    return tok
