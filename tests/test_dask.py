"""GaussianMixture on dask arrays, on a real two-worker LocalCluster (processes, loopback).

The in-memory fit is the reference: started from the same parameters, the Dask fit must
follow the same EM trajectory (only the order of the block sums differs), for every
covariance type and chunking, with and without sample weights; and its result must not
depend on the number of workers or on the scheduler.
"""

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

pytest.importorskip("distributed")  # a guard only: the test extra installs Dask

import dask  # noqa: E402
import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

import gmmfast._dask  # noqa: E402
from gmmfast import (  # noqa: E402
    BayesianGaussianMixture,
    GaussianMixture,
    GaussianMixtureIC,
    GaussianMixtureImputer,
)

# A second LocalCluster cannot have the HTTP port of the first: distributed says so.
pytestmark = pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning")

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
N_COMPONENTS = 3
RTOL = 1e-10


@contextlib.contextmanager
def _cluster(n_workers):
    """A LocalCluster that leaves this process's environment as it found it.

    distributed's nanny writes its ``pre-spawn-environ`` (OMP_NUM_THREADS=1, …) into
    ``os.environ``: the subprocesses of later tests would inherit it.
    """
    environ = dict(os.environ)
    try:
        with LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                          host="127.0.0.1", dashboard_address=None) as cluster:
            yield cluster
    finally:
        os.environ.clear()
        os.environ.update(environ)


@pytest.fixture(scope="module")
def client():
    """The default client of this module's tests: two worker processes."""
    with _cluster(2) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def X(make_data):
    return make_data(n_samples=1200, n_components=N_COMPONENTS, n_features=3, seed=3)


@pytest.fixture(scope="module")
def weights(X):
    w = np.random.RandomState(7).uniform(0.0, 2.0, len(X))
    w[::11] = 0.0  # rows of zero weight must count for nothing
    return w


