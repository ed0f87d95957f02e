"""lmkit.analysis: hand-computed cases and brute-force references."""

import random

import pytest
import torch

from lmkit.analysis import (
    distinct_ngram_ratio,
    expected_calibration_error,
    line_lengths,
    longest_copied_span,
    ngram_overlap,
    punctuation_rate,
    real_word_share,
    reliability_bins,
    repeated_share,
    words,
)


def test_reliability_bins_by_hand():
    # bins of width 0.5: [0.1, 0.2, 0.4] in the first, [0.5, 1.0] in the second (1.0 joins the last bin)
    bins = reliability_bins([0.1, 0.2, 0.4, 0.5, 1.0], [0, 1, 0, 1, 1], n_bins=2)
    assert [(b["lo"], b["hi"], b["count"]) for b in bins] == [(0.0, 0.5, 3), (0.5, 1.0, 2)]
    assert bins[0]["confidence"] == pytest.approx(0.7 / 3)
    assert bins[0]["accuracy"] == pytest.approx(1 / 3)
    assert bins[1]["confidence"] == pytest.approx(0.75)
    assert bins[1]["accuracy"] == 1.0


def test_reliability_bins_skip_empty_bins_and_keep_order():
    bins = reliability_bins([0.95, 0.05, 0.97], [True, False, True])
    assert [(b["lo"], b["count"]) for b in bins] == [(0.0, 1), (pytest.approx(0.9), 2)]


def test_ece_by_hand():
    # bin [0, .5): conf 0.7/3, acc 1/3; bin [.5, 1]: conf 0.75, acc 1
    expected = 3 / 5 * abs(1 / 3 - 0.7 / 3) + 2 / 5 * abs(1 - 0.75)
    assert expected_calibration_error([0.1, 0.2, 0.4, 0.5, 1.0], [0, 1, 0, 1, 1], n_bins=2) == pytest.approx(expected)


def test_ece_is_weighted_by_bin_count_not_averaged_over_bins():
    # 9 predictions at 0.95 all right (gap 0.05), 1 at 0.15 wrong (gap 0.15):
    # weighted 0.9 * 0.05 + 0.1 * 0.15 = 0.06; an unweighted mean over bins would say 0.10
    conf, right = [0.95] * 9 + [0.15], [1] * 9 + [0]
    assert expected_calibration_error(conf, right) == pytest.approx(0.06)


def test_ece_matches_a_vectorised_reference_on_random_data():
    g = torch.Generator().manual_seed(0)
    conf = torch.rand(1000, generator=g, dtype=torch.float64)
    right = torch.rand(1000, generator=g, dtype=torch.float64) < conf**2
    idx = (conf * 15).long().clamp(max=14)
    reference = sum(
        (idx == b).sum() / 1000 * (right[idx == b].double().mean() - conf[idx == b].mean()).abs() for b in range(15) if (idx == b).any()
    )
    assert expected_calibration_error(conf, right, n_bins=15) == pytest.approx(float(reference))


def test_ece_of_a_calibrated_and_of_an_overconfident_model():
    assert expected_calibration_error([0.25] * 4, [1, 0, 0, 0]) == pytest.approx(0.0)
    assert expected_calibration_error([1.0] * 4, [0] * 4) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("confidence", "correct", "n_bins", "match"),
    [
        ([], [], 10, "empty"),
        ([0.5, 0.5], [1], 10, "2 values"),
        ([1.5], [1], 10, r"\[0, 1\]"),
        ([float("nan")], [1], 10, r"\[0, 1\]"),
        ([0.5], [2], 10, "0/1"),
        ([0.5], [1], 0, "n_bins"),
        (torch.ones(2, 2), torch.ones(2, 2), 10, "1-D"),
    ],
)
def test_calibration_rejects_bad_input(confidence, correct, n_bins, match):
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(confidence, correct, n_bins)


def _longest_span_brute_force(text, source):
    best = (0, 0)
    for i in range(len(text)):
        for j in range(i + 1, len(text) + 1):
            if text[i:j] in source and j - i > best[0]:
                best = (j - i, i)
    return best


