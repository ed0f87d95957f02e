"""lmkit.grader without nbgrader: the wire, the sandbox, and a grading session."""

from __future__ import annotations

import io
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from lmkit.grader import sandbox, wire
from lmkit.grader.session import Session, StudentError, StudentFunction, WorkerFailed
from lmkit.grading import assert_close, backward_sum, block_reference, judge_side, use_reference_in_cell

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (apt-get install bubblewrap)")


# ---- the wire ---------------------------------------------------------------------------------


def roundtrip(value):
    return wire.loads_untrusted(wire.dumps_untrusted(wire.encode(value, lambda x: None)), lambda h: None)


def test_values_come_back_as_plain_data():
    value = {"t": torch.arange(3.0), "a": np.array([1, 2]), "s": {1, 2}, "k": {(1, 2): [3, "x", None, 2.5]}, "n": np.float64(0.5)}
    back = roundtrip(value)
    assert torch.equal(back["t"], value["t"]) and np.array_equal(back["a"], value["a"])
    assert back["s"] == {1, 2} and back["k"] == {(1, 2): [3, "x", None, 2.5]} and type(back["n"]) is float


def test_objects_of_unknown_classes_come_back_opaque():
    class AlwaysEqual:
        def __eq__(self, other):
            return True

    class Sneaky(int):
        def __eq__(self, other):
            return True

    back = roundtrip([AlwaysEqual(), Sneaky(3)])
    assert isinstance(back[0], wire.Opaque) and back[0] != 1
    assert type(back[1]) is int and back[1] != 4


def test_the_grader_never_unpickles_code_from_a_submission():
    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    buf = io.BytesIO()
    pickle.dump({"op": "return", "value": Exploit()}, buf)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported|global"):
        wire.loads_untrusted(buf.getvalue(), lambda h: None)


# ---- the sandbox ---------------------------------------------------------------------------------


def test_limits_reject_bad_values():
    with pytest.raises(ValueError, match="memory_bytes"):
        sandbox.Limits(memory_bytes=0)


