"""Chapter 6's measurements of scale and data: how held-out loss falls with model size
and with training tokens, and what repeated training text does. Results only, no weights.

``build_scaling`` trains the modern character GPT (``GPTConfig.modern``, as the course's
``gpt_shakespeare_modern``) at each size of ``SIZES`` and each seed of ``SEEDS`` with a
constant learning rate after a short warm-up, and measures the held-out loss at the
log-spaced steps of ``EVAL_STEPS``: with a constant rate, the loss after k steps is the
loss of a run that was meant to stop there (a cosine schedule would only be finished at
the last step). ``build_data_choice`` trains one small model on the corpus and on the
corpus with one passage repeated many times (as web crawls repeat pages), same steps,
and measures held-out loss and how much of the passage the model reproduces verbatim.
``fit_power_law`` and ``fit_power_law_floor`` fit the results.

Commands, with ``OMP_NUM_THREADS=1`` on a two-core machine shared with other jobs:
``python -m lmkit.pretrained --only scaling`` (10 runs, 415 s measured, 9 to 93 s a run:
``total_seconds`` and each run's ``seconds`` in ``scaling.json``) and ``python -m
lmkit.pretrained --only data_choice`` (6 runs, 198 s measured); ``--steps N`` is a quick trial.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from lmkit.checkpoint import CHECKPOINT_DIR, write_results
from lmkit.data import char_data, get_batch
from lmkit.generate import greedy_batch
from lmkit.train import TrainConfig, evaluate_lm, num_parameters, train
from lmkit.transformer import GPT, GPTConfig

# Widths and depths whose non-embedding parameters span about 1.7 orders of magnitude
# (14k to 790k; the largest is the course GPT's shape).
SIZES: list[dict] = [
    {"d_model": 24, "n_layers": 2, "n_heads": 2},
    {"d_model": 48, "n_layers": 2, "n_heads": 4},
    {"d_model": 64, "n_layers": 3, "n_heads": 4},
    {"d_model": 96, "n_layers": 3, "n_heads": 4},
    {"d_model": 128, "n_layers": 4, "n_heads": 4},
]
SEEDS = [0, 1]
BLOCK_SIZE, BATCH_SIZE = 64, 12  # the course GPT's: 768 tokens a step
STEPS = 1024  # 786k tokens: less than one pass over the 1.0M training characters
WARMUP = 32
EVAL_STEPS = [32, 64, 128, 256, 512, 1024]  # after the warm-up, doubling
EVAL_TOKENS = 32768  # the first held-out characters, the same for every run
# The course recipe's optimiser settings; the rate stays at lr after the warm-up.
TRAIN = TrainConfig(steps=STEPS, lr=1e-3, min_lr=None, warmup=WARMUP, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0)

# Data choice: the sweep's middle size (160k parameters besides the embedding) trained on the
# corpus as it is and on the corpus with copies of one passage of PASSAGE_CHARS characters
# added until the passage is about REPEATED_SHARE of the training stream; the same steps,
# so the copies take the place of unique text in the batches. Both passages (the repeated
# one and the one seen once, for comparison) begin at a speaker's turn.
DATA_SIZE = SIZES[2]
PASSAGE_START, OTHER_START, PASSAGE_CHARS = 500_060, 250_298, 1000
REPEATED_SHARE = 0.1
DATA_SEEDS = [0, 1, 2]
PROMPT_CHARS, CONTINUE_CHARS, N_PROMPTS = 32, 64, 40


def fit_power_law(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Fit ``y = a * x**(-alpha)`` by least squares on ``log y = log a - alpha log x``;
    returns ``(a, alpha)``. Needs at least two points, all positive, not all at one x."""
    lx, ly = _logs(x, y)
    n = len(lx)
    mx, my = sum(lx) / n, sum(ly) / n
    sxx = sum((v - mx) ** 2 for v in lx)
    if sxx == 0:
        raise ValueError("all x are equal: a slope cannot be fitted")
    slope = sum((u - mx) * (v - my) for u, v in zip(lx, ly)) / sxx
    return math.exp(my - slope * mx), -slope


def fit_power_law_floor(x: Sequence[float], y: Sequence[float], grid: int = 2000) -> tuple[float, float, float]:
    """Fit ``y = floor + a * x**(-alpha)``, the form with an irreducible loss; returns
    ``(floor, a, alpha)``. The floor is searched on ``grid`` values in ``[0, min(y))``;
    for each, ``fit_power_law`` fits ``y - floor``, and the floor with the smallest squared
    error in ``log y`` wins. Needs at least three points (three numbers are fitted)."""
    _logs(x, y)
    if len(x) < 3:
        raise ValueError(f"need at least 3 points to fit three numbers, got {len(x)}")
    if grid < 1:
        raise ValueError(f"grid must be positive, got {grid}")
    best = None
    for k in range(grid):
        floor = min(y) * k / grid
        a, alpha = fit_power_law(x, [v - floor for v in y])
        err = sum((math.log(floor + a * u ** (-alpha)) - math.log(v)) ** 2 for u, v in zip(x, y))
        if best is None or err < best[0]:
            best = (err, floor, a, alpha)
    return best[1], best[2], best[3]


