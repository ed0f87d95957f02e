"""Tests for lmkit.instructions: the bundled instruction data set of chapter 5.

Every example is checked against its source, read back from the corpus file and
the sentiment files by this test's own parsing; the split is checked on the source
texts themselves, so two copies of one line under different line numbers count as
the same text.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections import Counter
from functools import cache
from importlib import resources

import pytest

from lmkit.baselines import sentiment_split
from lmkit.cli import instructions_main, instructions_parser
from lmkit.data import load_sentiment, load_shakespeare
from lmkit.instructions import FAMILIES, Instruction, load_instructions, majority_baseline, score

ALPHABET = set("\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")  # the corpus's 65 characters
NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
CORPUS = load_shakespeare()
LINES = CORPUS.split("\n")
TRAIN_PART_END = round(0.9 * len(CORPUS))  # chapters 2-4 pretrain on the first 90% of the characters


@pytest.fixture(scope="module")
def data() -> dict[str, list[Instruction]]:
    return {split: load_instructions(split) for split in ("train", "heldout")}


sentences = cache(load_sentiment)


def source_text(ex: Instruction) -> tuple[str, str]:
    """The kind and the text an example was made from, read from the bundled files."""
    kind, _, rest = ex.source.partition(":")
    if kind == "line":
        return kind, LINES[int(rest) - 1]
    if kind == "sentence":
        name, index = rest.split(":")
        return kind, sentences(name)[int(index)].text
    assert kind == "word", ex.source
    return kind, rest


def speaker_of(number: int) -> str:
    """The 'NAME:' line that opens the speech holding line ``number`` (from 1)."""
    i = number - 1
    while LINES[i - 1]:  # a speech opens after a blank line
        i -= 1
    assert LINES[i].endswith(":"), LINES[i]
    return LINES[i][:-1]


def test_bundled_files_are_what_the_generator_writes(tmp_path, capsys, data):
    assert instructions_main(["--out", str(tmp_path)]) == [tmp_path / "train.jsonl", tmp_path / "heldout.jsonl"]
    assert "wrote" in capsys.readouterr().out
    for split in ("train", "heldout"):
        bundled = resources.files("lmkit").joinpath(f"datasets/instructions/{split}.jsonl").read_bytes()
        assert (tmp_path / f"{split}.jsonl").read_bytes() == bundled, f"{split}.jsonl is stale: run python -m lmkit.instructions"
        first = json.loads(bundled.splitlines()[0])
        assert list(first) == ["family", "instruction", "input", "answer", "source"]
        assert "".join(json.dumps(dataclasses.asdict(ex)) + "\n" for ex in data[split]).encode() == bundled  # loading loses nothing


def test_sizes_and_balanced_answers(data):
    for split, n in [("train", 1000), ("heldout", 100)]:
        assert Counter(ex.family for ex in data[split]) == dict.fromkeys(FAMILIES, n)
        for family, n_answers in [("speaker", 10), ("sentiment", 2), ("count", 10)]:
            answers = Counter(ex.answer for ex in data[split] if ex.family == family)
            assert set(answers.values()) == {n // n_answers}, (split, family, answers)


def test_every_example_fits_the_context_and_the_alphabet(data):
    for ex in data["train"] + data["heldout"]:
        sequence = f"Q: {ex.instruction}\n{ex.input}\nA: {ex.answer}"
        assert len(sequence) + 1 <= 128, ex  # + 1: the end marker
        assert set(sequence) <= ALPHABET, ex
        assert "\n" not in ex.input + ex.answer and ex.answer == ex.answer.strip(), ex
    for family in FAMILIES:  # one fixed instruction per family
        assert len({ex.instruction for ex in data["train"] + data["heldout"] if ex.family == family}) == 1


def test_examples_are_right_about_their_source(data):
    sentiment_train, sentiment_heldout = sentiment_split()
    course_split = {"train": {ex.text for ex in sentiment_train}, "heldout": {ex.text for ex in sentiment_heldout}}
    train_words = set(re.findall(r"[a-z]+", CORPUS[:TRAIN_PART_END].lower()))
    occurrences = {}
    for number, line in enumerate(LINES, start=1):
        occurrences.setdefault(line, []).append(number)
    starts = [0]
    for line in LINES:
        starts.append(starts[-1] + len(line) + 1)
    for split, examples in data.items():
        for ex in examples:
            kind, text = source_text(ex)
            if kind == "line":  # a spoken line, inside the text the model was pretrained on
                number = int(ex.source.split(":")[1])
                assert starts[number] <= TRAIN_PART_END and LINES[number - 2], ex  # not a speech's NAME: line
            if ex.family == "speaker":  # every time the training part has the line, this speaker says it
                said = [n for n in occurrences[text] if starts[n] <= TRAIN_PART_END]
                assert ex.input == text and {speaker_of(n) for n in said} == {ex.answer} and 20 <= len(text) <= 80, ex
            elif ex.family == "count":
                assert ex.input == text and ex.answer == NUMBERS[len(text.split()) - 1], ex
            elif ex.family == "complete":
                assert f"{ex.input} {ex.answer}" == text and len(ex.input.split()) >= 2 and ex.answer, ex
            elif ex.family == "reverse":
                assert ex.answer == ex.input[::-1] != ex.input and text == ex.input, ex
                assert ex.input.isalpha() and ex.input.islower() and 3 <= len(ex.input) <= 8, ex
                assert ex.input in train_words, ex
            else:
                assert ex.family == "sentiment" and kind == "sentence", ex
                assert ex.input == text.replace('"', "'") and text in course_split[split], ex
                label = sentences(ex.source.split(":")[1])[int(ex.source.split(":")[2])].label
                assert ex.answer == ["negative", "positive"][label], ex


def test_no_source_text_is_on_both_sides(data):
    sides = {split: {source_text(ex) for ex in examples} for split, examples in data.items()}
    assert not sides["train"] & sides["heldout"], sorted(sides["train"] & sides["heldout"])[:5]
    for kind in ("line", "sentence", "word"):
        assert any(k == kind for k, _ in sides["heldout"])
    # Nor as an input of another family: a held-out line is no training input either.
    heldout_lines = {text for kind, text in sides["heldout"] if kind == "line"}
    assert not heldout_lines & {ex.input for ex in data["train"]}


def test_speakers_are_the_ten_with_most_lines_in_the_training_part(data):
    expected = {"GLOUCESTER", "DUKE VINCENTIO", "KING RICHARD II", "LEONTES", "CORIOLANUS"}
    expected |= {"ROMEO", "MENENIUS", "JULIET", "QUEEN MARGARET", "KING RICHARD III"}
    assert {ex.answer for ex in data["heldout"] if ex.family == "speaker"} == expected


def make(family: str, input: str, answer: str) -> Instruction:
    return Instruction(family, "", input, answer, "test")


def test_score_is_exact_match_up_to_surrounding_whitespace():
    ex = make("speaker", "O Romeo, Romeo! wherefore art thou Romeo?", "JULIET")
    assert score(ex, "JULIET") and score(ex, "  JULIET\n")
    assert not score(ex, "Juliet") and not score(ex, "JULIET:") and not score(ex, "") and not score(ex, "JULIET JULIET")
    assert score(make("count", "Speak, speak.", "two"), "two") and not score(make("count", "Speak, speak.", "two"), "2")
    assert score(make("reverse", "romeo", "oemor"), " oemor") and not score(make("reverse", "romeo", "oemor"), "romeo")


def test_score_of_a_completion():
    ex = make("complete", "O Romeo, Romeo! wherefore art", "thou Romeo?")  # 11 characters to come
    assert score(ex, "thou Romeo?") and score(ex, " thou Juliet! \n")  # another right ending
    assert score(ex, "thou a king")
    assert not score(ex, "thou Romeox?")  # not a word of the corpus
    assert not score(ex, "thou")  # under half the length of the true ending
    assert not score(ex, "thou Romeo, and thou shalt")  # over twice its length
    assert not score(ex, "thou\nRomeo?")  # more than the line
    assert not score(ex, "thou , Romeo")  # a token that is no word
    assert " cousin " in CORPUS and not re.search(r"\bart\W+cousin\b", CORPUS, re.IGNORECASE)
    assert not score(ex, "cousin thou")  # every word known, but "art cousin" is never written
    assert not score(ex, "")


def test_every_true_completion_passes_and_a_fixed_one_mostly_fails(data):
    assert all(score(ex, ex.answer) for ex in data["train"] + data["heldout"])
    rates = majority_baseline(data["train"], data["heldout"])
    assert rates["speaker"] == rates["count"] == 0.1 and rates["sentiment"] == 0.5 and rates["reverse"] == 0.0
    assert rates["complete"] < 0.25


def test_majority_baseline_by_hand():
    train = [make("count", "a b", "two"), make("count", "a", "one"), make("count", "c d", "two")]
    heldout = [make("count", "e f", "two"), make("count", "g", "one"), make("count", "h", "one")]
    assert majority_baseline(train, heldout) == {"count": 1 / 3}
    with pytest.raises(ValueError, match="no training examples"):
        majority_baseline(train, [make("speaker", "x", "ROMEO")])


def test_unknown_split_or_family_is_an_error():
    with pytest.raises(ValueError, match="unknown split 'test'"):
        load_instructions("test")
    with pytest.raises(ValueError, match="unknown family 'poem'"):
        score(make("poem", "x", "y"), "y")


def test_command_line():
    for action in instructions_parser()._actions:
        assert action.help, action.option_strings
    result = subprocess.run([sys.executable, "-m", "lmkit.instructions", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "python -m lmkit.instructions" in result.stdout and "--out" in result.stdout
