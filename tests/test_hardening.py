"""Hostile conditions for fitting: scaled weights, overflowing data, huge models, a failed
refit of the search, concurrent BLAS limits and Ctrl-C during a search."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import gmmfast._engine
from gmmfast import GaussianMixture, GaussianMixtureIC


def _blobs(n=400, seed=0, dtype=np.float64):
    rng = np.random.RandomState(seed)
    X = np.vstack([rng.randn(n // 2, 2), rng.randn(n - n // 2, 2) + 5])
    return X.astype(dtype)


@pytest.mark.parametrize("scale", [1e-300, 1e-100, 1e-16, 1e16, 1e100, 1e300])
def test_a_common_scale_of_the_weights_does_not_change_the_model(scale):
    X = _blobs()
    plain = GaussianMixture(2, random_state=0).fit(X)
    uniform = GaussianMixture(2, random_state=0).fit(X, sample_weight=np.full(len(X), scale))
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        assert np.array_equal(getattr(uniform, name), getattr(plain, name)), name
    assert uniform.converged_ and np.isfinite(uniform.lower_bound_)

    weights = np.random.RandomState(1).uniform(0.2, 2.0, len(X))
    reference = GaussianMixture(2, random_state=0).fit(X, sample_weight=weights)
    scaled = GaussianMixture(2, random_state=0).fit(X, sample_weight=weights * scale)
    for name in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(scaled, name), getattr(reference, name),
                                   rtol=1e-12, atol=1e-14)
    assert scaled.lower_bound_ == pytest.approx(reference.lower_bound_, rel=1e-13)


def test_ordinary_weights_are_used_as_given():
    weights = np.random.RandomState(0).uniform(0.0, 3.0, 50)
    assert gmmfast._engine.normalised_weights(weights) is weights


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e20), (np.float32, 1e30),
                                          (np.float64, 1e160)])
def test_data_whose_scale_overflows_is_named_as_such(dtype, scale):
    X = _blobs(dtype=dtype) * dtype(scale)
    for estimator in (GaussianMixture(2, random_state=0),
                      GaussianMixture(2, covariance_type="diag", random_state=0)):
        with pytest.raises(ValueError, match="scale overflows .* Scale the data"):
            estimator.fit(X)
    result = GaussianMixtureIC(n_components=[1, 2], covariance_type="full",
                               random_state=0)
    with pytest.raises(ValueError, match="scale overflows"):
        result.fit(X)


def test_collapsed_components_keep_their_own_message():
    X = np.repeat(_blobs(40), 5, axis=0)
    X[:, 1] = 3.0  # a constant column: no covariance without reg_covar
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        GaussianMixture(2, reg_covar=0.0, random_state=0).fit(X)


def test_a_model_too_large_for_the_machine_is_refused_before_any_work(monkeypatch):
    monkeypatch.setattr(gmmfast._engine, "physical_memory", lambda: 24 * 2**30)
    X = np.zeros((4001, 1000))
    start = time.perf_counter()
    with pytest.raises(MemoryError, match=r"needs about 238\.4 GiB .* 24\.0 GiB of RAM"):
        GaussianMixture(4000, covariance_type="full").fit(X)
    assert time.perf_counter() - start < 5
    with pytest.raises(MemoryError, match="GiB"):
        GaussianMixtureIC(n_components=[1, 4000], covariance_type="full").fit(X)
    # Diagonal covariances of the same size fit in memory: validation goes on.
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixture(5000, covariance_type="diag").fit(X)


def test_a_failed_search_keeps_the_previous_model():
    X = _blobs()
    search = GaussianMixtureIC(n_components=[1, 2], covariance_type="full",
                               random_state=0).fit(X)
    before = dict(vars(search))
    # Fails after the new X was validated (and its column count recorded).
    with pytest.raises(ValueError, match="sample_weight"):
        search.fit(np.hstack([X, X[:, :1]]), sample_weight=np.ones(3))
    assert vars(search).keys() == before.keys()
    assert search.n_features_in_ == 2 and search.best_estimator_ is before["best_estimator_"]
    assert np.array_equal(search.predict(X), before["best_estimator_"].predict(X))


OVERLAPPING_FITS = textwrap.dedent("""
    import sys
    import threading

    import numpy as np
    from threadpoolctl import threadpool_info

    from gmmfast import GaussianMixture
    from gmmfast._threads import single_threaded_blas

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    X = np.random.RandomState(0).rand(2000, 2)
    first_in, second_in, first_out = (threading.Event() for _ in range(3))

    def fit(first):
        if not first:
            first_in.wait(10)
        with single_threaded_blas():
            if first:
                first_in.set()
                second_in.wait(10)
            else:
                second_in.set()
                first_out.wait(10)
            GaussianMixture(2, random_state=0).fit(X)
        if first:
            first_out.set()

    worker_first = sys.argv[1] == "worker"
    thread = threading.Thread(target=fit, args=(worker_first,))
    thread.start()
    fit(not worker_first)
    thread.join()
    print(before, blas_threads())
