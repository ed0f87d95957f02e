"""Tests for lmkit.checkpoint: the one format every checkpoint in lmkit is written in.

A checkpoint must give back exactly what was saved (weights, optimizer moments,
random states, any plain state), refuse loudly what it cannot restore, never
leave half a file behind, and still read the files lmkit wrote before the
format had a version (written here by a copy of the old writers).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
import torch
from torch import nn

import lmkit.checkpoint as checkpoint
from lmkit.checkpoint import VERSION, load_checkpoint, save_checkpoint
from lmkit.pretrained import load_char_lm, load_gpt
from lmkit.rnn import RecurrentLM, RNNConfig
from lmkit.train import History, TrainConfig, make_optimizer, train
from lmkit.transformer import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def tiny_gpt() -> GPT:
    return GPT(GPTConfig(vocab_size=11, context=8, d_model=16, n_layers=1, n_heads=2))


def trained(model: nn.Module, steps: int = 3) -> torch.optim.Optimizer:
    """An optimizer with moments: a few steps of AdamW on a random batch."""
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1))
    x = torch.randint(11, (2, 8))
    for _ in range(steps):
        optimizer.zero_grad()
        model(x, x)[1].backward()
        optimizer.step()
    return optimizer


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("as_file", [False, True], ids=["path", "file object"])
def test_round_trip_restores_weights_optimizer_random_states_and_state(tmp_path, as_file):
    model = tiny_gpt()
    optimizer = trained(model)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    torch.rand(3, generator=g1)  # states that are not fresh seeds
    history = History(train_step=[1, 2], train_loss=[2.5, 2.0], train_seconds=[0.1, 0.2], seconds=0.5)
    target: Path | io.BytesIO = io.BytesIO() if as_file else tmp_path / "sub" / "run.pt"
    save_checkpoint(
        target, model, optimizer, generators=[g1, g2], step=2, history=dataclasses.asdict(history), tokenizer=["a", "b"], samples={0: "ab"}
    )
    expected_next = (torch.rand(4), torch.rand(4, generator=g1), torch.rand(4, generator=g2))

    torch.manual_seed(99)
    other = tiny_gpt()
    other_opt = make_optimizer(other, TrainConfig(weight_decay=0.1))
    h1, h2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)
    if as_file:
        target.seek(0)
    ckpt = load_checkpoint(target, other, other_opt, generators=[h1, h2])
    assert_same_weights(model, other)
    for a, b in zip(optimizer.state.values(), other_opt.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in ("exp_avg", "exp_avg_sq", "step"))
    assert other_opt.param_groups[0]["weight_decay"] == 0.1
    # The random streams continue where they were when saved.
    for want, got in zip(expected_next, (torch.rand(4), torch.rand(4, generator=h1), torch.rand(4, generator=h2))):
        assert torch.equal(want, got)
    assert ckpt["version"] == VERSION and ckpt["step"] == 2 and ckpt["tokenizer"] == ["a", "b"] and ckpt["samples"] == {0: "ab"}
    assert History(**ckpt["history"]) == history


def test_release_form_has_no_resume_state(tmp_path):
    model = tiny_gpt()
    save_checkpoint(tmp_path / "r.pt", model, step=5)
    ckpt = load_checkpoint(tmp_path / "r.pt")
    assert "optimizer" not in ckpt and "rng" not in ckpt
    assert set(ckpt) == {"version", "model", "torch_version", "step"}


# --- strict restore -----------------------------------------------------------------------------


def test_a_missing_weight_is_an_error_that_names_it(tmp_path):
    model = tiny_gpt()
    save_checkpoint(tmp_path / "m.pt", model)
    deeper = GPT(GPTConfig(vocab_size=11, context=8, d_model=16, n_layers=2, n_heads=2))
    with pytest.raises(RuntimeError, match=r"Missing key.*blocks\.1\.attn"):
        load_checkpoint(tmp_path / "m.pt", deeper)


def test_a_different_number_of_generators_is_an_error(tmp_path):
    save_checkpoint(tmp_path / "g.pt", tiny_gpt(), generators=[torch.Generator(), torch.Generator()])
    with pytest.raises(ValueError, match=r"2 generator state\(s\), but 1 generator"):
        load_checkpoint(tmp_path / "g.pt", generators=[torch.Generator()])
    with pytest.raises(ValueError, match=r"2 generator state\(s\), but 0 generator"):
        load_checkpoint(tmp_path / "g.pt", generators=[])


def test_resuming_from_a_release_checkpoint_says_what_is_missing(tmp_path):
    model = tiny_gpt()
    save_checkpoint(tmp_path / "r.pt", model)
    with pytest.raises(ValueError, match="'optimizer'"):
        load_checkpoint(tmp_path / "r.pt", model, make_optimizer(model, TrainConfig()))
    with pytest.raises(ValueError, match="'rng'"):
        load_checkpoint(tmp_path / "r.pt", generators=[torch.Generator()])


def test_reserved_names_and_unknown_files(tmp_path):
    with pytest.raises(ValueError, match=r"\['rng', 'version'\]"):
        save_checkpoint(tmp_path / "x.pt", tiny_gpt(), rng=1, version=2)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an lmkit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save({"version": VERSION + 1, "model": {}}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match=f"version {VERSION + 1}"):
        load_checkpoint(tmp_path / "future.pt")


def test_an_interrupted_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    model = tiny_gpt()
    save_checkpoint(path, model, step=1)

    def dies_half_way(obj, f):
        Path(f).write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, step=2)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


# --- the format before version 1 -----------------------------------------------------------------


def old_train_save_checkpoint(path, model, optimizer, step, history, config, generators=(), extra=None):
    """A copy of lmkit.train.save_checkpoint as it was before lmkit.checkpoint."""
    state = {
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "step": step,
        "history": dataclasses.asdict(history),
        "train_config": dataclasses.asdict(config),
        "generator_states": [g.get_state() for g in generators],
        "torch_rng": torch.get_rng_state(),
        "torch_version": str(torch.__version__),
        **(extra or {}),
    }
    torch.save(state, path)


def old_pretrained_save(path, model_config, model, history, config, extra):
    """A copy of lmkit.pretrained._save as it was before lmkit.checkpoint."""
    torch.save(
        {
            "model_config": model_config,
            "state_dict": model.state_dict(),
            "history": dataclasses.asdict(history),
            "train_config": dataclasses.asdict(config),
            "torch_version": str(torch.__version__),
            **extra,
        },
        path,
    )


def test_a_run_saved_by_the_old_writer_loads_and_resumes(tmp_path):
    config = TrainConfig(steps=4, eval_every=2, eval_batches=1, progress=False)
    model = tiny_gpt()
    optimizer = trained(model)
    g = torch.Generator().manual_seed(5)
    torch.rand(2, generator=g)
    history = History(train_step=[1, 2], train_loss=[2.4, 2.3], train_seconds=[0.1, 0.2], val_step=[2], val_loss=[2.35], seconds=0.3)
    old_train_save_checkpoint(
        tmp_path / "old.pt",
        model,
        optimizer,
        2,
        history,
        config,
        [g],
        {"model_config": dataclasses.asdict(model.config), "tokenizer_chars": ["x", "y"], "samples": {0: "xy"}},
    )
    expected = (torch.rand(3), torch.rand(3, generator=g))

    other = tiny_gpt()
    other_opt = make_optimizer(other, config)
    h = torch.Generator()
    ckpt = load_checkpoint(tmp_path / "old.pt", other, other_opt, generators=[h])
    assert_same_weights(model, other)
    assert torch.equal(expected[0], torch.rand(3)) and torch.equal(expected[1], torch.rand(3, generator=h))
    assert ckpt["version"] == VERSION and ckpt["tokenizer"] == ["x", "y"] and ckpt["samples"] == {0: "xy"} and ckpt["step"] == 2
    assert not {"state_dict", "tokenizer_chars", "generator_states", "torch_rng"} & set(ckpt)
    # ... and the training loop carries on from it.
    history = train(other, lambda split: (torch.randint(11, (2, 8)),) * 2, config, optimizer=other_opt, history=History(**ckpt["history"]))
    assert history.train_step == [1, 2, 3, 4]


def test_shipped_files_in_the_old_format_still_load(tmp_path):
    config = TrainConfig(steps=2, progress=True)
    history = History(train_step=[1, 2], train_loss=[4.0, 3.9], seconds=1.0)
    gpt = tiny_gpt()
    old_pretrained_save(tmp_path / "copy_gpt.pt", dataclasses.asdict(gpt.config), gpt, history, config, {"max_len": 3, "start": 10})
    lm = RecurrentLM(RNNConfig(11, embed_dim=4, hidden_size=8, cell="rnn"))
    old_pretrained_save(
        tmp_path / "char_rnn.pt",
        {"vocab_size": 11, "embed_dim": 4, "hidden_size": 8, "cell": "rnn"},
        lm,
        history,
        config,
        {"val_loss": 1.5, "block_size": 8},
    )
    loaded_gpt, ckpt = load_gpt("copy_gpt", tmp_path)
    assert_same_weights(gpt, loaded_gpt)
    assert ckpt["max_len"] == 3 and ckpt["history"]["train_loss"] == [4.0, 3.9] and ckpt["train_config"]["steps"] == 2
    loaded_lm, ckpt = load_char_lm("rnn", tmp_path)
    assert_same_weights(lm, loaded_lm)
    assert ckpt["val_loss"] == 1.5 and ckpt["block_size"] == 8
