"""lmkit.finetune and lmkit.lora: the masked examples, batches and loss, answering with a
stop token, the classification head, adapters, recipes and the command line.

Independent references: hand-written labels, per-position cross-entropies summed by
hand, the GPT's own forward pass on unpadded sequences, and plain linear algebra for
the merged adapters.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from lmkit import finetune
from lmkit.cli import finetune_main, finetune_parser
from lmkit.finetune import (
    END,
    FinetuneRecipe,
    GPTClassifier,
    Template,
    add_end_token,
    answer,
    answer_loss,
    build_example,
    end_id,
    format_prompt,
    load_finetuned,
    pad_batch,
)
from lmkit.lora import LoRALinear, add_lora, merge_lora
from lmkit.losses import IGNORE_INDEX
from lmkit.tokenizers import CharTokenizer
from lmkit.train import TrainConfig, num_parameters
from lmkit.transformer import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("seeded_single_thread")

TOK = CharTokenizer("\n :?ABQabcdeo")
TINY = GPTConfig.gpt2(vocab_size=TOK.vocab_size, context=32, d_model=16, n_layers=1, n_heads=2)


def test_prompt_with_and_without_input():
    assert format_prompt("Say hi.") == "Q: Say hi.\nA: "
    assert format_prompt("Reverse it.", "abc") == "Q: Reverse it.\nabc\nA: "
    with pytest.raises(ValueError, match="empty"):
        format_prompt("  ")


def test_template_fields_are_checked():
    with pytest.raises(ValueError, match=r"unknown field.*'context'"):
        Template(prompt="{instruction} {context}\n")
    with pytest.raises(ValueError, match="must contain"):
        Template(prompt_no_input="A: ")


def test_labels_mask_exactly_the_prompt():
    ids, labels = build_example(TOK, "Bob?", "ab", "cd")
    prompt = TOK.encode("Q: Bob?\nab\nA: ")
    assert ids == prompt + TOK.encode("cd") + [end_id(TOK)]
    # the last prompt token is not a label, the first answer token is, and so is <end>
    assert labels == [IGNORE_INDEX] * len(prompt) + TOK.encode("cd") + [TOK.vocab_size]
    assert labels[len(prompt) - 1] == IGNORE_INDEX and labels[len(prompt)] == TOK.stoi["c"]
    _, unmasked = build_example(TOK, "Bob?", "ab", "cd", mask_prompt=False)
    assert unmasked == ids


def test_long_examples_and_unknown_characters_are_errors():
    with pytest.raises(ValueError, match="longer than the model's context of 10"):
        build_example(TOK, "Bob?", "ab", "cd", context=10)
    with pytest.raises(ValueError, match="never seen"):
        build_example(TOK, "Bob!", None, "cd")


def test_pad_batch_pads_right_and_returns_lengths():
    a, b = build_example(TOK, "B?", None, "a"), build_example(TOK, "B?", "abc", "ab")
    ids, labels, lengths = pad_batch([a, b], pad_id=99)
    assert ids.shape == labels.shape == (2, len(b[0])) and lengths.tolist() == [len(a[0]), len(b[0])]
    assert ids[0, : len(a[0])].tolist() == a[0] and (ids[0, len(a[0]) :] == 99).all()
    assert labels[0, : len(a[1])].tolist() == a[1] and (labels[0, len(a[1]) :] == IGNORE_INDEX).all()
    with pytest.raises(ValueError, match="no examples"):
        pad_batch([], 0)
    with pytest.raises(ValueError, match="same, non-zero length"):
        pad_batch([([1, 2], [1])], 0)


def test_answer_loss_is_the_mean_over_answer_tokens_only():
    examples = [build_example(TOK, "B?", None, "a"), build_example(TOK, "B?", "abc", "abcd")]
    ids, labels, _ = pad_batch(examples, pad_id=0)
    logits = torch.randn(*ids.shape, TOK.vocab_size + 1)
    by_hand = [
        F.cross_entropy(logits[b, t], labels[b, t + 1])
        for b in range(2)
        for t in range(ids.shape[1] - 1)
        if labels[b, t + 1] != IGNORE_INDEX
    ]
    assert len(by_hand) == 2 + 5  # "a" + <end>, "abcd" + <end>
    torch.testing.assert_close(answer_loss(logits, labels), torch.stack(by_hand).mean())
    with pytest.raises(ValueError, match="no answer token"):
        answer_loss(logits, torch.full_like(labels, IGNORE_INDEX))


def test_the_end_token_is_added_as_the_mean_embedding_and_changes_nothing_else():
    gpt = GPT(TINY).eval()
    bigger = add_end_token(gpt).eval()
    assert bigger.config.vocab_size == TINY.vocab_size + 1
    torch.testing.assert_close(bigger.tok_emb.weight[-1], gpt.tok_emb.weight.mean(0))
    assert bigger.head.weight is bigger.tok_emb.weight  # still tied
    x = torch.randint(TINY.vocab_size, (2, 7))
    torch.testing.assert_close(bigger(x)[0][..., :-1], gpt(x)[0])


class Scripted(torch.nn.Module):
    """A 'model' that always predicts the next token of ``script``, counting the tokens it reads."""

    def __init__(self, script: list[int], vocab_size: int) -> None:
        super().__init__()
        self.script, self.read = script, 0
        self.config = SimpleNamespace(vocab_size=vocab_size, context=64, positions="rope")

    def new_cache(self):
        return SimpleNamespace(length=0)

    def forward(self, idx, targets=None, cache=None):
        start = 0 if cache is None else cache.length
        self.read += idx.shape[1]
        if cache is not None:
            cache.length += idx.shape[1]
        logits = torch.full((*idx.shape, self.config.vocab_size), -10.0)
        made = start + idx.shape[1] - self.prompt_len  # tokens generated so far, after this input
        logits[:, -1, self.script[min(made, len(self.script) - 1)]] = 10.0
        return logits, None


def test_answer_stops_at_end_returns_only_the_answer_and_uses_the_cache():
    end = end_id(TOK)
    script = TOK.encode("abc") + [end] + TOK.encode("dd")
    model = Scripted(script, TOK.vocab_size + 1)
    model.prompt_len = len(format_prompt("B?", "a"))
    assert answer(model, TOK, "B?", "a", max_new_tokens=10) == "abc"
    assert model.read == model.prompt_len + 3  # the prompt once, then one token per step; nothing after <end>
    model.read = 0
    assert answer(model, TOK, "B?", "a", max_new_tokens=2) == "ab"  # cut by the budget
    with pytest.raises(ValueError, match=f"no {END} token"):
        answer(GPT(TINY), TOK, "B?")
    with pytest.raises(ValueError, match="leaves room for 1 to 5"):
        answer(add_end_token(GPT(TINY)), TOK, "B?", "a" * 17, max_new_tokens=10)  # 27 prompt tokens of 32
    with pytest.raises(ValueError, match="fills the model's context"):
        answer(add_end_token(GPT(TINY)), TOK, "B?", "a" * 25)
    assert len(answer(add_end_token(GPT(TINY)), TOK, "B?", "a" * 17)) <= 5  # by default, what the context leaves


def test_answer_matches_greedy_generation_of_a_real_gpt():
    model = add_end_token(GPT(TINY)).eval()
    prompt = TOK.encode(format_prompt("B?"))
    ids = finetune.generate(model, prompt, 8, temperature=0, use_cache=False)[len(prompt) :]
    expected = ids[: ids.index(end_id(TOK))] if end_id(TOK) in ids else ids
    assert answer(model, TOK, "B?", max_new_tokens=8) == TOK.decode(expected)


def test_classifier_reads_the_last_real_token():
    gpt = GPT(TINY).eval()
    clf = GPTClassifier(gpt, 3).eval()
    a, b = TOK.encode("abc"), TOK.encode("Bob: abc")
    ids, _, lengths = pad_batch([(a, a), (b, b)], pad_id=TOK.stoi["Q"])
    logits, loss = clf(ids, lengths, torch.tensor([0, 2]))
    for row, seq in enumerate([a, b]):  # each row as if it were alone, unpadded
        alone = clf.classify(gpt.hidden(torch.tensor([seq]))[0, -1])
        torch.testing.assert_close(logits[row], alone)
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([0, 2])))
    ids[0, len(a) :] = TOK.stoi["o"]  # other padding: same scores
    torch.testing.assert_close(clf(ids, lengths)[0], logits)
    with pytest.raises(ValueError, match="lengths must be"):
        clf(ids, torch.tensor([0, 3]))


def test_lora_starts_at_the_pretrained_model_trains_few_numbers_and_merges_exactly():
    gpt = GPT(TINY).eval()
    x = torch.randint(TINY.vocab_size, (2, 9))
    before = gpt(x)[0].detach()
    model = add_lora(gpt, rank=2, alpha=4.0)
    torch.testing.assert_close(model(x)[0], before)  # B = 0: the same function
    adapters = [m for m in model.modules() if isinstance(m, LoRALinear)]
    assert len(adapters) == 4  # qkv, proj; fc, proj of the one block
    assert num_parameters(model) == sum(2 * (m.base.in_features + m.base.out_features) for m in adapters)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        model(x, x)[1].backward()
        opt.step()
    adapted = model(x)[0].detach()
    assert not torch.allclose(adapted, before, atol=1e-4)
    m = adapters[0]
    expected_w = m.base.weight + m.scale * m.B @ m.A
    merged = merge_lora(model)
    assert not any(isinstance(mod, LoRALinear) for mod in merged.modules())
    torch.testing.assert_close(merged.blocks[0].attn.qkv.weight, expected_w.detach())
    torch.testing.assert_close(merged(x)[0], adapted, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        merge_lora(merged)
    with pytest.raises(ValueError, match="rank must be"):
        add_lora(GPT(TINY), rank=0, alpha=1.0)


def test_recipe_settings_are_checked():
    config = TrainConfig(steps=2)
    for bad, match in [
        ({"families": ("poetry",)}, "unknown task families"),
        ({"pretrain_mix": 1.0}, "pretrain_mix"),
        ({"lora_rank": 0}, "lora_rank"),
        ({"model": TINY}, "pretrained=False"),
        ({"kind": "classify", "n_examples": 5}, "kind='instruct'"),
        ({"kind": "chat"}, "kind must be"),
    ]:
        with pytest.raises(ValueError, match=match):
            FinetuneRecipe(train=config, **bad)


def test_checkpoints_of_the_wrong_kind_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not a pretrained character language model"):
        finetune.base_model("copy_gpt")
    with pytest.raises(ValueError, match="holds a pretrained model"):
        load_finetuned("gpt_shakespeare")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 4-step finetuning of the shipped base, with a small held-out evaluation."""
    out = tmp_path_factory.mktemp("ft") / "run.pt"
    recipe = FinetuneRecipe(
        train=TrainConfig(steps=4, lr=1e-4, eval_every=4, eval_batches=1, progress=False), batch_size=4, pretrain_mix=0.25, final_eval=False
    )
    return out, recipe, *finetune.run(recipe, out)


