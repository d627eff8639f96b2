"""Keep BLAS single-threaded while gmmfast's own OpenMP threads are at work.

The M-step calls LAPACK/BLAS on tiny K×D×D problems between two parallel passes. A
multi-threaded BLAS there gains nothing and fights the OpenMP workers, which spin for a while
after each pass: on 2 cores a small fit was measured 50× slower (0.8 s instead of 0.015 s).
The threadpoolctl controller is created once and cached: building one costs ~1 ms. Applying
its limit costs ~20 µs, as much as a whole EM pass on small data, so nested uses (every pass
inside a fit) apply it only once: the outermost ``with`` of a thread limits, and restores.
"""

import contextlib
import functools
import threading

from threadpoolctl import ThreadpoolController

_state = threading.local()


@functools.lru_cache(maxsize=1)
def _controller():
    return ThreadpoolController()


@contextlib.contextmanager
def single_threaded_blas():
    """Context manager limiting every loaded BLAS library to one thread (re-entrant)."""
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        if depth:
            yield
        else:
            with _controller().limit(limits=1, user_api="blas"):
                yield
    finally:
        _state.depth = depth
