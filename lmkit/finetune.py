"""Finetuning a pretrained GPT: from a text completer to a model that answers.

Taught in chapter 5; exercise 05 writes its own template, labels, batches, loss,
answering and classification head.

Instruction finetuning keeps the pretraining objective, next-token prediction,
on sequences ``prompt + answer + <end>``: the prompt is the ``TEMPLATE`` filled
with an instruction (and an input), ``<end>`` is one token added to the
vocabulary. Only the answer and ``<end>`` are labels; the prompt and padding
are ``IGNORE_INDEX``, so the loss is the mean over answer tokens. Labels are
aligned with the ids and the loss shifts them, as ``lmkit.losses.next_token_loss``
does. Training is ``lmkit.train.train``, the loop of every chapter.

Also here: a classification head on the last real token of a sequence
(``GPTClassifier``), ``FinetuneRecipe`` and ``run`` (the recipe of a finetuned
model, and the one function that trains it from a shipped checkpoint), and
``evaluate`` (held-out accuracy per task family). Low-rank adapters are in
``lmkit.lora``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmkit.baselines import sentiment_split
from lmkit.checkpoint import CHECKPOINT_DIR, load_checkpoint
from lmkit.data import char_data, get_batch
from lmkit.generate import generate
from lmkit.instructions import FAMILIES, Instruction, load_instructions, score
from lmkit.lora import add_lora, merge_lora
from lmkit.losses import IGNORE_INDEX, next_token_loss
from lmkit.template import TEMPLATE, Template, format_prompt
from lmkit.tokenizers import CharTokenizer
from lmkit.train import TrainConfig, bits, evaluate_lm, num_parameters, save_run, train
from lmkit.transformer import GPT, GPTConfig

END = "<end>"  # how the end-of-answer token is shown; it is one token, id tokenizer.vocab_size
BASE = "char_gpt_rope"  # chapter 3's character GPT: rotary positions, 128 characters of context
ANSWER_TOKENS = 64  # the longest answer ``evaluate`` waits for, if the context leaves room (the data's longest is shorter)
BUCKETS = 8  # training batches drawn at once and grouped by length
Kind = Literal["instruct", "classify"]


def end_id(tokenizer: CharTokenizer) -> int:
    """The id of ``<end>``: the first id after the tokenizer's own."""
    return tokenizer.vocab_size


def build_example(
    tokenizer: CharTokenizer,
    instruction: str,
    input: str | None,
    answer: str,
    context: int | None = None,
    mask_prompt: bool = True,
    template: Template = TEMPLATE,
) -> tuple[list[int], list[int]]:
    """``ids = prompt + answer + <end>`` and ``labels`` of the same length: ``IGNORE_INDEX``
    at every prompt position, the ids themselves at every answer position and at ``<end>``
    (``mask_prompt=False``: every position is a label). Raises if the sequence is longer
    than ``context``."""
    prompt = tokenizer.encode(format_prompt(instruction, input, template))
    target = tokenizer.encode(answer) + [end_id(tokenizer)]
    ids = prompt + target
    if context is not None and len(ids) > context:
        raise ValueError(f"prompt + answer + end take {len(ids)} tokens, longer than the model's context of {context}")
    labels = [IGNORE_INDEX] * len(prompt) + target if mask_prompt else list(ids)
    return ids, labels


