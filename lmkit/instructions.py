"""The instruction data set: five task families built from the bundled data, answers checked automatically.

Taught in chapter 5 (finetuning): the pretrained character GPT is finetuned on the
training split and measured on the held-out split, family by family.

Every example is an instruction, an input and an answer made only of the corpus's
65 characters, so the chapter 3 tokenizer encodes it without new symbols; its full
finetuning sequence ``"Q: {instruction}\\n{input}\\nA: " + answer + <end>`` fits the
128-token context. The families:

- ``speaker``: who speaks a line of the corpus (knowledge pretraining put in the model);
- ``sentiment``: is a review sentence positive or negative (classification);
- ``reverse``: spell a word backwards (a character-level transformation);
- ``count``: how many words a line has, answered in English words (counting);
- ``complete``: finish a line cut at a word boundary (the pretrained model's style).

The held-out split shares no source text with training: the distinct corpus lines
are split once, the words of ``reverse`` are split by word, and the sentences follow
the course's sentiment split (``lmkit.baselines.sentiment_split``). Only the
pretraining training part of the corpus is used (``lmkit.data.train_val_split``, the
first 90%), so finetuning never reads the text on which chapter 5 measures forgetting.

``python -m lmkit.instructions`` regenerates the bundled files (see ``lmkit.cli``).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from lmkit.baselines import sentiment_split
from lmkit.data import SENTIMENT_SOURCES, _read, load_sentiment, load_shakespeare, train_val_split
from lmkit.template import format_prompt

FAMILIES = ("speaker", "sentiment", "reverse", "count", "complete")
INSTRUCTIONS = {
    "speaker": "Who speaks this line?",
    "sentiment": "Is this review positive or negative?",
    "reverse": "Spell this word backwards.",
    "count": "How many words are in this line?",
    "complete": "Finish this line.",
}
SPLITS = ("train", "heldout")
N_TRAIN, N_HELDOUT = 1000, 100  # examples per family; held-out answering is timed, 100 per family is its budget
CONTEXT = 128  # the shipped char_gpt_rope's context: prompt + answer + end marker must fit
HELDOUT_FRACTION = 0.1  # of the distinct corpus lines and of the words
N_SPEAKERS = 10  # the speakers with the most lines in the pretraining training part
SPEAKER_LINE_CHARS = (20, 80)  # shorter lines say almost nothing about who speaks them
COUNT_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")  # no digits but 3 in the vocabulary
REVERSE_LETTERS = (3, 8)
CHAR_MAP = {'"': "'"}  # the sentences' double quotes become the corpus's single quote
_PUNCTUATION = "!$&',-.:;?"  # the corpus's characters other than letters, whitespace and the 3 of a title
DATA_DIR = Path(str(resources.files("lmkit").joinpath("datasets/instructions")))


@dataclass(frozen=True)
class Instruction:
    """One example: ``source`` names the text it was made from, ``"line:N"`` (line N of
    the corpus file, from 1), ``"sentence:SOURCE:I"`` (index I of
    ``lmkit.data.load_sentiment(SOURCE)``) or ``"word:WORD"``."""

    family: str
    instruction: str
    input: str | None
    answer: str
    source: str


@dataclass(frozen=True)
class _Line:
    number: int  # in the corpus file, from 1
    speaker: str
    text: str


@cache
def _corpus_lines() -> tuple[_Line, ...]:
    """The spoken lines of the pretraining training part, with their speaker.

    The corpus is a sequence of speeches separated by blank lines, each a ``NAME:``
    line then the lines spoken. The part is cut after its last complete speech.
    """
    train_text, _ = train_val_split(load_shakespeare(), val_fraction=0.1)
    train_text = train_text[: train_text.rfind("\n\n")]
    lines, speaker, previous = [], None, ""
    for number, text in enumerate(train_text.split("\n"), start=1):
        if text and not previous:
            if not text.endswith(":"):
                raise ValueError(f"corpus line {number} starts a speech but is not a 'NAME:' line: {text!r}")
            speaker = text[:-1]
        # A few lines carry stray spaces (they would break the word splits); "3 KING HENRY VI"
        # is the play's title left inside speeches, no one's line.
        elif text and text == text.strip() and text != "3 KING HENRY VI":
            lines.append(_Line(number, speaker, text))
        previous = text
    return tuple(lines)


def _words(text: str) -> list[str]:
    """The words of a line: its whitespace-separated tokens without the punctuation
    around them, lower-cased ("'Tis" -> "tis", "know't," -> "know't")."""
    return [w for w in (t.strip(_PUNCTUATION).lower() for t in text.split()) if w]


@cache
def _vocabulary() -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """The words of the pretraining training part and the pairs of words adjacent in one of its lines."""
    words, pairs = set(), set()
    for line in _corpus_lines():
        w = _words(line.text)
        words.update(w)
        pairs.update(zip(w, w[1:]))
    return frozenset(words), frozenset(pairs)


@cache
def _characters() -> frozenset[str]:
    return frozenset(load_shakespeare())


def _sequence_length(example: Instruction) -> int:
    """Tokens of the full finetuning sequence: prompt, answer and the end marker."""
    return len(format_prompt(example.instruction, example.input)) + len(example.answer) + 1


def fits(example: Instruction) -> bool:
    """Whether ``example`` uses only the corpus's characters and fits the shipped context."""
    text = example.instruction + (example.input or "") + example.answer
    return _sequence_length(example) <= CONTEXT and set(text) <= _characters()


