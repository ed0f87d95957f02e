"""Helpers for exercise tests: checks whose failure says what is wrong.

A failing check raises ``AssertionError`` with a message a student can act on:
which shape, dtype or value differs and what was expected. ``block_reference``
makes calling lmkit's (or torch's) own implementation of the graded component
fail, so delegating to it earns nothing.
"""

from __future__ import annotations

import contextlib
import importlib
import random
import sys
import types
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from typing import Any

import numpy as np
import torch

from lmkit.grader import wire


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    try:
        return torch.as_tensor(x)
    except Exception:
        raise AssertionError(f"{name} should be array-like, got {type(x).__name__}: {x!r:.80}") from None


def _fmt(x: Any) -> str:
    """A value at a precision a person reads: float32 noise is not shown."""
    if isinstance(x, float):
        return f"{x:.6g}"
    return repr(x)


def _differ(a: torch.Tensor, e: torch.Tensor, rtol: float, atol: float) -> torch.Tensor:
    """Elementwise: where ``a`` and ``e`` (same shape) differ beyond the tolerance."""
    if a.dtype == torch.bool or e.dtype == torch.bool:
        return a.bool() != e.bool()
    return ~torch.isclose(a.double(), e.double(), rtol=rtol, atol=atol, equal_nan=True)


def _matches(actual: torch.Tensor, candidate: Any, rtol: float, atol: float) -> bool:
    try:
        c = _as_tensor(candidate, "candidate")
    except AssertionError:
        return False
    return c.shape == actual.shape and not bool(_differ(actual, c, rtol, atol).any())


def _diagnosis(mistakes: Mapping[str, Any] | None, same: Callable[[Any], bool]) -> str:
    """The first named mistake whose output the submission reproduces, if any."""
    for mistake, output in (mistakes or {}).items():
        try:
            if same(output):
                return f"\nYour result matches a common mistake: {mistake}."
        except Exception:  # a candidate that cannot be compared tells nothing
            continue
    return ""


def assert_close(
    actual: Any,
    expected: Any,
    *,
    name: str = "result",
    rtol: float = 1e-5,
    atol: float = 1e-6,
    check_dtype: bool = False,
    hint: str = "",
    mistakes: Mapping[str, Any] | None = None,
) -> None:
    """Check that ``actual`` matches ``expected`` (tensors, arrays, lists or numbers).

    Checks, in order: the type (a tensor where a tensor is expected), the shape,
    the dtype (if ``check_dtype``), then the values within ``atol + rtol * |expected|``.
    The message names the first differing index and both values. ``mistakes``
    maps a description of a classic mistake to the output that mistake gives:
    when ``actual`` matches one, the message names it. Otherwise ``hint`` (a
    likely cause) is appended.
    """
    suffix = f"\nHint: {hint}" if hint else ""
    if isinstance(expected, torch.Tensor) and not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{name} should be a torch.Tensor, got {type(actual).__name__}{suffix}")
    a, e = _as_tensor(actual, name), _as_tensor(expected, "expected")
    if a.shape != e.shape:
        why = _diagnosis(mistakes, lambda m: _matches(a, m, rtol, atol))
        raise AssertionError(f"{name} has shape {tuple(a.shape)}, expected {tuple(e.shape)}{why or suffix}")
    if check_dtype and a.dtype != e.dtype:
        raise AssertionError(f"{name} has dtype {a.dtype}, expected {e.dtype}{suffix}")
    bad = _differ(a, e, rtol, atol)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        where = f" at index [{', '.join(map(str, idx))}]" if idx else ""
        got, want = a[idx].item(), e[idx].item()
        n_bad = int(bad.sum())
        why = _diagnosis(mistakes, lambda m: _matches(a, m, rtol, atol))
        raise AssertionError(
            f"{name}{where}: got {_fmt(got)}, expected {_fmt(want)} ({n_bad} of {bad.numel()} values differ){why or suffix}"
        )


def assert_equal(actual: Any, expected: Any, *, name: str = "result", hint: str = "", mistakes: Mapping[str, Any] | None = None) -> None:
    """Exact equality for plain values (ints, strings, lists, dicts) with a readable message.

    ``mistakes`` works as in :func:`assert_close`.
    """
    if actual == expected:
        return
    why = _diagnosis(mistakes, lambda m: actual == m)
    suffix = why or (f"\nHint: {hint}" if hint else "")
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            raise AssertionError(f"{name} has length {len(actual)}, expected {len(expected)}{suffix}")
        i = next((i for i, (x, y) in enumerate(zip(actual, expected)) if x != y), None)
        if i is None:  # same items in another container, e.g. a tuple where a list is expected
            raise AssertionError(f"{name} is a {type(actual).__name__}, expected a {type(expected).__name__}{suffix}")
        raise AssertionError(f"{name}: item {i} is {_fmt(actual[i])}, expected {_fmt(expected[i])}{suffix}")
    if isinstance(actual, dict) and isinstance(expected, dict):
        missing, extra = [k for k in expected if k not in actual], [k for k in actual if k not in expected]
        if missing or extra:
            raise AssertionError(f"{name} has keys {_short(extra)} that should not be there and lacks {_short(missing)}{suffix}")
        k = next(k for k in expected if actual[k] != expected[k])
        raise AssertionError(f"{name}[{k!r}] is {_fmt(actual[k])}, expected {_fmt(expected[k])}{suffix}")
    raise AssertionError(f"{name} is {_short(actual)}, expected {_short(expected)}{suffix}")


