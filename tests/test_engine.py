"""The EM engine (gmmfast._engine): statistics, sources, the model and the one loop.

A source the engine has never seen (rows served in blocks, as a mini-batch or a Dask source
serves them) plugs into the same ``run_em`` and ``initial_statistics`` and gives the
in-memory fit; the in-memory fast path (one compiled call per iteration) is the generic
iteration bit for bit.
"""

import ast
import pathlib
import warnings

import numpy as np
import pytest

import gmmfast
from conftest import COVARIANCE_TYPES, INIT_METHODS
from gmmfast import GaussianMixture
from gmmfast._compat import ConvergenceWarning
from gmmfast._engine import (
    InMemorySource,
    MixtureModel,
    SetStatistics,
    Statistics,
    HALT_INTERVAL,
    initial_statistics,
    ordered_sum,
    run_em,
)


class BlockSource(SetStatistics):
    """The rows of an in-memory array served in blocks: each block's statistics are
    computed alone and summed in order (what a mini-batch or a Dask source does)."""

    def __init__(self, X, sample_weight, n_blocks):
        bounds = np.linspace(0, len(X), n_blocks + 1).astype(int)
        self.blocks = [
            InMemorySource(np.ascontiguousarray(X[a:b]),
                           None if sample_weight is None else sample_weight[a:b])
            for a, b in zip(bounds[:-1], bounds[1:])
        ]
        self.whole = InMemorySource(X, sample_weight)
        self.dtype = X.dtype
        self.n_samples, self.n_features = X.shape
        self.total_weight = self.whole.total_weight
        self.n_positive = self.whole.n_positive

    def statistics(self, kernel_params, n_threads):
        parts = [block.statistics(kernel_params, n_threads) for block in self.blocks]
        return sum(loglik for loglik, _ in parts), ordered_sum([s for _, s in parts])

    def labels(self, kernel_params, n_threads):
        return np.concatenate([b.labels(kernel_params, n_threads) for b in self.blocks])

    def lloyd_step(self, centres, n_threads):
        parts = [block.lloyd_step(centres, n_threads) for block in self.blocks]
        counts = sum(c for c, _ in parts)
        shifted = sum((m - centres) * c[:, None] for c, m in parts)
        new = centres.copy()
        new[counts > 0] += shifted[counts > 0] / counts[counts > 0, None]
        return counts, new

    def nearest_centre_statistics(self, centres, form, n_threads):
        return ordered_sum([block.nearest_centre_statistics(centres, form, n_threads)
                            .recentred(centres) for block in self.blocks])

    # The rest of initialisation reads the rows as a whole.
    def mean_and_variance(self, n_threads):
        return self.whole.mean_and_variance(n_threads)

    def seeding_sample(self, n_clusters, random_state):
        return self.whole.seeding_sample(n_clusters, random_state)

    def rows_at_ranks(self, ranks):
        return self.whole.rows_at_ranks(ranks)

    def random_resp_statistics(self, n_components, random_state, form, n_threads):
        return self.whole.random_resp_statistics(n_components, random_state, form,
                                                 n_threads)


def _problem(dtype=np.float64, weighted=False, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, 7.0, -2.0]])
    X = (centres[rng.integers(3, size=900)] + rng.normal(size=(900, 3))).astype(dtype)
    weights = rng.uniform(0.0, 2.0, size=900) if weighted else None
    return X, weights


