"""The conjugate prior of Fraley & Raftery (2007), ``prior=`` (gmmfast._prior): the MAP
M-step of each of its ten models against the slow references of tests/_prior_reference.py
and a numerical optimiser, mclust's default hyperparameters, the log posterior that EM
climbs, and what the prior is for: finite, sensible fits of small or degenerate data."""

import json
import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import linalg, optimize

import gmmfast
from gmmfast import GaussianMixture, GaussianMixtureIC, select_model
from gmmfast._covariance_models import compose, mclust_name
from gmmfast._engine import MixtureModel, Statistics
from gmmfast._prior import PRIOR_MODELS, conjugate_prior

from _prior_reference import (
    ELLIPSOIDAL,
    closed_form_map,
    default_hyperparameters,
    expected_log_posterior,
    log_posterior,
)
from test_cli import ok, run

CLOSED_FORMS = ("EII", "VII", "EEI", "VVI", "EEE", "VVV")
ALIASES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}


def small_problem(seed=0, n=14, d=2, k=2):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d) @ rng.randn(d, d) + rng.randn(d)
    resp = rng.dirichlet(np.ones(k), size=n)
    return X, resp


def hyperparameters(X, k, model, seed=1):
    """Hyperparameters away from the data's, so that every term of the prior matters."""
    rng = np.random.RandomState(seed)
    d = X.shape[1]
    if model in ELLIPSOIDAL:
        root = rng.randn(d, d)
        scale = root @ root.T + d * np.eye(d)
    else:
        scale = 1.7
    return {"shrinkage": 0.4, "mean": rng.randn(d), "dof": d + 1.5, "scale": scale}


def statistics(X, resp, form):
    """The engine's statistics of the responsibilities, about the origin."""
    nk = resp.sum(axis=0)
    sums = resp.T @ X
    if form == "full":
        scatter = np.einsum("ik,id,ie->kde", resp, X, X)
    else:
        scatter = resp.T @ X**2
    return Statistics(nk, sums, scatter, np.zeros_like(sums))


def map_step(covariance_type, X, resp, prior):
    """θ of the model's M-step with the prior and reg_covar = 0."""
    resolved = conjugate_prior(prior, covariance_type, resp.shape[1], X.shape[1], None)
    model = MixtureModel(covariance_type, 0.0, np.float64, prior=resolved)
    return model.m_step(statistics(X, resp, model.form))


def full_covariances(theta):
    """(K, D, D) covariances of a θ (from its decomposition)."""
    estimate = theta[4]
    orientations = estimate.orientations
    if orientations is None:
        return np.array([np.diag(c) for c in compose(estimate.volumes, estimate.shapes,
                                                     None)])
    return compose(estimate.volumes, estimate.shapes, orientations)


# --------------------------------------------------------------------------------------
# the MAP M-step
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", CLOSED_FORMS)
def test_the_closed_form_m_steps_are_the_papers(model):
    X, resp = small_problem(d=3, k=3)
    prior = hyperparameters(X, 3, model)
    theta = map_step(model, X, resp, prior)
    means, covariances = closed_form_map(model, X, resp, prior)
    assert_allclose(theta[1], means, rtol=1e-12)
    assert_allclose(full_covariances(theta), covariances, rtol=1e-10)
    assert_allclose(theta[0], resp.sum(axis=0) / len(X), rtol=1e-12)


@pytest.mark.parametrize("alias", ALIASES)
def test_scikit_learn_names_fit_their_mclust_model_in_their_own_shapes(alias):
    X, resp = small_problem(d=3, k=3)
    prior = hyperparameters(X, 3, ALIASES[alias])
    theta = map_step(alias, X, resp, prior)
    means, covariances = closed_form_map(ALIASES[alias], X, resp, prior)
    expected = {"full": covariances, "tied": covariances[0],
                "diag": np.diagonal(covariances, axis1=1, axis2=2),
                "spherical": covariances[:, 0, 0]}[alias]
    assert_allclose(theta[2], expected, rtol=1e-10)
    assert_allclose(theta[1], means, rtol=1e-12)


