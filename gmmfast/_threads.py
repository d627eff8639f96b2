"""Keep BLAS single-threaded while gmmfast's own OpenMP threads are at work.

The M-step calls LAPACK/BLAS on tiny K×D×D problems between two parallel passes. A
multi-threaded BLAS there gains nothing and fights the OpenMP workers, which spin for a while
after each pass: on 2 cores a small fit was measured 50× slower (0.8 s instead of 0.015 s).
The threadpoolctl controller is created once and cached: building one costs ~1 ms. Applying
its limit costs ~20 µs, as much as a whole EM pass on small data, so nested uses (every pass
inside a fit) apply it only once: the outermost ``with`` of a thread limits, and restores.
"""

import functools
import threading

from threadpoolctl import ThreadpoolController

# Nesting depth of each thread: only a thread's outermost use can change the limit.
_state = threading.local()


@functools.lru_cache(maxsize=1)
def _controller():
    return ThreadpoolController()


def _may_change_limits():
    """Only the main thread changes the process-wide BLAS setting.

    OpenBLAS (0.3.30, pthreads) ignores a change of its thread count made from another
    thread once the main thread has made one; a restore lost that way would leave BLAS at
    one thread for the rest of the process. A fit in another thread therefore runs under
    whatever limit the process has (the model search limits BLAS around its thread pool
    from the main thread).
    """
    return threading.current_thread() is threading.main_thread()


class single_threaded_blas:
    """Context manager limiting every loaded BLAS library to one thread (re-entrant; in
    the main thread only, see :func:`_may_change_limits`).

    A class rather than a ``contextlib`` generator: every EM pass enters it nested, where
    the generator-based manager cost ~0.9 µs and this one ~0.4 µs, against ~10 µs that
    an EM iteration on small data spends outside its pass.
    """

    __slots__ = ("_limit",)

    def __enter__(self):
        depth = getattr(_state, "depth", 0)
        self._limit = None
        if not depth and _may_change_limits():
            self._limit = _controller().limit(limits=1, user_api="blas")
        _state.depth = depth + 1
        return self

    def __exit__(self, *exc_info):
        _state.depth -= 1
        if self._limit is not None:
            self._limit.restore_original_limits()
