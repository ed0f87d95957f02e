"""Small checkpoints that ship with the course, and the recipes that make them.

Taught alongside chapters 2 (character RNN and LSTM, copy-task encoder-decoder),
3 (character GPTs with learned and rotary positions, copy-task GPT, the block
ladder) and 4 (the course GPT, GPT-2 style and modern; a depth sweep and an
ablation of the modern block over seeds; KV-cache timings).

The book loads these instead of training at build time. Every checkpoint is
reproducible from its ``Recipe`` in ``RECIPES``: ``python -m lmkit.pretrained``
retrains them all into ``lmkit/checkpoints/`` (the models: about half an hour on
two CPU cores, the training times recorded in the shipped files add up to 30
minutes; the block ladder's 30 runs take hours on a CPU, and its shipped
results were computed on one GPU, see ``build_block_ladder``); ``--only NAME``
retrains one. Each file is a release checkpoint
(``lmkit.checkpoint``) with the model's config and weights, the training history
and the recipe's settings.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lmkit import failures, finetune, finetune_sweeps, scaling
from lmkit.baselines import SENTIMENT_TRAIN, predict_sentiment, sentiment_split, sentiment_words, train_sentiment_lstm
from lmkit.checkpoint import CHECKPOINT_DIR, load_checkpoint, write_results
from lmkit.data import char_data, get_batch
from lmkit.generate import time_generation
from lmkit.recipes import BABY_GPT, Recipe, run
from lmkit.rnn import EncoderDecoder, RecurrentLM, RNNConfig
from lmkit.train import TrainConfig, num_parameters
from lmkit.transformer import GPT, GPTConfig, block_grad_norms

# Character language models of chapter 2: the same recipe for the RNN and the LSTM.
CHAR_LM = Recipe(
    model=RNNConfig(embed_dim=64, hidden_size=256),
    batch_size=32,
    block_size=128,
    train=TrainConfig(steps=1200, lr=3e-3, min_lr=3e-4, warmup=50, eval_every=200, eval_batches=10),
)
# Character GPTs of chapter 3: learned vs rotary positions, otherwise identical.
CHAR_GPT = Recipe(
    model=GPTConfig.gpt2(context=128, d_model=128, n_layers=4, n_heads=4),
    batch_size=16,
    block_size=128,
    train=TrainConfig(steps=1500, lr=1e-3, min_lr=1e-4, warmup=100, eval_every=250, eval_batches=10),
)
# The copy task: strings of 1..24 digits, an encoder-decoder with a 64-unit state, and a
# decoder-only transformer (sources padded to 24 digits) that has no such bottleneck.
COPY_LSTM = Recipe(
    model=RNNConfig(embed_dim=32, hidden_size=64),
    task="copy",
    batch_size=64,
    max_len=24,
    train=TrainConfig(steps=3000, lr=3e-3, min_lr=3e-4, warmup=100, eval_every=500, eval_batches=10),
)
COPY_GPT = Recipe(
    model=GPTConfig.gpt2(context=2 * 24 + 1, d_model=64, n_layers=2, n_heads=4, positions="rope"),
    task="copy",
    batch_size=64,
    max_len=24,
    train=TrainConfig(steps=2000, lr=1e-3, min_lr=1e-4, warmup=100, eval_every=500, eval_batches=10),
)

RECIPES: dict[str, Recipe] = {
    "char_rnn": dataclasses.replace(CHAR_LM, model=RNNConfig(embed_dim=64, hidden_size=256, cell="rnn")),
    "char_lstm": CHAR_LM,
    "copy_lstm": COPY_LSTM,
    "char_gpt_learned": CHAR_GPT,
    "char_gpt_rope": dataclasses.replace(CHAR_GPT, model=dataclasses.replace(CHAR_GPT.model, positions="rope")),
    "copy_gpt": COPY_GPT,
    "gpt_shakespeare": BABY_GPT,
    "gpt_shakespeare_modern": dataclasses.replace(BABY_GPT, model=GPTConfig.modern(context=64, d_model=128, n_layers=4, n_heads=4)),
}
# Chapter 4's depth sweep: the course recipe (BABY_GPT, its warm-up and schedule) at each depth, several
# seeds (results only, no weights). Depth 4, seed 0 is the shipped course GPT without its recorded samples.
DEPTHS = [1, 2, 3, 4]
SWEEP_SEEDS = [0, 1, 2]
# Twelve runs of the full 2000 steps do not fit a shared two-core machine's budget: every run of both
# sweeps is cut to SWEEP_STEPS (the same 100 warm-up steps, cosine decay over the shorter run).
SWEEP_STEPS = 500
DEPTH_SWEEP = dataclasses.replace(BABY_GPT, record_samples=False, checkpoint_every=None).shortened(SWEEP_STEPS)
# Chapter 4's ablation: each change of the modern block applied alone to the GPT-2-style course recipe.
# mlp_hidden=None gives SwiGLU its own default width (8/3 d, as GPTConfig.modern), so that it keeps about
# the GELU MLP's parameter count; norm_eps stays at LayerNorm's 1e-5 (GPTConfig.modern: 1e-6).
MODERN_CHANGES: dict[str, dict] = {
    "GPT-2 style": {},
    "RMSNorm": {"norm": "rmsnorm"},
    "SwiGLU": {"mlp": "swiglu", "mlp_hidden": None},
    "RoPE": {"positions": "rope"},
    "no bias": {"bias": False},
    "all four (modern)": {"norm": "rmsnorm", "mlp": "swiglu", "mlp_hidden": None, "positions": "rope", "bias": False},
}
ABLATION_SEEDS = [0, 1]


def build(name: str, steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Train the shipped model ``name`` (``steps`` for a quick trial instead of the recipe's)
    into ``out_dir``; returns the file written."""
    if name in SWEEPS:
        return SWEEPS[name](steps, out_dir, progress)
    if name in finetune.FINETUNED:
        path = out_dir / f"{name}.pt"
        recipe = finetune.FINETUNED[name]
        finetune.run(dataclasses.replace(recipe, train=_shortened(recipe.train, steps, progress)), path)
        return path
    if name not in RECIPES:
        raise ValueError(f"unknown checkpoint {name!r}; choose from {NAMES}")
    path = out_dir / f"{name}.pt"
    run(_adjusted(RECIPES[name], steps, progress), path, release=True)
    return path


