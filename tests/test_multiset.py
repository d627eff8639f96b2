"""The pass over several parameter sets (``em_pass_sets``, ``statistics_of_sets``): each
set's statistics are those of its own pass, bit for bit, whatever the number of threads."""

import numpy as np
import pytest

from conftest import COVARIANCE_TYPES, _mixture_data
from gmmfast import _em
from gmmfast._engine import (
    InMemorySource,
    KernelParameterSets,
    MixtureModel,
    mixture_kernel_parameters,
)
from gmmfast._kernels import em as widest_em
from gmmfast._missing import MissingValueSource
from gmmfast._mstep import precision_cholesky

N_FEATURES = 3
N_COMPONENTS = 4


def random_parameters(rng, covariance_type, n_components=N_COMPONENTS,
                      n_features=N_FEATURES, spread=3.0):
    """Kernel parameters of a random mixture of ``covariance_type`` near the data."""
    weights = rng.dirichlet(np.ones(n_components))
    means = rng.normal(scale=spread, size=(n_components, n_features))
    if covariance_type in ("full", "tied"):
        count = n_components if covariance_type == "full" else 1
        A = rng.normal(size=(count, n_features, n_features))
        covariances = A @ A.transpose(0, 2, 1) / n_features + 0.3 * np.eye(n_features)
        if covariance_type == "tied":
            covariances = covariances[0]
    elif covariance_type == "diag":
        covariances = rng.uniform(0.3, 2.0, size=(n_components, n_features))
    else:
        covariances = rng.uniform(0.3, 2.0, size=n_components)
    theta = (weights, means, covariances, precision_cholesky(covariances, covariance_type))
    return mixture_kernel_parameters(theta, covariance_type)


def far_away(params, distance):
    """The same mixture with its first component (or all, distance as a vector) moved."""
    means = params.means.copy()
    means[0] += distance
    return params._replace(means=means)


def parameter_sets(covariance_type, n_sets, seed=0):
    """n_sets random mixtures; from the third on, sets whose responsibilities underflow:
    one component so far that it never has any, then every component far from the rows
    (densities of ~exp(-1e5), responsibilities still finite)."""
    rng = np.random.default_rng(seed)
    sets = [random_parameters(rng, covariance_type) for _ in range(n_sets)]
    if n_sets > 2:
        sets[2] = far_away(sets[2], 1e3)
    if n_sets > 3:
        sets[3] = sets[3]._replace(means=sets[3].means + 300.0)
    return sets


def assert_same_statistics(results, expected):
    assert len(results) == len(expected)
    for (loglik, stats), (expected_loglik, expected_stats) in zip(results, expected):
        assert loglik == expected_loglik
        for value, expected_value in zip(stats, expected_stats):
            np.testing.assert_array_equal(value, expected_value)


def single_passes(source, sets, n_threads=1):
    return [source.statistics(params, n_threads) for params in sets]


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_each_set_is_its_own_pass_bit_for_bit(covariance_type, dtype, weighted):
    X = _mixture_data(700, 3, N_FEATURES, seed=1).astype(dtype)
    weights = np.random.default_rng(2).uniform(0.0, 3.0, len(X)) if weighted else None
    source = InMemorySource(X, weights)
    sets = parameter_sets(covariance_type, 5)
    results = source.statistics_of_sets(sets, 1)
    assert_same_statistics(results, single_passes(source, sets))
    # The sets are distinct: a pass that gave every set the first set's numbers fails.
    assert len({loglik for loglik, _ in results}) == len(sets)


@pytest.mark.parametrize("n_samples", [1, 7, 255, 256, 257, 511, 513, 1024 + 15])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_chunk_boundaries(n_samples, covariance_type):
    """Partial chunks and row blocks, and a single row."""
    X = _mixture_data(1100, 3, N_FEATURES, seed=3)[:n_samples]
    source = InMemorySource(np.ascontiguousarray(X))
    sets = parameter_sets(covariance_type, 3, seed=n_samples)
    assert_same_statistics(source.statistics_of_sets(sets, 1), single_passes(source, sets))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_set(covariance_type):
    X = _mixture_data(300, 3, N_FEATURES, seed=4)
    source = InMemorySource(X)
    sets = parameter_sets(covariance_type, 1)
    assert_same_statistics(source.statistics_of_sets(sets, 1), single_passes(source, sets))


