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

import _mstep_reference as reference
from _mstep_reference import estimate_parameters, kernel_parameters, sweep_plane_rotations
from gmmfast import _em, _mstep_core
from gmmfast._mstep import (
    COVARIANCE_TYPES,
    ILL_DEFINED_COVARIANCE,
    covariances_from_cholesky,
    n_parameters,
    precision_cholesky,
    precision_cholesky_from_precisions,
    precisions_from_cholesky,
)
from gmmfast._mstep_core import empty_stats

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


# --------------------------------------------------------------------------------------------
# The compiled twins (gmmfast._mstep_core) against the NumPy formulas above
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("shape", [(700, 3, 4), (300, 1, 1), (900, 9, 10)])
def test_compiled_estimate_parameters_matches_numpy(dtype, covariance_type, shape):
    n, d, k = shape
    rng = np.random.default_rng(d)
    X = (rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, size=d) + 5.0).astype(dtype)
    resp = rng.dirichlet(np.ones(k), size=n)
    resp[:, -1] = 0.0 if k > 1 else resp[:, -1]  # an empty component (nk = 10·eps)
    weights = rng.uniform(0.2, 2.0, size=n)
    shifts = np.ascontiguousarray(rng.normal(size=(k, d)) + 5.0)
    stats = stats_about(X, resp, weights, covariance_type, shifts)
    eps = np.finfo(dtype).eps
    compiled = _mstep_core.estimate_parameters(*stats, covariance_type, REG, eps)
    reference = estimate_parameters(*stats, covariance_type, REG, eps)
    for got, expected in zip(compiled, reference):
        assert got.dtype == np.float64 and got.shape == expected.shape
        assert got.flags.c_contiguous
        # The same operations in the same order; only sums of more than 8 terms (NumPy's
        # pairwise summation) may round differently.
        assert_allclose(got, expected, rtol=1e-14, atol=1e-15 * np.abs(expected).max())


def test_compiled_estimate_parameters_is_within_an_ulp_on_small_problems():
    """Below 8 components and features NumPy sums in order too: the same to an ulp (exact
    here; the build's reassociation flags leave compilers some freedom)."""
    X, resp, weights = problem(np.float64)
    shifts = np.ascontiguousarray(np.tile(X.mean(axis=0), (4, 1)))
    for covariance_type in COVARIANCE_TYPES:
        stats = stats_about(X, resp, weights, covariance_type, shifts)
        compiled = _mstep_core.estimate_parameters(*stats, covariance_type, REG, 1e-16)
        reference = estimate_parameters(*stats, covariance_type, REG, 1e-16)
        for got, expected in zip(compiled, reference):
            assert_allclose(got, expected, rtol=2.3e-16, atol=0)


def test_compiled_estimate_parameters_checks_shapes():
    nk, sums, scatter = empty_stats("full", 4, 3)
    shifts = np.zeros((4, 3))
    with pytest.raises(ValueError, match="sums and shifts"):
        _mstep_core.estimate_parameters(nk, sums, scatter, shifts[:3], "full", REG, 1e-16)
    with pytest.raises(ValueError, match="scatter has shape"):
        _mstep_core.estimate_parameters(nk, sums, scatter, shifts, "diag", REG, 1e-16)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3, 4), (9, 10), (1, 1)])
def test_compiled_kernel_parameters_match_numpy(covariance_type, dtype, shape):
    d, k = shape
    rng = np.random.default_rng(k)
    X = rng.normal(size=(40 * k, d))
    resp = rng.dirichlet(np.ones(k), size=len(X))
    nk, means, covariances = reference_parameters(X, resp, np.ones(len(X)), covariance_type,
                                                  np.finfo(float).eps)
    mix = nk / nk.sum()
    if k > 1:
        mix[1] = 0.0  # a component of zero weight: log_norm −inf
    chol = precision_cholesky(covariances, covariance_type)
    # Fitted float32 models hand their float32 attributes to kernel_parameters.
    args = [a.astype(dtype) for a in (mix, means, chol)]
    compiled = _mstep_core.kernel_parameters(*args, covariance_type, d)
    reference = kernel_parameters(*args, covariance_type, d)
    for got, expected in zip(compiled, reference):
        assert got.dtype == np.float64 and got.shape == expected.shape
        assert got.flags.c_contiguous
        assert_allclose(got, expected, rtol=1e-14)


