"""lmkit.failures: the stated probability of an answer, the shipped measurements of
chapter 6 (what exercise 06 reads), and a quick trial of the builder."""

from __future__ import annotations

import pytest
import torch

from lmkit.analysis import longest_copied_span, ngram_overlap
from lmkit.data import char_data
from lmkit.failures import answer_confidence, build_failures, load_failures
from lmkit.finetune import end_id, first_line, heldout_instructions, load_finetuned
from lmkit.instructions import FAMILIES, score
from lmkit.template import format_prompt

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


@pytest.fixture(scope="module")
def instruct():
    model, ckpt = load_finetuned("gpt_instruct", "instruct")
    return model, ckpt


@pytest.fixture(scope="module")
def shipped():
    return load_failures()


def _greedy_with_probabilities(model, tokenizer, example, limit=64):
    """Greedy decoding one token at a time without a cache, multiplying the probability
    of each chosen token: an independent reference for answer_confidence."""
    ids = tokenizer.encode(format_prompt(example.instruction, example.input))
    prompt_len, end, p = len(ids), end_id(tokenizer), 1.0
    with torch.no_grad():
        for _ in range(limit):
            probs = torch.softmax(model(torch.tensor([ids]))[0][0, -1].double(), -1)
            nxt = int(probs.argmax())
            p *= float(probs[nxt])
            ids.append(nxt)
            if nxt == end:
                return tokenizer.decode(ids[prompt_len:-1]), p
    raise AssertionError("no <end> within the limit")


def test_answer_confidence_is_the_probability_of_the_greedy_answer(instruct):
    model, ckpt = instruct
    tokenizer = char_data()[0]
    for example in heldout_instructions(("count", "reverse"), per_family=1):
        text, p = _greedy_with_probabilities(model, tokenizer, example)
        assert answer_confidence(model, tokenizer, example, text, stopped=True) == pytest.approx(p, rel=1e-4)
        # without <end>, the answer's own tokens only: at least as probable
        assert answer_confidence(model, tokenizer, example, text, stopped=False) >= p


def test_answer_confidence_rejects_an_empty_unstopped_answer(instruct):
    example = heldout_instructions(("count",), per_family=1)[0]
    with pytest.raises(ValueError, match="empty answer"):
        answer_confidence(instruct[0], char_data()[0], example, "", stopped=False)


def test_shipped_calibration_is_gpt_instruct_on_every_heldout_instruction(shipped, instruct):
    cal = shipped["calibration"]
    examples = heldout_instructions()
    assert cal["family"] == [e.family for e in examples] and len(examples) == 500
    # the answers chapter 5 recorded for the shipped model, scored the way it scores them
    assert cal["answers"] == instruct[1]["heldout"]["answers"]
    assert cal["correct"] == [score(e, first_line(a)) for e, a in zip(examples, cal["answers"])]
    assert all(0.0 < c <= 1.0 for c in cal["confidence"])
    for family in FAMILIES:
        right = [c for c, f in zip(cal["correct"], cal["family"]) if f == family]
        assert sum(right) / len(right) == pytest.approx(instruct[1]["heldout"]["families"][family]["correct"])


def test_shipped_memorisation_samples_and_heldout_passages(shipped):
    mem = shipped["memorisation"]
    tokenizer, train_ids, val_ids = char_data()
    val_text = tokenizer.decode(val_ids.tolist())
    assert len(mem["samples"]) == len(mem["heldout"]) >= 20
    assert all(300 <= len(t) <= 500 for t in mem["samples"] + mem["heldout"])
    assert all(h in val_text for h in mem["heldout"])
    # one sample's recorded measures, recomputed against the training text
    train_text = tokenizer.decode(train_ids.tolist())
    sample, measures = mem["samples"][0], mem["measures"]["samples"]
    assert longest_copied_span(sample, train_text) == (measures["longest_span"][0], measures["span_start"][0])
    assert ngram_overlap(sample, train_text, mem["ngram"]) == pytest.approx(measures["overlap"][0])


def test_build_failures_quick_trial(tmp_path):
    data = load_failures(build_failures(steps=1, out_dir=tmp_path, progress=False).parent)
    assert len(data["calibration"]["confidence"]) == len(data["calibration"]["correct"]) == len(FAMILIES)
    assert len(data["memorisation"]["samples"]) == len(data["memorisation"]["heldout"]) == 1
    assert [run["temperature"] for run in data["loops"]["runs"]] == [0.0, 0.3, 0.6, 0.8, 1.0]
    assert set(data["rephrasing"]) == set(FAMILIES)
    assert data["made_on"]["threads"] == 1


def test_load_failures_names_the_rebuild_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="--only failures"):
        load_failures(tmp_path)


def test_shipped_rephrasing_and_unfamiliar_reuse_the_heldout_answers(shipped):
    cal = shipped["calibration"]
    for family, results in shipped["rephrasing"].items():
        as_trained = results[0]
        assert as_trained["agreement"] == 1.0 and len({len(r["correct"]) for r in results}) == 1
        answers = [a for a, f in zip(cal["answers"], cal["family"]) if f == family]
        assert set(as_trained["answers"]) <= set(answers) and (family == "sentiment" or as_trained["answers"] == answers)
    unfamiliar = shipped["unfamiliar"]
    familiar = unfamiliar["count: familiar"]["inputs"]
    assert unfamiliar["count: CAPITALS"]["inputs"] == [t.upper() for t in familiar]
    shuffled = unfamiliar["count: letters of each word shuffled"]["inputs"]
    assert [sorted(t.replace(" ", "")) for t in shuffled] == [sorted(t.replace(" ", "")) for t in familiar]
