"""Type stubs for the compiled k-means kernels (src/_kmeans.pyx)."""

import numpy as np
import numpy.typing as npt

def lloyd_step(
    X: npt.NDArray[np.floating],
    sample_weight: npt.NDArray[np.float64] | None,
    centers: npt.NDArray[np.float64],
    new_centers: npt.NDArray[np.float64],
    counts: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    n_threads: int = 0,
) -> float: ...
def update_closest_sq_dist(
    X: npt.NDArray[np.floating],
    center: npt.NDArray[np.float64],
    closest_sq_dist: npt.NDArray[np.float64],
    n_threads: int = 0,
) -> None: ...
def candidate_potentials(
    X: npt.NDArray[np.floating],
    sample_weight: npt.NDArray[np.float64] | None,
    candidates: npt.NDArray[np.float64],
    closest_sq_dist: npt.NDArray[np.float64],
    potentials: npt.NDArray[np.float64],
    n_threads: int = 0,
) -> None: ...
