"""The command lines: ``python -m lmkit.train``, ``python -m lmkit.pretrained``,
``python -m lmkit.finetune`` and ``python -m lmkit.instructions``.

Taught in chapters 4 (pretraining a GPT from the command line) and 5 (finetuning
it). The first three turn their flags into a recipe (``lmkit.recipes.Recipe``,
``lmkit.finetune.FinetuneRecipe``) and run it; the last regenerates the
instruction data set of chapter 5. This is lmkit's only argument parsing besides
``lmkit.bundle`` and the grader's ``lmkit.grader.parallel``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch.distributed as dist

from lmkit import finetune
from lmkit.instructions import DATA_DIR, FAMILIES, write_dataset
from lmkit.pretrained import CHECKPOINT_DIR, NAMES, build
from lmkit.recipes import BABY_GPT, Recipe, run
from lmkit.train import TrainConfig, bits, init_distributed, num_parameters, world
from lmkit.transformer import GPTConfig

WARMUP_FRACTION = BABY_GPT.train.warmup / BABY_GPT.train.steps  # nanoGPT's 100 of 2000 steps, kept for shorter runs


def train_parser() -> argparse.ArgumentParser:
    m, t = BABY_GPT.model, BABY_GPT.train
    p = argparse.ArgumentParser(
        prog="python -m lmkit.train",
        description="Pretrain a character-level GPT on the bundled corpus (default: nanoGPT's CPU baby-GPT recipe).",
    )
    p.add_argument("--out", type=Path, required=True, help="checkpoint file to write (and to resume from)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out (give the same flags again)")
    p.add_argument(
        "--stop-at", type=int, default=None, help="stop after this step (the schedule still spans --steps); continue with --resume"
    )
    p.add_argument("--preset", choices=["gpt2", "modern"], default="gpt2", help="LayerNorm/GELU/learned positions, or RMSNorm/SwiGLU/RoPE")
    p.add_argument("--n-layers", type=int, default=m.n_layers, help="number of transformer blocks")
    p.add_argument("--n-heads", type=int, default=m.n_heads, help="attention heads per block")
    p.add_argument("--d-model", type=int, default=m.d_model, help="width of the residual stream")
    p.add_argument("--mlp-hidden", type=int, default=None, help="hidden width of the MLP (default: the preset's, from --d-model)")
    p.add_argument("--context", type=int, default=m.context, help="block size: tokens per training sequence")
    p.add_argument("--dropout", type=float, default=m.dropout, help="dropout probability")
    p.add_argument(
        "--bias",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="biases in linear layers and LayerNorms (default: the preset's, gpt2 yes, modern no; nanoGPT's recipe has none)",
    )
    p.add_argument("--batch-size", type=int, default=BABY_GPT.batch_size, help="sequences per training step")
    p.add_argument("--steps", type=int, default=t.steps, help="training steps (the schedule's length)")
    p.add_argument("--lr", type=float, default=t.lr, help="peak learning rate")
    p.add_argument("--min-lr", type=float, default=t.min_lr, help="learning rate at the end of the cosine decay")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help=f"linear warm-up steps (default: {100 * WARMUP_FRACTION:g}%% of --steps, "
        f"{int(WARMUP_FRACTION * t.steps)} for the recipe's {t.steps})",
    )
    p.add_argument("--weight-decay", type=float, default=t.weight_decay, help="AdamW weight decay of the matrices")
    p.add_argument("--beta2", type=float, default=t.betas[1], help="AdamW's second-moment decay (beta1 is 0.9)")
    p.add_argument("--grad-clip", type=float, default=t.grad_clip, help="clip the gradient norm to this")
    p.add_argument("--eval-every", type=int, default=t.eval_every, help="evaluate on sampled validation batches every this many steps")
    p.add_argument("--eval-batches", type=int, default=t.eval_batches, help="validation batches per evaluation")
    p.add_argument(
        "--checkpoint-every", type=int, default=BABY_GPT.checkpoint_every, help="save a resumable checkpoint every this many steps"
    )
    p.add_argument("--seed", type=int, default=BABY_GPT.seed, help="seed of the initial weights and of the batches")
    p.add_argument("--sample-prompt", default=BABY_GPT.sample_prompt, help="text that samples recorded at each evaluation start with")
    p.add_argument("--no-samples", action="store_true", help="do not record text samples at each evaluation (default: record them)")
    p.add_argument(
        "--no-final-eval", action="store_true", help="skip the held-out loss over every validation window at the end (default: compute it)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def train_recipe(args: argparse.Namespace) -> Recipe:
    """The recipe that the flags of ``python -m lmkit.train`` describe."""
    preset = GPTConfig.gpt2 if args.preset == "gpt2" else GPTConfig.modern
    bias = {} if args.bias is None else {"bias": args.bias}
    model = preset(
        context=args.context,
        d_model=args.d_model,
        n_layers=args.n_layers,
        n_heads=args.n_heads,
        mlp_hidden=args.mlp_hidden,
        dropout=args.dropout,
        **bias,
    )
    warmup = int(WARMUP_FRACTION * args.steps) if args.warmup is None else args.warmup
    train = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup=warmup,
        weight_decay=args.weight_decay,
        betas=(0.9, args.beta2),
        grad_clip=args.grad_clip,
        eval_every=args.eval_every,
        eval_batches=args.eval_batches,
        progress=not args.quiet,
    )
    return Recipe(
        model=model,
        train=train,
        batch_size=args.batch_size,
        block_size=args.context,
        seed=args.seed,
        record_samples=not args.no_samples,
        sample_prompt=args.sample_prompt,
        final_eval=not args.no_final_eval,
        checkpoint_every=args.checkpoint_every,
    )


def train_main(argv: Sequence[str] | None = None) -> Path:
    """``python -m lmkit.train``: run the recipe the flags describe; print its size, speed and loss.

    Under ``torchrun --nproc_per_node=N`` the N processes train one run data-parallel
    (``lmkit.train.train``), each on its share of every batch of ``--batch-size``
    sequences; rank 0 writes the checkpoint and prints."""
    parser = train_parser()
    args = parser.parse_args(argv)
    try:
        recipe = train_recipe(args)
        started = init_distributed()
    except ValueError as err:
        parser.error(str(err))
    try:
        return _train_run(parser, args, recipe)
    finally:
        if started:
            dist.destroy_process_group()


def _train_run(parser: argparse.ArgumentParser, args: argparse.Namespace, recipe: Recipe) -> Path:
    rank, world_size = world()
    if recipe.batch_size % world_size:
        parser.error(
            f"--batch-size {recipe.batch_size} does not split evenly over {world_size} processes: make it a multiple of {world_size}"
        )
    try:
        model, ckpt = run(recipe, args.out, resume_run=args.resume, until=args.stop_at)
    except ValueError as err:  # a run made with other flags: say how to stop and continue one
        parser.error(f"{err}\n(to stop a run early and continue it later: the same flags with --stop-at N, then with --resume)")
    if rank != 0:
        return args.out
    h = ckpt["history"]
    tokens = ckpt["step"] * recipe.batch_size * recipe.block_size
    loss = (
        f"held-out loss {ckpt['val_loss']:.4f} nats = {bits(ckpt['val_loss']):.3f} bits per character"
        if "val_loss" in ckpt
        else "no final evaluation"
    )
    processes = f" on {world_size} processes" if world_size > 1 else ""
    print(
        f"{num_parameters(model):,} parameters; {ckpt['step']} steps{processes}: {tokens / h['train_seconds'][-1]:,.0f} tokens/s in training steps "
        f"({h['train_seconds'][-1]:.1f} s), {tokens / h['seconds']:,.0f} tokens/s over the whole run ({h['seconds']:.1f} s with "
        f"evaluation, samples and checkpoints); {loss} -> {args.out}"
    )
    return args.out


def pretrained_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lmkit.pretrained", description="Retrain the course's shipped checkpoints.")
    p.add_argument("--only", choices=NAMES, action="append", help="retrain only this one (repeatable)")
    p.add_argument("--out", type=Path, default=CHECKPOINT_DIR, help="output folder (default: the package's)")
    p.add_argument("--steps", type=int, default=None, help="train this many steps instead of the recipe's (a quick trial)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def pretrained_main(argv: Sequence[str] | None = None) -> list[Path]:
    """``python -m lmkit.pretrained``: retrain the shipped checkpoints (or some, or a short trial)."""
    parser = pretrained_parser()
    args = parser.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        parser.error(f"--steps must be positive, got {args.steps}")
    paths = []
    for name in args.only or NAMES:
        start = time.perf_counter()
        paths.append(build(name, args.steps, args.out, progress=not args.quiet))
        print(f"{name}: wrote {paths[-1]} in {time.perf_counter() - start:.0f} s")
    return paths


def finetune_parser() -> argparse.ArgumentParser:
    default = finetune.FINETUNED["gpt_instruct"]
    t = default.train
    p = argparse.ArgumentParser(
        prog="python -m lmkit.finetune", description="Finetune a shipped character GPT on the bundled instructions, or evaluate one."
    )
    sub = p.add_subparsers(dest="command", required=True, help="train a model, or evaluate one")
    tr = sub.add_parser("train", help="finetune and save a checkpoint (default: the recipe of the shipped gpt_instruct)")
    tr.add_argument("--out", type=Path, required=True, help="checkpoint file to write")
    tr.add_argument("--kind", choices=["instruct", "classify"], default="instruct", help="instructions, or a sentiment classification head")
    tr.add_argument("--base", default=default.base, help="shipped pretrained character GPT to start from")
    tr.add_argument("--scratch", action="store_true", help="start from random weights of the base's architecture instead")
    tr.add_argument("--families", nargs="+", choices=FAMILIES, default=None, help="instruction families to train on (default: all)")
    tr.add_argument("--examples", type=int, default=None, help="train on this many instructions, chosen at random (default: all)")
    tr.add_argument("--no-mask", action="store_true", help="put the loss on the prompt too, not only on the answer")
    tr.add_argument("--pretrain-mix", type=float, default=0.0, help="share of each batch that is plain corpus text")
    tr.add_argument("--lora-rank", type=int, default=None, help="train rank-r LoRA adapters only (merged into the weights at the end)")
    tr.add_argument("--lora-alpha", type=float, default=default.lora_alpha, help="LoRA scale numerator: the update is (alpha/rank) B A")
    tr.add_argument("--batch-size", type=int, default=default.batch_size, help="sequences per training step")
    tr.add_argument("--steps", type=int, default=t.steps, help="training steps")
    tr.add_argument("--lr", type=float, default=t.lr, help="peak learning rate")
    tr.add_argument("--min-lr", type=float, default=t.min_lr, help="learning rate at the end of the cosine decay")
    tr.add_argument("--warmup", type=int, default=t.warmup, help="linear warm-up steps")
    tr.add_argument("--eval-every", type=int, default=t.eval_every, help="held-out loss every this many steps")
    tr.add_argument("--seed", type=int, default=default.seed, help="seed of the batches (and of the weights with --scratch)")
    tr.add_argument("--no-final-eval", action="store_true", help="skip answering the held-out instructions at the end")
    tr.add_argument("--quiet", action="store_true", help="no progress bar")
    ev = sub.add_parser("evaluate", help="held-out accuracy of a finetuned checkpoint, per task family and overall")
    ev.add_argument("--checkpoint", required=True, help="a shipped finetuned model's name (e.g. gpt_instruct) or a .pt path")
    ev.add_argument("--json", action="store_true", help="print the results as JSON")
    ev.add_argument(
        "--per-family", type=int, default=None, help="answer only the first N held-out instructions of each family (a quick look)"
    )
    return p


def finetune_recipe(args: argparse.Namespace) -> finetune.FinetuneRecipe:
    """The recipe that the flags of ``python -m lmkit.finetune train`` describe."""
    default = finetune.FINETUNED["gpt_instruct"].train
    train = dataclasses.replace(
        default,
        steps=args.steps,
        lr=args.lr,
        min_lr=args.min_lr,
        warmup=args.warmup,
        eval_every=min(args.eval_every, args.steps),
        progress=not args.quiet,
    )
    return finetune.FinetuneRecipe(
        train=train,
        kind=args.kind,
        base=args.base,
        pretrained=not args.scratch,
        families=None if args.families is None else tuple(args.families),
        n_examples=args.examples,
        mask_prompt=not args.no_mask,
        pretrain_mix=args.pretrain_mix,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        batch_size=args.batch_size,
        seed=args.seed,
        final_eval=not args.no_final_eval,
    )


def finetune_main(argv: Sequence[str] | None = None) -> dict:
    """``python -m lmkit.finetune train|evaluate``; returns the checkpoint's results."""
    parser = finetune_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            model, ckpt = finetune.run(finetune_recipe(args), args.out)
            print(
                f"{ckpt['trainable_parameters']:,} of {ckpt['parameters']:,} parameters trained, {ckpt['step']} steps in "
                f"{ckpt['history']['seconds']:.1f} s -> {args.out}"
            )
        else:
            model, ckpt = finetune.load_finetuned(args.checkpoint)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    results = ckpt.get("heldout") if args.command == "train" else _heldout_results(model, ckpt, args.per_family)
    if results is None:
        return {}
    summary = {k: v for k, v in results.items() if k not in ("answers", "right", "positions")}
    print(json.dumps(summary, indent=1) if getattr(args, "json", False) else _results_text(summary))
    return summary


