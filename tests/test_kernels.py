"""Compiled kernels (gmmfast._em, gmmfast._kmeans) against slow, obviously-correct references.

The references never use the kernels' Cholesky trick: full-covariance densities come from
``scipy.stats.multivariate_normal.logpdf`` on the covariance itself, diagonal densities from
the explicit formula, and every statistic from plain NumPy sums over the samples, one
component at a time.

Tolerances (DESIGN.md §5). The EM kernels compute in X's dtype (float32 data in float32,
with the parameters rounded to float32) and accumulate their statistics in float64; every
reference is computed in float64 on ``X.astype(float64)``, so float32 results are held to a
float32 tolerance. Errors of a sum are measured against the sum of the absolute values of its
terms (the natural scale of a summation error), element by element.
"""

import functools
import subprocess
import sys
import tempfile
import textwrap
from collections import defaultdict

import numpy as np
import pytest
from scipy.linalg import cholesky, solve_triangular
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from gmmfast import _em, _kernels, _kmeans

N_SAMPLES = [1, 7, 255, 256, 257, 1000, 3001]  # around ROWS_PER_CHUNK = 256
DTYPES = [np.float32, np.float64]
FORMS = ["full", "diag"]  # the two forms of statistics
# The three forms of densities: tied is one (1, D, D) factor shared by all components.
DENSITY_FORMS = ["full", "tied", "diag"]
# The forms of a pass: its densities', and tied densities with the pooled statistics (one
# (1, D, D) scatter, the components' sum).
PASS_FORMS = DENSITY_FORMS + ["pooled"]
WEIGHTS = ["none", "positive", "with_zeros"]
DIMS = [1, 3, 8, 32]  # full: 1, 3 blocked kernels; 8 blocked whitening, gemm scatter; 32 trmm/syrk
COMPONENTS = [1, 4]
MAX_ROWS = max(N_SAMPLES)

# Measured worst cases in float64: ~2e-13 for em_pass (D = 32: exponents of ~-1000, whose
# absolute error is the responsibilities' relative error), whose reference densities are
# computed differently from the kernel's; <= 1.5e-14 for every other kernel. 1e-12 leaves a
# margin for other platforms/BLAS while still catching any real mistake.
RTOL = 1e-12
# float32 computation: a responsibility's relative error is its exponent's absolute error,
# ~|log p|·eps32, measured up to 7.5e-6 (|log p| ~ 100, single rows); sums over a chunk add
# ~1e-6. DESIGN.md's bar for float32 is ~1e-4.
RTOL_F32 = 5e-5
TINY = 1e-300  # exact zeros must stay (almost) exact

# The many reference comparisons run single-threaded: on a busy machine OpenMP's spinning
# workers would make them several times slower. Every other thread count is pinned to the
# single-threaded result bit for bit by the *_bit_identical_across_thread_counts tests, and the
# remaining tests use the OpenMP default.
REF_THREADS = 1

# Largest relative deviation seen per (dtype, quantity); printed at the end of the module
# (visible with ``pytest -s`` or ``-rA``).
DEVIATIONS = defaultdict(float)


@pytest.fixture(autouse=True, params=_kernels.available_variants())
def kernel_variant(request, monkeypatch):
    """Every test runs against every kernel variant this machine can run (the baseline
    build and its AVX2/AVX-512 compilations): each is a separate fast path."""
    em, kmeans = _kernels.variant_modules(request.param)
    monkeypatch.setattr(sys.modules[__name__], "_em", em)
    monkeypatch.setattr(sys.modules[__name__], "_kmeans", kmeans)
    return request.param


@pytest.fixture(scope="module", autouse=True)
def _report_deviations():
    yield
    if DEVIATIONS:
        print("\nlargest relative deviations (|actual - reference| / scale):")
        for key in sorted(DEVIATIONS):
            print(f"  {key[0]:8s} {key[1]:30s} {DEVIATIONS[key]:.3e}")


