"""The pass over several blocks of rows, each with its own parameters and number of
features (``em_pass_blocks``, the statistics of rows grouped by pattern of missing
entries): each block's statistics are those of its own ``em_pass``, bit for bit, whatever
the number of threads."""

import numpy as np
import pytest

from conftest import COVARIANCE_TYPES, _mixture_data
from gmmfast import _em, _missing
from gmmfast._kernels import em as widest_em
from gmmfast._missing import MissingValueSource
from gmmfast._mstep_core import empty_stats
from test_multiset import assert_same_statistics, random_parameters

N_COMPONENTS = 4
# (rows, features) of the blocks: several groups of chunks, partial chunks, a single row,
# no row, and one block large enough that two threads share it.
SHAPES = [(6000, 3), (700, 2), (1, 4), (0, 3), (300, 1), (20_000, 5)]


def blocks_and_parameters(covariance_type, dtype=np.float64, weighted=False, seed=0):
    rng = np.random.default_rng(seed)
    blocks, weights, params = [], [], []
    for index, (n_samples, n_features) in enumerate(SHAPES):
        X = _mixture_data(max(n_samples, 3), 3, n_features, seed=seed + index)[:n_samples]
        blocks.append(np.ascontiguousarray(X, dtype=dtype))
        weights.append(rng.uniform(0.0, 2.0, n_samples) if weighted else None)
        params.append(random_parameters(rng, covariance_type, n_components=N_COMPONENTS,
                                        n_features=n_features)[:3])
    return blocks, weights, params


def zero_statistics(params):
    means, chol = params[:2]
    return empty_stats("full" if chol.ndim == 3 else "diag", *means.shape)


def own_passes(blocks, weights, params, module=_em):
    results = []
    for X, w, block_params in zip(blocks, weights, params):
        stats = zero_statistics(block_params)
        results.append((module.em_pass(X, w, *block_params, *stats, 1), stats))
    return results


def block_passes(blocks, weights, params, n_threads, module=_em):
    stats = [zero_statistics(block_params) for block_params in params]
    loglik = module.em_pass_blocks(blocks, weights, *zip(*params), *zip(*stats), n_threads)
    assert loglik.shape == (len(blocks),)
    return list(zip(loglik.tolist(), stats))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_each_block_is_its_own_pass_bit_for_bit(covariance_type, dtype, weighted):
    blocks, weights, params = blocks_and_parameters(covariance_type, dtype, weighted)
    expected = own_passes(blocks, weights, params)
    for n_threads in (1, 2):
        assert_same_statistics(block_passes(blocks, weights, params, n_threads), expected)
    # The blocks are distinct: a pass that gave every block one block's numbers fails.
    non_empty = [loglik for (loglik, _), (n, _) in zip(expected, SHAPES) if n]
    assert len(set(non_empty)) == len(non_empty)


@pytest.mark.parametrize("module", [_em, widest_em], ids=["baseline", "widest"])
def test_statistics_are_added_to_the_outputs(module):
    """em_pass_blocks itself, in every kernel variant: it adds to what the outputs held,
    as em_pass does."""
    blocks, weights, params = blocks_and_parameters("full", seed=1)
    stats = [tuple(np.ones_like(a) for a in zero_statistics(p)) for p in params]
    expected = [tuple(np.ones_like(a) for a in zero_statistics(p)) for p in params]
    loglik = module.em_pass_blocks(blocks, weights, *zip(*params), *zip(*stats), 2)
    for X, w, block_params, block_loglik, block_expected in zip(blocks, weights, params,
                                                                 loglik, expected):
        assert module.em_pass(X, w, *block_params, *block_expected, 1) == block_loglik
    for block_stats, block_expected in zip(stats, expected):
        for value, expected_value in zip(block_stats, block_expected):
            np.testing.assert_array_equal(value, expected_value)


def test_no_blocks():
    assert _em.em_pass_blocks([], [], [], [], [], [], [], []).shape == (0,)


def with_block(values, index, value):
    """The list ``values`` with its entry ``index`` replaced by ``value``."""
    return values[:index] + [value] + values[index + 1:]


def test_bad_arguments():
    blocks, weights, params = blocks_and_parameters("full", seed=2)
    stats = [zero_statistics(p) for p in params]
    means, chol, log_norm = (list(a) for a in zip(*params))
    nk, sums, scatter = (list(a) for a in zip(*stats))

    def call(**replaced):
        arguments = dict(X=blocks, sample_weight=weights, means=means,
                         precisions_chol=chol, log_norm=log_norm, nk=nk, sums=sums,
                         scatter=scatter)
        arguments.update(replaced)
        _em.em_pass_blocks(**arguments)

    with pytest.raises(ValueError, match="must each hold one entry per block of X"):
        call(log_norm=log_norm[:-1])
    # Each block's arguments are checked as em_pass checks them.
    with pytest.raises(ValueError, match=rf"log_norm must have shape \({N_COMPONENTS},\)"):
        call(log_norm=with_block(log_norm, 1, log_norm[1][:2]))
    with pytest.raises(ValueError, match="X must be 2-D"):
        call(X=with_block(blocks, 0, blocks[0][0]))
    same = "one dtype and the same number of components"
    with pytest.raises(ValueError, match=same):
        call(X=with_block(blocks, 1, blocks[1].astype(np.float32)))
    # Block 1 has 2 features: a mixture of 2 components in them.
    fewer = random_parameters(np.random.default_rng(3), "full", n_components=2,
                              n_features=2)[:3]
    with pytest.raises(ValueError, match=same):
        call(means=with_block(means, 1, fewer[0]), precisions_chol=with_block(chol, 1, fewer[1]),
             log_norm=with_block(log_norm, 1, fewer[2]), nk=with_block(nk, 1, np.zeros(2)),
             sums=with_block(sums, 1, np.zeros((2, 2))),
             scatter=with_block(scatter, 1, np.zeros((2, 2, 2))))
    # Every block has the first block's covariance form.
    diag = random_parameters(np.random.default_rng(4), "diag", n_components=N_COMPONENTS,
                             n_features=2)[:3]
    with pytest.raises(ValueError, match=rf"must have shape \({N_COMPONENTS}, 2, 2\)"):
        call(precisions_chol=with_block(chol, 1, diag[1]))


def test_grouped_rows_take_one_compiled_call(monkeypatch):
    """However many patterns, an iteration's statistics are one compiled call: no Python
    runs between the groups' passes."""
    X = _mixture_data(3000, 3, 5, seed=5)
    X[np.random.default_rng(6).uniform(size=X.shape) < 0.3] = np.nan
    source = MissingValueSource(X, None, 3)
    assert len(source.groups) > 20
    calls = []
    original = _missing._em.em_pass_blocks

    def counted(blocks, *arguments, **keywords):
        calls.append(len(blocks))
        return original(blocks, *arguments, **keywords)

    monkeypatch.setattr(_missing._em, "em_pass_blocks", counted)
    monkeypatch.setattr(_missing._em, "em_pass", None)  # any per-group pass would fail
    params = random_parameters(np.random.default_rng(7), "full", n_components=3,
                               n_features=5)
    source.statistics(params, 2)
    assert calls == [len(source.groups)]
