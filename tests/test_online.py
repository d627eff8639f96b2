"""Online EM (``GaussianMixture.partial_fit``): stepwise EM against a slow NumPy reference,
its exact special cases (ρ = 1 is an EM iteration), determinism, resuming a pickled stream
and bad input."""

import pickle
import warnings

import numpy as np
import pytest
from scipy.special import logsumexp

from gmmfast import GaussianMixture
from gmmfast._engine import learning_rate

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def blobs(n=600, d=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * d, [6.0] * d, [0.0, 8.0] + [3.0] * (d - 2)])
    X = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d)) * rng.uniform(0.5, 1.5, d)
    return X.astype(dtype)


def batches(X, sizes):
    edges = np.cumsum([0, *sizes])
    return [X[a:b] for a, b in zip(edges[:-1], edges[1:])]


def same_model(a, b, rtol=0.0):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=0,
                                   err_msg=name)


# -- the slow reference ----------------------------------------------------------------------


def full_covariances(model):
    """Each component's covariance as a (K, D, D) array, whatever the covariance type."""
    k, d = model.means_.shape
    cov = np.asarray(model.covariances_, dtype=np.float64)
    if model.covariance_type == "full":
        return cov
    if model.covariance_type == "tied":
        return np.broadcast_to(cov, (k, d, d))
    if model.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return cov[:, None, None] * np.eye(d)


def reference_statistics(X, w, weights, means, covariances):
    """Per unit of weight: Σ w r, Σ w r x and Σ w r x xᵀ over the batch, and its mean
    log-likelihood, by dense responsibilities."""
    X = X.astype(np.float64)
    log_dens = []
    for mean, cov in zip(means, covariances):
        diff = X - mean
        sign, log_det = np.linalg.slogdet(cov)
        maha = np.einsum("ij,ij->i", diff @ np.linalg.inv(cov), diff)
        log_dens.append(-0.5 * (X.shape[1] * np.log(2 * np.pi) + log_det + maha))
    log_joint = np.stack(log_dens, 1) + np.log(weights)
    log_p = logsumexp(log_joint, axis=1)
    resp = np.exp(log_joint - log_p[:, None]) * w[:, None]
    total = w.sum()
    return ((resp.sum(0) / total, resp.T @ X / total,
             np.einsum("ik,ij,il->kjl", resp, X, X) / total), float(w @ log_p / total))


def reference_m_step(stats, covariance_type, reg_covar):
    nk, s1, s2 = stats
    means = s1 / nk[:, None]
    scatter = s2 - nk[:, None, None] * means[:, :, None] * means[:, None, :]
    d = means.shape[1]
    if covariance_type == "full":
        cov = scatter / nk[:, None, None] + reg_covar * np.eye(d)
    elif covariance_type == "tied":
        cov = scatter.sum(0) / nk.sum() + reg_covar * np.eye(d)
    elif covariance_type == "diag":
        cov = np.diagonal(scatter, axis1=1, axis2=2) / nk[:, None] + reg_covar
    else:
        cov = np.trace(scatter, axis1=1, axis2=2) / nk / d + reg_covar
    return nk / nk.sum(), means, cov


def reference_stream(model, parts, part_weights, learning_offset, learning_decay):
    """Stepwise EM from ``model``'s parameters after its first batch: returns the
    parameters after each further batch."""
    cov_type = model.covariance_type
    weights, means = model.weights_.astype(float), model.means_.astype(float)
    covariances = full_covariances(model)
    running = None
    out = []
    for t, (X, w) in enumerate(zip(parts, part_weights)):
        stats, _ = reference_statistics(X, w, weights, means, covariances)
        if running is None:
            running = stats
        else:
            rho = (learning_offset + t) ** -learning_decay
            running = tuple((1 - rho) * r + rho * s for r, s in zip(running, stats))
        weights, means, cov = reference_m_step(running, cov_type, model.reg_covar)
        probe = GaussianMixture(len(weights), covariance_type=cov_type)
        probe.means_, probe.covariances_, probe.covariance_type = means, cov, cov_type
        covariances = full_covariances(probe)
        out.append((weights, means, cov))
    return out