def _family_perturbation(model, theta, vector):
    """Means and covariances of θ moved within the model's family by ``vector``: the means
    freely, and the volumes, shapes and orientations each by one change shared by the
    components (letter E), one per component (V) or none (I)."""
    estimate = theta[4]
    means = theta[1]
    k, d = means.shape
    position = [0]

    def take(size):
        part = vector[position[0]:position[0] + size]
        position[0] += size
        return part

    moved_means = means + take(k * d).reshape(k, d)
    volume_rule, shape_rule, orientation_rule = model
    copies = {"E": 1, "V": k, "I": 0}
    log_volumes = np.log(estimate.volumes) + (
        np.broadcast_to(take(copies[volume_rule]), (k,)) if copies[volume_rule] else 0.0)
    log_shapes = np.log(estimate.shapes).copy()
    if copies[shape_rule]:
        free = take(copies[shape_rule] * (d - 1)).reshape(copies[shape_rule], d - 1)
        log_shapes += np.column_stack([free, -free.sum(axis=1)])
    orientations = (np.broadcast_to(np.eye(d), (k, d, d)) if estimate.orientations is None
                    else estimate.orientations)
    if copies[orientation_rule]:
        pairs = d * (d - 1) // 2
        angles = take(copies[orientation_rule] * pairs).reshape(copies[orientation_rule],
                                                                 pairs)
        rotated = []
        for index in range(k):
            generator = np.zeros((d, d))
            generator[np.triu_indices(d, 1)] = angles[min(index, len(angles) - 1)]
            rotated.append(orientations[index] @ linalg.expm(generator - generator.T))
        orientations = np.array(rotated)
    covariances = compose(np.exp(log_volumes), np.exp(log_shapes), np.array(orientations))
    return moved_means, covariances, position[0]


@pytest.mark.parametrize("model", PRIOR_MODELS)
def test_each_m_step_maximises_the_expected_log_posterior(model):
    # Nothing in the model's family (means, volumes, shapes, orientations as its letters
    # allow) has a higher expected complete-data log posterior than the M-step's θ: a
    # numerical optimiser started there, and started away from it, finds nothing better.
    X, resp = small_problem(seed=2, n=12, d=2, k=2)
    prior = hyperparameters(X, 2, model)
    theta = map_step(model, X, resp, prior)
    weights = theta[0]

    def objective(vector):
        means, covariances, _ = _family_perturbation(model, theta, vector)
        return -expected_log_posterior(X, resp, weights, means, covariances, model, prior)

    size = _family_perturbation(model, theta, np.zeros(64))[2]
    best = objective(np.zeros(size))
    assert_allclose(best, -expected_log_posterior(X, resp, weights, theta[1],
                                                  full_covariances(theta), model, prior),
                    rtol=1e-12)
    for start in (np.zeros(size), np.random.RandomState(3).normal(0, 0.3, size)):
        found = optimize.minimize(objective, start, method="BFGS").fun
        assert found >= best - 1e-7 * abs(best)


def test_no_shrinkage_leaves_the_means_and_drops_the_mean_prior():
    X, resp = small_problem(d=3, k=2)
    prior = {**hyperparameters(X, 2, "VVV"), "shrinkage": 0.0}
    theta = map_step("VVV", X, resp, prior)
    means, covariances = closed_form_map("VVV", X, resp, prior)
    assert_allclose(theta[1], resp.T @ X / resp.sum(axis=0)[:, None], rtol=1e-12)
    assert_allclose(theta[2], covariances, rtol=1e-10)


# --------------------------------------------------------------------------------------
# hyperparameters
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", ["VVV", "EEE", "VEV", "VVI", "EEI", "VII", "EII",
                                             "full", "spherical"])
def test_the_default_hyperparameters_are_mclusts(covariance_type):
    X = np.random.RandomState(0).randn(40, 3) * [1.0, 2.0, 0.5] + [3.0, -1.0, 0.0]
    model = GaussianMixture(3, covariance_type=covariance_type, prior="default",
                            random_state=0).fit(X)
    expected = default_hyperparameters(X, 3, mclust_name(covariance_type))
    assert model.prior_["shrinkage"] == 0.01 and model.prior_["dof"] == 5.0
    assert_allclose(model.prior_["mean"], X.mean(axis=0), rtol=1e-12)
    assert_allclose(model.prior_["scale"], expected["scale"], rtol=1e-12)


