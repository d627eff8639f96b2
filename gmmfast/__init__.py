"""gmmfast: Gaussian mixture models whose EM runs at the speed of the machine."""

from gmmfast._config import show_config
from gmmfast._gaussian_mixture import GaussianMixture

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "show_config", "__version__"]