def test_no_sets():
    assert InMemorySource(_mixture_data(50, 2, N_FEATURES)).statistics_of_sets([], 1) == []


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_same_bits_for_one_and_two_threads(covariance_type, dtype):
    # Enough rows and work that a pass really runs on two threads.
    X = _mixture_data(20_000, 3, N_FEATURES, seed=5).astype(dtype)
    source = InMemorySource(X, np.random.default_rng(6).uniform(0.5, 2.0, len(X)))
    sets = parameter_sets(covariance_type, 4, seed=7)
    one = source.statistics_of_sets(sets, 1)
    assert_same_statistics(source.statistics_of_sets(sets, 2), one)
    assert_same_statistics(one, single_passes(source, sets, n_threads=2))


@pytest.mark.parametrize("module", [_em, widest_em], ids=["baseline", "widest"])
def test_compiled_entry_point(module):
    """em_pass_sets itself, in every kernel variant: stacked arrays in, stacked statistics
    added to what the outputs held, one log-likelihood per set."""
    X = _mixture_data(600, 3, N_FEATURES, seed=8)
    sets = parameter_sets("full", 3, seed=9)
    stacked = [np.stack([params[i] for params in sets]) for i in range(3)]
    nk = np.ones((3, N_COMPONENTS))
    sums = np.ones((3, N_COMPONENTS, N_FEATURES))
    scatter = np.ones((3, N_COMPONENTS, N_FEATURES, N_FEATURES))
    loglik = module.em_pass_sets(X, None, *stacked, nk, sums, scatter, 1)
    assert loglik.shape == (3,)
    for i, params in enumerate(sets):
        expected = [np.ones_like(a[i]) for a in (nk, sums, scatter)]
        assert module.em_pass(X, None, *params[:3], *expected, 1) == loglik[i]
        for value, expected_value in zip((nk[i], sums[i], scatter[i]), expected):
            np.testing.assert_array_equal(value, expected_value)


def test_more_sets_than_one_pass_takes_are_split(monkeypatch):
    X = _mixture_data(600, 3, N_FEATURES, seed=10)
    source = InMemorySource(X)
    sets = parameter_sets("full", 5, seed=11)
    monkeypatch.setattr(widest_em, "max_sets_per_pass", lambda *shape: 2)
    assert_same_statistics(source.statistics_of_sets(sets, 1), single_passes(source, sets))


def test_too_many_sets_for_one_pass_are_refused():
    """Each set has the accumulators of its own pass; beyond a budget, the call is refused
    with the number of sets that fit."""
    n_samples, n_components, n_features = 4096, 8, 128
    allowed = _em.max_sets_per_pass(n_samples, n_components, n_features, True)
    assert 1 <= allowed < 64
    assert _em.max_sets_per_pass(n_samples, n_components, 2, True) > 64
    n_sets = allowed + 1
    X = np.zeros((n_samples, n_features))
    means = np.zeros((n_sets, n_components, n_features))
    chol = np.broadcast_to(np.eye(n_features), (n_sets, n_components, n_features, n_features))
    nk, sums = np.zeros((n_sets, n_components)), np.zeros(means.shape)
    scatter = np.zeros(chol.shape)
    with pytest.raises(ValueError, match=f"at most {allowed} sets per call"):
        _em.em_pass_sets(X, None, means, chol, np.zeros((n_sets, n_components)), nk, sums,
                         scatter)


def test_bad_arguments():
    X = _mixture_data(100, 3, N_FEATURES, seed=12)
    sets = parameter_sets("full", 2)
    means, chol, log_norm = (np.stack([params[i] for params in sets]) for i in range(3))
    stats = (np.zeros((2, N_COMPONENTS)), np.zeros((2, N_COMPONENTS, N_FEATURES)),
             np.zeros((2, N_COMPONENTS, N_FEATURES, N_FEATURES)))
    bad_calls = {
        "means must have shape": (X, None, means[0], chol, log_norm, *stats),
        "precisions_chol must stack": (X, None, means, chol[:1], log_norm, *stats),
        "log_norm must have shape": (X, None, means, chol, log_norm[0], *stats),
        "nk must have shape": (X, None, means, chol, log_norm, stats[0][:1], *stats[1:]),
        "scatter must have shape": (X, None, means, chol, log_norm, *stats[:2],
                                    np.zeros((2, N_COMPONENTS, N_FEATURES))),
        "must be writable": (X, None, means, chol, log_norm, stats[0].astype(np.float32),
                             *stats[1:]),
        "sample_weight must have shape": (X, np.ones(3), means, chol, log_norm, *stats),
        "X must be 2-D": (X[0], None, means, chol, log_norm, *stats),
    }
    for message, arguments in bad_calls.items():
        with pytest.raises(ValueError, match=message):
            _em.em_pass_sets(*arguments)
    with pytest.raises(ValueError, match="precisions_chol must have shape"):
        _em.em_pass_sets(X, None, means, chol, log_norm, *stats, form=_em.FORM_DIAG)