def _fit_through_engine(source, covariance_type, init_params, seed, max_iter=100):
    model = MixtureModel(covariance_type, 1e-6, source.dtype)
    random_state = np.random.RandomState(seed)

    def start(init):
        stats = initial_statistics(source, 3, init_params, (model.form,), random_state, 1)
        return model.initial_parameters(stats[model.form], source.total_weight), -np.inf

    return run_em(model, source, start, n_init=2, max_iter=max_iter, tol=1e-6, n_threads=1,
                  final_labels=True)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_in_memory_fast_path_is_the_generic_iteration(covariance_type, dtype, weighted):
    X, weights = _problem(dtype, weighted)
    source = InMemorySource(X, weights)
    model = MixtureModel(covariance_type, 1e-6, dtype)
    stats = initial_statistics(source, 3, "kmeans", (model.form,), np.random.RandomState(0),
                               1)[model.form]
    theta = model.initial_parameters(stats, source.total_weight)
    fast = model.em_step(source, 1)
    loglik, generic_stats = source.statistics(model.kernel_parameters(theta), 1)
    bound, new = fast(theta)
    assert bound == model.bound_type(loglik / source.total_weight) and np.isfinite(bound)
    for a, b in zip(new, model.m_step(generic_stats)):
        assert a.dtype == np.float64 and np.array_equal(a, b)


def _unseen_component_problem(layout):
    """Two clusters 30 apart (unit variance, 2-D) and θ (in the scikit-learn ``layout``)
    with a third component 25 from both: every row's responsibility for it is between
    exp(-450) and exp(-200) of its largest, kept by the compute type's own floor
    (exp(-600)), below EM's (eps²)."""
    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + [30.0, 0.0]])
    means = np.array([[0.0, 0.0], [30.0, 0.0], [15.0, 20.0]])
    unit = {"full": np.broadcast_to(np.eye(2), (3, 2, 2)), "tied": np.eye(2),
            "diag": np.ones((3, 2)), "spherical": np.ones(3)}[layout]
    unit = np.ascontiguousarray(unit, dtype=np.float64)
    return X, (np.full(3, 1 / 3), means, unit.copy(), unit.copy())


@pytest.mark.parametrize("covariance_type", ["full", "VVE", "EEV"])
def test_em_full_scatters_leave_out_responsibilities_below_eps_squared(covariance_type):
    model = MixtureModel(covariance_type, 1e-6, np.float64)
    X, theta = _unseen_component_problem(model.layout)
    source = InMemorySource(X)
    kernel_params = model.kernel_parameters(theta)
    loglik, stats = source.statistics(kernel_params, 1)
    # Without EM's floor the pass keeps the third component's tiny weights.
    kept_loglik, kept = source.statistics(kernel_params._replace(log_resp_floor=None), 1)
    assert 0.0 < kept.nk[2] < 1e-80 and stats.nk[2] == 0.0
    # Everything else is the same to rounding.
    np.testing.assert_allclose(loglik, kept_loglik, rtol=1e-14)
    for a, b in zip(stats[:3], kept[:3]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)
    # The iteration (for full, the fused in-memory one) leaves out the same weights: the
    # gathered scatter sums in another order than the one over every row.
    bound, new = model.em_step(source, 1)(theta)
    assert bound == loglik / source.total_weight
    for a, b in zip(new[:4], model.m_step(stats, previous=theta)[:4]):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("covariance_type", ["diag", "spherical", "tied", "EEI"])
def test_em_diagonal_and_pooled_statistics_keep_every_responsibility(covariance_type):
    """They have nothing to gather: the floor would only cost them."""
    model = MixtureModel(covariance_type, 1e-6, np.float64)
    X, theta = _unseen_component_problem(model.layout)
    _, stats = InMemorySource(X).statistics(model.kernel_parameters(theta), 1)
    assert 0.0 < stats.nk[2] < 1e-80


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_an_empty_component_is_the_ill_defined_covariance_error(covariance_type):
    X, _ = _problem()
    source = InMemorySource(X)
    model = MixtureModel(covariance_type, 0.0, X.dtype)
    stats = initial_statistics(source, 3, "kmeans", (model.form,), np.random.RandomState(0),
                               1)[model.form]
    weights, means, covariances, chol = model.initial_parameters(stats, source.total_weight)
    far = (weights, means + 1e6 * (np.arange(3) == 0)[:, None], covariances, chol)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        model.em_step(source, 1)(far)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        model.m_step(source.statistics(model.kernel_parameters(far), 1)[1])