def assert_close(what, actual, expected, scale, rtol, dtype, atol=TINY):
    """|actual - expected| <= rtol * scale + atol elementwise; scale >= 0 is the sum of |terms|
    (or |expected| itself where that is the natural scale)."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), expected.shape)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    assert np.all(np.isfinite(actual) == np.isfinite(expected)), what
    finite = np.isfinite(expected)
    err = np.abs(actual[finite] - expected[finite])
    scale = scale[finite]
    if err.size:
        safe = np.where(scale > 0, scale, 1.0)
        rel = np.where(scale > 0, err / safe, np.where(err > 0, np.inf, 0.0))
        meaningful = rtol * scale > atol  # elsewhere only atol (underflow) is being tested
        if np.any(meaningful):
            key = (np.dtype(dtype).name, what)
            DEVIATIONS[key] = max(DEVIATIONS[key], float(rel[meaningful].max()))
        bad = err > rtol * scale + atol
        if np.any(bad):
            i = np.flatnonzero(bad)[0]
            raise AssertionError(
                f"{what}: {bad.sum()} of {bad.size} elements off; first: actual "
                f"{actual[finite][i]!r}, expected {expected[finite][i]!r}, relative "
                f"deviation {rel[i]:.3e} > rtol {rtol:.1e}"
            )


# --------------------------------------------------------------------------------------------
# Test problems
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def mixture(d, k, seed=0):
    """Random mixture: SPD covariances A Aᵀ/D + ½I, random means, Dirichlet weights."""
    rng = np.random.default_rng([seed, d, k])
    means = rng.normal(scale=2.0, size=(k, d))
    covs = np.empty((k, d, d))
    for c in range(k):
        A = rng.normal(size=(d, d))
        covs[c] = A @ A.T / d + 0.5 * np.eye(d)
    variances = rng.uniform(0.5, 2.0, size=(k, d))  # the diag model's own variances
    weights = rng.dirichlet(np.full(k, 2.0))
    for a in (means, covs, variances, weights):
        a.setflags(write=False)  # cached and shared between tests
    return means, covs, variances, weights


@functools.lru_cache(maxsize=None)
def samples(d, k, dtype, seed=0):
    """MAX_ROWS rows drawn from mixture(d, k); tests use the C-contiguous prefix X[:n]."""
    means, covs, _, weights = mixture(d, k, seed)
    rng = np.random.default_rng([seed, d, k, 1])
    z = rng.choice(k, size=MAX_ROWS, p=weights)
    L = np.linalg.cholesky(covs)
    X = means[z] + np.einsum("nij,nj->ni", L[z], rng.normal(size=(MAX_ROWS, d)))
    X = np.ascontiguousarray(X, dtype=dtype)
    X.setflags(write=False)
    return X


def sample_weights(kind, n, seed=0):
    if kind == "none":
        return None
    rng = np.random.default_rng([seed, n, 2])
    w = rng.uniform(0.1, 3.0, size=n)
    if kind == "with_zeros":
        w[rng.random(n) < 0.3] = 0.0
        w[0] = 0.0
    return w


@functools.lru_cache(maxsize=None)
def model_params(d, k, form, seed=0):
    """(means, precisions_chol, log_norm) in the kernels' conventions, plus the covariances
    ("pooled": tied's).

    Cached: the arrays are shared between tests and marked read-only.
    """
    if form == "pooled":
        return model_params(d, k, "tied", seed)
    means, covs, variances, weights = mixture(d, k, seed)
    if form == "tied":
        covs = np.repeat(covs[:1], k, axis=0)  # component 0's covariance for all
    if form in ("full", "tied"):
        chol = np.empty((k, d, d))
        for c in range(k):
            # scikit-learn's precisions_cholesky_: U = L⁻ᵀ, upper triangular, U Uᵀ = Σ⁻¹.
            L = cholesky(covs[c], lower=True)
            chol[c] = solve_triangular(L, np.eye(d), lower=True).T
        log_det_u = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        model_covs = covs
        if form == "tied":
            chol = chol[:1]
    else:
        chol = 1.0 / np.sqrt(variances)
        log_det_u = np.log(chol).sum(axis=1)
        model_covs = variances
    log_norm = np.log(weights) + log_det_u - 0.5 * d * np.log(2 * np.pi)
    params = (means, np.ascontiguousarray(chol), log_norm, model_covs)
    for a in params:
        a.setflags(write=False)
    return params


def empty_stats(k, d, form):
    scatter = {"diag": (k, d), "pooled": (1, d, d)}.get(form, (k, d, d))
    return np.zeros(k), np.zeros((k, d)), np.zeros(scatter)


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------


def ref_weighted_log_prob(X, means, model_covs, weights, form):
    """(n, K) log π_k + log N(x_i | μ_k, Σ_k), without any Cholesky factor of the precision."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    out = np.empty((n, len(means)))
    for c in range(len(means)):
        if form != "diag":
            out[:, c] = np.reshape(multivariate_normal.logpdf(X, means[c], model_covs[c]), n)
        else:
            var = model_covs[c]
            out[:, c] = -0.5 * (((X - means[c]) ** 2 / var).sum(axis=1)
                                + np.log(2 * np.pi * var).sum())
        out[:, c] += np.log(weights[c])
    return out


def ref_weighted_log_prob_explicit(X, means, covs):
    """Full form again, with np.linalg.inv / slogdet (cross-checks the scipy reference)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((X.shape[0], len(means)))
    for c in range(len(means)):
        diff = X - means[c]
        maha = np.einsum("ij,jk,ik->i", diff, np.linalg.inv(covs[c]), diff)
        out[:, c] = -0.5 * (maha + np.linalg.slogdet(covs[c])[1] + X.shape[1] * np.log(2 * np.pi))
    return out


def ref_stats(X, w, resp, shifts, form):
    """Weighted statistics of given responsibilities, and the scales of their errors.

    "pooled": the full form's scatters summed over the components; the pass forms them
    about the mean of the shifts, so the terms about it count in their errors' scale."""
    if form == "pooled":
        (nk, sums, scatter), (_, sums_scale, scatter_scale) = ref_stats(X, w, resp, shifts,
                                                                        "full")
        centre = shifts.mean(axis=0)
        diff = np.abs(np.asarray(X, dtype=np.float64) - centre)
        wr = resp * (np.ones(len(resp)) if w is None else w)[:, None]
        sums_scale = sums_scale + wr.T @ diff + nk[:, None] * np.abs(shifts - centre)
        about_centre = (diff * wr.sum(axis=1)[:, None]).T @ diff
        return ((nk, sums, scatter.sum(axis=0, keepdims=True)),
                (nk, sums_scale, scatter_scale.sum(axis=0, keepdims=True) + about_centre))
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    k = resp.shape[1]
    wr = resp * (np.ones(n) if w is None else w)[:, None]
    nk = wr.sum(axis=0)
    sums = np.empty((k, d))
    sums_scale = np.empty((k, d))
    scatter = np.empty((k, d) if form == "diag" else (k, d, d))
    scatter_scale = np.empty_like(scatter)
    for c in range(k):
        diff = X - shifts[c]
        sums[c] = wr[:, c] @ diff
        sums_scale[c] = wr[:, c] @ np.abs(diff)
        if form != "diag":
            scatter[c] = (diff * wr[:, c, None]).T @ diff
            scatter_scale[c] = (np.abs(diff) * wr[:, c, None]).T @ np.abs(diff)
        else:
            scatter[c] = wr[:, c] @ diff**2
            scatter_scale[c] = scatter[c]
    return (nk, sums, scatter), (nk, sums_scale, scatter_scale)


def rtol_for(dtype):
    """The tolerance of a kernel computing in ``dtype``."""
    return RTOL if dtype == np.float64 else RTOL_F32


def check_stats(kernel, stats, ref, ref_scale, dtype):
    for name, actual, expected, scale in zip(("nk", "sums", "scatter"), stats, ref, ref_scale):
        # float32 flushes responsibilities below exp(-87) of a row's largest to zero: a
        # component far from every row gets statistics of exactly 0 instead of ~1e-70.
        atol = TINY if dtype == np.float64 else 1e-30 * np.max(scale, initial=0.0)
        assert_close(f"{kernel} {name}", actual, expected, scale, rtol_for(dtype), dtype,
                     atol=atol)


# --------------------------------------------------------------------------------------------
# The references themselves
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_reference_densities_agree_with_each_other(d):
    means, covs, _, weights = mixture(d, 4)
    X = samples(d, 4, np.float64)[:500]
    a = ref_weighted_log_prob(X, means, covs, weights, "full") - np.log(weights)
    b = ref_weighted_log_prob_explicit(X, means, covs)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("d", DIMS)
def test_parameter_conventions(form, d):
    means, chol, log_norm, covs = model_params(d, 4, form)
    if form != "diag":
        assert np.array_equal(chol, np.triu(chol))
        assert chol.shape == ((1, d, d) if form == "tied" else (4, d, d))
        for c in range(4):
            np.testing.assert_allclose(chol[c % len(chol)] @ chol[c % len(chol)].T, np.linalg.inv(covs[c]), rtol=1e-12,
                                       atol=1e-12)
    else:
        np.testing.assert_allclose(chol**-2, covs, rtol=1e-14)


# --------------------------------------------------------------------------------------------
# The next chunk's rows, asked for from memory while a chunk is computed
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 3, 8, 32])
@pytest.mark.parametrize("row_end", [257, 511, 512, 3001])
@pytest.mark.parametrize("misalign", [0, 1])
def test_lookahead_asks_for_every_line_of_the_next_chunk_once(dtype, d, row_end, misalign):
    # X's rows from a byte that is (misalign) or is not the start of a cache line.
    buffer = np.zeros(3001 * d + 1, dtype=dtype)
    X = buffer[misalign:misalign + 3001 * d].reshape(3001, d)
    row0 = _em.ROWS_PER_CHUNK
    start = X.ctypes.data + row0 * d * X.itemsize
    end = start + min(_em.ROWS_PER_CHUNK, row_end - row0) * d * X.itemsize
    first_line, end_line = start // 64, -(-end // 64)
    for parts in (1, 3, 16):
        offset, lines, into_l1, asked = _em._lookahead_shares(X, row0, row_end, parts)
        # The lines holding the chunk's bytes, none before or after them.
        assert X.ctypes.data + offset == first_line * 64
        assert lines == end_line - first_line
        # A share at a time, each line once, all of them by the last share.
        assert asked == sorted(asked) and asked[-1] == lines
        assert max(np.diff([0] + asked)) <= -(-lines // parts)
        assert into_l1 == (end - start <= 16384)


def test_lookahead_is_empty_after_the_last_chunk():
    X = np.zeros((300, 8))
    assert _em._lookahead_shares(X, 300, 300, 4) == (-1, 0, True, [0, 0, 0, 0])


# --------------------------------------------------------------------------------------------
# The vectorisable exponential of the responsibilities
# --------------------------------------------------------------------------------------------


def test_exp_or_zero_is_accurate_to_a_few_ulp():
    rng = np.random.default_rng(7)
    x = np.concatenate([np.linspace(-600.0, 0.0, 200_001), -rng.exponential(3.0, 200_000),
                        [0.0, -0.0, -1e-300, -np.log(2) / 2, -np.log(2) * 1.5]])
    expected = np.exp(x)
    rel = np.abs(_em._exp_or_zero(x, -600.0) - expected) / expected
    ulp = np.finfo(np.float64).eps
    # Where a responsibility can move a statistic (x >= -40): a few ulp, as libm.
    assert rel[x >= -40].max() <= 8 * ulp
    # Down to the floor: the (1 - n ln2_lo) correction's second-order term, <= 1.4e-14.
    assert rel.max() <= 1.5e-14
    assert _em._exp_or_zero(np.array([0.0]), -600.0)[0] == 1.0


def test_exp_or_zero_is_zero_below_the_floor_and_for_nan():
    x = np.array([-600.0, -600.0000001, -700.0, -1e308, -np.inf, np.nan])
    out = _em._exp_or_zero(x, -600.0)
    np.testing.assert_allclose(out[0], np.exp(-600.0), rtol=1.5e-14)
    assert np.array_equal(out[1:], np.zeros(5))


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_log_of_a_row_sum_is_accurate_to_two_ulp(dtype):
    # The log-sum-exp's log sees sums of max-shifted exponentials: 1 <= x <= K.
    rng = np.random.default_rng(9)
    x = np.concatenate([np.linspace(1.0, 64.0, 400_001), 1.0 + rng.exponential(1e-6, 100_000),
                        1.0 + rng.exponential(3.0, 100_000), [1.0, np.sqrt(2), 2.0]])
    x = np.append(x.astype(dtype), np.finfo(dtype).max)
    out = _em._log_ge1(x)
    assert out.dtype == dtype
    expected = np.log(x.astype(np.float64))
    ulp = np.spacing(np.maximum(expected, np.finfo(dtype).tiny).astype(dtype)).astype(np.float64)
    assert (np.abs(out - expected) / ulp).max() <= 2.0
    assert _em._log_ge1(np.array([1.0], dtype))[0] == 0.0


def test_float32_exp_or_zero_is_accurate_to_a_few_ulp():
    rng = np.random.default_rng(7)
    x = np.concatenate([np.linspace(-87.0, 0.0, 200_001), -rng.exponential(3.0, 200_000),
                        [0.0, -0.0, -1e-30, -np.log(2) / 2, -np.log(2) * 1.5]])
    x = x[x >= -87.0].astype(np.float32)
    out = _em._exp_or_zero(x, -87.0)
    assert out.dtype == np.float32
    expected = np.exp(x.astype(np.float64))
    ulp = np.spacing(expected.astype(np.float32)).astype(np.float64)
    assert (np.abs(out - expected) / ulp).max() <= 2.5
    assert _em._exp_or_zero(np.array([0.0], np.float32), -87.0)[0] == 1.0


def test_float32_exp_or_zero_is_zero_below_the_floor_and_for_nan():
    x = np.array([-87.0, -87.00001, -100.0, -1e30, -np.inf, np.nan], dtype=np.float32)
    out = _em._exp_or_zero(x, -87.0)
    np.testing.assert_allclose(out[0], np.exp(-87.0), rtol=3e-7)
    assert np.array_equal(out[1:], np.zeros(5, np.float32))


# --------------------------------------------------------------------------------------------
# em_pass
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def em_pass_reference(dtype, form, n, weights, d, k):
    """Σ w log p(x) and the statistics em_pass must return, with their error scales (cached:
    every kernel variant is checked against the same, slow, reference)."""
    X = samples(d, k, dtype)[:n]
    w = sample_weights(weights, n)
    means, _, _, covs = model_params(d, k, form)
    log_prob = ref_weighted_log_prob(X, means, covs, mixture(d, k)[3], form)
    lse = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - lse[:, None])
    ww = np.ones(n) if w is None else w
    ref, scale = ref_stats(X, w, resp, means, form)
    return ww @ lse, ww @ np.abs(lse), ref, scale