def _heldout_results(model, ckpt: dict, per_family: int | None) -> dict:
    tokenizer = finetune.CharTokenizer(ckpt["tokenizer"])
    if ckpt["kind"] == "classify":
        return finetune.evaluate_classifier(model, tokenizer)
    return finetune.evaluate(model, tokenizer, finetune.heldout_instructions(per_family=per_family))


def _results_text(summary: dict) -> str:
    if "families" not in summary:
        return f"held-out sentiment accuracy {summary['accuracy']:.3f} on {summary['n']} sentences"
    rows = [f"{f:<10} accuracy {r['correct']:.3f}  stopped {r['stopped']:.3f}  (n={r['n']})" for f, r in summary["families"].items()]
    o = summary["overall"]
    return "\n".join([*rows, f"{'overall':<10} accuracy {o['correct']:.3f}  stopped {o['stopped']:.3f}  (n={o['n']})"])


def instructions_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m lmkit.instructions", description="Regenerate the instruction data set of chapter 5.")
    p.add_argument("--out", type=Path, default=DATA_DIR, help="output folder for train.jsonl and heldout.jsonl (default: the package's)")
    return p


def instructions_main(argv: Sequence[str] | None = None) -> list[Path]:
    """``python -m lmkit.instructions``: write the bundled instruction files (``lmkit.instructions.build_dataset(0)``)."""
    args = instructions_parser().parse_args(argv)
    paths = write_dataset(args.out)
    print("wrote " + " and ".join(str(p) for p in paths))
    return paths
