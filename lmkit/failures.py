"""Chapter 6's measurements of the course models: what they learned, and where they fail.

``build_failures`` runs the shipped models once and writes every output chapter 6 and
exercise 06 look at, with the measures of ``lmkit.analysis``, into
``lmkit/checkpoints/failures.json``; ``load_failures`` reads it back. The command is
``OMP_NUM_THREADS=1 python -m lmkit.pretrained --only failures``: 347 s measured (one
thread, on a two-core machine shared with other work; the seconds of each part are in
the file's ``seconds``; two runs gave identical results). ``--steps N`` is a quick
trial with N examples of each kind and short samples, which checks the bookkeeping,
not the numbers.

Two models are run:

- ``gpt_instruct`` (chapter 5), greedy, on the held-out instructions: its confidence in
  each answer (``"calibration"``), its accuracy against the difficulty of the input
  (``"difficulty"``), under other wordings of each instruction (``"rephrasing"``) and on
  inputs unlike its training data (``"unfamiliar"``);
- ``char_gpt_rope`` (chapter 3, the base ``gpt_instruct`` was finetuned from; its 128
  characters of context are twice those of ``gpt_shakespeare_modern``), sampling text:
  samples and held-out passages compared with the training text (``"memorisation"``),
  the form of its samples (``"form"``), and loops against temperature (``"loops"``).
  Samples longer than the context are generated with a sliding window
  (``use_cache=False``), the way the model was trained to read.

No input was a finetuning example: chapter 5's held-out instructions, new examples made
from the held-out side of its split (``lmkit.instructions``), invented strings, and the
long words of ``"unfamiliar"`` (words of the pretraining text too long for the data set).
The passages and prompts of the base model come from the corpus's held-out tenth.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from lmkit import instructions
from lmkit.analysis import (
    distinct_ngram_ratio,
    line_lengths,
    longest_copied_span,
    ngram_overlap,
    punctuation_rate,
    real_word_share,
    repeated_share,
    words,
)
from lmkit.baselines import BigramLM
from lmkit.checkpoint import CHECKPOINT_DIR, write_results
from lmkit.data import char_data
from lmkit.finetune import ANSWER_TOKENS, answer_room, base_model, end_id, evaluate, first_line, heldout_instructions, load_finetuned
from lmkit.generate import generate
from lmkit.instructions import COUNT_WORDS, INSTRUCTIONS, Instruction, score
from lmkit.template import format_prompt
from lmkit.tokenizers import CharTokenizer
from lmkit.transformer import GPT

INSTRUCT = "gpt_instruct"
SAMPLER = "char_gpt_rope"
SAMPLES = 24  # samples of the pretrained model, and as many held-out passages
SAMPLE_CHARS = 400
SAMPLE_TEMPERATURE = 0.8
NGRAM = 12  # 12 characters are two or three words: sharing one with the training text is not chance
TEMPERATURES = (0.0, 0.3, 0.6, 0.8, 1.0)
LOOP_PROMPTS, LOOP_CHARS, LOOP_PROMPT_CHARS = 16, 300, 64
LOOP_NGRAM = 20  # see lmkit.analysis.repeated_share
DISTINCT_NGRAM = 8
PER_LEVEL = 30  # extra held-out examples per number of words (count) and per word length (reverse)
OOD = 100  # examples of each unfamiliar kind
LONG_WORDS = (9, 12)  # letters of the long words for reverse (training words have 3 to 8)
REPHRASINGS = {
    "speaker": ("Which character says this line?", "Name the speaker of this line.", "Whose line is this?"),
    "sentiment": (
        "Does this review sound positive or negative?",
        "Say whether this review is positive or negative.",
        "Positive or negative: what is the tone of this review?",
    ),
    "reverse": ("Write this word in reverse.", "Reverse the letters of this word.", "Spell this word from its last letter to its first."),
    "count": ("Count the words in this line.", "How many words does this line have?", "What is the number of words in this line?"),
    "complete": ("Complete this line.", "Continue this line.", "Write the end of this line."),
}
NUMBER_WORDS = (*COUNT_WORDS, "eleven", "twelve", "thirteen", "fourteen", "fifteen")
TRIAL_CHARS = 60


@torch.no_grad()
def answer_confidence(model: GPT, tokenizer: CharTokenizer, example: Instruction, answer: str, stopped: bool) -> float:
    """The probability ``model`` gives ``answer`` to ``example``'s prompt: the product of the
    probabilities of its tokens, each given the prompt and the tokens before it, times that
    of ``<end>`` after it if the answer ``stopped`` (the chance that sampling at temperature
    1 would give exactly this answer)."""
    prompt = tokenizer.encode(format_prompt(example.instruction, example.input))
    target = tokenizer.encode(answer) + ([end_id(tokenizer)] if stopped else [])
    if not target:
        raise ValueError("an empty answer that did not stop has no tokens to score")
    ids = torch.tensor(prompt + target)
    logits = model(ids[None, :-1])[0][0, len(prompt) - 1 :]
    return F.log_softmax(logits, dim=-1).gather(1, ids[len(prompt) :, None]).sum().exp().item()


def _answers(model: GPT, tokenizer: CharTokenizer, examples: Sequence[Instruction]) -> list[dict]:
    """Greedy answers (``lmkit.finetune.evaluate``), each with whether it is right and
    whether it ended with ``<end>`` (it did if it is shorter than what evaluate allowed)."""
    texts = evaluate(model, tokenizer, examples)["answers"]
    rows = []
    for e, text in zip(examples, texts):
        room = min(ANSWER_TOKENS, answer_room(model, len(tokenizer.encode(format_prompt(e.instruction, e.input)))))
        rows.append({"answer": text, "correct": score(e, first_line(text)), "stopped": len(tokenizer.encode(text)) < room})
    return rows


def _calibration(model: GPT, tokenizer: CharTokenizer, examples: Sequence[Instruction]) -> dict:
    rows = _answers(model, tokenizer, examples)
    return {
        "family": [e.family for e in examples],
        "confidence": [answer_confidence(model, tokenizer, e, r["answer"], r["stopped"]) for e, r in zip(examples, rows)],
        "correct": [r["correct"] for r in rows],
        "answers": [r["answer"] for r in rows],
        "stopped": [r["stopped"] for r in rows],
    }


def _difficulty(model: GPT, tokenizer: CharTokenizer, per_level: int) -> dict:
    """Count by the number of words of the line, reverse by the length of the word, on
    examples of the held-out side of chapter 5's split (never its training texts)."""
    # The held-out side of the split that lmkit.instructions made the bundled examples from.
    lines, heldout_words = instructions._line_sides(0)["heldout"], instructions._word_sides(0)["heldout"]
    rng = random.Random("failures:difficulty")
    count = []
    for k in range(1, len(COUNT_WORDS) + 1):
        texts = [line.text for line in lines if len(line.text.split()) == k]
        count += [
            Instruction("count", INSTRUCTIONS["count"], t, COUNT_WORDS[k - 1], "heldout")
            for t in rng.sample(texts, min(per_level, len(texts)))
        ]
    reverse = []
    lo, hi = instructions.REVERSE_LETTERS
    for k in range(lo, hi + 1):
        chosen = [w for w in heldout_words if len(w) == k and w != w[::-1]]
        reverse += [
            Instruction("reverse", INSTRUCTIONS["reverse"], w, w[::-1], "heldout") for w in rng.sample(chosen, min(per_level, len(chosen)))
        ]
    out = {}
    for family, examples, level in (("count", count, lambda e: len(e.input.split())), ("reverse", reverse, lambda e: len(e.input))):
        rows = _answers(model, tokenizer, examples)
        out[family] = {
            "level": [level(e) for e in examples],
            "correct": [r["correct"] for r in rows],
            "inputs": [e.input for e in examples],
            "answers": [r["answer"] for r in rows],
        }
    out["count"]["unit"], out["reverse"]["unit"] = "words in the line", "letters in the word"
    return out


