"""Tests for lmkit.train: the configuration, the learning-rate schedule, the
optimizer's parameter groups, the training loop and the evaluation helpers.

The loop is watched from outside rather than trusted: a global optimizer
step hook sees the learning rate and the gradients that each AdamW step
actually uses, small models record the mode they were called in, and
evaluate_lm is compared with the mean cross-entropy computed by hand.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lmkit.rnn import RecurrentLM, RNNConfig
from lmkit.train import History, TrainConfig, bits, evaluate, evaluate_lm, lr_at, make_optimizer, resume, train

pytestmark = pytest.mark.usefixtures("seeded_single_thread")


def quiet(**kwargs) -> TrainConfig:
    return TrainConfig(**{"progress": False, **kwargs})


# --- a tiny regression problem ----------------------------------------------------------------


class Regressor(nn.Module):
    """Linear regression returning (prediction, mean squared error); records the
    mode and grad mode of each call."""

    def __init__(self, n_in: int = 4) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 1)
        self.calls: list[tuple[bool, bool]] = []  # (self.training, grad enabled)

    def forward(self, x, y):
        self.calls.append((self.training, torch.is_grad_enabled()))
        out = self.linear(x).squeeze(-1)
        return out, F.mse_loss(out, y)


def regression_batches(seed: int = 0, scale: float = 1.0, batch_size: int = 16):
    """``batch(split)``: fresh training batches from a seeded generator; one fixed
    validation batch, so that evaluating the same model twice gives the same loss.
    ``splits`` records the split of every call."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(4, generator=g)

    def sample():
        x = torch.randn(batch_size, 4, generator=g)
        return x, scale * (x @ w + 0.5)

    val = sample()
    splits: list[str] = []

    def batch(split):
        splits.append(split)
        return sample() if split == "train" else val

    return batch, splits


@pytest.fixture
def step_spy():
    """Records, for every optimizer step anywhere, the learning rates of its groups
    and the total gradient norm it is about to apply."""
    seen: list[dict] = []

    def hook(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        seen.append(
            {
                "lr": [group["lr"] for group in optimizer.param_groups],
                "weight_decay": [group["weight_decay"] for group in optimizer.param_groups],
                "grad_norm": torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item(),
            }
        )

    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


# --- TrainConfig ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": 0},
        {"steps": -5},
        {"lr": 0.0},
        {"lr": -1e-3},
        {"lr": 1e-3, "min_lr": 2e-3},
        {"min_lr": -1e-5},
        {"steps": 10, "warmup": 10},
        {"steps": 10, "warmup": 11},
        {"warmup": -1},
        {"grad_clip": 0.0},
        {"grad_clip": -1.0},
        {"eval_every": 0},
        {"eval_batches": 0},
    ],
    ids=repr,
)
def test_train_config_rejects_invalid_values(kwargs):
    with pytest.raises(ValueError):
        TrainConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"steps": 1},
        {"lr": 1e-3, "min_lr": 1e-3},  # the edges are allowed
        {"min_lr": 0.0},
        {"steps": 10, "warmup": 9},
        {"grad_clip": None},
        {"eval_every": 1, "eval_batches": 1},
    ],
    ids=repr,
)
def test_train_config_accepts_valid_values(kwargs):
    TrainConfig(**kwargs)


# --- lr_at ---------------------------------------------------------------------------------------


def test_lr_warmup_is_linear_from_lr_over_warmup_to_lr():
    config = TrainConfig(steps=100, lr=1.0, warmup=10)
    warm = [lr_at(s, config) for s in range(10)]
    assert warm == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert warm[0] == pytest.approx(config.lr / config.warmup)
    assert warm[-1] == pytest.approx(config.lr)


def test_lr_constant_after_warmup_when_min_lr_is_none():
    config = TrainConfig(steps=50, lr=3e-4, warmup=5)
    assert [lr_at(s, config) for s in range(5, 50)] == [3e-4] * 45
    assert [lr_at(s, TrainConfig(steps=20, lr=0.1)) for s in range(20)] == [0.1] * 20


