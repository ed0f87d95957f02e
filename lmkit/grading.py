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
from typing import Any, Callable, Iterator, Mapping, MutableMapping

import numpy as np
import torch


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


def assert_close(
    actual: Any,
    expected: Any,
    *,
    name: str = "result",
    rtol: float = 1e-5,
    atol: float = 1e-6,
    check_dtype: bool = False,
    hint: str = "",
) -> None:
    """Check that ``actual`` matches ``expected`` (tensors, arrays, lists or numbers).

    Checks, in order: the type (a tensor where a tensor is expected), the shape,
    the dtype (if ``check_dtype``), then the values within ``atol + rtol * |expected|``.
    The message names the first differing index and both values; ``hint``
    (a likely cause) is appended.
    """
    suffix = f"\nHint: {hint}" if hint else ""
    if isinstance(expected, torch.Tensor) and not isinstance(actual, torch.Tensor):
        raise AssertionError(f"{name} should be a torch.Tensor, got {type(actual).__name__}{suffix}")
    a, e = _as_tensor(actual, name), _as_tensor(expected, "expected")
    if a.shape != e.shape:
        raise AssertionError(f"{name} has shape {tuple(a.shape)}, expected {tuple(e.shape)}{suffix}")
    if check_dtype and a.dtype != e.dtype:
        raise AssertionError(f"{name} has dtype {a.dtype}, expected {e.dtype}{suffix}")
    if a.dtype == torch.bool or e.dtype == torch.bool:
        bad = a.bool() != e.bool()
    else:
        a64, e64 = a.double(), e.double()
        bad = ~torch.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        where = f"{name}[{', '.join(map(str, idx))}]" if idx else name
        detail = f"{where} = {a[idx].item()!r}, expected {e[idx].item()!r}"
        n_bad = int(bad.sum())
        raise AssertionError(f"{detail} ({n_bad} of {bad.numel()} values differ){suffix}")


def assert_equal(actual: Any, expected: Any, *, name: str = "result", hint: str = "") -> None:
    """Exact equality for plain values (ints, strings, lists, dicts) with a readable message."""
    suffix = f"\nHint: {hint}" if hint else ""
    if actual == expected:
        return
    if isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple)):
        if len(actual) != len(expected):
            raise AssertionError(f"{name} has length {len(actual)}, expected {len(expected)}{suffix}")
        i = next((i for i, (x, y) in enumerate(zip(actual, expected)) if x != y), None)
        if i is None:  # same items in another container, e.g. a tuple where a list is expected
            raise AssertionError(f"{name} is a {type(actual).__name__}, expected a {type(expected).__name__}{suffix}")
        raise AssertionError(f"{name}[{i}] = {actual[i]!r}, expected {expected[i]!r}{suffix}")
    raise AssertionError(f"{name} = {actual!r:.200}, expected {expected!r:.200}{suffix}")


@contextlib.contextmanager
def use_reference(**helpers: Any) -> Iterator[None]:
    """Inside the block, the submission's functions see ``helpers`` instead of its own
    functions of those names: a later task is graded with the reference for the
    earlier ones it calls, so one mistake costs one task.

    A helper that is a module-level function (e.g. from lmkit) runs where the
    submission runs; one defined in a test cell stays with the grader and is called back.
    Outside the sandboxed grader this is a no-op: in a student's notebook their own
    helpers are used.
    """
    from lmkit.grader import session

    if session.current() is None:
        yield
        return
    with session.current().using(helpers):
        yield


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


@contextlib.contextmanager
def block_reference(*targets: str, namespace: MutableMapping[str, Any] | None = None) -> Iterator[None]:
    """Make the named functions raise ``ReferenceUsedError`` inside the block.

    ``targets`` are dotted paths such as ``"lmkit.tokenizers.merge"`` or
    ``"torch.nn.functional.one_hot"``. Names in ``namespace`` (pass
    ``globals()`` in a notebook) bound to the same objects are blocked too, so
    ``from lmkit.tokenizers import merge`` cannot sidestep the block.

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
