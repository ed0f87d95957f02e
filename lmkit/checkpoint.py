"""Checkpoints: one file format for every model, run and shipped file in lmkit.

Taught in chapter 4 (pretraining a GPT: checkpoints and exact resume); the shipped
models of chapters 2-4 are stored this way too.

A checkpoint is a dict saved by ``torch.save`` and read back with
``weights_only=True`` (plain data only: tensors, numbers, strings, lists, dicts):

- ``version``: ``VERSION``, the schema below;
- ``model``: the model's ``state_dict``;
- ``optimizer``: the optimizer's ``state_dict``, only in a resumable checkpoint;
- ``rng``: ``{"torch": torch's global RNG state, "generators": [states]}``, only in a
  resumable checkpoint: the random generators a run draws its batches from;
- ``torch_version``: the torch that wrote it;
- and whatever the writer passes as keyword arguments. The training loop writes
  ``step``, ``history`` and ``train_config``; the recipes add ``model_config``,
  ``tokenizer`` (a character list), ``samples``, ``val_loss``, ``block_size``, ...

A checkpoint without the resume state (no ``optimizer``, no ``rng``) is the small
"release" form that ``lmkit/checkpoints/`` ships.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import IO

import torch
from torch import nn

VERSION = 1
CHECKPOINT_DIR = Path(str(resources.files("lmkit").joinpath("checkpoints")))  # the shipped files (lmkit.pretrained)
RESERVED = ("version", "model", "optimizer", "rng", "torch_version")

PathOrFile = str | os.PathLike | IO[bytes]


def save_checkpoint(
    path_or_file: PathOrFile,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    generators: Sequence[torch.Generator] | None = None,
    **state,
) -> None:
    """Save ``model``'s weights, ``optimizer``'s state (if given), the random states
    (torch's global one and each of ``generators``, if ``generators`` is given, even
    empty) and ``state`` (plain data: step, history, configs, ...).

    A path is written atomically (a temporary file, then a rename): an interrupted
    save leaves the previous checkpoint in place, never half a file.
    """
    clash = sorted(set(state) & set(RESERVED))
    if clash:
        raise ValueError(f"{clash} are names the checkpoint format uses itself; pass them another way")
    record = {"version": VERSION, "model": model.state_dict(), "torch_version": str(torch.__version__), **state}
    if optimizer is not None:
        record["optimizer"] = optimizer.state_dict()
    if generators is not None:
        record["rng"] = {"torch": torch.get_rng_state(), "generators": [g.get_state() for g in generators]}
    if not isinstance(path_or_file, (str, os.PathLike)):
        torch.save(record, path_or_file)
        return
    path = Path(path_or_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(record, tmp)
    tmp.replace(path)


def load_checkpoint(
    path_or_file: PathOrFile,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    generators: Sequence[torch.Generator] | None = None,
) -> dict:
    """Read a checkpoint and return what it stores (see the module docstring).

    Restores strictly what it is given: ``model``'s weights (every key must match),
    ``optimizer``'s state, and with ``generators`` torch's global RNG and each
    generator's state (the numbers must match). What the checkpoint lacks for them
    is an error that names it. A checkpoint of the format before ``version`` 1 is
    read too, and returned in the current schema.
    """
    if isinstance(path_or_file, (str, os.PathLike)) and not Path(path_or_file).exists():
        raise FileNotFoundError(f"no checkpoint at {path_or_file}")
    ckpt = upgrade(torch.load(path_or_file, map_location="cpu", weights_only=True))
    if model is not None:
        model.load_state_dict(ckpt["model"])
    if optimizer is not None:
        if "optimizer" not in ckpt:
            raise ValueError("the checkpoint has no 'optimizer' state (a release checkpoint?): it cannot resume training")
        optimizer.load_state_dict(ckpt["optimizer"])
    if generators is not None:
        if "rng" not in ckpt:
            raise ValueError("the checkpoint has no 'rng' states (a release checkpoint?): it cannot resume training")
        saved = ckpt["rng"]["generators"]
        if len(saved) != len(generators):
            raise ValueError(f"the checkpoint stores {len(saved)} generator state(s), but {len(generators)} generator(s) were given")
        for g, g_state in zip(generators, saved):
            g.set_state(g_state)
        torch.set_rng_state(ckpt["rng"]["torch"])
    return ckpt


def upgrade(raw: dict) -> dict:
    """A checkpoint dict in the current schema: as is if it has a ``version``;
    otherwise it is the format lmkit wrote before (weights as ``state_dict``,
    ``tokenizer_chars``, ``generator_states`` and ``torch_rng``), renamed."""
    if "version" in raw:
        if raw["version"] != VERSION:
            raise ValueError(f"checkpoint format version {raw['version']} is not known to this lmkit (it reads {VERSION})")
        return raw
    if "state_dict" not in raw:
        raise ValueError("not an lmkit checkpoint: it has neither a 'version' nor a 'state_dict'")
    ckpt = {"version": VERSION, "model": raw["state_dict"]}
    ckpt.update((k, v) for k, v in raw.items() if k not in ("state_dict", "tokenizer_chars", "generator_states", "torch_rng"))
    if "tokenizer_chars" in raw:
        ckpt["tokenizer"] = raw["tokenizer_chars"]
    if "torch_rng" in raw:
        ckpt["rng"] = {"torch": raw["torch_rng"], "generators": list(raw.get("generator_states", []))}
    return ckpt


def write_results(out_dir: str | os.PathLike, name: str, payload: dict) -> Path:
    """Write a precomputed experiment's ``payload`` (results only, no weights) as
    ``out_dir/name.json``, with the torch, thread count and machine that made it."""
    out = Path(out_dir) / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    made_on = {"torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine()}
    out.write_text(json.dumps({**payload, "made_on": made_on}, indent=1))
    return out
