"""One training loop for every model in the course.

A model is called as ``model(*batch)`` and returns ``(output, loss)``; a batch
function ``batch(split)`` returns the arguments for one step (``split`` is
``"train"`` or ``"val"``). The loop does AdamW with weight decay on matrices
only, optional linear warm-up and cosine decay, gradient clipping, periodic
evaluation and a progress bar, and records a ``History``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

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


@dataclass
class History:
    """Losses as training went: ``train_loss[k]`` at ``train_step[k]`` (reached after
    ``train_seconds[k]`` seconds of training), ``val_loss[k]`` at ``val_step[k]``."""

    train_step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_seconds: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine decay to ``min_lr``."""
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    if config.min_lr is None:
        return config.lr
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW that decays matrices (weights, embeddings) but not biases and norm gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, foreach=True)


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


def train(model: nn.Module, batch: BatchFn, config: TrainConfig) -> History:
    """Train ``model`` for ``config.steps`` steps; evaluate on ``"val"`` every
    ``eval_every`` steps and at the end. Returns the loss history."""
    optimizer = make_optimizer(model, config)
    history = History()
    model.train()
    start = time.perf_counter()
    bar = tqdm(range(config.steps), disable=not config.progress, desc="training", mininterval=1.0)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        _, loss = model(*batch("train"))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        history.train_step.append(step + 1)
        history.train_loss.append(loss.item())
        history.train_seconds.append(time.perf_counter() - start)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            history.val_step.append(step + 1)
            history.val_loss.append(evaluate(model, batch, config.eval_batches))
            bar.set_postfix(train=f"{loss.item():.3f}", val=f"{history.val_loss[-1]:.3f}")
    history.seconds = time.perf_counter() - start
    return history


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
    offsets = torch.arange(block_size)
    total = 0.0
    try:
        for chunk in starts.split(batch_size):
            x = data[chunk[:, None] + offsets].long()  # (B, T)
            y = data[chunk[:, None] + offsets + 1].long()  # (B, T)
            total += model(x, y)[1].item() * x.numel()
    finally:
        model.train(was_training)
    return total / (len(starts) * block_size)


def bits(nats: float) -> float:
    """Convert a loss in nats (natural log) to bits: divide by ln 2."""
    return nats / math.log(2)
