"""Tests for lmkit.grading: the helpers exercise tests use to give actionable failures."""

from __future__ import annotations

import random
import re
import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import lmkit.tokenizers
import lmkit.tokenizers.bpe
from lmkit.grading import (
    ReferenceUsedError,
    assert_close,
    assert_equal,
    block_reference,
    seed_everything,
)
from lmkit.tokenizers import BPETokenizer, merge_pair

# --- assert_close ----------------------------------------------------------------------


def test_assert_close_passes_within_tolerance():
    expected = torch.tensor([1.0, 2.0, 3.0])
    assert_close(expected + 1e-7, expected)
    assert_close(expected * (1 + 1e-3), expected, rtol=1e-2)
    # Lists, NumPy arrays and numbers are accepted where no tensor is required.
    assert_close([1.0, 2.0], [1.0, 2.0 + 1e-9])
    assert_close(np.array([1.0, 2.0]), [1.0, 2.0])
    assert_close(3.0, 3.0)
    # NaN where NaN is expected is a match, not a difference.
    assert_close(torch.tensor([float("nan"), 1.0]), torch.tensor([float("nan"), 1.0]))


def test_assert_close_fails_outside_tolerance():
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0, 2.1]), torch.tensor([1.0, 2.0]))
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0]))


def test_assert_close_names_both_shapes():
    with pytest.raises(AssertionError) as info:
        assert_close(torch.zeros(2, 3), torch.zeros(3, 2), name="logits")
    message = str(info.value)
    assert "logits" in message
    assert "(2, 3)" in message and "(3, 2)" in message
    # Actual first, expected second: the student must know which one is theirs.
    assert message.index("(2, 3)") < message.index("(3, 2)")


def test_assert_close_names_first_differing_index_and_both_values():
    expected = torch.zeros(2, 3)
    actual = expected.clone()
    actual[1, 2] = 5.0
    actual[1, 0] = 7.0  # the first difference in row-major order is [1, 0]
    with pytest.raises(AssertionError) as info:
        assert_close(actual, expected, name="out")
    message = str(info.value)
    assert "out at index [1, 0]: got 7, expected 0" in message
    assert "2 of 6" in message  # how many values differ


def test_assert_close_wants_a_tensor_where_a_tensor_is_expected():
    with pytest.raises(AssertionError, match="should be a torch.Tensor, got list"):
        assert_close([1.0, 2.0], torch.tensor([1.0, 2.0]))


def test_assert_close_rejects_non_array_like():
    with pytest.raises(AssertionError, match="array-like"):
        assert_close("not numbers", [1.0])


def test_assert_close_checks_dtype_only_when_asked():
    actual = torch.tensor([1, 2], dtype=torch.int32)
    expected = torch.tensor([1, 2], dtype=torch.int64)
    assert_close(actual, expected)  # values agree: fine by default
    with pytest.raises(AssertionError, match=r"dtype torch\.int32, expected torch\.int64"):
        assert_close(actual, expected, check_dtype=True)


def test_assert_close_on_bool_tensors():
    mask = torch.tensor([[True, False], [False, True]])
    assert_close(mask.clone(), mask)
    wrong = mask.clone()
    wrong[0, 1] = True
    with pytest.raises(AssertionError) as info:
        assert_close(wrong, mask, name="mask")
    assert "mask at index [0, 1]: got True, expected False" in str(info.value)


def test_assert_close_shows_float32_at_readable_precision():
    with pytest.raises(AssertionError) as info:
        assert_close(torch.tensor([0.685]), torch.tensor([0.5]), name="w")
    assert "got 0.685, expected 0.5" in str(info.value)


def test_a_matched_mistake_is_named_instead_of_the_hint():
    expected = torch.tensor([0.6, 0.4])
    no_scale = torch.tensor([0.7, 0.3])
    with pytest.raises(AssertionError) as info:
        assert_close(no_scale.clone(), expected, hint="generic hint", mistakes={"scores are not divided by sqrt(d)": no_scale})
    assert "scores are not divided by sqrt(d)" in str(info.value) and "generic hint" not in str(info.value)
    with pytest.raises(AssertionError) as info:  # an unknown mistake falls back to the hint
        assert_close(torch.tensor([0.9, 0.1]), expected, hint="generic hint", mistakes={"no scale": no_scale})
    assert "generic hint" in str(info.value) and "no scale" not in str(info.value)
    with pytest.raises(AssertionError, match="sum instead of mean"):
        assert_equal(12, 3, mistakes={"sum instead of mean": 12})