def test_compiled_kernel_parameters_check_shapes():
    means, chol = np.zeros((4, 3)), np.stack([np.eye(3)] * 4)
    with pytest.raises(ValueError, match="weights and means must have shapes"):
        _mstep_core.kernel_parameters(np.ones(3) / 3, means, chol, "full", 3)
    with pytest.raises(ValueError, match="precisions_chol has shape"):
        _mstep_core.kernel_parameters(np.ones(4) / 4, means, chol[:, 0], "full", 3)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("shape", [(3, 4), (9, 10), (20, 3)])
def test_compiled_m_step_matches_numpy(covariance_type, shape):
    """Weights, means, covariances and factors as the NumPy/LAPACK path gives them."""
    d, k = shape
    rng = np.random.default_rng(d)
    X = rng.normal(size=(700, d)) * 2.0 + 3.0
    resp = rng.dirichlet(np.ones(k), size=len(X))
    weights = rng.uniform(0.2, 2.0, size=len(X))
    shifts = np.ascontiguousarray(np.tile(X.mean(axis=0), (k, 1)))
    stats = stats_about(X, resp, weights, covariance_type, shifts)
    eps = np.finfo(float).eps
    got = _mstep_core.m_step(*stats, covariance_type, REG, eps)
    nk, means, covariances = estimate_parameters(*stats, covariance_type, REG, eps)
    stack = np.ascontiguousarray(covariances[None] if covariance_type == "tied"
                                 else covariances)
    if covariance_type in ("full", "tied"):
        chol = np.empty_like(stack)
        assert _em.precisions_cholesky(stack, chol) == -1
        chol = chol[0] if covariance_type == "tied" else chol
    else:
        chol = 1.0 / np.sqrt(covariances)
    for name, a, b in zip(("weights", "means", "covariances", "chol"), got,
                          (nk / nk.sum(), means, covariances, chol)):
        assert a.shape == b.shape and a.dtype == np.float64, name
        assert_allclose(a, b, rtol=1e-12, atol=1e-14 * np.abs(b).max(), err_msg=name)
    if covariance_type in ("full", "tied"):
        assert np.all(np.tril(got[3][None] if covariance_type == "tied" else got[3], -1) == 0)


@pytest.mark.parametrize("d", [1, 2, 5, 16, 17, 40])
def test_compiled_precisions_cholesky_matches_lapack(d):
    """Below INLINE_CHOLESKY_MAX_FEATURES (16) plain loops, above it LAPACK: same factors."""
    rng = np.random.default_rng(d)
    A = rng.standard_normal((3, d, d))
    covariances = A @ A.transpose(0, 2, 1) + 0.1 * np.eye(d)
    expected = np.empty_like(covariances)
    assert _em.precisions_cholesky(covariances, expected) == -1
    got = _mstep_core.precisions_cholesky(covariances, "full")
    assert np.array_equal(got, np.triu(got)), "not exactly upper-triangular"
    scale = np.linalg.cond(covariances).max()
    assert_allclose(got, expected, rtol=1e-13 * scale, atol=1e-13 * scale * np.abs(expected).max())
    tied = _mstep_core.precisions_cholesky(covariances[1], "tied")
    assert_allclose(tied, expected[1], rtol=1e-13 * scale,
                    atol=1e-13 * scale * np.abs(expected).max())


@pytest.mark.parametrize("d", [3, 20])
@pytest.mark.parametrize("bad", ["negative", "nan", "inf", "singular", "nan_off_diagonal"])
def test_compiled_precisions_cholesky_reports_failure(d, bad):
    covariances = np.stack([np.eye(d)] * 4)
    if bad == "nan_off_diagonal":
        covariances[2, d - 1, 0] = np.nan  # the lower triangle is what is read
    else:
        covariances[2] = {"negative": -np.eye(d), "nan": np.full((d, d), np.nan),
                          "inf": np.diag([1.0, np.inf] + [1.0] * (d - 2)),
                          "singular": np.ones((d, d))}[bad]
    assert _mstep_core.precisions_cholesky(covariances, "full") is None
    nk, sums, scatter = empty_stats("full", 4, d)
    nk[:] = 1.0
    scatter[:] = covariances
    assert _mstep_core.m_step(nk, sums, scatter, np.zeros((4, d)), "full", 0.0, 0.0) is None