# -- against the reference -------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_stream_follows_the_reference(covariance_type, weighted):
    X = blobs(900)
    sizes = [200, 50, 170, 300, 180]
    rng = np.random.default_rng(1)
    w = rng.uniform(0.2, 3.0, len(X)) if weighted else np.ones(len(X))
    parts, part_weights = batches(X, sizes), batches(w, sizes)
    # The reference starts where gmmfast's first batch started it.
    start = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start.fit(parts[0], sample_weight=part_weights[0] if weighted else None)
    expected = reference_stream(start, parts, part_weights, 10.0, 0.7)

    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    for t, (part, pw) in enumerate(zip(parts, part_weights)):
        model.partial_fit(part, sample_weight=pw if weighted else None)
        weights, means, cov = expected[t]
        np.testing.assert_allclose(model.weights_, weights, rtol=1e-10)
        np.testing.assert_allclose(model.means_, means, rtol=1e-10, atol=1e-12)
        # Off-diagonal entries near 0 differ by the reference's raw-moment cancellation.
        np.testing.assert_allclose(model.covariances_, cov, rtol=1e-9, atol=1e-12)
        assert model.n_iter_ == t + 1
        assert model.converged_ is False


def test_learning_rate_is_lda_s_schedule():
    assert learning_rate(1, 10.0, 0.7) == pytest.approx(11 ** -0.7)
    assert learning_rate(5, 1.0, 1.0) == pytest.approx(1 / 6)


# -- exact special cases ---------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_batch_is_one_em_iteration(covariance_type, dtype):
    X = blobs(dtype=dtype)
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(X))
    online = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    online.partial_fit(X, sample_weight=w)
    batch = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch.fit(X, sample_weight=w)
    same_model(online, batch)
    assert online.lower_bound_ == batch.lower_bound_
    assert online.means_.dtype == dtype and type(online.lower_bound_) is dtype


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_with_no_decay_every_batch_is_an_em_iteration(covariance_type):
    X = blobs()
    online = GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                             learning_decay=0.0)
    for _ in range(3):
        online.partial_fit(X)
    batch = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=3,
                            tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch.fit(X)
    same_model(online, batch)
    assert online.lower_bound_ == batch.lower_bound_