def test_lr_cosine_hand_computed_without_warmup():
    # lr = 0.01 * (1 + cos(pi * s / 5)) / 2, min_lr = 0: values worked out by hand.
    config = TrainConfig(steps=5, lr=0.01, min_lr=0.0)
    # cos(pi/5) = 0.80901699437, cos(2 pi/5) = 0.30901699437 and their negatives.
    expected = [0.01, 0.0090450849719, 0.0065450849719, 0.0034549150281, 0.0009549150281]
    assert [lr_at(s, config) for s in range(5)] == pytest.approx(expected, abs=1e-13)


def test_lr_cosine_after_warmup_goes_from_lr_to_min_lr():
    config = TrainConfig(steps=110, lr=1.0, min_lr=0.1, warmup=10)
    lrs = [lr_at(s, config) for s in range(110)]
    assert lrs[10] == pytest.approx(1.0)  # right after warm-up: the peak
    assert lrs[60] == pytest.approx(0.55)  # half-way through the decay: the mean of lr and min_lr
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)  # the last step: (almost) min_lr
    decay = lrs[10:]
    assert all(a >= b for a, b in zip(decay, decay[1:]))  # never goes back up
    assert min(lrs) >= 0.1


@pytest.mark.parametrize("warmup", [0, 10])
def test_lr_holds_min_lr_past_the_end_of_the_schedule(warmup):
    # Steps past config.steps (a run trained on with --stop-at/--resume, or a longer loop)
    # must not climb the cosine back up: they stay at min_lr.
    config = TrainConfig(steps=110, lr=1.0, min_lr=0.1, warmup=warmup)
    assert lr_at(110, config) == pytest.approx(0.1)
    assert [lr_at(s, config) for s in (111, 150, 210, 1000)] == [pytest.approx(0.1)] * 4
    assert lr_at(109, config) > 0.1  # still decaying just before the end


def test_lr_min_lr_equal_to_lr_is_constant():
    config = TrainConfig(steps=20, lr=0.5, min_lr=0.5, warmup=4)
    assert [lr_at(s, config) for s in range(4, 20)] == pytest.approx([0.5] * 16)


# --- make_optimizer ------------------------------------------------------------------------------