def test_longest_copied_span_by_hand():
    assert longest_copied_span("xxhello worldyy", "say hello world.") == (11, 2)
    assert longest_copied_span("abcab", "zab") == (2, 0)  # "ab" at 0 and at 3: the earliest
    assert longest_copied_span("zzz", "abc") == (0, 0)
    assert longest_copied_span("q", "q") == (1, 0)
    assert longest_copied_span("xyq", "q") == (1, 2)  # only the last character occurs
    assert longest_copied_span("the cat", "the cat sat") == (7, 0)  # the whole text


def test_longest_copied_span_is_a_substring_not_a_subsequence():
    assert longest_copied_span("acb", "axcxb") == (1, 0)


def test_longest_copied_span_matches_brute_force():
    rng = random.Random(0)
    for _ in range(200):
        source = "".join(rng.choice("abc") for _ in range(rng.randint(0, 30)))
        text = "".join(rng.choice("abcd") for _ in range(rng.randint(1, 15)))
        assert longest_copied_span(text, source) == _longest_span_brute_force(text, source), (text, source)


def test_longest_copied_span_rejects_empty_text():
    with pytest.raises(ValueError, match="empty"):
        longest_copied_span("", "abc")


def test_ngram_overlap_by_hand():
    # the 3-grams of "abcdx": abc, bcd, cdx; the first two are in the source
    assert ngram_overlap("abcdx", "zabcde", 3) == pytest.approx(2 / 3)
    assert ngram_overlap("abc", "abc", 3) == 1.0
    assert ngram_overlap("abc", "xyz", 1) == 0.0


@pytest.mark.parametrize(("text", "n", "match"), [("ab", 3, "fewer than n=3"), ("ab", 0, "at least 1")])
def test_ngram_overlap_rejects_bad_input(text, n, match):
    with pytest.raises(ValueError, match=match):
        ngram_overlap(text, "abc", n)


def test_words_and_real_word_share():
    assert words("KING RICHARD:\nO'er the hill, know't!") == ["king", "richard", "o'er", "the", "hill", "know't"]
    assert real_word_share("The hill; the zorb.", {"the", "hill"}) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="no words"):
        real_word_share("... !", {"the"})


def test_line_lengths_and_punctuation_rate():
    assert line_lengths("ab\n\n  \nabcd\n") == [2, 4]
    assert punctuation_rate("Ay, so.\n") == pytest.approx(2 / 6)  # "Ay,so." has 6 visible characters
    with pytest.raises(ValueError, match="visible"):
        punctuation_rate(" \n")


def test_loop_measures():
    loop = "I am the king. " * 10
    assert repeated_share(loop, n=20) == 1.0
    assert repeated_share("abcdefghijklmnopqrstuvwxyz", n=5) == 0.0
    # "abcde" occurs twice in "abcdeXabcde" and covers 10 of its 11 characters
    assert repeated_share("abcdeXabcde", n=5) == pytest.approx(10 / 11)
    assert distinct_ngram_ratio("aaaa", 2) == pytest.approx(1 / 3)
    assert distinct_ngram_ratio("abcd", 2) == 1.0
    with pytest.raises(ValueError, match="fewer than n"):
        repeated_share("abc", n=5)


def test_reliability_figure_draws_the_bins():
    from lmkit.viz import reliability_figure

    bins = reliability_bins([0.1, 0.2, 0.4, 0.5, 1.0], [0, 1, 0, 1, 1], n_bins=2)
    bars, dots, diagonal = reliability_figure(bins, "t").data
    assert list(bars.x) == [0.25, 0.75] and list(bars.width) == [0.5, 0.5]
    assert list(bars.y) == [b["accuracy"] for b in bins] and list(bars.text) == ["3", "2"]
    assert list(dots.y) == [b["confidence"] for b in bins] and list(diagonal.y) == [0, 1]
    with pytest.raises(ValueError, match="at least one bin"):
        reliability_figure([], "t")


def test_accuracy_figure_error_bars_are_wilson_intervals():
    from lmkit.baselines import accuracy_interval
    from lmkit.viz import accuracy_figure

    fig = accuracy_figure({"model": {"easy": [True] * 9 + [False], "hard": [True, False, False, False]}}, "t")
    (bars,) = fig.data
    assert list(bars.y) == pytest.approx([0.9, 0.25])
    low, high = accuracy_interval(1, 4)
    assert bars.error_y.array[1] == pytest.approx(high - 0.25) and bars.error_y.arrayminus[1] == pytest.approx(0.25 - low)
    with pytest.raises(ValueError, match="at least one answer"):
        accuracy_figure({"model": {"easy": []}}, "t")
