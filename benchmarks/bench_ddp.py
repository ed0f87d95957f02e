"""Time the course GPT's training with one process and with two data-parallel processes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ddp.py                # 300 steps, 3 repeats of each
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ddp.py --steps 100 --repeats 1

Each run is ``python -m lmkit.train`` with the course recipe (nanoGPT's CPU baby GPT,
``lmkit.recipes.BABY_GPT``, global batch of ``--batch-size`` sequences) for ``--steps``
steps, without samples or the final evaluation, one validation at the end: once as a
plain process, once under ``torchrun --standalone --nproc_per_node=2`` (gloo, each
process on its half of every batch). The two alternate, so that a drift of the host's
speed touches both. Speeds come from the checkpoint's history: steps per second in
training steps (forward, backward, gradient averaging, update) and over the whole run
(validation and checkpoints included); the median of ``--repeats`` runs, with the
range. The last line compares the two loss curves, which should agree (the same global
batches), up to float32 rounding that grows over the steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from lmkit.checkpoint import load_checkpoint
from lmkit.recipes import BABY_GPT

LAUNCH = {
    1: [sys.executable, "-m", "lmkit.train"],
    2: [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "lmkit.train"],
}


def one_run(processes: int, steps: int, batch_size: int, threads: int, out: Path) -> dict:
    """Train once with ``processes`` processes; returns the checkpoint's history."""
    flags = ["--steps", str(steps), "--batch-size", str(batch_size), "--eval-every", str(steps), "--checkpoint-every", str(steps)]
    flags += ["--no-samples", "--no-final-eval", "--quiet", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run([*LAUNCH[processes], *flags], env=env, check=True, stdout=subprocess.DEVNULL)
    return load_checkpoint(out)["history"]


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} ({min(values):.2f}-{max(values):.2f})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300, help="training steps per run")
    p.add_argument("--repeats", type=int, default=3, help="runs of each kind to take the median of")
    p.add_argument("--batch-size", type=int, default=BABY_GPT.batch_size, help="global batch: sequences per step over all processes")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (OMP_NUM_THREADS)")
    args = p.parse_args()
    if args.steps < 1 or args.repeats < 1 or args.batch_size % 2:
        p.error("need --steps >= 1, --repeats >= 1 and an even --batch-size")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU(s), {args.threads} thread(s) per process")
    print(f"baby GPT, {args.steps} steps of {args.batch_size} x {BABY_GPT.block_size} characters, {args.repeats} repeat(s)")
    histories: dict[int, list[dict]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for n in (1, 2) if repeat % 2 == 0 else (2, 1):
                histories[n].append(one_run(n, args.steps, args.batch_size, args.threads, Path(tmp) / f"{n}.pt"))
    print("processes  steps/s in training steps  steps/s over the run  final train loss")
    medians = {}
    for n, hs in histories.items():
        step_speed = [args.steps / h["train_seconds"][-1] for h in hs]
        run_speed = [args.steps / h["seconds"] for h in hs]
        medians[n] = statistics.median(step_speed)
        print(f"{n:9d}  {spread(step_speed):>25}  {spread(run_speed):>20}  {hs[0]['train_loss'][-1]:16.4f}")
    gap = max(abs(a - b) for a, b in zip(histories[1][0]["train_loss"], histories[2][0]["train_loss"]))
    print(f"speed-up of 2 processes in training steps: {medians[2] / medians[1]:.2f}x")
    print(f"largest difference between the two loss curves: {gap:.2e} nats")


if __name__ == "__main__":
    main()
