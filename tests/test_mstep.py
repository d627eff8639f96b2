"""The M-step and the parameter algebra (gmmfast._mstep) against plain NumPy formulas.

The references work from the responsibilities directly, in two passes (means first, then
the scatter about them), so they share nothing with the shifted-statistics algebra under
test. Statistics come from the compiled ``stats_from_resp`` (itself tested against NumPy in
test_kernels.py).
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import linalg

from gmmfast import _em
from gmmfast._mstep import (
    COVARIANCE_TYPES,
    ILL_DEFINED_COVARIANCE,
    covariances_from_cholesky,
    empty_stats,
    estimate_parameters,
    kernel_parameters,
    n_parameters,
    precision_cholesky,
    precision_cholesky_from_precisions,
    precisions_from_cholesky,
)

REG = 1e-6


def problem(dtype, n=700, d=3, k=4, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * [1.0, 3.0, 0.5][:d] + offset).astype(dtype)
    resp = rng.dirichlet(np.ones(k), size=n)
    weights = rng.uniform(0.2, 2.0, size=n)
    return X, resp, weights


def reference_parameters(X, resp, weights, covariance_type, eps):
    """scikit-learn's M-step written out: two passes, float64, no shifts."""
    X = X.astype(np.float64)
    r = resp * weights[:, None]
    nk = r.sum(axis=0) + 10 * eps
    means = r.T @ X / nk[:, None]
    d = X.shape[1]
    scatters = np.array([(r[:, c, None] * (X - means[c])).T @ (X - means[c])
                         for c in range(len(nk))])
    if covariance_type == "full":
        covariances = scatters / nk[:, None, None] + REG * np.eye(d)
    elif covariance_type == "tied":
        covariances = scatters.sum(axis=0) / nk.sum() + REG * np.eye(d)
    elif covariance_type == "diag":
        covariances = np.diagonal(scatters, axis1=1, axis2=2) / nk[:, None] + REG
    else:
        covariances = (np.diagonal(scatters, axis1=1, axis2=2) / nk[:, None] + REG).mean(1)
    return nk, means, covariances


def stats_about(X, resp, weights, covariance_type, shifts):
    k, d = resp.shape[1], X.shape[1]
    nk, sums, scatter = empty_stats(covariance_type, k, d)
    _em.stats_from_resp(X, weights, resp, shifts, nk, sums, scatter)
    return nk, sums, scatter, shifts


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("shift_kind", ["zero", "data_mean", "far_away"])
def test_estimate_parameters_matches_two_pass_reference(dtype, covariance_type, shift_kind):
    X, resp, weights = problem(dtype)
    eps = np.finfo(dtype).eps
    shift_row = {"zero": np.zeros(3), "data_mean": X.mean(axis=0),
                 "far_away": X.mean(axis=0) + 50.0}[shift_kind]
    shifts = np.ascontiguousarray(np.tile(shift_row, (resp.shape[1], 1)), dtype=np.float64)
    nk, means, covariances = estimate_parameters(
        *stats_about(X, resp, weights, covariance_type, shifts), covariance_type, REG, eps
    )
    ref_nk, ref_means, ref_cov = reference_parameters(X, resp, weights, covariance_type, eps)
    # float32 data: the kernels compute in float32, so each responsibility is rounded to
    # float32 (half an ulp, 6e-8) before it is summed in float64.
    assert_allclose(nk, ref_nk, rtol=1e-13 if dtype == np.float64 else 1e-6)
    if dtype == np.float32:
        # The 10·eps added to every count (scikit-learn's guard against empty components)
        # pulls scikit-learn's means towards the origin and gmmfast's towards the shift by
        # |shift| · 10·eps / nk: ~1e-8 for float32's eps, far below float32's own 1e-4.
        # The float32 kernels' products cost (|shift − mean| / σ)² · eps32 of a covariance's
        # scale: measured 1e-7 about the mean or 0, 5e-5 for the shift 50 away (σ >= 0.5).
        assert_allclose(means, ref_means, rtol=1e-4, atol=1e-4 * np.abs(ref_means).max())
        assert_allclose(covariances, ref_cov, rtol=1e-4, atol=1e-4 * np.abs(ref_cov).max())
        return
    assert_allclose(means, ref_means, rtol=1e-12, atol=1e-12)
    # A shift 50 away costs digits in the correction term: ~(50 / σ)² · 1e-16.
    rtol = 1e-9 if shift_kind == "far_away" else 1e-12
    assert_allclose(covariances, ref_cov, rtol=rtol)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_estimate_parameters_stays_exact_far_from_the_origin(covariance_type):
    """Statistics about the current means keep covariances exact at 1e6 (DESIGN §5)."""
    X, resp, weights = problem(np.float64)
    ref_nk, ref_means, ref_cov = reference_parameters(X, resp, weights, covariance_type,
                                                      np.finfo(float).eps)
    far = X + 1e6
    shifts = np.ascontiguousarray(ref_means + 1e6 + 0.01)  # near, not at, the means
    _, means, covariances = estimate_parameters(
        *stats_about(far, resp, weights, covariance_type, shifts), covariance_type, REG,
        np.finfo(float).eps,
    )
    assert_allclose(means - 1e6, ref_means, atol=1e-9)
    # X + 1e6 itself is rounded to ~1e-10: compare on the scale of the covariances.
    assert_allclose(covariances, ref_cov, rtol=1e-9, atol=1e-9 * np.abs(ref_cov).max())