def _rephrasing(model: GPT, tokenizer: CharTokenizer, examples: Sequence[Instruction], original: Sequence[str]) -> dict:
    """Accuracy of each other wording of each family's instruction on the same inputs, and the
    share of answers identical to those given under the original wording."""
    out = {}
    for family, wordings in REPHRASINGS.items():
        # Only the inputs that every wording's prompt, the answer and <end> fit in the context with
        # (a longer wording leaves less room), so that all wordings answer the same inputs.
        chosen = [
            (e, a)
            for e, a in zip(examples, original)
            if e.family == family and all(instructions._fits(dataclasses.replace(e, instruction=w)) for w in wordings)
        ]
        if not chosen:
            continue
        base = [a for _, a in chosen]
        results = [{"wording": INSTRUCTIONS[family], "correct": [score(e, first_line(a)) for e, a in chosen], "answers": base}]
        for wording in wordings:
            rows = _answers(model, tokenizer, [dataclasses.replace(e, instruction=wording) for e, _ in chosen])
            results.append({"wording": wording, "correct": [r["correct"] for r in rows], "answers": [r["answer"] for r in rows]})
        for r in results:
            r["agreement"] = sum(a.strip() == b.strip() for a, b in zip(r["answers"], base)) / len(base)
        out[family] = results
    return out