def test_a_missing_bwrap_is_refused_with_what_to_install(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        Session(["f"], sandbox=True)


# ---- a session ---------------------------------------------------------------------------------


@pytest.fixture(params=[pytest.param(True, marks=needs_bwrap, id="sandboxed"), pytest.param(False, id="unsandboxed")])
def session(request):
    s = Session(
        ["f", "g", "mutate", "loop", "helper", "use_helper", "leak"], sandbox=request.param, call_timeout=3
    )  # start-up does not count
    s.namespace = {}
    yield s
    s.close()


def test_functions_run_in_the_worker_and_values_come_back(session):
    session.run_cell("import torch\ndef f(x, n=1):\n    return x * n\ndef not_graded():\n    pass", "1")
    f = session.namespace["f"]
    assert isinstance(f, StudentFunction) and "not_graded" not in session.namespace
    assert_close(f(torch.ones(2), n=3), torch.full((2,), 3.0))
    assert f([1], n=2) == [1, 1]


def test_a_submission_cannot_reach_the_graders_process(session):
    session.run_cell(
        "import builtins, torch\nbuiltins.abs = lambda x: 0\ntorch.allclose = lambda *a, **k: True\ndef f():\n    return 1", "1"
    )
    assert session.namespace["f"]() == 1
    assert abs(-2) == 2 and not torch.allclose(torch.zeros(1), torch.ones(1))


def test_errors_keep_their_type_and_the_students_traceback(session):
    session.run_cell("def f(s):\n    raise ValueError(f'unknown character {s!r}')\ndef g():\n    raise KeyboardInterrupt", "7")
    with pytest.raises(ValueError, match="unknown character 'x'") as info:
        session.namespace["f"]("x")
    assert "<cell 7>" in info.value.student_traceback
    with pytest.raises(StudentError, match="KeyboardInterrupt"):
        session.namespace["g"]()
    with pytest.raises(StudentError, match="NameError"):
        session.run_cell("undefined_name", "8")


def test_an_endless_loop_is_stopped_and_the_worker_restarted(session):
    session.run_cell("def loop():\n    while True:\n        pass\ndef f():\n    return 42", "1")
    with pytest.raises(WorkerFailed, match="more than 3 s"):
        session.namespace["loop"]()
    assert session.namespace["f"]() == 42  # a fresh worker, with the earlier cells replayed


def test_a_large_argument_is_sent_once_and_again_to_a_new_worker(session):
    session.run_cell("def f(words, w):\n    return w in words\ndef loop():\n    while True:\n        pass", "1")
    words = frozenset(f"w{i}" for i in range(1000))
    outbox = wire.Outbox()
    first = len(outbox.dumps(("call", words)))
    assert len(outbox.dumps(("call", words))) < first / 10  # the second time, a reference
    assert session.namespace["f"](words, "w7") and not session.namespace["f"](words, "x")
    with pytest.raises(WorkerFailed):
        session.namespace["loop"]()
    assert session.namespace["f"](words, "w999")  # the restarted worker is sent the value again


def test_models_and_optimizers_passed_in_are_copied_back(session):
    session.run_cell("import torch\ndef mutate(model, opt):\n    model(torch.ones(1, 2)).sum().backward()\n    opt.step()\n", "1")
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = model.weight.detach().clone()
    session.namespace["mutate"](model, opt)
    assert_close(model.weight, before - 1.0)  # d(sum)/dW = input = 1, one SGD step of size 1
    # gradients stay, as in one process: without zero_grad they accumulate over calls
    assert_close(model.weight.grad, torch.ones(1, 2))
    session.namespace["mutate"](model, opt)
    assert_close(model.weight.grad, torch.full((1, 2), 2.0))
    assert_close(model.weight, before - 3.0)


def test_gradients_come_back_with_backward_sum(session):
    session.run_cell("def f(w):\n    return w * 3", "1")
    w = torch.ones(4, requires_grad=True)
    backward_sum(session.namespace["f"], w)
    assert_close(w.grad, torch.full((4,), 3.0))


def test_judge_side_objects_are_called_back_and_see_every_call(session):
    session.run_cell("def f(model, x):\n    return [model(x), model.scale]", "1")

    class Recorder:
        scale = 2.0

        def __init__(self):
            self.calls = []

        def __call__(self, x):
            self.calls.append(tuple(x.shape))
            return x * self.scale

    rec = Recorder()
    from lmkit.grader import session as session_module

    session_module._active = session
    try:
        out, scale = session.namespace["f"](judge_side(rec), torch.ones(3))
    finally:
        session_module._active = None
    assert rec.calls == [(3,)] and scale == 2.0 and torch.equal(out, torch.full((3,), 2.0))


def test_reference_helpers_and_blocks_apply_to_calls(session):
    session.run_cell(
        "import lmkit.baselines\ndef helper(x):\n    return 'mine'\ndef use_helper(x):\n    return helper(x)\n"
        "def leak(x):\n    return lmkit.baselines.accuracy([1], [1])",
        "1",
    )
    from lmkit.grader import session as session_module

    session_module._active = session
    try:
        use_reference_in_cell(helper=lambda x: f"reference {x}")  # a test-cell function: called back
        assert session.namespace["use_helper"](1) == "reference 1"
        with block_reference("lmkit.baselines.accuracy"):
            with pytest.raises(StudentError, match="reference implementation"):
                session.namespace["leak"](0)
        assert session.namespace["leak"](0) == 1.0
    finally:
        session_module._active = None
    session.cell_overrides.clear()
    assert session.namespace["use_helper"](1) == "mine"


def test_blocks_reach_the_module_that_defines_a_reexported_function(session):
    # The grader blocks "lmkit.tokenizers.merge_pair"; the submission calls the same
    # function where it is defined, lmkit.tokenizers.bpe.
    session.run_cell("import lmkit.tokenizers.bpe\ndef leak(x):\n    return lmkit.tokenizers.bpe.merge_pair([1, 2], (1, 2), x)", "1")
    from lmkit.grader import session as session_module

    session_module._active = session
    try:
        with block_reference("lmkit.tokenizers.merge_pair"):
            with pytest.raises(StudentError, match="calls lmkit.tokenizers.merge_pair, the reference implementation"):
                session.namespace["leak"](3)
        assert session.namespace["leak"](3) == [3]
    finally:
        session_module._active = None


@needs_bwrap
def test_the_sandbox_hides_the_course_and_the_network():
    s = Session(["probe"], sandbox=True, call_timeout=20)
    s.namespace = {}
    here = os.path.dirname(os.path.abspath(__file__))
    s.run_cell(
        "import os, socket\n"
        "def probe(path):\n"
        "    out = {'uid': os.getuid(), 'sees_tests': os.path.exists(path)}\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', 22), timeout=1)\n"
        "        out['net'] = 'connected'\n"
        "    except OSError as e:\n"
        "        out['net'] = type(e).__name__\n"
        "    try:\n"
        "        open('/tmp/big', 'wb').write(b'0' * 2**30)\n"
        "        out['disk'] = 'wrote 1 GiB'\n"
        "    except OSError as e:\n"
        "        out['disk'] = type(e).__name__\n"
        "    return out",
        "1",
    )
    try:
        out = s.namespace["probe"](here)
    finally:
        s.close()
    assert out["sees_tests"] is False and out["net"] != "connected" and out["disk"] != "wrote 1 GiB"
    if os.geteuid() == 0:
        assert out["uid"] in sandbox.SANDBOX_UIDS