""")


@pytest.mark.parametrize("first", ["worker", "main"])
def test_overlapping_fits_in_two_threads_leave_blas_as_it_was(first, tmp_path):
    """In a fresh process: a fit in a worker thread overlapping one in the main thread."""
    # From tmp_path: `python -c` puts the working directory first on sys.path, and the
    # repository root holds the uncompiled gmmfast/.
    done = subprocess.run([sys.executable, "-c", OVERLAPPING_FITS, first],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    before, after = done.stdout.strip().split("] [")
    assert before + "]" == "[" + after, done.stdout


def assert_stops_soon(process):
    """The interrupted search ``process`` ends with KeyboardInterrupt within 10 s; if it
    has not ended after 60 s, the failure shows every thread's stack (SIGUSR1, which the
    scripts register with faulthandler)."""
    interrupted = time.perf_counter()
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGUSR1)
        time.sleep(1.0)
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"the search did not stop within 60 s of Ctrl-C; its threads:\n"
                    f"{stderr[-6000:]}")
    took = time.perf_counter() - interrupted
    assert "KeyboardInterrupt" in stderr
    assert took < 10, f"the search took {took:.1f} s to stop"


def run_endless_search(tmp_path, before_search=""):
    """A process running a search whose candidates never converge (tol=0: each would run
    all its 100 000 iterations), after ``before_search`` (script lines); it prints "start"
    as the search begins."""
    script = tmp_path / "search.py"
    script.write_text(textwrap.dedent("""
        import faulthandler
        import signal
        import threading
        import time
        import numpy as np
        from gmmfast import select_model

        # If Ctrl-C ever fails to stop the search, SIGUSR1 shows where every thread is.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        # Python raises KeyboardInterrupt only if SIGINT was not ignored when it started,
        # and a shell starts background jobs (a CI script run with &) with SIGINT ignored.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        X = np.random.default_rng(0).normal(size=(300_000, 8))
    """) + textwrap.dedent(before_search) + textwrap.dedent("""
        print("start", flush=True)
        select_model(X, n_components=range(6, 10), covariance_type="full",
                     init_params="random_from_data", tol=0.0, max_iter=100_000,
                     random_state=0, n_threads=2)
        print("finished", flush=True)
    """))
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "start"
    return process


def test_ctrl_c_stops_a_search_within_a_few_iterations(tmp_path):
    """Candidates running in other threads stop at their next EM iteration."""
    process = run_endless_search(tmp_path)
    try:
        time.sleep(2.0)  # the candidates are iterating
        os.kill(process.pid, signal.SIGINT)
        assert_stops_soon(process)
    finally:
        process.kill()


def test_ctrl_c_delivered_to_a_worker_thread_stops_the_search(tmp_path):
    """The kernel may hand a process's SIGINT to any of its threads: a signal that a
    candidate's thread receives must still stop the search (the waiting main thread
    wakes up to raise KeyboardInterrupt)."""
    process = run_endless_search(tmp_path, before_search="""
        def interrupt_a_worker():
            while not any(t.name.startswith("gmmfast-ic") for t in threading.enumerate()):
                time.sleep(0.05)
            time.sleep(1.0)  # the candidates are iterating
            worker = next(t for t in threading.enumerate() if t.name.startswith("gmmfast-ic"))
            print("interrupting", flush=True)
            signal.pthread_kill(worker.ident, signal.SIGINT)

        threading.Thread(target=interrupt_a_worker, daemon=True).start()
    """)
    try:
        assert process.stdout.readline().strip() == "interrupting"
        assert_stops_soon(process)
    finally:
        process.kill()


def _fit_peak(n_samples, init_params):
    """Peak bytes NumPy allocates while fitting n_samples × 8 rows."""
    import tracemalloc

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n_samples, 8)) + 8 * rng.integers(3, size=(n_samples, 1))
    estimator = GaussianMixture(3, init_params=init_params, max_iter=3, random_state=0)
    tracemalloc.start()
    try:
        estimator.fit(X)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_fit_allocates_nothing_that_grows_with_the_data(init_params):
    """No label per row and no copy of X: fit's temporaries are bounded by row blocks."""
    small, large = 200_000, 800_000
    growth = _fit_peak(large, init_params) - _fit_peak(small, init_params)
    # One int64 label per row would grow by 8 bytes a row.
    assert growth < 2 * (large - small), f"peak grew by {growth / 2**20:.1f} MiB"