@pytest.mark.parametrize("variances", [[1.0, 0.0], [1.0, -1.0], [1.0, np.nan], [np.inf, 1.0]])
def test_compiled_inverse_std_reports_failure(variances):
    for covariance_type, covariances in (("spherical", np.array(variances)),
                                         ("diag", np.array([variances, [1.0, 1.0]]))):
        assert _mstep_core.precisions_cholesky(covariances, covariance_type) is None


def plane_sweep_problem(k, d, seed):
    """Scatters of K components with unequal shapes and orientations, and random
    orthogonal starting axes."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((k, d, d)) * rng.uniform(0.3, 3.0, size=(k, 1, d))
    nk = rng.uniform(20.0, 200.0, size=k)
    regularised = (A @ A.transpose(0, 2, 1) + 0.05 * np.eye(d)) * nk[:, None, None]
    axes = np.linalg.qr(rng.standard_normal((d, d)))[0]
    return nk, regularised, axes


@pytest.mark.parametrize("equal_volumes", [False, True])
@pytest.mark.parametrize("shape", [(1, 2), (3, 2), (4, 5), (9, 8)])
@pytest.mark.parametrize("n_sweeps", [1, 10])
def test_compiled_plane_sweeps_match_numpy(equal_volumes, shape, n_sweeps):
    """EVE's and VVE's search of common axes: the NumPy sweeps' axes and profiled F."""
    k, d = shape
    for seed in range(3):
        nk, regularised, axes = plane_sweep_problem(k, d, seed)
        got_axes, got_value = _mstep_core.sweep_plane_rotations(
            nk, regularised, axes, n_sweeps, 1e-4, equal_volumes)
        expected_axes, expected_value = sweep_plane_rotations(
            nk, regularised, axes, n_sweeps, 1e-4, equal_volumes,
            _mstep_core.PLANE_GRID_ANGLES, _mstep_core.PLANE_NEWTON_STEPS)
        assert got_axes.shape == (d, d) and got_axes.dtype == np.float64
        assert_allclose(got_axes, expected_axes, rtol=0, atol=1e-9)
        assert_allclose(got_value, expected_value, rtol=1e-12)
        assert_allclose(got_axes.T @ got_axes, np.eye(d), atol=1e-12)
        # The sweeps moved the axes and lowered F (to this tolerance, nothing else would).
        start_value = sweep_plane_rotations(nk, regularised, axes, 0, 1e-4,
                                            equal_volumes)[1]
        assert got_value < start_value - 1e-6 * abs(start_value)


def test_compiled_plane_sweeps_keep_axes_where_nothing_improves():
    """One axis has no plane; zero sweeps and axes already optimal leave them as given."""
    nk, regularised, axes = plane_sweep_problem(3, 1, 0)
    got_axes, _ = _mstep_core.sweep_plane_rotations(nk, regularised, axes, 5, 1e-4, False)
    assert np.array_equal(got_axes, axes)
    nk, regularised, axes = plane_sweep_problem(3, 4, 0)
    got_axes, _ = _mstep_core.sweep_plane_rotations(nk, regularised, axes, 0, 1e-4, True)
    assert np.array_equal(got_axes, axes)
    diagonal = np.stack([np.diag([4.0, 2.0, 1.0]), np.diag([3.0, 2.0, 1.0])])
    got_axes, _ = _mstep_core.sweep_plane_rotations(np.ones(2), diagonal, np.eye(3), 3,
                                                    1e-4, False)
    assert np.array_equal(got_axes, np.eye(3))


def test_compiled_plane_sweeps_check_arguments():
    nk, regularised, axes = plane_sweep_problem(3, 4, 0)
    with pytest.raises(ValueError, match=r"must have shapes \(K,\), \(K, D, D\)"):
        _mstep_core.sweep_plane_rotations(nk[:2], regularised, axes, 1, 1e-4, False)
    with pytest.raises(ValueError, match="must have shapes"):
        _mstep_core.sweep_plane_rotations(nk, regularised, axes[:3], 1, 1e-4, False)
    with pytest.raises(ValueError, match="must be non-negative"):
        _mstep_core.sweep_plane_rotations(nk, regularised, axes, -1, 1e-4, False)
    with pytest.raises(ValueError, match="must be non-negative"):
        _mstep_core.sweep_plane_rotations(nk, regularised, axes, 1, np.nan, False)


