"""Out of memory in the compiled core is a MemoryError, never a crash.

Each case runs in a child process whose address space is limited (``RLIMIT_AS``) to what it
has mapped already plus a small headroom, so that the suite itself stays safe. The child
prints one outcome per case; a crash shows as a negative return code (the signal).
"""

import os
import subprocess
import sys
import tempfile
import textwrap

import pytest

pytest.importorskip("resource")

PRELUDE = """
import contextlib
import resource
import numpy as np
import gmmfast
from gmmfast import _kernels
em = _kernels.em


@contextlib.contextmanager
def address_space_limit(headroom_mb):
    with open("/proc/self/status") as status:
        vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, ((vm_kb << 10) + (headroom_mb << 20), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def random_problem(n, k, d, form):
    # (X, means, precisions_chol, log_norm): n rows, k components, full or diag.
    rng = np.random.default_rng(0)
    chol = np.tile(np.eye(d), (k, 1, 1)) if form == "full" else np.ones((k, d))
    return rng.random((n, d)), rng.random((k, d)), chol, np.zeros(k)


def outcome(headroom_mb, run):
    try:
        with address_space_limit(headroom_mb):
            run()
    except MemoryError as error:
        print("MemoryError:", error)
    else:
        print("ok")
"""


def run_limited(body, timeout=120):
    """Run PRELUDE + body in a child; its lines of output, after checking it did not crash.

    glibc's malloc is told to map every block over 64 KiB afresh and unmap it when freed
    (by default it keeps freed large blocks after the first), so that each case under the
    limit needs its memory anew."""
    code = PRELUDE + textwrap.dedent(body)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    # From a temporary folder: `python -c` puts the working directory first on sys.path,
    # and the repository root holds the uncompiled gmmfast/.
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=tempfile.gettempdir())
    assert child.returncode == 0, (
        f"child ended with {child.returncode}\nstdout: {child.stdout}\nstderr: {child.stderr}")
    return child.stdout.splitlines()


def test_a_few_very_wide_rows_need_scratch_for_those_rows_only():
    # Scratch for a whole 256-row chunk of 10^5 features would be ~1 GB per thread; for
    # the 3 rows present it is ~15 MB, within the limit.
    lines = run_limited("""
        X = np.random.default_rng(0).random((3, 100_000))
        for dtype in ("float64", "float32"):
            estimator = gmmfast.GaussianMixture(1, covariance_type="diag")
            outcome(400, lambda: estimator.fit(X.astype(dtype)))
    """)
    assert lines == ["ok", "ok"]


def test_scratch_that_cannot_be_allocated_is_a_memory_error():
    # With 5000 components a chunk's log-densities alone are 10 MB per thread; the
    # accumulators (~2 MB) and the outputs fit in the headroom.
    lines = run_limited("""
        k, d, n = 5000, 2, 2000
        log_prob_norm = np.empty(n)
        for form in ("full", "diag"):
            X, means, chol, log_norm = random_problem(n, k, d, form)
            stats = (np.zeros(k), np.zeros((k, d)), np.zeros(chol.shape))
            for n_threads in (1, 2):
                # The OpenMP threads are started before the limit: only the scratch fails.
                em.score(X, means, chol, log_norm, log_prob_norm, n_threads=n_threads)
                outcome(6, lambda: em.score(X, means, chol, log_norm, log_prob_norm,
                                            n_threads=n_threads))
            outcome(6, lambda: em.em_pass(X, None, means, chol, log_norm, *stats, n_threads=2))
    """)
    assert len(lines) == 6
    for line in lines:
        assert line.startswith("MemoryError: not enough memory for the compiled core's "
                               "work areas"), lines
        assert "MiB per thread" in line


def test_blas_without_memory_is_a_memory_error_not_a_hang():
    # With D = 1000 the full densities go through BLAS's trmm, whose first call in a thread
    # maps a work buffer; OpenBLAS waits forever when it cannot. From a few MB left to
    # enough, each call must end: with a MemoryError, or with the result.
    lines = run_limited("""
        k, d, n = 2, 1000, 600
        X, means, chol, log_norm = random_problem(n, k, d, "full")
        resp = np.empty((n, k))
        # The OpenMP threads are started without BLAS (diag), so only BLAS is left to fail.
        em.score(X, means, np.ones((k, d)), log_norm, resp=resp, n_threads=2)
        for headroom_mb in (4, 8, 16, 32, 48, 64, 256):
            outcome(headroom_mb, lambda: em.score(X, means, chol, log_norm, resp=resp,
                                                  n_threads=2))
    """, timeout=60)
    assert len(lines) == 7
    assert all(line == "ok" or line.startswith("MemoryError: not enough memory")
               for line in lines), lines
    assert lines[0].startswith("MemoryError") and lines[-1] == "ok"


def test_m_step_scratch_that_cannot_be_allocated_is_a_memory_error():
    # EVE's and VVE's warm M-step holds each component's rotated scatter: 10 MB for 5000
    # components of 16 features, beyond the headroom; its outputs fit.
    lines = run_limited("""
        from gmmfast import _mstep_core
        k, d = 5000, 16
        nk = np.full(k, 10.0)
        regularised = np.tile(np.eye(d), (k, 1, 1)) * 10.0
        outcome(4, lambda: _mstep_core.fit_common_orientation(nk, regularised, np.eye(d),
                                                               True, 5, 1e-8))
        print(_mstep_core.fit_common_orientation(nk[:3], regularised[:3], np.eye(d), True,
                                                 5, 1e-8)[4])
    """)
    assert lines == ["MemoryError: no memory for the M-step's scratch", "1"]