def _fit(X, sample_weight=None, **params):
    params = {"n_components": N_COMPONENTS, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning with tol=0
        return GaussianMixture(**params).fit(X, sample_weight=sample_weight)


def _assert_close(actual, expected, rtol=RTOL):
    """Equal to ``rtol`` relative to the largest entry (covariances have zeros)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    scale = np.max(np.abs(expected), initial=0.0)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def _assert_same_fit(a, b, rtol=RTOL):
    assert a.n_iter_ == b.n_iter_ and a.converged_ == b.converged_
    _assert_close(np.array(a.lower_bounds_), np.array(b.lower_bounds_), rtol)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        _assert_close(getattr(a, name), getattr(b, name), rtol)


def _assert_identical(a, b):
    assert a.n_iter_ == b.n_iter_
    assert a.lower_bounds_ == b.lower_bounds_
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# ----------------------------------------------------------------------------------------
# the same fit as in memory, on the cluster
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_weights", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_matches_in_memory_fit(client, X, weights, make_inits, covariance_type,
                               use_weights):
    w = weights if use_weights else None
    params = dict(covariance_type=covariance_type, tol=0.0, max_iter=12,
                  **make_inits(X, N_COMPONENTS, covariance_type))
    expected = _fit(X, w, **params)
    # 5 blocks, the last one short (1200 = 4 × 250 + 200); weights chunked differently
    # (the fit aligns them with X's blocks).
    Xd = da.from_array(X, chunks=(250, 3))
    wd = None if w is None else da.from_array(w, chunks=333)
    got = _fit(Xd, wd, **params)
    assert len(got.lower_bounds_) == 12
    _assert_same_fit(got, expected)


@pytest.mark.parametrize("chunks", [
    (1200, 3),                   # one block
    (300, 3),                    # even blocks
    (500, 1),                    # uneven last block, columns split (rechunked to one)
    ((7, 600, 1, 592), (3,)),    # tiny and uneven blocks
    ((0, 600, 0, 600), (3,)),    # empty blocks
], ids=["one-block", "even", "uneven-columns-split", "ragged", "empty-blocks"])
def test_matches_in_memory_for_any_chunking(client, X, weights, make_inits, chunks):
    params = dict(tol=0.0, max_iter=8, **make_inits(X, N_COMPONENTS, "full"))
    expected = _fit(X, weights, **params)
    Xd = da.from_array(X, chunks=chunks)
    # NumPy weights are accepted and split like X's rows.
    _assert_same_fit(_fit(Xd, weights, **params), expected)


def test_random_from_data_draws_the_in_memory_rows(client, X, weights):
    """Without an explicit start: random_from_data fetches only the K chosen rows and
    chooses them exactly as the in-memory fit does (same RNG stream), so whole fits,
    n_init included, agree."""
    for w in (None, weights):
        params = dict(init_params="random_from_data", random_state=5, n_init=2, max_iter=30)
        expected = _fit(X, w, **params)
        wd = None if w is None else da.from_array(w, chunks=400)
        _assert_same_fit(_fit(da.from_array(X, chunks=400), wd, **params), expected)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++"])
def test_kmeans_initialisations_reach_the_in_memory_optimum(client, X, init_params):
    """kmeans / k-means++ seed on a uniform sample of the rows (here all of them, X being
    small) and run Lloyd's steps over the blocks: the well-separated optimum is reached."""
    expected = _fit(X, init_params=init_params, random_state=0)
    got = _fit(da.from_array(X, chunks=300), init_params=init_params, random_state=0)
    assert got.converged_
    np.testing.assert_allclose(got.lower_bound_, expected.lower_bound_, rtol=1e-6)
    order = np.argsort(got.means_[:, 0]), np.argsort(expected.means_[:, 0])
    np.testing.assert_allclose(got.means_[order[0]], expected.means_[order[1]], atol=1e-3)


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_empty_and_weightless_blocks(client, X, weights, init_params):
    """Blocks without rows, or whose rows all weigh zero, take no part in the data's mean
    (which random and kmeans use): the fit equals the one without those blocks."""
    w = weights.copy()
    w[:300] = 0.0
    Xd = da.from_array(X, chunks=((0, 300, 0, 900), (3,)))
    wd = da.from_array(w, chunks=((0, 300, 0, 900),))
    got = _fit(Xd, wd, init_params=init_params, random_state=0, max_iter=0)
    kept = da.from_array(X[300:], chunks=900), da.from_array(w[300:], chunks=900)
    expected = _fit(*kept, init_params=init_params, random_state=0, max_iter=0)
    if init_params == "kmeans":  # random draws one seed per block: compare kmeans only
        _assert_same_fit(got, expected)
    assert np.all(np.isfinite(got.means_)) and np.all(np.isfinite(got.covariances_))


def test_random_initialisation_draws_per_block(client, X, weights):
    """Random responsibilities are drawn on the workers, from one seed per block: like the
    in-memory draw, they put every initial mean near the data's (weighted) mean, with
    weights near 1/K; the same seed and chunking give the same start."""
    Xd, wd = da.from_array(X, chunks=300), da.from_array(weights, chunks=300)
    start = _fit(Xd, wd, init_params="random", random_state=0, max_iter=0)
    mean = np.average(X, axis=0, weights=weights)
    spread = np.sqrt(np.average((X - mean) ** 2, axis=0, weights=weights))
    assert np.all(np.abs(start.means_ - mean) < 0.1 * spread)
    np.testing.assert_allclose(start.weights_, 1 / N_COMPONENTS, atol=0.03)
    in_memory = _fit(X, weights, init_params="random", random_state=0, max_iter=0)
    assert np.all(np.abs(in_memory.means_ - mean) < 0.1 * spread)
    _assert_identical(_fit(Xd, wd, init_params="random", random_state=0, max_iter=0), start)


def test_float32_stays_float32(client, X, make_inits):
    X32 = X.astype(np.float32)
    params = dict(tol=0.0, max_iter=8, **make_inits(X, N_COMPONENTS, "full"))
    expected = _fit(X32, **params)
    got = _fit(da.from_array(X32, chunks=350), **params)
    for name in ("weights_", "means_", "covariances_", "precisions_", "lower_bound_"):
        assert getattr(got, name).dtype == np.float32
    # Both compute in float32; blocks of 350 rows and chunks of 256 form their float32
    # partial sums over different rows, so the statistics agree to float32 rounding.
    _assert_same_fit(got, expected, rtol=1e-6)
    scores = got.score_samples(da.from_array(X32, chunks=350))
    assert scores.dtype == np.float32
    _assert_close(scores.compute(), expected.score_samples(X32), rtol=1e-5)


# ----------------------------------------------------------------------------------------
# independent of workers and scheduler
# ----------------------------------------------------------------------------------------


def test_same_result_on_one_or_two_workers_and_threads(client, make_data, weights,
                                                      monkeypatch):
    """Bit-identical whoever computes the blocks: 2 workers, 1 worker, the threaded
    scheduler without a cluster. kmeans seeds on a 500-row sample of the 1200 rows."""
    monkeypatch.setattr(gmmfast._dask, "INIT_SAMPLE_ROWS", 500)
    overlapping = make_data(n_samples=1200, n_components=N_COMPONENTS, n_features=3,
                            seed=3, spread=1.0)
    Xd = da.from_array(overlapping, chunks=250)
    wd = da.from_array(weights, chunks=250)
    params = dict(random_state=0, n_init=2, max_iter=25, tol=1e-6)
    on_two = _fit(Xd, wd, **params)
    assert on_two.n_iter_ > 2
    with _cluster(1) as cluster, Client(cluster):
        on_one = _fit(Xd, wd, **params)
    with dask.config.set(scheduler="threads"):
        threaded = _fit(Xd, wd, **params)
    _assert_identical(on_one, on_two)
    _assert_identical(threaded, on_two)


def test_lost_worker_gives_the_same_result(X, make_inits):
    """A worker killed after the first iteration takes its persisted blocks with it: Dask
    recomputes them from X's graph and the fit ends with the same numbers."""
    params = dict(tol=0.0, max_iter=6, **make_inits(X, N_COMPONENTS, "full"))
    Xd = da.from_array(X, chunks=150)
    with _cluster(2) as cluster, Client(cluster) as c:
        reference = _fit(Xd, **params)
        pids = c.run(os.getpid)
        killed = []

        class KillAfterFirstIteration:
            """stdout for verbose=1 output: kills a worker on "  Iteration 1"."""

            def write(self, text):
                if "Iteration 1" in text and not killed:
                    pid = next(iter(pids.values()))
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return len(text)

            def flush(self):
                pass

        stdout, sys.stdout = sys.stdout, KillAfterFirstIteration()
        try:
            survived = _fit(Xd, verbose=1, verbose_interval=1, **params)
        finally:
            sys.stdout = stdout
        assert killed
        # Let the nanny bring the worker back: closing a cluster mid-restart can stall.
        c.wait_for_workers(2, timeout=60)
        assert killed[0] not in c.run(os.getpid).values()  # the fit ran on a new worker
    _assert_identical(survived, reference)


# ----------------------------------------------------------------------------------------
# how the work is shipped
# ----------------------------------------------------------------------------------------


def test_parameters_travel_once_per_iteration(X):
    """Every E-step graph holds the parameters once; the block tasks only refer to them."""
    n_components, n_features = 8, 24
    rng = np.random.RandomState(0)
    Xw = rng.randn(2000, n_features)
    graphs = []

    def recording_scheduler(dsk, keys, **kwargs):
        graphs.append(dict(dsk.__dask_graph__()) if hasattr(dsk, "__dask_graph__")
                      else dict(dsk))
        return dask.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=recording_scheduler):
        model = _fit(da.from_array(Xw, chunks=200), n_components=n_components, max_iter=2,
                     tol=0.0, init_params="random_from_data", random_state=0)
    # What the E-step needs: weights, means and Cholesky factors of the precisions.
    params_bytes = sum(a.nbytes for a in (model.weights_, model.means_,
                                          model.precisions_cholesky_))
    e_step = graphs[-1]  # the last pass is an E-step
    tasks = {k: v for k, v in e_step.items() if "_run_on_block" in str(k)}
    assert len(tasks) == 10
    for task in tasks.values():
        assert len(pickle.dumps(task)) < params_bytes / 10
    literals = [v for k, v in e_step.items()
                if k not in tasks and "_checked_row" not in str(k)]
    assert len(literals) == 1 and len(pickle.dumps(literals[0])) > params_bytes


