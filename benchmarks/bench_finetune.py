"""Time chapter 5's two budgets: the shipped instruction finetuning run, and answering
100 held-out instructions with and without the KV cache.

    .venv/bin/python benchmarks/bench_finetune.py              # both
    .venv/bin/python benchmarks/bench_finetune.py --no-train   # answering only (seconds)

The run is ``lmkit.finetune.FINETUNED["gpt_instruct"]`` (1000 steps from the shipped
``char_gpt_rope``), timed as its history records it: the training steps alone, and the
whole run with its periodic held-out losses; the final evaluation is left out. Answering
is ``lmkit.finetune.answer`` on the first 20 held-out instructions of each of the five
families, greedy, with the shipped ``gpt_instruct``: the median of ``--repeats`` rounds
after one warm-up, with the cache and without it (every step re-reads the sequence).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch

from lmkit import finetune
from lmkit.finetune import FINETUNED, answer, base_model, heldout_instructions, load_finetuned


def time_answers(model, tokenizer, examples, use_cache: bool, repeats: int) -> tuple[float, list[str]]:
    """Median seconds to answer every example (after one warm-up round), and the answers."""
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        answers = [answer(model, tokenizer, e.instruction, e.input, use_cache=use_cache) for e in examples]
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:]), answers


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--no-train", action="store_true", help="skip the finetuning run; time answering only")
    p.add_argument("--repeats", type=int, default=3, help="rounds of answering to take the median of")
    p.add_argument("--threads", type=int, default=1, help="torch threads (one is fastest for these small models)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    if not args.no_train:
        recipe = FINETUNED["gpt_instruct"]
        recipe = dataclasses.replace(recipe, final_eval=False, train=dataclasses.replace(recipe.train, progress=False))
        with tempfile.TemporaryDirectory() as tmp:
            _, ckpt = finetune.run(recipe, Path(tmp) / "run.pt")
        h = ckpt["history"]
        print(
            f"gpt_instruct finetuning, {ckpt['step']} steps: {h['train_seconds'][-1]:.1f} s in training steps, "
            f"{h['seconds']:.1f} s with the periodic held-out losses"
        )
    model, ckpt = load_finetuned("gpt_instruct", "instruct")
    _, tokenizer = base_model(ckpt["recipe"]["base"])
    examples = heldout_instructions(per_family=20)
    cached, a = time_answers(model, tokenizer, examples, True, args.repeats)
    uncached, b = time_answers(model, tokenizer, examples, False, args.repeats)
    assert a == b, "the cache changed the answers"
    print(f"answering {len(examples)} held-out instructions: {cached:.2f} s with the KV cache, {uncached:.2f} s without (same answers)")


if __name__ == "__main__":
    main()
