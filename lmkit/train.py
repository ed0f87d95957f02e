"""One training loop for every model in the course.

Taught in chapter 2 (training a recurrent language model) and used by every
chapter after it; chapter 4 adds the schedule, checkpoints and exact resume.

A model is called as ``model(*batch)`` and returns ``(output, loss)``; a batch
function ``batch(split)`` returns the arguments for one step (``split`` is
``"train"`` or ``"val"``). The loop does AdamW with weight decay on matrices
only, optional linear warm-up and cosine decay, gradient clipping, periodic
evaluation and a progress bar, and records a ``History``.

The same loop trains data-parallel under ``torchrun`` (the appendix on distributed
training): inside a ``torch.distributed`` process group of several processes, each
process runs the model (wrapped in ``DistributedDataParallel``) on its own share of
every batch, gradients are averaged, the recorded losses are the whole batch's, and
only rank 0 shows the progress bar and writes checkpoints.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
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

    In a ``torch.distributed`` process group of several processes (``torchrun``; see
    ``init_distributed``) every process calls ``train`` with the same model, seeds and
    ``batch``: each draws the same global batch and keeps its share of the rows
    (``shard``), ``DistributedDataParallel`` averages the gradients, and the history
    records the mean over processes, which is the whole batch's loss when every row
    counts the same number of tokens. Evaluation batches are split the same way; the
    hooks run in every process (the models are identical). Checkpoints are written by
    rank 0 alone (``save_run``) and the progress bar is shown by rank 0 alone.
    """
    optimizer = make_optimizer(model, config) if optimizer is None else optimizer
    history = History() if history is None else history
    first = history.train_step[-1] if history.train_step else 0
    last = config.steps if until is None else min(until, config.steps)
    rank, world_size = world()
    # The course's buffers are constants (masks, position tables): copied once at the start, not at every step.
    net = DistributedDataParallel(model, forward_sync_buffers=False) if world_size > 1 else model
    local = batch if world_size == 1 else lambda split: shard(batch(split), rank, world_size)
    model.train()
    start = time.perf_counter() - history.seconds
    step_seconds = history.train_seconds[-1] if history.train_seconds else 0.0
    bar = tqdm(
        range(first, last), disable=not config.progress or rank != 0, desc="training", mininterval=1.0, initial=first, total=config.steps
    )
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        step_start = time.perf_counter()
        try:
            loss = mean_over_processes(train_step(net, optimizer, *local("train"), grad_clip=config.grad_clip))
        except FloatingPointError as err:
            raise FloatingPointError(f"{err} (at step {step})") from None
        step_seconds += time.perf_counter() - step_start
        history.train_step.append(step + 1)
        history.train_loss.append(loss)
        history.train_seconds.append(step_seconds)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            history.val_step.append(step + 1)
            history.val_loss.append(mean_over_processes(evaluate(model, local, config.eval_batches)))
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
    Returns the saved state besides the weights, optimizer and random states.

    In a process group of several processes every process calls it, rank 0 writes the
    file (the processes hold the same run) and the others wait until it is written."""
    state = {"step": history.train_step[-1], "history": dataclasses.asdict(history), "train_config": dataclasses.asdict(config), **extra}
    rank, world_size = world()
    if rank == 0:
        save_checkpoint(path, model, optimizer, generators=generators, **state)
    if world_size > 1:
        dist.barrier()
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


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process in torch.distributed's default process
    group; ``(0, 1)`` outside one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed() -> bool:
    """Join the process group that ``torchrun`` describes in the environment
    (``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), over gloo: lmkit
    trains on the CPU. Nothing happens outside torchrun (no ``WORLD_SIZE``, or 1) or
    when the group exists already. Returns whether it started one; whoever started it
    ends it with ``torch.distributed.destroy_process_group()``."""
    size = os.environ.get("WORLD_SIZE", "1")
    if not size.isdigit() or int(size) < 1:
        raise ValueError(f"WORLD_SIZE must be a positive integer (torchrun sets it), got {size!r}")
    if int(size) == 1 or dist.is_initialized():
        return False
    dist.init_process_group("gloo")
    return True


def shard(batch: tuple, rank: int, world_size: int) -> tuple:
    """Process ``rank``'s share of a global ``batch`` (a tuple such as ``(x, y)``): of
    every tensor, the ``B / world_size`` consecutive rows that start at row
    ``rank * B / world_size``; anything else (a scalar tensor, ``None``) as it is."""
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    parts = []
    for item in batch:
        if isinstance(item, torch.Tensor) and item.ndim > 0:
            if len(item) % world_size:
                raise ValueError(
                    f"a batch of {len(item)} rows does not split evenly over {world_size} processes: make the batch size a multiple of it"
                )
            rows = len(item) // world_size
            item = item[rank * rows : (rank + 1) * rows]
        parts.append(item)
    return tuple(parts)


def mean_over_processes(value: float) -> float:
    """The mean of ``value`` over the processes of the process group; ``value`` itself
    outside one. Every process must call it at the same point."""
    _, world_size = world()
    if world_size == 1:
        return value
    total = torch.tensor(value, dtype=torch.float64)
    dist.all_reduce(total)
    return total.item() / world_size


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
