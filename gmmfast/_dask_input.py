"""Recognise Dask collections without importing Dask.

``import gmmfast`` must never import Dask, and NumPy input must never reach the Dask code
path. An object can only be a Dask collection if Dask's own modules defined its class, so the
class's module name is enough to tell; ``gmmfast._dask`` (which does import Dask) is loaded
only once such an object has been seen.
"""


def is_dask_collection(X):
    """True for a Dask array, dataframe, series, bag or delayed object."""
    return type(X).__module__.partition(".")[0] == "dask"


def refuse_dask_input(X, estimator_name):
    """TypeError for estimators that fit only in-memory data (instead of collecting X)."""
    if is_dask_collection(X):
        raise TypeError(
            f"{estimator_name} does not support Dask input ({type(X).__name__}): fitting "
            "it would collect the data on the client. Fit gmmfast.GaussianMixture on the "
            "dask array for each candidate instead, or pass X.compute() if it fits in memory."
        )
