"""The instructor's workflow, for real: generate the release, collect submissions,
autograde them all (real gradebook) as an instructor grades a class, with the
parallel grader on two workers (``python -m lmkit.grader.parallel``, which runs
``nbgrader autograde`` per student), generate feedback, export.

Each assignment gets a solved submission (full autograded marks), the untouched
release (zero), mutants whose classic mistakes must each cost exactly their own
task, valid alternative implementations (full marks), attacks (stealing, patching
the checks, lying return values, killing the process, exhausting the machine),
which must earn no more than their honest code, change nothing outside their own
folder and not stop anyone else being graded, and broken submissions.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import socket
import threading
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook, MissingEntry

import submissions as S
from course import ASSIGNMENTS, REPO, grade_id, new_course, replace_in_cell, run, solved, submit
from lmkit.grader.sandbox import sandbox_processes

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="grading runs in bubblewrap: apt-get install bubblewrap"),
]
# A short limit per call of a submission's code: the endless loop and the fork bomb each cost one.
TIMEOUTS = ["--SandboxedExecute.call_timeout=5"]


def broken(aid: str) -> dict:
    """Submissions that are broken rather than wrong: they must cost only what they break."""
    if aid != "00_bag_of_words":
        first_cell, first_fn, _ = S.tasks(aid)[0]
        return {
            "import_error": replace_in_cell(
                solved(aid), first_cell, f"def {first_fn}(", f"import lmkit.no_such_module\n\n\ndef {first_fn}("
            )
        }
    edited = solved(aid)
    next(c for c in edited.cells if grade_id(c) == "test_lexicon_score").source = "assert True  # no tests here"
    deleted = solved(aid)
    deleted.cells = [c for c in deleted.cells if grade_id(c) != "test_predict"]
    return {
        "syntax_error": replace_in_cell(solved(aid), "tokenize", "def tokenize(text):", "def tokenize(text)"),
        "edited_test": edited,
        "deleted_test": deleted,
        "malformed": '{"cells": [',
        "missing": None,
    }


class Listener:
    """A TCP server on loopback that records whether anyone connected (no one should)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def tree_hash(root: Path, skip: tuple[str, ...]) -> dict[str, str]:
    """Hash of every file under root, except the top-level entries in ``skip``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in skip
    }


@pytest.fixture(scope="module", params=list(ASSIGNMENTS))
def graded(request, tmp_path_factory):
    """Run the whole workflow once per assignment; yield what the tests inspect."""
    aid = request.param
    course = new_course(tmp_path_factory.mktemp(aid))
    run("nbgrader", "generate_assignment", aid, cwd=course)
    listener = Listener()
    subs = {
        "solution": solved(aid),
        "blank": S.blank(aid),
        "alternatives": S.alternatives(aid),
        "thief": S.thief(aid),
        "anything": S.anything(aid),
    }
    expect_failing = {}
    for name in S.MUTANTS[aid]:
        subs[name], expect_failing[name] = S.mutant(aid, name)
    subs["mistakes_a_again"] = subs["mistakes_a"]  # graded in the same run by another process: scores are deterministic
    subs["hog"], expect_failing["hog"] = S.hog(aid, listener.port)
    subs.update(broken(aid))
    for student, nb in subs.items():
        submit(course, student, aid, nb)
    before = tree_hash(course, skip=("autograded", "gradebook.db"))
    repo_before = tree_hash(REPO / "solutions", skip=())
    # Two at a time: each attack also runs beside another student's grading, which it must not disturb.
    # tests/test_parallel_grading.py shows this grades as a serial `nbgrader autograde` does.
    proc = run("python", "-m", "lmkit.grader.parallel", aid, "--workers", "2", "--quiet", "--", *TIMEOUTS, cwd=course, check=False)
    after = tree_hash(course, skip=("autograded", "gradebook.db"))
    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in subs:
            try:
                sub = gb.find_submission(aid, student)
            except MissingEntry:
                continue
            scores[student] = {g.name: (g.score, g.max_score) for nb in sub.notebooks for g in nb.grades if g.cell.cell_type == "code"}
    leftovers = sandbox_processes()
    yield dict(
        aid=aid,
        course=course,
        subs=subs,
        proc=proc,
        scores=scores,
        expect_failing=expect_failing,
        changed={k for k in before.keys() | after.keys() if before.get(k) != after.get(k)},
        repo_changed=repo_before != tree_hash(REPO / "solutions", skip=()),
        connections=listener.connections,
        leftovers=leftovers,
    )
    listener.sock.close()


def points(scores: dict, student: str) -> tuple[float, float]:
    return sum(s for s, _ in scores[student].values()), sum(m for _, m in scores[student].values())


def failed(scores: dict, student: str) -> set[str]:
    return {name for name, (s, m) in scores[student].items() if s < m}


def autograded_output(course: Path, student: str, aid: str) -> str:
    nb = nbformat.read(course / "autograded" / student / aid / ASSIGNMENTS[aid], as_version=4)
    return "\n".join(
        str(o.get("text", "")) + "\n".join(o.get("traceback", [])) for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )


def test_solution_gets_every_autograded_point(graded):
    got, total = points(graded["scores"], "solution")
    assert total > 0
    assert got == total, f"{graded['aid']}: solution scored {got}/{total}: {graded['scores']['solution']}\n{graded['proc'].stdout}"


def test_blank_release_gets_zero(graded):
    got, total = points(graded["scores"], "blank")
    assert total > 0 and got == 0, graded["scores"]["blank"]


def test_each_classic_mistake_costs_exactly_its_own_task(graded):
    for student, expected in graded["expect_failing"].items():
        if student == "hog":
            continue
        assert failed(graded["scores"], student) == expected, f"{student}: {graded['scores'][student]}"


def test_valid_alternative_implementations_get_full_marks(graded):
    got, total = points(graded["scores"], "alternatives")
    assert got == total, graded["scores"]["alternatives"]


def test_attacks_earn_nothing_and_change_nothing(graded):
    scores = graded["scores"]
    for student in ("thief", "anything"):  # their honest code is the blank release
        assert student in scores and points(scores, student)[0] == 0, f"{student}: {scores.get(student)}"
    assert "stole 0 cells" in autograded_output(graded["course"], "thief", graded["aid"])
    # Nothing outside the grader's own outputs changed: no submission, no source, no file planted.
    assert not graded["changed"], f"files changed by grading: {sorted(graded['changed'])}"
    assert not graded["repo_changed"]
    assert graded["connections"] == 0, "a submission reached a server on the grading machine's loopback"
    assert not graded["leftovers"], f"processes of a sandbox user outlived grading: {graded['leftovers']}"


def test_exhausting_the_machine_costs_only_the_attacked_tasks(graded):
    # endless loop, 30 GB and a fork bomb fail their tasks; 100 MB of output, a network
    # connection and a disk fill fail quietly inside the sandbox, so those tasks still pass
    assert failed(graded["scores"], "hog") == graded["expect_failing"]["hog"], graded["scores"]["hog"]
    text = autograded_output(graded["course"], "hog", graded["aid"])
    assert "ran for more than 5 s" in text and "more bytes of output not shown" in text
    assert len(text) < 200_000


def test_broken_submissions_do_not_stop_the_run(graded):
    aid, course, subs, proc, scores = graded["aid"], graded["course"], graded["subs"], graded["proc"], graded["scores"]
    for student, nb in subs.items():  # every notebook was graded, whatever the others did
        if isinstance(nb, nbformat.NotebookNode):
            assert student in scores, f"{student} was not graded\n{proc.stdout}"
    if aid == "00_bag_of_words":
        assert scores["syntax_error"]["test_tokenize"][0] == 0 and scores["syntax_error"]["test_accuracy"][0] == 2, scores["syntax_error"]
        # Malformed JSON is reported and scores nothing; a missing notebook is reported.
        assert "FAILED malformed: nbformat.reader.NotJSONError" in proc.stdout and points(scores, "malformed")[0] == 0, proc.stdout
        assert "FAILED missing: No notebooks were matched" in proc.stdout and "missing" not in scores, proc.stdout
        assert proc.returncode == 1  # as nbgrader does, the run reports that some submissions failed
        # Edited and deleted test cells are put back from the gradebook and scored.
        for student in ("edited_test", "deleted_test"):
            got, total = points(scores, student)
            assert got == total, f"{student}: {scores[student]}"
        restored = nbformat.read(course / "autograded" / "edited_test" / aid / ASSIGNMENTS[aid], as_version=4)
        cell = next(c for c in restored.cells if grade_id(c) == "test_lexicon_score")
        assert "no tests here" not in cell.source and "BEGIN HIDDEN TESTS" in cell.source
    else:
        got, total = points(scores, "import_error")
        assert failed(scores, "import_error") == {S.tasks(aid)[0][2]}, scores["import_error"]


@pytest.fixture(scope="module")
def feedback(graded):
    """nbgrader's feedback for every graded student, generated once per assignment."""
    run("nbgrader", "generate_feedback", graded["aid"], cwd=graded["course"])
    return graded["course"] / "feedback"