# ----------------------------------------------------------------------------------------
# prediction and scoring
# ----------------------------------------------------------------------------------------


def test_lazy_prediction_equals_in_memory(client, X, weights):
    model = _fit(X, random_state=0)
    Xd = da.from_array(X, chunks=(350, 3))
    labels, resp = model.predict(Xd), model.predict_proba(Xd)
    log_prob = model.score_samples(Xd)
    for lazy in (labels, resp, log_prob):
        assert isinstance(lazy, da.Array)
        assert lazy.chunks[0] == Xd.chunks[0]
    assert labels.dtype == np.int64 and resp.shape == (len(X), N_COMPONENTS)
    np.testing.assert_array_equal(labels.compute(), model.predict(X))
    np.testing.assert_array_equal(resp.compute(), model.predict_proba(X))
    np.testing.assert_array_equal(log_prob.compute(), model.score_samples(X))
    wd = da.from_array(weights, chunks=350)
    np.testing.assert_allclose(model.score(Xd), model.score(X), rtol=1e-13)
    np.testing.assert_allclose(model.score(Xd, sample_weight=wd),
                               model.score(X, sample_weight=weights), rtol=1e-13)
    np.testing.assert_allclose(model.bic(Xd), model.bic(X), rtol=1e-13)
    np.testing.assert_allclose(model.aic(Xd, sample_weight=wd),
                               model.aic(X, sample_weight=weights), rtol=1e-13)
    assert isinstance(model.score(Xd), float)