class Mixed(nn.Module):
    """Matrices (embedding, linear weights, a conv kernel), vectors (biases, a norm's gain),
    a scalar, a frozen matrix and a weight shared by two layers."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.linear = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.conv = nn.Conv1d(4, 4, 3)
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(4, 10)
        self.head.weight = self.embed.weight  # tied


def test_make_optimizer_decays_matrices_only():
    model = Mixed()
    config = TrainConfig(lr=2e-3, weight_decay=0.1, betas=(0.8, 0.95))
    optimizer = make_optimizer(model, config)
    assert isinstance(optimizer, torch.optim.AdamW)
    by_decay: dict[float, set[int]] = {}
    for group in optimizer.param_groups:
        by_decay.setdefault(group["weight_decay"], set()).update(id(p) for p in group["params"])
        assert group["lr"] == 2e-3 and group["betas"] == (0.8, 0.95)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    matrices = {id(p) for p in trainable.values() if p.ndim >= 2}
    others = {id(p) for p in trainable.values() if p.ndim < 2}
    assert by_decay == {0.1: matrices, 0.0: others}
    # Spelled out, so that the rule itself is checked, not re-derived.
    assert matrices == {id(model.embed.weight), id(model.linear.weight), id(model.conv.weight)}
    assert id(model.norm.weight) in others and id(model.linear.bias) in others and id(model.scale) in others


def test_make_optimizer_puts_every_trainable_parameter_in_exactly_one_group():
    model = Mixed()
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1))
    ids = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(ids) == len(set(ids))  # the tied weight appears once
    assert set(ids) == {id(p) for p in model.parameters() if p.requires_grad}
    assert id(model.frozen.weight) not in ids


def test_make_optimizer_without_vectors():
    # A model with no biases leaves the no-decay group empty: that must still work.
    model = nn.Linear(3, 2, bias=False)
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1))
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()


# --- train ---------------------------------------------------------------------------------------


def test_train_reduces_the_loss():
    model = Regressor()
    batch, _ = regression_batches()
    before = evaluate(model, batch, 1)
    history = train(model, batch, quiet(steps=150, lr=0.05, eval_every=50, eval_batches=1))
    assert history.val_loss[-1] < 0.01 * before
    assert sum(history.train_loss[-10:]) / 10 < 0.01 * sum(history.train_loss[:10]) / 10
    assert history.val_loss == sorted(history.val_loss, reverse=True)


def test_train_learns_a_classification_task():
    # Two Gaussian blobs: the classifier ends up nearly perfect on fresh data.
    g = torch.Generator().manual_seed(0)

    def batch(split):
        y = torch.randint(2, (32,), generator=g)
        x = torch.randn(32, 2, generator=g) + 3 * (2 * y[:, None] - 1)
        return x, y

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))

        def forward(self, x, y):
            logits = self.net(x)
            return logits, F.cross_entropy(logits, y)

    model = Classifier()
    history = train(model, batch, quiet(steps=60, lr=0.05, eval_every=20, eval_batches=2))
    assert history.val_loss[-1] < 0.1 < history.train_loss[0]
    x, y = batch("val")
    with torch.no_grad():
        assert (model.net(x).argmax(-1) == y).float().mean() > 0.95


@pytest.mark.parametrize(("steps", "eval_every", "val_steps"), [(7, 3, [3, 6, 7]), (6, 3, [3, 6]), (5, 100, [5]), (3, 1, [1, 2, 3])])
def test_train_history_lengths_and_eval_schedule(steps, eval_every, val_steps):
    model = Regressor()
    batch, splits = regression_batches()
    history = train(model, batch, quiet(steps=steps, eval_every=eval_every, eval_batches=2))
    assert isinstance(history, History)
    assert history.train_step == list(range(1, steps + 1))
    assert len(history.train_loss) == steps
    assert history.val_step == val_steps
    assert len(history.val_loss) == len(val_steps)
    assert history.seconds > 0
    # One training batch per step, eval_batches validation batches per evaluation.
    assert splits.count("train") == steps
    assert splits.count("val") == 2 * len(val_steps)


def test_train_records_losses_before_each_update_and_validates_after_the_last():
    model = Regressor()
    initial = copy.deepcopy(model)
    batch, _ = regression_batches(seed=3)
    first_x, first_y = regression_batches(seed=3)[0]("train")
    history = train(model, batch, quiet(steps=5, lr=0.1, eval_every=100, eval_batches=1))
    with torch.no_grad():
        assert history.train_loss[0] == pytest.approx(initial(first_x, first_y)[1].item(), rel=1e-6)
    assert history.val_loss[-1] == pytest.approx(evaluate(model, batch, 1), rel=1e-6)


def test_train_uses_the_schedule_and_the_weight_decay(step_spy):
    config = quiet(steps=12, lr=0.02, min_lr=0.002, warmup=3, weight_decay=0.05)
    train(Regressor(), regression_batches()[0], config)
    assert len(step_spy) == 12
    for s, seen in enumerate(step_spy):
        assert seen["lr"] == [lr_at(s, config)] * 2
        assert seen["weight_decay"] == [0.05, 0.0]


def test_train_clips_gradients(step_spy):
    # Targets scaled by 1000: unclipped gradient norms are in the thousands.
    clip = 0.5
    train(Regressor(), regression_batches(scale=1000.0)[0], quiet(steps=10, grad_clip=clip))
    assert len(step_spy) == 10
    assert max(s["grad_norm"] for s in step_spy) <= clip * (1 + 1e-5)
    assert step_spy[0]["grad_norm"] == pytest.approx(clip, rel=1e-5)  # it was clipped, not small anyway


def test_train_without_clipping_leaves_gradients_alone(step_spy, monkeypatch):
    calls = []
    monkeypatch.setattr(nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(a))
    train(Regressor(), regression_batches(scale=1000.0)[0], quiet(steps=10, grad_clip=None))
    assert calls == []
    assert min(s["grad_norm"] for s in step_spy) > 10  # the test above does test something


def test_train_clip_uses_the_configured_max_norm(monkeypatch):
    calls = []
    real = nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        calls.append(max_norm)
        return real(parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", spy)
    train(Regressor(), regression_batches()[0], quiet(steps=4, grad_clip=0.25))
    assert calls == [0.25] * 4


def test_train_is_deterministic_given_the_seeds():
    def run():
        torch.manual_seed(1)
        model = Regressor()
        history = train(model, regression_batches(seed=7)[0], quiet(steps=20, lr=0.01, min_lr=0.001, warmup=2, eval_every=5))
        return history, model.linear.weight.detach().clone()

    (h1, w1), (h2, w2) = run(), run()
    assert h1.train_loss == h2.train_loss
    assert h1.val_loss == h2.val_loss
    assert h1.train_step == h2.train_step and h1.val_step == h2.val_step
    assert torch.equal(w1, w2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_train_stops_on_a_non_finite_loss(bad):
    class Exploding(Regressor):
        def forward(self, x, y):
            out, loss = super().forward(x, y)
            return out, loss * bad if len(self.calls) == 3 else loss

    model = Exploding()
    before = None

    def batch(split):
        nonlocal before
        before = copy.deepcopy(model.state_dict())
        return regression_batches()[0](split)

    with pytest.raises(FloatingPointError):
        train(model, batch, quiet(steps=10))
    # It stopped at the bad step, before updating the parameters with it.
    assert len(model.calls) == 3
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name


@pytest.mark.parametrize("start_in_eval", [False, True])
def test_train_modes(start_in_eval):
    model = Regressor()
    if start_in_eval:
        model.eval()
    batch, splits = regression_batches()
    train(model, batch, quiet(steps=6, eval_every=2, eval_batches=1))
    # Training steps in train mode with gradients, evaluation in eval mode without.
    assert len(splits) == len(model.calls)
    for split, (training, grad) in zip(splits, model.calls):
        assert (training, grad) == ((True, True) if split == "train" else (False, False)), split
    assert model.training  # left in train mode


# --- evaluate ------------------------------------------------------------------------------------


class Recorder(nn.Module):
    """Returns the losses 1, 2, 3, ... and records the mode of each call."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, *batch):
        self.calls.append((self.training, torch.is_grad_enabled()))
        return None, self.w + len(self.calls)


