"""Chapter 5's shipped finetuned models and experiments: each file was made by its recipe,
scores what it records (the numbers the book prints), and can be rebuilt by its command."""

from __future__ import annotations

import dataclasses
import json

import pytest

from lmkit import finetune_sweeps
from lmkit.checkpoint import CHECKPOINT_DIR
from lmkit.cli import pretrained_main
from lmkit.finetune import FINETUNED, base_model, evaluate, evaluate_classifier, load_finetuned, recipe_from_record
from lmkit.instructions import FAMILIES

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def shipped(name: str) -> dict:
    return json.loads((CHECKPOINT_DIR / f"{name}.json").read_text())


@pytest.mark.parametrize("name", list(FINETUNED))
def test_shipped_finetuned_model_records_its_recipe(name):
    model, ckpt = load_finetuned(name)
    recipe = recipe_from_record(ckpt["recipe"])
    assert dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, progress=True)) == FINETUNED[name]
    assert ckpt["step"] == FINETUNED[name].train.steps and set(ckpt).isdisjoint({"optimizer", "rng"})
    base, tokenizer = base_model(recipe.base)
    assert ckpt["tokenizer"] == tokenizer.itos


def test_gpt_instruct_answers_as_recorded():
    """Re-score every held-out instruction: the per-family accuracies the book prints."""
    model, ckpt = load_finetuned("gpt_instruct", "instruct")
    _, tokenizer = base_model(ckpt["recipe"]["base"])
    again = evaluate(model, tokenizer)
    assert again["answers"] == ckpt["heldout"]["answers"]
    assert again["families"] == ckpt["heldout"]["families"] and list(again["families"]) == list(FAMILIES)


def test_gpt_sentiment_classifies_as_recorded():
    model, ckpt = load_finetuned("gpt_sentiment", "classify")
    _, tokenizer = base_model(ckpt["recipe"]["base"])
    assert evaluate_classifier(model, tokenizer) == ckpt["heldout"]


@pytest.fixture
def quick(monkeypatch):
    """Sweeps cut to one seed and two settings: enough to check their bookkeeping."""
    monkeypatch.setattr(finetune_sweeps, "SEEDS", [0])
    monkeypatch.setattr(finetune_sweeps, "SENTIMENT_SEEDS", [0])
    monkeypatch.setattr(finetune_sweeps, "VARIANTS", {"full, prompt masked": {}, "LoRA rank 4": {"lora_rank": 4}})
    monkeypatch.setattr(finetune_sweeps, "DATA_SIZES", [20])
    monkeypatch.setattr(finetune_sweeps, "FAMILIES", ("reverse",))


def test_sweep_trials_record_each_setting(tmp_path, quick):
    names = ["finetune_variants", "finetune_data", "finetune_specialists", "sentiment_head", "finetune_before"]
    pretrained_main([arg for n in names for arg in ("--only", n)] + ["--steps", "2", "--out", str(tmp_path), "--quiet"])
    variants = json.loads((tmp_path / "finetune_variants.json").read_text())
    full, lora = variants["results"]
    assert variants["steps"] == 2 and (full["variant"], lora["variant"]) == ("full, prompt masked", "LoRA rank 4")
    assert lora["trainable_parameters"] < full["trainable_parameters"] / 10 and lora["parameters"] == full["parameters"]
    assert all(r["overall"]["n"] == finetune_sweeps.TRIAL_EVAL * len(FAMILIES) for r in variants["results"])
    data = json.loads((tmp_path / "finetune_data.json").read_text())["results"]
    assert [(r["init"], r["n_examples"]) for r in data] == [("pretrained", 20), ("random", 20)]
    specialists = json.loads((tmp_path / "finetune_specialists.json").read_text())
    (only,) = specialists["results"]
    assert only["family"] == "reverse" and list(only["families"]) == ["reverse"]
    assert only["parameters"] < full["parameters"] / 3
    head = json.loads((tmp_path / "sentiment_head.json").read_text())["results"]
    assert len(head) == 1 and len(head[0]["right"]) == len(head[0]["positions"])
    before = json.loads((tmp_path / "finetune_before.json").read_text())
    assert before["overall"]["n"] == 2 * len(FAMILIES) and before["overall"]["stopped"] == 0  # --steps 2: two per family


def test_shipped_sweeps_cover_every_setting_and_seed():
    variants = shipped("finetune_variants")["results"]
    assert [(r["variant"], r["seed"]) for r in variants] == [(v, s) for v in finetune_sweeps.VARIANTS for s in finetune_sweeps.SEEDS]
    data = shipped("finetune_data")["results"]
    expected = [(i, n, s) for i in ("pretrained", "random") for n in finetune_sweeps.DATA_SIZES for s in finetune_sweeps.SEEDS]
    assert [(r["init"], r["n_examples"], r["seed"]) for r in data] == expected
    specialists = shipped("finetune_specialists")["results"]
    assert [(r["family"], r["seed"]) for r in specialists] == [(f, s) for f in FAMILIES for s in finetune_sweeps.SEEDS]
    assert [r["seed"] for r in shipped("sentiment_head")["results"]] == finetune_sweeps.SENTIMENT_SEEDS
    assert shipped("finetune_before")["overall"]["n"] == 100 * len(FAMILIES)