def test_a_stream_from_a_fitted_model_starts_from_its_parameters():
    X = blobs()
    fitted = GaussianMixture(3, random_state=0).fit(X[:300])
    stepped = pickle.loads(pickle.dumps(fitted))
    stepped.partial_fit(X[300:])
    warm = pickle.loads(pickle.dumps(fitted)).set_params(warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm.fit(X[300:])
    same_model(stepped, warm)
    assert stepped.n_iter_ == 1


def test_fit_ends_the_stream():
    X = blobs()
    model = GaussianMixture(3, random_state=0, learning_decay=0.0)
    model.partial_fit(X[:300]).partial_fit(X[300:])
    assert model.n_iter_ == 2
    model.fit(X)
    fresh = GaussianMixture(3, random_state=0).fit(X)
    same_model(model, fresh)
    # The next batch starts a new stream from the fitted parameters: ρ = 1.
    model.partial_fit(X[:300])
    assert model.n_iter_ == 1


# -- determinism and resuming ----------------------------------------------------------------


def stream(model, parts):
    for part in parts:
        model.partial_fit(part)
    return model


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_same_batches_give_the_same_model_on_any_thread_count(covariance_type):
    X = blobs(6000, d=5)
    parts = batches(X, [2000, 1500, 2500])
    one, two = (stream(GaussianMixture(3, covariance_type=covariance_type, random_state=0,
                                       n_threads=t), parts) for t in (1, 2))
    same_model(one, two)
    assert one.lower_bound_ == two.lower_bound_


def test_a_pickled_stream_resumes_as_if_it_never_stopped():
    X = blobs(1200)
    parts = batches(X, [300] * 4)
    whole = stream(GaussianMixture(3, covariance_type="tied", random_state=0), parts)
    first_half = stream(GaussianMixture(3, covariance_type="tied", random_state=0), parts[:2])
    resumed = stream(pickle.loads(pickle.dumps(first_half)), parts[2:])
    same_model(whole, resumed)
    assert resumed.n_iter_ == whole.n_iter_ == 4


def test_later_batches_may_be_smaller_than_n_components():
    X = blobs()
    model = GaussianMixture(3, random_state=0).partial_fit(X[:300])
    model.partial_fit(X[300:301])
    assert np.isfinite(model.means_).all() and model.n_iter_ == 2


def test_one_pass_approaches_batch_em():
    X = blobs(30_000, d=4, seed=3)
    held_out = blobs(5000, d=4, seed=4)
    online = stream(GaussianMixture(3, random_state=0), batches(X, [1000] * 30))
    batch = GaussianMixture(3, random_state=0).fit(X)
    assert online.score(held_out) == pytest.approx(batch.score(held_out), rel=2e-3)


# -- bad input -------------------------------------------------------------------------------


def test_a_bad_batch_leaves_the_model_as_it_was():
    X = blobs()
    model = GaussianMixture(3, random_state=0).partial_fit(X[:300])
    before = pickle.dumps(model)
    bad = X[300:400].copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.partial_fit(bad)
    with pytest.raises(ValueError, match="2 features, but GaussianMixture is expecting 3"):
        model.partial_fit(X[300:400, :2])
    assert pickle.dumps(model) == before
    resumed = model.partial_fit(X[400:])
    expected = pickle.loads(before).partial_fit(X[400:])
    same_model(resumed, expected)


def test_first_batch_needs_n_components_rows():
    with pytest.raises(ValueError, match="n_components = 3, n_samples = 2"):
        GaussianMixture(3).partial_fit(blobs()[:2])


@pytest.mark.parametrize("name, value, text", [
    ("learning_decay", 1.5, r"learning_decay.*range \[0.0, 1.0\]"),
    ("learning_decay", -0.1, r"learning_decay.*range \[0.0, 1.0\]"),
    ("learning_offset", 0.5, r"learning_offset.*range \[1.0, inf\)"),
])
def test_invalid_learning_schedule(name, value, text):
    with pytest.raises(ValueError, match=text):
        GaussianMixture(3, **{name: value}).partial_fit(blobs())


def test_dask_batches_stream_like_arrays():
    da = pytest.importorskip("dask.array")
    X = blobs(1200)
    parts = batches(X, [400, 400, 400])
    in_memory = stream(GaussianMixture(3, random_state=0), parts)
    lazy = stream(GaussianMixture(3, random_state=0),
                  [da.from_array(p, chunks=150) for p in parts])
    same_model(in_memory, lazy, rtol=1e-10)


def test_a_stream_with_missing_entries_under_nan_policy_omit():
    X = blobs(900)
    holes = np.random.default_rng(5).uniform(size=X.shape) < 0.15
    incomplete = np.where(holes, np.nan, X)
    parts = batches(incomplete, [300, 2, 298, 300])  # a later batch smaller than K
    online = stream(GaussianMixture(3, random_state=0, nan_policy="omit"), parts)
    assert online.n_iter_ == 4 and np.isfinite(online.means_).all()
    # The first batch is one EM iteration over its observed entries.
    first = GaussianMixture(3, random_state=0, nan_policy="omit").partial_fit(parts[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = GaussianMixture(3, random_state=0, nan_policy="omit", max_iter=1).fit(parts[0])
    same_model(first, batch)
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture(3, random_state=0).partial_fit(parts[0])


@pytest.mark.parametrize("covariance_type", ["VEV", "EEI"])
def test_a_stream_of_an_mclust_model_keeps_its_constraint(covariance_type):
    X = blobs(1200)
    online = stream(GaussianMixture(3, covariance_type=covariance_type, random_state=0),
                    batches(X, [400, 400, 400]))
    assert online.n_iter_ == 3
    # Equal shapes (VEV) or equal volumes and shapes (EEI) across the components.
    shapes = np.asarray(online.shapes_)
    np.testing.assert_allclose(shapes, np.broadcast_to(shapes[0], shapes.shape), rtol=1e-6)
