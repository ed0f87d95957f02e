"""Chapter 5's experiments: finetuning runs over settings and seeds, results only.

Each builder trains the runs of one question with ``lmkit.finetune.run`` and writes
``lmkit/checkpoints/<name>.json``; ``python -m lmkit.pretrained --only <name>`` is the
command that recomputes it (``--steps N``: a quick trial). Every run is cut to
``SWEEP_STEPS`` steps of the shipped recipe's schedule, so that the sweeps fit a
two-core machine; the shipped ``gpt_instruct`` trains longer.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from lmkit.checkpoint import CHECKPOINT_DIR, write_results
from lmkit.finetune import FINETUNED, FinetuneRecipe, add_end_token, base_model, evaluate, heldout_instructions, run
from lmkit.instructions import FAMILIES

SWEEP_STEPS = 300
SEEDS = [0, 1]
INSTRUCT = FINETUNED["gpt_instruct"]
# Each variant changes the shipped instruction recipe in one way.
VARIANTS: dict[str, dict] = {
    "full, prompt masked": {},
    "full, loss on every token": {"mask_prompt": False},
    "full, 25% pretraining text": {"pretrain_mix": 0.25},
    "LoRA rank 4": {"lora_rank": 4},
    "LoRA rank 16": {"lora_rank": 16},
}
DATA_SIZES = [20, 200, 1000, None]  # training instructions (None: all of them)
# One small model per task family, trained from scratch: half the base's width, two blocks.
SPECIALIST_WIDTH = {"d_model": 64, "n_layers": 2, "n_heads": 4}
SENTIMENT_SEEDS = [0, 1, 2]
# A quick trial (``steps`` given) answers this many held-out instructions per family and reads this
# many characters of held-out text: it checks the bookkeeping, not the numbers.
TRIAL_EVAL, TRIAL_TEXT = 1, 2048


def _instruct(steps: int | None, progress: bool) -> FinetuneRecipe:
    """The shipped instruction recipe cut to ``SWEEP_STEPS`` (or to ``steps``, a quick trial)."""
    if steps is None:
        return dataclasses.replace(INSTRUCT, train=dataclasses.replace(INSTRUCT.train.shortened(SWEEP_STEPS), progress=progress))
    config = dataclasses.replace(INSTRUCT.train.shortened(steps), eval_batches=1, progress=progress)
    return dataclasses.replace(INSTRUCT, train=config, eval_per_family=TRIAL_EVAL, eval_text_chars=TRIAL_TEXT)


def _result(recipe: FinetuneRecipe, **labels) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        _, ckpt = run(recipe, Path(tmp) / "run.pt")
    heldout = ckpt["heldout"]
    out = {
        **labels,
        "seed": recipe.seed,
        "trainable_parameters": ckpt["trainable_parameters"],
        "parameters": ckpt["parameters"],
        "seconds": ckpt["history"]["seconds"],
        "train_seconds": ckpt["history"]["train_seconds"][-1],
        "train_loss": ckpt["history"]["train_loss"],
    }
    if recipe.kind == "instruct":
        out |= {"families": heldout["families"], "overall": heldout["overall"], "pretrain_val_bits": ckpt["pretrain_val_bits"]}
    else:
        out |= {"accuracy": heldout["accuracy"], "right": heldout["right"], "positions": heldout["positions"]}
    return out


def build_finetune_before(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """The pretrained base (with an untrained ``<end>`` token) answering every held-out
    instruction (``steps``: only that many per family, a quick trial)."""
    base, tokenizer = base_model(INSTRUCT.base)
    heldout = evaluate(add_end_token(base).eval(), tokenizer, heldout_instructions(per_family=steps))
    return write_results(out_dir, "finetune_before", {"base": INSTRUCT.base, **heldout})


def build_finetune_variants(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Each of ``VARIANTS`` of the instruction recipe, for each seed in ``SEEDS``."""
    recipe = _instruct(steps, progress)
    results = [
        _result(dataclasses.replace(recipe, seed=seed, **changes), variant=name, **changes)
        for name, changes in VARIANTS.items()
        for seed in SEEDS
    ]
    return write_results(out_dir, "finetune_variants", {"steps": recipe.train.steps, "results": results})


def build_finetune_data(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """Held-out accuracy against the number of training instructions (``DATA_SIZES``), from
    the pretrained base and from random weights of the same architecture, same budget."""
    recipe = _instruct(steps, progress)
    results = [
        _result(
            dataclasses.replace(recipe, seed=seed, n_examples=n, pretrained=pretrained),
            n_examples=n,
            init="pretrained" if pretrained else "random",
        )
        for pretrained in (True, False)
        for n in DATA_SIZES
        for seed in SEEDS
    ]
    return write_results(out_dir, "finetune_data", {"steps": recipe.train.steps, "results": results})


def build_finetune_specialists(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """One small model per task family, trained from scratch on that family only, for each
    seed in ``SEEDS`` (the generalist to compare with: ``finetune_variants``' first variant)."""
    recipe = _instruct(steps, progress)
    base, _ = base_model(INSTRUCT.base)
    small = dataclasses.replace(base.config, **SPECIALIST_WIDTH, mlp_hidden=4 * SPECIALIST_WIDTH["d_model"])
    results = [
        _result(
            dataclasses.replace(recipe, seed=seed, families=(family,), pretrained=False, model=small),
            family=family,
        )
        for family in FAMILIES
        for seed in SEEDS
    ]
    return write_results(
        out_dir, "finetune_specialists", {"steps": recipe.train.steps, "model": dataclasses.asdict(small), "results": results}
    )


def build_sentiment_head(steps: int | None = None, out_dir: Path = CHECKPOINT_DIR, progress: bool = True) -> Path:
    """The shipped classification recipe (``gpt_sentiment``) for each seed in ``SENTIMENT_SEEDS``."""
    recipe = FINETUNED["gpt_sentiment"]
    config = recipe.train if steps is None else dataclasses.replace(recipe.train.shortened(steps), eval_batches=1)
    config = dataclasses.replace(config, progress=progress)
    results = [_result(dataclasses.replace(recipe, train=config, seed=seed)) for seed in SENTIMENT_SEEDS]
    return write_results(out_dir, "sentiment_head", {"steps": config.steps, "results": results})


SWEEPS = {
    "finetune_before": build_finetune_before,
    "finetune_variants": build_finetune_variants,
    "finetune_data": build_finetune_data,
    "finetune_specialists": build_finetune_specialists,
    "sentiment_head": build_sentiment_head,
}
