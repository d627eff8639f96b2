"""The compiled core under extreme arguments: thread counts and points far from every
component."""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import gmmfast
from gmmfast import _em, _kernels


def cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
def test_thread_counts_beyond_the_cpus_are_capped():
    # A fresh process, so that only this call can have started OpenMP threads.
    code = textwrap.dedent("""
        import os
        import numpy as np
        from gmmfast import _kernels
        em = _kernels.em
        rng = np.random.default_rng(0)
        X = rng.random((200_000, 2))
        means, chol, log_norm = rng.random((2, 2)), np.ones((2, 2)), np.zeros(2)
        before = len(os.listdir("/proc/self/task"))
        for n_threads in (100_000, 2**31, 2**63, 10**30):
            em.score(X, means, chol, log_norm, np.empty(200_000), n_threads=n_threads)
            em.em_pass(X, None, means, chol, log_norm, np.zeros(2), np.zeros((2, 2)),
                       np.zeros((2, 2)), n_threads=n_threads)
        print(len(os.listdir("/proc/self/task")) - before)
    """)
    # From a temporary folder: `python -c` puts the working directory first on sys.path,
    # and the repository root holds the uncompiled gmmfast/.
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=tempfile.gettempdir())
    assert child.returncode == 0, child.stderr
    assert int(child.stdout) <= cpus() - 1  # the calling thread is one of the team


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux's /proc")
@pytest.mark.skipif(cpus() < 2, reason="needs 2 CPUs for a pass to start threads")
def test_a_small_pass_starts_no_threads_and_a_large_one_does():
    # Waking an OpenMP team costs more than a pass over a few hundred rows (on a busy
    # machine, a scheduler time slice per pass). A fresh process: only these calls can have
    # started OpenMP threads, which then stay (libgomp keeps its pool).
    code = textwrap.dedent("""
        import os
        import numpy as np
        from gmmfast import _kernels
        em, kmeans = _kernels.em, _kernels.kmeans

        def passes(n, k, d):
            rng = np.random.default_rng(0)
            X, means = rng.random((n, d)), rng.random((k, d))
            chol, log_norm = np.tile(np.eye(d), (k, 1, 1)), np.zeros(k)
            stats = np.zeros(k), np.zeros((k, d)), np.zeros((k, d, d))
            em.em_pass(X, None, means, chol, log_norm, *stats, n_threads=2)
            em.stats_from_labels(X, None, np.arange(n) % k, means, *stats, n_threads=2)
            em.score(X, means, chol, log_norm, np.empty(n), n_threads=2)
            kmeans.lloyd_step(X, None, means, np.empty((k, d)), np.empty(k),
                              np.empty(n, np.int64), n_threads=2)
            kmeans.update_closest_sq_dist(X, means[0], np.full(n, np.inf), n_threads=2)
            kmeans.candidate_potentials(X, None, means, np.full(n, np.inf), np.empty(k),
                                        n_threads=2)

        def threads_started_by(*shape):
            before = len(os.listdir("/proc/self/task"))
            passes(*shape)
            return len(os.listdir("/proc/self/task")) - before

        # Old Faithful's size (2 chunks of rows) with 10 components; then 10^5 x 8.
        print(threads_started_by(272, 10, 2), threads_started_by(100_000, 10, 8))
    """)
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=120, cwd=tempfile.gettempdir())
    assert child.returncode == 0, child.stderr
    small, large = map(int, child.stdout.split())
    assert small == 0
    assert large >= 1


@pytest.mark.parametrize("n_threads", [100_000, 2**63, -2**63])
def test_any_integer_thread_count_gives_the_same_result(n_threads):
    rng = np.random.default_rng(1)
    X = rng.random((3000, 3))
    means, chol, log_norm = rng.random((2, 3)), np.ones((2, 3)), np.zeros(2)
    expected, out = np.empty(3000), np.empty(3000)
    _em.score(X, means, chol, log_norm, expected, n_threads=1)
    _em.score(X, means, chol, log_norm, out, n_threads=n_threads)
    assert np.array_equal(out, expected)
    labels, counts, centres = np.empty(3000, np.int64), np.empty(2), np.empty((2, 3))
    _kernels.kmeans.lloyd_step(X, None, means, centres, counts, labels, n_threads=n_threads)


def test_a_thread_count_that_is_not_an_integer_is_refused():
    X = np.zeros((4, 1))
    with pytest.raises(TypeError):
        _em.score(X, np.zeros((1, 1)), np.ones((1, 1)), np.zeros(1), np.empty(4),
                  n_threads=2.5)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_proba_of_a_point_far_from_every_component_sums_to_one(dtype, covariance_type):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(100, 2)), rng.normal(size=(100, 2)) + 10]).astype(dtype)
    model = gmmfast.GaussianMixture(2, covariance_type=covariance_type, random_state=0).fit(X)
    huge = 1e200 if dtype == np.float64 else 1e30
    far = np.array([[huge, huge], [1e5, -1e5], [-huge, 0.0], [0.0, 0.0]], dtype=dtype)
    proba = model.predict_proba(far)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(np.argmax(proba, axis=1), model.predict(far))
    assert np.all(np.isfinite(proba))


def test_rows_of_zero_density_get_equal_responsibilities():
    X = np.array([[1e200, 1e200], [0.0, 0.0]])
    means, chol, log_norm = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), np.ones((3, 2)), \
        np.log(np.array([0.2, 0.3, 0.5]))
    resp, log_prob_norm, labels = np.empty((2, 3)), np.empty(2), np.empty(2, np.int64)
    _em.score(X, means, chol, log_norm, log_prob_norm, labels, resp)
    np.testing.assert_allclose(resp[0], 1 / 3)
    assert log_prob_norm[0] == -np.inf and labels[0] == 0
    only_resp = np.empty((2, 3))
    _em.score(X, means, chol, log_norm, resp=only_resp)
    assert np.array_equal(only_resp, resp)