def _sweep(recipe: Recipe, variants: dict[str, dict], seeds: list[int]) -> list[dict]:
    """Train ``recipe`` with each variant's model settings and each seed; one result per run."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, changes in variants.items():
            for seed in seeds:
                variant = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, **changes), seed=seed)
                model, ckpt = run(variant, Path(tmp) / "run.pt", release=True)
                results.append(
                    {
                        "variant": name,
                        **changes,
                        "seed": seed,
                        "parameters": num_parameters(model),
                        "val_loss": ckpt["val_loss"],
                        "seconds": ckpt["history"]["seconds"],
                        "history": ckpt["history"],
                    }
                )
    return results


def _write_sweep(out_dir: Path, name: str, recipe: Recipe, results: list[dict]) -> Path:
    info = {"steps": recipe.train.steps, "warmup": recipe.train.warmup, "batch_size": recipe.batch_size, "block_size": recipe.block_size}
    return write_results(out_dir, name, {**info, "results": results})


def build_depth_sweep(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Held-out loss of the course GPT at each depth in ``DEPTHS`` and each seed in ``SWEEP_SEEDS``,
    the course recipe otherwise."""
    recipe = _adjusted(DEPTH_SWEEP, steps, progress)
    results = _sweep(recipe, {f"{d} blocks": {"n_layers": d} for d in DEPTHS}, SWEEP_SEEDS)
    return _write_sweep(out_dir, "depth_sweep", recipe, results)