@pytest.mark.parametrize("equal_volumes", [False, True])
@pytest.mark.parametrize("shape", [(1, 2), (3, 3), (4, 5)])
def test_compiled_profile_derivatives_match_numpy(equal_volumes, shape):
    """The profiled F's gradient and Hessian in the plane angles, against the reference
    that differentiates ``exp(G)ᵀ S exp(G)`` matrix by matrix."""
    k, d = shape
    nk, regularised, axes = plane_sweep_problem(k, d, 1)
    rotated = axes.T @ regularised @ axes
    for coupled in (True, False):
        got = _mstep_core.profile_derivatives(nk, rotated, equal_volumes, coupled)
        expected = reference.profile_derivatives(nk, rotated, equal_volumes, coupled)
        assert_allclose(got[0], expected[0], rtol=1e-13)
        scale = np.abs(expected[2]).max()
        assert_allclose(got[1], expected[1], rtol=1e-11, atol=1e-13 * scale)
        assert_allclose(got[2], expected[2], rtol=1e-11, atol=1e-13 * scale)
    assert _mstep_core.profile_derivatives(nk[:1], rotated[:1, :1, :1], equal_volumes,
                                           True)[2].shape == (0, 0)


@pytest.mark.parametrize("equal_volumes", [False, True])
def test_compiled_shapes_along_axes_match_numpy(equal_volumes):
    nk, regularised, axes = plane_sweep_problem(4, 3, 2)
    variances = np.diagonal(axes.T @ regularised @ axes, axis1=1, axis2=2).copy()
    got = _mstep_core.variable_shapes_along_axes(nk, variances, equal_volumes)
    expected = reference.variable_shapes_along_axes(nk, variances, equal_volumes)
    for got_part, expected_part in zip(got, expected):
        assert_allclose(got_part, expected_part, rtol=1e-13)
    assert_allclose(np.prod(got[1], axis=1), 1.0, rtol=1e-13)
    assert_allclose(_mstep_core.axes_objective(nk, variances, got[0], got[1]), expected[2],
                    rtol=1e-13)
    with pytest.raises(ValueError, match=r"must have shapes \(K,\) and \(K, D\)"):
        _mstep_core.variable_shapes_along_axes(nk[:3], variances, equal_volumes)
    with pytest.raises(ValueError, match="must have shapes"):
        _mstep_core.axes_objective(nk, variances, got[0][:2], got[1])


@pytest.mark.parametrize("equal_volumes", [False, True])
@pytest.mark.parametrize("shape", [(1, 2), (3, 2), (4, 5), (9, 8)])
def test_compiled_common_orientation_matches_numpy(equal_volumes, shape):
    """EVE's and VVE's warm M-step: the NumPy steps' axes, volumes, shapes, F and count,
    capped or converged."""
    k, d = shape
    # From random axes in 8 dimensions, far from a minimum, the steps amplify rounding
    # (NumPy's own steps and these references part by ~20 times per step after the third)
    # and may end in other local minima of F: there only the first steps are compared.
    runs = ((1, 1e-8), (3, 1e-12)) + (((1000, 1e-8),) if d <= 5 else ())
    for seed in range(3):
        nk, regularised, axes = plane_sweep_problem(k, d, seed)
        for max_iter, tol in runs:
            got = _mstep_core.fit_common_orientation(nk, regularised, axes, equal_volumes,
                                                     max_iter, tol)
            expected = reference.fit_common_orientation(nk, regularised, axes,
                                                        equal_volumes, max_iter, tol)
            assert got[4:] == expected[4:], (seed, max_iter)
            assert_allclose(got[3], expected[3], rtol=1e-10)
            # The steps are the same; rounding differs, most in the Hessian's eigenvectors,
            # and an axis's sign where a Procrustes slope is singular (one component).
            signs = np.sign((got[0] * expected[0]).sum(axis=0))
            assert_allclose(got[0] * signs, expected[0], rtol=0, atol=1e-7)
            assert_allclose(got[1], expected[1], rtol=1e-7)
            assert_allclose(got[2], expected[2], rtol=1e-7)
            assert_allclose(got[0].T @ got[0], np.eye(d), atol=1e-12)
            start_variances = np.diagonal(axes.T @ regularised @ axes, axis1=1, axis2=2)
            start = reference.variable_shapes_along_axes(nk, start_variances, equal_volumes)
            assert got[3] <= start[2]


