"""The instructor's workflow, for real: generate the release, collect submissions,
autograde them all in one nbgrader run (real gradebook), generate feedback, export.

Each assignment gets a solved submission (full autograded marks), the untouched
release (zero), a plausible wrong one (some marks) and broken ones, which must
cost only their own points without stopping the run.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry

from course import ASSIGNMENTS, REPO, grade_id, new_course, replace_in_cell, run, solved, submit

pytestmark = pytest.mark.slow
# Short per-cell timeout for the endless-loop submission; the course config uses 30 s.
TIMEOUT = "--Execute.timeout=8"


def blank(aid: str) -> nbformat.NotebookNode:
    return nbformat.read(REPO / "exercises" / aid / ASSIGNMENTS[aid], as_version=4)


def submissions_00() -> dict:
    aid = "00_bag_of_words"
    edited = solved(aid)
    next(c for c in edited.cells if grade_id(c) == "test_lexicon_score").source = "assert True  # no tests here"
    deleted = solved(aid)
    deleted.cells = [c for c in deleted.cells if grade_id(c) != "test_predict"]
    return {
        "solution": solved(aid),
        "blank": blank(aid),
        # Classic mistakes: each word counted once; ties always negative.
        "wrong": replace_in_cell(
            replace_in_cell(solved(aid), "lexicon_score", "for t in tokens)", "for t in set(tokens))"),
            "predict",
            "    return default",
            "    return 0",
        ),
        "syntax_error": replace_in_cell(solved(aid), "tokenize", "def tokenize(text):", "def tokenize(text)"),
        "endless_loop": replace_in_cell(solved(aid), "accuracy", '    if len(labels) == 0:', "    while True:\n        pass\n    if len(labels) == 0:"),
        "edited_test": edited,
        "deleted_test": deleted,
        "malformed": '{"cells": [',
        "missing": None,
    }


def submissions_01() -> dict:
    aid = "01_tokens_and_embeddings"
    return {
        "solution": solved(aid),
        "blank": blank(aid),
        # Classic mistakes: BPE ties go to the first pair seen; word-count ties keep first-seen order.
        "wrong": replace_in_cell(
            replace_in_cell(solved(aid), "bpe_train", "min(counts, key=lambda p: (-counts[p], p))", "max(counts, key=counts.get)"),
            "word_vocab",
            "key=lambda w: (-counts[w], w)",
            "key=lambda w: -counts[w]",
        ),
        "import_error": replace_in_cell(solved(aid), "char_tokenizer", "def build_char_vocab(text):", "import lmkit.no_such_module\n\n\ndef build_char_vocab(text):"),
    }


def submissions_02() -> dict:
    aid = "02_recurrent_networks"
    return {
        "solution": solved(aid),
        "blank": blank(aid),
        # Classic mistakes: the state is not carried between steps; targets not shifted.
        "wrong": replace_in_cell(
            replace_in_cell(solved(aid), "unroll", "h = rnn_cell(x[:, t], h, W_ih, W_hh, b_ih, b_hh)", "h = rnn_cell(x[:, t], h0, W_ih, W_hh, b_ih, b_hh)"),
            "next_token_loss",
            "F.cross_entropy(logits[:, :-1].reshape(-1, V), idx[:, 1:].reshape(-1))",
            "F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1))",
        ),
        # A correct alternative: the LSTM written gate by gate with loops over the batch.
        "loops": replace_in_cell(
            solved(aid),
            "lstm_cell",
            "    z = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh\n",
            "    z = torch.stack([W_ih @ x[n] + b_ih + W_hh @ h[n] + b_hh for n in range(x.shape[0])])\n",
        ),
        "import_error": replace_in_cell(solved(aid), "rnn_cell", "def rnn_cell(", "import lmkit.no_such_module\n\n\ndef rnn_cell("),
    }


def submissions_03() -> dict:
    aid = "03_attention"
    return {
        "solution": solved(aid),
        "blank": blank(aid),
        # Classic mistakes: no 1/sqrt(d) scale; the norm applied after the residual sum (post-norm).
        "wrong": replace_in_cell(
            replace_in_cell(solved(aid), "attention_weights", "/ math.sqrt(q.shape[-1])", ""),
            "block",
            "    x = x + attn(norm1(x))\n    return x + mlp(norm2(x))",
            "    x = norm1(x + attn(x))\n    return norm2(x + mlp(x))",
        ),
        # A correct alternative: einsum and an explicit -inf fill with torch.where.
        "loops": replace_in_cell(
            replace_in_cell(solved(aid), "attention_weights", "scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])",
                            "scores = torch.einsum('...qd,...kd->...qk', q, k) / q.shape[-1] ** 0.5"),
            "attention_weights",
            "scores = scores.masked_fill(~mask, float(\"-inf\"))",
            "scores = torch.where(mask, scores, torch.tensor(float(\"-inf\")))",
        ),
        "import_error": replace_in_cell(solved(aid), "attention_weights", "def attention_weights(", "import lmkit.no_such_module\n\n\ndef attention_weights("),
    }


def submissions_04() -> dict:
    aid = "04_gpt"
    return {
        "solution": solved(aid),
        "blank": blank(aid),
        # Classic mistakes: temperature applied after the softmax; the cache fed the whole sequence again.
        "wrong": replace_in_cell(
            replace_in_cell(
                replace_in_cell(solved(aid), "next_token_probs", "    logits = logits / temperature\n", ""),
                "next_token_probs", "    return torch.softmax(logits, dim=-1)", "    return torch.softmax(logits, dim=-1) / temperature",
            ),
            "generate_greedy",
            "        logits, _ = model(torch.tensor([[nxt]]), cache=cache)",
            "        logits, _ = model(torch.tensor([out]), cache=cache)",
        ),
        "import_error": replace_in_cell(solved(aid), "gpt_forward", "def gpt_forward(", "import lmkit.no_such_module\n\n\ndef gpt_forward("),
    }


SUBMISSIONS = {"00_bag_of_words": submissions_00, "01_tokens_and_embeddings": submissions_01,
               "02_recurrent_networks": submissions_02, "03_attention": submissions_03, "04_gpt": submissions_04}


@pytest.fixture(scope="module", params=list(ASSIGNMENTS))
def graded(request, tmp_path_factory):
    """Run the whole workflow once per assignment; yield what the tests inspect."""
    aid = request.param
    course = new_course(tmp_path_factory.mktemp(aid))
    run("nbgrader", "generate_assignment", aid, cwd=course)
    subs = SUBMISSIONS[aid]()
    for student, nb in subs.items():
        submit(course, student, aid, nb)
    # The endless-loop submission (first assignment) gets a short cell timeout to keep the test fast;
    # the others run under the course config's 30 s, which the training cells of 04 need on a busy machine.
    proc = run("nbgrader", "autograde", aid, *([TIMEOUT] if aid == "00_bag_of_words" else []), cwd=course, check=False)
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in subs:
            try:
                sub = gb.find_submission(aid, student)
            except MissingEntry:
                continue
            scores[student] = {g.name: (g.score, g.max_score) for nb in sub.notebooks for g in nb.grades if g.auto_score is not None or g.cell.cell_type == "code"}
    yield aid, course, subs, proc, scores


def autograded_points(scores: dict, student: str) -> tuple[float, float]:
    got = [s for s, _ in scores[student].values()]
    total = [m for _, m in scores[student].values()]
    return sum(got), sum(total)


def test_solution_gets_every_autograded_point(graded):
    aid, _, _, proc, scores = graded
    got, total = autograded_points(scores, "solution")
    assert total > 0
    assert got == total, f"{aid}: solution scored {got}/{total}: {scores['solution']}\n{proc.stderr[-3000:]}"


def test_blank_release_gets_zero(graded):
    _, _, _, _, scores = graded
    got, total = autograded_points(scores, "blank")
    assert total > 0 and got == 0, scores["blank"]


def test_wrong_submission_gets_some_but_not_all(graded):
    aid, _, _, _, scores = graded
    got, total = autograded_points(scores, "wrong")
    assert 0 < got < total, scores["wrong"]
    failed = {name for name, (s, m) in scores["wrong"].items() if s < m}
    expected = {"00_bag_of_words": {"test_lexicon_score", "test_predict", "test_accuracy_by_source"},
                "01_tokens_and_embeddings": {"test_bpe_train", "test_word_vocab"},
                "02_recurrent_networks": {"test_unroll", "test_next_token_loss"},
                # without the scale every attention-based test fails; the block test catches post-norm
                "03_attention": {"test_attention_weights", "test_attention", "test_mha", "test_block"},
                "04_gpt": {"test_next_token_probs", "test_generate_greedy"}}[aid]
    assert failed == expected, f"hidden tests should catch exactly the planted mistakes: failed {sorted(failed)}"


def test_broken_submissions_do_not_stop_the_run(graded):
    aid, course, subs, proc, scores = graded
    # Every submission that is a notebook was graded, whatever the others did.
    for student, nb in subs.items():
        if isinstance(nb, nbformat.NotebookNode):
            assert student in scores, f"{student} was not graded\n{proc.stderr[-3000:]}"
    if aid == "00_bag_of_words":
        syntax, _ = autograded_points(scores, "syntax_error")
        assert scores["syntax_error"]["test_tokenize"][0] == 0 and scores["syntax_error"]["test_accuracy"][0] == 2, scores["syntax_error"]
        # The endless loop is interrupted; only the tests that need `accuracy` lose points.
        assert "Timeout waiting for execute reply" in proc.stderr
        assert scores["endless_loop"]["test_accuracy"][0] == 0 and scores["endless_loop"]["test_tokenize"][0] == 2, scores["endless_loop"]
        # Malformed JSON is reported and scores nothing; a missing notebook is reported.
        assert "malformed" in proc.stderr and autograded_points(scores, "malformed")[0] == 0
        assert "No notebooks were matched" in proc.stderr and "missing" not in scores
        assert proc.returncode != 0  # nbgrader reports that some submissions failed
        # Edited and deleted test cells are put back from the gradebook and scored.
        for student in ("edited_test", "deleted_test"):
            got, total = autograded_points(scores, student)
            assert got == total, f"{student}: {scores[student]}"
        restored = nbformat.read(course / "autograded" / "edited_test" / aid / ASSIGNMENTS[aid], as_version=4)
        cell = next(c for c in restored.cells if grade_id(c) == "test_lexicon_score")
        assert "no tests here" not in cell.source and "BEGIN HIDDEN TESTS" in cell.source
    else:
        got, total = autograded_points(scores, "import_error")
        first_test = {"01_tokens_and_embeddings": "test_char_tokenizer", "02_recurrent_networks": "test_rnn_cell",
                      "03_attention": "test_attention_weights", "04_gpt": "test_gpt_forward"}[aid]
        assert scores["import_error"][first_test][0] == 0 and 0 < got < total, scores["import_error"]
    if "loops" in subs:  # a correct alternative implementation gets full marks
        got, total = autograded_points(scores, "loops")
        assert got == total, scores["loops"]


def test_feedback_export_and_determinism(graded):
    aid, course, _, _, scores = graded
    run("nbgrader", "generate_feedback", aid, cwd=course)
    feedback = course / "feedback" / "solution" / aid / ASSIGNMENTS[aid].replace(".ipynb", ".html")
    assert feedback.exists() and "Score:" in feedback.read_text()
    run("nbgrader", "export", "--to", str(course / "grades.csv"), cwd=course)
    rows = list(csv.DictReader(open(course / "grades.csv")))
    by_student = {r["student_id"]: r for r in rows if r["assignment"] == aid}
    assert float(by_student["solution"]["score"]) == autograded_points(scores, "solution")[0]
    # Grading the same submission again gives the same score.
    run("nbgrader", "autograde", aid, "--student=solution", "--force", cwd=course)
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        again = {g.name: g.score for nb in gb.find_submission(aid, "solution").notebooks for g in nb.grades}
    assert all(again[name] == s for name, (s, _) in scores["solution"].items())
