"""One training loop for every model in the course.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm import tqdm

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


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, *batch: torch.Tensor,
               grad_clip: float | None = 1.0) -> float:
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
    checkpoint: str | Path | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    generators: Sequence[torch.Generator] = (),
    extra: dict | None = None,
    on_eval: Callable[[int, nn.Module], None] | None = None,
    until: int | None = None,
) -> History:
    """Train ``model`` for ``config.steps`` steps; evaluate on ``"val"`` every
    ``eval_every`` steps and at the end. Returns the loss history.

    Checkpoints: with ``checkpoint`` (a path), the model, optimizer, step, history,
    config, ``extra`` (e.g. the model config and tokenizer) and the states of the
    random ``generators`` the batch function uses are saved every
    ``checkpoint_every`` steps and at the end; with ``resume=True`` an existing
    checkpoint is loaded first and training continues exactly where it stopped.
    ``until`` stops after that step (the schedule still spans ``config.steps``).
    ``on_eval(step, model)`` runs after each evaluation.
    """
    optimizer = make_optimizer(model, config)
    history = History()
    first = 0
    if resume and checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if state["train_config"] != dataclasses.asdict(config):
            raise ValueError(f"{checkpoint} was made with another training config; resume with the same one")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        history = History(**state["history"])
        first = state["step"]
        for g, g_state in zip(generators, state["generator_states"]):
            g.set_state(g_state)
        torch.set_rng_state(state["torch_rng"])
    last = config.steps if until is None else min(until, config.steps)
    model.train()
    start = time.perf_counter() - history.seconds
    bar = tqdm(range(first, last), disable=not config.progress, desc="training", mininterval=1.0, initial=first, total=config.steps)
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, config)
        try:
            loss = train_step(model, optimizer, *batch("train"), grad_clip=config.grad_clip)
        except FloatingPointError as err:
            raise FloatingPointError(f"{err} (at step {step})") from None
        history.train_step.append(step + 1)
        history.train_loss.append(loss)
        history.train_seconds.append(time.perf_counter() - start)
        if (step + 1) % config.eval_every == 0 or step + 1 == config.steps:
            history.val_step.append(step + 1)
            history.val_loss.append(evaluate(model, batch, config.eval_batches))
            bar.set_postfix(train=f"{loss:.3f}", val=f"{history.val_loss[-1]:.3f}")
            if on_eval is not None:
                on_eval(step + 1, model)
        history.seconds = time.perf_counter() - start
        if checkpoint is not None and ((checkpoint_every and (step + 1) % checkpoint_every == 0) or step + 1 == last):
            save_checkpoint(checkpoint, model, optimizer, step + 1, history, config, generators, extra)
    return history


def save_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, step: int, history: History,
    config: TrainConfig, generators: Sequence[torch.Generator] = (), extra: dict | None = None,
) -> None:
    """Everything needed to resume training exactly, or to load the model for use."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
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
    tmp = Path(str(path) + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)  # never leave a half-written checkpoint behind


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


def main(argv: Sequence[str] | None = None) -> Path:
    """Command line: pretrain a character-level GPT on the bundled corpus.

    ``python -m lmkit.train --out run.pt`` runs the course's baby-GPT recipe;
    every hyper-parameter is a flag (``--help``); ``--resume`` continues a run.
    """
    import argparse

    from lmkit.data import get_batch, load_shakespeare, train_val_split
    from lmkit.generate import generate
    from lmkit.tokenizers import CharTokenizer
    from lmkit.transformer import GPT, GPTConfig

    p = argparse.ArgumentParser(prog="python -m lmkit.train", description=main.__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (and to resume from)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--preset", choices=["gpt2", "modern"], default="gpt2", help="LayerNorm/GELU/learned positions, or RMSNorm/SwiGLU/RoPE")
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--mlp-hidden", type=int, default=None)
    p.add_argument("--context", type=int, default=64, help="block size: tokens per training sequence")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-prompt", default="\n", help="text that samples recorded at each evaluation start with")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    args = p.parse_args(argv)

    text = load_shakespeare()
    tokenizer = CharTokenizer().train(text)
    data = torch.tensor(tokenizer.encode(text))
    train_data, val_data = train_val_split(data, val_fraction=0.1)
    preset = GPTConfig.gpt2 if args.preset == "gpt2" else GPTConfig.modern
    model_config = preset(vocab_size=tokenizer.vocab_size, context=args.context, d_model=args.d_model, n_layers=args.n_layers,
                          n_heads=args.n_heads, mlp_hidden=args.mlp_hidden, dropout=args.dropout)
    config = TrainConfig(steps=args.steps, lr=args.lr, min_lr=args.min_lr, warmup=args.warmup, weight_decay=args.weight_decay,
                         betas=(0.9, args.beta2), grad_clip=args.grad_clip, eval_every=args.eval_every,
                         eval_batches=args.eval_batches, progress=not args.quiet)
    torch.manual_seed(args.seed)
    model = GPT(model_config)
    generator = torch.Generator().manual_seed(args.seed)

    def batch(split: str) -> tuple:
        return get_batch(train_data if split == "train" else val_data, args.context, args.batch_size, generator)

    samples: dict[int, str] = {}

    def record_sample(step: int, m: nn.Module) -> None:
        ids = generate(m, tokenizer.encode(args.sample_prompt), max_new_tokens=200, temperature=0.8, seed=0, use_cache=False)  # type: ignore[arg-type]
        samples[step] = tokenizer.decode(ids)

    if args.resume and args.out.exists():
        samples.update(torch.load(args.out, map_location="cpu", weights_only=True)["samples"])
    else:
        record_sample(0, model)
    extra = {"model_config": dataclasses.asdict(model_config), "tokenizer_chars": tokenizer.itos, "samples": samples,
             "block_size": args.context, "recipe": vars(args) | {"out": str(args.out)}}
    history = train(model, batch, config, checkpoint=args.out, checkpoint_every=args.checkpoint_every, resume=args.resume,
                    generators=[generator], extra=extra, on_eval=record_sample)
    val_loss = evaluate_lm(model, val_data, args.context)
    state = torch.load(args.out, map_location="cpu", weights_only=True)
    state["val_loss"] = val_loss
    torch.save(state, args.out)
    n_tokens = config.steps * args.batch_size * args.context
    print(f"{model.num_parameters():,} parameters; {n_tokens / history.seconds:,.0f} tokens/s; {history.seconds:.0f} s; "
          f"held-out loss {val_loss:.4f} nats = {bits(val_loss):.3f} bits per character -> {args.out}")
    return args.out


if __name__ == "__main__":
    main()
