"""Type stubs for the compiled M-step (src/_mstep_core.pyx)."""

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]

def estimate_parameters(
    nk: Float64Array,
    sums: Float64Array,
    scatter: Float64Array,
    shifts: Float64Array,
    covariance_type: str,
    reg_covar: float,
    eps: float,
) -> tuple[Float64Array, Float64Array, Float64Array]: ...
def m_step(
    nk: Float64Array,
    sums: Float64Array,
    scatter: Float64Array,
    shifts: Float64Array,
    covariance_type: str,
    reg_covar: float,
    eps: float,
) -> tuple[Float64Array, Float64Array, Float64Array, Float64Array] | None: ...
def precisions_cholesky(
    covariances: Float64Array, covariance_type: str
) -> Float64Array | None: ...
def empty_stats(
    covariance_type: str, n_components: int, n_features: int
) -> tuple[Float64Array, Float64Array, Float64Array]: ...
def kernel_parameters(
    weights: npt.NDArray[np.floating],
    means: npt.NDArray[np.floating],
    precisions_chol: npt.NDArray[np.floating],
    covariance_type: str,
    n_features: int,
) -> tuple[Float64Array, Float64Array, Float64Array]: ...