def test_sets_of_different_shapes_are_refused():
    source = InMemorySource(_mixture_data(100, 3, N_FEATURES, seed=13))
    rng = np.random.default_rng(14)
    sets = [random_parameters(rng, "full"), random_parameters(rng, "full", n_components=2)]
    with pytest.raises(ValueError, match="same number of components and covariance form"):
        source.statistics_of_sets(sets, 1)
    sets = [random_parameters(rng, "full"), random_parameters(rng, "diag")]
    with pytest.raises(ValueError, match="same number of components and covariance form"):
        source.statistics_of_sets(sets, 1)


def test_non_finite_rows_are_reported_by_the_source():
    X = _mixture_data(100, 3, N_FEATURES, seed=15)
    X[7, 1] = np.nan

    def refuse(rows):
        raise ValueError("X holds NaN")

    source = InMemorySource(X, finite_check=refuse)
    with pytest.raises(ValueError, match="X holds NaN"):
        source.statistics_of_sets(parameter_sets("full", 2), 1)


def missing_value_source(X):
    X = X.copy()
    X[::7, 1] = np.nan
    return MissingValueSource(X, None, N_COMPONENTS)


def dask_source(X):
    da = pytest.importorskip("dask.array")
    from gmmfast._dask import DaskSource

    return DaskSource(da.from_array(X, chunks=100), None, N_COMPONENTS, "GaussianMixture")


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pooled_sets_are_their_own_pass_bit_for_bit(dtype, n_threads):
    """Tied sets asking for the pooled statistics (one (1, D, D) scatter each)."""
    X = _mixture_data(20_000, 3, N_FEATURES, seed=5).astype(dtype)
    source = InMemorySource(X, np.random.default_rng(6).uniform(0.0, 2.0, len(X)))
    sets = [params._replace(pooled=True) for params in parameter_sets("tied", 5, seed=7)]
    results = source.statistics_of_sets(sets, n_threads)
    assert all(stats.scatter.shape == (1, N_FEATURES, N_FEATURES) for _, stats in results)
    assert_same_statistics(results, single_passes(source, sets))
    assert len({loglik for loglik, _ in results}) == len(sets)


@pytest.mark.parametrize("module", [_em, widest_em], ids=["baseline", "widest"])
def test_compiled_entry_point_pooled(module):
    X = _mixture_data(600, 3, N_FEATURES, seed=8)
    sets = parameter_sets("tied", 3, seed=9)
    stacked = [np.stack([params[i] for params in sets]) for i in range(3)]
    nk = np.ones((3, N_COMPONENTS))
    sums = np.ones((3, N_COMPONENTS, N_FEATURES))
    scatter = np.ones((3, 1, N_FEATURES, N_FEATURES))
    loglik = module.em_pass_sets(X, None, *stacked, nk, sums, scatter, 1)
    for i, params in enumerate(sets):
        expected = [np.ones_like(a[i]) for a in (nk, sums, scatter)]
        assert module.em_pass(X, None, *params[:3], *expected, 1) == loglik[i]
        for value, expected_value in zip((nk[i], sums[i], scatter[i]), expected):
            np.testing.assert_array_equal(value, expected_value)


@pytest.mark.parametrize("make_source", [missing_value_source, dask_source])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_other_sources_score_each_set_with_their_own_pass(make_source, covariance_type):
    source = make_source(_mixture_data(300, 3, N_FEATURES, seed=16))
    sets = parameter_sets(covariance_type, 3, seed=17)
    assert_same_statistics(source.statistics_of_sets(sets, 1), single_passes(source, sets))