def test_fit_predict_gives_lazy_labels_of_the_fitted_model(client, X):
    Xd = da.from_array(X, chunks=400)
    model = GaussianMixture(N_COMPONENTS, random_state=0)
    labels = model.fit_predict(Xd)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), model.predict(X))
    np.testing.assert_array_equal(labels.compute(), GaussianMixture(
        N_COMPONENTS, random_state=0).fit_predict(X))


def test_warm_start_and_max_iter_zero_use_the_shared_driver(client, X, make_inits):
    inits = make_inits(X, N_COMPONENTS, "diag")
    Xd = da.from_array(X, chunks=500)
    cold = _fit(X, covariance_type="diag", max_iter=2, tol=0.0, **inits)
    warm = GaussianMixture(N_COMPONENTS, covariance_type="diag", max_iter=1, tol=0.0,
                           warm_start=True, **inits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm.fit(Xd).fit(Xd)
    _assert_close(warm.means_, cold.means_)
    start = _fit(Xd, max_iter=0, covariance_type="diag", **inits)
    assert start.n_iter_ == 0 and start.lower_bounds_ == []
    _assert_close(start.means_, inits["means_init"])


# ----------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------


def _error(fit, *args, **kwargs):
    with pytest.raises(ValueError) as info:
        fit(*args, **kwargs)
    return str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bad_value_in_one_block_raises_the_in_memory_error(client, X, bad):
    Xbad = X.copy()
    Xbad[1100, 1] = bad  # in the last of three blocks
    message = _error(GaussianMixture(2).fit, Xbad)
    assert message.startswith("Input X contains NaN" if bad != bad else "Input X contains inf")
    Xd = da.from_array(Xbad, chunks=500)
    previous = GaussianMixture(2, random_state=0).fit(X)
    means = previous.means_.copy()
    assert _error(previous.fit, Xd) == message
    np.testing.assert_array_equal(previous.means_, means)  # a failed fit changes nothing
    for method in ("predict", "predict_proba", "score_samples"):  # checked while scoring
        lazy = getattr(previous, method)(Xd)
        assert _error(lazy.compute) == _error(getattr(previous, method), Xbad) == message


def test_weight_errors(client, X):
    Xd = da.from_array(X, chunks=500)
    negative = -np.ones(len(X))
    wd = da.from_array(negative, chunks=500)
    assert _error(GaussianMixture(2).fit, Xd, sample_weight=wd) == _error(
        GaussianMixture(2).fit, X, sample_weight=negative)
    zero = da.zeros(len(X), chunks=500)
    assert "at least one non-zero" in _error(GaussianMixture(2).fit, Xd, sample_weight=zero)
    assert "shape" in _error(GaussianMixture(2).fit, Xd, sample_weight=da.ones(5))


def test_metadata_errors_do_not_compute():
    """Shape errors are found from metadata alone: X here cannot even be computed."""
    def broken(block):
        raise AssertionError("X was computed")

    Xd = da.ones((10, 3), chunks=5).map_blocks(broken, dtype=np.float64)
    assert "n_components = 12, n_samples = 10" in _error(GaussianMixture(12).fit, Xd)
    assert "Expected 2D array" in _error(GaussianMixture(2).fit, da.ones(10))
    assert "minimum of 2 is required" in _error(GaussianMixture(1).fit, da.ones((1, 3)))
    model = GaussianMixture(2, random_state=0).fit(np.random.RandomState(0).randn(50, 2))
    assert _error(model.predict, Xd) == "X has 3 features, but GaussianMixture is " \
                                        "expecting 2 features as input."
    unknown = da.ones((10, 2), chunks=5)[da.ones(10, chunks=5) > 0]
    assert "compute_chunk_sizes" in _error(model.fit, unknown)


def test_other_dask_collections_and_model_selection_are_refused(X):
    with pytest.raises(TypeError, match="dask.array.Array"):
        GaussianMixture(2).fit(dask.delayed(X))
    with pytest.raises(TypeError, match="GaussianMixtureIC does not support Dask"):
        GaussianMixtureIC(n_components=[1, 2]).fit(da.from_array(X))


def test_import_gmmfast_does_not_import_dask(tmp_path):
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import gmmfast
        X = np.random.RandomState(0).randn(200, 2)
        model = gmmfast.GaussianMixture(2, random_state=0).fit(X)
        model.predict(X), model.score(X), model.bic(X)
        gmmfast.GaussianMixtureIC(n_components=[1, 2]).fit(X)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        assert not loaded, loaded
    """)
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


# ----------------------------------------------------------------------------------------
# missing entries (nan_policy="omit")
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def X_missing(X):
    """X with 20 % of its entries missing, a row with none observed and a row with one."""
    incomplete = X.copy()
    incomplete[np.random.RandomState(4).uniform(size=X.shape) < 0.2] = np.nan
    incomplete[5] = np.nan
    incomplete[6, 1:] = np.nan
    return incomplete


def _omit_fit(X, sample_weight=None, **params):
    return _fit(X, sample_weight, nan_policy="omit", **params)


@pytest.mark.parametrize("use_weights", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_omit_matches_the_in_memory_omit_fit(client, X, X_missing, weights, make_inits,
                                             covariance_type, use_weights):
    w = weights if use_weights else None
    params = dict(covariance_type=covariance_type, tol=0.0, max_iter=10,
                  **make_inits(X, N_COMPONENTS, covariance_type))
    expected = _omit_fit(X_missing, w, **params)
    Xd = da.from_array(X_missing, chunks=((7, 600, 1, 592), (3,)))
    wd = None if w is None else da.from_array(w, chunks=333)
    got = _omit_fit(Xd, wd, **params)
    assert len(got.lower_bounds_) == 10
    _assert_same_fit(got, expected)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_omit_initialisations_cope_with_missing_entries(client, X_missing, weights,
                                                        init_params):
    """Every start is finite, does not depend on the scheduler, and (but for random's
    per-block draws) climbs to the in-memory fit's optimum; random_from_data fetches the
    in-memory fit's rows."""
    params = dict(init_params=init_params, random_state=0, max_iter=200)
    Xd = da.from_array(X_missing, chunks=400)
    got = _omit_fit(Xd, weights, **params)
    with dask.config.set(scheduler="synchronous"):
        _assert_identical(_omit_fit(Xd, weights, **params), got)
    assert got.converged_ and np.isfinite(got.lower_bound_)
    expected = _omit_fit(X_missing, weights, **params)
    if init_params == "random_from_data":
        _assert_same_fit(got, expected)
    # Both stop within tol = 1e-3 of the optimum's average log-likelihood.
    np.testing.assert_allclose(got.lower_bound_, expected.lower_bound_, atol=1e-3)


def test_omit_bayesian_mixture_matches_in_memory(client, X_missing):
    params = dict(n_components=N_COMPONENTS, init_params="random_from_data",
                  random_state=0, max_iter=10, tol=0.0, nan_policy="omit")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning with tol=0
        expected = BayesianGaussianMixture(**params).fit(X_missing)
        got = BayesianGaussianMixture(**params).fit(da.from_array(X_missing, chunks=500))
    np.testing.assert_allclose(got.lower_bound_, expected.lower_bound_, rtol=RTOL)
    for name in ("weights_", "means_", "covariances_"):
        _assert_close(getattr(got, name), getattr(expected, name))


def test_omit_without_nan_is_the_raise_fit(client, X, weights):
    Xd = da.from_array(X, chunks=400)
    params = dict(random_state=0, max_iter=20, tol=0.0)
    _assert_same_fit(_omit_fit(Xd, weights, **params), _fit(Xd, weights, **params))


def test_omit_scores_as_in_memory(client, X_missing, weights):
    model = _omit_fit(X_missing, random_state=0)
    Xd = da.from_array(X_missing, chunks=((7, 600, 1, 592), (3,)))
    np.testing.assert_allclose(model.score_samples(Xd).compute(),
                               model.score_samples(X_missing), rtol=1e-12)
    np.testing.assert_allclose(model.predict_proba(Xd).compute(),
                               model.predict_proba(X_missing), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(model.predict(Xd).compute(), model.predict(X_missing))
    for method in ("score", "bic", "aic"):
        for w in (None, weights):
            np.testing.assert_allclose(getattr(model, method)(Xd, sample_weight=w),
                                       getattr(model, method)(X_missing, sample_weight=w),
                                       rtol=1e-12)
    labels = GaussianMixture(N_COMPONENTS, random_state=0, nan_policy="omit").fit_predict(Xd)
    np.testing.assert_array_equal(labels.compute(), model.predict(X_missing))


def test_omit_bad_input_raises_the_in_memory_errors(client, X_missing):
    with_inf = X_missing.copy()
    with_inf[1100, 1] = np.inf
    unobserved = X_missing.copy()
    unobserved[:, 2] = np.nan
    few = np.full_like(X_missing, np.nan)
    few[:2] = X_missing[10:12]
    model = _omit_fit(X_missing, random_state=0)
    for bad, message in ((with_inf, "contains infinity"),
                         (unobserved, "Column 2 of X has no observed value"),
                         (few, "at least n_components = 3 samples with an observed")):
        expected = _error(GaussianMixture(N_COMPONENTS, nan_policy="omit").fit, bad)
        assert message in expected
        assert _error(GaussianMixture(N_COMPONENTS, nan_policy="omit").fit,
                      da.from_array(bad, chunks=500)) == expected
    assert "infinity" in _error(model.score_samples(da.from_array(with_inf, chunks=500))
                                .compute)
    assert "nothing to score" in _error(model.score, da.from_array(few[2:], chunks=500))
    with pytest.raises(TypeError, match="GaussianMixtureIC does not support Dask"):
        GaussianMixtureIC(n_components=[1, 2], nan_policy="omit").fit(
            da.from_array(X_missing))


def test_imputer_fits_and_fills_in_dask_arrays(client, X_missing):
    estimator = GaussianMixture(N_COMPONENTS, init_params="random_from_data", random_state=0)
    expected = GaussianMixtureImputer(estimator).fit(X_missing)
    Xd = da.from_array(X_missing, chunks=((7, 600, 1, 592), (3,)))
    imputer = GaussianMixtureImputer(estimator).fit(Xd)
    _assert_same_fit(imputer.estimator_, expected.estimator_)
    filled = imputer.transform(Xd)
    assert isinstance(filled, da.Array)
    np.testing.assert_allclose(filled.compute(), expected.transform(X_missing), rtol=1e-12)
    drawing = GaussianMixtureImputer(estimator, sample_posterior=True, random_state=1)
    draws = drawing.fit(Xd).transform(Xd).compute()
    np.testing.assert_array_equal(draws, drawing.transform(Xd).compute())
    observed = ~np.isnan(X_missing)
    assert np.isfinite(draws).all() and np.array_equal(draws[observed], X_missing[observed])
    with pytest.raises(TypeError, match="default estimator, the model search, does not take"):
        GaussianMixtureImputer().fit(Xd)
    with_inf = X_missing.copy()
    with_inf[1100, 1] = np.inf
    assert "infinity" in _error(imputer.transform(da.from_array(with_inf, chunks=500)).compute)
