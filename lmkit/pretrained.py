"""Small checkpoints that ship with the course, and the recipes that make them.

The book loads these instead of training for minutes at build time. Every
checkpoint is reproducible: ``python -m lmkit.pretrained`` retrains them all
(about five minutes on two CPU cores) into ``lmkit/checkpoints/``; ``--only NAME``
retrains one. Each file stores the model's config and weights, the training
history and the recipe used.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from importlib import resources
from pathlib import Path

import torch

from lmkit.data import char_data, get_batch
from lmkit.rnn import EncoderDecoder, RecurrentLM
from lmkit.tasks import COPY_LM_VOCAB, COPY_VOCAB, START, copy_batch, copy_lm_batch
from lmkit.transformer import GPT, GPTConfig
from lmkit.train import TrainConfig, evaluate_lm, train

CHECKPOINT_DIR = Path(str(resources.files("lmkit").joinpath("checkpoints")))

# Character language models: the same recipe for the RNN and the LSTM.
CHAR_LM = {"embed_dim": 64, "hidden_size": 256, "block_size": 128, "batch_size": 32}
CHAR_LM_TRAIN = TrainConfig(steps=1200, lr=3e-3, min_lr=3e-4, warmup=50, eval_every=200, eval_batches=10, progress=True)
# Copy task: encoder-decoder with a 64-unit state, source lengths 1..COPY_MAX_LEN.
COPY = {"embed_dim": 32, "hidden_size": 64}
COPY_MAX_LEN = 24
COPY_TRAIN = TrainConfig(steps=3000, lr=3e-3, min_lr=3e-4, warmup=100, eval_every=500, eval_batches=10, progress=True)


# Character GPTs of chapter 3: learned positions vs rotary positions, otherwise identical.
CHAR_GPT = {"block_size": 128, "batch_size": 16}
CHAR_GPT_MODEL = {"context": 128, "d_model": 128, "n_layers": 4, "n_heads": 4}
CHAR_GPT_TRAIN = TrainConfig(steps=1500, lr=1e-3, min_lr=1e-4, warmup=100, eval_every=250, eval_batches=10, progress=True)
# Copy task for a decoder-only transformer (rotary positions; sources padded to COPY_MAX_LEN).
COPY_GPT_MODEL = {"context": 2 * COPY_MAX_LEN + 1, "d_model": 64, "n_layers": 2, "n_heads": 4, "positions": "rope"}
COPY_GPT_TRAIN = TrainConfig(steps=2000, lr=1e-3, min_lr=1e-4, warmup=100, eval_every=500, eval_batches=10, progress=True)


def recipe(base: TrainConfig, steps: int | None) -> TrainConfig:
    """``base``, or a shortened copy of it for a quick trial run of ``steps`` steps."""
    if steps is None:
        return base
    return dataclasses.replace(base, steps=steps, warmup=min(base.warmup, steps - 1), eval_every=steps)


def build_char_lm(cell: str, steps: int | None = None, out_dir: Path = CHECKPOINT_DIR) -> Path:
    config = recipe(CHAR_LM_TRAIN, steps)
    torch.manual_seed(0)
    tokenizer, train_data, val_data = char_data()
    model = RecurrentLM(tokenizer.vocab_size, CHAR_LM["embed_dim"], CHAR_LM["hidden_size"], cell)  # type: ignore[arg-type]
    generator = torch.Generator().manual_seed(0)

    def batch(split: str) -> tuple:
        return get_batch(train_data if split == "train" else val_data, CHAR_LM["block_size"], CHAR_LM["batch_size"], generator)

    history = train(model, batch, config)
    val_loss = evaluate_lm(model, val_data, CHAR_LM["block_size"])
    return _save(out_dir / f"char_{cell}.pt", model.config, model, history, config, {"val_loss": val_loss, **CHAR_LM})


def build_copy(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR) -> Path:
    config = recipe(COPY_TRAIN, steps)
    torch.manual_seed(0)
    model = EncoderDecoder(COPY_VOCAB, COPY["embed_dim"], COPY["hidden_size"])
    generator = torch.Generator().manual_seed(0)

    def batch(split: str) -> tuple:
        length = int(torch.randint(1, COPY_MAX_LEN + 1, (1,), generator=generator))
        return copy_batch(64, length, generator)

    history = train(model, batch, config)
    model_config = {"vocab_size": COPY_VOCAB, **COPY}
    return _save(out_dir / "copy_lstm.pt", model_config, model, history, config, {"max_len": COPY_MAX_LEN, "start": START})


def build_char_gpt(positions: str, steps: int | None = None, out_dir: Path = CHECKPOINT_DIR) -> Path:
    config = recipe(CHAR_GPT_TRAIN, steps)
    torch.manual_seed(0)
    tokenizer, train_data, val_data = char_data()
    model_config = GPTConfig.gpt2(vocab_size=tokenizer.vocab_size, positions=positions, **CHAR_GPT_MODEL)
    model = GPT(model_config)
    generator = torch.Generator().manual_seed(0)

    def batch(split: str) -> tuple:
        return get_batch(train_data if split == "train" else val_data, CHAR_GPT["block_size"], CHAR_GPT["batch_size"], generator)

    history = train(model, batch, config)
    val_loss = evaluate_lm(model, val_data, CHAR_GPT["block_size"])
    return _save(out_dir / f"char_gpt_{positions}.pt", dataclasses.asdict(model_config), model, history, config, {"val_loss": val_loss, **CHAR_GPT})


def build_copy_gpt(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR) -> Path:
    config = recipe(COPY_GPT_TRAIN, steps)
    torch.manual_seed(0)
    model_config = GPTConfig.gpt2(vocab_size=COPY_LM_VOCAB, **COPY_GPT_MODEL)
    model = GPT(model_config)
    generator = torch.Generator().manual_seed(0)

    def batch(split: str) -> tuple:
        length = int(torch.randint(1, COPY_MAX_LEN + 1, (1,), generator=generator))
        return copy_lm_batch(64, length, generator, pad_to=COPY_MAX_LEN)

    history = train(model, batch, config)
    return _save(out_dir / "copy_gpt.pt", dataclasses.asdict(model_config), model, history, config, {"max_len": COPY_MAX_LEN, "start": START})


def _save(path: Path, model_config: dict, model: torch.nn.Module, history, config: TrainConfig, extra: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model_config": model_config,
            "state_dict": model.state_dict(),
            "history": dataclasses.asdict(history),
            "train_config": dataclasses.asdict(config),
            "torch_version": str(torch.__version__),
            **extra,
        },
        path,
    )
    return path


def _load(name: str, directory: Path) -> dict:
    path = directory / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: rebuild it with `python -m lmkit.pretrained`")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_char_lm(cell: str, directory: Path = CHECKPOINT_DIR) -> tuple[RecurrentLM, dict]:
    """The shipped character-level RNN (``"rnn"``) or LSTM (``"lstm"``) language model, in eval mode,
    and its checkpoint (history, recipe, held-out loss)."""
    if cell not in ("rnn", "lstm"):
        raise ValueError(f"cell must be 'rnn' or 'lstm', got {cell!r}")
    ckpt = _load(f"char_{cell}.pt", directory)
    model = RecurrentLM(**ckpt["model_config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def load_copy_model(directory: Path = CHECKPOINT_DIR) -> tuple[EncoderDecoder, dict]:
    """The shipped encoder-decoder LSTM trained on the copy task, in eval mode, and its checkpoint."""
    ckpt = _load("copy_lstm.pt", directory)
    cfg = ckpt["model_config"]
    model = EncoderDecoder(cfg["vocab_size"], cfg["embed_dim"], cfg["hidden_size"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


# Chapter 4: the course GPT, trained by the command line with the baby-GPT recipe.
GPT_RECIPE = ["--steps", "2000", "--quiet"]
DEPTHS = [1, 2, 4]
DEPTH_STEPS = 2000  # the course recipe; shorter runs do not separate the depths


def build_course_gpt(preset: str, steps: int | None = None, out_dir: Path = CHECKPOINT_DIR) -> Path:
    from lmkit.train import main as train_main

    name = "gpt_shakespeare" if preset == "gpt2" else "gpt_shakespeare_modern"
    args = ["--out", str(out_dir / f"{name}.pt"), "--preset", preset, *GPT_RECIPE]
    if steps is not None:
        args += ["--steps", str(steps), "--warmup", str(min(100, steps - 1)), "--eval-every", str(steps)]
    return strip_for_release(train_main(args))


def strip_for_release(path: Path) -> Path:
    """Drop what only resuming needs (optimizer moments, random states): a third of the size."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("optimizer", "generator_states", "torch_rng"):
        state.pop(key, None)
    torch.save(state, path)
    return path


