"""The nanoGPT CPU "baby GPT" recipe, trained with lmkit, with a plain-torch yardstick.

Recipe: 4 layers, 4 heads, width 128, context 64, batch 12, 2000 iterations,
dropout 0, AdamW (betas 0.9/0.99, weight decay 0.1), learning rate 1e-3 with 100
warm-up steps and cosine decay to 1e-4, gradient clipping at 1.0, characters,
90/10 split. Prints tokens/s, wall time, peak memory and losses for the GPT-2
style and the modern (RMSNorm, SwiGLU, RoPE) configuration at about the same
parameter count, and the speed of a minimal nanoGPT-architecture model written
directly in torch on the same machine, as the yardstick for lmkit's speed.

    .venv/bin/python benchmarks/bench_gpt.py            # both configs, 2000 steps each
    .venv/bin/python benchmarks/bench_gpt.py --steps 200 --only gpt2
"""

from __future__ import annotations

import argparse
import resource
import time

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.data import get_batch, load_shakespeare, train_val_split
from lmkit.tokenizers import CharTokenizer
from lmkit.train import TrainConfig, bits, evaluate, evaluate_lm, make_optimizer, train
from lmkit.transformer import GPT, GPTConfig

MODEL = {"context": 64, "d_model": 128, "n_layers": 4, "n_heads": 4, "dropout": 0.0}
BATCH = 12


class YardstickBlock(nn.Module):
    """nanoGPT's block, written the usual way with torch modules."""

    def __init__(self, d: int = 128, h: int = 4) -> None:
        super().__init__()
        self.ln1, self.ln2, self.h = nn.LayerNorm(d), nn.LayerNorm(d), h
        self.attn, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.fc, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in self.attn(self.ln1(x)).split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + self.proj(y)
        return x + self.fc2(F.gelu(self.fc(self.ln2(x))))


class Yardstick(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, 128), nn.Embedding(64, 128)
        self.blocks = nn.ModuleList(YardstickBlock() for _ in range(4))
        self.ln, self.head = nn.LayerNorm(128), nn.Linear(128, vocab, bias=False)
        self.head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln(x))
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def steps_per_second(model: nn.Module, batch, config: TrainConfig, n: int = 100) -> float:
    """Tokens per second of plain training steps (no evaluation), after a warm-up."""
    opt = make_optimizer(model, config)
    for i in range(n + 10):
        if i == 10:
            start = time.perf_counter()
        _, loss = model(*batch("train"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return n * BATCH * MODEL["context"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--only", choices=["gpt2", "modern"])
    args = parser.parse_args()
    text = load_shakespeare()
    tok = CharTokenizer().train(text)
    data = torch.tensor(tok.encode(text))
    train_data, val_data = train_val_split(data, val_fraction=0.1)
    config = TrainConfig(steps=args.steps, lr=1e-3, min_lr=1e-4, warmup=100, weight_decay=0.1, betas=(0.9, 0.99),
                         grad_clip=1.0, eval_every=args.steps, eval_batches=200, progress=False)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; recipe: {MODEL}, batch {BATCH}, {args.steps} steps")

    g = torch.Generator().manual_seed(0)

    def batch(split: str) -> tuple:
        return get_batch(train_data if split == "train" else val_data, MODEL["context"], BATCH, g)

    torch.manual_seed(0)
    print(f"yardstick (nanoGPT architecture in plain torch): {steps_per_second(Yardstick(tok.vocab_size), batch, config):,.0f} tokens/s")
    for name, preset in [("gpt2", GPTConfig.gpt2), ("modern", GPTConfig.modern)]:
        if args.only and name != args.only:
            continue
        torch.manual_seed(0)
        g.manual_seed(0)
        model = GPT(preset(vocab_size=tok.vocab_size, **MODEL))
        print(f"lmkit {name}: {model.num_parameters():,} parameters; plain steps: {steps_per_second(GPT(preset(vocab_size=tok.vocab_size, **MODEL)), batch, config):,.0f} tokens/s")
        history = train(model, batch, config)
        train_s = history.train_seconds[-1]
        sampled_val = history.val_loss[-1]
        full_val = evaluate_lm(model, val_data, MODEL["context"])
        train_loss = evaluate(model, batch, 200, split="train")
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  {args.steps} steps in {train_s:.1f} s = {args.steps * BATCH * MODEL['context'] / train_s:,.0f} tokens/s (training only); "
              f"peak memory {peak_mb:.0f} MB")
        print(f"  losses: train {train_loss:.4f}, val (200 sampled batches) {sampled_val:.4f}, "
              f"val (every window) {full_val:.4f} nats = {bits(full_val):.3f} bits/char")


if __name__ == "__main__":
    main()
