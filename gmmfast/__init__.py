"""gmmfast: Gaussian mixture models whose EM runs at the speed of the machine."""

import importlib.util as _importlib_util
import os as _os

# Without this check, Python started in the repository's root imports the uncompiled source
# folder gmmfast/ and fails deep inside with a circular-import error.
if _importlib_util.find_spec("gmmfast._em") is None:
    raise ImportError(
        f"gmmfast's compiled core is not built in {_os.path.dirname(__file__)}: this is "
        "gmmfast's source folder, which Python imports when started from the repository's "
        "root. Install gmmfast (pip install .) and run Python from another folder, or build "
        "the core in place for development (python setup.py build_ext --inplace)."
    )

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
