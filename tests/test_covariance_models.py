"""mclust's fourteen covariance models: each M-step maximises its objective under its
constraint, counts mclust's parameters, and keeps EM monotone."""

import warnings

import numpy as np
import pytest
from scipy.stats import special_ortho_group

from gmmfast._compat import ConvergenceWarning
from gmmfast._covariance_models import (
    COVARIANCE_MODELS,
    SKLEARN_NAMES,
    CovarianceEstimate,
    estimate_covariances,
    expected_complete_loglik,
    kernel_form,
    n_covariance_parameters,
)

from _mclust_reference import Family, objective
from _mstep_reference import _profile_objective

ITERATIVE_MODELS = ("VEI", "VEE", "EVE", "VVE", "VEV")
CLOSED_FORM_MODELS = tuple(m for m in COVARIANCE_MODELS if m not in ITERATIVE_MODELS)
DIAGONAL_MODELS = COVARIANCE_MODELS[:6]


def _problem(seed, n_components=3, n_features=3, spread=1.5):
    """Unequal counts and scatters of random orientation and eigenvalue spread."""
    rng = np.random.default_rng(seed)
    nk = rng.uniform(3.0, 60.0, size=n_components)
    scatter = np.empty((n_components, n_features, n_features))
    for k, n in enumerate(nk):
        rotation = special_ortho_group.rvs(n_features, random_state=rng) if n_features > 1 \
            else np.eye(1)
        eigenvalues = np.exp(spread * rng.normal(size=n_features))
        scatter[k] = n * (rotation * eigenvalues) @ rotation.T
    return nk, scatter


def _regularised(nk, scatter, reg_covar):
    return scatter + (reg_covar * nk)[:, None, None] * np.eye(scatter.shape[-1])


def _as_matrices(covariances):
    if covariances.ndim == 2:
        return covariances[:, :, None] * np.eye(covariances.shape[1])
    return covariances


# --------------------------------------------------------------------------------------
# Names, kernels and parameter counts


def test_names_and_kernel_forms():
    assert len(set(COVARIANCE_MODELS)) == 14
    assert SKLEARN_NAMES == {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}
    assert [kernel_form(m) for m in COVARIANCE_MODELS] == ["diag"] * 6 + ["full"] * 8
    with pytest.raises(ValueError, match="Unknown covariance model 'full'"):
        kernel_form("full")


