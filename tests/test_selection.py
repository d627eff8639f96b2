"""Model selection: GaussianMixtureIC / select_model over n_components × covariance_type."""

import pickle
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy as np
import pytest

from gmmfast import GaussianMixture, GaussianMixtureIC, select_model
from gmmfast._compat import ConvergenceWarning, InvalidParameterError
from gmmfast._covariance_models import COVARIANCE_MODELS
from gmmfast._neighbours import is_neighbour_start

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def make_family(covariance_type, n_components=3, n_features=2, n_samples=600, seed=0):
    """Well-separated blobs whose covariances have exactly the structure of one family."""
    rng = np.random.RandomState(seed)
    while True:
        centers = rng.uniform(-12, 12, size=(n_components, n_features))
        gaps = np.linalg.norm(centers[:, None] - centers[None], axis=-1)
        if n_components == 1 or gaps[np.triu_indices(n_components, 1)].min() > 9:
            break
    d = n_features

    def correlated():
        # A random rotation of very unequal axis scales: a clearly non-diagonal matrix.
        q, _ = np.linalg.qr(rng.randn(d, d))
        scales = np.linspace(0.3, 1.6, d)
        return q @ np.diag(scales**2) @ q.T

    if covariance_type == "full":
        covariances = [correlated() for _ in range(n_components)]
    elif covariance_type == "tied":
        covariances = [correlated()] * n_components
    elif covariance_type == "diag":
        # Axis variances from 0.2 to 2.5 in a random order: clearly not spherical.
        covariances = [np.diag(rng.permutation(np.linspace(0.2, 2.5, d))
                               * rng.uniform(0.8, 1.2, d)) for _ in range(n_components)]
    else:
        covariances = [np.eye(d) * s for s in rng.uniform(0.3, 2.0, n_components)]
    sizes = np.full(n_components, n_samples // n_components)
    blocks = [rng.multivariate_normal(c, cov, size=s)
              for c, cov, s in zip(centers, covariances, sizes)]
    X = np.vstack(blocks)
    return X[rng.permutation(len(X))]


def hand_n_parameters(covariance_type, k, d):
    """Covariances (mclust's nVarParams, as tabulated by Scrucca et al. 2016), means and
    weights."""
    rotation = d * (d - 1) // 2
    covariance = {
        "EII": 1, "VII": k, "EEI": d, "VEI": k + d - 1, "EVI": 1 + k * (d - 1),
        "VVI": k * d, "EEE": d * (d + 1) // 2, "VEE": k + d - 1 + rotation,
        "EVE": 1 + k * (d - 1) + rotation, "VVE": k * d + rotation,
        "EEV": d + k * rotation, "VEV": k + d - 1 + k * rotation,
        "EVV": k * d * (d + 1) // 2 - (k - 1), "VVV": k * d * (d + 1) // 2,
        "full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return int(covariance + k * d + (k - 1))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("n_features", [2, 3])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bic_picks_the_true_number_of_components_and_family(covariance_type, n_features,
                                                            seed):
    n_components = 3 if seed == 0 else 4
    X = make_family(covariance_type, n_components, n_features, seed=seed)
    search = GaussianMixtureIC(n_components=range(1, 7), covariance_type=COVARIANCE_TYPES,
                               random_state=0).fit(X)
    assert (search.n_components_, search.covariance_type_) == (n_components, covariance_type)
    assert search.best_estimator_.n_components == n_components


def test_the_table_has_every_candidate_in_grid_order():
    X = make_family("full", 2)
    grid, types = [3, 1, 2], ["diag", "full"]
    search = GaussianMixtureIC(n_components=grid, covariance_type=types, random_state=0)
    table = search.fit(X).criterion_table_
    assert len(table) == 6
    assert table["n_components"].tolist() == [3, 3, 1, 1, 2, 2]
    assert table["covariance_type"].tolist() == ["diag", "full"] * 3
    assert set(table) == {"n_components", "covariance_type", "mclust_name", "sklearn_name",
                          "bic", "aic", "log_likelihood", "n_parameters", "n_iter",
                          "start", "gain_over_kmeans", "collapsed",
                          "converged", "fit_seconds", "status", "message"}
    assert table["mclust_name"].tolist() == ["VVI", "VVV"] * 3
    assert table["sklearn_name"].tolist() == types * 3
    assert (table["status"] == "ok").all() and table["converged"].all()
    assert (table["n_iter"] >= 1).all() and (table["fit_seconds"] >= 0).all()
    assert table.criterion == "bic" and table.best_index == search.best_index_
    assert table["bic"][search.best_index_] == table["bic"].min()
    for column in table.values():
        assert len(column) == 6
    records = table.to_records()
    assert records.shape == (6,) and records["bic"][0] == table["bic"][0]
    text = str(table)
    assert "diag" in text and "full" in text and "*" in text
    assert "CriterionTable(criterion='bic', 6 candidates" in repr(table)


def test_to_frame():
    pd = pytest.importorskip("pandas")
    X = make_family("diag", 2)
    table = GaussianMixtureIC(n_components=[1, 2], random_state=0).fit(X).criterion_table_
    frame = table.to_frame()
    assert isinstance(frame, pd.DataFrame) and frame.shape == (28, len(table.keys()))
    assert frame["bic"].tolist() == table["bic"].tolist()


@pytest.fixture(scope="module")
def criteria_by_hand():
    """Every candidate of a 14-model x K=1..4 grid refitted alone and scored by hand."""
    X = make_family("full", 3, seed=3)
    n = X.shape[0]
    hand = {}
    for covariance_type in COVARIANCE_MODELS:
        for k in range(1, 5):
            gm = GaussianMixture(k, covariance_type=covariance_type, init_params="multistart",
                                 random_state=0, n_threads=1).fit(X)
            loglik = gm.score_samples(X).sum()
            p = hand_n_parameters(covariance_type, k, X.shape[1])
            resp = gm.predict_proba(X)
            positive = resp > 0
            entropy = -np.sum(resp[positive] * np.log(resp[positive]))
            bic = -2 * loglik + p * np.log(n)
            hand[k, covariance_type] = {"aic": -2 * loglik + 2 * p, "bic": bic,
                                        "icl": bic + 2 * entropy, "p": p, "loglik": loglik}
    return X, hand


@pytest.mark.parametrize("criterion", ["aic", "icl"])
def test_aic_and_icl_match_a_computation_by_hand(criterion, criteria_by_hand):
    X, by_hand = criteria_by_hand
    search = GaussianMixtureIC(n_components=range(1, 5), criterion=criterion,
                               random_state=0).fit(X)
    table = search.criterion_table_
    hand = [by_hand[int(k), str(covariance_type)]
            for k, covariance_type in zip(table["n_components"], table["covariance_type"])]
    assert len(hand) == len(by_hand)
    # A candidate refitted from its neighbours' fits (gmmfast._neighbours) ends higher
    # than the estimator alone; its criteria follow from its own log-likelihood.
    refitted = np.array([is_neighbour_start(start) for start in table["start"]])
    assert refitted.any() and not refitted.all()
    n = X.shape[0]
    loglik = table["log_likelihood"]
    p = table["n_parameters"]
    assert np.all(loglik[refitted] > np.array([h["loglik"] for h in hand])[refitted])
    np.testing.assert_allclose(table["bic"][refitted],
                               (-2 * loglik + p * np.log(n))[refitted], rtol=1e-10)
    np.testing.assert_allclose(table["aic"][refitted], (-2 * loglik + 2 * p)[refitted],
                               rtol=1e-10)
    alone = ~refitted
    for name in ("aic", "bic", criterion):
        np.testing.assert_allclose(table[name][alone],
                                   np.array([h[name] for h in hand])[alone], rtol=1e-10)
    np.testing.assert_allclose(loglik[alone], np.array([h["loglik"] for h in hand])[alone],
                               rtol=1e-10)
    assert p.tolist() == [h["p"] for h in hand]
    scores = np.where(refitted, table[criterion], [h[criterion] for h in hand])
    assert search.best_index_ == int(np.argmin(scores))
    assert table.scores is table[criterion]


def test_icl_is_bic_plus_a_non_negative_entropy():
    X = make_family("spherical", 2, seed=2)
    table = GaussianMixtureIC(n_components=range(1, 5), criterion="icl",
                              random_state=0).fit(X).criterion_table_
    assert np.all(table["icl"] >= table["bic"])
    one = table["n_components"] == 1
    np.testing.assert_array_equal(table["icl"][one], table["bic"][one])


def test_icl_scores_a_candidate_and_its_entropy_in_one_pass(monkeypatch):
    from gmmfast import _gaussian_mixture

    X = make_family("full", 3, seed=4)
    score_arrays = _gaussian_mixture.score_arrays
    passes = []
    monkeypatch.setattr(_gaussian_mixture, "score_arrays",
                        lambda *args, **kwargs: passes.append(1) or score_arrays(*args,
                                                                                 **kwargs))
    search = GaussianMixtureIC(n_components=[2, 3], covariance_type="VVV,VII",
                               criterion="icl", random_state=0, n_threads=1).fit(X)
    assert len(passes) == len(search.criterion_table_)


def test_icl_entropy_is_summed_in_blocks(monkeypatch):
    from gmmfast import _selection

    X = make_family("full", 3, seed=4)
    whole = GaussianMixtureIC(n_components=[2, 3], criterion="icl", random_state=0).fit(X)
    monkeypatch.setattr(_selection, "ENTROPY_BLOCK", 7)
    blocks = GaussianMixtureIC(n_components=[2, 3], criterion="icl", random_state=0).fit(X)
    np.testing.assert_allclose(blocks.criterion_table_["icl"], whole.criterion_table_["icl"],
                               rtol=1e-12)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_candidate_is_the_model_an_independent_fit_gives(init_params):
    # One initialisation per K, shared by the covariance types: nothing changes.
    X = make_family("tied", 3, n_features=3, seed=5).astype(np.float32)
    search = GaussianMixtureIC(n_components=[1, 3, 4], init_params=init_params, n_init=2,
                               random_state=7, max_iter=30).fit(X)
    table = search.criterion_table_
    for i, (k, covariance_type) in enumerate(zip(table["n_components"],
                                                 table["covariance_type"])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            # One kernel thread: the search's default threads must give the same model.
            gm = GaussianMixture(int(k), covariance_type=str(covariance_type), n_init=2,
                                 init_params=init_params, random_state=7, max_iter=30,
                                 n_threads=1).fit(X)
        assert table["bic"][i] == gm.bic(X)
        assert table["aic"][i] == gm.aic(X)
        assert table["n_iter"][i] == gm.n_iter_
        if i == search.best_index_:
            best = search.best_estimator_
            for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
                assert getattr(best, name).dtype == np.float32
                np.testing.assert_array_equal(getattr(best, name), getattr(gm, name))


def test_result_does_not_depend_on_n_threads():
    X = make_family("diag", 3, n_features=3, seed=6)
    fits = [GaussianMixtureIC(n_components=range(1, 6), random_state=0, n_threads=t).fit(X)
            for t in (1, 2, 3)]
    for other in fits[1:]:
        for name in ("bic", "aic", "n_iter", "log_likelihood"):
            np.testing.assert_array_equal(other.criterion_table_[name],
                                          fits[0].criterion_table_[name])
        np.testing.assert_array_equal(other.best_estimator_.means_,
                                      fits[0].best_estimator_.means_)
        assert other.best_estimator_.n_threads == other.n_threads


def test_a_parallel_multistart_search_draws_while_the_trees_are_built(monkeypatch):
    # The trees are a task of their own: every other look at them (a pool's cuts) comes
    # after they are built, so no worker waits for them; the pools are those of one
    # worker, which draws each pool whole.
    from gmmfast._starts import Screen

    looks = []
    agglomerations = Screen._agglomerations

    def recorded(screen):
        looks.append(screen._trees is not None)
        return agglomerations(screen)

    monkeypatch.setattr(Screen, "_agglomerations", recorded)
    X = make_family("full", 3, n_features=2, seed=6)
    parallel = GaussianMixtureIC(n_components=range(1, 5), random_state=0,
                                 n_threads=2).fit(X)
    assert looks[0] is False and all(looks[1:]) and len(looks) == 1 + 3
    looks.clear()
    alone = GaussianMixtureIC(n_components=range(1, 5), random_state=0, n_threads=1).fit(X)
    assert looks[0] is False and len(looks) == 3
    for name in ("bic", "n_iter", "start"):
        np.testing.assert_array_equal(parallel.criterion_table_[name],
                                      alone.criterion_table_[name])
    # A grid of one component needs no trees.
    looks.clear()
    GaussianMixtureIC(n_components=[1], random_state=0, n_threads=2).fit(X)
    assert looks == []


def test_random_state_instance_and_none_are_accepted():
    X = make_family("full", 2, seed=7)
    a = GaussianMixtureIC(n_components=[1, 2], random_state=np.random.RandomState(3)).fit(X)
    b = GaussianMixtureIC(n_components=[1, 2], random_state=np.random.RandomState(3)).fit(X)
    np.testing.assert_array_equal(a.criterion_table_["bic"], b.criterion_table_["bic"])
    c = GaussianMixtureIC(n_components=[1, 2]).fit(X)
    assert c.n_components_ == 2


def test_methods_are_those_of_the_chosen_model():
    X = make_family("full", 3, seed=8)
    search = GaussianMixtureIC(n_components=range(2, 5), random_state=0).fit(X)
    best = search.best_estimator_
    np.testing.assert_array_equal(search.predict(X), best.predict(X))
    np.testing.assert_array_equal(search.predict_proba(X), best.predict_proba(X))
    np.testing.assert_array_equal(search.score_samples(X), best.score_samples(X))
    assert search.score(X) == best.score(X)
    assert search.bic(X) == best.bic(X) == search.criterion_table_["bic"][search.best_index_]
    assert search.aic(X) == best.aic(X)
    np.testing.assert_array_equal(search.fit_predict(X), best.predict(X))
    Xs, ys = search.sample(50)
    assert Xs.shape == (50, 2) and ys.shape == (50,)
    again = pickle.loads(pickle.dumps(search))
    np.testing.assert_array_equal(again.predict(X), search.predict(X))
    assert again.criterion_table_.best_index == search.best_index_


def test_sample_weight_is_passed_to_every_candidate():
    X = make_family("diag", 2, seed=9)
    w = np.random.RandomState(0).uniform(0.5, 2.0, len(X))
    search = GaussianMixtureIC(n_components=[1, 2, 3], covariance_type="diag",
                               random_state=0).fit(X, sample_weight=w)
    gm = GaussianMixture(search.n_components_, covariance_type="diag",
                         random_state=0).fit(X, sample_weight=w)
    np.testing.assert_array_equal(search.best_estimator_.means_, gm.means_)
    assert search.criterion_table_["bic"][search.best_index_] == gm.bic(X, sample_weight=w)


@pytest.mark.parametrize("case", ["plain", "weighted", "omit"])
def test_the_table_scores_each_candidate_as_its_model_does_without_validating_x_again(
        case, monkeypatch):
    # X is validated once per search; each candidate's score is still, bit for bit, its
    # fitted model's own on the training data (weights, missing entries and all).
    X = make_family("full", 2, n_features=3, n_samples=300, seed=11)
    fit_params = {}
    if case == "weighted":
        fit_params["sample_weight"] = np.random.RandomState(1).uniform(0.5, 2.0, len(X))
    if case == "omit":
        X[np.random.RandomState(2).rand(*X.shape) < 0.1] = np.nan
        X[5] = np.nan  # a row with nothing observed weighs nothing
    import gmmfast._gaussian_mixture as estimator_module

    validate = estimator_module.validate_data
    calls = []
    with monkeypatch.context() as patch:
        patch.setattr(estimator_module, "validate_data",
                      lambda *args, **kwargs: calls.append(1) or validate(*args, **kwargs))
        search = GaussianMixtureIC(n_components=[1, 2, 3], covariance_type="VVV,EEE,VEI",
                                   random_state=0, init_params="kmeans",
                                   nan_policy="omit" if case == "omit" else "raise",
                                   ).fit(X, **fit_params)
    assert calls == []
    table = search.criterion_table_
    assert (table["status"] == "ok").all()
    weights = fit_params.get("sample_weight")
    for i in range(len(table)):
        model = GaussianMixture(int(table["n_components"][i]),
                                covariance_type=str(table["covariance_type"][i]),
                                random_state=0, nan_policy=search.nan_policy)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, sample_weight=weights)
        assert table["bic"][i] == model.bic(X, sample_weight=weights)


def test_candidates_with_more_components_than_samples_are_skipped():
    X = make_family("spherical", 2, n_samples=8, seed=10)
    search = GaussianMixtureIC(n_components=[1, 2, 9, 12], covariance_type="spherical",
                               random_state=0).fit(X)
    table = search.criterion_table_
    assert table["status"].tolist() == ["ok", "ok", "skipped", "skipped"]
    assert np.isnan(table["bic"][2:]).all()
    assert "number of samples (8)" in table["message"][2]
    assert search.n_components_ in (1, 2)
    assert "-" in str(table)
    with pytest.raises(ValueError, match="larger than the number of samples"):
        GaussianMixtureIC(n_components=[9, 10]).fit(X)


def test_zero_weight_rows_do_not_count_as_samples():
    X = make_family("diag", 2, n_samples=10, seed=11)
    w = np.zeros(len(X))
    w[:3] = 1.0
    table = GaussianMixtureIC(n_components=[2, 4], covariance_type="diag",
                              random_state=0).fit(X, sample_weight=w).criterion_table_
    assert table["status"].tolist() == ["ok", "skipped"]


def test_a_candidate_that_breaks_down_is_recorded_as_failed():
    # Two distinct points: a full covariance of everything is singular without reg_covar,
    # a component on one point has zero variance; diag/spherical of everything are fine.
    X = np.repeat([[0.0, 0.0], [1.0, 1.0]], 10, axis=0)
    search = GaussianMixtureIC(n_components=[1, 2], covariance_type=COVARIANCE_TYPES,
                               reg_covar=0.0, random_state=0).fit(X)
    table = search.criterion_table_
    status = dict(zip(zip(table["n_components"].tolist(), table["covariance_type"].tolist()),
                      table["status"].tolist()))
    assert status[1, "full"] == "failed" and status[1, "diag"] == "ok"
    assert status[2, "spherical"] == "failed"
    failed = table["status"] == "failed"
    assert all("ill-defined empirical covariance" in m for m in table["message"][failed])
    assert search.covariance_type_ in ("diag", "spherical")
    assert "failed" in str(table)
    with pytest.raises(ValueError, match="No candidate of the grid could be fitted"):
        GaussianMixtureIC(n_components=[2], reg_covar=0.0, random_state=0).fit(X)


def test_only_the_chosen_model_warns_about_convergence():
    X = make_family("full", 3, seed=12)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search = GaussianMixtureIC(n_components=[2, 3], max_iter=1, init_params="kmeans",
                                   random_state=0).fit(X)
    convergence = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert len(convergence) == 1
    assert "chosen model" in str(convergence[0].message)
    assert not search.criterion_table_["converged"].any()
    assert "!" in str(search.criterion_table_)


def test_select_model_returns_the_fitted_search_and_reports_progress():
    X = make_family("spherical", 2, seed=13)
    calls = []
    result = select_model(X, [1, 2, 3], ["spherical", "diag"], "aic", random_state=0,
                          progress=lambda done, total, row: calls.append((done, total, row)))
    assert isinstance(result, GaussianMixtureIC)
    assert result.criterion == "aic" and result.criterion_table_.criterion == "aic"
    assert [c[0] for c in calls] == list(range(1, 7)) and {c[1] for c in calls} == {6}
    assert {(c[2]["n_components"], c[2]["covariance_type"]) for c in calls} == {
        (k, t) for k in (1, 2, 3) for t in ("spherical", "diag")}
    same = GaussianMixtureIC([1, 2, 3], covariance_type=["spherical", "diag"],
                             criterion="aic", random_state=0).fit(X)
    np.testing.assert_array_equal(result.criterion_table_["aic"], same.criterion_table_["aic"])


def test_blas_thread_limit_is_restored_after_a_parallel_search():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [(i["internal_api"], i["num_threads"])
              for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    GaussianMixtureIC(n_components=range(1, 5), random_state=0, n_threads=2).fit(
        make_family("full", 2, seed=14))
    after = [(i["internal_api"], i["num_threads"])
             for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert after == before


@pytest.mark.parametrize("params, error, match", [
    ({"n_components": []}, ValueError, "n_components is empty"),
    ({"n_components": [2, 0]}, ValueError, "must be >= 1"),
    ({"n_components": "3"}, TypeError, "n_components must be an int"),
    ({"n_components": [2.5]}, TypeError, "must contain ints"),
    ({"covariance_type": "bad"}, ValueError, "covariance_type must be 'all' or among"),
    ({"covariance_type": []}, ValueError, "covariance_type is empty"),
    ({"criterion": "bad"}, InvalidParameterError, "criterion"),
    ({"n_threads": 0}, InvalidParameterError, "n_threads"),
])
def test_invalid_parameters(params, error, match):
    with pytest.raises(error, match=match):
        GaussianMixtureIC(**params).fit(make_family("full", 2, n_samples=40))


def test_grid_parameters_accept_any_iterable():
    X = make_family("diag", 2, n_samples=200, seed=15)
    search = GaussianMixtureIC(n_components=(k for k in (1, 2)),
                               covariance_type=iter(["diag"]), random_state=0).fit(X)
    assert len(search.criterion_table_) == 2
    assert GaussianMixtureIC(n_components=np.int64(2), covariance_type="tied",
                             random_state=0).fit(X).n_components_ == 2


def test_works_without_scikit_learn():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["sklearn"] = None
        import numpy as np
        import gmmfast
        from gmmfast import _compat
        assert not _compat.HAS_SKLEARN
        rng = np.random.default_rng(0)
        X = np.vstack([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 8])
        search = gmmfast.GaussianMixtureIC(n_components=range(1, 5), random_state=0).fit(X)
        assert search.n_components_ == 2, search.criterion_table_
        assert len(search.criterion_table_) == 4 * 14
        try:
            gmmfast.GaussianMixtureIC(criterion="bad").fit(X)
        except ValueError as exc:
            assert "criterion" in str(exc)
        else:
            raise AssertionError("criterion='bad' was accepted")
        print(repr(gmmfast.GaussianMixtureIC(n_components=[1, 2], criterion="icl")))
        """
    )
    with tempfile.TemporaryDirectory() as empty_dir:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=120, cwd=empty_dir)
    assert result.returncode == 0, result.stderr
    assert "criterion='icl'" in result.stdout


# --------------------------------------------------------------------------------------
# scikit-learn's estimator checks, on every covariance model and a short grid
# --------------------------------------------------------------------------------------

try:
    from sklearn.utils.estimator_checks import parametrize_with_checks
except ImportError:  # pragma: no cover
    parametrize_with_checks = None


def _expected_failed_checks(estimator):
    return {
        # A random initialisation (k-means++ seeding) draws differently from weighted and
        # from repeated rows, so the fitted mixtures differ, as for GaussianMixture(3).
        "check_sample_weight_equivalence_on_dense_data":
            "random initialisations draw differently from weighted and repeated rows",
    }


if parametrize_with_checks is not None:

    # Every covariance model, but a short range of n_components: the checks fit dozens of
    # times, and the default's 140 candidates would make them take minutes.
    @parametrize_with_checks([GaussianMixtureIC(n_components=[1, 2])],
                             expected_failed_checks=_expected_failed_checks)
    def test_sklearn_estimator_checks(estimator, check):
        name = getattr(check, "func", check).__name__
        expected = _expected_failed_checks(estimator)
        if name in expected:
            # Known to fail for the reason given; its fits take half a minute.
            pytest.xfail(expected[name])
        check(estimator)
