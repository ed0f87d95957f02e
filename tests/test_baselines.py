"""Tests for lmkit.baselines: the bag-of-words lexicon scorer and the counting bigram model of chapter 0.

Small cases are computed by hand; the end-to-end check pins the accuracy the
chapter reports to a plausible band, so a silent change in tokenization, the
lexicon or the split shows up here.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from lmkit.baselines import (
    SENTIMENT_TRAIN,
    BigramLM,
    accuracy,
    accuracy_interval,
    bow_tokenize,
    lexicon_predict,
    lexicon_score,
    pad_sentences,
    paired_bootstrap,
    predict_sentiment,
    sentiment_split,
    sentiment_words,
    train_sentiment_lstm,
)
from lmkit.data import Example, load_lexicon, load_sentiment
from lmkit.tokenizers import WordTokenizer

POS = {"good", "great", "well-made"}
NEG = {"bad", "awful", "don't"}


# --- bow_tokenize -------------------------------------------------------------------------


def test_bow_tokenize_lower_cases():
    assert bow_tokenize("GREAT Phone") == ["great", "phone"]


def test_bow_tokenize_keeps_apostrophes_and_hyphens_inside_words():
    # The lexicon has entries such as "well-made" and negations such as "don't":
    # splitting on these characters would make them unmatchable.
    assert bow_tokenize("I don't like this well-made case") == ["i", "don't", "like", "this", "well-made", "case"]


def test_bow_tokenize_drops_punctuation_and_keeps_digits():
    assert bow_tokenize("Wow!!! Great, really... (5 stars)") == ["wow", "great", "really", "5", "stars"]
    assert bow_tokenize("?!.,;:") == []


def test_bow_tokenize_empty_and_whitespace():
    assert bow_tokenize("") == []
    assert bow_tokenize(" \t\n ") == []


# --- lexicon_score ------------------------------------------------------------------------


def test_lexicon_score_hand_computed():
    assert lexicon_score([], POS, NEG) == 0
    assert lexicon_score(["good"], POS, NEG) == 1
    assert lexicon_score(["bad"], POS, NEG) == -1
    assert lexicon_score(["good", "phone", "bad"], POS, NEG) == 0
    assert lexicon_score(["great", "good", "awful", "case"], POS, NEG) == 1


def test_lexicon_score_counts_repeats_every_time():
    # A bag of words, not a set: "good good bad" leans positive.
    assert lexicon_score(["good", "good", "bad"], POS, NEG) == 1
    assert lexicon_score(["bad"] * 3 + ["good"], POS, NEG) == -2


def test_lexicon_score_words_outside_the_lexicon_count_zero():
    assert lexicon_score(["phone", "case", "battery"], POS, NEG) == 0
    # Matching is exact: tokens are expected already lower-cased by bow_tokenize.
    assert lexicon_score(["Good"], POS, NEG) == 0


# --- lexicon_predict -----------------------------------------------------------------------


def test_lexicon_predict_follows_the_sign_of_the_score():
    assert lexicon_predict("Good, GREAT phone.", POS, NEG) == 1
    assert lexicon_predict("Bad. Awful!", POS, NEG) == 0
    assert lexicon_predict("Good but bad and awful", POS, NEG) == 0
    # The sign wins whatever the default.
    assert lexicon_predict("great", POS, NEG, default=0) == 1
    assert lexicon_predict("awful", POS, NEG, default=1) == 0


@pytest.mark.parametrize("default", [0, 1])
def test_lexicon_predict_uses_default_only_on_ties(default):
    # No lexicon word at all, and a positive word cancelled by a negative one.
    assert lexicon_predict("It is a phone.", POS, NEG, default=default) == default
    assert lexicon_predict("good and bad", POS, NEG, default=default) == default
    assert lexicon_predict("", POS, NEG, default=default) == default


def test_lexicon_predict_default_is_positive():
    assert lexicon_predict("nothing to see", POS, NEG) == 1


# --- accuracy --------------------------------------------------------------------------------


def test_accuracy_hand_computed():
    assert accuracy([1, 0, 1], [1, 1, 1]) == pytest.approx(2 / 3)
    assert accuracy([0, 0], [1, 1]) == 0.0
    assert accuracy([1], [1]) == 1.0


def test_accuracy_returns_a_float():
    # Even when all predictions are right (an int division would also give 1).
    result = accuracy([1, 0], [1, 0])
    assert isinstance(result, float)
    assert result == 1.0


def test_accuracy_mismatched_lengths_is_a_clear_error():
    with pytest.raises(ValueError, match=r"3 predictions but 2 labels"):
        accuracy([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match=r"0 predictions but 1 labels"):
        accuracy([], [1])


def test_accuracy_empty_input_is_a_clear_error():
    # Not a ZeroDivisionError from deep inside.
    with pytest.raises(ValueError, match="zero examples"):
        accuracy([], [])


# --- sentiment_split --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split():
    return sentiment_split()


def test_sentiment_split_default_sizes(split):
    train, held_out = split
    assert len(train) == 2400
    assert len(held_out) == 600


def test_sentiment_split_is_deterministic(split):
    # Every chapter must evaluate on the very same held-out sentences.
    train, held_out = split
    train2, held_out2 = sentiment_split()
    assert train2 == train
    assert held_out2 == held_out
    # A different seed gives a different split.
    assert sentiment_split(seed=1)[1] != held_out


def test_sentiment_split_is_disjoint_and_covers_everything(split):
    train, held_out = split
    # Examples are compared as objects (text, label, source): a few texts
    # occur twice in the data, so compare multisets of the whole records.
    everything = load_sentiment()
    assert sorted(train + held_out, key=repr) == sorted(everything, key=repr)
    # No record is on both sides (beyond genuine duplicates in the data).
    dup_in_data = len(everything) - len(set(everything))
    assert len(set(train) & set(held_out)) <= dup_in_data


def test_sentiment_split_labels_roughly_balanced(split):
    train, held_out = split
    # The data are exactly balanced (1500/1500); a shuffled 600 should be close.
    pos = sum(e.label for e in held_out)
    assert 0.4 * 600 <= pos <= 0.6 * 600
    assert 0.4 * 2400 <= sum(e.label for e in train) <= 0.6 * 2400
    # All three sources are represented in the held-out set.
    assert {e.source for e in held_out} == {"amazon", "imdb", "yelp"}


# --- end to end -----------------------------------------------------------------------------------


def test_lexicon_accuracy_on_all_sentences_is_in_band_and_deterministic():
    positive, negative = load_lexicon()
    examples = load_sentiment()
    assert len(examples) == 3000

    def run() -> float:
        preds = [lexicon_predict(e.text, positive, negative) for e in examples]
        return accuracy(preds, [e.label for e in examples])

    first = run()
    # Clearly better than chance, clearly worse than a learned model.
    assert 0.65 <= first <= 0.80
    assert run() == first


# --- BigramLM -----------------------------------------------------------------------------


def test_bigram_probabilities_by_hand():
    # pairs of 0 1 0 1 0: (0, 1) twice, (1, 0) twice; plus one for every pair
    model = BigramLM(3).fit(torch.tensor([0, 1, 0, 1, 0]))
    expected = torch.tensor([[1, 3, 1], [3, 1, 1], [1, 1, 1]], dtype=torch.float)
    torch.testing.assert_close(model.probs, expected / expected.sum(dim=1, keepdim=True))


def test_bigram_bits_by_hand():
    model = BigramLM(3).fit(torch.tensor([0, 1, 0, 1, 0]))
    # 0 -> 1 has probability 3/5, 1 -> 2 has 1/5
    assert model.bits(torch.tensor([0, 1, 2])) == pytest.approx(-(math.log2(3 / 5) + math.log2(1 / 5)) / 2)


def test_bigram_before_fitting_is_uniform():
    assert BigramLM(4).bits(torch.tensor([0, 3, 2, 1])) == pytest.approx(2.0)


def test_bigram_sample_draws_from_the_row_of_the_previous_id():
    model = BigramLM(3).fit(torch.tensor([0, 1, 0, 1, 0]))
    drawn = model.sample(first=2, n=6, generator=torch.Generator().manual_seed(5))
    g, current, expected = torch.Generator().manual_seed(5), 2, []
    for _ in range(6):
        current = int(torch.multinomial(model.probs[current], 1, generator=g))
        expected.append(current)
    assert drawn == expected
    # a strong pattern is followed most of the time
    model = BigramLM(2).fit(torch.tensor([0, 1] * 500))
    ids = model.sample(first=0, n=200, generator=torch.Generator().manual_seed(0))
    assert sum(a != b for a, b in zip([0] + ids, ids)) > 190


@pytest.mark.parametrize("ids", [torch.tensor([1]), torch.tensor([[0, 1]]), torch.tensor([0, 3]), torch.tensor([0.0, 1.0])])
def test_bigram_rejects_bad_streams(ids):
    with pytest.raises(ValueError):
        BigramLM(3).fit(ids)


def test_bigram_rejects_bad_sizes_and_first_ids():
    with pytest.raises(ValueError, match="vocab_size"):
        BigramLM(0)
    with pytest.raises(ValueError, match="first"):
        BigramLM(3).sample(first=3, n=1)


# --- comparing classifiers fairly ----------------------------------------------------------


def test_accuracy_interval_matches_the_wilson_formula_worked_by_hand():
    # 450 of 600 right, z = 1.96: centre (0.75 + 0.0032013) / 1.0064027 = 0.748410,
    # half-width 1.96 * sqrt(0.1875 / 600 + 3.8416 / 1440000) / 1.0064027 = 0.034574.
    lo, hi = accuracy_interval(450, 600)
    assert lo == pytest.approx(0.748410 - 0.034574, abs=1e-5)
    assert hi == pytest.approx(0.748410 + 0.034574, abs=1e-5)
    assert accuracy_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)  # never below 0
    with pytest.raises(ValueError, match="correct"):
        accuracy_interval(11, 10)


def test_paired_bootstrap_is_zero_for_equal_classifiers_and_brackets_a_real_gap():
    a = [1, 0] * 200
    assert paired_bootstrap(a, a) == (0.0, 0.0)
    better = [1] * 400  # right everywhere the other is, and on its 200 mistakes too: gap 0.5
    lo, hi = paired_bootstrap(better, a)
    assert 0.4 < lo < 0.5 < hi < 0.6
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap([1], [1, 0])


def test_pad_sentences_pads_with_zero_and_shuffling_keeps_each_bag_of_words():
    examples = [Example("good good bad film", 1, "imdb"), Example("bad", 0, "imdb")]
    words = WordTokenizer(lowercase=True).train("good bad film good bad film")
    X, L, Y = pad_sentences(examples, words)
    assert X.shape == (2, 4) and L.tolist() == [4, 1] and Y.tolist() == [1, 0]
    assert X[1, 1:].tolist() == [0, 0, 0]  # padding after the one real token
    Xs, Ls, _ = pad_sentences(examples, words, shuffle=torch.Generator().manual_seed(3))
    assert Ls.tolist() == [4, 1] and sorted(Xs[0].tolist()) == sorted(X[0].tolist())
    orders = {tuple(pad_sentences(examples, words, torch.Generator().manual_seed(s))[0][0].tolist()) for s in range(10)}
    assert len(orders) > 1  # the order really changes


def test_sentiment_lstm_trains_and_predicts_one_label_per_sentence():
    train_ex, held_out = sentiment_split()
    words = sentiment_words(train_ex)
    config = dataclasses.replace(SENTIMENT_TRAIN, steps=3, eval_every=3)
    model, history = train_sentiment_lstm(train_ex[:100], words, seed=1, config=config)
    again, _ = train_sentiment_lstm(train_ex[:100], words, seed=1, config=config)
    preds = predict_sentiment(model, words, held_out[:20])
    assert history.train_step == [1, 2, 3] and not model.training
    assert len(preds) == 20 and set(preds) <= {0, 1}
    assert preds == predict_sentiment(again, words, held_out[:20])  # the seed fixes the run