def test_assert_equal_on_dicts_names_the_key():
    with pytest.raises(AssertionError, match=r"d\['b'\] is 3, expected 2"):
        assert_equal({"a": 1, "b": 3}, {"a": 1, "b": 2}, name="d")
    with pytest.raises(AssertionError, match=r"lacks \['b'\]"):
        assert_equal({"a": 1}, {"a": 1, "b": 2}, name="d")


def test_assert_close_appends_hint():
    with pytest.raises(AssertionError, match="Hint: did you transpose"):
        assert_close(torch.zeros(2, 3), torch.zeros(3, 2), hint="did you transpose?")


# --- assert_equal ----------------------------------------------------------------------


def test_assert_equal_passes_on_equal_values():
    assert_equal([1, 2, 3], [1, 2, 3])
    assert_equal({"a": 1}, {"a": 1})
    assert_equal("abc", "abc")


def test_assert_equal_list_names_first_differing_index():
    with pytest.raises(AssertionError) as info:
        assert_equal([1, 2, 3, 4], [1, 2, 9, 8], name="ids")
    assert str(info.value) == "ids: item 2 is 3, expected 9"


def test_assert_equal_list_length_mismatch():
    with pytest.raises(AssertionError, match="ids has length 2, expected 3"):
        assert_equal([1, 2], [1, 2, 3], name="ids")


def test_assert_equal_scalar_message():
    with pytest.raises(AssertionError, match="n is 3, expected 4"):
        assert_equal(3, 4, name="n")


def test_assert_equal_tuple_versus_list_is_an_assertion_not_a_crash():
    # A student returning a tuple where a list is expected: the elements all
    # agree, so the search for the first differing index finds none. The helper
    # must either accept it or fail with an AssertionError, never leak the
    # StopIteration of its internal next(...) (pytest would show an internal
    # error instead of a message the student can act on).
    try:
        assert_equal((1, 2), [1, 2], name="ids")
    except AssertionError:
        pass


# --- seed_everything ------------------------------------------------------------------


def _draw() -> tuple[float, float, list[float]]:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_makes_all_generators_reproducible():
    seed_everything(123)
    first = _draw()
    seed_everything(123)
    assert _draw() == first
    seed_everything(124)
    other = _draw()
    # Each of the three generators must change with the seed, not just one.
    assert all(a != b for a, b in zip(other, first))


# --- block_reference ------------------------------------------------------------------


def test_block_module_function_inside_block_only():
    with block_reference("lmkit.tokenizers.merge_pair"):
        with pytest.raises(ReferenceUsedError, match="lmkit.tokenizers.merge_pair"):
            lmkit.tokenizers.merge_pair([1, 2], (1, 2), 3)
    assert lmkit.tokenizers.merge_pair([1, 2], (1, 2), 3) == [3]


@pytest.mark.parametrize(
    ("target", "call"),
    [
        ("lmkit.tokenizers.merge_pair", lambda: lmkit.tokenizers.bpe.merge_pair([1, 2], (1, 2), 3)),
        ("lmkit.tokenizers.bpe.merge_pair", lambda: lmkit.tokenizers.merge_pair([1, 2], (1, 2), 3)),
    ],
)
def test_block_reaches_every_lmkit_module_that_binds_the_function(target, call):
    # lmkit.tokenizers re-exports merge_pair from lmkit.tokenizers.bpe: one function, two names.
    assert lmkit.tokenizers.merge_pair is lmkit.tokenizers.bpe.merge_pair
    with block_reference(target):
        with pytest.raises(ReferenceUsedError, match=re.escape(target)):
            call()
    assert call() == [3]
    assert lmkit.tokenizers.merge_pair is merge_pair and lmkit.tokenizers.bpe.merge_pair is merge_pair


def test_reference_used_error_is_an_assertion_error():
    # So graders that catch AssertionError report it as a failed check.
    assert issubclass(ReferenceUsedError, AssertionError)