def _logs(x: Sequence[float], y: Sequence[float]) -> tuple[list[float], list[float]]:
    x, y = [float(v) for v in x], [float(v) for v in y]
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError(f"need at least 2 points, got {len(x)}")
    if min(x) <= 0 or min(y) <= 0:
        raise ValueError("a power law needs positive x and y (their logarithms are fitted)")
    return [math.log(v) for v in x], [math.log(v) for v in y]


def non_embedding_parameters(model: GPT) -> int:
    """Parameters outside the token and position embeddings, as Kaplan et al. count N: the
    blocks, the final norm and (only when it is not tied to the embedding) the output layer."""
    embeddings = [model.tok_emb] + ([model.pos_emb] if model.pos_emb is not None else [])
    return num_parameters(model) - sum(e.weight.numel() for e in embeddings)


def train_measured(
    config: GPTConfig,
    train_data: torch.Tensor,
    eval_sets: dict[str, torch.Tensor],
    train_config: TrainConfig,
    eval_steps: Sequence[int],
    seed: int,
) -> tuple[GPT, dict]:
    """Train a GPT on random windows of ``train_data`` and measure its mean loss (nats per
    character, ``evaluate_lm``) on each stream of ``eval_sets`` after each of ``eval_steps``.
    Returns the model and ``{"losses": {name: [loss per eval step]}, "seconds", "train_seconds"}``."""
    if not eval_steps or sorted(set(eval_steps)) != list(eval_steps) or eval_steps[-1] != train_config.steps:
        raise ValueError(f"eval_steps must increase and end at the last step ({train_config.steps}), got {list(eval_steps)}")
    torch.manual_seed(seed)
    model = GPT(config)
    g = torch.Generator().manual_seed(seed)
    losses: dict[str, list[float]] = {name: [] for name in eval_sets}

    def measure(step: int, m: nn.Module) -> None:
        if step in eval_steps:
            for name, data in eval_sets.items():
                losses[name].append(evaluate_lm(m, data, BLOCK_SIZE))

    # train's own evaluation (one sampled batch) runs at every multiple of eval_every; the
    # hook measures the fixed streams at the eval steps, all multiples of their gcd.
    every = math.gcd(*eval_steps)
    config_ = dataclasses.replace(train_config, eval_every=every, eval_batches=1)
    history = train(model, lambda split: get_batch(train_data, BLOCK_SIZE, BATCH_SIZE, g), config_, on_eval=measure)
    return model, {"losses": losses, "seconds": history.seconds, "train_seconds": history.train_seconds[-1]}


def _trial(steps: int | None, progress: bool) -> tuple[TrainConfig, list[int]]:
    """The training config and eval steps: the full ones, or a quick trial of ``steps``."""
    if steps is None:
        return dataclasses.replace(TRAIN, progress=progress), EVAL_STEPS
    config = dataclasses.replace(TRAIN, steps=steps, warmup=min(WARMUP, steps - 1), progress=progress)
    return config, [s for s in EVAL_STEPS if s < steps] + [steps]


