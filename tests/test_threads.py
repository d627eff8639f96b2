"""gmmfast._threads.single_threaded_blas: BLAS held to one thread, re-entrant, restored."""

import threading

from threadpoolctl import threadpool_info

from gmmfast import _threads


def blas_threads():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_limits_then_restores_and_nests():
    before = blas_threads()
    with _threads.single_threaded_blas():
        assert set(blas_threads()) <= {1}
        with _threads.single_threaded_blas():
            assert set(blas_threads()) <= {1}
        # Leaving the inner block must not lift the outer limit.
        assert set(blas_threads()) <= {1}
    assert blas_threads() == before


def test_depth_is_restored_after_an_exception():
    try:
        with _threads.single_threaded_blas():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert getattr(_threads._state, "depth", 0) == 0


def test_nesting_is_tracked_per_thread():
    seen = []

    def worker():
        seen.append(getattr(_threads._state, "depth", 0))

    with _threads.single_threaded_blas():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    assert seen == [0]