@pytest.mark.parametrize("start_in_eval", [False, True])
def test_evaluate_is_a_mean_in_eval_mode_and_restores_the_mode(start_in_eval):
    model = Recorder()
    model.train(not start_in_eval)
    splits = []
    result = evaluate(model, lambda split: splits.append(split) or (), 4)
    assert result == pytest.approx((1 + 2 + 3 + 4) / 4)
    assert isinstance(result, float)
    assert model.calls == [(False, False)] * 4
    assert splits == ["val"] * 4
    assert model.training == (not start_in_eval)


def test_evaluate_passes_the_split():
    splits = []
    evaluate(Recorder(), lambda split: splits.append(split) or (), 2, split="train")
    assert splits == ["train", "train"]


# --- evaluate_lm ---------------------------------------------------------------------------------

V = 7


class BigramLM(nn.Module):
    """logits for the next token = a row of a table indexed by the current token."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Embedding(V, V)
        self.modes: list[bool] = []

    def forward(self, x, y):
        self.modes.append(self.training)
        logits = self.table(x)
        return logits, F.cross_entropy(logits.flatten(0, 1), y.flatten())


def bigram_nll_by_hand(model: BigramLM, data: torch.Tensor, n_transitions: int) -> float:
    """Mean -log p(data[i+1] | data[i]) over the first n_transitions transitions, one at a time."""
    log_probs = torch.log_softmax(model.table.weight.detach().double(), dim=-1)
    nlls = [-log_probs[data[i], data[i + 1]].item() for i in range(n_transitions)]
    return sum(nlls) / len(nlls)


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_evaluate_lm_bigram_covers_every_transition_when_windows_fit(batch_size):
    # 21 tokens, 20 transitions, block size 4: five windows cover every transition exactly once.
    model = BigramLM()
    data = torch.randint(V, (21,))
    result = evaluate_lm(model, data, block_size=4, batch_size=batch_size)
    assert result == pytest.approx(bigram_nll_by_hand(model, data, 20), rel=1e-6)


def test_evaluate_lm_drops_the_incomplete_last_window():
    # 24 tokens, 23 transitions, block size 4: five full windows (20 transitions), the rest dropped.
    model = BigramLM()
    data = torch.randint(V, (24,))
    assert evaluate_lm(model, data, block_size=4, batch_size=2) == pytest.approx(bigram_nll_by_hand(model, data, 20), rel=1e-6)


def test_evaluate_lm_single_window():
    model = BigramLM()
    data = torch.randint(V, (5,))
    assert evaluate_lm(model, data, block_size=4) == pytest.approx(bigram_nll_by_hand(model, data, 4), rel=1e-6)


def test_evaluate_lm_windows_are_consecutive_and_non_overlapping():
    # A recurrent model's loss depends on where each window starts: run each window
    # [k*T, (k+1)*T) on its own, predicting [k*T+1, (k+1)*T+1), and average per token.
    model = RecurrentLM(RNNConfig(V, embed_dim=4, hidden_size=8))
    data = torch.randint(V, (30,), dtype=torch.int32)  # any integer dtype
    T = 6
    total, count = 0.0, 0
    with torch.no_grad():
        for k in range((len(data) - 1) // T):
            x = data[k * T : (k + 1) * T].long()
            y = data[k * T + 1 : (k + 1) * T + 1].long()
            log_probs = torch.log_softmax(model(x[None])[0][0].double(), dim=-1)
            total += -log_probs[torch.arange(T), y].sum().item()
            count += T
    expected = total / count
    assert evaluate_lm(model, data, T, batch_size=2) == pytest.approx(expected, rel=1e-5)
    assert evaluate_lm(model, data, T, batch_size=64) == pytest.approx(expected, rel=1e-5)


def test_evaluate_lm_is_deterministic_and_restores_the_mode():
    model = BigramLM()
    data = torch.randint(V, (50,))
    first = evaluate_lm(model, data, 8)
    assert evaluate_lm(model, data, 8) == first
    assert set(model.modes) == {False}  # evaluated in eval mode
    assert model.training
    model.eval()
    evaluate_lm(model, data, 8)
    assert not model.training


@pytest.mark.parametrize("shape", [(2, 20), (20, 1)])
def test_evaluate_lm_rejects_non_1d_data(shape):
    with pytest.raises(ValueError):
        evaluate_lm(BigramLM(), torch.randint(V, shape), 4)


@pytest.mark.parametrize("length", [0, 3, 4])
def test_evaluate_lm_rejects_data_not_longer_than_block_size(length):
    with pytest.raises(ValueError):
        evaluate_lm(BigramLM(), torch.randint(V, (length,)), 4)


# --- bits ----------------------------------------------------------------------------------------


def test_bits():
    assert bits(math.log(2)) == pytest.approx(1.0)
    assert bits(math.log(8)) == pytest.approx(3.0)
    assert bits(0.0) == 0.0
    # A uniform guess over 256 bytes costs 8 bits.
    assert bits(math.log(256)) == pytest.approx(8.0)


def _resumable_run(tmp_path, split_at):
    """Train a tiny GPT for 12 steps, optionally stopping at `split_at` and resuming from the checkpoint."""
    from lmkit.transformer import GPT, GPTConfig

    def fresh():
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=13, context=8, d_model=16, n_layers=1, n_heads=2, dropout=0.1))
        generator = torch.Generator().manual_seed(0)
        data = torch.randint(13, (500,), generator=torch.Generator().manual_seed(1))

        def batch(split):
            starts = torch.randint(len(data) - 9, (4,), generator=generator)
            x = torch.stack([data[s : s + 8] for s in starts])
            y = torch.stack([data[s + 1 : s + 9] for s in starts])
            return x, y

        return model, batch, generator

    config = TrainConfig(steps=12, lr=1e-2, min_lr=1e-3, warmup=2, eval_every=4, eval_batches=2, progress=False)
    path = tmp_path / "run.pt"
    model, batch, generator = fresh()
    history = train(model, batch, config, checkpoint=path, generators=[generator], until=split_at)
    if split_at is not None:
        model, batch, generator = fresh()  # a new process: everything comes from the checkpoint
        torch.manual_seed(123)  # and the global random state is not the one the run left
        optimizer, history, _ = resume(path, model, config, [generator])
        history = train(model, batch, config, optimizer=optimizer, history=history, checkpoint=path, generators=[generator])
    return model, history


def test_resume_continues_exactly_where_it_stopped(tmp_path):
    straight, h1 = _resumable_run(tmp_path / "a", None)
    resumed, h2 = _resumable_run(tmp_path / "b", 5)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss and h2.train_step == list(range(1, 13))
    for p, q in zip(straight.parameters(), resumed.parameters()):
        assert torch.equal(p, q)


def test_resume_builds_the_optimizer_once_with_make_optimizer(tmp_path, monkeypatch):
    import lmkit.train as lt

    built = []
    real = lt.make_optimizer
    monkeypatch.setattr(lt, "make_optimizer", lambda *a: built.append(1) or real(*a))
    model = Regressor()
    config = quiet(steps=6, eval_every=3, eval_batches=1)
    train(model, regression_batches()[0], config, checkpoint=tmp_path / "r.pt", until=3)
    assert len(built) == 1
    optimizer, history, ckpt = resume(tmp_path / "r.pt", model, config)
    train(model, regression_batches()[0], config, optimizer=optimizer, history=history)
    assert len(built) == 2 and ckpt["step"] == 3 and history.train_step == list(range(1, 7))


def test_train_seconds_count_training_steps_only():
    # An evaluation that takes 0.2 s each time appears in `seconds`, not in `train_seconds`.
    import time

    class SlowEval(Regressor):
        def forward(self, x, y):
            if not self.training:
                time.sleep(0.1)
            return super().forward(x, y)

    history = train(SlowEval(), regression_batches()[0], quiet(steps=4, eval_every=1, eval_batches=2))
    assert history.seconds >= 0.8
    assert history.train_seconds == sorted(history.train_seconds) and history.train_seconds[-1] < 0.4


def test_resume_refuses_another_config(tmp_path):
    model = torch.nn.Linear(2, 1)

    def batch(split):
        x = torch.randn(4, 2)
        return x, x.sum(dim=1, keepdim=True)

    class Wrap(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = model

        def forward(self, x, y):
            out = self.lin(x)
            return out, ((out - y) ** 2).mean()

    path = tmp_path / "c.pt"
    train(Wrap(), batch, TrainConfig(steps=3, eval_every=3, eval_batches=1, progress=False), checkpoint=path)
    with pytest.raises(ValueError, match=r"another training config \(steps differ\)"):
        resume(path, Wrap(), TrainConfig(steps=4, eval_every=3, eval_batches=1, progress=False))
    resume(path, Wrap(), TrainConfig(steps=3, eval_every=3, eval_batches=1, progress=True))  # the progress bar is no part of the run