def build_scaling(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Held-out loss after each of ``EVAL_STEPS`` for each size in ``SIZES`` and seed in ``SEEDS``."""
    config, eval_steps = _trial(steps, progress)
    tokenizer, train_data, val_data = char_data()
    held_out = val_data[: EVAL_TOKENS + 1]
    results = []
    start = time.perf_counter()
    for size in SIZES:
        model_config = GPTConfig.modern(vocab_size=tokenizer.vocab_size, context=BLOCK_SIZE, **size)
        for seed in SEEDS:
            model, record = train_measured(model_config, train_data, {"held_out": held_out}, config, eval_steps, seed)
            results.append(
                {
                    **size,
                    "seed": seed,
                    "parameters": num_parameters(model),
                    "non_embedding_parameters": non_embedding_parameters(model),
                    "val_loss": record["losses"]["held_out"],
                    "seconds": record["seconds"],
                    "train_seconds": record["train_seconds"],
                }
            )
            if progress:
                print(f"{size} seed {seed}: {results[-1]['val_loss'][-1]:.4f} nats, {record['seconds']:.0f} s")
    info = {
        "steps": config.steps,
        "warmup": config.warmup,
        "lr": config.lr,
        "batch_size": BATCH_SIZE,
        "block_size": BLOCK_SIZE,
        "tokens_per_step": BATCH_SIZE * BLOCK_SIZE,
        "eval_steps": eval_steps,
        "eval_tokens": EVAL_TOKENS,
        "train_characters": len(train_data),
        "results": results,
        "total_seconds": time.perf_counter() - start,
    }
    return write_results(out_dir, "scaling", info)


def repeated_passage_stream(train_data: torch.Tensor, start: int, length: int, share: float) -> tuple[torch.Tensor, int]:
    """The training stream followed by copies of its passage ``train_data[start:start + length]``,
    as many as make the passage (the original included) about ``share`` of the new stream:
    the corpus with duplicates, of which ``train_data`` is the deduplicated form.
    Returns the new stream and the number of copies added."""
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    if length < 1 or start < 0 or start + length > len(train_data):
        raise ValueError(f"the passage [{start}, {start + length}) must lie inside the {len(train_data)} training tokens")
    # (extra + 1) * length = share * (len + extra * length), solved for extra
    extra = round((share * len(train_data) / length - 1) / (1 - share))
    if extra < 1:
        raise ValueError(f"the passage alone is already more than {share} of the stream: nothing to repeat")
    passage = train_data[start : start + length]
    return torch.cat([train_data, passage.repeat(extra)]), extra


@torch.no_grad()
def verbatim_continuations(model: GPT, passage: torch.Tensor, n_prompts: int, prompt: int, new: int) -> list[int]:
    """For ``n_prompts`` evenly spaced windows of ``passage``: how many of the ``new``
    characters the model writes greedily after ``prompt`` characters of the passage
    match the passage's own continuation before the first mismatch."""
    if len(passage) < prompt + new:
        raise ValueError(f"the passage has {len(passage)} tokens, fewer than prompt + new = {prompt + new}")
    starts = torch.linspace(0, len(passage) - prompt - new, n_prompts).long()
    windows = torch.stack([passage[s : s + prompt + new] for s in starts.tolist()])  # (P, prompt + new)
    written = greedy_batch(model, windows[:, :prompt], new)[:, prompt:]
    wrong = written != windows[:, prompt:]
    # the first mismatch's position, or ``new`` when the whole continuation matches
    return torch.where(wrong.any(1), wrong.float().argmax(1), torch.tensor(new)).tolist()


def build_data_choice(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """``DATA_SIZE``'s model trained on the corpus and on the corpus with a repeated passage
    (``repeated_passage_stream``), each seed of ``DATA_SEEDS``: held-out loss, loss on the
    passage and on a passage seen once, and verbatim continuations of both."""
    config, eval_steps = _trial(steps, progress)
    tokenizer, train_data, val_data = char_data()
    repeated, copies = repeated_passage_stream(train_data, PASSAGE_START, PASSAGE_CHARS, REPEATED_SHARE)
    passage = train_data[PASSAGE_START : PASSAGE_START + PASSAGE_CHARS]
    other = train_data[OTHER_START : OTHER_START + PASSAGE_CHARS]  # in both streams once: the baseline
    eval_sets = {"held_out": val_data[: EVAL_TOKENS + 1], "repeated_passage": passage, "other_passage": other}
    model_config = GPTConfig.modern(vocab_size=tokenizer.vocab_size, context=BLOCK_SIZE, **DATA_SIZE)
    results = []
    for name, stream in [("as is", train_data), ("one passage repeated", repeated)]:
        for seed in DATA_SEEDS:
            model, record = train_measured(model_config, stream, eval_sets, config, eval_steps, seed)
            copied = {
                key: verbatim_continuations(model, eval_sets[key], N_PROMPTS, PROMPT_CHARS, CONTINUE_CHARS)
                for key in ("repeated_passage", "other_passage")
            }
            results.append({"data": name, "seed": seed, "losses": record["losses"], "verbatim": copied, "seconds": record["seconds"]})
            if progress:
                final = {k: round(v[-1], 3) for k, v in record["losses"].items()}
                print(f"{name}, seed {seed}: {final}, {record['seconds']:.0f} s")
    info = {
        "model": DATA_SIZE,
        "parameters": num_parameters(model),
        "steps": config.steps,
        "eval_steps": eval_steps,
        "tokens_per_step": BATCH_SIZE * BLOCK_SIZE,
        "passage_start": PASSAGE_START,
        "other_start": OTHER_START,
        "passage_chars": PASSAGE_CHARS,
        "passage_text": tokenizer.decode(passage.tolist()),
        "extra_copies": copies,
        "repeated_share": (copies + 1) * PASSAGE_CHARS / len(repeated),
        "prompt_chars": PROMPT_CHARS,
        "continue_chars": CONTINUE_CHARS,
        "results": results,
    }
    return write_results(out_dir, "data_choice", info)
