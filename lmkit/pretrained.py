"""Small checkpoints that ship with the course, and the recipes that make them.

Taught alongside chapters 2 (character RNN and LSTM, copy-task encoder-decoder),
3 (character GPTs with learned and rotary positions, copy-task GPT) and 4 (the
course GPT, GPT-2 style and modern, and a depth sweep).

The book loads these instead of training at build time. Every checkpoint is
reproducible from its ``Recipe`` in ``RECIPES``: ``python -m lmkit.pretrained``
retrains them all into ``lmkit/checkpoints/`` (about half an hour on two CPU
cores: the training times recorded in the shipped files add up to 30 minutes);
``--only NAME`` retrains one. Each file is a release checkpoint
(``lmkit.checkpoint``) with the model's config and weights, the training history
and the recipe's settings.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from lmkit.baselines import SENTIMENT_TRAIN, predict_sentiment, sentiment_split, sentiment_words, train_sentiment_lstm
from lmkit.checkpoint import load_checkpoint
from lmkit.recipes import BABY_GPT, Recipe, run
from lmkit.rnn import EncoderDecoder, RecurrentLM, RNNConfig
from lmkit.train import TrainConfig, num_parameters
from lmkit.transformer import GPT, GPTConfig

CHECKPOINT_DIR = Path(str(resources.files("lmkit").joinpath("checkpoints")))

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
# Chapter 4's depth sweep: the baby GPT at several depths (results only, no weights).
DEPTHS = [1, 2, 4]
DEPTH_SWEEP = dataclasses.replace(
    BABY_GPT, train=dataclasses.replace(BABY_GPT.train, warmup=50, eval_every=500), record_samples=False, checkpoint_every=None
)


def build(name: str, steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Train the shipped model ``name`` (``steps`` for a quick trial instead of the recipe's)
    into ``out_dir``; returns the file written."""
    if name in SWEEPS:
        return SWEEPS[name](steps, out_dir, progress)
    if name not in RECIPES:
        raise ValueError(f"unknown checkpoint {name!r}; choose from {NAMES}")
    path = out_dir / f"{name}.pt"
    run(_adjusted(RECIPES[name], steps, progress), path, release=True)
    return path


def build_depth_sweep(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Held-out loss of the baby GPT at each depth in ``DEPTHS``, same recipe and budget otherwise."""
    recipe = _adjusted(DEPTH_SWEEP, steps, progress)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for depth in DEPTHS:
            deeper = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, n_layers=depth))
            model, ckpt = run(deeper, Path(tmp) / f"d{depth}.pt", release=True)
            results.append(
                {"n_layers": depth, "parameters": num_parameters(model), "val_loss": ckpt["val_loss"], "history": ckpt["history"]}
            )
    out = out_dir / "depth_sweep.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"steps": recipe.train.steps, "results": results}, indent=1))
    return out


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
    return out


# Precomputed experiments the book reads (results only, no weights): name -> builder(steps, out_dir, progress).
SWEEPS: dict[str, Callable[[int | None, Path, bool], Path]] = {
    "depth_sweep": build_depth_sweep,
    "sentiment_sweep": build_sentiment_sweep,
}
NAMES = [*RECIPES, *SWEEPS]


def _adjusted(recipe: Recipe, steps: int | None, progress: bool) -> Recipe:
    recipe = recipe if steps is None else recipe.shortened(steps)
    return dataclasses.replace(recipe, train=dataclasses.replace(recipe.train, progress=progress))


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
