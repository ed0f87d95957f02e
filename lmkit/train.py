"""One training loop for every model in the course.

Taught in chapter 2 (training a recurrent language model) and used by every
chapter after it; chapter 4 adds the schedule, checkpoints and exact resume.

A model is called as ``model(*batch)`` and returns ``(output, loss)``; a batch
function ``batch(split)`` returns the arguments for one step (``split`` is
``"train"`` or ``"val"``). The loop does AdamW with weight decay on matrices
only, optional linear warm-up and cosine decay, gradient clipping, periodic
evaluation and a progress bar, and records a ``History``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from lmkit.checkpoint import load_checkpoint, save_checkpoint
from lmkit.data import windows

BatchFn = Callable[[str], tuple]


@dataclass
class TrainConfig:
    steps: int = 1000
    lr: float = 1e-3
    min_lr: float | None = None  # cosine decay from lr to min_lr over the steps; None: constant
    warmup: int = 0  # linear warm-up steps
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float | None = 1.0
    eval_every: int = 100
    eval_batches: int = 20
    progress: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be positive, got {self.steps}")
        if not self.lr > 0 or (self.min_lr is not None and not 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"warmup must be in [0, steps), got {self.warmup}")
        if self.eval_every < 1 or self.eval_batches < 1:
            raise ValueError("eval_every and eval_batches must be positive")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")

    def shortened(self, steps: int) -> TrainConfig:
        """The same training for a quick trial of ``steps`` steps (one evaluation, at the end)."""
        return dataclasses.replace(self, steps=steps, warmup=min(self.warmup, steps - 1), eval_every=steps)


@dataclass
class History:
    """Losses as training went: ``train_loss[k]`` at ``train_step[k]``, ``val_loss[k]`` at
    ``val_step[k]``. Time: ``train_seconds[k]`` is the time spent in training steps
    (batches, forward, backward, update) up to ``train_step[k]``; ``seconds`` is the
    whole run's wall time, evaluation, hooks and checkpoints included."""

    train_step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine decay to ``min_lr``
    at ``config.steps``, and ``min_lr`` after that."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.min_lr is None:
        return config.lr
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW that decays matrices (weights, embeddings) but not biases and norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, fused=True)


@torch.no_grad()
def evaluate(model: nn.Module, batch: BatchFn, n_batches: int, split: str = "val") -> float:
    """Mean loss over ``n_batches`` batches of ``split``, in eval mode."""
    was_training = model.training
    model.eval()
    try:
        losses = [model(*batch(split))[1].item() for _ in range(n_batches)]
    finally:
        model.train(was_training)
    return sum(losses) / len(losses)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, *batch: torch.Tensor, grad_clip: float | None = 1.0) -> float:
    """One optimisation step on ``batch`` (e.g. ``x, y``): clear the gradients,
    ``loss = model(*batch)[1]``, backpropagate, clip the gradient norm to
    ``grad_clip`` (None: no clipping), step. Returns the loss before the step."""
    optimizer.zero_grad(set_to_none=True)
    _, loss = model(*batch)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {loss.item()}; lower the learning rate")
    loss.backward()
    if grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def train(
    model: nn.Module,
    batch: BatchFn,
    config: TrainConfig,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    history: History | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    generators: Sequence[torch.Generator] = (),
    extra: dict | None = None,
    on_eval: Callable[[int, nn.Module], None] | None = None,
    until: int | None = None,
) -> History:
    """Train ``model`` for ``config.steps`` steps; evaluate on ``"val"`` every
    ``eval_every`` steps and at the end. Returns the loss history.

    ``optimizer`` (default: a new ``make_optimizer(model, config)``) and ``history``
    (default: empty) continue a run: training goes on after the history's last step.
    ``resume`` restores both from a checkpoint. With ``checkpoint`` (a path) the run
    is saved by ``lmkit.checkpoint.save_checkpoint`` every ``checkpoint_every`` steps
    and when it stops: model, optimizer, step, history, config, the states of the
    random ``generators`` the batch function uses, and ``extra`` (e.g. the model config
    and tokenizer; a dict the hooks may keep updating). ``until`` stops after that step
    (the schedule still spans ``config.steps``). ``on_eval(step, model)`` runs after
    each evaluation.
    """
    optimizer = make_optimizer(model, config) if optimizer is None else optimizer
    history = History() if history is None else history
    first = history.train_step[-1] if history.train_step else 0
    last = config.steps if until is None else min(until, config.steps)
    model.train()
    start = time.perf_counter() - history.seconds
    step_seconds = history.train_seconds[-1] if history.train_seconds else 0.0
    bar = tqdm(range(first, last), disable=not config.progress, desc="training", mininterval=1.0, initial=first, total=config.steps)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        step_start = time.perf_counter()
        try:
            loss = train_step(model, optimizer, *batch("train"), grad_clip=config.grad_clip)
        except FloatingPointError as err:
            raise FloatingPointError(f"{err} (at step {step})") from None
        step_seconds += time.perf_counter() - step_start
        history.train_step.append(step + 1)
        history.train_loss.append(loss)
        history.train_seconds.append(step_seconds)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            history.val_step.append(step + 1)
            history.val_loss.append(evaluate(model, batch, config.eval_batches))
            bar.set_postfix(train=f"{loss:.3f}", val=f"{history.val_loss[-1]:.3f}")
            if on_eval is not None:
                on_eval(step + 1, model)
        history.seconds = time.perf_counter() - start
        if checkpoint is not None and ((checkpoint_every and (step + 1) % checkpoint_every == 0) or step + 1 == last):
            save_run(checkpoint, model, optimizer, history, config, generators, **(extra or {}))
    return history


