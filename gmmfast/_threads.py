"""Keep BLAS single-threaded while gmmfast's own OpenMP threads are at work.

The M-step calls LAPACK/BLAS on tiny K×D×D problems between two parallel passes. A
multi-threaded BLAS there gains nothing and fights the OpenMP workers, which spin for a while
after each pass: on 2 cores a small fit was measured 50× slower (0.8 s instead of 0.015 s).
The threadpoolctl controller is created once and cached: building one costs ~1 ms, applying
its limit ~0.02 ms.
"""

import functools

from threadpoolctl import ThreadpoolController


@functools.lru_cache(maxsize=1)
def _controller():
    return ThreadpoolController()


def single_threaded_blas():
    """Context manager limiting every loaded BLAS library to one thread."""
    return _controller().limit(limits=1, user_api="blas")