@pytest.mark.parametrize("scale", [1e-300, 1e-16, 1e300])
def test_a_common_scale_of_the_weights_does_not_change_a_dask_fit(scale):
    da = pytest.importorskip("dask.array")
    import dask

    X = _blobs(600)
    weights = np.random.RandomState(1).uniform(0.2, 2.0, len(X))
    Xd = da.from_array(X, chunks=(200, 2))
    with dask.config.set(scheduler="synchronous"):
        plain = GaussianMixture(2, random_state=0).fit(Xd)
        uniform = GaussianMixture(2, random_state=0).fit(
            Xd, sample_weight=da.from_array(np.full(len(X), scale), chunks=200))
        reference = GaussianMixture(2, random_state=0).fit(Xd, sample_weight=weights)
        scaled = GaussianMixture(2, random_state=0).fit(
            Xd, sample_weight=da.from_array(weights * scale, chunks=200))
    for name in ("weights_", "means_", "covariances_", "lower_bounds_"):
        assert np.array_equal(getattr(uniform, name), getattr(plain, name)), name
        np.testing.assert_allclose(getattr(scaled, name), getattr(reference, name),
                                   rtol=1e-12, atol=1e-14)


def test_the_em_pass_lets_other_python_threads_run():
    """The pass releases the GIL: a search's candidates, or a caller's other threads, run
    while it does."""
    from gmmfast._kernels import em
    from gmmfast._mstep_core import empty_stats, kernel_parameters

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000_000, 8))
    chol = np.stack([np.eye(8)] * 8)
    params = kernel_parameters(np.full(8, 1 / 8), rng.normal(size=(8, 8)), chol, "full", 8)
    started, done = threading.Event(), threading.Event()

    def work():
        started.set()
        em.em_pass(X, None, *params, *empty_stats("full", 8, 8), 1)
        done.set()

    worker = threading.Thread(target=work)
    worker.start()
    started.wait(10)
    # The worker is inside the pass by now; holding the GIL there, it would keep this
    # thread asleep until the pass had ended.
    time.sleep(0.02)
    steps = 0
    while not done.is_set():
        steps += 1
    worker.join()
    # ~10^6 steps while a ~0.1 s pass runs; holding the GIL, the pass would leave only the
    # few thousand steps that fit in the worker's Python code around it.
    assert steps > 200_000, f"the main thread ran {steps} steps during the pass"
