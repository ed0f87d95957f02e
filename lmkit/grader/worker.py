"""The sandboxed side of grading: runs a submission's cells and calls its functions.

Started by :class:`lmkit.grader.session.Session` as ``python -m lmkit.grader.worker FD``
inside the sandbox. It only ever *returns values*: whether they are right is
decided by the grader, in another process.
"""

from __future__ import annotations

import builtins
import contextlib
import linecache
import random
import sys
import traceback
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from lmkit.grader import wire
from lmkit.grading import block_reference

conn: Connection


class Stub:
    """Stands for an object that stays with the grader: calls and reads go back to it."""

    __slots__ = ("_handle",)

    def __init__(self, handle: int) -> None:
        object.__setattr__(self, "_handle", handle)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return _callback(self, None, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _callback(self, name, None, None)

    def __getitem__(self, key: Any) -> Any:
        return _callback(self, "__getitem__", (key,), {})

    def __len__(self) -> int:
        return _callback(self, "__len__", (), {})

    def __iter__(self) -> Any:
        return iter(_callback(self, "__list__", (), {}))

    def __repr__(self) -> str:
        return f"<grader object {self._handle}>"


def _handle_of(x: Any) -> int | None:
    return object.__getattribute__(x, "_handle") if type(x) is Stub else None


def _send(message: dict) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    conn.send_bytes(wire.dumps_untrusted(wire.encode(message, _handle_of)))


_received: dict[int, Any] = {}  # large values the grader sends once


def _receive() -> dict:
    return wire.loads_trusted(conn.recv_bytes(), Stub, _received)


def _callback(stub: Stub, attr: str | None, args: Any, kwargs: Any) -> Any:
    _send({"op": "callback", "handle": _handle_of(stub), "attr": attr, "args": args, "kwargs": kwargs})
    reply = _receive()
    if reply["op"] == "error":
        raise _builtin_error(reply["type"])(reply["message"])
    return reply["value"]


def _builtin_error(name: str) -> type[BaseException]:
    err = getattr(builtins, name, None)
    return err if isinstance(err, type) and issubclass(err, Exception) else RuntimeError


def _student_traceback(exc: BaseException) -> str:
    """The traceback through the student's cells only (no grading frames)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    lines = traceback.format_list(frames) if frames else []
    return "".join(lines) + "".join(traceback.format_exception_only(type(exc), exc))


def _error(exc: BaseException) -> dict:
    try:
        message = str(exc)
    except Exception:
        message = "(the exception's message could not be read)"
    return {"op": "raise", "type": type(exc).__name__, "message": message[:4000], "traceback": _student_traceback(exc)[:8000]}


def _states(values: list[Any]) -> list[Any]:
    """Post-call state of the modules (parameters, buffers and gradients) and optimizers
    passed in: the grader copies it back into its own objects."""
    out: list[Any] = []
    for v in values:
        if isinstance(v, torch.nn.Module):
            out.append({"state": v.state_dict(), "grads": {n: p.grad for n, p in v.named_parameters()}})
        elif isinstance(v, torch.optim.Optimizer):
            out.append({"state": v.state_dict()})
        else:
            out.append(None)
    return out


def _set_grads(values: list[Any], grads: list[Any]) -> None:
    """Gradients are not pickled with a module: put the grader's back (they may accumulate)."""
    for v, g in zip(values, grads):
        if isinstance(v, torch.nn.Module) and g:
            for name, p in v.named_parameters():
                p.grad = g.get(name)


def _grads_of_sum(value: Any, inputs: list[Any]) -> list[Any]:
    """Backpropagate value.sum() and return the gradient of each input tensor that wants one."""
    wants = [isinstance(v, torch.Tensor) and v.requires_grad for v in inputs]
    try:
        value.sum().backward()
    except Exception:  # no graph back to the inputs: the grader sees no gradient
        return [None] * len(inputs)
    return [v.grad if w else None for v, w in zip(inputs, wants)]


@contextlib.contextmanager
def _overridden(ns: dict, helpers: dict) -> Iterator[None]:
    saved = {name: ns.get(name, _MISSING) for name in helpers}
    ns.update(helpers)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is _MISSING:
                ns.pop(name, None)
            else:
                ns[name] = old


_MISSING = object()


def main() -> None:
    global conn
    conn = Connection(int(sys.argv[1]))
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    ns = shell.user_ns
    _send({"op": "ready"})  # start-up (imports) is not the submission's time
    while True:
        try:
            msg = _receive()
        except EOFError:
            return
        op = msg["op"]
        if op == "cell":
            filename = f"<cell {msg['label']}>"
            try:
                source = shell.transform_cell(msg["source"])
                linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
                exec(compile(source, filename, "exec"), ns)
                reply: dict = {"op": "done", "error": None}
            except BaseException as exc:  # noqa: BLE001 - a student's SystemExit is an error, not an exit
                reply = {"op": "done", "error": _student_traceback(exc)[:8000]}
            reply["names"] = sorted(k for k, v in list(ns.items()) if isinstance(k, str) and callable(v))
            _send(reply)
        elif op == "call":
            # each call starts from a known random state: a grade never depends on what ran before
            seed = msg["seed"]
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            try:
                _set_grads([*msg["args"], *msg["kwargs"].values()], msg["grads"])
                fn = ns[msg["name"]]
                # Block first, then put the reference helpers in: a helper may be the very lmkit
                # function that is blocked for the submission's own use.
                with block_reference(*msg["blocked"], namespace=ns), _overridden(ns, msg["overrides"]):
                    value = fn(*msg["args"], **msg["kwargs"])
                inputs = [*msg["args"], *msg["kwargs"].values()]
                reply = {"op": "return", "value": value, "state": _states(inputs)}
                if msg.get("backward"):
                    reply["grads"] = _grads_of_sum(value, inputs)
            except BaseException as exc:  # noqa: BLE001
                reply = _error(exc)
            _send(reply)


if __name__ == "__main__":
    main()