def build_modern_ablation(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Held-out loss of the GPT-2-style course GPT with each change of ``MODERN_CHANGES`` alone
    (and all four together), for each seed in ``ABLATION_SEEDS``."""
    recipe = _adjusted(DEPTH_SWEEP, steps, progress)
    results = _sweep(recipe, MODERN_CHANGES, ABLATION_SEEDS)
    return _write_sweep(out_dir, "modern_ablation", recipe, results)


KV_LENGTHS = [64, 128, 256, 512]  # new tokens, generated by the modern course GPT (rotary positions: past its context)


def build_kv_cache_timing(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Median seconds (3 rounds after a warm-up) for the shipped modern GPT to generate each of
    ``KV_LENGTHS`` new tokens greedily with and without the KV cache (``steps``: one length, a quick trial)."""
    model, ckpt = load_gpt("gpt_shakespeare_modern")
    prompt = [ckpt["tokenizer"].index(c) for c in "JULIET:\n"]
    lengths = KV_LENGTHS if steps is None else [steps]
    timing = time_generation(model, prompt, lengths, repeats=3)
    return write_results(out_dir, "kv_cache_timing", {"prompt_tokens": len(prompt), "lengths": lengths, "seconds": timing})


# Chapter 2's sentiment LSTM over several seeds, with the words of each sentence in order or shuffled.
SENTIMENT_SEEDS = list(range(6))


def build_sentiment_sweep(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Chapter 2's sentiment LSTM trained with each seed in ``SENTIMENT_SEEDS``, scored on the
    course's held-out split: as trained, on held-out sentences with their words shuffled, and
    trained and scored on shuffled sentences. Records which held-out sentences each got right."""
    config = SENTIMENT_TRAIN if steps is None else dataclasses.replace(SENTIMENT_TRAIN, steps=steps, eval_every=steps)
    train_ex, held_out = sentiment_split()
    words = sentiment_words(train_ex)
    labels = [ex.label for ex in held_out]
    results = []
    for seed in SENTIMENT_SEEDS:
        row: dict = {"seed": seed}
        for name, shuffled_training in [("ordered", False), ("shuffled_training", True)]:
            model, history = train_sentiment_lstm(train_ex, words, seed=seed, shuffle_words=shuffled_training, config=config)
            tests = {"held_out": None, "held_out_shuffled": torch.Generator().manual_seed(1000 + seed)}
            for test, shuffle in tests.items():
                if shuffled_training and shuffle is None:
                    continue  # a model trained without order is scored on shuffled sentences only
                preds = predict_sentiment(model, words, held_out, shuffle)
                row[f"{name}/{test}"] = "".join(str(int(p == y)) for p, y in zip(preds, labels))  # 1 = right
            row[f"{name}/seconds"] = history.seconds
        results.append(row)
        if progress:
            print(f"seed {seed}: " + ", ".join(f"{k} {v.count('1') / len(v):.3f}" for k, v in row.items() if isinstance(v, str)))
    out = out_dir / "sentiment_sweep.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {"steps": config.steps, "n_held_out": len(held_out), "vocab_size": words.vocab_size, "results": results}
    out.write_text(json.dumps(info, indent=1))


# Chapter 3's block ladder: the character GPT recipe, starting from attention alone and adding one
# part of the block per rung (each rung's GPTConfig changes, cumulative); the full budget.
LADDER = [
    ("one head", {"n_heads": 1, "mlp": "none", "residual": False, "norm": "none", "positions": "none"}),
    ("+ heads", {"mlp": "none", "residual": False, "norm": "none", "positions": "none"}),
    ("+ MLP", {"residual": False, "norm": "none", "positions": "none"}),
    ("+ residuals", {"norm": "none", "positions": "none"}),
    ("+ LayerNorm", {"positions": "none"}),
    ("+ positions", {}),
]
# ... and the other way round: the full block with one part taken out (without positions is the ladder's 5th rung).
KNOCKOUTS = [
    ("1 head", {"n_heads": 1}),
    ("no MLP", {"mlp": "none"}),
    ("no residuals", {"residual": False}),
    ("no LayerNorm", {"norm": "none"}),
]
LADDER_SEEDS = [0, 1, 2]
LADDER_GRAD_BATCHES = 4  # gradient norms: mean over this many training batches
BLOCK_LADDER = dataclasses.replace(CHAR_GPT, train=dataclasses.replace(CHAR_GPT.train, eval_every=CHAR_GPT.train.steps, eval_batches=2))


def build_block_ladder(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Held-out loss of each rung of ``LADDER`` and each variant in ``KNOCKOUTS``, for each seed in
    ``LADDER_SEEDS`` (``BLOCK_LADDER``'s recipe otherwise), and the gradient norm of the loss with respect to each block's parameters
    at initialisation and after training (mean over ``LADDER_GRAD_BATCHES`` training batches).

    30 runs of the full character-GPT budget: hours on a CPU. The shipped ``block_ladder.json``
    was computed on one H100 GPU (its ``device`` field; about 15 s a run) by these same steps
    with torch's default device set to CUDA; the CPU-trained ``char_gpt_learned`` (the full
    block, seed 0: 2.66 bits) lies inside the range of its three GPU seeds (2.64 to 2.67)."""
    recipe = _adjusted(BLOCK_LADDER, steps, progress)
    tokenizer, train_data, _ = char_data()
    g = torch.Generator().manual_seed(1234)
    grad_batches = [get_batch(train_data, recipe.block_size, recipe.batch_size, g) for _ in range(LADDER_GRAD_BATCHES)]

    def mean_grad_norms(model: GPT) -> list[float]:
        per_batch = torch.tensor([block_grad_norms(model, x, y) for x, y in grad_batches])  # (batches, blocks)
        return per_batch.mean(0).tolist()

    def trained(variants: list[tuple[str, dict]], tmp: str) -> list[dict]:
        rungs = []
        for name, changes in variants:
            config = dataclasses.replace(recipe.model, **changes)
            runs = []
            for seed in LADDER_SEEDS:
                torch.manual_seed(seed)  # the initial weights of the run below (``run`` seeds the same way)
                init = mean_grad_norms(GPT(dataclasses.replace(config, vocab_size=tokenizer.vocab_size)))
                model, ckpt = run(dataclasses.replace(recipe, model=config, seed=seed), Path(tmp) / "rung.pt", release=True)
                runs.append(
                    {
                        "seed": seed,
                        "val_loss": ckpt["val_loss"],
                        "train_loss_every_10": ckpt["history"]["train_loss"][9::10],
                        "grad_norm_init": init,
                        "grad_norm_trained": mean_grad_norms(model),
                        "train_seconds": ckpt["history"]["train_seconds"][-1],
                    }
                )
            rungs.append({"name": name, "changes": changes, "parameters": num_parameters(model), "runs": runs})
        return rungs

    with tempfile.TemporaryDirectory() as tmp:
        rungs, knockouts = trained(LADDER, tmp), trained(KNOCKOUTS, tmp)
    out = out_dir / "block_ladder.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": recipe.train.steps, "seeds": LADDER_SEEDS, "rungs": rungs, "knockouts": knockouts}, indent=1))
    return out