def test_run_finetunes_the_base_with_the_common_loop_and_saves_a_loadable_checkpoint(tiny_run):
    out, recipe, model, ckpt = tiny_run
    base, tokenizer = finetune.base_model(finetune.BASE)
    assert ckpt["kind"] == "instruct" and ckpt["step"] == 4 and len(ckpt["history"]["train_loss"]) == 4
    assert model.config.vocab_size == base.config.vocab_size + 1 and ckpt["tokenizer"] == tokenizer.itos
    assert ckpt["trainable_parameters"] == ckpt["parameters"] == num_parameters(base) + base.config.d_model
    loaded, again = load_finetuned(out)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
    assert finetune.recipe_from_record(again["recipe"]) == recipe
    with pytest.raises(ValueError, match="not a finetuned model of kind 'classify'"):
        load_finetuned(out, "classify")


def test_lora_run_trains_adapters_and_the_token_table_then_merges(tmp_path):
    recipe = FinetuneRecipe(
        train=TrainConfig(steps=2, eval_every=2, eval_batches=1, progress=False), batch_size=2, lora_rank=2, final_eval=False
    )
    model, ckpt = finetune.run(recipe, tmp_path / "lora.pt")
    base, _ = finetune.base_model(finetune.BASE)
    c = base.config
    per_block = 2 * (
        (c.d_model + 3 * c.d_model) + 2 * c.d_model + (c.d_model + c.mlp_hidden) + (c.mlp_hidden + c.d_model)
    )  # qkv, proj, fc, proj
    table = (c.vocab_size + 1) * c.d_model  # the token table, <end> row included (tied to the output layer)
    assert ckpt["trainable_parameters"] == c.n_layers * per_block + table
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # merged: a plain GPT again
    loaded, _ = load_finetuned(tmp_path / "lora.pt")
    x = torch.randint(c.vocab_size, (1, 12))
    torch.testing.assert_close(loaded(x)[0], model(x)[0])


