"""Unit tests for lmkit.data: bundled corpora, splits and batches."""

from __future__ import annotations

import hashlib
from collections import Counter
from importlib import resources

import pytest
import torch

from lmkit.data import (
    SENTIMENT_SOURCES,
    Example,
    char_data,
    get_batch,
    load_lexicon,
    load_sentiment,
    load_shakespeare,
    train_val_split,
)

# --- corpus ---------------------------------------------------------------------------


def test_shakespeare_has_expected_length_and_checksum():
    # The checksum pins the exact file: a re-encoded or truncated copy would
    # silently change every number quoted in the book.
    text = load_shakespeare()
    assert len(text) == 1115394
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == ("86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed")


def test_shakespeare_is_ascii():
    # The docstring promises ASCII; byte-level BPE chapters rely on 1 char == 1 byte.
    assert load_shakespeare().isascii()


# --- sentiment ------------------------------------------------------------------------


@pytest.mark.parametrize("source", SENTIMENT_SOURCES)
def test_each_sentiment_source_has_1000_balanced_examples(source):
    examples = load_sentiment(source)
    assert len(examples) == 1000
    assert Counter(e.label for e in examples) == {0: 500, 1: 500}
    assert all(isinstance(e, Example) and e.source == source for e in examples)


def test_load_sentiment_default_is_all_sources_in_order():
    examples = load_sentiment()
    assert len(examples) == 3000
    assert [e.source for e in examples[::1000]] == list(SENTIMENT_SOURCES)
    # A list of sources behaves like the concatenation of single sources.
    assert load_sentiment(["yelp", "amazon"]) == load_sentiment("yelp") + load_sentiment("amazon")


def _raw_lines(name: str) -> list[str]:
    path = resources.files("lmkit").joinpath("datasets/sentiment/" + name)
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.parametrize(
    ("source", "filename"),
    [("imdb", "imdb_labelled.txt"), ("amazon", "amazon_cells_labelled.txt")],
)
def test_sentences_with_quotes_are_read_intact(source, filename):
    # A CSV reader treats quote characters as field delimiters and can glue
    # lines together or drop the quotes. Check that every quote character of
    # the file ends up in the text of some example.
    examples = load_sentiment(source)
    raw = "\n".join(_raw_lines(filename))
    for quote in ("'", '"'):
        assert sum(e.text.count(quote) for e in examples) == raw.count(quote)
    assert all("\t" not in e.text and "\n" not in e.text for e in examples)
    # Text is stripped, and never ends in the label digit that follows the tab.
    assert all(e.text == e.text.strip() for e in examples)


def test_known_imdb_sentences_with_quotes_and_accents():
    texts = {e.text: e.label for e in load_sentiment("imdb")}
    assert texts["The movie showed a lot of Florida at it's best, made it look very appealing."] == 1
    assert any("Québec" in t for t in texts), "UTF-8 accents must survive decoding"
    amazon = {e.text: e.label for e in load_sentiment("amazon")}
    assert amazon['I also didn\'t like the "on" button, it felt like it would crack with use.'] == 0


@pytest.mark.parametrize("bad", ["twitter", ["imdb", "IMDB"]])
def test_unknown_sentiment_source_raises(bad):
    with pytest.raises(ValueError, match="unknown sentiment source"):
        load_sentiment(bad)


# --- lexicon --------------------------------------------------------------------------


def test_lexicon_sizes_and_content():
    positive, negative = load_lexicon()
    assert (len(positive), len(negative)) == (2006, 4783)
    assert "good" in positive and "bad" in negative
    # The original Hu & Liu lexicon lists three words in both files; anything
    # else in the overlap would mean the files were mixed up.
    assert positive & negative == {"envious", "enviously", "enviousness"}
    # The files start with ';' comment headers in the original distribution: none must leak in.
    assert not any(w.startswith(";") or w != w.strip() or not w for w in positive | negative)


# --- train_val_split -----------------------------------------------------------------


def test_contiguous_split_keeps_order_and_type():
    text = "abcdefghij" * 10
    train, val = train_val_split(text, val_fraction=0.1)
    assert (train, val) == (text[:90], text[90:])  # strings stay strings

    data = torch.arange(50)
    t_train, t_val = train_val_split(data, val_fraction=0.2)
    assert isinstance(t_train, torch.Tensor)
    assert torch.equal(t_train, data[:40]) and torch.equal(t_val, data[40:])