# Precomputed experiments the book reads (results only, no weights): name -> builder(steps, out_dir, progress).
SWEEPS: dict[str, Callable[[int | None, Path, bool], Path]] = {
    "depth_sweep": build_depth_sweep,
    "sentiment_sweep": build_sentiment_sweep,
    "block_ladder": build_block_ladder,
    "modern_ablation": build_modern_ablation,
    "kv_cache_timing": build_kv_cache_timing,
    **finetune_sweeps.SWEEPS,
    "failures": failures.build_failures,
    "scaling": scaling.build_scaling,
    "data_choice": scaling.build_data_choice,
}
NAMES = [*RECIPES, *finetune.FINETUNED, *SWEEPS]


def _adjusted(recipe: Recipe, steps: int | None, progress: bool) -> Recipe:
    recipe = recipe if steps is None else recipe.shortened(steps)
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, progress=progress))


def _shortened(config: TrainConfig, steps: int | None, progress: bool) -> TrainConfig:
    return dataclasses.replace(config if steps is None else config.shortened(steps), progress=progress)


def _load(name: str, directory: Path, make: Callable[[dict], nn.Module]) -> tuple[nn.Module, dict]:
    path = directory / f"{name}.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: rebuild it with `python -m lmkit.pretrained --only {name}`")
    ckpt = load_checkpoint(path)
    model = make(ckpt["model_config"])
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def load_char_lm(cell: str, directory: Path = CHECKPOINT_DIR) -> tuple[RecurrentLM, dict]:
    """The shipped character-level RNN (``"rnn"``) or LSTM (``"lstm"``) language model, in eval mode,
    and its checkpoint (history, recipe, held-out loss)."""
    if cell not in ("rnn", "lstm"):
        raise ValueError(f"cell must be 'rnn' or 'lstm', got {cell!r}")
    return _load(f"char_{cell}", directory, lambda cfg: RecurrentLM(RNNConfig(**cfg)))  # type: ignore[return-value]


def load_copy_model(directory: Path = CHECKPOINT_DIR) -> tuple[EncoderDecoder, dict]:
    """The shipped encoder-decoder LSTM trained on the copy task, in eval mode, and its checkpoint."""
    return _load("copy_lstm", directory, lambda cfg: EncoderDecoder(RNNConfig(**cfg)))  # type: ignore[return-value]


def load_gpt(name: str, directory: Path = CHECKPOINT_DIR) -> tuple[GPT, dict]:
    """A shipped GPT checkpoint (``"char_gpt_learned"``, ``"char_gpt_rope"``, ``"copy_gpt"``,
    ``"gpt_shakespeare"``, ``"gpt_shakespeare_modern"``), in eval mode, and its checkpoint."""
    return _load(name, directory, lambda cfg: GPT(GPTConfig(**cfg)))  # type: ignore[return-value]


if __name__ == "__main__":
    from lmkit.cli import pretrained_main

    pretrained_main()