def test_block_class_method():
    tok = BPETokenizer()
    with block_reference("lmkit.tokenizers.BPETokenizer.train"):
        with pytest.raises(ReferenceUsedError):
            tok.train("abab", vocab_size=257)
        with pytest.raises(ReferenceUsedError):
            BPETokenizer().train("abab", vocab_size=257)
        # Other methods of the class are untouched.
        assert tok.encode("ab") == [97, 98]
    assert tok.train("abab", vocab_size=257).merges == {(97, 98): 256}
    # The original function is back on the class, not a copy on the instance.
    assert "train" not in vars(tok)
    assert vars(BPETokenizer)["train"].__name__ == "train"


def test_block_torch_function():
    x = torch.tensor([0, 2])
    with block_reference("torch.nn.functional.one_hot"):
        with pytest.raises(ReferenceUsedError):
            torch.nn.functional.one_hot(x, 3)
        with pytest.raises(ReferenceUsedError):
            F.one_hot(x, 3)  # F is the same module object
    assert F.one_hot(x, 3).tolist() == [[1, 0, 0], [0, 0, 1]]


def test_block_is_undone_after_an_exception_in_the_block():
    with pytest.raises(KeyError):
        with block_reference("lmkit.tokenizers.merge_pair", "torch.nn.functional.one_hot"):
            raise KeyError("student code crashed")
    assert lmkit.tokenizers.merge_pair([1, 2], (1, 2), 3) == [3]
    assert F.one_hot(torch.tensor([1]), 2).tolist() == [[0, 1]]


def test_block_is_undone_when_a_later_target_cannot_be_resolved():
    with pytest.raises((ValueError, AttributeError)):
        with block_reference("lmkit.tokenizers.merge_pair", "lmkit.tokenizers.no_such_function"):
            pass
    assert lmkit.tokenizers.merge_pair([1, 2], (1, 2), 3) == [3]


def test_block_names_bound_in_a_namespace():
    # As in a notebook: `from lmkit.tokenizers import merge_pair` puts the function
    # in the notebook's globals, out of reach of patching the module.
    namespace = {"merge": merge_pair, "my_merge_alias": merge_pair, "other": len, "train": BPETokenizer.train}
    with block_reference("lmkit.tokenizers.merge_pair", "lmkit.tokenizers.BPETokenizer.train", namespace=namespace):
        with pytest.raises(ReferenceUsedError):
            namespace["merge"]([1, 2], (1, 2), 3)
        with pytest.raises(ReferenceUsedError):
            namespace["my_merge_alias"]([1, 2], (1, 2), 3)
        with pytest.raises(ReferenceUsedError):
            namespace["train"](BPETokenizer(), "abab", 257)
        assert namespace["other"] is len  # unrelated names are left alone
    assert namespace["merge"] is merge_pair and namespace["my_merge_alias"] is merge_pair
    assert namespace["train"] is BPETokenizer.train
    assert namespace["other"] is len


def test_block_namespace_restored_after_exception():
    namespace = {"merge": merge_pair}
    with pytest.raises(RuntimeError):
        with block_reference("lmkit.tokenizers.merge_pair", namespace=namespace):
            raise RuntimeError
    assert namespace["merge"] is merge_pair


def test_block_message_tells_the_student_what_to_do():
    with block_reference("lmkit.tokenizers.merge_pair"):
        with pytest.raises(ReferenceUsedError) as info:
            lmkit.tokenizers.merge_pair([], (1, 2), 3)
    assert re.search(r"calls lmkit\.tokenizers\.merge_pair.*write this part yourself", str(info.value))


def test_block_inherited_method(monkeypatch):
    # "pkg.Child.method" where Child inherits method from Base: the dotted
    # path resolves with getattr, so it is a valid target. Blocking it must
    # not crash (looking it up in Child.__dict__ raises KeyError) and must
    # leave Child's own __dict__ as it was afterwards.
    module = types.ModuleType("lmkit_test_fake_module")

    class Base:
        def method(self):
            return "base"

    class Child(Base):
        pass

    module.Base, module.Child = Base, Child
    monkeypatch.setitem(sys.modules, module.__name__, module)

    with block_reference("lmkit_test_fake_module.Child.method"):
        with pytest.raises(ReferenceUsedError):
            Child().method()
    assert Child().method() == "base"
    assert "method" not in vars(Child)
