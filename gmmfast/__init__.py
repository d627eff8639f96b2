"""gmmfast: Gaussian mixture models whose EM runs at the speed of the machine."""

from gmmfast._bayesian_mixture import BayesianGaussianMixture
from gmmfast._capi import C_API_VERSION, get_include
from gmmfast._config import show_config
from gmmfast._gaussian_mixture import GaussianMixture
from gmmfast._imputer import GaussianMixtureImputer
from gmmfast._io import load
from gmmfast._selection import GaussianMixtureIC, select_model
from gmmfast._version import __version__

__all__ = ["BayesianGaussianMixture", "GaussianMixture", "GaussianMixtureIC",
           "GaussianMixtureImputer", "load", "select_model", "show_config", "__version__"]
# The C-level API for other Cython code (docs/c_api.md).
__all__ += ["C_API_VERSION", "get_include"]
