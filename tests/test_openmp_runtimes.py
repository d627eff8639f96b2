"""Two OpenMP runtimes in one process: scikit-learn's and gmmfast's.

Wheels vendor their own OpenMP runtime (libgomp on Linux, libomp on macOS, vcomp on
Windows), so a process that uses scikit-learn's parallel code and gmmfast's holds two copies.
LLVM's libomp aborts ("OMP: Error #15") when a second copy initialises unless
KMP_DUPLICATE_LIB_OK is set (scikit-learn sets it on import); GNU libgomp runs both. Each
order runs in a fresh interpreter, because the failure is an abort, not an exception.
"""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("sklearn")

SETUP = """
import numpy as np
rng = np.random.default_rng(0)
X = np.vstack([rng.normal(c, 1.0, size=(4000, 4)) for c in (-5.0, 0.0, 5.0)])
"""

SKLEARN_FIT = """
from sklearn.cluster import KMeans  # Lloyd's algorithm runs on scikit-learn's OpenMP threads
inertia = KMeans(3, n_init=1, random_state=0).fit(X).inertia_
assert np.isfinite(inertia), inertia
"""

GMMFAST_FIT = """
import gmmfast
for n_threads in (None, 2):
    gm = gmmfast.GaussianMixture(3, random_state=0, n_threads=n_threads).fit(X)
    assert gm.converged_ and np.isfinite(gm.score(X))
"""

REPORT = """
from threadpoolctl import threadpool_info
runtimes = sorted({(i["internal_api"], i["filepath"]) for i in threadpool_info()
                   if i["user_api"] == "openmp"})
print("OpenMP runtimes loaded:", runtimes)
print("both fitted")
"""


def _run(code, cwd):
    # From an empty folder: ``python -c`` puts the working directory first on sys.path, and
    # in the source tree that would import the uncompiled gmmfast/ instead of the installed.
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=cwd)
    print(proc.stdout)
    assert proc.returncode == 0 and "both fitted" in proc.stdout, (
        f"exit code {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )


def test_scikit_learn_first_then_gmmfast(tmp_path):
    # gmmfast's fit starts its runtime while scikit-learn's is alive; then back to sklearn.
    _run(textwrap.dedent(SETUP + "import sklearn\n" + SKLEARN_FIT + GMMFAST_FIT
                         + SKLEARN_FIT + REPORT), tmp_path)


def test_gmmfast_first_then_scikit_learn(tmp_path):
    _run(textwrap.dedent(SETUP + GMMFAST_FIT + SKLEARN_FIT + GMMFAST_FIT + REPORT), tmp_path)
