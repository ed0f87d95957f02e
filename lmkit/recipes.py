"""Recipes: everything that determines a trained model, and the one function that runs them.

Taught in chapter 4 (pretraining); the shipped models of chapters 2 and 3 are made
the same way. A ``Recipe`` names a model configuration (``GPTConfig`` or
``RNNConfig``), a ``TrainConfig``, a task and its batches, and a seed; ``run``
trains it with ``lmkit.train.train`` and writes one checkpoint. Both command lines
(``python -m lmkit.train`` and ``python -m lmkit.pretrained``, see ``lmkit.cli``)
build a ``Recipe`` and call ``run``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from lmkit.data import char_data, get_batch
from lmkit.generate import generate
from lmkit.rnn import EncoderDecoder, RecurrentLM, RNNConfig
from lmkit.tasks import COPY_LM_VOCAB, COPY_VOCAB, START, copy_batch, copy_lm_batch
from lmkit.train import History, TrainConfig, evaluate_lm, make_optimizer, resume, save_run, train
from lmkit.transformer import GPT, GPTConfig

Task = Literal["chars", "copy"]
SAMPLE_TOKENS = 200  # characters per recorded sample
SAMPLE_TEMPERATURE = 0.8


@dataclass
class Recipe:
    """A model, its training and its data: ``run`` turns it into a checkpoint.

    ``task="chars"``: next-character prediction on the corpus (``lmkit.data.char_data``),
    random windows of ``block_size`` characters; a ``RNNConfig`` makes a ``RecurrentLM``.
    ``task="copy"``: copy a digit string of 1..``max_len`` digits (``lmkit.tasks``); a
    ``RNNConfig`` makes an ``EncoderDecoder``, a ``GPTConfig`` a decoder-only GPT.
    The model's ``vocab_size`` is set by the task. ``record_samples`` stores a text
    sample (from ``sample_prompt``) before training and at each evaluation;
    ``final_eval`` stores the held-out loss over every window (``val_loss``) at the end.
    """

    model: GPTConfig | RNNConfig
    train: TrainConfig
    task: Task = "chars"
    batch_size: int = 12
    block_size: int = 64
    max_len: int = 24
    seed: int = 0
    record_samples: bool = False
    sample_prompt: str = "\n"
    final_eval: bool = True
    checkpoint_every: int | None = None

    def __post_init__(self) -> None:
        if self.task not in ("chars", "copy"):
            raise ValueError(f"task must be 'chars' or 'copy', got {self.task!r}")
        for name in ("batch_size", "block_size", "max_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.checkpoint_every is not None and self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be positive or None, got {self.checkpoint_every}")
        if isinstance(self.model, GPTConfig):
            needed = self.block_size if self.task == "chars" else 2 * self.max_len + 1
            if needed > self.model.context and self.model.positions in ("learned", "sinusoidal"):
                raise ValueError(f"the task needs sequences of {needed} tokens but the model's context is {self.model.context}")
        if self.record_samples and self.task != "chars":
            raise ValueError("samples are text: record_samples needs task='chars'")

    def shortened(self, steps: int) -> Recipe:
        """The same recipe for a quick trial of ``steps`` steps (one evaluation, at the end)."""
        return dataclasses.replace(self, train=self.train.shortened(steps))


# nanoGPT's CPU "baby GPT" (its README's CPU command): 4 layers, 4 heads, width 128, context 64,
# batch 12, 2000 steps, lr 1e-3 with 100 warm-up steps and cosine decay to 1e-4, beta2 0.99,
# weight decay 0.1, clipping at 1.0. ``python -m lmkit.train`` runs it by default.
BABY_GPT = Recipe(
    model=GPTConfig.gpt2(context=64, d_model=128, n_layers=4, n_heads=4),
    train=TrainConfig(
        steps=2000, lr=1e-3, min_lr=1e-4, warmup=100, weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, eval_every=250, eval_batches=20
    ),
    batch_size=12,
    block_size=64,
    record_samples=True,
    checkpoint_every=500,
)


def run(
    recipe: Recipe, out: str | Path, *, resume_run: bool = False, release: bool = False, until: int | None = None
) -> tuple[nn.Module, dict]:
    """Train ``recipe`` and save it to ``out``; returns the model and what was saved.

    The run is checkpointed every ``recipe.checkpoint_every`` steps and at the end;
    ``resume_run`` continues the run saved in ``out`` (if there is one) exactly, and
    ``until`` stops after that step. ``release`` saves the small form without the
    optimizer and random states.
    """
    out = Path(out)
    config = recipe.train
    torch.manual_seed(recipe.seed)
    data = _task_data(recipe)
    model = _make_model(recipe, data["vocab_size"])
    generator = torch.Generator().manual_seed(recipe.seed)
    batch = data["batch"](generator)
    extra = {"model_config": dataclasses.asdict(model.config), **_stored_recipe(recipe), **data["stored"]}
    sample = _sampler(recipe, data["tokenizer"], extra) if recipe.record_samples else None
    if resume_run and out.exists():
        optimizer, history, ckpt = resume(out, model, config, [generator])
        missing = [k for k in extra if k != "samples" and k not in ckpt]
        if missing:
            raise ValueError(
                f"{out} does not record the recipe's {', '.join(missing)} (an older lmkit's run?): start it again without --resume"
            )
        changed = [k for k in extra if k != "samples" and ckpt[k] != extra[k]]
        if changed:
            raise ValueError(f"{out} was made with another recipe ({', '.join(changed)} differ); resume with the same one")
        if sample is not None:
            extra["samples"].update(ckpt["samples"])
    else:
        optimizer, history = make_optimizer(model, config), History()
        if sample is not None:
            sample(0, model)

    def on_eval(step: int, m: nn.Module) -> None:
        if sample is not None:
            sample(step, m)
        if step == config.steps and recipe.final_eval and "val_data" in data:  # inside the run's timing, like every evaluation
            extra["val_loss"] = evaluate_lm(m, data["val_data"], recipe.block_size)

    checkpoint = out if recipe.checkpoint_every else None
    history = train(
        model,
        batch,
        config,
        optimizer=optimizer,
        history=history,
        checkpoint=checkpoint,
        checkpoint_every=recipe.checkpoint_every,
        generators=[generator],
        extra=extra,
        on_eval=on_eval,
        until=until,
    )
    return model, save_run(out, model, None if release else optimizer, history, config, None if release else [generator], **extra)


def _stored_recipe(recipe: Recipe) -> dict:
    # The recipe's own fields as top-level checkpoint keys (the book reads ckpt["block_size"]
    # and ckpt["max_len"]); the model and train configs are stored as model_config / train_config.
    fields = {"task": recipe.task, "batch_size": recipe.batch_size, "seed": recipe.seed}
    return fields | ({"block_size": recipe.block_size} if recipe.task == "chars" else {"max_len": recipe.max_len, "start": START})


def _task_data(recipe: Recipe) -> dict:
    """The task's vocabulary size, a batch-function factory (given the run's generator),
    what a checkpoint stores about the data and, for characters, the tokenizer and val stream."""
    if recipe.task == "chars":
        tokenizer, train_data, val_data = char_data()

        def char_batches(g: torch.Generator) -> Callable[[str], tuple]:
            return lambda split: get_batch(train_data if split == "train" else val_data, recipe.block_size, recipe.batch_size, g)

        return {
            "vocab_size": tokenizer.vocab_size,
            "batch": char_batches,
            "tokenizer": tokenizer,
            "val_data": val_data,
            "stored": {"tokenizer": tokenizer.itos},
        }
    decoder_only = isinstance(recipe.model, GPTConfig)

    def copy_batches(g: torch.Generator) -> Callable[[str], tuple]:
        def batch(split: str) -> tuple:
            length = int(torch.randint(1, recipe.max_len + 1, (1,), generator=g))
            if decoder_only:
                return copy_lm_batch(recipe.batch_size, length, g, pad_to=recipe.max_len)
            return copy_batch(recipe.batch_size, length, g)

        return batch

    return {"vocab_size": COPY_LM_VOCAB if decoder_only else COPY_VOCAB, "batch": copy_batches, "tokenizer": None, "stored": {}}


def _make_model(recipe: Recipe, vocab_size: int) -> nn.Module:
    config = dataclasses.replace(recipe.model, vocab_size=vocab_size)
    if isinstance(config, GPTConfig):
        return GPT(config)
    return RecurrentLM(config) if recipe.task == "chars" else EncoderDecoder(config)


def _sampler(recipe: Recipe, tokenizer, extra: dict) -> Callable[[int, nn.Module], None]:
    """A hook that stores a sample of the model's text in ``extra["samples"][step]``."""
    extra["samples"] = {}
    prompt = tokenizer.encode(recipe.sample_prompt)

    def sample(step: int, model: nn.Module) -> None:
        if isinstance(model, GPT):
            ids = generate(model, prompt, SAMPLE_TOKENS, temperature=SAMPLE_TEMPERATURE, seed=0, use_cache=False)
        else:
            g = torch.Generator().manual_seed(0)
            ids = model.generate(torch.tensor([prompt]), SAMPLE_TOKENS, temperature=SAMPLE_TEMPERATURE, generator=g)[0].tolist()
        extra["samples"][step] = tokenizer.decode(ids)

    return sample
