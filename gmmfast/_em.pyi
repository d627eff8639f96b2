"""Type stubs for the compiled EM core (src/_em.pyx)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

ROWS_PER_CHUNK: int
FORM_FULL: int
FORM_TIED: int
FORM_DIAG: int

def openmp_enabled() -> bool: ...
def max_threads() -> int: ...
def pass_threads(
    n_threads: int, n_tasks: int, n_samples: int, n_components: int, per_pair: int
) -> int: ...
def cpu_level() -> int: ...
def precisions_cholesky(
    covariances: npt.NDArray[np.float64], out: npt.NDArray[np.float64]
) -> int: ...
def em_pass(
    X: npt.NDArray[np.floating],
    sample_weight: npt.NDArray[np.float64] | None,
    means: npt.NDArray[np.float64],
    precisions_chol: npt.NDArray[np.float64],
    log_norm: npt.NDArray[np.float64],
    nk: npt.NDArray[np.float64],
    sums: npt.NDArray[np.float64],
    scatter: npt.NDArray[np.float64],
    n_threads: int = 0,
    form: int | None = None,
    log_resp_floor: float | None = None,
) -> float: ...
def em_pass_sets(
    X: npt.NDArray[np.floating],
    sample_weight: npt.NDArray[np.float64] | None,
    means: npt.NDArray[np.float64],
    precisions_chol: npt.NDArray[np.float64],
    log_norm: npt.NDArray[np.float64],
    nk: npt.NDArray[np.float64],
    sums: npt.NDArray[np.float64],
    scatter: npt.NDArray[np.float64],
    n_threads: int = 0,
    form: int | None = None,
    log_resp_floor: float | None = None,
) -> npt.NDArray[np.float64]: ...
def em_pass_blocks(
    X: Sequence[npt.NDArray[np.floating]],
    sample_weight: Sequence[npt.NDArray[np.float64] | None],
    means: Sequence[npt.NDArray[np.float64]],
    precisions_chol: Sequence[npt.NDArray[np.float64]],
    log_norm: Sequence[npt.NDArray[np.float64]],
    nk: Sequence[npt.NDArray[np.float64]],
    sums: Sequence[npt.NDArray[np.float64]],
    scatter: Sequence[npt.NDArray[np.float64]],
    n_threads: int = 0,
    form: int | None = None,
    log_resp_floor: float | None = None,
) -> npt.NDArray[np.float64]: ...
def max_sets_per_pass(
    n_samples: int, n_components: int, n_features: int, full: bool, pooled: bool = ...
) -> int: ...
def stats_from_labels(
    X: npt.NDArray[np.floating],
    sample_weight: npt.NDArray[np.float64] | None,
    labels: npt.NDArray[np.int64],
    shifts: npt.NDArray[np.float64],
    nk: npt.NDArray[np.float64],
    sums: npt.NDArray[np.float64],
    scatter: npt.NDArray[np.float64],
    n_threads: int = 0,
) -> None: ...
def stats_from_resp(
    X: npt.NDArray[np.floating],
    sample_weight: npt.NDArray[np.float64] | None,
    resp: npt.NDArray[np.float64],
    shifts: npt.NDArray[np.float64],
    nk: npt.NDArray[np.float64],
    sums: npt.NDArray[np.float64],
    scatter: npt.NDArray[np.float64],
    n_threads: int = 0,
) -> None: ...
def score(
    X: npt.NDArray[np.floating],
    means: npt.NDArray[np.float64],
    precisions_chol: npt.NDArray[np.float64],
    log_norm: npt.NDArray[np.float64],
    log_prob_norm: npt.NDArray[np.floating] | None = None,
    labels: npt.NDArray[np.int64] | None = None,
    resp: npt.NDArray[np.floating] | None = None,
    n_threads: int = 0,
    check_finite: bool = False,
    form: int | None = None,
) -> bool | None: ...