def test_given_hyperparameters_replace_the_defaults_one_by_one():
    X = np.random.RandomState(0).randn(40, 2)
    model = GaussianMixture(2, prior={"dof": 7, "scale": 2.0}, random_state=0).fit(X)
    assert model.prior_["dof"] == 7.0
    assert_allclose(model.prior_["scale"], 2.0 * np.eye(2))
    assert model.prior_["shrinkage"] == 0.01
    assert_allclose(model.prior_["mean"], X.mean(axis=0))


def test_the_hyperparameters_survive_pickling_and_a_warm_start_reuses_the_data():
    X = np.random.RandomState(0).randn(60, 2)
    model = GaussianMixture(2, prior="default", random_state=0, tol=1e-10,
                            max_iter=1000).fit(X)
    copy = pickle.loads(pickle.dumps(model))
    assert copy.prior == "default"
    for key, value in model.prior_.items():
        assert_allclose(copy.prior_[key], value)
    copy.set_params(warm_start=True).fit(X)
    assert_allclose(copy.means_, model.means_, atol=1e-4)


def test_a_stream_keeps_the_prior_of_its_first_batch():
    rng = np.random.RandomState(0)
    first, second = rng.randn(100, 2), rng.randn(100, 2) * 3
    model = GaussianMixture(2, prior="default", random_state=0, init_params="kmeans")
    model.partial_fit(first)
    prior = {key: np.copy(value) for key, value in model.prior_.items()}
    model.partial_fit(second)
    assert_allclose(model.prior_["scale"], prior["scale"])
    assert np.all(np.isfinite(model.covariances_))


# --------------------------------------------------------------------------------------
# the log posterior
# --------------------------------------------------------------------------------------