@pytest.mark.parametrize("k", COMPONENTS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("n", N_SAMPLES)
@pytest.mark.parametrize("form", PASS_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_em_pass_matches_reference(dtype, form, n, weights, d, k):
    X = samples(d, k, dtype)[:n]
    w = sample_weights(weights, n)
    means, chol, log_norm, _ = model_params(d, k, form)
    nk, sums, scatter = empty_stats(k, d, form)

    loglik = _em.em_pass(X, w, means, chol, log_norm, nk, sums, scatter, n_threads=REF_THREADS)

    ref_loglik, loglik_scale, ref, scale = em_pass_reference(dtype, form, n, weights, d, k)
    assert isinstance(loglik, float)
    assert_close("em_pass loglik", loglik, ref_loglik, loglik_scale, rtol_for(dtype), dtype)
    check_stats("em_pass", (nk, sums, scatter), ref, scale, dtype)
    if form != "diag":
        assert np.array_equal(scatter, np.swapaxes(scatter, 1, 2)), "scatter not symmetric"


FORM_CONSTANTS = {"full": "FORM_FULL", "tied": "FORM_TIED", "diag": "FORM_DIAG"}


@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_explicit_form_selects_the_kernel_the_shapes_imply(dtype, form):
    X = samples(8, 4, dtype)[:300]
    means, chol, log_norm, _ = model_params(8, 4, form)
    explicit = getattr(_em, FORM_CONSTANTS[form])
    inferred_stats, explicit_stats = empty_stats(4, 8, form), empty_stats(4, 8, form)
    inferred = _em.em_pass(X, None, means, chol, log_norm, *inferred_stats)
    assert _em.em_pass(X, None, means, chol, log_norm, *explicit_stats, form=explicit) == inferred
    for a, b in zip(inferred_stats, explicit_stats):
        assert np.array_equal(a, b)
    resp, explicit_resp = np.empty((300, 4), dtype), np.empty((300, 4), dtype)
    _em.score(X, means, chol, log_norm, resp=resp)
    _em.score(X, means, chol, log_norm, resp=explicit_resp, form=explicit)
    assert np.array_equal(resp, explicit_resp)


def test_one_component_with_one_factor_is_full_unless_told_tied():
    X = samples(3, 1, np.float64)[:100]
    means, chol, log_norm, covs = model_params(3, 1, "full")
    ref = ref_weighted_log_prob(X, means, covs, np.ones(1), "full")[:, 0]
    for form in (None, _em.FORM_FULL, _em.FORM_TIED):
        out = np.empty(100)
        _em.score(X, means, chol, log_norm, log_prob_norm=out, form=form)
        np.testing.assert_allclose(out, ref, rtol=1e-12)


@pytest.mark.parametrize(
    "form, chol_form, message",
    [
        ("FORM_DIAG", "full", r"shape \(4, 8\) for this form"),
        ("FORM_FULL", "diag", r"shape \(4, 8, 8\) for this form"),
        ("FORM_TIED", "full", r"shape \(1, 8, 8\) for this form"),
        (7, "full", "form must be FORM_FULL, FORM_TIED or FORM_DIAG"),
        (True, "full", "form must be FORM_FULL, FORM_TIED or FORM_DIAG"),
        ("full", "full", "form must be FORM_FULL, FORM_TIED or FORM_DIAG"),
    ],
)
def test_explicit_form_must_match_the_precisions(form, chol_form, message):
    form = getattr(_em, form) if str(form).startswith("FORM_") else form
    X = samples(8, 4, np.float64)[:10]
    means, chol, log_norm, _ = model_params(8, 4, chol_form)
    with pytest.raises(ValueError, match=message):
        _em.em_pass(X, None, means, chol, log_norm, *empty_stats(4, 8, chol_form), form=form)
    with pytest.raises(ValueError, match=message):
        _em.score(X, means, chol, log_norm, labels=np.empty(10, np.int64), form=form)


@pytest.mark.parametrize("bad_shape", [(4, 8, 7), (2, 8, 8), (4,), (4, 64)])
def test_precisions_of_no_form_are_refused_by_every_entry_point(bad_shape):
    X = samples(8, 4, np.float64)[:10]
    means, _, log_norm, _ = model_params(8, 4, "full")
    message = r"precisions_chol must have shape \(4, 8, 8\) \(full\), \(1, 8, 8\) \(tied"
    with pytest.raises(ValueError, match=message):
        _em.em_pass(X, None, means, np.ones(bad_shape), log_norm, *empty_stats(4, 8, "full"))
    with pytest.raises(ValueError, match=message):
        _em.score(X, means, np.ones(bad_shape), log_norm, labels=np.empty(10, np.int64))


@pytest.mark.parametrize("weights", ["none", "with_zeros"])
@pytest.mark.parametrize("d", [4, 8, 9, 32])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_em_pass_well_separated_clusters_match_reference(dtype, d, weights):
    # Far-apart clusters: most responsibilities are exactly 0 (flushed below exp(-600), or
    # exp(-87) in float32), so accumulate_full reads only each component's remaining rows:
    # up to 8 features one row at a time from the rows as stored (float32 widened to
    # float64 as it loads), more features gathered first.
    k, n = 4, 3001
    means, chol, log_norm, covs = model_params(d, k, "full")
    rng = np.random.default_rng([d, 5])
    far = means + 60.0 * np.eye(k, d)
    labels = rng.integers(k, size=n)
    X = (far[labels] + rng.standard_normal((n, d)) * 0.5).astype(dtype)
    w = sample_weights(weights, n)
    resp_check = np.empty((n, k), dtype)
    _em.score(X, far, chol, log_norm, np.empty(n, dtype), None, resp_check)
    assert np.mean(resp_check == 0.0) > 0.5  # the gathering path is taken

    nk, sums, scatter = empty_stats(k, d, "full")
    loglik = _em.em_pass(X, w, far, chol, log_norm, nk, sums, scatter, n_threads=REF_THREADS)

    log_prob = ref_weighted_log_prob(X, far, covs, mixture(d, k)[3], "full")
    lse = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - lse[:, None])
    ww = np.ones(n) if w is None else w
    assert_close("em_pass loglik", loglik, ww @ lse, ww @ np.abs(lse), rtol_for(dtype), dtype)
    ref, scale = ref_stats(X, w, resp, far, "full")
    check_stats("em_pass (gathered rows)", (nk, sums, scatter), ref, scale, dtype)


def clusters_in_runs(d, k, n, dtype, seed=0):
    """Rows of k far-apart clusters, the first half in runs of one cluster (whole row blocks
    where a component has no responsibility), the rest shuffled; and the clusters' means."""
    rng = np.random.default_rng([d, k, seed])
    far = mixture(d, k)[0] + 40.0 * np.eye(k, d)
    labels = np.concatenate([np.sort(rng.integers(k, size=n // 2)),
                             rng.integers(k, size=n - n // 2)])
    X = (far[labels] + rng.standard_normal((n, d))).astype(dtype)
    return X, far


def ref_floored_pass(X, w, means, covs, weights, form, log_resp_floor):
    """Σ w log p(x) and the statistics of em_pass whose responsibilities below
    exp(log_resp_floor) of their row's largest count as 0, with their error scales."""
    log_prob = ref_weighted_log_prob(X, means, covs, weights, form)
    top = log_prob.max(axis=1, keepdims=True)
    terms = np.where(log_prob - top < log_resp_floor, 0.0, np.exp(log_prob - top))
    total = terms.sum(axis=1)
    log_p = top[:, 0] + np.log(total)
    ww = np.ones(len(X)) if w is None else w
    ref, scale = ref_stats(X, w, terms / total[:, None], means, form)
    return ww @ log_p, ww @ np.abs(log_p), ref, scale


@pytest.mark.parametrize("weights", ["none", "with_zeros"])
@pytest.mark.parametrize("form", PASS_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_em_pass_flushes_responsibilities_below_the_floor(dtype, form, weights):
    # A floor of exp(-5) flushes responsibilities large enough to move every statistic far
    # beyond the tolerance: a pass that ignored it would fail.
    d, k, n, floor = 3, 4, 3001, -5.0
    _, chol, log_norm, covs = model_params(d, k, form)
    rng = np.random.default_rng(11)
    means = mixture(d, k)[0] + rng.normal(scale=0.5, size=(k, d))
    X = samples(d, k, dtype)[:n]
    w = sample_weights(weights, n)
    nk, sums, scatter = empty_stats(k, d, form)

    loglik = _em.em_pass(X, w, means, chol, log_norm, nk, sums, scatter,
                         n_threads=REF_THREADS, log_resp_floor=floor)

    ref_loglik, loglik_scale, ref, scale = ref_floored_pass(X, w, means, covs,
                                                           mixture(d, k)[3], form, floor)
    unfloored = ref_floored_pass(X, w, means, covs, mixture(d, k)[3], form, -np.inf)[2]
    assert not np.allclose(unfloored[0], ref[0], rtol=1e-3)  # the floor bites
    assert_close("em_pass loglik (floor)", loglik, ref_loglik, loglik_scale, rtol_for(dtype),
                 dtype)
    check_stats("em_pass (floor)", (nk, sums, scatter), ref, scale, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_em_pass_floor_below_the_dtypes_own_changes_nothing(dtype):
    X = samples(3, 4, dtype)[:1000]
    means, chol, log_norm, _ = model_params(3, 4, "diag")
    own, low = empty_stats(4, 3, "diag"), empty_stats(4, 3, "diag")
    assert (_em.em_pass(X, None, means, chol, log_norm, *own)
            == _em.em_pass(X, None, means, chol, log_norm, *low, log_resp_floor=-1e4))
    for a, b in zip(own, low):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("bad", [0.5, np.nan, np.inf])
def test_em_pass_refuses_a_floor_above_zero(bad):
    X = samples(3, 4, np.float64)[:100]
    means, chol, log_norm, _ = model_params(3, 4, "diag")
    for entry, stack in ((_em.em_pass, lambda a: a), (_em.em_pass_sets, lambda a: a[None])):
        stats = [stack(a) for a in empty_stats(4, 3, "diag")]
        with pytest.raises(ValueError, match="log_resp_floor must be a log-ratio <= 0"):
            entry(X, None, stack(means), stack(chol), stack(log_norm), *stats,
                  log_resp_floor=bad)


@pytest.mark.parametrize("log_resp_floor", [None, -5.0])
@pytest.mark.parametrize("weights", ["none", "with_zeros"])
@pytest.mark.parametrize("form", PASS_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_em_pass_clusters_in_runs_match_reference(dtype, form, weights, log_resp_floor):
    # Runs of rows from one cluster: whole row blocks without responsibility for most
    # components, whose rows the full and tied statistics gather around.
    d, k, n = 8, 4, 3001
    X, far = clusters_in_runs(d, k, n, dtype)
    _, chol, log_norm, covs = model_params(d, k, form)
    w = sample_weights(weights, n)
    nk, sums, scatter = empty_stats(k, d, form)

    loglik = _em.em_pass(X, w, far, chol, log_norm, nk, sums, scatter, n_threads=REF_THREADS,
                         log_resp_floor=log_resp_floor)

    floor = -np.inf if log_resp_floor is None else log_resp_floor
    ref_loglik, loglik_scale, ref, scale = ref_floored_pass(X, w, far, covs, mixture(d, k)[3],
                                                           form, floor)
    assert_close("em_pass loglik (runs)", loglik, ref_loglik, loglik_scale, rtol_for(dtype),
                 dtype)
    check_stats("em_pass (runs)", (nk, sums, scatter), ref, scale, dtype)


@pytest.mark.parametrize("d", [1, 3, 8, 12])
@pytest.mark.parametrize("form", ["diag", "pooled"])
@pytest.mark.parametrize("weights", ["none", "with_zeros"])
def test_statistics_under_a_raised_floor_read_only_rows_with_responsibility(weights, form, d):
    # Clusters so far apart that every responsibility is 1 or below exp(-600): a raised
    # floor then flushes nothing more, but it makes the diag statistics and the pooled
    # form's per-component sums read only where a component has responsibility (runs of
    # one cluster, and shuffled rows). Up to 8 features, float64 goes row by row through
    # the rows with responsibility where they are few per block of rows (here the shuffled
    # ones): another order of additions, so to rounding. Above, and in the runs, the blocks
    # of rows without responsibility are skipped: the same bits. A skipped row or block
    # that had responsibility, or a wrong one, would change the sums.
    k, n = 4, 3001
    rng = np.random.default_rng(4)
    means = 100.0 * np.arange(k)[:, None] * np.ones(d)
    labels = np.concatenate([np.repeat(np.arange(k), 40), rng.integers(k, size=n - 40 * k)])
    X = means[labels] + rng.standard_normal((n, d))
    chol = np.ones((k, d)) if form == "diag" else np.eye(d)[None]
    log_norm = np.full(k, -0.5 * d * np.log(2 * np.pi) - np.log(k))
    w = sample_weights(weights, n)
    plain, skipping = empty_stats(k, d, form), empty_stats(k, d, form)

    loglik = _em.em_pass(X, w, means, chol, log_norm, *plain, n_threads=REF_THREADS)
    assert loglik == _em.em_pass(X, w, means, chol, log_norm, *skipping,
                                 n_threads=REF_THREADS, log_resp_floor=-5.0)
    ref, scale = ref_stats(X, w, np.eye(k)[labels], means, form)
    if d > 8:
        for a, b in zip(plain, skipping):
            assert np.array_equal(a, b)
    else:
        check_stats("em_pass (rows against blocks)", skipping, plain, scale, np.float64)
    check_stats("em_pass (rows with responsibility)", skipping, ref, scale, np.float64)


@pytest.mark.parametrize("form", PASS_FORMS)
def test_em_pass_adds_into_accumulators(form):
    d, k, n = 3, 4, 1000
    X = samples(d, k, np.float64)[:n]
    means, chol, log_norm, _ = model_params(d, k, form)
    fresh = empty_stats(k, d, form)
    _em.em_pass(X, None, means, chol, log_norm, *fresh)
    rng = np.random.default_rng(5)
    start = [rng.normal(size=a.shape) for a in fresh]
    acc = [a.copy() for a in start]
    _em.em_pass(X, None, means, chol, log_norm, *acc)
    for a, s, f in zip(acc, start, fresh):
        assert np.array_equal(a, s + f)


@pytest.mark.parametrize("form", PASS_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_em_pass_is_additive_over_row_blocks(dtype, form):
    """Streaming: statistics of X equal the sum of those of two (chunk-unaligned) blocks, to
    the rounding of a chunk's partial sums (formed in X's dtype, over other rows)."""
    d, k, n, split = 8, 4, 3001, 1234
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    X = samples(d, k, dtype)[:n]
    w = sample_weights("positive", n)
    means, chol, log_norm, _ = model_params(d, k, form)
    whole = empty_stats(k, d, form)
    ll_whole = _em.em_pass(X, w, means, chol, log_norm, *whole)
    parts = empty_stats(k, d, form)
    ll_parts = _em.em_pass(X[:split], w[:split], means, chol, log_norm, *parts)
    ll_parts += _em.em_pass(X[split:], w[split:], means, chol, log_norm, *parts)
    np.testing.assert_allclose(ll_parts, ll_whole, rtol=rtol)
    for a, b in zip(parts, whole):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.mark.parametrize("form", PASS_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_em_pass_with_no_samples(dtype, form):
    d, k = 3, 4
    means, chol, log_norm, _ = model_params(d, k, form)
    nk, sums, scatter = empty_stats(k, d, form)
    nk += 1.0
    ll = _em.em_pass(np.empty((0, d), dtype), None, means, chol, log_norm, nk, sums, scatter)
    assert ll == 0.0
    assert np.array_equal(nk, np.ones(k)) and not sums.any() and not scatter.any()
    ll = _em.em_pass(np.empty((0, d), dtype), np.empty(0), means, chol, log_norm, nk, sums,
                     scatter)
    assert ll == 0.0


@pytest.mark.parametrize("form", DENSITY_FORMS)
def test_em_pass_zero_weight_row_with_zero_density_changes_nothing(form):
    """A zero-weight row whose density is exactly 0 (log p = -inf: here ‖y‖² overflows) must
    contribute nothing: neither a NaN log-likelihood nor NaN statistics."""
    d, k = 3, 1
    means, chol, log_norm, _ = model_params(d, k, form)
    X = np.array([[0.0, 0.0, 0.0], [1e200, 0.0, 0.0]])
    alone = empty_stats(k, d, form)
    ll_alone = _em.em_pass(X[:1], None, means, chol, log_norm, *alone)
    both = empty_stats(k, d, form)
    ll_both = _em.em_pass(X, np.array([1.0, 0.0]), means, chol, log_norm, *both)
    assert ll_both == ll_alone
    # KERNEL BUG: log_prob_to_resp computes w * exp(-inf - (-inf)) = 0 * NaN = NaN for such a
    # row, and accumulate_* only skip responsibilities == 0.0, so nk/sums/scatter become NaN.
    for a, b in zip(both, alone):
        assert np.array_equal(a, b)


# --------------------------------------------------------------------------------------------
# stats_from_labels / stats_from_resp
# --------------------------------------------------------------------------------------------


def random_shifts(d, k):
    """Shifts that are not the means, so that moments about shifts[k] are really tested."""
    means = mixture(d, k)[0]
    return means + np.random.default_rng([d, k, 3]).normal(scale=0.5, size=means.shape)


@pytest.mark.parametrize("k", COMPONENTS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("n", N_SAMPLES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_stats_from_labels_matches_reference(dtype, form, n, weights, d, k):
    X = samples(d, k, dtype)[:n]
    w = sample_weights(weights, n)
    labels = np.random.default_rng([n, k, 4]).integers(0, k, size=n)
    shifts = random_shifts(d, k)
    stats = empty_stats(k, d, form)
    assert _em.stats_from_labels(X, w, labels, shifts, *stats, n_threads=REF_THREADS) is None
    resp = np.zeros((n, k))
    resp[np.arange(n), labels] = 1.0
    ref, scale = ref_stats(X, w, resp, shifts, form)
    check_stats("stats_from_labels", stats, ref, scale, dtype)


@pytest.mark.parametrize("k", COMPONENTS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("n", N_SAMPLES)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_stats_from_resp_matches_reference(dtype, form, n, weights, d, k):
    X = samples(d, k, dtype)[:n]
    w = sample_weights(weights, n)
    rng = np.random.default_rng([n, k, 5])
    resp = rng.dirichlet(np.ones(k), size=n)
    resp[rng.random(resp.shape) < 0.1] = 0.0  # some exact zeros; rows need not sum to 1
    shifts = random_shifts(d, k)
    stats = empty_stats(k, d, form)
    assert _em.stats_from_resp(X, w, resp, shifts, *stats, n_threads=REF_THREADS) is None
    ref, scale = ref_stats(X, w, resp, shifts, form)
    check_stats("stats_from_resp", stats, ref, scale, dtype)


@pytest.mark.parametrize("form", FORMS)
def test_stats_from_resp_with_em_responsibilities_equals_em_pass(form):
    d, k, n = 8, 4, 3001
    X = samples(d, k, np.float64)[:n]
    w = sample_weights("with_zeros", n)
    means, chol, log_norm, _ = model_params(d, k, form)
    resp = np.empty((n, k))
    _em.score(X, means, chol, log_norm, np.empty(n), None, resp)
    a = empty_stats(k, d, form)
    b = empty_stats(k, d, form)
    _em.em_pass(X, w, means, chol, log_norm, *a)
    _em.stats_from_resp(X, w, resp, means, *b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12 * np.abs(y).max())


def test_stats_from_labels_accepts_int32_labels_and_empty_input():
    d, k, n = 3, 4, 300
    X = samples(d, k, np.float64)[:n]
    labels = np.arange(n) % k
    shifts = random_shifts(d, k)
    a = empty_stats(k, d, "full")
    b = empty_stats(k, d, "full")
    _em.stats_from_labels(X, None, labels.astype(np.int64), shifts, *a)
    _em.stats_from_labels(X, None, labels.astype(np.int32), shifts, *b)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    c = empty_stats(k, d, "diag")
    _em.stats_from_labels(np.empty((0, d)), None, np.empty(0, np.int64), shifts, *c)
    _em.stats_from_resp(np.empty((0, d)), None, np.empty((0, k)), shifts, *c)
    assert not any(a.any() for a in c)


# --------------------------------------------------------------------------------------------
# score
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", COMPONENTS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n", N_SAMPLES)
@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_matches_reference(dtype, form, n, d, k):
    X = samples(d, k, dtype)[:n]
    means, chol, log_norm, covs = model_params(d, k, form)
    log_prob_norm = np.full(n, np.nan, dtype=dtype)
    labels = np.full(n, -1, dtype=np.int64)
    resp = np.full((n, k), np.nan, dtype=dtype)

    assert _em.score(X, means, chol, log_norm, log_prob_norm, labels, resp,
                     n_threads=REF_THREADS) is None

    log_prob = ref_weighted_log_prob(X, means, covs, mixture(d, k)[3], form)
    lse = logsumexp(log_prob, axis=1)
    ref_resp = np.exp(log_prob - lse[:, None])
    rtol = rtol_for(dtype)
    # log p(x_i) is a log-sum-exp of terms of size |log π_k + log N|: the scale of its error.
    lse_scale = np.maximum(np.abs(lse), np.abs(log_prob).max(axis=1))
    assert_close("score log_prob_norm", log_prob_norm, lse, lse_scale, rtol, dtype)
    # resp = exp(log_prob - lse): its relative error is the absolute error of the exponent.
    # Below the floor (exp(-600), float32 exp(-87)) responsibilities are exactly 0.
    resp_rtol = rtol * max(1.0, lse_scale.max(initial=0.0))
    resp_atol = np.exp(-600.0) if dtype == np.float64 else np.exp(-87.0)
    assert_close("score resp", resp, ref_resp, ref_resp, resp_rtol, dtype, atol=resp_atol)
    # Labels: the argmax, up to near-ties that floating point cannot resolve.
    assert labels.min() >= 0 and labels.max() < k
    chosen = log_prob[np.arange(n), labels]
    assert np.all(chosen >= log_prob.max(axis=1) - rtol * lse_scale)
    assert np.mean(labels == np.argmax(log_prob, axis=1)) >= 0.999


@pytest.mark.parametrize("n", [7, 257])
@pytest.mark.parametrize("d", [65, 130])
@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_more_features_than_one_slab_match_reference(dtype, form, n, d):
    # D > 64: the diag kernel continues over slabs of 64 features; full and tied whiten
    # and scatter through BLAS (trmm, syrk); odd n for the padded last row block.
    test_em_pass_matches_reference(dtype, form, n, "with_zeros", d, 4)
    test_score_matches_reference(dtype, form, n, d, 4)


@pytest.mark.parametrize("k", [9, 16])
@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_matches_reference_with_many_components(dtype, form, k):
    # K >= 8: the responsibilities go out through the transpose's 8 x 8 register tiles,
    # scaled on the way (K = 9 also through its edge), with a partial tile of rows.
    test_score_matches_reference(dtype, form, 3001, 3, k)


@pytest.mark.parametrize("k", [5, 6, 7])
@pytest.mark.parametrize("d", [3, 8])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_tied_register_tiles_match_reference(dtype, d, k):
    # Tied densities go in register tiles of four components by four blocks of rows, one
    # slice of blocks per component of a tile: K = 5..7 leave one to three components for
    # a last group, and the 3001 rows a last chunk of 23 (float64) or 11 (float32) blocks
    # that no slice divides into whole tiles, and a padded partial block.
    test_score_matches_reference(dtype, "tied", 3001, d, k)
    test_em_pass_matches_reference(dtype, "tied", 3001, "with_zeros", d, k)


@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_optional_outputs_and_consistency_with_em_pass(dtype, form):
    d, k, n = 3, 4, 1000
    X = samples(d, k, dtype)[:n]
    means, chol, log_norm, _ = model_params(d, k, form)
    lpn_only = np.empty(n, dtype)
    _em.score(X, means, chol, log_norm, lpn_only)
    lpn, labels, resp = np.empty(n, dtype), np.empty(n, np.int64), np.empty((n, k), dtype)
    _em.score(X, means, chol, log_norm, lpn, labels, resp)
    assert np.array_equal(lpn_only, lpn)
    lab_only = np.empty(n, np.int64)
    _em.score(X, means, chol, log_norm, np.empty(n, dtype), labels=lab_only)
    assert np.array_equal(lab_only, labels)
    resp_only = np.empty((n, k), dtype)
    _em.score(X, means, chol, log_norm, resp=resp_only)
    assert np.array_equal(resp_only, resp)
    ll = _em.em_pass(X, None, means, chol, log_norm, *empty_stats(k, d, form))
    np.testing.assert_allclose(lpn.astype(np.float64).sum(), ll, rtol=1e-12)


def test_score_labels_first_on_ties_and_resp_split_evenly():
    d = 3
    means0, chol0, log_norm0, _ = model_params(d, 1, "full")
    # Three identical components: bit-identical log-probabilities everywhere.
    means = np.repeat(means0, 3, axis=0)
    chol = np.repeat(chol0, 3, axis=0)
    log_norm = np.repeat(log_norm0 + np.log(1 / 3), 3)
    X = samples(d, 1, np.float64)[:300]
    labels = np.full(300, -1, np.int64)
    resp = np.empty((300, 3))
    lpn = np.empty(300)
    _em.score(X, means, chol, log_norm, lpn, labels, resp)
    assert np.array_equal(labels, np.zeros(300, np.int64))
    np.testing.assert_allclose(resp, 1 / 3, rtol=1e-15)
    ref = np.empty(300)
    _em.score(X, means0, chol0, log_norm0, ref)
    np.testing.assert_allclose(lpn, ref, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_labels_are_the_first_most_likely_component(dtype, form):
    # Component 3 is a copy of component 1: wherever they are the most likely, the label is
    # 1. Elsewhere the label is the argmax of the same call's responsibilities (where the
    # top two differ). 3001 rows: whole blocks, a partial block and a partial chunk.
    d, n = 3, 3001
    means, chol, log_norm, _ = model_params(d, 4, form)
    copy = [0, 1, 2, 1, 3]
    means, log_norm = means[copy], log_norm[copy]
    chol = chol if form == "tied" else chol[copy]
    X = samples(d, 4, dtype)[:n]
    labels = np.full(n, -1, np.int64)
    resp = np.empty((n, 5), dtype)
    _em.score(X, means, chol, log_norm, labels=labels, resp=resp)
    assert set(np.unique(labels)) == {0, 1, 2, 4}
    top_two = np.sort(resp, axis=1)[:, -2:]
    clear = top_two[:, 1] > top_two[:, 0]
    assert clear.mean() > 0.5
    assert np.array_equal(labels[clear], np.argmax(resp[clear], axis=1))
    assert np.array_equal(resp[:, 1], resp[:, 3])


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_with_no_samples(dtype):
    means, chol, log_norm, _ = model_params(3, 4, "diag")
    assert _em.score(np.empty((0, 3), dtype), means, chol, log_norm, np.empty(0, dtype),
                     np.empty(0, np.int64), np.empty((0, 4), dtype)) is None
    assert _em.score(np.empty((0, 3), dtype), means, chol, log_norm, np.empty(0, dtype),
                     check_finite=True) is True


@pytest.mark.parametrize("offset", [0, 1, 3])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_streamed_resp_matches_ordinary_stores(dtype, offset):
    """Responsibilities of >= 16 MiB into memory already in use are written with streaming
    stores (each chunk staged, then copied): the same numbers as the ordinary stores of a
    smaller output, wherever the destination starts relative to a vector boundary."""
    d, k = 2, 8 if dtype == np.float64 else 16
    n = (16 << 20) // (k * np.dtype(dtype).itemsize) + 1001  # just above the threshold
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(dtype)
    means, chol, log_norm, _ = model_params(d, k, "full")
    buffer = np.ones(n * k + offset, dtype)  # touched: resident, so streamed
    resp = buffer[offset:].reshape(n, k)
    for n_threads in (1, 2):
        resp[:] = -1
        _em.score(X, means, chol, log_norm, None, None, resp, n_threads=n_threads)
        half = n // 2 + 77
        for rows in (slice(0, half), slice(half, n)):  # each below the threshold
            part = np.empty((rows.stop - rows.start, k), dtype)
            _em.score(X[rows], means, chol, log_norm, None, None, part)
            assert np.array_equal(resp[rows], part)


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_check_finite_finds_every_nonfinite_value(dtype, bad, n_threads):
    d, k, n = 3, 4, 1000
    X = samples(d, k, dtype)[:n]
    means, chol, log_norm, _ = model_params(d, k, "full")
    outputs = {"log_prob_norm": np.empty(n, dtype), "labels": np.empty(n, np.int64)}
    assert _em.score(X, means, chol, log_norm, n_threads=n_threads, check_finite=True,
                     **outputs) is True
    assert _em.score(X, means, chol, log_norm, n_threads=n_threads, **outputs) is None
    # Anywhere: the first and last value, a full chunk's last row, the partial last chunk.
    for row, col in [(0, 0), (255, 2), (256, 1), (999, 2)]:
        X_bad = X.copy()
        X_bad[row, col] = bad
        for out in ({"log_prob_norm": np.empty(n, dtype)}, {"labels": np.empty(n, np.int64)},
                    {"resp": np.empty((n, k), dtype)}):
            assert _em.score(X_bad, means, chol, log_norm, n_threads=n_threads,
                             check_finite=True, **out) is False, (row, col, out.keys())


# --------------------------------------------------------------------------------------------
# k-means kernels
# --------------------------------------------------------------------------------------------


def ref_sq_dist(X, centers):
    X = np.asarray(X, dtype=np.float64)
    return np.stack([((X - c) ** 2).sum(axis=1) for c in centers], axis=1)


def kmeans_centers(d, k):
    """Centres near the data: the mixture means, jittered."""
    return mixture(d, k)[0] + np.random.default_rng([d, k, 6]).normal(scale=0.3, size=(k, d))


@pytest.mark.parametrize("k", COMPONENTS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("n", N_SAMPLES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_lloyd_step_matches_reference(dtype, n, weights, d, k):
    X = samples(d, k, dtype)[:n]
    w = sample_weights(weights, n)
    centers = kmeans_centers(d, k)
    new_centers = np.full((k, d), np.nan)
    counts = np.full(k, np.nan)
    labels = np.full(n, -1, np.int64)

    inertia = _kmeans.lloyd_step(X, w, centers, new_centers, counts, labels,
                                 n_threads=REF_THREADS)

    ww = np.ones(n) if w is None else w
    dist = ref_sq_dist(X, centers)
    best = dist.min(axis=1)
    # Labels: nearest centre, up to near-ties.
    assert np.all(dist[np.arange(n), labels] <= best * (1 + 1e-12))
    assert np.mean(labels == dist.argmin(axis=1)) >= 0.999
    assert_close("lloyd inertia", inertia, ww @ best, ww @ best, RTOL, dtype)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    ref_counts = ww @ onehot
    assert_close("lloyd counts", counts, ref_counts, ref_counts, RTOL, dtype)
    X64 = np.asarray(X, dtype=np.float64)
    for c in range(k):
        if ref_counts[c] > 0:
            member_w = ww * onehot[:, c]
            expected = member_w @ X64 / ref_counts[c]
            scale = member_w @ np.abs(X64 - centers[c]) / ref_counts[c] + np.abs(centers[c])
            assert_close("lloyd new_centers", new_centers[c], expected, scale, RTOL, dtype)
        else:
            assert np.array_equal(new_centers[c], centers[c])


def test_lloyd_step_empty_and_zero_weight_clusters_keep_their_centre():
    d, n = 3, 1000
    # Row 0 sits alone far away, with zero weight.
    X = np.vstack([np.full((1, d), 500.0), samples(d, 4, np.float64)[:n - 1]])
    centers = np.vstack([kmeans_centers(d, 4)[:2], np.full((1, d), -1e3),
                         X[:1] + 1e-3])  # centre 2: nobody; centre 3: only row 0
    labels = np.empty(n, np.int64)
    counts = np.empty(4)
    new_centers = np.empty((4, d))
    w = np.ones(n)
    w[0] = 0.0
    _kmeans.lloyd_step(X, w, centers, new_centers, counts, labels)
    assert labels[0] == 3 and not np.any(labels[1:] == 3) and not np.any(labels == 2)
    assert counts[2] == 0.0 and counts[3] == 0.0
    assert np.array_equal(new_centers[2:], centers[2:])


def test_lloyd_step_labels_first_on_ties():
    X = samples(3, 4, np.float64)[:500]
    centers = np.repeat(kmeans_centers(3, 4)[1:2], 3, axis=0)
    labels = np.full(500, -1, np.int64)
    counts = np.empty(3)
    new_centers = np.empty((3, 3))
    _kmeans.lloyd_step(X, None, centers, new_centers, counts, labels)
    assert np.array_equal(labels, np.zeros(500, np.int64))
    assert counts.tolist() == [500.0, 0.0, 0.0]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_lloyd_step_with_no_samples(dtype):
    centers = kmeans_centers(3, 4)
    new_centers = np.full((4, 3), np.nan)
    counts = np.full(4, np.nan)
    inertia = _kmeans.lloyd_step(np.empty((0, 3), dtype), None, centers, new_centers, counts,
                                 np.empty(0, np.int64))
    assert inertia == 0.0
    assert np.array_equal(new_centers, centers) and not counts.any()


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("n", [0] + N_SAMPLES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_update_closest_sq_dist_matches_reference(dtype, n, d):
    X = samples(d, 4, dtype)[:n]
    center = kmeans_centers(d, 4)[0]
    rng = np.random.default_rng([n, d, 7])
    before = rng.uniform(0.0, 2.0 * d, size=n)  # some below, some above the new distance
    before[: n // 10] = np.inf
    closest = before.copy()
    assert _kmeans.update_closest_sq_dist(X, center, closest, n_threads=REF_THREADS) is None
    dist = ref_sq_dist(X, center[None])[:, 0]
    expected = np.minimum(before, dist)
    assert_close("update_closest_sq_dist", closest, expected, expected, RTOL, dtype)
    assert np.all(closest <= before)


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("weights", WEIGHTS)
@pytest.mark.parametrize("n", [0] + N_SAMPLES)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_candidate_potentials_matches_reference(dtype, n, weights, d):
    X = samples(d, 4, dtype)[:n]
    w = sample_weights(weights, n) if n else (None if weights == "none" else np.empty(0))
    ww = np.ones(n) if w is None else w
    centers = kmeans_centers(d, 4)
    closest = ref_sq_dist(X, centers[:1])[:, 0]
    candidates = np.ascontiguousarray(np.vstack([centers[1:], centers[:1] + 0.1]))
    potentials = np.full(len(candidates), np.nan)

    assert _kmeans.candidate_potentials(X, w, candidates, closest, potentials,
                                        n_threads=REF_THREADS) is None

    terms = np.minimum(closest[:, None], ref_sq_dist(X, candidates)) * ww[:, None]
    expected = terms.sum(axis=0)
    assert_close("candidate_potentials", potentials, expected, expected, RTOL, dtype)


# --------------------------------------------------------------------------------------------
# Determinism across thread counts
# --------------------------------------------------------------------------------------------

BIG = 50_000
# 50 000 rows: 196 chunks dealt to 64 accumulator groups; 257 and 3001: few, uneven chunks.
DETERMINISM_N = [257, 3001, BIG]


@functools.lru_cache(maxsize=None)
def big_problem(dtype):
    d, k = 8, 4
    means, covs, _, weights = mixture(d, k, seed=1)
    rng = np.random.default_rng(11)
    z = rng.choice(k, size=BIG, p=weights)
    X = means[z] + np.einsum("nij,nj->ni", np.linalg.cholesky(covs)[z], rng.normal(size=(BIG, d)))
    X = np.ascontiguousarray(X, dtype=dtype)
    w = rng.uniform(0.0, 2.0, size=BIG)
    w[rng.random(BIG) < 0.1] = 0.0
    resp = rng.dirichlet(np.ones(k), size=BIG)
    for a in (X, w, z, resp):
        a.setflags(write=False)
    return X, w, z, resp


THREADS = [1, 2, 3, 0]  # 0: the OpenMP default


def same_for_all_threads(run):
    """run(n_threads) -> tuple of arrays/floats; asserts bit-identical across THREADS."""
    results = [run(t) for t in THREADS]
    for t, other in zip(THREADS[1:], results[1:]):
        assert len(other) == len(results[0])
        for i, (a, b) in enumerate(zip(results[0], other)):
            assert np.array_equal(np.asarray(a), np.asarray(b)), f"output {i}: n_threads=1 vs {t}"


@pytest.mark.parametrize("n", DETERMINISM_N)
@pytest.mark.parametrize("form", PASS_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_em_pass_bit_identical_across_thread_counts(dtype, form, n):
    X, w, _, _ = big_problem(dtype)
    means, chol, log_norm, _ = model_params(8, 4, form, seed=1)

    def run(t):
        stats = empty_stats(4, 8, form)
        ll = _em.em_pass(X[:n], w[:n], means, chol, log_norm, *stats, n_threads=t)
        return (ll, *stats)

    same_for_all_threads(run)


@pytest.mark.parametrize("n", DETERMINISM_N)
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_stats_bit_identical_across_thread_counts(dtype, form, n):
    X, w, z, resp = big_problem(dtype)
    shifts = random_shifts(8, 4)

    def run(t):
        a = empty_stats(4, 8, form)
        b = empty_stats(4, 8, form)
        _em.stats_from_labels(X[:n], w[:n], z[:n], shifts, *a, n_threads=t)
        _em.stats_from_resp(X[:n], w[:n], resp[:n], shifts, *b, n_threads=t)
        return (*a, *b)

    same_for_all_threads(run)


@pytest.mark.parametrize("n", DETERMINISM_N)
@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_bit_identical_across_thread_counts(dtype, form, n):
    X, _, _, _ = big_problem(dtype)
    means, chol, log_norm, _ = model_params(8, 4, form, seed=1)

    def run(t):
        out = (np.empty(n, dtype), np.empty(n, np.int64), np.empty((n, 4), dtype))
        _em.score(X[:n], means, chol, log_norm, *out, n_threads=t)
        return out

    same_for_all_threads(run)


@pytest.mark.parametrize("n", DETERMINISM_N)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_kmeans_kernels_bit_identical_across_thread_counts(dtype, n):
    X, w, _, _ = big_problem(dtype)
    X, w = X[:n], w[:n]
    centers = kmeans_centers(8, 4)
    closest0 = ref_sq_dist(X, centers[:1])[:, 0]

    def run(t):
        new_centers, counts, labels = np.empty((4, 8)), np.empty(4), np.empty(n, np.int64)
        inertia = _kmeans.lloyd_step(X, w, centers, new_centers, counts, labels, n_threads=t)
        potentials = np.empty(3)
        _kmeans.candidate_potentials(X, w, centers[1:], closest0, potentials, n_threads=t)
        closest = closest0.copy()
        _kmeans.update_closest_sq_dist(X, centers[1], closest, n_threads=t)
        return inertia, new_centers, counts, labels, potentials, closest

    same_for_all_threads(run)


# --------------------------------------------------------------------------------------------
# float32 input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [7, 3001])
def test_kmeans_float32_input_gives_the_float64_result_of_the_same_values(n):
    """The k-means kernels widen each float32 value to float64 before any arithmetic: float32
    input gives the result of the same values in float64, to the compiler's reassociation."""
    d, k = 8, 4
    X32 = samples(d, k, np.float32)[:n]
    X64 = X32.astype(np.float64)
    w = sample_weights("with_zeros", n)
    centers = kmeans_centers(d, k)
    closest_in = np.random.default_rng(10).uniform(0, 20, size=n)

    def run(X):
        new_centers, counts, lab = np.empty((k, d)), np.empty(k), np.empty(n, np.int64)
        out = [_kmeans.lloyd_step(X, w, centers, new_centers, counts, lab), new_centers,
               counts, lab]
        closest = closest_in.copy()
        _kmeans.update_closest_sq_dist(X, centers[0], closest)
        potentials = np.empty(k - 1)
        _kmeans.candidate_potentials(X, w, centers[1:], closest, potentials)
        return out + [closest, potentials]

    for i, (a, b) in enumerate(zip(run(X32), run(X64))):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0, err_msg=f"output {i} differs")


@pytest.mark.parametrize("form", FORMS)
def test_float32_statistics_are_taken_about_the_exact_shifts(form):
    """The float32 kernels take moments about the shifts rounded to float32 and move them
    onto the exact float64 shifts afterwards. Far from the origin the rounding (here up to
    5e-4) is as large as the spread of a cluster: without the move, sums and scatter would
    be off by ~1e-3 of their scale."""
    d, k, n, offset = 3, 4, 3001, 1e4
    X = (samples(d, k, np.float64)[:n] + offset).astype(np.float32)
    w = sample_weights("positive", n)
    labels = np.random.default_rng(8).integers(0, k, size=n)
    shifts = random_shifts(d, k) + offset
    assert np.abs(shifts - shifts.astype(np.float32)).max() > 1e-4
    resp = np.zeros((n, k))
    resp[np.arange(n), labels] = 1.0
    ref, scale = ref_stats(X, w, resp, shifts, form)
    stats = empty_stats(k, d, form)
    _em.stats_from_labels(X, w, labels, shifts, *stats)
    check_stats("stats_from_labels far from the origin", stats, ref, scale, np.float32)
    stats = empty_stats(k, d, form)
    _em.stats_from_resp(X, w, resp, shifts, *stats)
    check_stats("stats_from_resp far from the origin", stats, ref, scale, np.float32)


# --------------------------------------------------------------------------------------------
# Data far from the origin
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", FORMS)
def test_shifted_statistics_exact_far_from_origin(form):
    d, k, n, offset = 3, 4, 3001, 1e6
    X = samples(d, k, np.float64)
    w = sample_weights("positive", n)
    means, chol, log_norm, _ = model_params(d, k, form)
    near = empty_stats(k, d, form)
    far = empty_stats(k, d, form)
    _em.em_pass(X, w, means, chol, log_norm, *near)
    _em.em_pass(X + offset, w, means + offset, chol, log_norm, *far)

    def covariances(stats):
        nk, sums, scatter = stats
        mean_offset = sums / nk[:, None]
        if form == "full":
            return scatter / nk[:, None, None] - np.einsum("ki,kj->kij", mean_offset, mean_offset)
        return scatter / nk[:, None] - mean_offset**2

    cov_near, cov_far = covariances(near), covariances(far)
    np.testing.assert_allclose(far[0], near[0], rtol=1e-9)
    np.testing.assert_allclose(far[1] / far[0][:, None], near[1] / near[0][:, None], rtol=0,
                               atol=1e-9)
    scale = np.abs(cov_near).max(axis=tuple(range(1, cov_near.ndim)), keepdims=True)
    assert np.all(np.abs(cov_far - cov_near) <= 1e-9 * scale)
    DEVIATIONS[("float64", "far-from-origin covariance")] = max(
        DEVIATIONS[("float64", "far-from-origin covariance")],
        float((np.abs(cov_far - cov_near) / scale).max()))

    # Hard labels, moments about the (shifted) cluster means.
    labels = np.random.default_rng(8).integers(0, k, size=n)
    lab_near = empty_stats(k, d, form)
    lab_far = empty_stats(k, d, form)
    _em.stats_from_labels(X, w, labels, means, *lab_near)
    _em.stats_from_labels(X + offset, w, labels, means + offset, *lab_far)
    cov_near, cov_far = covariances(lab_near), covariances(lab_far)
    scale = np.abs(cov_near).max(axis=tuple(range(1, cov_near.ndim)), keepdims=True)
    assert np.all(np.abs(cov_far - cov_near) <= 1e-9 * scale)

    # Sanity check that the test is sensitive: the raw-moment formula loses digits here.
    Xf = X + offset
    raw = (w @ Xf**2) / w.sum() - ((w @ Xf) / w.sum()) ** 2
    centred = (w @ (X - (w @ X) / w.sum()) ** 2) / w.sum()
    assert np.abs(raw - centred).max() / centred.max() > 1e-8


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_pooled_statistics_keep_their_digits_far_from_the_origin(dtype):
    # The pooled scatter is formed about the mean of the means: its terms, and so its
    # errors, are of the clusters' spread. About the origin they would be of the offset's
    # square, and float32 would keep no digit of the covariance.
    d, k, n = 8, 4, 3001
    offset = 1e6 if dtype == np.float64 else 1e4
    means, chol, log_norm, covs = model_params(d, k, "pooled")
    # Means exact in float32, so that the float32 densities are those of the reference.
    far = (means + offset).astype(np.float32).astype(np.float64)
    X = (samples(d, k, np.float64)[:n] + offset).astype(dtype)
    w = sample_weights("with_zeros", n)
    stats = empty_stats(k, d, "pooled")
    _em.em_pass(X, w, far, chol, log_norm, *stats, n_threads=REF_THREADS)

    log_prob = ref_weighted_log_prob(X, far, covs, mixture(d, k)[3], "pooled")
    resp = np.exp(log_prob - logsumexp(log_prob, axis=1)[:, None])
    check_stats("em_pass pooled far from the origin", stats,
                *ref_stats(X, w, resp, far, "pooled"), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_pooled_statistics_of_a_component_without_weight(dtype):
    d, k, n = 8, 4, 1000
    means, chol, log_norm, _ = model_params(d, k, "pooled")
    log_norm = log_norm.copy()
    log_norm[1] = -np.inf  # a mixture weight of 0
    X = samples(d, k, dtype)[:n]
    pooled, full = empty_stats(k, d, "pooled"), empty_stats(k, d, "tied")
    assert (_em.em_pass(X, None, means, chol, log_norm, *pooled)
            == _em.em_pass(X, None, means, chol, log_norm, *full))
    assert pooled[0][1] == 0.0 and not pooled[1][1].any()
    assert_close("pooled scatter, one component empty", pooled[2],
                 full[2].sum(axis=0, keepdims=True), np.abs(full[2]).sum(axis=0),
                 rtol_for(dtype), dtype)


# --------------------------------------------------------------------------------------------
# Argument validation
# --------------------------------------------------------------------------------------------


def _em_args(form="full", n=10, d=3, k=4):
    X = np.ascontiguousarray(samples(d, k, np.float64)[:n])
    means, chol, log_norm, _ = model_params(d, k, form)
    return X, means, chol, log_norm, empty_stats(k, d, form)


@pytest.mark.parametrize("case", [
    "means_wrong_features", "nk_wrong_length", "sums_wrong_shape", "scatter_wrong_shape",
    "chol_form_mismatch", "sample_weight_wrong_length", "log_norm_wrong_length",
])
def test_em_pass_rejects_bad_shapes(case):
    X, means, chol, log_norm, (nk, sums, scatter) = _em_args()
    w = None
    if case == "means_wrong_features":
        means = np.zeros((4, 2))
    elif case == "nk_wrong_length":
        nk = np.zeros(3)
    elif case == "sums_wrong_shape":
        sums = np.zeros((4, 2))
    elif case == "scatter_wrong_shape":
        scatter = np.zeros((4, 3, 2))
    elif case == "chol_form_mismatch":
        chol = model_params(3, 4, "diag")[1]
    elif case == "sample_weight_wrong_length":
        w = np.ones(9)
    elif case == "log_norm_wrong_length":
        # KERNEL BUG: not validated; the kernel reads log_norm[2:4] out of bounds.
        log_norm = log_norm[:2].copy()
    with pytest.raises(ValueError):
        _em.em_pass(X, w, means, chol, log_norm, nk, sums, scatter)


def test_em_pass_rejects_non_contiguous_or_wrong_dtype_input():
    X, means, chol, log_norm, stats = _em_args()
    with pytest.raises(ValueError):
        _em.em_pass(np.asfortranarray(X), None, means, chol, log_norm, *stats)
    with pytest.raises((ValueError, TypeError)):
        _em.em_pass(X.astype(np.int64), None, means, chol, log_norm, *stats)


@pytest.mark.parametrize("case", ["label_too_large", "label_negative", "labels_wrong_length",
                                  "shifts_wrong_shape"])
def test_stats_from_labels_rejects_bad_input(case):
    X, means, _, _, stats = _em_args()
    labels = np.arange(10) % 4
    if case == "label_too_large":
        labels[3] = 4
    elif case == "label_negative":
        labels[7] = -1
    elif case == "labels_wrong_length":
        labels = labels[:9]
    elif case == "shifts_wrong_shape":
        means = means[:, :2]
    with pytest.raises(ValueError):
        _em.stats_from_labels(X, None, labels, means, *stats)


@pytest.mark.parametrize("case", ["resp_too_few_rows", "resp_transposed", "weights_wrong"])
def test_stats_from_resp_rejects_bad_shapes(case):
    X, means, _, _, stats = _em_args()
    resp = np.full((10, 4), 0.25)
    w = None
    if case == "resp_too_few_rows":
        resp = resp[:9]
    elif case == "resp_transposed":
        # KERNEL BUG: only resp.size is checked, so a (K, n) array is silently misread.
        resp = np.ascontiguousarray(np.random.default_rng(9).dirichlet(np.ones(4), size=10).T)
    elif case == "weights_wrong":
        w = np.ones(11)
    with pytest.raises(ValueError):
        _em.stats_from_resp(X, w, resp, means, *stats)


@pytest.mark.parametrize("case", ["log_prob_norm_wrong_length", "labels_wrong_length",
                                  "resp_wrong_shape", "chol_wrong_size", "log_norm_wrong_length",
                                  "means_wrong_features", "output_dtype_mismatch"])
def test_score_rejects_bad_shapes(case):
    X, means, chol, log_norm, _ = _em_args()
    lpn, labels, resp = np.empty(10), np.empty(10, np.int64), np.empty((10, 4))
    if case == "log_prob_norm_wrong_length":
        lpn = np.empty(9)
    elif case == "labels_wrong_length":
        labels = np.empty(11, np.int64)
    elif case == "resp_wrong_shape":
        resp = np.empty((10, 3))
    elif case == "chol_wrong_size":
        chol = chol[:3]
    elif case == "log_norm_wrong_length":
        log_norm = log_norm[:3]
    elif case == "means_wrong_features":
        means = np.zeros((4, 2))
    elif case == "output_dtype_mismatch":
        lpn = np.empty(10, np.float32)
    with pytest.raises(ValueError):
        _em.score(X, means, chol, log_norm, lpn, labels, resp)


@pytest.mark.parametrize("case", ["centers_wrong_features", "new_centers_wrong_shape",
                                  "counts_wrong_length", "labels_wrong_length",
                                  "sample_weight_wrong_length"])
def test_lloyd_step_rejects_bad_shapes(case):
    X = samples(3, 4, np.float64)[:10]
    centers, new_centers = kmeans_centers(3, 4), np.empty((4, 3))
    counts, labels, w = np.empty(4), np.empty(10, np.int64), None
    if case == "centers_wrong_features":
        centers = np.zeros((4, 2))
    elif case == "new_centers_wrong_shape":
        new_centers = np.empty((3, 3))
    elif case == "counts_wrong_length":
        counts = np.empty(5)
    elif case == "labels_wrong_length":
        labels = np.empty(9, np.int64)
    elif case == "sample_weight_wrong_length":
        w = np.ones(11)
    with pytest.raises(ValueError):
        _kmeans.lloyd_step(X, w, centers, new_centers, counts, labels)


@pytest.mark.parametrize("case", ["center_wrong_length", "closest_wrong_length"])
def test_update_closest_sq_dist_rejects_bad_shapes(case):
    X = samples(3, 4, np.float64)[:10]
    center, closest = np.zeros(3), np.full(10, np.inf)
    if case == "center_wrong_length":
        center = np.zeros(2)
    else:
        closest = np.full(9, np.inf)
    with pytest.raises(ValueError):
        _kmeans.update_closest_sq_dist(X, center, closest)


@pytest.mark.parametrize("case", ["candidates_wrong_features", "closest_wrong_length",
                                  "potentials_wrong_length", "sample_weight_wrong_length"])
def test_candidate_potentials_rejects_bad_shapes(case):
    X = samples(3, 4, np.float64)[:10]
    candidates, closest, potentials, w = np.zeros((2, 3)), np.ones(10), np.empty(2), None
    if case == "candidates_wrong_features":
        candidates = np.zeros((2, 4))
    elif case == "closest_wrong_length":
        closest = np.ones(11)
    elif case == "potentials_wrong_length":
        potentials = np.empty(3)
    else:
        w = np.ones(9)
    with pytest.raises(ValueError):
        _kmeans.candidate_potentials(X, w, candidates, closest, potentials)


# Degenerate sizes that must be handled (result or ValueError) without killing the process;
# run in a subprocess because a failure here is a crash (SIGFPE / heap corruption).
_DEGENERATE = {
    # KERNEL BUG: n_groups_of(n_chunks, acc_size=0) divides by zero -> SIGFPE.
    "candidate_potentials_no_candidates": """
        X = np.ones((5, 2))
        potentials = np.empty(0)
        try:
            _kmeans.candidate_potentials(X, None, np.empty((0, 2)), np.zeros(5), potentials)
        except ValueError:
            pass
    """,
    # KERNEL BUG: K = 0 is not rejected; every row is labelled 0 and counts[0] is written
    # out of bounds -> heap corruption ("corrupted size vs. prev_size", SIGABRT).
    "lloyd_step_no_centers": """
        X = np.ones((300, 2))
        try:
            _kmeans.lloyd_step(X, None, np.empty((0, 2)), np.empty((0, 2)), np.empty(0),
                               np.empty(300, np.int64))
        except ValueError:
            pass
        else:
            raise SystemExit("lloyd_step accepted zero centres")
    """,
}


@pytest.mark.parametrize("case", sorted(_DEGENERATE))
def test_degenerate_sizes_do_not_crash(case):
    # A crash must fail this test, not kill pytest: run in a child interpreter, from an
    # empty directory so that the installed gmmfast is the one imported.
    code = "import numpy as np\nfrom gmmfast import _em, _kmeans\n" + textwrap.dedent(
        _DEGENERATE[case]
    )
    with tempfile.TemporaryDirectory() as empty_dir:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60, cwd=empty_dir)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)


def test_module_constants():
    assert _em.ROWS_PER_CHUNK == 256
    assert isinstance(_em.openmp_enabled(), bool)
    assert _em.max_threads() >= 1


@pytest.mark.parametrize("form", DENSITY_FORMS)
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_score_of_a_row_does_not_depend_on_where_chunks_fall(dtype, form, d):
    # Dask blocks and slices of X shift the chunk boundaries; a row's outputs must not move.
    k, n = 4, 1000
    X = samples(d, k, dtype)[:n]
    means, chol, log_norm, _ = model_params(d, k, form)
    whole = np.empty(n, dtype), np.empty((n, k), dtype)
    _em.score(X, means, chol, log_norm, whole[0], None, whole[1])
    for offset in (1, 5, 7, 15, 300):
        part = np.empty(n - offset, dtype), np.empty((n - offset, k), dtype)
        _em.score(X[offset:], means, chol, log_norm, part[0], None, part[1])
        if form != "diag" and d >= 32:
            # BLAS (trmm) treats the edge rows of its blocks with other kernels: equal to
            # rounding only.
            rtol = 1e-13 if dtype == np.float64 else 1e-6
            np.testing.assert_allclose(part[0], whole[0][offset:], rtol=rtol)
            np.testing.assert_allclose(part[1], whole[1][offset:], rtol=100 * rtol,
                                       atol=1e-300 if dtype == np.float64 else 1e-37)
        else:
            assert np.array_equal(part[0], whole[0][offset:])
            assert np.array_equal(part[1], whole[1][offset:])