def _make(family: str, input: str, answer: str, source: str) -> Instruction:
    return Instruction(family, INSTRUCTIONS[family], input, answer, source)


def _sample(rng: random.Random, candidates: Sequence[Instruction], k: int, what: str) -> list[Instruction]:
    candidates = [ex for ex in candidates if fits(ex)]
    if len(candidates) < k:
        raise ValueError(f"only {len(candidates)} candidates for {k} {what} examples")
    return rng.sample(candidates, k)


def _balanced(rng: random.Random, candidates: Sequence[Instruction], n: int, family: str) -> list[Instruction]:
    """``n`` examples, the same number for every answer, in a random order."""
    answers = sorted({ex.answer for ex in candidates})
    if n % len(answers):
        raise ValueError(f"{n} {family} examples cannot be split evenly over {len(answers)} answers")
    chosen = [ex for a in answers for ex in _sample(rng, [ex for ex in candidates if ex.answer == a], n // len(answers), f"{family} {a!r}")]
    rng.shuffle(chosen)
    return chosen


def line_sides(seed: int) -> dict[str, list[_Line]]:
    """The corpus lines of each split, the first occurrence of each text only: the
    distinct texts are split once, so a text is on one side whoever uses it."""
    first = {}
    for line in _corpus_lines():
        first.setdefault(line.text, line)
    _, heldout = train_val_split(sorted(first), val_fraction=HELDOUT_FRACTION, seed=seed)
    heldout = set(heldout)
    return {
        "train": [line for text, line in first.items() if text not in heldout],
        "heldout": [line for text, line in first.items() if text in heldout],
    }


def _speaker(lines: Sequence[_Line], rng: random.Random, n: int) -> list[Instruction]:
    speakers = Counter(line.speaker for line in _corpus_lines())
    top = {name for name, _ in speakers.most_common(N_SPEAKERS)}
    said_by = {}
    for line in _corpus_lines():
        said_by.setdefault(line.text, set()).add(line.speaker)
    lo, hi = SPEAKER_LINE_CHARS
    candidates = [
        _make("speaker", line.text, line.speaker, f"line:{line.number}")
        for line in lines
        if line.speaker in top and said_by[line.text] == {line.speaker} and lo <= len(line.text) <= hi
    ]
    return _balanced(rng, candidates, n, "speaker")


def _count(lines: Sequence[_Line], rng: random.Random, n: int) -> list[Instruction]:
    candidates = [
        _make("count", line.text, COUNT_WORDS[len(line.text.split()) - 1], f"line:{line.number}")
        for line in lines
        if len(line.text.split()) <= len(COUNT_WORDS)
    ]
    return _balanced(rng, candidates, n, "count")


def _complete(lines: Sequence[_Line], rng: random.Random, n: int) -> list[Instruction]:
    candidates = []
    for line in lines:
        tokens = line.text.split()
        if len(tokens) < 3 or " ".join(tokens) != line.text:  # keep 2 words or more, cut 1 or more, single spaces
            continue
        keep = rng.randint(2, len(tokens) - 1)
        ex = _make("complete", " ".join(tokens[:keep]), " ".join(tokens[keep:]), f"line:{line.number}")
        if score(ex, ex.answer):  # drops the few lines with a token of punctuation alone
            candidates.append(ex)
    return _sample(rng, candidates, n, "complete")


def _reverse(words: Sequence[str], rng: random.Random, n: int) -> list[Instruction]:
    # Palindromes are left out, so copying the input is never a right answer.
    candidates = [_make("reverse", w, w[::-1], f"word:{w}") for w in words if w != w[::-1]]
    return _sample(rng, candidates, n, "reverse")


def word_sides(seed: int) -> dict[str, list[str]]:
    """The words of 3 to 8 letters of each split, for ``reverse``: a word is on one side only."""
    lo, hi = REVERSE_LETTERS
    words = sorted({w for w in _vocabulary()[0] if lo <= len(w) <= hi and w.isalpha()})
    train, heldout = train_val_split(words, val_fraction=HELDOUT_FRACTION, seed=seed)
    return {"train": train, "heldout": heldout}


def _sentiment(seed: int) -> dict[str, list[Instruction]]:
    index = {}
    for source in SENTIMENT_SOURCES:
        for i, ex in enumerate(load_sentiment(source)):
            index.setdefault(ex, i)
    sides = dict(zip(SPLITS, sentiment_split()))
    candidates = {}
    for split, examples in sides.items():
        candidates[split] = {}  # by text: a sentence repeated in the files is one example
        for ex in examples:
            text = "".join(CHAR_MAP.get(c, c) for c in ex.text)
            answer = "positive" if ex.label == 1 else "negative"
            candidates[split].setdefault(text, _make("sentiment", text, answer, f"sentence:{ex.source}:{index[ex]}"))
    # The same sentence can sit on both sides of the course split (a repeat in the files): held out only.
    train = [ex for text, ex in candidates["train"].items() if text not in candidates["heldout"]]
    rng = random.Random(f"sentiment:{seed}")
    return {
        "train": _balanced(rng, train, N_TRAIN, "sentiment"),
        "heldout": _balanced(rng, list(candidates["heldout"].values()), N_HELDOUT, "sentiment"),
    }


def build_dataset(seed: int = 0) -> dict[str, list[Instruction]]:
    """The data set: ``{"train": [...], "heldout": [...]}``, family after family in the
    order of ``FAMILIES``, ``N_TRAIN`` and ``N_HELDOUT`` examples of each. Deterministic
    for a seed; the bundled files are ``build_dataset(0)``."""
    lines, words = line_sides(seed), word_sides(seed)
    sentiment = _sentiment(seed)
    data = {}
    for split, n in zip(SPLITS, (N_TRAIN, N_HELDOUT)):
        data[split] = [
            *_speaker(lines[split], random.Random(f"speaker:{split}:{seed}"), n),
            *sentiment[split],
            *_reverse(words[split], random.Random(f"reverse:{split}:{seed}"), n),
            *_count(lines[split], random.Random(f"count:{split}:{seed}"), n),
            *_complete(lines[split], random.Random(f"complete:{split}:{seed}"), n),
        ]
    return data


def write_dataset(directory: Path | str = DATA_DIR, seed: int = 0) -> list[Path]:
    """Write ``train.jsonl`` and ``heldout.jsonl`` (one JSON object an example, the
    fields in ``Instruction``'s order) into ``directory``; return their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for split, examples in build_dataset(seed).items():
        paths.append(directory / f"{split}.jsonl")
        paths[-1].write_text("".join(json.dumps(asdict(ex)) + "\n" for ex in examples), encoding="utf-8")
    return paths


def load_instructions(split: str) -> list[Instruction]:
    """The bundled examples of ``split``, ``"train"`` or ``"heldout"``, in file order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    return [Instruction(**json.loads(line)) for line in _read("instructions", f"{split}.jsonl").splitlines()]


def score(example: Instruction, prediction: str) -> bool:
    """Whether ``prediction`` answers ``example``, surrounding whitespace ignored.

    Exact match for ``speaker``, ``sentiment``, ``reverse`` and ``count``. A line
    has many right endings, so for ``complete`` exact match would measure
    memorisation of the corpus, not the skill; a completion counts when it

    - is one non-empty line (the task is to finish this line, not to write more);
    - has between half and twice as many characters as the line's true ending;
    - is made of words of the pretraining training part (``_words``: tokens without
      the punctuation around them, any case), so it reads as the corpus does;
    - starts with a word that follows the prompt's last word somewhere in a line of
      the pretraining training part, so it continues *this* line: a fixed answer
      fails where that pair was never written.

    The true ending of every ``complete`` example passes (the generator keeps only
    such lines).
    """
    if example.family not in FAMILIES:
        raise ValueError(f"unknown family {example.family!r}; choose from {FAMILIES}")
    prediction = prediction.strip()
    if example.family != "complete":
        return prediction == example.answer
    if not prediction or "\n" in prediction or not len(example.answer) / 2 <= len(prediction) <= 2 * len(example.answer):
        return False
    known, pairs = _vocabulary()
    tokens = prediction.split()
    words = _words(prediction)
    if len(words) != len(tokens) or not set(words) <= known:  # a token of punctuation alone is no word either
        return False
    return (_words(example.input or "")[-1], words[0]) in pairs


def majority_baseline(train: Sequence[Instruction], heldout: Sequence[Instruction]) -> dict[str, float]:
    """Held-out accuracy, for each family of ``heldout``, of always giving the training
    set's most frequent answer of that family (the first one on a tie): the score of a
    model that ignores the input. For ``reverse`` it is 0; for ``complete`` it shows
    how often a fixed ending passes the check."""
    rates = {}
    for family in [f for f in FAMILIES if any(ex.family == f for ex in heldout)]:
        answers = Counter(ex.answer for ex in train if ex.family == family)
        if not answers:
            raise ValueError(f"held-out family {family!r} has no training examples")
        constant = answers.most_common(1)[0][0]
        tests = [ex for ex in heldout if ex.family == family]
        rates[family] = sum(score(ex, constant) for ex in tests) / len(tests)
    return rates


if __name__ == "__main__":
    from lmkit.cli import instructions_main

    instructions_main()