@pytest.mark.parametrize("make_source", [InMemorySource, missing_value_source, dask_source])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "spherical"])
def test_stacked_sets_are_scored_as_their_list(make_source, covariance_type):
    """Sets given stacked (KernelParameterSets, as a model's kernel_parameters_of_sets
    gives them) are scored as the list of the same sets."""
    source = make_source(_mixture_data(300, 3, N_FEATURES, seed=24))
    sets = parameter_sets(covariance_type, 4, seed=25)
    stacked = KernelParameterSets.of(sets)
    assert KernelParameterSets.of(stacked) is stacked
    assert stacked.means.shape == (4, N_COMPONENTS, N_FEATURES)
    for got, expected in zip(stacked.sets(), sets):
        for value, expected_value in zip(got[:4], expected[:4]):
            np.testing.assert_array_equal(value, expected_value)
    assert_same_statistics(source.statistics_of_sets(stacked, 1), single_passes(source, sets))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_m_step_of_each_set_is_that_of_its_own_pass(covariance_type):
    """The sets' statistics are views of one stacked array each: the M-step takes them as
    it takes a single pass's."""
    X = _mixture_data(500, 3, N_FEATURES, seed=18)
    source = InMemorySource(X)
    model = MixtureModel(covariance_type, 1e-6, X.dtype)
    sets = parameter_sets(covariance_type, 3, seed=19)[:2]
    for (_, stats), (_, expected) in zip(source.statistics_of_sets(sets, 1),
                                         single_passes(source, sets)):
        for value, expected_value in zip(model.m_step(stats), model.m_step(expected)):
            np.testing.assert_array_equal(value, expected_value)


@pytest.mark.parametrize("covariance_type", ["EII", "VEI", "EVI", "EEV", "VEE", "EVE"])
@pytest.mark.parametrize("screening", [False, True])
def test_the_m_steps_of_all_sets_are_each_sets_own(covariance_type, screening):
    """One M-step call for all the sets gives each set's M-step bit for bit, warm starts
    and failures included."""
    X = _mixture_data(400, 3, N_FEATURES, seed=20)
    source = InMemorySource(X)
    model = MixtureModel(covariance_type, 1e-6, X.dtype)
    if screening:
        model = model.for_screening()
    stats_list = [source.random_resp_statistics(3, np.random.RandomState(seed), model.form, 1)
                  for seed in range(4)]
    previous = [None, model.m_step(stats_list[0]), None, model.m_step(stats_list[2])]
    stats_list[2] = stats_list[2]._replace(scatter=np.full_like(stats_list[2].scatter, np.nan))
    thetas = model.m_step_of_sets(stats_list, previous)
    assert thetas[2] is None
    assert model.m_step_of_sets(stats_list[2:3], previous[2:3]) == [None]
    with pytest.raises(ValueError):
        model.m_step(stats_list[2], previous=previous[2])
    for m in (0, 1, 3):
        expected = model.m_step(stats_list[m], previous=previous[m])
        for value, expected_value in zip(thetas[m][:4], expected[:4]):
            np.testing.assert_array_equal(value, expected_value)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical", "EVI"])
def test_the_kernel_parameters_of_all_sets_are_each_sets_own(covariance_type):
    X = _mixture_data(400, 3, N_FEATURES, seed=22)
    source = InMemorySource(X)
    model = MixtureModel(covariance_type, 1e-6, X.dtype)
    thetas = [model.m_step(source.random_resp_statistics(3, np.random.RandomState(seed),
                                                         model.form, 1))
              for seed in range(3)]
    for got, expected in zip(model.kernel_parameters_of_sets(thetas).sets(),
                             [model.kernel_parameters(theta) for theta in thetas]):
        for name, value, expected_value in zip(got._fields, got, expected):
            if isinstance(expected_value, np.ndarray):
                np.testing.assert_array_equal(value, expected_value, err_msg=name)
            else:
                assert value == expected_value, name
    assert model.kernel_parameters_of_sets([]) == []


@pytest.mark.parametrize("covariance_type", ["full", "EEI", "VEV", "EVE"])
def test_the_initial_parameters_of_all_sets_are_each_sets_own(covariance_type):
    X = _mixture_data(400, 3, N_FEATURES, seed=23)
    source = InMemorySource(X)
    model = MixtureModel(covariance_type, 1e-6, X.dtype).for_screening()
    stats_list = [source.random_resp_statistics(3, np.random.RandomState(seed), model.form, 1)
                  for seed in range(3)]
    stats_list[1] = stats_list[1]._replace(scatter=np.full_like(stats_list[1].scatter, np.nan))
    thetas = model.initial_parameters_of_sets(stats_list, 2 * source.total_weight)
    assert thetas[1] is None
    for m in (0, 2):
        expected = model.initial_parameters(stats_list[m], 2 * source.total_weight)
        for value, expected_value in zip(thetas[m][:4], expected[:4]):
            np.testing.assert_array_equal(value, expected_value)
