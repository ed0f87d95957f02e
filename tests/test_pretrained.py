"""The shipped checkpoints load, score what they claim, and can be rebuilt."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from lmkit.checkpoint import VERSION
from lmkit.cli import pretrained_main
from lmkit.data import char_data
from lmkit.pretrained import (
    ABLATION_SEEDS,
    CHECKPOINT_DIR,
    DEPTH_SWEEP,
    DEPTHS,
    KV_LENGTHS,
    MODERN_CHANGES,
    RECIPES,
    SWEEP_SEEDS,
    load_char_lm,
    load_copy_model,
    load_gpt,
)
from lmkit.recipes import BABY_GPT
from lmkit.tasks import COPY_LM_VOCAB, COPY_VOCAB, START, copy_batch, copy_lm_prompt
from lmkit.train import evaluate_lm, num_parameters
from lmkit.transformer import GPT

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


@pytest.fixture(scope="module")
def val_data() -> torch.Tensor:
    return char_data()[2]


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_char_lm_scores_its_recorded_held_out_loss(cell, val_data):
    model, ckpt = load_char_lm(cell)
    assert not model.training
    # The book quotes ckpt["val_loss"]: it must be what the weights really score.
    assert evaluate_lm(model, val_data, ckpt["block_size"]) == pytest.approx(ckpt["val_loss"], abs=1e-4)
    # Far better than the bigram counts of chapter 0 (3.58 bits = 2.48 nats per character).
    assert ckpt["val_loss"] < 1.75


def test_lstm_beats_rnn_with_the_same_recipe():
    assert load_char_lm("lstm")[1]["val_loss"] < load_char_lm("rnn")[1]["val_loss"]


def test_copy_model_shows_the_bottleneck():
    model, ckpt = load_copy_model()
    g = torch.Generator().manual_seed(0)

    def acc(n: int) -> float:
        src, _, _ = copy_batch(256, n, g)
        return (model.greedy(src, n, START) == src).float().mean().item()

    assert acc(4) > 0.99  # short strings fit in the state
    assert acc(ckpt["max_len"]) < 0.7  # the longest training strings do not


def test_checkpoints_are_small():
    sizes = {p.name: p.stat().st_size for p in CHECKPOINT_DIR.glob("*.pt")}
    assert sizes and all(size < 5_000_000 for size in sizes.values()), sizes  # a few MB at most each
    assert sum(sizes.values()) < 25_000_000  # ten models, a clone stays small


def test_unknown_cell_is_a_clear_error():
    with pytest.raises(ValueError, match="'rnn' or 'lstm'"):
        load_char_lm("gru")


def load_shipped(name: str, directory=CHECKPOINT_DIR):
    if name in ("char_rnn", "char_lstm"):
        return load_char_lm(name[5:], directory)
    return load_copy_model(directory) if name == "copy_lstm" else load_gpt(name, directory)


@pytest.mark.parametrize("name", ["char_rnn", "copy_lstm", "copy_gpt", "gpt_shakespeare"])
def test_recipe_rebuilds_a_loadable_checkpoint(name, tmp_path):
    pretrained_main(["--only", name, "--steps", "2", "--out", str(tmp_path), "--quiet"])
    model, ckpt = load_shipped(name, tmp_path)
    assert ckpt["train_config"]["steps"] == 2 and len(ckpt["history"]["train_loss"]) == 2
    assert not model.training and ckpt["version"] == VERSION and ckpt["step"] == 2
    assert "optimizer" not in ckpt and "rng" not in ckpt  # shipped checkpoints carry no resume state
    # The model runs: a forward pass on the recipe's kind of batch gives a finite loss.
    if name == "copy_lstm":
        src, tgt_in, tgt_out = copy_batch(2, 5, torch.Generator().manual_seed(0))
        loss = model(src, tgt_in, tgt_out)[1]
    else:
        x = torch.randint(model.config.vocab_size, (2, 9))
        loss = model(x[:, :-1], x[:, 1:])[1]
    assert torch.isfinite(loss)
    if name == "gpt_shakespeare":
        assert sorted(ckpt["samples"]) == [0, 2] and ckpt["val_loss"] > 0 and len(ckpt["tokenizer"]) == 65


def test_depth_sweep_trial_counts_parameters_with_num_parameters(tmp_path, monkeypatch):
    monkeypatch.setattr("lmkit.pretrained.DEPTHS", [2, 1])  # two short runs are enough to check the bookkeeping
    monkeypatch.setattr("lmkit.pretrained.SWEEP_SEEDS", [0])
    pretrained_main(["--only", "depth_sweep", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    sweep = json.loads((tmp_path / "depth_sweep.json").read_text())
    assert sweep["steps"] == 2 and [r["n_layers"] for r in sweep["results"]] == [2, 1]
    for r in sweep["results"]:
        model = GPT(dataclasses.replace(DEPTH_SWEEP.model, n_layers=r["n_layers"]))
        assert r["parameters"] == num_parameters(model)
        assert r["history"]["train_step"] == [1, 2] and r["val_loss"] > 0


def test_shipped_depth_sweep_is_the_course_recipe_at_every_depth_and_seed():
    sweep = json.loads((CHECKPOINT_DIR / "depth_sweep.json").read_text())
    assert sweep["warmup"] == BABY_GPT.train.warmup and sweep["batch_size"] == BABY_GPT.batch_size
    assert sweep["steps"] == DEPTH_SWEEP.train.steps  # the default command reproduces the shipped file
    assert sorted((r["n_layers"], r["seed"]) for r in sweep["results"]) == [(d, s) for d in DEPTHS for s in SWEEP_SEEDS]
    for r in sweep["results"]:
        assert r["parameters"] == num_parameters(GPT(dataclasses.replace(DEPTH_SWEEP.model, n_layers=r["n_layers"])))
        assert r["history"]["train_step"][-1] == sweep["steps"]
    # the runs are the course recipe (shortened): seeds differ, and each seed is a different run
    assert len({r["val_loss"] for r in sweep["results"]}) == len(sweep["results"])


def test_modern_ablation_trial_changes_one_setting_per_variant(tmp_path, monkeypatch):
    monkeypatch.setattr("lmkit.pretrained.MODERN_CHANGES", {"GPT-2 style": {}, "RMSNorm": {"norm": "rmsnorm"}})
    monkeypatch.setattr("lmkit.pretrained.ABLATION_SEEDS", [0])
    pretrained_main(["--only", "modern_ablation", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    results = json.loads((tmp_path / "modern_ablation.json").read_text())["results"]
    assert [r["variant"] for r in results] == ["GPT-2 style", "RMSNorm"]
    assert results[1]["norm"] == "rmsnorm" and "norm" not in results[0]
    assert results[0]["parameters"] == num_parameters(GPT(DEPTH_SWEEP.model))
    assert results[1]["parameters"] == num_parameters(GPT(dataclasses.replace(DEPTH_SWEEP.model, norm="rmsnorm")))


def test_shipped_modern_ablation_has_every_change_and_seed():
    ablation = json.loads((CHECKPOINT_DIR / "modern_ablation.json").read_text())
    sweep = json.loads((CHECKPOINT_DIR / "depth_sweep.json").read_text())
    assert ablation["steps"] == sweep["steps"] and ablation["warmup"] == BABY_GPT.train.warmup
    assert [(r["variant"], r["seed"]) for r in ablation["results"]] == [(v, s) for v in MODERN_CHANGES for s in ABLATION_SEEDS]
    for r in ablation["results"]:
        model = GPT(dataclasses.replace(DEPTH_SWEEP.model, **MODERN_CHANGES[r["variant"]]))
        assert r["parameters"] == num_parameters(model)


def test_kv_cache_timing_trial_and_shipped_file(tmp_path):
    pretrained_main(["--only", "kv_cache_timing", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    trial = json.loads((tmp_path / "kv_cache_timing.json").read_text())
    assert trial["lengths"] == [2] and set(trial["seconds"]) == {"with KV cache", "without"}
    shipped = json.loads((CHECKPOINT_DIR / "kv_cache_timing.json").read_text())
    assert shipped["lengths"] == KV_LENGTHS and all(len(t) == len(KV_LENGTHS) for t in shipped["seconds"].values())


@pytest.mark.parametrize("name", list(RECIPES))
def test_shipped_checkpoint_records_its_recipe(name):
    """Each shipped file was made by RECIPES[name] (the vocabulary comes from the task)."""
    recipe = RECIPES[name]
    ckpt = load_shipped(name)[1]
    vocab = 65 if recipe.task == "chars" else COPY_LM_VOCAB if name == "copy_gpt" else COPY_VOCAB
    assert ckpt["version"] == VERSION and set(ckpt).isdisjoint({"optimizer", "rng"})
    # Compared as configs, so that a field added later with a default still matches the stored dict.
    assert type(recipe.model)(**ckpt["model_config"]) == dataclasses.replace(recipe.model, vocab_size=vocab)
    without_progress = {k: v for k, v in ckpt["train_config"].items() if k != "progress"}
    assert without_progress == {k: v for k, v in dataclasses.asdict(recipe.train).items() if k != "progress"}
    assert (ckpt["task"], ckpt["batch_size"], ckpt["seed"], ckpt["step"]) == (
        recipe.task,
        recipe.batch_size,
        recipe.seed,
        recipe.train.steps,
    )
    assert ckpt["block_size"] == recipe.block_size if recipe.task == "chars" else ckpt["max_len"] == recipe.max_len
    assert ("samples" in ckpt) == recipe.record_samples


def test_missing_checkpoint_says_how_to_rebuild(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m lmkit.pretrained"):
        load_copy_model(tmp_path)


@pytest.mark.parametrize("name", ["char_gpt_learned", "char_gpt_rope"])
def test_char_gpt_scores_its_recorded_held_out_loss(name, val_data):
    model, ckpt = load_gpt(name)
    assert not model.training
    assert evaluate_lm(model, val_data, ckpt["block_size"]) == pytest.approx(ckpt["val_loss"], abs=1e-4)
    assert ckpt["val_loss"] < 2.0  # well below the bigram counts' 2.48 nats


def test_copy_gpt_solves_what_the_lstm_could_not():
    model, ckpt = load_gpt("copy_gpt")
    g = torch.Generator().manual_seed(0)
    n = ckpt["max_len"]
    src, _, _ = copy_batch(128, n, g)
    seq = copy_lm_prompt(src, pad_to=n)
    with torch.no_grad():
        for _ in range(n):
            seq = torch.cat([seq, model(seq)[0][:, -1].argmax(dim=-1, keepdim=True)], dim=1)
    assert (seq[:, -n:] == src).float().mean() > 0.95


def test_course_gpt_matches_the_baby_gpt_yardstick(val_data):
    """The book states this loss; the nanoGPT baby recipe reaches about 1.89 nats after 2000 steps."""
    model, ckpt = load_gpt("gpt_shakespeare")
    assert ckpt["train_config"]["steps"] == 2000 and ckpt["block_size"] == 64
    assert evaluate_lm(model, val_data, 64) == pytest.approx(ckpt["val_loss"], abs=1e-4)
    assert ckpt["val_loss"] <= 1.90
    modern, modern_ckpt = load_gpt("gpt_shakespeare_modern")
    assert modern.config.positions == "rope" and modern.config.norm == "rmsnorm" and modern.config.mlp == "swiglu"
    assert abs(modern.num_parameters() - model.num_parameters()) < 0.01 * model.num_parameters()


def test_sentiment_sweep_trial_records_every_seed_and_condition(tmp_path, monkeypatch):
    monkeypatch.setattr("lmkit.pretrained.SENTIMENT_SEEDS", [0, 1])
    pretrained_main(["--only", "sentiment_sweep", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    sweep = json.loads((tmp_path / "sentiment_sweep.json").read_text())
    assert sweep["steps"] == 2 and [r["seed"] for r in sweep["results"]] == [0, 1]
    for r in sweep["results"]:
        for key in ("ordered/held_out", "ordered/held_out_shuffled", "shuffled_training/held_out_shuffled"):
            assert len(r[key]) == sweep["n_held_out"] == 600 and set(r[key]) <= {"0", "1"}


@pytest.mark.slow  # one training of the classifier, about 15 s
def test_shipped_sentiment_sweep_scores_what_its_seed_scores():
    """The chapter quotes the sweep: seed 0, retrained here, must get the same sentences right."""
    from lmkit.baselines import predict_sentiment, sentiment_split, sentiment_words, train_sentiment_lstm

    sweep = json.loads((CHECKPOINT_DIR / "sentiment_sweep.json").read_text())
    assert [r["seed"] for r in sweep["results"]] == list(range(6))
    train_ex, held_out = sentiment_split()
    words = sentiment_words(train_ex)
    model, _ = train_sentiment_lstm(train_ex, words, seed=0)
    right = "".join(str(int(p == ex.label)) for p, ex in zip(predict_sentiment(model, words, held_out), held_out))
    assert right == sweep["results"][0]["ordered/held_out"]


def test_block_ladder_trial_records_each_rung_and_seed(tmp_path, monkeypatch):
    from lmkit.pretrained import BLOCK_LADDER, KNOCKOUTS, LADDER

    # Two rungs (the bare attention and the full block), one knockout, two seeds, two steps: the bookkeeping.
    monkeypatch.setattr("lmkit.pretrained.LADDER", [LADDER[0], LADDER[-1]])
    monkeypatch.setattr("lmkit.pretrained.KNOCKOUTS", KNOCKOUTS[1:2])
    monkeypatch.setattr("lmkit.pretrained.LADDER_SEEDS", [0, 1])
    pretrained_main(["--only", "block_ladder", "--steps", "2", "--out", str(tmp_path), "--quiet"])
    ladder = json.loads((tmp_path / "block_ladder.json").read_text())
    assert ladder["steps"] == 2 and ladder["seeds"] == [0, 1]
    assert [r["name"] for r in ladder["rungs"]] == [LADDER[0][0], LADDER[-1][0]]
    assert [r["name"] for r in ladder["knockouts"]] == [KNOCKOUTS[1][0]]
    for rung in ladder["rungs"] + ladder["knockouts"]:
        config = dataclasses.replace(BLOCK_LADDER.model, **rung["changes"])
        assert rung["parameters"] == num_parameters(GPT(config))
        assert [r["seed"] for r in rung["runs"]] == [0, 1]
        for r in rung["runs"]:
            assert r["val_loss"] > 0 and len(r["grad_norm_init"]) == len(r["grad_norm_trained"]) == config.n_layers
    # Different seeds are different runs.
    bare = ladder["rungs"][0]["runs"]
    assert bare[0]["grad_norm_init"] != bare[1]["grad_norm_init"]


def test_shipped_block_ladder_matches_its_recipe():
    from lmkit.pretrained import BLOCK_LADDER, KNOCKOUTS, LADDER, LADDER_SEEDS

    ladder = json.loads((CHECKPOINT_DIR / "block_ladder.json").read_text())
    assert ladder["steps"] == BLOCK_LADDER.train.steps and ladder["seeds"] == LADDER_SEEDS
    assert [(r["name"], r["changes"]) for r in ladder["rungs"]] == [(name, changes) for name, changes in LADDER]
    assert [(r["name"], r["changes"]) for r in ladder["knockouts"]] == [(name, changes) for name, changes in KNOCKOUTS]
    for rung in ladder["rungs"] + ladder["knockouts"]:
        assert rung["parameters"] == num_parameters(GPT(dataclasses.replace(BLOCK_LADDER.model, vocab_size=65, **rung["changes"])))
    full = ladder["rungs"][-1]
    assert full["changes"] == {} and full["parameters"] == num_parameters(GPT(dataclasses.replace(BLOCK_LADDER.model, vocab_size=65)))
    assert all([s["seed"] for s in r["runs"]] == LADDER_SEEDS for r in ladder["rungs"] + ladder["knockouts"])