def pad_batch(examples: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad ``(ids, labels)`` pairs to the longest: ids (B, T) with ``pad_id``, labels
    (B, T) with ``IGNORE_INDEX``; also returns the real lengths (B,)."""
    if not examples:
        raise ValueError("no examples to batch")
    if any(len(ids) != len(labels) or not ids for ids, labels in examples):
        raise ValueError("each example needs ids and labels of the same, non-zero length")
    T = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
    for b, (x, y) in enumerate(examples):
        ids[b, : len(x)] = torch.tensor(x)
        labels[b, : len(y)] = torch.tensor(y)
    return ids, labels, torch.tensor([len(x) for x, _ in examples])


def answer_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens: ``logits`` (B, T, V) from the ids whose
    labels (B, T) ``pad_batch`` made (``lmkit.losses.next_token_loss``, with a clear error
    when no position is a label)."""
    if (labels[:, 1:] == IGNORE_INDEX).all():
        raise ValueError("every label is IGNORE_INDEX: the batch has no answer token to learn from")
    return next_token_loss(logits, labels)


def add_end_token(model: GPT) -> GPT:
    """A copy of ``model`` with one more token, ``<end>``: its embedding (and, the head being
    tied, its output row) starts as the mean of the existing rows, a token the model finds
    neither likely nor unlikely in any context, rather than a random direction."""
    config = dataclasses.replace(model.config, vocab_size=model.config.vocab_size + 1)
    if not config.tie_weights:
        raise ValueError("add_end_token expects a GPT whose output layer is tied to its embedding")
    bigger = GPT(config)
    state = model.state_dict()
    old = state["tok_emb.weight"]
    state["tok_emb.weight"] = torch.cat([old, old.mean(0, keepdim=True)])
    state["head.weight"] = state["tok_emb.weight"]
    bigger.load_state_dict(state)
    return bigger.train(model.training)


def answer_room(model: GPT, prompt_len: int, max_new_tokens: int | None = None) -> int:
    """How many tokens an answer may take after a prompt of ``prompt_len`` tokens: what the
    context leaves (None), or ``max_new_tokens`` if that fits. Raises if nothing fits."""
    room = model.config.context - prompt_len
    if room < 1:
        raise ValueError(f"a prompt of {prompt_len} tokens fills the model's context of {model.config.context}: shorten it")
    if max_new_tokens is None:
        return room
    if not 1 <= max_new_tokens <= room:
        raise ValueError(
            f"max_new_tokens={max_new_tokens}: a prompt of {prompt_len} tokens leaves room for 1 to {room} in the "
            f"model's context of {model.config.context}"
        )
    return max_new_tokens


@torch.no_grad()
def answer(
    model: GPT,
    tokenizer: CharTokenizer,
    instruction: str,
    input: str | None = None,
    max_new_tokens: int | None = None,
    temperature: float = 0.0,
    seed: int | None = None,
    template: Template = TEMPLATE,
    use_cache: bool = True,
) -> str:
    """The model's answer: generation from the prompt (greedy at ``temperature=0``, with the
    KV cache unless ``use_cache=False``) until it produces ``<end>`` or ``max_new_tokens``
    tokens (None: as many as the context leaves); only the answer's text, without the
    prompt and the end token."""
    end = end_id(tokenizer)
    if model.config.vocab_size <= end:
        raise ValueError(f"the model has no {END} token (vocabulary {model.config.vocab_size}): finetune it first (add_end_token)")
    prompt = tokenizer.encode(format_prompt(instruction, input, template))
    budget = answer_room(model, len(prompt), max_new_tokens)
    ids = generate(model, prompt, budget, temperature=temperature, seed=seed, use_cache=use_cache, stop_id=end)[len(prompt) :]
    if end in ids:
        ids = ids[: ids.index(end)]
    return tokenizer.decode(ids)


class GPTClassifier(nn.Module):
    """A GPT whose output is one score per class, read from the final state of the last real
    (non-pad) token of each sequence: the only position whose causal attention has seen
    the whole text. ``forward(idx (B, T), lengths (B,), labels (B,) or None)`` returns
    ``(logits (B, n_classes), mean cross-entropy or None)``."""

    def __init__(self, gpt: GPT, n_classes: int) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {n_classes}")
        self.gpt = gpt
        self.config = gpt.config
        self.classify = nn.Linear(gpt.config.d_model, n_classes)

    def forward(
        self, idx: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if lengths.shape != idx.shape[:1] or not ((lengths >= 1) & (lengths <= idx.shape[1])).all():
            raise ValueError(f"lengths must be (B,) = ({idx.shape[0]},) values in [1, {idx.shape[1]}], got {lengths.tolist()}")
        h = self.gpt.hidden(idx)  # (B, T, C)
        last = h[torch.arange(idx.shape[0]), lengths - 1]  # (B, C)
        logits = self.classify(last)
        return logits, None if labels is None else F.cross_entropy(logits, labels)


# ----------------------------------------------------------------------------------------------
# Recipes: a shipped checkpoint, a task and a training config -> a finetuned checkpoint.


@dataclass
class FinetuneRecipe:
    """Everything that determines a finetuned model.

    ``kind="instruct"``: next-token training on the bundled instructions (``lmkit.instructions``)
    of ``families`` (None: all), ``n_examples`` of them (None: all; otherwise a seeded random
    subset), the prompt masked or not; ``pretrain_mix`` is the share of each batch that is
    plain corpus text (every position a label), to keep what pretraining taught.
    ``kind="classify"``: a ``GPTClassifier`` on the sentiment sentences of the course split.
    ``pretrained=False`` starts from random weights of the base's architecture (or of
    ``model``, a smaller one); ``lora_rank`` trains low-rank adapters (merged at the end) and
    what is new: the classifier's head, or the token table with its ``<end>`` row.
    ``final_eval`` answers the held-out instructions of ``families`` (``eval_per_family`` of
    each) or classifies the held-out sentences, and measures the loss on the held-out corpus
    (its first ``eval_text_chars`` characters).
    """

    train: TrainConfig
    kind: Kind = "instruct"
    base: str = BASE
    pretrained: bool = True
    model: GPTConfig | None = None
    families: tuple[str, ...] | None = None
    n_examples: int | None = None
    mask_prompt: bool = True
    pretrain_mix: float = 0.0
    lora_rank: int | None = None
    lora_alpha: float = 16.0
    batch_size: int = 16
    seed: int = 0
    final_eval: bool = True
    eval_per_family: int | None = None  # held-out instructions answered per family at the end (None: all)
    eval_text_chars: int | None = None  # characters of the held-out corpus the final loss reads (None: all)

    def __post_init__(self) -> None:
        if self.kind not in ("instruct", "classify"):
            raise ValueError(f"kind must be 'instruct' or 'classify', got {self.kind!r}")
        if self.model is not None and self.pretrained:
            raise ValueError("a model config of its own needs pretrained=False (the weights come from the base otherwise)")
        unknown = set(self.families or ()) - set(FAMILIES)
        if unknown:
            raise ValueError(f"unknown task families {sorted(unknown)}; choose from {FAMILIES}")
        if self.n_examples is not None and self.n_examples < 1:
            raise ValueError(f"n_examples must be positive or None, got {self.n_examples}")
        if not 0 <= self.pretrain_mix < 1:
            raise ValueError(f"pretrain_mix must be in [0, 1), got {self.pretrain_mix}")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError(f"lora_rank must be positive or None, got {self.lora_rank}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.kind == "classify" and (self.families or self.n_examples or not self.mask_prompt or self.pretrain_mix):
            raise ValueError("families, n_examples, mask_prompt and pretrain_mix are settings of kind='instruct'")


def base_model(name: str) -> tuple[GPT, CharTokenizer]:
    """The shipped character GPT ``name`` and its tokenizer; an error for any other kind of checkpoint."""
    from lmkit.pretrained import load_gpt  # lmkit.pretrained registers this module's recipes

    try:
        model, ckpt = load_gpt(name)
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"{name!r} is not a shipped GPT checkpoint: {err}") from None
    if ckpt.get("task") != "chars" or "kind" in ckpt:
        raise ValueError(f"{name!r} is not a pretrained character language model (task {ckpt.get('task')!r}): finetune one that is")
    return model, CharTokenizer(ckpt["tokenizer"])


def instruction_examples(
    tokenizer: CharTokenizer, examples: Sequence[Instruction], context: int, mask_prompt: bool = True
) -> list[tuple[list[int], list[int]]]:
    """``build_example`` for each instruction."""
    return [build_example(tokenizer, e.instruction, e.input, e.answer, context, mask_prompt) for e in examples]


def training_instructions(families: Sequence[str] | None, n_examples: int | None, seed: int) -> list[Instruction]:
    """The bundled training instructions of ``families``; ``n_examples`` of them chosen at random
    (seeded), as equally from each family as the count allows."""
    chosen = [e for e in load_instructions("train") if families is None or e.family in families]
    if n_examples is None or n_examples >= len(chosen):
        return chosen
    order = torch.randperm(len(chosen), generator=torch.Generator().manual_seed(seed)).tolist()
    by_family: dict[str, list[Instruction]] = {}
    for i in order:
        by_family.setdefault(chosen[i].family, []).append(chosen[i])
    rounds: list[Instruction] = []  # one of each family, then a second of each, ...
    for k in range(max(map(len, by_family.values()))):
        rounds += [by_family[f][k] for f in sorted(by_family) if k < len(by_family[f])]
    return rounds[:n_examples]


def heldout_instructions(families: Sequence[str] | None = None, per_family: int | None = None) -> list[Instruction]:
    """The bundled held-out instructions of ``families`` (None: all), the first ``per_family`` of each."""
    kept: dict[str, int] = {}
    out = []
    for e in load_instructions("heldout"):
        if (families is None or e.family in families) and (per_family is None or kept.get(e.family, 0) < per_family):
            kept[e.family] = kept.get(e.family, 0) + 1
            out.append(e)
    return out


def sentiment_sequences(tokenizer: CharTokenizer, context: int) -> tuple[list, list]:
    """(ids, label, position in the course split) of the course's sentiment sentences the model
    can read (every character in its vocabulary, no longer than ``context``): training, held-out."""

    def readable(examples) -> list:
        out = []
        for i, e in enumerate(examples):
            if len(e.text) <= context and set(e.text) <= set(tokenizer.itos):
                out.append((tokenizer.encode(e.text), e.label, i))
        return out

    train_ex, held_out = sentiment_split()
    return readable(train_ex), readable(held_out)


def _instruct_batches(
    recipe: FinetuneRecipe, tokenizer: CharTokenizer, context: int, generator: torch.Generator
) -> Callable[[str], tuple[torch.Tensor, torch.Tensor]]:
    """Batches of instructions, padded, as ``(ids[:, :-1], labels[:, 1:])``. Training batches are
    drawn ``BUCKETS`` at a time and grouped by length (examples run from 20 to 128 tokens:
    a random batch would be mostly padding), then served in random order."""
    end = end_id(tokenizer)
    train_ex = instruction_examples(
        tokenizer, training_instructions(recipe.families, recipe.n_examples, recipe.seed), context, recipe.mask_prompt
    )
    val_ex = instruction_examples(tokenizer, heldout_instructions(recipe.families), context, recipe.mask_prompt)
    n_text = round(recipe.pretrain_mix * recipe.batch_size)
    k = recipe.batch_size - n_text
    text = char_data()[1] if n_text else None
    pending: list[list[int]] = []

    def train_rows() -> list:
        if not pending:
            picks = sorted(torch.randint(len(train_ex), (BUCKETS * k,), generator=generator).tolist(), key=lambda i: len(train_ex[i][0]))
            pending.extend(picks[j * k : (j + 1) * k] for j in torch.randperm(BUCKETS, generator=generator).tolist())
        rows = [train_ex[i] for i in pending.pop()]
        if n_text:  # windows of plain text as long as the longest instruction: every position a label
            x, y = get_batch(text, max(len(ids) for ids, _ in rows) - 1, n_text, generator)
            rows += [(ids, ids) for ids in torch.cat([x, y[:, -1:]], dim=1).tolist()]
        return rows

    def batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        rows = (
            train_rows() if split == "train" else [val_ex[i] for i in torch.randint(len(val_ex), (recipe.batch_size,), generator=generator)]
        )
        ids, labels, _ = pad_batch(rows, end)
        if (labels[:, 1:] == IGNORE_INDEX).all():
            raise ValueError("the batch has no answer token to learn from")
        return ids[:, :-1], labels[:, 1:]

    return batch


def _classify_batches(
    recipe: FinetuneRecipe, tokenizer: CharTokenizer, context: int, generator: torch.Generator
) -> Callable[[str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    train_ex, val_ex = sentiment_sequences(tokenizer, context)

    def batch(split: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        pool = train_ex if split == "train" else val_ex
        rows = [pool[i] for i in torch.randint(len(pool), (recipe.batch_size,), generator=generator).tolist()]
        ids, _, lengths = pad_batch([(ids, ids) for ids, _, _ in rows], 0)
        return ids, lengths, torch.tensor([label for _, label, _ in rows])

    return batch


def run(recipe: FinetuneRecipe, out: str | Path) -> tuple[nn.Module, dict]:
    """Finetune as ``recipe`` says, with ``lmkit.train.train``, and save the release checkpoint
    ``out``: weights (adapters merged), recipe, history, trainable parameters and, with
    ``final_eval``, the held-out results. Returns the model and what was saved."""
    base, tokenizer = base_model(recipe.base)
    torch.manual_seed(recipe.seed)
    if not recipe.pretrained:
        base = GPT(dataclasses.replace(recipe.model or base.config, vocab_size=tokenizer.vocab_size))
    context = base.config.context
    generator = torch.Generator().manual_seed(recipe.seed)
    if recipe.kind == "instruct":
        model: nn.Module = add_end_token(base)
        batch: Callable = _instruct_batches(recipe, tokenizer, context, generator)
    else:
        model = GPTClassifier(base, 2)
        batch = _classify_batches(recipe, tokenizer, context, generator)
    if recipe.lora_rank is not None:
        add_lora(model.gpt if isinstance(model, GPTClassifier) else model, recipe.lora_rank, recipe.lora_alpha)
        # New parts have nothing pretrained to keep: the classifier's head, and the <end> row of the
        # token table (tied to the output layer; a frozen mean row would never be predicted).
        (model.classify if isinstance(model, GPTClassifier) else model.tok_emb).requires_grad_(True)
    trainable = num_parameters(model)
    history = train(model, batch, recipe.train, generators=[generator])
    if recipe.lora_rank is not None:
        merge_lora(model)
    model.eval()
    record = {
        "kind": recipe.kind,
        "recipe": _recipe_record(recipe),
        "model_config": dataclasses.asdict(model.config),
        "tokenizer": tokenizer.itos,
        "trainable_parameters": trainable,
        "parameters": num_parameters(model.requires_grad_(True)),
    }
    if recipe.final_eval:
        if recipe.kind == "instruct":
            record["heldout"] = evaluate(model, tokenizer, heldout_instructions(recipe.families, recipe.eval_per_family))
        else:
            record["heldout"] = evaluate_classifier(model, tokenizer)
        if recipe.kind == "instruct":
            text = char_data()[2][: recipe.eval_text_chars]
            record["pretrain_val_bits"] = bits(evaluate_lm(model, text, context))
    return model, save_run(out, model, None, history, recipe.train, None, **record)


def _recipe_record(recipe: FinetuneRecipe) -> dict:
    record = dataclasses.asdict(recipe)
    record["train"] = dataclasses.asdict(recipe.train)
    return record


def recipe_from_record(record: dict) -> FinetuneRecipe:
    """The ``FinetuneRecipe`` a checkpoint's ``recipe`` record describes."""
    record = dict(record)
    train = record.pop("train")
    train_config = TrainConfig(**{**train, "betas": tuple(train["betas"])})
    model = record.pop("model")
    families = record.pop("families")
    return FinetuneRecipe(
        train=train_config,
        model=None if model is None else GPTConfig(**model),
        families=None if families is None else tuple(families),
        **record,
    )


# ----------------------------------------------------------------------------------------------
# Evaluation on the held-out split.


def first_line(text: str) -> str:
    """What is scored: the answer up to its first newline. No answer of the data spans two
    lines, so this changes nothing for a finetuned model, and it is generous to a
    pretrained one that never learned to stop."""
    return text.split("\n", 1)[0]


def closed_answers(examples: Sequence[Instruction]) -> dict[str, set[str] | None]:
    """Per family, the set of possible answers when there are few (a label, a name, a count
    word), None when answers are open text."""
    seen: dict[str, set[str]] = {}
    for e in examples:
        seen.setdefault(e.family, set()).add(e.answer)
    return {f: (answers if len(answers) <= 20 else None) for f, answers in seen.items()}


@torch.no_grad()
def evaluate(
    model: GPT, tokenizer: CharTokenizer, examples: Sequence[Instruction] | None = None, max_new_tokens: int = ANSWER_TOKENS
) -> dict:
    """Answer every held-out instruction (default: all of them) greedily and score it
    (``lmkit.instructions.score`` on ``first_line`` of the answer). Returns per family and
    overall: ``accuracy``, ``stopped`` (the share that ended with ``<end>``), ``in_format``
    (the share whose first line is one of the family's possible answers, or any non-empty
    line for open-ended families), ``n``; and ``answers``, every answer in order."""
    examples = heldout_instructions() if examples is None else examples
    if not examples:
        raise ValueError("no examples to evaluate")
    closed = closed_answers(load_instructions("train"))
    end = end_id(tokenizer)
    has_end = model.config.vocab_size > end
    rows = []
    for e in examples:
        prompt = tokenizer.encode(format_prompt(e.instruction, e.input))
        budget = min(max_new_tokens, answer_room(model, len(prompt)))
        new = generate(model, prompt, budget, temperature=0, stop_id=end if has_end else None)[len(prompt) :]
        stopped = has_end and end in new
        text = tokenizer.decode(new[: new.index(end)] if stopped else new)
        line = first_line(text).strip()
        options = closed.get(e.family)
        rows.append(
            {
                "family": e.family,
                "answer": text,
                "correct": score(e, first_line(text)),
                "stopped": stopped,
                "in_format": (line in options) if options is not None else bool(line),
            }
        )
    return {**_summaries(rows), "answers": [r["answer"] for r in rows]}


def _summaries(rows: list[dict]) -> dict:
    def summary(part: list[dict]) -> dict:
        n = len(part)
        return {"n": n, **{k: sum(r[k] for r in part) / n for k in ("correct", "stopped", "in_format")}}

    families = sorted({r["family"] for r in rows}, key=lambda f: FAMILIES.index(f) if f in FAMILIES else len(FAMILIES))
    return {"families": {f: summary([r for r in rows if r["family"] == f]) for f in families}, "overall": summary(rows)}


@torch.no_grad()
def evaluate_classifier(model: GPTClassifier, tokenizer: CharTokenizer) -> dict:
    """Accuracy of a sentiment classifier on the held-out sentences it can read; ``positions``
    are their places in the course split and ``right`` says, per sentence, whether it was right."""
    _, held_out = sentiment_sequences(tokenizer, model.config.context)
    model.eval()
    right = []
    for chunk in range(0, len(held_out), 64):
        rows = held_out[chunk : chunk + 64]
        ids, _, lengths = pad_batch([(ids, ids) for ids, _, _ in rows], 0)
        predictions = model(ids, lengths)[0].argmax(-1).tolist()
        right += [int(p == label) for p, (_, label, _) in zip(predictions, rows)]
    return {"accuracy": sum(right) / len(right), "n": len(right), "positions": [i for _, _, i in held_out], "right": right}


def load_finetuned(name_or_path: str | Path, kind: Kind | None = None, directory: Path | None = None) -> tuple[nn.Module, dict]:
    """A finetuned checkpoint (a shipped name such as ``"gpt_instruct"``, or a path) as a model
    in eval mode (a ``GPT`` or a ``GPTClassifier``), and the checkpoint; an error if it holds
    a pretrained model, or a finetuned one of another ``kind`` than the one asked for."""
    path = Path(name_or_path)
    if path.suffix != ".pt":
        path = (directory or CHECKPOINT_DIR) / f"{name_or_path}.pt"
    ckpt = load_checkpoint(path)
    found = ckpt.get("kind")
    if found not in ("instruct", "classify") or (kind is not None and found != kind):
        what = f"a finetuned model of kind {found!r}" if found else f"a pretrained model (task {ckpt.get('task')!r})"
        raise ValueError(f"{path.name} holds {what}, not a finetuned model" + (f" of kind {kind!r}" if kind else ""))
    gpt = GPT(GPTConfig(**ckpt["model_config"]))
    model: nn.Module = gpt if found == "instruct" else GPTClassifier(gpt, 2)
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


# The shipped finetuned models (``python -m lmkit.pretrained --only NAME`` rebuilds one). The
# instruction recipe fits the 5-minute budget on two CPU cores.
INSTRUCT_TRAIN = TrainConfig(steps=1000, lr=1e-3, min_lr=1e-4, warmup=50, weight_decay=0.1, eval_every=200, eval_batches=10)
CLASSIFY_TRAIN = TrainConfig(steps=600, lr=5e-4, min_lr=5e-5, warmup=30, weight_decay=0.1, eval_every=200, eval_batches=10)
FINETUNED: dict[str, FinetuneRecipe] = {
    "gpt_instruct": FinetuneRecipe(train=INSTRUCT_TRAIN),
    "gpt_sentiment": FinetuneRecipe(train=CLASSIFY_TRAIN, kind="classify", batch_size=32),
}


if __name__ == "__main__":
    from lmkit.cli import finetune_main

    finetune_main()
