"""Type stubs for the compiled M-step (src/_mstep_core.pyx)."""

from collections.abc import Callable

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
def em_step(
    em_pass: Callable[..., float],
    X: npt.NDArray[np.floating],
    sample_weight: Float64Array | None,
    params: tuple[Float64Array, Float64Array, Float64Array | None, Float64Array],
    covariance_type: str,
    n_threads: int,
    reg_covar: float,
    eps: float,
) -> tuple[float, tuple[Float64Array, Float64Array, Float64Array, Float64Array] | None]: ...
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
    form: str, n_components: int, n_features: int
) -> tuple[Float64Array, Float64Array, Float64Array]: ...
def kernel_parameters(
    weights: npt.NDArray[np.floating],
    means: npt.NDArray[np.floating],
    precisions_chol: npt.NDArray[np.floating],
    covariance_type: str,
    n_features: int,
) -> tuple[Float64Array, Float64Array, Float64Array]: ...

PLANE_GRID_ANGLES: int
PLANE_NEWTON_STEPS: int

def sweep_plane_rotations(
    nk: Float64Array,
    regularised: Float64Array,
    axes: Float64Array,
    n_sweeps: int,
    tol: float,
    equal_volumes: bool,
) -> tuple[Float64Array, float]: ...
def variable_shapes_along_axes(
    nk: Float64Array, variances: Float64Array, equal_volumes: bool
) -> tuple[Float64Array, Float64Array, float]: ...
def axes_objective(
    nk: Float64Array, variances: Float64Array, volumes: Float64Array, shapes: Float64Array
) -> float: ...

NEWTON_HALVINGS: int
FULL_NEWTON_MAX_FEATURES: int

def fit_common_orientation(
    nk: Float64Array,
    regularised: Float64Array,
    axes: Float64Array,
    equal_volumes: bool,
    max_iter: int,
    tol: float,
) -> tuple[Float64Array, Float64Array, Float64Array, float, int, bool]: ...
def profile_derivatives(
    nk: Float64Array, rotated: Float64Array, equal_volumes: bool, coupled: bool
) -> tuple[float, Float64Array, Float64Array]: ...
def fit_scaled_common_shape(
    nk: Float64Array,
    variances: Float64Array,
    start_volumes: Float64Array | None,
    max_iter: int,
    tol: float,
) -> tuple[Float64Array, Float64Array, float, int, bool]: ...
def fit_scaled_common_covariance(
    nk: Float64Array,
    regularised: Float64Array,
    start_volumes: Float64Array,
    max_iter: int,
    tol: float,
) -> tuple[Float64Array, Float64Array, Float64Array, float, int, bool]: ...