def test_empty_component_gets_finite_parameters():
    """An empty component gets nk = 10·eps, the shift as mean and reg_covar as variance."""
    X, resp, weights = problem(np.float64, k=3)
    resp[:, 2] = 0.0
    resp /= resp.sum(axis=1, keepdims=True)
    shifts = np.ascontiguousarray(np.tile(X.mean(axis=0), (3, 1)))
    for covariance_type in ("full", "diag"):
        nk, means, covariances = estimate_parameters(
            *stats_about(X, resp, weights, covariance_type, shifts), covariance_type, REG,
            np.finfo(float).eps,
        )
        assert nk[2] == 10 * np.finfo(float).eps
        assert_allclose(means[2], shifts[2])
        expected = REG * np.eye(3) if covariance_type == "full" else np.full(3, REG)
        assert_allclose(covariances[2], expected, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precision_cholesky_round_trips(covariance_type):
    X, resp, weights = problem(np.float64)
    _, _, covariances = reference_parameters(X, resp, weights, covariance_type,
                                             np.finfo(float).eps)
    chol = precision_cholesky(covariances, covariance_type)
    precisions = precisions_from_cholesky(chol, covariance_type)
    if covariance_type in ("full", "tied"):
        stack = chol[None] if covariance_type == "tied" else chol
        assert np.all(np.tril(stack, -1) == 0), "U must be upper-triangular"
        inverse = np.linalg.inv(covariances)
        assert_allclose(precisions, inverse, rtol=1e-10, atol=1e-12)
    else:
        assert_allclose(precisions, 1.0 / covariances, rtol=1e-13)
    assert_allclose(covariances_from_cholesky(chol, covariance_type), covariances, rtol=1e-10)
    # From the precisions, the same upper-triangular factor comes back.
    assert_allclose(precision_cholesky_from_precisions(precisions, covariance_type), chol,
                    rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("float32_data", [False, True])
def test_ill_defined_covariance_message(covariance_type, float32_data):
    d = 3
    singular = {
        "full": np.zeros((2, d, d)),
        "tied": np.zeros((d, d)),
        "diag": np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]),
        "spherical": np.array([1.0, -1e-300]),
    }[covariance_type]
    with pytest.raises(ValueError) as excinfo:
        precision_cholesky(singular, covariance_type, float32_data)
    message = str(excinfo.value)
    assert message.startswith(ILL_DEFINED_COVARIANCE)
    assert ("passing float64 data instead of float32" in message) == float32_data


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_kernel_parameters_give_the_mixture_log_density(covariance_type):
    """log_norm + the kernel's quadratic form must be log π_k + log N(x | μ_k, Σ_k)."""
    from scipy.stats import multivariate_normal

    X, resp, weights = problem(np.float64, n=50)
    nk, means, covariances = reference_parameters(X, resp, weights, covariance_type,
                                                  np.finfo(float).eps)
    mix = nk / nk.sum()
    chol = precision_cholesky(covariances, covariance_type)
    k_means, k_chol, log_norm = kernel_parameters(mix, means, chol, covariance_type, 3)
    log_prob_norm = np.empty(len(X))
    resp_out = np.empty((len(X), len(mix)))
    _em.score(X, k_means, k_chol, log_norm, log_prob_norm, None, resp_out)
    full_cov = {
        "full": covariances,
        "tied": np.repeat(covariances[None], 4, axis=0),
        "diag": np.array([np.diag(c) for c in np.atleast_2d(covariances)]),
        "spherical": np.array([c * np.eye(3) for c in np.atleast_1d(covariances)]),
    }[covariance_type]
    weighted = np.column_stack([
        np.log(mix[c]) + multivariate_normal(means[c], full_cov[c]).logpdf(X)
        for c in range(len(mix))
    ])
    expected = np.logaddexp.reduce(weighted, axis=1)
    assert_allclose(log_prob_norm, expected, rtol=1e-12)
    assert_allclose(resp_out, np.exp(weighted - expected[:, None]), rtol=1e-10, atol=1e-15)