def test_compiled_common_orientation_edges_and_arguments():
    nk, regularised, axes = plane_sweep_problem(3, 4, 0)
    # One column: nothing to rotate, the closed shapes (all 1) after one step.
    got = _mstep_core.fit_common_orientation(nk, regularised[:, :1, :1], np.eye(1), True,
                                             10, 1e-8)
    assert got[0].shape == (1, 1) and abs(got[0][0, 0]) == 1.0
    assert_allclose(got[1], regularised[:, 0, 0].sum() / nk.sum())
    assert got[4] == 1 and got[5]
    # A scatter singular along a start axis: F = −∞, the start is returned after 0 steps.
    singular = regularised.copy()
    singular[0, 0, :] = singular[0, :, 0] = 0.0
    got = _mstep_core.fit_common_orientation(nk, singular, np.eye(4), False, 10, 1e-8)
    assert not np.isfinite(got[3]) and got[4] == 0 and got[5]
    with pytest.raises(ValueError, match=r"must have shapes \(K,\) and \(K, D, D\)"):
        _mstep_core.fit_common_orientation(nk[:2], regularised, axes, True, 10, 1e-8)
    with pytest.raises(ValueError, match=r"axes must have shape \(4, 4\)"):
        _mstep_core.fit_common_orientation(nk, regularised, axes[:3], True, 10, 1e-8)
    with pytest.raises(ValueError, match="max_iter must be positive"):
        _mstep_core.fit_common_orientation(nk, regularised, axes, True, 0, 1e-8)
    with pytest.raises(ValueError, match="tol non-negative"):
        _mstep_core.fit_common_orientation(nk, regularised, axes, True, 10, np.nan)


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (4, 5), (9, 8)])
def test_compiled_scaled_common_shape_and_covariance_match_numpy(shape):
    """VEI/VEV's common shape along fixed axes and VEE's common covariance, scaled per
    component: the NumPy alternations' results and counts, capped or converged."""
    k, d = shape
    for seed in range(3):
        nk, regularised, axes = plane_sweep_problem(k, d, seed)
        variances = np.diagonal(axes.T @ regularised @ axes, axis1=1, axis2=2).copy()
        start_volumes = np.exp(np.linalg.slogdet(regularised)[1] / d) / nk
        for max_iter, tol in ((1, 1e-8), (3, 0.0), (1000, 1e-8)):
            got = _mstep_core.fit_scaled_common_shape(nk, variances, None, max_iter, tol)
            expected = reference.fit_scaled_common_shape(nk, variances, None, max_iter, tol)
            assert got[3:] == expected[3:], (seed, max_iter)
            for got_part, expected_part in zip(got[:3], expected[:3]):
                assert_allclose(got_part, expected_part, rtol=1e-11)
            got = _mstep_core.fit_scaled_common_covariance(nk, regularised, start_volumes,
                                                           max_iter, tol)
            expected = reference.fit_scaled_common_covariance(nk, regularised,
                                                              start_volumes, max_iter, tol)
            assert got[4:] == expected[4:], (seed, max_iter)
            # Eigenvectors are defined up to their signs.
            assert_allclose(np.abs(got[0]), np.abs(expected[0]), rtol=0, atol=1e-8)
            for got_part, expected_part in zip(got[1:4], expected[1:4]):
                assert_allclose(got_part, expected_part, rtol=1e-10)


def test_compiled_scaled_common_shape_and_covariance_check_arguments():
    nk, regularised, axes = plane_sweep_problem(3, 4, 0)
    variances = np.diagonal(regularised, axis1=1, axis2=2).copy()
    fit_shape = _mstep_core.fit_scaled_common_shape
    fit_covariance = _mstep_core.fit_scaled_common_covariance
    with pytest.raises(ValueError, match=r"must have shapes \(K,\) and \(K, D\)"):
        fit_shape(nk[:2], variances, None, 10, 1e-8)
    with pytest.raises(ValueError, match=r"start_volumes must have shape \(3,\)"):
        fit_shape(nk, variances, np.ones(2), 10, 1e-8)
    with pytest.raises(ValueError, match="max_iter must be positive"):
        fit_shape(nk, variances, None, 0, 1e-8)
    with pytest.raises(ValueError, match=r"must have shapes \(K,\) and \(K, D, D\)"):
        fit_covariance(nk, variances, np.ones(3), 10, 1e-8)
    with pytest.raises(ValueError, match="tol non-negative"):
        fit_covariance(nk, regularised, np.ones(3), 10, -1.0)
    # A start where F is not finite (a zero variance) is returned after 0 steps.
    variances[0, 0] = 0.0
    assert fit_shape(nk, variances, None, 10, 1e-8)[3:] == (0, True)
