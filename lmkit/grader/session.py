"""The grader's side: runs the instructor's test code and judges what the submission returns.

A :class:`Session` lives in the grading kernel, which executes only the
instructor's cells (setup and tests, restored from the gradebook). The
submission's cells run in a sandboxed worker process
(:mod:`lmkit.grader.worker`). Each graded function is bound here to a
:class:`StudentFunction`: calling it sends the arguments to the worker, runs the
student's function there, and brings back the result (and the new state of any
model or optimizer passed in). All checks then run here, with this process's
torch and this process's check helpers, which the submission cannot reach.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import os
import select
import shutil
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import torch

from lmkit.grader import sandbox as sbx
from lmkit.grader import wire

STARTUP_TIMEOUT = 120  # seconds for a worker to import torch on a busy machine; not the submission's time
OUTPUT_LIMIT = 10_000  # characters of a submission's printed output kept per cell or call
_active: Session | None = None
# Exceptions a submission may raise that a test can catch as themselves (e.g. `except ValueError`).
_PASS_THROUGH = {
    name
    for name in dir(builtins)
    if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), Exception) and not name.startswith("_")
}


def current() -> Session | None:
    """The session grading in this process, if any."""
    return _active


class StudentError(Exception):
    """An exception raised by the submission's code whose type the grader does not know."""


class WorkerFailed(Exception):
    """The submission's process ran out of time, was killed, or broke the protocol."""


class StudentFunction:
    """A function defined by the submission, callable from the tests."""

    def __init__(self, session: Session, name: str) -> None:
        self._session, self.__name__ = session, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.call(self.__name__, args, kwargs)

    def backward_sum(self, *args: Any, **kwargs: Any) -> Any:
        return self._session.call(self.__name__, args, kwargs, backward=True)

    def __repr__(self) -> str:
        return f"<your function {self.__name__}>"