def build_depth_sweep(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR) -> Path:
    """Held-out loss of GPTs of several depths, same recipe and budget otherwise (results only, no weights)."""
    import json
    import tempfile

    from lmkit.train import main as train_main

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for depth in DEPTHS:
            n = steps or DEPTH_STEPS
            path = train_main(["--out", f"{tmp}/d{depth}.pt", "--n-layers", str(depth), "--steps", str(n), "--warmup", str(min(50, n - 1)),
                               "--eval-every", str(max(1, n // 4)), "--quiet"])
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            n_params = sum(v.numel() for k, v in ckpt["state_dict"].items() if k != "head.weight")  # tied with tok_emb
            results.append({"n_layers": depth, "parameters": n_params, "val_loss": ckpt["val_loss"], "history": ckpt["history"]})
    out = out_dir / "depth_sweep.json"
    out.write_text(json.dumps({"steps": steps or DEPTH_STEPS, "results": results}, indent=1))
    return out


def load_gpt(name: str, directory: Path = CHECKPOINT_DIR) -> tuple[GPT, dict]:
    """A shipped GPT checkpoint (``"char_gpt_learned"``, ``"char_gpt_rope"``, ``"copy_gpt"``), in eval mode."""
    ckpt = _load(f"{name}.pt", directory)
    model = GPT(GPTConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


# name -> builder(steps or None for the full recipe, output folder)
BUILDERS = {
    "char_rnn": lambda steps, out: build_char_lm("rnn", steps, out),
    "char_lstm": lambda steps, out: build_char_lm("lstm", steps, out),
    "copy_lstm": build_copy,
    "char_gpt_learned": lambda steps, out: build_char_gpt("learned", steps, out),
    "char_gpt_rope": lambda steps, out: build_char_gpt("rope", steps, out),
    "copy_gpt": build_copy_gpt,
    "gpt_shakespeare": lambda steps, out: build_course_gpt("gpt2", steps, out),
    "gpt_shakespeare_modern": lambda steps, out: build_course_gpt("modern", steps, out),
    "depth_sweep": build_depth_sweep,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Retrain the course's shipped checkpoints.")
    parser.add_argument("--only", choices=list(BUILDERS), action="append", help="retrain only these (repeatable)")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="output folder (default: the package's)")
    parser.add_argument("--steps", type=int, default=None, help="override the number of steps (for a quick trial)")
    args = parser.parse_args(argv)
    for name in args.only or list(BUILDERS):
        start = time.perf_counter()
        path = BUILDERS[name](args.steps, args.out)
        print(f"{name}: wrote {path} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