def test_n_parameters_matches_scikit_learn_counts():
    # scikit-learn's own suite: d=5, k=2.
    counts = {t: n_parameters(t, 2, 5) for t in COVARIANCE_TYPES}
    assert counts == {"spherical": 13, "diag": 21, "tied": 26, "full": 41}
    assert all(isinstance(v, int) for v in counts.values())


@pytest.mark.parametrize("d", [1, 2, 5, 40])
def test_compiled_precisions_cholesky_matches_scipy(d):
    rng = np.random.default_rng(d)
    A = rng.standard_normal((3, d, d))
    covariances = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(d)
    out = np.full_like(covariances, np.nan)
    assert _em.precisions_cholesky(covariances, out) == -1
    for cov, U in zip(covariances, out):
        lower = linalg.cholesky(cov, lower=True)
        expected = linalg.solve_triangular(lower, np.eye(d), lower=True).T
        assert np.array_equal(U, np.triu(U)), "not exactly upper-triangular"
        np.testing.assert_allclose(U, expected, rtol=1e-12, atol=1e-12 * np.abs(expected).max())
        np.testing.assert_allclose(U @ U.T @ cov, np.eye(d), atol=1e-12 * np.linalg.cond(cov))


@pytest.mark.parametrize("bad", ["negative", "nan", "inf", "singular"])
def test_compiled_precisions_cholesky_reports_the_first_failure(bad):
    covariances = np.stack([np.eye(3)] * 4)
    covariances[2] = {"negative": -np.eye(3), "nan": np.full((3, 3), np.nan),
                      "inf": np.diag([1.0, np.inf, 1.0]), "singular": np.ones((3, 3))}[bad]
    covariances[3] = -np.eye(3)
    assert _em.precisions_cholesky(covariances, np.empty_like(covariances)) == 2


def test_compiled_precisions_cholesky_checks_shapes():
    with pytest.raises(ValueError, match=r"shape \(K, D, D\)"):
        _em.precisions_cholesky(np.zeros((2, 3, 3)), np.zeros((2, 3, 2)))
    assert _em.precisions_cholesky(np.zeros((0, 3, 3)), np.zeros((0, 3, 3))) == -1
