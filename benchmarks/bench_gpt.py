"""lmkit's training step against nanoGPT's, on nanoGPT's CPU "baby GPT" configuration.

The yardstick is nanoGPT's model and training step as its CPU run uses them
(README: ``--device=cpu --compile=False --block_size=64 --batch_size=12 --n_layer=4
--n_head=4 --n_embd=128 --dropout=0.0``, with config/train_shakespeare_char.py:
lr 1e-3, beta2 0.99, 100 warm-up steps, cosine decay to 1e-4; train.py's defaults:
no biases, weight decay 0.1 on matrices only, gradient clipping at 1.0; model.py:
AdamW fused only on CUDA, so the plain AdamW on CPU), written here directly in torch.
lmkit runs the same configuration (``GPTConfig.gpt2(bias=False)``, i.e. the
``--no-bias`` recipe) with its own ``make_optimizer`` and ``train_step``.

This host's speed drifts, so the two are timed in alternating blocks of steps in
one process, on the same batches, and the script prints the per-step time ratio
lmkit / yardstick with its spread over the blocks (median and quartiles).

    .venv/bin/python benchmarks/bench_gpt.py                       # 10 alternating blocks of 50 steps
    .venv/bin/python benchmarks/bench_gpt.py --blocks 5 --block-steps 20 --threads 1
    .venv/bin/python benchmarks/bench_gpt.py --full --steps 2000   # also train the whole recipe (GPT-2 style and modern)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.data import char_data, get_batch
from lmkit.recipes import BABY_GPT
from lmkit.train import TrainConfig, bits, evaluate, evaluate_lm, lr_at, make_optimizer, num_parameters, train, train_step
from lmkit.transformer import GPT, GPTConfig

MODEL = dataclasses.replace(BABY_GPT.model, bias=False)  # nanoGPT's bias=False
TRAIN = BABY_GPT.train
BATCH, BLOCK = BABY_GPT.batch_size, BABY_GPT.block_size


class YardstickBlock(nn.Module):
    """nanoGPT's block: LayerNorms and linear layers without biases, causal attention by
    scaled_dot_product_attention, a 4x GELU MLP."""

    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.Parameter(torch.ones(d)), nn.Parameter(torch.ones(d))
        self.c_attn, self.attn_proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d, bias=False), nn.Linear(4 * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        qkv = self.c_attn(F.layer_norm(x, (C,), self.ln_1, None, 1e-5))
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in qkv.split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(F.layer_norm(x, (C,), self.ln_2, None, 1e-5))))


class Yardstick(nn.Module):
    """nanoGPT's GPT: token and learned position embeddings, blocks, a final LayerNorm,
    an output layer tied to the token embedding; its initialisation (normal 0.02, the
    residual projections scaled by 1/sqrt(2 n_layer))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.d_model
        self.wte, self.wpe = nn.Embedding(config.vocab_size, d), nn.Embedding(config.context, d)
        self.blocks = nn.ModuleList(YardstickBlock(d, config.n_heads) for _ in range(config.n_layers))
        self.ln_f = nn.Parameter(torch.ones(d))
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.ndim == 2:
                std = 0.02 / math.sqrt(2 * config.n_layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(F.layer_norm(x, (x.shape[-1],), self.ln_f, None, 1e-5))
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def yardstick_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """nanoGPT's configure_optimizers on CPU: decay for 2-D parameters, plain (not fused) AdamW."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)


def yardstick_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, grad_clip: float) -> float:
    """One iteration of nanoGPT's train.py loop (no gradient accumulation, no scaler on CPU)."""
    _, loss = model(x, y)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def timed_block(step, model, optimizer, batches: list[tuple], first: int) -> float:
    """Seconds per step over ``batches``, the schedule's learning rate set each step as both loops do."""
    start = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(first + i, TRAIN)
        step(model, optimizer, x, y, grad_clip=TRAIN.grad_clip)
    return (time.perf_counter() - start) / len(batches)


def compare_steps(train_data: torch.Tensor, vocab_size: int, blocks: int, block_steps: int, warmup_steps: int) -> None:
    config = dataclasses.replace(MODEL, vocab_size=vocab_size)
    torch.manual_seed(0)
    runs = {"yardstick": (yardstick_step, Yardstick(config)), "lmkit": (train_step, GPT(config))}
    optimizers = {"yardstick": yardstick_optimizer(runs["yardstick"][1], TRAIN), "lmkit": make_optimizer(runs["lmkit"][1], TRAIN)}
    for name, (_, model) in runs.items():
        print(
            f"  {name}: {num_parameters(model):,} parameters, {type(optimizers[name]).__name__} "
            f"fused={optimizers[name].defaults.get('fused')}"
        )
    g = torch.Generator().manual_seed(0)
    seconds: dict[str, list[float]] = {"yardstick": [], "lmkit": []}
    for block in range(-1, blocks):  # block -1 warms both up and is not counted
        n = warmup_steps if block < 0 else block_steps
        batches = [get_batch(train_data, BLOCK, BATCH, g) for _ in range(n)]
        order = ["yardstick", "lmkit"] if block % 2 == 0 else ["lmkit", "yardstick"]  # who goes first alternates too
        for name in order:
            step, model = runs[name]
            per_step = timed_block(step, model, optimizers[name], batches, first=max(0, block) * block_steps)
            if block >= 0:
                seconds[name].append(per_step)
    ratios = [a / b for a, b in zip(seconds["lmkit"], seconds["yardstick"])]
    q1, median, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    for name, times in seconds.items():
        ms = 1000 * statistics.median(times)
        print(
            f"  {name:>9}: median {ms:.2f} ms/step = {BATCH * BLOCK / (ms / 1000):,.0f} tokens/s "
            f"(blocks from {1000 * min(times):.2f} to {1000 * max(times):.2f} ms/step)"
        )
    print(
        f"  per-step time lmkit / yardstick: median {median:.3f}, quartiles {q1:.3f} to {q3:.3f} "
        f"over {blocks} alternating blocks of {block_steps} steps (> 1: lmkit slower)"
    )


def full_recipe(train_data: torch.Tensor, val_data: torch.Tensor, vocab_size: int, steps: int, only: str | None) -> None:
    """Train the whole recipe with lmkit.train: tokens/s, wall time, peak memory and losses."""
    config = dataclasses.replace(
        TRAIN, steps=steps, warmup=min(TRAIN.warmup, steps - 1), eval_every=steps, eval_batches=200, progress=False
    )
    g = torch.Generator()

    def batch(split: str) -> tuple:
        return get_batch(train_data if split == "train" else val_data, BLOCK, BATCH, g)

    presets = {"gpt2": GPTConfig.gpt2, "modern": GPTConfig.modern}
    for name, preset in presets.items():
        if only and name != only:
            continue
        torch.manual_seed(0)
        g.manual_seed(0)
        model = GPT(
            preset(vocab_size=vocab_size, context=MODEL.context, d_model=MODEL.d_model, n_layers=MODEL.n_layers, n_heads=MODEL.n_heads)
        )
        history = train(model, batch, config)
        full_val = evaluate_lm(model, val_data, BLOCK)
        train_loss = evaluate(model, batch, 200, split="train")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tokens = steps * BATCH * BLOCK
        print(
            f"  lmkit {name}: {num_parameters(model):,} parameters; {steps} steps: {tokens / history.train_seconds[-1]:,.0f} tokens/s "
            f"in training steps ({history.train_seconds[-1]:.1f} s), {tokens / history.seconds:,.0f} tokens/s over the run "
            f"({history.seconds:.1f} s); peak memory {peak_mb:.0f} MB"
        )
        print(
            f"    losses: train {train_loss:.4f}, val (200 sampled batches) {history.val_loss[-1]:.4f}, "
            f"val (every window) {full_val:.4f} nats = {bits(full_val):.3f} bits/char"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=10, help="alternating timed blocks per side")
    parser.add_argument("--block-steps", type=int, default=50, help="training steps per timed block")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed steps per side before the first block")
    parser.add_argument("--full", action="store_true", help="also train the whole recipe with lmkit.train (tokens/s, wall time, losses)")
    parser.add_argument("--steps", type=int, default=TRAIN.steps, help="steps of the whole recipe with --full")
    parser.add_argument("--only", choices=["gpt2", "modern"], help="with --full: only this configuration")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's; 1 is steadier on a busy machine)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    tokenizer, train_data, val_data = char_data()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {MODEL.n_layers} layers, {MODEL.n_heads} heads, width {MODEL.d_model}, "
        f"context {BLOCK}, batch {BATCH}, no biases"
    )
    compare_steps(train_data, tokenizer.vocab_size, args.blocks, args.block_steps, args.warmup_steps)
    if args.full:
        full_recipe(train_data, val_data, tokenizer.vocab_size, args.steps, args.only)


if __name__ == "__main__":
    main()