@pytest.mark.parametrize("init_params", INIT_METHODS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_new_source_plugs_into_the_one_loop(covariance_type, init_params):
    """Blocks summed by the engine give the in-memory fit (rounding apart). Two starts may
    reach one optimum with the components in another order, and bounds equal to rounding:
    which of them is kept is then rounding too, so the components are compared matched by
    their means."""
    X, weights = _problem(weighted=True)
    whole = _fit_through_engine(InMemorySource(X, weights), covariance_type, init_params, 5)
    blocks = _fit_through_engine(BlockSource(X, weights, 4), covariance_type, init_params, 5)
    assert blocks.n_iter == whole.n_iter and blocks.converged == whole.converged
    np.testing.assert_allclose(blocks.lower_bounds, whole.lower_bounds, rtol=1e-10)
    means = whole.parameters[1]
    order = [int(np.argmin(np.abs(blocks.parameters[1] - mean).sum(axis=1))) for mean in means]
    assert sorted(order) == list(range(len(means)))
    per_component = [True, True, covariance_type != "tied", covariance_type != "tied"]
    for a, b, permuted in zip(blocks.parameters, whole.parameters, per_component):
        np.testing.assert_allclose(a[order] if permuted else a, b, rtol=1e-8, atol=1e-10)
    assert np.array_equal(np.argsort(order)[blocks.labels], whole.labels)


def test_the_engine_is_what_the_estimator_runs():
    X, weights = _problem(weighted=True)
    result = _fit_through_engine(InMemorySource(X, weights), "full", "kmeans", 3)
    gm = GaussianMixture(3, tol=1e-6, n_init=2, random_state=3, n_threads=1)
    labels = gm.fit_predict(X, sample_weight=weights)
    assert np.array_equal(labels, result.labels)
    assert gm.lower_bounds_ == result.lower_bounds and gm.n_iter_ == result.n_iter
    for a, b in zip((gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_),
                    result.parameters):
        assert np.array_equal(a, b)


def test_run_em_keeps_the_best_start_and_warns_once():
    X, _ = _problem()
    source = InMemorySource(X)
    model = MixtureModel("diag", 1e-6, X.dtype)
    bounds = []

    def start(init):
        stats = initial_statistics(source, 3, "random", (model.form,),
                                   np.random.RandomState(init), 1)[model.form]
        return model.initial_parameters(stats, source.total_weight), -np.inf

    for init in range(3):
        single = run_em(model, source, lambda _, i=init: start(i), n_init=1, max_iter=200,
                        tol=1e-8, n_threads=1)
        bounds.append(single.lower_bound)
    best = run_em(model, source, start, n_init=3, max_iter=200, tol=1e-8, n_threads=1)
    assert best.lower_bound == max(bounds)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        short = run_em(model, source, start, n_init=3, max_iter=2, tol=1e-8, n_threads=1)
    assert not short.converged and len(short.lower_bounds) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        none = run_em(model, source, start, n_init=2, max_iter=0, tol=1e-8, n_threads=1)
    assert none.n_iter == 0 and none.lower_bound == -np.inf and none.lower_bounds == []


@pytest.mark.parametrize("form", ["full", "diag"])
def test_statistics_recentre_and_add_in_order(form):
    X, weights = _problem(weighted=True)
    rng = np.random.default_rng(1)
    resp_shifts = rng.normal(size=(3, 3))
    source = InMemorySource(X, weights)
    model = MixtureModel("full" if form == "full" else "diag", 1e-6, X.dtype)
    stats = initial_statistics(source, 3, "kmeans", (form,), np.random.RandomState(0),
                               1)[form]
    moved = stats.recentred(resp_shifts)
    back = moved.recentred(stats.shifts)
    for a, b in zip(back, stats):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-9)
    # The parameters do not depend on the shifts the statistics are taken about.
    for a, b in zip(model.m_step(moved), model.m_step(stats)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    zero = Statistics.zeros(form, stats.shifts)
    total = ordered_sum([stats, zero, moved])
    for a, b in zip(total[:3], stats[:3]):
        np.testing.assert_allclose(a, 2 * b, rtol=1e-10, atol=1e-8)
    assert total.shifts is stats.shifts


@pytest.mark.parametrize("form", ["full", "diag"])
def test_every_statistics_pass_honours_the_kernel_parameters_floor(form):
    # A floor of exp(-2) flushes responsibilities that move every statistic: each path
    # from kernel parameters to the compiled pass must carry it.
    from gmmfast._engine import KernelParameters, block_statistics, block_statistics_of_sets
    from gmmfast._missing import missing_block_statistics

    X, weights = _problem(weighted=True)
    model = MixtureModel(form, 1e-6, X.dtype)
    stats = initial_statistics(InMemorySource(X, weights), 3, "kmeans", (form,),
                               np.random.RandomState(0), 1)[form]
    every = model.kernel_parameters(model.m_step(stats))
    floored = every._replace(log_resp_floor=-2.0)
    assert isinstance(floored, KernelParameters)
    expected = block_statistics(X, weights, floored, 1)
    assert not np.allclose(block_statistics(X, weights, every, 1)[1].nk, expected[1].nk,
                           rtol=1e-6)
    with_nan = X.copy()
    with_nan[:, 0] = np.nan  # every row observed in part: the marginal's pass
    results = [block_statistics_of_sets(X, weights, [floored, floored], 1)[1],
               missing_block_statistics(X, weights, floored, 1)]
    for loglik, got in results:
        assert loglik == pytest.approx(expected[0], rel=1e-12)
        for a, b in zip(got[:3], expected[1][:3]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    partly = missing_block_statistics(with_nan, weights, floored, 1)[1].nk
    reference = missing_block_statistics(with_nan, weights, every, 1)[1].nk
    assert not np.allclose(partly, reference, rtol=1e-6)
    with pytest.raises(ValueError, match="must share log_resp_floor"):
        block_statistics_of_sets(X, weights, [floored, every], 1)


def test_initial_statistics_share_one_draw_across_forms():
    X, weights = _problem(weighted=True)
    source = InMemorySource(X, weights)
    for init_params in INIT_METHODS:
        both_rng, alone_rng = np.random.RandomState(7), np.random.RandomState(7)
        both = initial_statistics(source, 3, init_params, ("full", "diag"), both_rng, 1)
        alone = initial_statistics(source, 3, init_params, ("diag",), alone_rng, 1)
        for a, b in zip(both["diag"], alone["diag"]):
            assert np.array_equal(a, b)
        np.testing.assert_allclose(np.einsum("kii->ki", both["full"].scatter),
                                   both["diag"].scatter, rtol=1e-12)
        # The caller's stream moves on as after one draw.
        assert both_rng.randint(1 << 30) == alone_rng.randint(1 << 30)
    with pytest.raises(ValueError, match="init_params must be one of"):
        initial_statistics(source, 3, "nope", ("full",), np.random.RandomState(0), 1)


def _imports(path, modules):
    """The gmmfast modules a module imports, from its source: every import statement,
    those inside functions included (an import deferred to call time still ties the two
    modules together). ``from gmmfast import name`` is the module ``gmmfast.name`` when
    there is one, else the package itself (its ``__init__``, named ``gmmfast``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: from the package gmmfast
                module = "gmmfast" + ("." + module if module else "")
            if module == "gmmfast":
                names.update(f"gmmfast.{alias.name}" if f"gmmfast.{alias.name}" in modules
                             else "gmmfast" for alias in node.names)
            elif module.startswith("gmmfast."):
                names.add(module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names
                         if a.name == "gmmfast" or a.name.startswith("gmmfast."))
    return names


def _import_graph():
    """{module: the gmmfast modules it imports} for every Python module of the package
    (compiled modules import no Python module of gmmfast)."""
    package = pathlib.Path(gmmfast.__file__).parent
    sources = {("gmmfast" if p.stem == "__init__" else f"gmmfast.{p.stem}"): p
               for p in package.glob("*.py")}
    modules = set(sources) | {f"gmmfast.{p.name.split('.')[0]}"
                              for p in package.iterdir() if p.suffix in (".so", ".pyd")}
    return {name: _imports(path, modules) for name, path in sources.items()}


def test_no_import_cycles_and_the_engine_imports_no_estimator():
    graph = _import_graph()
    estimators = {"gmmfast._gaussian_mixture", "gmmfast._bayesian_mixture",
                  "gmmfast._selection", "gmmfast._cli", "gmmfast.plot", "gmmfast._io",
                  "gmmfast"}
    assert not graph["gmmfast._engine"] & estimators
    assert not graph["gmmfast._dask"] & estimators
    # The estimators' save writes through it: it must not need them back.
    assert not graph["gmmfast._model_file"] & estimators
    # The command line's predict and sample read, score and sample a model without them.
    for module in ("gmmfast._saved_mixture", "gmmfast._model_checks", "gmmfast._variational"):
        assert not graph[module] & estimators, module

    def reaches(start, target, seen):
        for name in graph.get(start, ()):
            if name == target or (name not in seen and reaches(name, target, seen | {name})):
                return True
        return False

    cycles = [name for name in graph if reaches(name, name, {name})]
    assert not cycles, cycles


def test_the_import_graph_sees_imports_inside_functions():
    graph = _import_graph()
    # _gaussian_mixture imports Dask's backend only when it is given a dask array.
    assert "gmmfast._dask" in graph["gmmfast._gaussian_mixture"]
    # The command line reads a model file for predict and sample only when it runs them.
    assert "gmmfast._saved_mixture" in graph["gmmfast._cli"]


class _CountingModel:
    """A model whose θ is (step number, start): the bound after step t of start s is
    ``rise[s] * (1 − 2^−t)``, and θ collapses from step ``collapse[s]`` on."""

    def __init__(self, rise, collapse):
        self.rise, self.collapse, self.steps = rise, collapse, []

    def em_step(self, source, n_threads):
        def step(theta):
            t, s = theta
            self.steps.append(s)
            return self.rise[s] * (1 - 2.0 ** -(t + 1)), (t + 1, s)
        return step

    def admissible(self, theta):
        t, s = theta
        return t < self.collapse[s]


def _first_check(step):
    """The first step at or after ``step`` where run_em asks whether a start collapsed."""
    return -(-step // HALT_INTERVAL) * HALT_INTERVAL


def _run_counting(rise, collapse):
    model = _CountingModel(rise, collapse)
    result = run_em(model, None, lambda s: ((0, s), -np.inf), n_init=len(rise),
                    max_iter=40, tol=1e-6, n_threads=1, admissible=model.admissible)
    return model, result


def test_a_start_that_collapses_stops_climbing_when_another_can_be_kept():
    # Start 1 rises highest but collapses at its fifth step: it stops at the next check,
    # and the admissible start 0 is kept.
    model, result = _run_counting([10.0, 20.0], [np.inf, 5])
    checked = _first_check(5)
    assert model.steps.count(1) == checked
    assert result.parameters[1] == 0 and result.converged
    assert result.start_bounds[1] == pytest.approx(20 * (1 - 2.0**-checked))


def test_when_every_start_collapses_the_highest_climbs_on_as_if_never_stopped():
    model, result = _run_counting([10.0, 20.0, 15.0], [3, 4, 2])
    whole = _run_counting([20.0], [np.inf])[1]  # start 1 alone, never stopped
    # Each stops at the first check after it collapsed.
    assert model.steps.count(0) == _first_check(3)
    assert model.steps.count(2) == _first_check(2)
    assert model.steps.count(1) == whole.n_iter
    assert result.parameters == (whole.n_iter, 1)
    assert result.lower_bounds == whole.lower_bounds and result.n_iter == whole.n_iter
    assert result.converged and result.start_bounds[1] == result.lower_bound