def save_run(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    history: History,
    config: TrainConfig,
    generators: Sequence[torch.Generator] | None = (),
    **extra,
) -> dict:
    """Save a run with ``lmkit.checkpoint.save_checkpoint``: its step, history, training config
    and ``extra``, with the optimizer and random states needed to resume (``optimizer=None``
    and ``generators=None``: the release form, weights and records only).
    Returns the saved state besides the weights, optimizer and random states."""
    state = {"step": history.train_step[-1], "history": dataclasses.asdict(history), "train_config": dataclasses.asdict(config), **extra}
    save_checkpoint(path, model, optimizer, generators=generators, **state)
    return state


def resume(
    path: str | Path, model: nn.Module, config: TrainConfig, generators: Sequence[torch.Generator] = ()
) -> tuple[torch.optim.Optimizer, History, dict]:
    """Restore a run that ``train(checkpoint=path)`` saved: the weights into ``model``, the
    random states into torch and ``generators``, and a ``make_optimizer`` optimizer with its
    saved moments. Returns ``(optimizer, history, checkpoint)``; pass the first two to
    ``train`` with the same ``config`` to continue exactly where the run stopped."""
    optimizer = make_optimizer(model, config)
    ckpt = load_checkpoint(path, model, optimizer, generators=generators)
    # The progress bar does not change the run; every other field does.
    saved, given = ({k: v for k, v in c.items() if k != "progress"} for c in (ckpt["train_config"], dataclasses.asdict(config)))
    if saved != given:
        changed = sorted(k for k in given if saved.get(k) != given[k])
        raise ValueError(f"{path} was made with another training config ({', '.join(changed)} differ); resume with the same one")
    return optimizer, History(**ckpt["history"]), ckpt


@torch.no_grad()
def evaluate_lm(model: nn.Module, data: torch.Tensor, block_size: int, batch_size: int = 64) -> float:
    """Mean next-token loss (nats per token) of a language model over consecutive
    windows of the token stream ``data`` (N,): deterministic, unlike sampled batches.

    ``model(x, y)`` must return ``(logits, mean loss)`` for ``x, y`` of shape (B, T).
    """
    if data.ndim != 1 or len(data) <= block_size:
        raise ValueError(f"data must be a 1-D token stream longer than block_size={block_size}, got shape {tuple(data.shape)}")
    was_training = model.training
    model.eval()
    starts = torch.arange((len(data) - 1) // block_size) * block_size
    total = 0.0
    try:
        for chunk in starts.split(batch_size):
            x, y = windows(data, chunk, block_size)  # (B, T) each
            total += model(x, y)[1].item() * x.numel()
    finally:
        model.train(was_training)
    return total / (len(starts) * block_size)


def num_parameters(model: nn.Module) -> int:
    """The number of trainable numbers in ``model``: each parameter tensor counted once,
    so a weight shared by two layers (a tied embedding and output matrix) counts once;
    buffers (fixed position tables, masks) are not parameters and are not counted."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def bits(nats: float) -> float:
    """Convert a loss in nats (natural log) to bits: divide by ln 2."""
    return nats / math.log(2)


if __name__ == "__main__":
    from lmkit.cli import train_main

    train_main()