class Session:
    """One submission's grading: its worker process, the stand-ins for its functions,
    and what the current test cell asks of calls (blocked references, reference helpers)."""

    def __init__(
        self, task_names: list[str], *, sandbox: bool = True, call_timeout: float = 25.0, limits: sbx.Limits | None = None
    ) -> None:
        if call_timeout <= 0:
            raise ValueError(f"call_timeout must be positive, got {call_timeout}")
        self.task_names = set(task_names)
        self.sandboxed = sandbox
        self.call_timeout = call_timeout
        self.limits = limits or sbx.Limits()
        if self.sandboxed:
            sbx.require()
        self.cells_ok: list[tuple[str, str]] = []  # replayed if the worker has to be restarted
        self.blocked: list[str] = []
        self.cell_overrides: dict[str, Any] = {}  # reset when the next cell starts
        self.namespace: dict[str, Any] | None = None
        self._calls = itertools.count()
        self._outbox = wire.Outbox()
        self._proc = None
        self._conn: Connection | None = None
        self._scratch: str | None = None

    # ---- life cycle ---------------------------------------------------------------

    @classmethod
    def start(cls, task_names: list[str], namespace: dict[str, Any], **kwargs: Any) -> Session:
        """Begin grading in this kernel: ``namespace`` is where the tests run (globals())."""
        global _active
        session = cls(task_names, **kwargs)
        session.namespace = namespace
        _install_kernel_hooks(session)
        _active = session
        return session

    def _spawn(self) -> None:
        parent, child = socket.socketpair()
        # A clean environment: none of the instructor's variables (tokens, paths) reach the submission.
        # One thread: the exercises' tensors are small, and the worker must not starve the grading kernel.
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
        env.update({k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")})  # settings some CPUs need
        cwd = "/"
        if not self.sandboxed:
            self._scratch = cwd = tempfile.mkdtemp(prefix="lmkit-worker-")
            env["HOME"] = cwd
        try:
            self._proc = sbx.popen(
                [sys.executable, "-m", "lmkit.grader.worker", str(child.fileno())],
                limits=self.limits,
                sandbox=self.sandboxed,
                pass_fds=[child.fileno()],
                env=env,
                cwd=cwd,
            )
        finally:
            child.close()
        os.set_blocking(self._proc.stdout.fileno(), False)
        self._conn = Connection(parent.detach())
        try:
            reply, _ = self._exchange(None, STARTUP_TIMEOUT)
        except WorkerFailed as err:
            raise WorkerFailed(f"the process for your code did not start: {err}") from None
        if reply.get("op") != "ready":
            self._kill()
            raise WorkerFailed("the process for your code did not start")

    def _kill(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, 9)  # the worker's whole session: it may have forked
            except (ProcessLookupError, PermissionError):
                pass
            self._proc.kill()
            self._proc.wait()
            self._proc.stdout.close()
        if self._conn is not None:
            self._conn.close()
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._proc = self._conn = self._scratch = None
        self._outbox = wire.Outbox()  # a new worker knows no handles and no values sent before

    def close(self) -> None:
        global _active
        self._kill()
        if _active is self:
            _active = None

    def _ensure_worker(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        if self._proc is not None:
            self._kill()
        self._spawn()
        for label, source in self.cells_ok:  # bring a restarted worker back to where it was
            reply, _ = self._exchange({"op": "cell", "source": source, "label": label}, self.call_timeout)
            if reply.get("error"):
                raise WorkerFailed(f"your code could not be restarted after the previous failure: cell {label} failed")

    # ---- talking to the worker ---------------------------------------------------

    def _resolve(self, handle: int) -> Any:
        try:
            return self._outbox.resolve(handle)
        except KeyError:
            raise WorkerFailed(f"your code referred to an unknown object ({handle})") from None

    def _exchange(self, message: dict | None, timeout: float) -> tuple[dict, str]:
        """Send a message (None: just wait); serve callbacks until the reply comes. Returns (reply, output)."""
        assert self._conn is not None and self._proc is not None
        if message is not None:
            self._conn.send_bytes(self._outbox.dumps(message))
        out = _Output()
        deadline = time.monotonic() + timeout
        pipe = self._proc.stdout.fileno()
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._kill()
                    raise WorkerFailed(f"your code ran for more than {timeout:.0f} s (an endless loop?) and was stopped")
                ready, _, _ = select.select([self._conn.fileno(), pipe], [], [], min(left, 1.0))
                if pipe in ready:
                    out.read(pipe)
                if self._conn.fileno() in ready:
                    try:
                        data = self._conn.recv_bytes(wire.MAX_MESSAGE)
                    except (EOFError, OSError):
                        out.read(pipe)
                        raise WorkerFailed(self._death_reason()) from None
                    try:
                        reply = wire.loads_untrusted(data, self._resolve)
                    except WorkerFailed:
                        raise
                    except Exception as exc:
                        self._kill()
                        raise WorkerFailed(f"your code sent back something the grader cannot read ({type(exc).__name__})") from None
                    if not isinstance(reply, dict) or "op" not in reply:
                        self._kill()
                        raise WorkerFailed("your code sent back something the grader cannot read")
                    if reply["op"] == "callback":
                        self._serve_callback(reply)
                        continue
                    out.read(pipe)
                    return reply, out.text()
        except KeyboardInterrupt:  # nbgrader's cell timeout interrupts the grader: stop the worker too
            self._kill()
            raise
        except WorkerFailed:
            if self._proc is not None and self._proc.poll() is not None:
                self._kill()
            print(out.text(), end="")
            raise

    def _death_reason(self) -> str:
        assert self._proc is not None
        try:
            code = self._proc.wait(timeout=5)
        except Exception:
            code = None
        self._kill()
        if code is not None and code < 0:
            sig = -code
            why = {9: " (out of memory or CPU time?)", 24: " (CPU time limit)", 25: " (file size limit)"}.get(sig, "")
            return f"your code's process was killed by signal {sig}{why}"
        return f"your code's process ended unexpectedly (exit status {code})"

    def _serve_callback(self, request: dict) -> None:
        try:
            target = self._resolve(request["handle"])
            attr = request["attr"]
            value = self._callback_value(target, attr, request)
            if isinstance(value, list):
                value = [v if wire.is_plain(v) else wire.JudgeSide(v) for v in value]
            elif not wire.is_plain(value):
                value = wire.JudgeSide(value)
            reply = {"op": "result", "value": value}
        except Exception as exc:
            reply = {
                "op": "error",
                "type": type(exc).__name__ if type(exc).__name__ in _PASS_THROUGH else "RuntimeError",
                "message": str(exc),
            }
        assert self._conn is not None
        self._conn.send_bytes(self._outbox.dumps(reply))

    @staticmethod
    def _callback_value(target: Any, attr: Any, request: dict) -> Any:
        with torch.no_grad():  # autograd cannot cross processes; what goes back is data
            if attr is None:
                return target(*request["args"], **request["kwargs"])
            if attr == "__list__":
                return list(target)
            if attr in ("__getitem__", "__len__"):
                return getattr(target, attr)(*request["args"])
            if isinstance(attr, str) and not attr.startswith("_"):
                return getattr(target, attr)
            raise AttributeError(f"{attr!r} is not available")

    # ---- what the notebook runs -------------------------------------------------

    def run_cell(self, source: str, label: str) -> None:
        """Run one of the submission's cells in the worker; bind the graded names it defines."""
        self._ensure_worker()
        reply, output = self._exchange({"op": "cell", "source": source, "label": label}, self.call_timeout)
        print(output, end="")
        names = [n for n in reply.get("names", []) if isinstance(n, str)]
        assert self.namespace is not None
        for name in self.task_names.intersection(names):
            self.namespace[name] = StudentFunction(self, name)
        if reply.get("error"):
            raise StudentError(f"this cell raised an error:\n{reply['error']}")
        self.cells_ok.append((label, source))

    def call(self, name: str, args: tuple, kwargs: dict, backward: bool = False) -> Any:
        """Call the submission's ``name``; with ``backward``, also backpropagate the sum of its
        output there and set ``.grad`` on the input tensors here."""
        self._ensure_worker()
        message = {
            "op": "call",
            "name": name,
            "args": args,
            "kwargs": kwargs,
            "seed": next(self._calls),
            "blocked": list(self.blocked),
            "overrides": dict(self.cell_overrides),
            "backward": backward,
            "grads": [
                {n: p.grad for n, p in v.named_parameters()} if isinstance(v, torch.nn.Module) else None for v in [*args, *kwargs.values()]
            ],
        }
        reply, output = self._exchange(message, self.call_timeout)
        if output:
            print(f"[output of your {name}]\n{output}", end="" if output.endswith("\n") else "\n")
        if reply["op"] == "raise":
            raise _rebuild_error(reply, name)
        if reply["op"] != "return":
            raise WorkerFailed("your code sent back something the grader cannot read")
        inputs = [*args, *kwargs.values()]
        _copy_back(inputs, reply.get("state"))
        if backward:
            grads = reply.get("grads")
            for x, g in zip(inputs, grads if isinstance(grads, list) else []):
                if isinstance(x, torch.Tensor) and x.requires_grad and isinstance(g, torch.Tensor) and g.shape == x.shape:
                    x.grad = g.to(x.dtype)
        return reply.get("value")

    @contextlib.contextmanager
    def blocking(self, targets: tuple[str, ...]) -> Iterator[None]:
        n = len(self.blocked)
        self.blocked.extend(targets)
        try:
            yield
        finally:
            del self.blocked[n:]


def _rebuild_error(reply: dict, name: str) -> Exception:
    kind, message = str(reply.get("type")), str(reply.get("message", ""))
    cls = getattr(builtins, kind) if kind in _PASS_THROUGH else None
    exc: Exception = cls(message) if cls is not None and kind != "AssertionError" else StudentError(f"{kind}: {message}")
    exc.student_traceback = f"your function {name} raised:\n{reply.get('traceback', '')}"  # type: ignore[attr-defined]
    return exc


def _copy_back(values: list[Any], states: Any) -> None:
    """Models (parameters, buffers, gradients) and optimizers the student's function
    changed: load their new state here, as if the function had run in this process."""
    if not isinstance(states, list) or len(states) != len(values):
        return
    for value, state in zip(values, states):
        if isinstance(value, (torch.nn.Module, torch.optim.Optimizer)) and isinstance(state, dict):
            try:
                value.load_state_dict(state["state"])
                if isinstance(value, torch.nn.Module):
                    grads = state["grads"]
                    for name, p in value.named_parameters():
                        g = grads.get(name)
                        if g is not None and (not isinstance(g, torch.Tensor) or g.shape != p.shape):
                            raise ValueError(f"the gradient of {name} has the wrong shape")
                        p.grad = None if g is None else g.to(p.dtype)
            except Exception as exc:
                raise StudentError(
                    f"the {type(value).__name__} your function returned to the grader does not fit the one it was given: {str(exc)[:300]}"
                ) from None


class _Output:
    """A submission's printed output, capped: the rest is counted, not kept."""

    def __init__(self) -> None:
        self.kept = bytearray()
        self.dropped = 0

    def read(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except (BlockingIOError, OSError):
                return
            if not chunk:
                return
            room = OUTPUT_LIMIT - len(self.kept)
            self.kept += chunk[: max(room, 0)]
            self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self) -> str:
        text = self.kept.decode("utf-8", errors="replace")
        if self.dropped:
            text += f"\n[... {self.dropped:,} more bytes of output not shown]\n"
        return text


# ---- tracebacks a student can read -------------------------------------------------


def _clean_traceback(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """Show the test's own line(s), the message, and the student's traceback; no grading internals."""
    lines = [f"In the test, line {f.lineno}: {f.line}" for f in traceback.extract_tb(tb) if _is_cell(f.filename) and f.line]
    head = "".join(traceback.format_exception_only(etype, value)).rstrip()
    if isinstance(value, KeyboardInterrupt):
        head = "the grader stopped this cell: it ran longer than the time limit"
    stb = lines[-1:] + [head]
    student = getattr(value, "student_traceback", None)
    if student:
        stb.append(student.rstrip())
    shell._showtraceback(etype, value, stb)  # a custom handler must publish the error itself
    return stb


def _is_cell(filename: str) -> bool:
    # ipykernel compiles cells to files named after a hash, in a per-kernel temporary folder.
    return "ipykernel_" in filename or filename.startswith("<ipython-input")


def _install_kernel_hooks(session: Session) -> None:
    """Readable tracebacks; reference helpers declared for one cell end with it."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None:
        shell.set_custom_exc((Exception,), _clean_traceback)
        shell.events.register("pre_run_cell", lambda *_: session.cell_overrides.clear())