def test_seeded_split_is_deterministic_disjoint_and_complete():
    items = list(range(200))
    train, val = train_val_split(items, val_fraction=0.25, seed=3)
    assert (len(train), len(val)) == (150, 50)
    assert not set(train) & set(val)
    assert sorted(train + val) == items
    assert train != items[:150], "a seeded split must shuffle"
    # Same seed, same split; another seed, another split.
    assert train_val_split(items, val_fraction=0.25, seed=3) == (train, val)
    assert train_val_split(items, val_fraction=0.25, seed=4) != (train, val)
    # The input itself is not shuffled in place.
    assert items == list(range(200))


def test_seeded_split_of_examples_returns_lists():
    examples = load_sentiment("yelp")
    train, val = train_val_split(examples, val_fraction=0.1, seed=0)
    assert isinstance(train, list) and isinstance(val, list)
    assert (len(train), len(val)) == (900, 100)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_bad_val_fraction_raises(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(list(range(10)), val_fraction=fraction)


@pytest.mark.parametrize("n", [1, 3])
def test_split_that_leaves_one_side_empty_raises(n):
    # 0.1 of 1 or 3 items rounds to zero validation items.
    with pytest.raises(ValueError, match="empty"):
        train_val_split(list(range(n)), val_fraction=0.1)


# --- get_batch ------------------------------------------------------------------------


def test_get_batch_shapes_dtype_and_shifted_targets():
    data = torch.arange(1000, dtype=torch.int32)  # not int64: the batch must be cast
    x, y = get_batch(data, block_size=8, batch_size=4, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:])


def test_get_batch_rows_are_real_windows_of_the_data():
    # A permutation has distinct values, so each row's first value locates it.
    g = torch.Generator().manual_seed(1)
    data = torch.randperm(500, generator=g)
    position = {int(v): i for i, v in enumerate(data)}
    x, y = get_batch(data, block_size=16, batch_size=32, generator=g)
    for row_x, row_y in zip(x, y):
        start = position[int(row_x[0])]
        assert torch.equal(row_x, data[start : start + 16])
        assert torch.equal(row_y, data[start + 1 : start + 17])


def test_get_batch_reaches_every_window_including_the_last():
    # With 6 tokens and T=4 there are exactly two windows (starts 0 and 1):
    # an off-by-one would either never draw start 1 or index past the end.
    data = torch.arange(6)
    x, y = get_batch(data, block_size=4, batch_size=200, generator=torch.Generator().manual_seed(0))
    assert set(x[:, 0].tolist()) == {0, 1}
    assert int(y.max()) == 5


def test_get_batch_is_deterministic_with_seeded_generator():
    data = torch.arange(10_000)
    a = get_batch(data, 32, 8, generator=torch.Generator().manual_seed(42))
    b = get_batch(data, 32, 8, generator=torch.Generator().manual_seed(42))
    c = get_batch(data, 32, 8, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    ("data", "block_size", "batch_size", "message"),
    [
        (torch.zeros(4, 100, dtype=torch.long), 8, 2, "1-D"),
        (torch.rand(100), 8, 2, "integer"),
        (torch.ones(100, dtype=torch.bool), 8, 2, "integer"),
        (torch.arange(8), 8, 2, "need more than block_size"),
        (torch.arange(100), 0, 2, "positive"),
        (torch.arange(100), 8, 0, "positive"),
        (torch.arange(100), -1, 2, "positive"),
    ],
)
def test_get_batch_rejects_bad_input_with_clear_message(data, block_size, batch_size, message):
    with pytest.raises(ValueError, match=message):
        get_batch(data, block_size, batch_size)


# --- char_data ------------------------------------------------------------------------


def test_char_data_is_the_corpus_as_characters_split_90_10():
    tokenizer, train, val = char_data()
    text = load_shakespeare()
    assert tokenizer.itos == sorted(set(text)) and tokenizer.vocab_size == 65
    assert train.ndim == val.ndim == 1 and len(train) + len(val) == len(text)
    assert len(train) == round(0.9 * len(text))  # contiguous: the last tenth is held out
    assert tokenizer.decode(train.tolist()) + tokenizer.decode(val.tolist()) == text