def test_mixed_batches_hold_plain_text_with_every_position_a_label():
    recipe = FinetuneRecipe(train=TrainConfig(steps=1), batch_size=4, pretrain_mix=0.5)
    _, tokenizer = finetune.base_model(finetune.BASE)
    batch = finetune._instruct_batches(recipe, tokenizer, 128, torch.Generator().manual_seed(0))
    x, y = batch("train")
    text_rows = y[2:]
    assert (text_rows != IGNORE_INDEX).all() and torch.equal(x[2:, 1:], y[2:, :-1])  # plain text: the next character everywhere
    assert (y[:2] == IGNORE_INDEX).any(dim=1).all()  # instructions: the prompt masked
    x, y = batch("val")  # held-out batches are instructions only
    assert (y == IGNORE_INDEX).any(dim=1).all()


def test_cli_every_flag_has_help_and_evaluate_prints_json(tiny_run, capsys):
    parser = finetune_parser()
    subparsers = [a for a in parser._actions if a.dest == "command"][0].choices.values()
    for p in [parser, *subparsers]:
        for action in p._actions:
            assert action.help, f"{p.prog}: {action.option_strings} has no help"
    out = tiny_run[0]
    summary = finetune_main(["evaluate", "--checkpoint", str(out), "--json", "--per-family", "1"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == summary and set(printed) == {"families", "overall"}
    assert printed["overall"]["n"] == len(printed["families"]) and all(r["n"] == 1 for r in printed["families"].values())
    with pytest.raises(SystemExit):
        finetune_main(["evaluate", "--checkpoint", "gpt_shakespeare"])
    assert "holds a pretrained model" in capsys.readouterr().err