def _scramble(word: str, rng: random.Random) -> str:
    letters = list(word)
    rng.shuffle(letters)
    return "".join(letters)


def _unfamiliar(model: GPT, tokenizer: CharTokenizer, examples: Sequence[Instruction], n: int, known: frozenset[str]) -> dict:
    """Count and reverse on inputs unlike their training data, each next to the held-out
    examples it was made from (``"familiar"``), whose answers are the same. ``known``: the
    words of the training text (invented words avoid them, long words come from them)."""
    rng = random.Random("failures:unfamiliar")
    count = [e for e in examples if e.family == "count"][:n]
    reverse = [e for e in examples if e.family == "reverse"][:n]
    lines = instructions._line_sides(0)["heldout"]  # as in _difficulty
    long_lines = [line.text for line in lines if len(line.text.split()) > len(COUNT_WORDS)][:n]
    lo, hi = LONG_WORDS
    long_words = sorted({w for w in known if lo <= len(w) <= hi and w.isalpha()})
    invented = []
    while len(invented) < n:
        w = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(*instructions.REVERSE_LETTERS)))
        if w not in known and w != w[::-1] and w not in invented:
            invented.append(w)

    def make(family: str, inputs: Sequence[str], answers: Sequence[str]) -> list[Instruction]:
        made = [Instruction(family, INSTRUCTIONS[family], i, a, "unfamiliar") for i, a in zip(inputs, answers)]
        return [e for e in made if instructions._fits(e)]

    sets = {
        "count: familiar": count,
        "count: CAPITALS": make("count", [e.input.upper() for e in count], [e.answer for e in count]),
        "count: letters of each word shuffled": make(
            "count", [" ".join(_scramble(w, rng) for w in e.input.split()) for e in count], [e.answer for e in count]
        ),
        "count: more than ten words": make("count", long_lines, [NUMBER_WORDS[len(t.split()) - 1] for t in long_lines]),
        "reverse: familiar": reverse,
        "reverse: CAPITALS": make("reverse", [e.input.upper() for e in reverse], [e.answer.upper() for e in reverse]),
        "reverse: invented words": make("reverse", invented, [w[::-1] for w in invented]),
        f"reverse: words of {lo} to {hi} letters": make(
            "reverse", (ws := rng.sample(long_words, min(n, len(long_words)))), [w[::-1] for w in ws]
        ),
    }
    out = {}
    for name, chosen in sets.items():
        rows = _answers(model, tokenizer, chosen)
        out[name] = {"inputs": [e.input for e in chosen], "correct": [r["correct"] for r in rows], "answers": [r["answer"] for r in rows]}
    return out


def _sample(model: GPT, tokenizer: CharTokenizer, prompt: str, chars: int, temperature: float, seed: int) -> str:
    ids = tokenizer.encode(prompt)
    return tokenizer.decode(generate(model, ids, chars, temperature=temperature, seed=seed, use_cache=False)[len(ids) :])


def _form(text: str, vocabulary: frozenset[str]) -> dict:
    lengths = line_lengths(text)
    return {
        "real_words": real_word_share(text, vocabulary),
        "mean_line_chars": sum(lengths) / len(lengths),
        "punctuation": punctuation_rate(text),
    }