def two_clusters(seed=0, n=80):
    rng = np.random.RandomState(seed)
    return np.vstack([rng.randn(n // 2, 2) @ [[1.0, 0.4], [0.0, 0.6]],
                      rng.randn(n // 2, 2) * [0.5, 1.5] + [3.0, 1.0]])


@pytest.mark.parametrize("covariance_type", PRIOR_MODELS + ("full", "tied", "diag",
                                                            "spherical"))
def test_the_log_posterior_never_decreases(covariance_type):
    X = two_clusters()
    model = GaussianMixture(3, covariance_type=covariance_type, prior="default", reg_covar=0,
                            tol=1e-10, max_iter=60, init_params="random",
                            random_state=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    bounds = np.array(model.lower_bounds_)
    assert len(bounds) > 5
    assert np.all(np.diff(bounds) >= -1e-9 * np.abs(bounds[1:]))


@pytest.mark.parametrize("covariance_type", ["VVV", "EEE", "VEV", "VEI", "EII", "tied"])
def test_the_lower_bound_is_the_log_posterior_up_to_a_constant(covariance_type):
    # One iteration from two given starts: each first bound is the log posterior of its
    # start (per unit of weight) less the same constant of the hyperparameters.
    X = two_clusters()
    model_name = mclust_name(covariance_type)
    hyper = default_hyperparameters(X, 2, model_name)
    constants = []
    for seed in (0, 1):
        rng = np.random.RandomState(seed)
        means = X[rng.choice(len(X), 2, replace=False)]
        variances = rng.uniform(0.5, 2.0, size=2)
        covariances = np.array([v * np.eye(2) for v in variances])
        if model_name in ("EII", "EEE", "EEI"):
            covariances[:] = covariances[0]
        layout_precisions = {
            "full": np.linalg.inv(covariances), "tied": np.linalg.inv(covariances[0]),
            "diag": 1 / np.array([np.diag(c) for c in covariances]),
            "spherical": 1 / covariances[:, 0, 0]}
        from gmmfast._covariance_models import sklearn_layout
        precisions = layout_precisions[sklearn_layout(covariance_type)]
        model = GaussianMixture(2, covariance_type=covariance_type, prior="default",
                                max_iter=1, weights_init=[0.3, 0.7], means_init=means,
                                precisions_init=precisions)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X)
        reference = log_posterior(X, np.array([0.3, 0.7]), means, covariances, model_name,
                                  hyper)
        constants.append(reference - model.lower_bounds_[0] * len(X))
    assert_allclose(constants[0], constants[1], rtol=1e-9, atol=1e-8)


def test_bic_uses_the_log_likelihood_at_the_map_estimate():
    X = two_clusters()
    model = GaussianMixture(2, prior="default", random_state=0).fit(X)
    n_parameters = model._n_parameters()
    loglik = model.score(X) * len(X)
    assert_allclose(model.bic(X), -2 * loglik + n_parameters * np.log(len(X)))
    # The bound EM climbed is the log posterior, not the log-likelihood.
    assert model.lower_bound_ != pytest.approx(model.score(X), rel=1e-9)


def test_the_fit_is_close_to_maximum_likelihood_on_ordinary_data():
    # The prior weighs about as much as a few rows per component: on 2000 rows the MAP is
    # within a per cent or two of the maximum-likelihood fit.
    X = two_clusters(n=2000)
    plain = GaussianMixture(2, random_state=0, tol=1e-8).fit(X)
    regularised = GaussianMixture(2, prior="default", random_state=0, tol=1e-8).fit(X)
    assert_allclose(regularised.means_, plain.means_, atol=5e-3)
    assert_allclose(regularised.covariances_, plain.covariances_, rtol=2e-2, atol=1e-3)


# --------------------------------------------------------------------------------------
# what it is for: small and degenerate data
# --------------------------------------------------------------------------------------


THREE_ROWS = np.array([[1.0, 2.0], [3.0, 5.0], [4.0, 4.0]])


@pytest.mark.parametrize("covariance_type", ["full", "VEV", "diag", "EII"])
def test_three_rows_and_three_components_give_finite_covariances(covariance_type):
    # Without the prior (and reg_covar = 0) every component collapses onto a row.
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(3, covariance_type=covariance_type, reg_covar=0,
                        random_state=0).fit(THREE_ROWS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = GaussianMixture(3, covariance_type=covariance_type, prior="default",
                                reg_covar=0, random_state=0).fit(THREE_ROWS)
    variances = model.covariances_ if model.covariances_.ndim < 3 else \
        np.linalg.eigvalsh(model.covariances_)
    # Far above the reg_covar floor (1e-6 by default) the warnings of the CLI look for.
    assert np.all(np.isfinite(variances)) and np.min(variances) > 1e-3


def test_a_constant_column_gets_a_variance_from_the_prior_in_the_diagonal_models():
    X = np.random.RandomState(0).randn(30, 3)
    X[:, 1] = 7.0
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(2, covariance_type="diag", reg_covar=0, random_state=0).fit(X)
    model = GaussianMixture(2, covariance_type="diag", prior="default", reg_covar=0,
                            random_state=0).fit(X)
    assert np.all(model.covariances_[:, 1] > 1e-3)
    assert_allclose(model.means_[:, 1], 7.0)


def test_a_constant_column_needs_a_scale_in_the_ellipsoidal_models():
    X = np.random.RandomState(0).randn(30, 3)
    X[:, 1] = 7.0
    with pytest.raises(ValueError, match="prior's scale is not positive.*prior=\\{'scale'"):
        GaussianMixture(2, prior="default").fit(X)
    model = GaussianMixture(2, prior={"scale": 0.1}, reg_covar=0, random_state=0).fit(X)
    assert np.min(np.linalg.eigvalsh(model.covariances_)) > 1e-3


def test_as_many_components_as_rows_nearly():
    X = np.random.RandomState(0).randn(7, 2)
    model = GaussianMixture(6, prior="default", reg_covar=0, random_state=0).fit(X)
    assert np.min(np.linalg.eigvalsh(model.covariances_)) > 1e-3
    assert np.all(np.isfinite(model.score_samples(X)))


def test_the_cli_fits_a_three_row_file_with_the_prior_without_a_floor_warning(tmp_path):
    np.savetxt(tmp_path / "three.csv", THREE_ROWS, delimiter=",", header="x,y",
               comments="")
    result = ok(tmp_path, "fit", "three.csv", "-k", "1-3", "-c", "VVV,VEE", "--init",
                "kmeans", "--prior", "--json", "summary.json")
    assert "reg_covar floor" not in result.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["search"]["prior"] == "default"
    assert not any(row["at_reg_covar_floor"] for row in summary["candidates"])
    assert "MAP under the default conjugate prior" in result.stdout
    # Candidates of the models without a prior are skipped, named in the legend.
    assert "no prior for the model" in result.stdout


def test_the_cli_online_fit_takes_the_prior_and_bayesian_refuses_it(tmp_path):
    X = np.random.RandomState(0).permutation(two_clusters(n=400))
    np.savetxt(tmp_path / "two.csv", X, delimiter=",", header="x,y", comments="")
    result = ok(tmp_path, "fit", "two.csv", "--online", "-k", "2", "--batch-rows", "100",
                "--prior", "--save", "model.npz")
    assert "prior='default'" in result.stdout
    assert "average log posterior of the last batch" in result.stdout
    assert np.all(np.isfinite(gmmfast.load(tmp_path / "model.npz").covariances_))
    refused = run(tmp_path, "fit", "--bayesian", "--prior")
    assert refused.returncode != 0
    assert "--prior is the conjugate prior of EM fits" in refused.stderr


def test_the_cli_help_names_the_option():
    from gmmfast._cli import build_parser

    parser = build_parser()
    fit = parser._subparsers._group_actions[0].choices["fit"]
    assert "Fraley & Raftery" in fit.format_help()


# --------------------------------------------------------------------------------------
# the search
# --------------------------------------------------------------------------------------


def test_the_search_fits_the_models_with_a_prior_and_skips_the_others():
    X = two_clusters()
    search = GaussianMixtureIC(n_components=[1, 2], prior="default", random_state=0,
                               init_params="kmeans").fit(X)
    table = search.criterion_table_
    for row in range(len(table)):
        supported = table["mclust_name"][row] in PRIOR_MODELS
        assert (table["status"][row] == "ok") == supported
        if not supported:
            assert "prior is not defined" in table["message"][row]
    best = search.best_estimator_
    assert best.prior == "default" and best.prior_ is not None
    single = GaussianMixture(best.n_components, covariance_type=best.covariance_type,
                             prior="default", random_state=0).fit(X)
    assert_allclose(best.means_, single.means_, rtol=1e-10)
    assert_allclose(search.bic(X), single.bic(X), rtol=1e-10)


def test_select_model_passes_the_prior_to_every_candidate():
    X = two_clusters()
    result = select_model(X, [2], "VVV,VEE", prior="default", random_state=0)
    assert list(result.criterion_table_["status"]) == ["ok", "skipped"]


def test_a_search_of_models_without_a_prior_is_refused():
    with pytest.raises(ValueError, match="conjugate prior is not defined.*EII, VII"):
        GaussianMixtureIC(n_components=2, covariance_type="VEE,EVV",
                          prior="default").fit(two_clusters())


# --------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior, message", [
    ("mclust", "prior must be None, 'default' or a dict"),
    (0.01, "prior must be None, 'default' or a dict"),
    ({"shrink": 0.1}, "prior has unknown keys \\['shrink'\\]"),
    ({"shrinkage": -1}, "prior's shrinkage must be a finite number >= 0"),
    ({"shrinkage": np.nan}, "prior's shrinkage"),
    ({"dof": 1}, "prior's dof must be a finite number > 1"),
    ({"mean": [0.0]}, "prior's mean must be a finite array of shape \\(2,\\)"),
    ({"scale": [[1.0, 2.0], [2.0, 1.0]]}, "prior's scale .* symmetric positive definite"),
    ({"scale": -2.0}, "prior's scale must be a finite number > 0"),
])
def test_bad_priors_are_value_errors_naming_the_parameter(prior, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, prior=prior).fit(two_clusters())


@pytest.mark.parametrize("covariance_type", ["VEE", "EVE", "VVE", "EVV"])
def test_models_without_a_prior_are_refused_naming_those_with_one(covariance_type):
    with pytest.raises(ValueError, match="not defined for covariance_type=.*EEV, VEV, VVV"):
        GaussianMixture(2, covariance_type=covariance_type,
                        prior="default").fit(two_clusters())


def test_default_hyperparameters_need_rows_without_missing_entries():
    X = two_clusters()
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="nan_policy='omit'.*give every hyperparameter"):
        GaussianMixture(2, prior="default", nan_policy="omit").fit(X)
    given = {"shrinkage": 0.01, "mean": [0.0, 0.0], "dof": 4, "scale": np.eye(2)}
    model = GaussianMixture(2, prior=given, nan_policy="omit", random_state=0).fit(X)
    assert np.all(np.isfinite(model.means_))


def assert_same_prior(loaded, original):
    assert loaded.keys() == original.keys()
    for key, value in original.items():
        assert np.asarray(loaded[key]).dtype == np.float64
        np.testing.assert_array_equal(loaded[key], value)


@pytest.mark.parametrize("covariance_type", ["VVV", "EEI", "VII"])
def test_the_model_file_holds_the_prior_and_a_loaded_model_refits_the_same(tmp_path,
                                                                            covariance_type):
    X = two_clusters()
    model = GaussianMixture(2, covariance_type=covariance_type, prior="default",
                            random_state=0).fit(X)
    model.save(tmp_path / "model.npz")
    loaded = gmmfast.load(tmp_path / "model.npz")
    assert loaded.prior == "default"
    assert_same_prior(loaded.prior_, model.prior_)
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    refit = loaded.fit(X)
    np.testing.assert_array_equal(refit.covariances_, model.covariances_)
    np.testing.assert_array_equal(refit.lower_bounds_, model.lower_bounds_)


def test_a_given_prior_round_trips_exactly(tmp_path):
    X = two_clusters()
    rng = np.random.RandomState(1)
    factor = rng.randn(2, 2)
    prior = {"shrinkage": 0.1 / 3, "mean": rng.randn(2), "dof": 4.5,
             "scale": factor @ factor.T + np.eye(2) / 7}
    model = GaussianMixture(2, prior=prior, random_state=0).fit(X)
    model.save(tmp_path / "model.npz")
    loaded = gmmfast.load(tmp_path / "model.npz")
    assert_same_prior(loaded.prior, prior)
    assert_same_prior(loaded.prior_, model.prior_)
    np.testing.assert_array_equal(loaded.fit(X).means_, model.means_)


def test_a_saved_stream_continues_under_its_prior(tmp_path):
    rng = np.random.RandomState(0)
    batches = [rng.randn(100, 2) * scale for scale in (1.0, 3.0, 2.0)]
    model = GaussianMixture(2, prior="default", random_state=0, init_params="kmeans")
    for batch in batches[:2]:
        model.partial_fit(batch)
    model.save(tmp_path / "model.npz")
    loaded = gmmfast.load(tmp_path / "model.npz")
    model.partial_fit(batches[2])
    loaded.partial_fit(batches[2])
    assert_same_prior(loaded.prior_, model.prior_)
    np.testing.assert_array_equal(loaded.covariances_, model.covariances_)


def test_a_model_without_a_prior_keeps_the_older_file_format(tmp_path):
    model = GaussianMixture(2, random_state=0).fit(two_clusters())
    model.save(tmp_path / "model.npz")
    with np.load(tmp_path / "model.npz") as archive:
        metadata = json.loads(str(archive["metadata"]))
        assert not any(name.startswith("prior") for name in archive.files)
    assert metadata["format_version"] == 2 and "prior" not in metadata["params"]
    loaded = gmmfast.load(tmp_path / "model.npz")
    assert loaded.prior is None and loaded.prior_ is None


def test_sample_weights_count_rows_under_the_prior():
    # The prior weighs as many rows whatever the weights: a weight of 2 is a repeated row,
    # and weights far from 1 are not rescaled (they would change the MAP).
    X = two_clusters(n=20)
    start = dict(weights_init=[0.5, 0.5], means_init=X[[0, -1]],
                 precisions_init=np.array([np.eye(2)] * 2), prior="default", tol=1e-10)
    weights = np.ones(len(X))
    weights[:3] = 2.0
    weighted = GaussianMixture(2, **start).fit(X, sample_weight=weights)
    repeated = GaussianMixture(2, **start).fit(np.vstack([X, X[:3]]))
    assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-8)
    assert_allclose(weighted.prior_["scale"], repeated.prior_["scale"], rtol=1e-12)
    heavy = GaussianMixture(2, **start).fit(X, sample_weight=weights * 2**12)
    assert not np.allclose(heavy.covariances_, weighted.covariances_, rtol=1e-3)
