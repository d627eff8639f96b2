"""What the EM pass accepts: parameters of any float dtype and layout (converted), statistics
only as the C-contiguous float64 arrays they are documented to be (added to in place)."""

import numpy as np
import pytest

from gmmfast import _em
from gmmfast._mstep_core import empty_stats, kernel_parameters


def pass_arguments(form):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    means = rng.normal(size=(4, 3))
    if form == "full":
        chol = np.stack([np.eye(3) * s for s in (1.0, 0.5, 2.0, 1.5)])
    else:
        chol = np.array([[1.0, 0.5, 2.0]] * 4)
    k_means, k_chol, log_norm = kernel_parameters(np.full(4, 0.25), means, chol, form, 3)
    return X, rng.uniform(0.5, 2.0, size=len(X)), k_means, k_chol, log_norm


@pytest.mark.parametrize("form", ["full", "diag"])
def test_parameters_in_other_dtypes_and_layouts_are_converted(form):
    X, w, means, chol, log_norm = pass_arguments(form)
    means = means.astype(np.float32).astype(np.float64)  # exact in float32
    expected = empty_stats(form, 4, 3)
    ll = _em.em_pass(X, w, means, chol, log_norm, *expected)
    got = empty_stats(form, 4, 3)
    ll_other = _em.em_pass(X, np.repeat(w, 2)[::2], means.astype(np.float32),
                           np.asfortranarray(chol), list(log_norm), *got)
    assert ll_other == ll
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("form", ["full", "diag"])
@pytest.mark.parametrize("which", [0, 1, 2])
@pytest.mark.parametrize("kind", ["float32", "non_contiguous", "read_only"])
def test_statistics_must_be_writable_c_contiguous_float64(form, which, kind):
    """Added to through typed views: anything else is refused, never silently copied."""
    X, w, means, chol, log_norm = pass_arguments(form)
    stats = list(empty_stats(form, 4, 3))
    if kind == "float32":
        stats[which] = stats[which].astype(np.float32)
    elif kind == "non_contiguous":
        stats[which] = np.zeros(8)[::2] if which == 0 else np.asfortranarray(stats[which])
    else:
        stats[which].flags.writeable = False
    with pytest.raises(ValueError):
        _em.em_pass(X, w, means, chol, log_norm, *stats)


def test_unaligned_samples_are_read_in_place():
    """Blocks that Dask deserialises from a network frame can be unaligned: same result."""
    X, w, means, chol, log_norm = pass_arguments("full")
    raw = np.zeros(X.nbytes + 8, dtype=np.uint8)
    unaligned = np.frombuffer(raw.data, dtype=np.float64, count=X.size, offset=1)
    unaligned = unaligned.reshape(X.shape)
    unaligned[...] = X
    assert not unaligned.flags.aligned and unaligned.flags.c_contiguous
    expected, got = empty_stats("full", 4, 3), empty_stats("full", 4, 3)
    assert _em.em_pass(unaligned, w, means, chol, log_norm, *got) == _em.em_pass(
        X, w, means, chol, log_norm, *expected)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["byteswapped", "int64", "one_dimensional", "fortran"])
def test_samples_in_another_form_are_refused_with_the_fix(kind):
    X, w, means, chol, log_norm = pass_arguments("full")
    bad = {
        "byteswapped": X.astype(X.dtype.newbyteorder()),
        "int64": X.astype(np.int64),
        "one_dimensional": X.ravel(),
        "fortran": np.asfortranarray(X),
    }[kind]
    with pytest.raises(ValueError, match="X must be"):
        _em.em_pass(bad, w, means, chol, log_norm, *empty_stats("full", 4, 3))