def test_parameter_counts_are_mclusts():
    # mclust's nVarParams (Scrucca et al. 2016, Table 3) at d = 2, G = 3, counted by hand.
    expected = {"EII": 1, "VII": 3, "EEI": 2, "VEI": 4, "EVI": 4, "VVI": 6, "EEE": 3,
                "VEE": 5, "EVE": 5, "VVE": 7, "EEV": 5, "VEV": 7, "EVV": 7, "VVV": 9}
    assert {m: n_covariance_parameters(m, 3, 2) for m in COVARIANCE_MODELS} == expected
    # Iris (d = 4): mclust's best, VEV with 2 components, has 26 parameters in all
    # (log-likelihood −215.726, BIC −561.73 = 2 logL − 26 log 150).
    assert n_covariance_parameters("VEV", 2, 4) + 2 * 4 + 1 == 26
    d, g = 5, 4
    formulas = {
        "EII": 1, "VII": g, "EEI": d, "VEI": g + d - 1, "EVI": 1 + g * (d - 1),
        "VVI": g * d, "EEE": d * (d + 1) // 2, "VEE": g + d * (d + 1) // 2 - 1,
        "EVE": 1 + g * (d - 1) + d * (d - 1) // 2, "VVE": g * d + d * (d - 1) // 2,
        "EEV": 1 + (d - 1) + g * d * (d - 1) // 2, "VEV": g + (d - 1) + g * d * (d - 1) // 2,
        "EVV": 1 + g * (d * (d + 1) // 2 - 1), "VVV": g * d * (d + 1) // 2,
    }
    assert {m: n_covariance_parameters(m, g, d) for m in COVARIANCE_MODELS} == formulas


@pytest.mark.parametrize("n_features", [1, 2, 4])
def test_parameter_counts_match_the_families_dimension(n_features):
    for model in COVARIANCE_MODELS:
        family = Family(model, 3, n_features)
        assert n_covariance_parameters(model, 3, n_features) == family.n_parameters


# --------------------------------------------------------------------------------------
# The scikit-learn four


def test_sklearn_four_are_todays_formulas():
    nk, scatter = _problem(0, n_features=4)
    reg = 1e-3
    n_features = scatter.shape[-1]
    expected = {
        "VVV": scatter / nk[:, None, None] + reg * np.eye(n_features),
        "EEE": np.broadcast_to(scatter.sum(axis=0) / nk.sum() + reg * np.eye(n_features),
                               scatter.shape),
        "VVI": np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg,
        "VII": np.broadcast_to(
            (np.trace(scatter, axis1=1, axis2=2) / (nk * n_features) + reg)[:, None],
            (len(nk), n_features)),
    }
    for model, covariances in expected.items():
        estimate = estimate_covariances(model, nk, scatter, reg)
        np.testing.assert_allclose(estimate.covariances, covariances, rtol=1e-12, atol=0)
        assert estimate.n_iter == 0 and estimate.converged


# --------------------------------------------------------------------------------------
# Each M-step maximises the expected complete-data log-likelihood under its constraint


def test_objective_is_the_expected_complete_loglik():
    nk, scatter = _problem(1)
    reg = 1e-4
    covariances = _regularised(nk, scatter, 0.3) / nk[:, None, None]
    expected = -0.5 * objective(nk, _regularised(nk, scatter, reg), covariances)
    assert expected_complete_loglik(nk, scatter, covariances, reg) == pytest.approx(
        expected, rel=1e-12)
    diagonal = np.diagonal(covariances, axis1=1, axis2=2)
    expected = -0.5 * objective(nk, _regularised(nk, scatter, reg), _as_matrices(diagonal))
    assert expected_complete_loglik(nk, scatter, diagonal, reg) == pytest.approx(
        expected, rel=1e-12)


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_m_step_maximises_objective(model):
    nk, scatter = _problem(2)
    reg = 1e-6
    regularised = _regularised(nk, scatter, reg)
    estimate = estimate_covariances(model, nk, scatter, reg, tol=1e-12)
    ours = objective(nk, regularised, _as_matrices(estimate.covariances))
    family = Family(model, *scatter.shape[:2])
    # No direction of the family improves on our estimate ...
    polished = family.minimise(nk, regularised, family.parameters_of(estimate))
    assert polished >= ours - 1e-9 * abs(ours)
    # ... nor does the optimiser from elsewhere.
    rng = np.random.default_rng(0)
    found = min(family.minimise(nk, regularised, rng.normal(size=family.n_parameters))
                for _ in range(2))
    assert ours <= found + 1e-6 * abs(found)
    if model in CLOSED_FORM_MODELS:
        assert ours == pytest.approx(min(found, polished), rel=1e-8)


@pytest.mark.parametrize("model, seed, n_features",
                         [("VVE", 50, 3), ("EVE", 19, 5)])
def test_common_orientation_escapes_local_minima(model, seed, n_features):
    # Problems where MM steps from the pooled principal axes stall in a local minimum of F,
    # 1 to 6 % above the best of the optimiser's several starts.
    nk, scatter = _problem(seed, n_features=n_features)
    regularised = _regularised(nk, scatter, 1e-6)
    estimate = estimate_covariances(model, nk, scatter, 1e-6)
    ours = objective(nk, regularised, estimate.covariances)
    family = Family(model, 3, n_features)
    rng = np.random.default_rng(1)
    found = min(family.minimise(nk, regularised, rng.normal(size=family.n_parameters))
                for _ in range(3))
    assert ours <= found + 1e-6 * abs(found)


@pytest.mark.parametrize("volume_rule", ["E", "V"])
@pytest.mark.parametrize("n_features", [2, 4])
def test_plane_angle_derivatives_match_finite_differences(volume_rule, n_features):
    # The Newton steps of EVE and VVE rest on the gradient and Hessian of the profiled F
    # in the angles θ_p of the rotation D exp(G), G_ab = θ_p = −G_ba for plane p = (a, b).
    from scipy.linalg import expm

    from gmmfast._mstep_core import profile_derivatives

    nk, scatter = _problem(20 + n_features, n_components=3, n_features=n_features)
    equal_volumes = volume_rule == "E"
    n_planes = n_features * (n_features - 1) // 2

    def profiled(angles):
        generator = np.zeros((n_features, n_features))
        generator[np.triu_indices(n_features, 1)] = angles
        rotation = expm(generator - generator.T)
        variances = np.diagonal(rotation.T @ scatter @ rotation, axis1=1, axis2=2)
        return _profile_objective(nk, np.log(variances).sum(axis=1), n_features,
                                  equal_volumes)

    value, gradient, hessian = profile_derivatives(nk, scatter, equal_volumes, True)
    _, same_gradient, diagonal = profile_derivatives(nk, scatter, equal_volumes, False)
    step = 1e-4 * np.eye(n_planes)
    numeric_gradient = [(profiled(e) - profiled(-e)) / 2e-4 for e in step]
    numeric_hessian = [[(profiled(e + f) - profiled(e - f) - profiled(f - e) + profiled(-e - f))
                        / 4e-8 for f in step] for e in step]
    assert value == pytest.approx(profiled(np.zeros(n_planes)), rel=1e-12)
    # Central differences of step h are good to about h² relative to the derivatives' scale.
    scale = np.abs(numeric_hessian).max()
    np.testing.assert_allclose(gradient, numeric_gradient, rtol=1e-6, atol=1e-7 * scale)
    np.testing.assert_allclose(hessian, numeric_hessian, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(same_gradient, gradient, rtol=1e-12)
    np.testing.assert_allclose(diagonal, np.diag(hessian), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model", ["EVE", "VVE"])
def test_common_orientation_converges_in_few_steps(model):
    # The coupled Newton step converges in a few steps where the MM steps alone take
    # 7 to 38 on these problems.
    for seed in range(5):
        nk, scatter = _problem(seed, n_components=4, n_features=6, spread=2.0)
        assert estimate_covariances(model, nk, scatter, 1e-6).n_iter <= 6


# --------------------------------------------------------------------------------------
# Constraints and decomposition


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_constraints_hold(model):
    nk, scatter = _problem(3, n_components=4, n_features=3)
    estimate = estimate_covariances(model, nk, scatter, 1e-6)
    volume, shape, orientation = model
    n_components, n_features = 4, 3
    covariances = estimate.covariances
    assert isinstance(estimate, CovarianceEstimate)
    assert estimate.volumes.shape == (n_components,)
    assert estimate.shapes.shape == (n_components, n_features)
    np.testing.assert_allclose(np.prod(estimate.shapes, axis=1), 1.0, rtol=1e-12)
    matrices = _as_matrices(covariances)
    np.testing.assert_allclose(np.linalg.det(matrices) ** (1 / n_features), estimate.volumes,
                               rtol=1e-10)
    if orientation == "I":
        assert covariances.shape == (n_components, n_features)
        assert estimate.orientations is None
        np.testing.assert_allclose(covariances,
                                   estimate.volumes[:, None] * estimate.shapes, rtol=1e-12)
    else:
        assert covariances.shape == (n_components, n_features, n_features)
        axes = estimate.orientations
        np.testing.assert_allclose(axes.swapaxes(1, 2) @ axes,
                                   np.broadcast_to(np.eye(n_features), axes.shape), atol=1e-12)
        rebuilt = np.einsum("kij,kj,klj->kil", axes,
                            estimate.volumes[:, None] * estimate.shapes, axes)
        np.testing.assert_allclose(rebuilt, covariances, rtol=1e-10, atol=1e-12)
        np.testing.assert_array_equal(covariances, covariances.swapaxes(1, 2))
        if model not in ("EVE", "VVE"):
            assert np.all(np.diff(estimate.shapes, axis=1) <= 0)
    if volume == "E":
        np.testing.assert_allclose(estimate.volumes, estimate.volumes[0], rtol=1e-12)
    else:
        assert np.ptp(estimate.volumes) > 1e-3 * estimate.volumes.max()
    if shape == "I":
        np.testing.assert_array_equal(estimate.shapes, 1.0)
    elif shape == "E":
        np.testing.assert_allclose(estimate.shapes, estimate.shapes[:1].repeat(4, 0),
                                   rtol=1e-12)
    else:
        assert np.ptp(estimate.shapes, axis=0).max() > 1e-3
    if orientation == "E":
        np.testing.assert_array_equal(estimate.orientations, estimate.orientations[:1].repeat(4, 0))


# --------------------------------------------------------------------------------------
# Degenerate sizes


def test_one_feature_models_collapse_to_equal_or_variable_variance():
    nk, scatter = _problem(4, n_features=1)
    variances = scatter[:, 0, 0] / nk
    equal = scatter.sum() / nk.sum()
    for model in COVARIANCE_MODELS:
        estimate = estimate_covariances(model, nk, scatter, 0.0)
        expected = np.full(3, equal) if model[0] == "E" else variances
        np.testing.assert_allclose(estimate.covariances.reshape(3), expected, rtol=1e-12)
        np.testing.assert_allclose(estimate.shapes, 1.0, rtol=1e-15)


def test_one_component_models_collapse_to_their_shape_family():
    nk, scatter = _problem(5, n_components=1, n_features=3)
    full = scatter[0] / nk[0]
    for model in COVARIANCE_MODELS:
        estimate = estimate_covariances(model, nk, scatter, 0.0)
        if model in ("EII", "VII"):
            expected = np.full(3, np.trace(full) / 3)
        elif model in DIAGONAL_MODELS:
            expected = np.diag(full)
        else:
            expected = full
        np.testing.assert_allclose(estimate.covariances[0], expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_nearly_empty_component_gives_finite_covariances(model):
    nk, scatter = _problem(6)
    eps = 10 * np.finfo(np.float64).eps
    nk[1], scatter[1] = eps, 0.0
    estimate = estimate_covariances(model, nk, scatter, 1e-6)
    assert np.all(np.isfinite(estimate.covariances))
    assert np.all(estimate.volumes > 0)


@pytest.mark.parametrize("model", ["VVV", "EVV", "VVI", "EVE"])
def test_collapsed_component_without_regularisation_is_ill_defined(model):
    nk, scatter = _problem(7)
    scatter[0, 0, :] = scatter[0, :, 0] = 0.0  # a feature constant in component 0
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        estimate_covariances(model, nk, scatter, 0.0)


def test_diagonal_models_accept_the_scatters_diagonal():
    nk, scatter = _problem(8)
    diagonal = np.diagonal(scatter, axis1=1, axis2=2).copy()
    for model in DIAGONAL_MODELS:
        np.testing.assert_array_equal(estimate_covariances(model, nk, scatter, 1e-6).covariances,
                                      estimate_covariances(model, nk, diagonal, 1e-6).covariances)
    with pytest.raises(ValueError, match=r"must have shape \(K, D, D\)"):
        estimate_covariances("VVV", nk, diagonal, 1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "VVX"}, "Unknown covariance model"),
    ({"nk": [1.0, 0.0, 2.0]}, "positive finite counts"),
    ({"nk": [1.0, 2.0]}, "K = len"),
    ({"scatter": np.full((3, 3, 3), np.nan)}, "NaN"),
    ({"reg_covar": -1.0}, "reg_covar"),
    ({"max_iter": 0}, "max_iter"),
    ({"previous": "VEV"}, "CovarianceEstimate"),
])
def test_bad_arguments_say_what_is_wrong(kwargs, message):
    nk, scatter = _problem(9)
    arguments = {"model": "VEV", "nk": nk, "scatter": scatter, "reg_covar": 1e-6, **kwargs}
    with pytest.raises(ValueError, match=message):
        estimate_covariances(**arguments)


def test_previous_of_another_size_is_refused():
    nk, scatter = _problem(9)
    previous = estimate_covariances("VEV", nk[:2], scatter[:2], 1e-6)
    with pytest.raises(ValueError, match="previous=None"):
        estimate_covariances("VEV", nk, scatter, 1e-6, previous=previous)


# --------------------------------------------------------------------------------------
# Iteration: monotone warm starts, convergence and its warning


@pytest.mark.parametrize("model", ITERATIVE_MODELS)
def test_warm_started_steps_never_decrease_the_objective(model):
    nk, scatter = _problem(10, n_components=4, n_features=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        estimate = estimate_covariances(model, nk, scatter, 1e-6, max_iter=1)
        values = [expected_complete_loglik(nk, scatter, estimate.covariances, 1e-6)]
        for _ in range(15):
            estimate = estimate_covariances(model, nk, scatter, 1e-6, previous=estimate,
                                            max_iter=1, tol=0.0)
            values.append(expected_complete_loglik(nk, scatter, estimate.covariances, 1e-6))
    assert np.all(np.diff(values) >= -1e-12 * abs(values[-1]))
    converged = estimate_covariances(model, nk, scatter, 1e-6, tol=1e-13, max_iter=10_000)
    final = expected_complete_loglik(nk, scatter, converged.covariances, 1e-6)
    assert values[-1] <= final + 1e-12 * abs(final)


def test_iteration_cap_warns_and_reports():
    nk, scatter = _problem(11)
    with pytest.warns(ConvergenceWarning, match="VEV stopped after max_iter=2") as record:
        estimate = estimate_covariances("VEV", nk, scatter, 1e-6, max_iter=2, tol=0.0)
    assert record[0].filename == __file__
    assert estimate.n_iter == 2 and not estimate.converged
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        estimate = estimate_covariances("VEV", nk, scatter, 1e-6)
    assert estimate.converged and 0 < estimate.n_iter < 500


def test_warm_start_from_the_solution_converges_at_once():
    nk, scatter = _problem(12)
    for model in ITERATIVE_MODELS:
        estimate = estimate_covariances(model, nk, scatter, 1e-6)
        again = estimate_covariances(model, nk, scatter, 1e-6, previous=estimate)
        assert again.n_iter == 1
        # Converged on F to 1e-10: the parameters agree to about its square root.
        np.testing.assert_allclose(again.covariances, estimate.covariances, rtol=1e-4)
        assert expected_complete_loglik(nk, scatter, again.covariances, 1e-6) == pytest.approx(
            expected_complete_loglik(nk, scatter, estimate.covariances, 1e-6), rel=1e-9)


def _log_densities(X, means, covariances):
    n_features = X.shape[1]
    matrices = _as_matrices(covariances)
    out = np.empty((X.shape[0], len(means)))
    for k, (mean, cov) in enumerate(zip(means, matrices)):
        chol = np.linalg.cholesky(cov)
        y = np.linalg.solve(chol, (X - mean).T)
        out[:, k] = (-0.5 * (y**2).sum(axis=0) - np.log(np.diag(chol)).sum()
                     - 0.5 * n_features * np.log(2 * np.pi))
    return out


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_em_log_likelihood_never_decreases(model):
    rng = np.random.default_rng(13)
    X = np.vstack([rng.normal(size=(60, 3)) @ rng.normal(size=(3, 3)) + 3 * rng.normal(size=3)
                   for _ in range(3)])
    resp = rng.dirichlet(np.ones(3), size=len(X))
    estimate, previous_loglik = None, -np.inf
    for _ in range(12):
        nk = resp.sum(axis=0)
        means = resp.T @ X / nk[:, None]
        centred = X[None] - means[:, None]
        scatter = np.einsum("nk,kni,knj->kij", resp, centred, centred)
        # Without regularisation, so EM's monotone quantity is the log-likelihood itself.
        estimate = estimate_covariances(model, nk, scatter, 0.0, previous=estimate)
        weighted = _log_densities(X, means, estimate.covariances) + np.log(nk / nk.sum())
        norm = np.logaddexp.reduce(weighted, axis=1)
        loglik = norm.sum()
        assert loglik >= previous_loglik - 1e-9 * abs(loglik)
        previous_loglik, resp = loglik, np.exp(weighted - norm[:, None])


def test_iris_vev_with_two_components_is_mclusts_best_fit():
    # mclust's best model for iris is VEV with 2 components: log-likelihood −215.726 with 26
    # parameters, BIC −561.73 in mclust's sign convention.
    datasets = pytest.importorskip("sklearn.datasets")
    iris = datasets.load_iris()
    X = iris.data
    resp = np.eye(2)[(iris.target > 0).astype(int)]  # setosa against the other two
    estimate, previous_loglik = None, -np.inf
    for _ in range(500):
        nk = resp.sum(axis=0)
        means = resp.T @ X / nk[:, None]
        centred = X[None] - means[:, None]
        scatter = np.einsum("nk,kni,knj->kij", resp, centred, centred)
        estimate = estimate_covariances("VEV", nk, scatter, 0.0, previous=estimate)
        weighted = _log_densities(X, means, estimate.covariances) + np.log(nk / nk.sum())
        norm = np.logaddexp.reduce(weighted, axis=1)
        loglik = norm.sum()
        if loglik - previous_loglik < 1e-10 * abs(loglik):
            break
        previous_loglik, resp = loglik, np.exp(weighted - norm[:, None])
    n_parameters = n_covariance_parameters("VEV", 2, 4) + 2 * 4 + 1
    assert loglik == pytest.approx(-215.726, abs=1e-3)
    assert 2 * loglik - n_parameters * np.log(len(X)) == pytest.approx(-561.73, abs=1e-2)


# --------------------------------------------------------------------------------------
# Several sets at once


def _set_problems(model, n_sets, seed):
    """Counts (M, K) and scatters of M sets, with the diagonal models' (M, K, D)."""
    problems = [_problem(seed + m, n_components=3, n_features=4) for m in range(n_sets)]
    nk = np.array([p[0] for p in problems])
    scatter = np.array([p[1] for p in problems])
    if model in DIAGONAL_MODELS:
        scatter = np.diagonal(scatter, axis1=-2, axis2=-1).copy()
    return nk, scatter


def _assert_same_estimate(got, expected):
    assert got.n_iter == expected.n_iter and got.converged == expected.converged
    for name in ("covariances", "volumes", "shapes", "orientations"):
        value, expected_value = getattr(got, name), getattr(expected, name)
        if expected_value is None:
            assert value is None
        else:
            np.testing.assert_array_equal(value, expected_value, err_msg=name)


@pytest.mark.parametrize("model", COVARIANCE_MODELS)
def test_sets_at_once_are_each_set_alone_bit_for_bit(model):
    from gmmfast._covariance_models import estimate_covariances_of_sets

    nk, scatter = _set_problems(model, 4, seed=40)
    cold = estimate_covariances_of_sets(model, nk, scatter, 1e-6)
    for m in range(4):
        _assert_same_estimate(cold[m], estimate_covariances(model, nk[m], scatter[m], 1e-6))
    # Warm, capped, with one set cold: each from its own previous estimate.
    nk2, scatter2 = _set_problems(model, 4, seed=50)
    previous = [cold[0], None, cold[2], cold[3]]
    warm = estimate_covariances_of_sets(model, nk2, scatter2, 1e-6, previous=previous,
                                        max_iter=1, warn=False)
    for m in range(4):
        _assert_same_estimate(warm[m], estimate_covariances(
            model, nk2[m], scatter2[m], 1e-6, previous=previous[m], max_iter=1, warn=False))


@pytest.mark.parametrize("model", ["EII", "VEI", "EVE", "VEE", "EEV"])
def test_a_failing_set_leaves_the_others_alone(model):
    from gmmfast._covariance_models import estimate_covariances_of_sets

    nk, scatter = _set_problems(model, 4, seed=60)
    scatter[1] = 0.0  # collapsed: singular without reg_covar
    nk[2, 0] = 0.0  # an empty component
    scatter[3, 0, 0] = np.nan
    estimates = estimate_covariances_of_sets(model, nk, scatter, 0.0)
    assert estimates[1:] == [None, None, None]
    _assert_same_estimate(estimates[0], estimate_covariances(model, nk[0], scatter[0], 0.0))
    for m in (1, 2, 3):
        with pytest.raises(ValueError):
            estimate_covariances(model, nk[m], scatter[m], 0.0)
    assert estimate_covariances_of_sets(model, nk[2:], scatter[2:], 0.0) == [None, None]


def test_sets_at_once_warn_once_when_capped():
    from gmmfast._covariance_models import estimate_covariances_of_sets

    nk, scatter = _set_problems("VEV", 3, seed=70)
    with pytest.warns(ConvergenceWarning, match="VEV"):
        estimate_covariances_of_sets("VEV", nk, scatter, 1e-6, max_iter=1, tol=0.0)


@pytest.mark.parametrize("arguments, message", [
    ({"nk": np.ones(3)}, r"nk must be a non-empty \(M, K\) array"),
    ({"scatter": np.ones((2, 3, 4, 5))}, r"must have shape \(M, K, D, D\) with"),
    ({"reg_covar": -1.0}, "reg_covar must be a non-negative"),
    ({"max_iter": 0}, "max_iter must be a positive integer"),
    ({"previous": [None]}, "one estimate"),
])
def test_sets_at_once_refuse_malformed_arguments(arguments, message):
    from gmmfast._covariance_models import estimate_covariances_of_sets

    nk, scatter = _set_problems("VVV", 2, seed=80)
    call = {"model": "VEV", "nk": nk, "scatter": scatter, "reg_covar": 1e-6, **arguments}
    with pytest.raises(ValueError, match=message):
        estimate_covariances_of_sets(**call)
