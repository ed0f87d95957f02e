"""Time one training step (forward + backward) of chapter 3's character LSTM and GPT.

Chapter 3 times the two shipped models on the CPU that builds the book; this script
repeats the measurement on any device, so the chapter's claim about parallel hardware
is a measured number. Besides lmkit's LSTM (a Python loop over ``LSTMCell``, as the
course writes it) it times torch's ``nn.LSTM`` of the same size (one fused cuDNN call
on a GPU), so the transformer is compared with the fastest LSTM available.

    .venv/bin/python benchmarks/bench_train_step.py                # CPU
    .venv/bin/python benchmarks/bench_train_step.py --device cuda  # GPU

Each time is the median of ``--repeats`` steps after ``--warmup`` steps; batches are
windows of 128 characters (the models' context). With ``--wide`` it also times fresh
(untrained) models of width 512 and 4 layers, torch's LSTM against a GPT, on batches
of 16 random sequences of 128, 512 and 2048 tokens: the size at which a GPU's
parallelism starts to matter.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.data import char_data, windows
from lmkit.pretrained import load_char_lm, load_gpt
from lmkit.transformer import GPT, GPTConfig


class TorchLSTMLM(nn.Module):
    """Embedding -> torch's nn.LSTM -> linear head, the sizes of the shipped character LSTM."""

    def __init__(self, vocab_size: int, embed_dim: int, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = nn.LSTM(embed_dim, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.rnn(self.embed(idx))[0])
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def step_ms(model: nn.Module, x: torch.Tensor, y: torch.Tensor, warmup: int, repeats: int) -> list[float]:
    """Sorted wall times (ms) of ``repeats`` forward + backward steps, after ``warmup`` steps."""
    model.train()
    times = []
    for i in range(warmup + repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(x, y)[1].backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(1000 * (time.perf_counter() - start))
        model.zero_grad(set_to_none=True)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--wide", action="store_true", help="also time width-512, 4-layer models on longer sequences")
    args = parser.parse_args()
    torch.manual_seed(0)
    _, train_data, _ = char_data()
    lstm, ckpt = load_char_lm("lstm")
    cfg = ckpt["model_config"]
    models = {
        "lmkit LSTM": lstm,
        "torch nn.LSTM": TorchLSTMLM(cfg["vocab_size"], cfg["embed_dim"], cfg["hidden_size"]),
        "GPT": load_gpt("char_gpt_learned")[0],
    }
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device: {name}, torch {torch.__version__}; median [min-max] ms of {args.repeats} steps")
    for batch in args.batches:
        x, y = windows(train_data, torch.arange(batch) * 128, 128)
        x, y = x.to(args.device), y.to(args.device)
        for label, model in models.items():
            times = step_ms(model.to(args.device), x, y, args.warmup, args.repeats)
            med = statistics.median(times)
            rate = batch * 128 / med * 1000
            print(f"batch {batch:>4} x 128: {label:<14} {med:8.1f} ms [{times[0]:.1f}-{times[-1]:.1f}], {rate:>12,.0f} tokens/s")
    if not args.wide:
        return
    for T in (128, 512, 2048):
        x, y = (torch.randint(0, 65, (16, T), device=args.device) for _ in range(2))
        wide = {
            "torch nn.LSTM": TorchLSTMLM(65, 512, 512, num_layers=4),
            "GPT": GPT(GPTConfig(vocab_size=65, context=T, d_model=512, n_layers=4, n_heads=8, mlp_hidden=2048)),
        }
        for label, model in wide.items():
            times = step_ms(model.to(args.device), x, y, args.warmup, args.repeats)
            med = statistics.median(times)
            params = sum(p.numel() for p in model.parameters())
            print(f"width 512, 16 x {T:>4}: {label:<14} {params:>11,} parameters {med:8.1f} ms [{times[0]:.1f}-{times[-1]:.1f}]")


if __name__ == "__main__":
    main()