def test_feedback_names_the_mistake_without_grading_internals(graded, feedback):
    aid, course = graded["aid"], graded["course"]
    html = (feedback / "mistakes_a" / aid / ASSIGNMENTS[aid].replace(".ipynb", ".html")).read_text()
    assert "lmkit/grader" not in html and "site-packages" not in html and str(course) not in html
    assert "white-space: pre-wrap" in html  # long messages wrap
    messages = autograded_output(course, "mistakes_a", aid)
    named = {
        "03_attention": "Your result matches a common mistake: the scores are not divided by sqrt(d).",
        "02_recurrent_networks": "rows are ordered i, f, g, o",
    }
    if aid in named:
        assert named[aid] in messages, messages


def test_feedback_export_and_determinism(graded, feedback):
    aid, course, scores = graded["aid"], graded["course"], graded["scores"]
    page = feedback / "solution" / aid / ASSIGNMENTS[aid].replace(".ipynb", ".html")
    assert page.exists() and "Score:" in page.read_text()
    run("nbgrader", "export", "--to", str(course / "grades.csv"), cwd=course)
    rows = list(csv.DictReader(open(course / "grades.csv")))
    by_student = {r["student_id"]: r for r in rows if r["assignment"] == aid}
    assert float(by_student["solution"]["score"]) == points(scores, "solution")[0]
    # The same notebook, graded twice in one run, each time in a process of its own, gets the same scores.
    assert scores["mistakes_a_again"] == scores["mistakes_a"]