def build_failures(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Run the measurements of the module docstring and write ``failures.json`` into
    ``out_dir``. ``steps``: a quick trial, with ``steps`` examples of each kind, samples
    and passages, and samples of ``TRIAL_CHARS`` characters."""
    start = time.perf_counter()
    seconds: dict[str, float] = {}
    mark = [start]

    def log(part: str) -> None:
        now = time.perf_counter()
        seconds[part], mark[0] = round(now - mark[0], 1), now
        if progress:
            print(f"failures: {part} done, {seconds[part]} s", flush=True)

    trial = steps is not None
    tokenizer, train_ids, val_ids = char_data()
    train_text, val_text = tokenizer.decode(train_ids.tolist()), tokenizer.decode(val_ids.tolist())
    vocabulary = frozenset(words(train_text))
    payload: dict = {"instruct_model": INSTRUCT, "sample_model": SAMPLER}

    instruct, _ = load_finetuned(INSTRUCT, "instruct")
    examples = heldout_instructions(per_family=steps)
    payload["calibration"] = _calibration(instruct, tokenizer, examples)
    log("calibration")
    payload["difficulty"] = _difficulty(instruct, tokenizer, steps or PER_LEVEL)
    log("difficulty")
    payload["rephrasing"] = _rephrasing(instruct, tokenizer, examples, payload["calibration"]["answers"])
    log("rephrasing")
    payload["unfamiliar"] = _unfamiliar(instruct, tokenizer, examples, steps or OOD, vocabulary)
    log("unfamiliar")

    sampler, _ = base_model(SAMPLER)
    n, chars = (steps, TRIAL_CHARS) if trial else (SAMPLES, SAMPLE_CHARS)
    samples = [_sample(sampler, tokenizer, "\n", chars, SAMPLE_TEMPERATURE, seed) for seed in range(n)]
    # Evenly spaced passages of the held-out tenth, each from the start of a line.
    starts = [val_text.index("\n", i * (len(val_text) - 2 * SAMPLE_CHARS) // n) + 1 for i in range(n)]
    heldout = [val_text[at : at + chars] for at in starts]
    bigram = BigramLM(tokenizer.vocab_size).fit(train_ids)
    newline = tokenizer.encode("\n")[0]
    generator = torch.Generator().manual_seed(0)
    bigram_samples = [tokenizer.decode(bigram.sample(newline, chars, generator)) for _ in range(n)]
    log("samples")

    def copied(texts: list[str]) -> dict:
        spans = [longest_copied_span(t, train_text) for t in texts]
        return {
            "longest_span": [length for length, _ in spans],
            "span_start": [s for _, s in spans],
            "overlap": [ngram_overlap(t, train_text, NGRAM) for t in texts],
        }

    payload["memorisation"] = {
        "samples": samples,
        "heldout": heldout,
        "temperature": SAMPLE_TEMPERATURE,
        "model": SAMPLER,
        "chars": chars,
        "ngram": NGRAM,
        "measures": {"samples": copied(samples), "heldout": copied(heldout)},
    }
    log("memorisation")
    by_source = {"bigram": bigram_samples, SAMPLER: samples, "held-out text": heldout}
    payload["form"] = {
        "texts": by_source,
        "measures": {name: [_form(t, vocabulary) for t in texts] for name, texts in by_source.items()},
        "line_lengths": {name: [x for t in texts for x in line_lengths(t)] for name, texts in by_source.items()},
    }
    log("form")

    k, loop_chars = (steps, TRIAL_CHARS) if trial else (LOOP_PROMPTS, LOOP_CHARS)
    prompts = [val_text[at : at + LOOP_PROMPT_CHARS] for at in starts[:k]]
    loops: dict = {
        "prompts": prompts,
        "chars": loop_chars,
        "ngram": LOOP_NGRAM,
        "distinct_ngram": DISTINCT_NGRAM,
        "temperatures": list(TEMPERATURES),
        "runs": [],
    }
    for t in TEMPERATURES:
        texts = [_sample(sampler, tokenizer, p, loop_chars, t, seed) for seed, p in enumerate(prompts)]
        loops["runs"].append(
            {
                "temperature": t,
                "texts": texts,
                "repeated": [repeated_share(x, LOOP_NGRAM) for x in texts],
                "distinct": [distinct_ngram_ratio(x, DISTINCT_NGRAM) for x in texts],
                "real_words": [real_word_share(x, vocabulary) for x in texts],
            }
        )
    real = [val_text[at + LOOP_PROMPT_CHARS : at + LOOP_PROMPT_CHARS + loop_chars] for at in starts[:k]]  # what the prompts go on with
    loops["heldout"] = {
        "repeated": [repeated_share(x, LOOP_NGRAM) for x in real],
        "distinct": [distinct_ngram_ratio(x, DISTINCT_NGRAM) for x in real],
    }
    payload["loops"] = loops
    log("loops")
    payload["seconds"] = {**seconds, "total": round(time.perf_counter() - start, 1)}
    return write_results(out_dir, "failures", payload)


def load_failures(directory: Path = CHECKPOINT_DIR) -> dict:
    """The measurements ``build_failures`` wrote into ``directory`` (default: the shipped ones)."""
    path = Path(directory) / "failures.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: rebuild it with `python -m lmkit.pretrained --only failures`")
    return json.loads(path.read_text())