def _short(x: Any, n: int = 200) -> str:
    text = _fmt(x)
    return text if len(text) <= n else text[: n - 3] + "..."


def judge_side(obj: Any) -> Any:
    """Pass ``obj`` to the submission's function so that it stays with the grader: under
    the sandboxed grader the function gets a stand-in whose calls and attribute reads
    run here, so a test can record how the object was used (e.g. how many tokens a
    model was fed). Elsewhere ``obj`` itself."""
    from lmkit.grader import session

    return wire.JudgeSide(obj) if session.current() is not None else obj


def backward_sum(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``out = fn(*args, **kwargs)``, then ``out.sum().backward()``: the input tensors
    that require grad get their ``.grad``. Works on the submission's functions under
    the sandboxed grader too, where the backward pass runs beside the function."""
    from lmkit.grader.session import StudentFunction

    if isinstance(fn, StudentFunction):
        return fn.backward_sum(*args, **kwargs)
    out = fn(*args, **kwargs)
    out.sum().backward()
    return out


def use_reference_in_cell(**helpers: Any) -> None:
    """From here to the end of the current notebook cell, the submission's functions see
    ``helpers`` instead of its own functions of those names: a later task is graded
    with the reference for the earlier ones it calls, so one mistake costs one task.
    Put it in a hidden-tests block at the top of a test cell, so that the visible
    checks, too, run this way.

    A helper that is a module-level function (e.g. from lmkit) runs where the
    submission runs; one defined in a test cell stays with the grader and is called
    back. Outside the sandboxed grader this does nothing: in a student's own
    notebook their own helpers are used."""
    from lmkit.grader import session

    if session.current() is not None:
        session.current().cell_overrides.update(helpers)


_INHERITED = object()


class ReferenceUsedError(AssertionError):
    """Raised when graded code calls the reference implementation it should replace."""


def _resolve(target: str) -> tuple[Any, str]:
    """'pkg.mod.Class.attr' -> (owner object, attribute name)."""
    parts = target.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:-1]:
            owner = getattr(owner, attr)
        return owner, parts[-1]
    raise ValueError(f"cannot resolve {target!r}")


def _lmkit_bindings(objects: dict[int, Any]) -> list[tuple[Any, str, Any]]:
    """(module, name, object) for every attribute of a loaded lmkit module bound to one of
    ``objects`` (keyed by ``id``). A function that a package re-exports
    (``lmkit.tokenizers.merge_pair``) is also bound in the module that defines it
    (``lmkit.tokenizers.bpe.merge_pair``), and graded code could call it there.
    Python binds every imported submodule to its package, so a walk from lmkit finds
    them all (faster than going through the thousands of entries of ``sys.modules``)."""
    found, seen, todo = [], {"lmkit"}, [sys.modules["lmkit"]]
    while todo:
        module = todo.pop()
        for name, value in list(vars(module).items()):
            if id(value) in objects:
                found.append((module, name, value))
            elif isinstance(value, types.ModuleType) and value.__name__.startswith("lmkit.") and value.__name__ not in seen:
                seen.add(value.__name__)
                todo.append(value)
    return found


@contextlib.contextmanager
def block_reference(*targets: str, namespace: MutableMapping[str, Any] | None = None) -> Iterator[None]:
    """Make the named functions raise ``ReferenceUsedError`` inside the block.

    ``targets`` are dotted paths such as ``"lmkit.tokenizers.merge_pair"`` or
    ``"torch.nn.functional.one_hot"``. Every attribute of an lmkit module bound
    to the same object is blocked too (``lmkit.tokenizers.bpe.merge_pair``, where
    the function is defined), and so are names in ``namespace`` (pass ``globals()``
    in a notebook), so ``from lmkit.tokenizers import merge_pair`` cannot sidestep the block.

    Under the sandboxed grader (:mod:`lmkit.grader`) the block applies where the
    submission runs, to every call of its functions inside the ``with``.
    """
    from lmkit.grader import session

    if session.current() is not None:
        with session.current().blocking(targets):
            yield
        return
    # (owner, name, original); original is _INHERITED where a class only inherits the name
    saved: list[tuple[Any, str, Any]] = []

    def blocker(target: str) -> Callable[..., Any]:
        def blocked(*args: Any, **kwargs: Any) -> Any:
            raise ReferenceUsedError(f"your code calls {target}, the reference implementation; write this part yourself")

        return blocked

    try:
        originals = {}
        for target in targets:
            owner, attr = _resolve(target)
            # Save a class's own attribute raw (keeps staticmethod/classmethod wrappers).
            original = owner.__dict__.get(attr, _INHERITED) if isinstance(owner, type) else getattr(owner, attr)
            originals[target] = getattr(owner, attr)
            saved.append((owner, attr, original))
            setattr(owner, attr, blocker(target))
        target_of = {id(original): target for target, original in originals.items()}
        for module, name, original in _lmkit_bindings(target_of):
            saved.append((module, name, original))
            setattr(module, name, blocker(target_of[id(original)]))
        if namespace is not None:
            for key, value in list(namespace.items()):
                for target, original in originals.items():
                    if value is original:
                        saved.append((namespace, key, value))
                        namespace[key] = blocker(target)
        yield
    finally:
        for owner, attr, original in reversed(saved):
            if isinstance(owner, Mapping):
                owner[attr] = original  # type: ignore[index]
            elif original is _INHERITED:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
