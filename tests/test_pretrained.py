"""The shipped checkpoints load, score what they claim, and can be rebuilt."""

from __future__ import annotations

import pytest
import torch

from lmkit.data import char_data
from lmkit.pretrained import CHECKPOINT_DIR, load_char_lm, load_copy_model, load_gpt, main
from lmkit.tasks import START, copy_batch, copy_lm_prompt
from lmkit.train import evaluate_lm


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
    assert sum(sizes.values()) < 20_000_000


def test_unknown_cell_is_a_clear_error():
    with pytest.raises(ValueError, match="'rnn' or 'lstm'"):
        load_char_lm("gru")


@pytest.mark.parametrize("name", ["char_rnn", "copy_lstm", "copy_gpt", "gpt_shakespeare"])
def test_recipe_rebuilds_a_loadable_checkpoint(name, tmp_path):
    main(["--only", name, "--steps", "2", "--out", str(tmp_path)])
    if name == "char_rnn":
        model, ckpt = load_char_lm("rnn", tmp_path)
        assert ckpt["train_config"]["steps"] == 2 and len(ckpt["history"]["train_loss"]) == 2
    elif name == "copy_lstm":
        model, ckpt = load_copy_model(tmp_path)
    else:
        model, ckpt = load_gpt(name, tmp_path)
    assert not model.training
    assert "optimizer" not in ckpt  # shipped checkpoints carry no resume state


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
