"""gmmfast: Gaussian mixture models whose EM runs at the speed of the machine."""

import importlib as _importlib
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

from gmmfast._version import __version__

# The public names are imported on first use (PEP 562, as SciPy does): the estimators
# import scikit-learn, which takes seconds, and the command line's predict and sample
# do not need it.
_PUBLIC = {
    "BayesianGaussianMixture": "gmmfast._bayesian_mixture",
    "GaussianMixture": "gmmfast._gaussian_mixture",
    "GaussianMixtureIC": "gmmfast._selection",
    "GaussianMixtureImputer": "gmmfast._imputer",
    "load": "gmmfast._io",
    "select_model": "gmmfast._selection",
    "show_config": "gmmfast._config",
    # The C-level API for other Cython code (docs/c_api.md).
    "C_API_VERSION": "gmmfast._capi",
    "get_include": "gmmfast._capi",
}

__all__ = ["BayesianGaussianMixture", "GaussianMixture", "GaussianMixtureIC",
           "GaussianMixtureImputer", "load", "select_model", "show_config", "__version__",
           "C_API_VERSION", "get_include"]


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'gmmfast' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value  # the next access is an ordinary attribute
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
