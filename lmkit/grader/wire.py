"""The wire between the grader (trusted) and the sandboxed worker (untrusted).

Judge -> worker messages are pickled: the worker trusts the judge. Objects that
must stay on the judge's side (functions and objects defined in a test cell, objects wrapped
by :func:`lmkit.grading.judge_side`) travel as handles, and the worker calls them back.

Worker -> judge messages are untrusted. They are first reduced to plain data
(:func:`encode`: numbers, strings, tensors and containers of them, handles as
tagged dicts) and read back with ``torch.load(weights_only=True)``, which builds
nothing but those types: a submission cannot make the judge run its code.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

MAX_MESSAGE = 512 * 2**20  # bytes; a larger reply from a submission is an error, not a memory blow-up
_PLAIN = (type(None), bool, int, float, complex, str, bytes, torch.Size, torch.dtype, torch.device)


class JudgeSide:
    """Mark an argument to be kept on the judge's side: the worker gets a stub whose
    calls and attribute reads run here, so the grader sees every one of them."""

    def __init__(self, obj: Any) -> None:
        self.obj = obj


class Opaque:
    """What the judge sees of a value it cannot read back (an object of a student's class)."""

    def __init__(self, type_name: str, text: str) -> None:
        self.type_name, self.text = type_name, text

    def __repr__(self) -> str:
        return f"<{self.type_name} object: {self.text}>"


def is_plain(x: Any, depth: int = 0) -> bool:
    """Data that may be copied to the worker by value (no behaviour to observe)."""
    if depth > 20:
        return False
    if isinstance(x, (*_PLAIN, torch.Tensor, np.ndarray, np.generic)):
        return True
    if isinstance(x, (list, tuple, set, frozenset)):
        return all(is_plain(v, depth + 1) for v in x)
    if isinstance(x, dict):
        return all(is_plain(k, depth + 1) and is_plain(v, depth + 1) for k, v in x.items())
    return dataclasses.is_dataclass(x) and not isinstance(x, type)


# ---- judge -> worker -------------------------------------------------------------


def _stays_with_judge(obj: Any) -> bool:
    if isinstance(obj, JudgeSide):
        return True
    # Functions and objects of classes written in a test cell cannot be imported by the
    # worker: they stay here and are called back.
    if isinstance(obj, types.FunctionType):
        return obj.__module__ == "__main__" or "<locals>" in obj.__qualname__ or obj.__name__ == "<lambda>"
    return not isinstance(obj, type) and type(obj).__module__ == "__main__"


class Outbox:
    """The judge's end of the wire. Judge-side objects travel as numbered handles; a large
    immutable value (a lexicon, a corpus) is sent once and then referred to by its number."""

    LARGE = 256  # items or characters

    def __init__(self) -> None:
        self.handles: dict[int, Any] = {}
        self._sent: dict[int, tuple[Any, int]] = {}  # id -> (the object, kept alive so its id stays its own; key)

    def register(self, obj: Any) -> int:
        handle = len(self.handles) + 1
        self.handles[handle] = obj
        return handle

    def resolve(self, handle: int) -> Any:
        if handle not in self.handles:
            raise KeyError(f"unknown object {handle}")
        return self.handles[handle]

    def _persistent_id(self, obj: Any) -> Any:
        if _stays_with_judge(obj):
            return ("handle", self.register(obj.obj if isinstance(obj, JudgeSide) else obj))
        if type(obj) in (frozenset, str) and len(obj) >= self.LARGE:
            if id(obj) in self._sent:
                return ("cached", self._sent[id(obj)][1])
            self._sent[id(obj)] = (obj, len(self._sent))
            # pickled on its own (a nested pickle would call back here and find it "sent")
            return ("store", len(self._sent) - 1, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        return None

    def dumps(self, message: Any) -> bytes:
        pickler_cls = type("Pickler", (pickle.Pickler,), {"persistent_id": lambda _, obj: self._persistent_id(obj)})
        buf = io.BytesIO()
        pickler_cls(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(message)
        return buf.getvalue()


def loads_trusted(data: bytes, stub: Callable[[int], Any], cache: dict[int, Any]) -> Any:
    """The worker's side of :meth:`Outbox.dumps`: handles become stubs; values sent once are kept in ``cache``."""

    class Unpickler(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if pid[0] == "handle":
                return stub(pid[1])
            if pid[0] == "store":
                cache[pid[1]] = pickle.loads(pid[2])
            return cache[pid[1]]

    return Unpickler(io.BytesIO(data)).load()


# ---- worker -> judge ------------------------------------------------------------


def encode(x: Any, handle_of: Callable[[Any], int | None], depth: int = 0) -> Any:
    """Reduce a value to what ``torch.load(weights_only=True)`` can read."""
    if depth > 50:
        return {"__opaque__": "deeply nested value", "text": "nested more than 50 levels"}
    h = handle_of(x)
    if h is not None:
        return {"__handle__": h}
    if type(x) in _PLAIN:
        return x
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().as_subclass(torch.Tensor).clone()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            return {"__ndarray_list__": encode(x.tolist(), handle_of, depth + 1)}
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(x))}
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (list, tuple)):  # subclasses (namedtuples, torch.return_types) keep their values only
        items = [encode(v, handle_of, depth + 1) for v in x]
        return items if isinstance(x, list) else tuple(items)
    if isinstance(x, (set, frozenset)):
        return {"__set__": [encode(v, handle_of, depth + 1) for v in x]}
    if isinstance(x, dict):
        return {"__dict__": [(encode(k, handle_of, depth + 1), encode(v, handle_of, depth + 1)) for k, v in x.items()]}
    if isinstance(x, (bool, int, float, str)):  # a subclass: keep the value, not the behaviour
        return {bool: bool, int: int, float: float, str: str}[next(t for t in (bool, int, float, str) if isinstance(x, t))](x)
    try:
        text = repr(x)[:200]
    except Exception:
        text = "(its repr failed)"
    return {"__opaque__": type(x).__qualname__, "text": text}


def dumps_untrusted(message: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(message, buf)
    return buf.getvalue()


def loads_untrusted(data: bytes, resolve: Callable[[int], Any]) -> Any:
    """Read a worker message safely, then undo :func:`encode`'s tags."""
    raw = torch.load(io.BytesIO(data), weights_only=True)
    return _decode(raw, resolve, 0)


def _decode(x: Any, resolve: Callable[[int], Any], depth: int) -> Any:
    if depth > 60:
        raise ValueError("message nested too deeply")
    if isinstance(x, list):
        return [_decode(v, resolve, depth + 1) for v in x]
    if isinstance(x, tuple):
        return tuple(_decode(v, resolve, depth + 1) for v in x)
    if isinstance(x, dict):
        if len(x) == 1:
            ((tag, value),) = x.items()
            if tag == "__handle__" and isinstance(value, int):
                return resolve(value)
            if tag == "__ndarray__" and isinstance(value, torch.Tensor):
                return value.numpy()
            if tag == "__ndarray_list__":
                return np.array(_decode(value, resolve, depth + 1), dtype=object)
            if tag == "__set__" and isinstance(value, list):
                return set(_decode(value, resolve, depth + 1))
            if tag == "__dict__" and isinstance(value, list):
                return {_decode(k, resolve, depth + 1): _decode(v, resolve, depth + 1) for k, v in value}
        if set(x) == {"__opaque__", "text"}:
            return Opaque(str(x["__opaque__"]), str(x["text"]))
        return {k: _decode(v, resolve, depth + 1) for k, v in x.items()}
    return x
