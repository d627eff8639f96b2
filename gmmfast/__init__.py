"""gmmfast: Gaussian mixture models whose EM runs at the speed of the machine."""

from gmmfast._config import show_config
from gmmfast._gaussian_mixture import GaussianMixture
from gmmfast._io import load
from gmmfast._selection import GaussianMixtureIC, select_model

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "GaussianMixtureIC", "load", "select_model", "show_config",
           "__version__"]
