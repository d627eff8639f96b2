"""A saved mixture as the command line's ``predict`` and ``sample`` use it: the checked
arrays of a model file, scored and sampled through the engine's functions.

No estimator is built: the estimators import scikit-learn (seconds, against a predict's
tenths), which neither command needs. ``gmmfast.load`` gives the estimator itself.
"""

import numpy as np

from gmmfast._covariance_models import sklearn_layout
from gmmfast._engine import mixture_kernel_parameters, sample_mixture, score_arrays
from gmmfast._missing import score_missing
from gmmfast._model_checks import read_checked_model
from gmmfast._variational import fitted_kernel_parameters


class SavedMixture:
    """The fitted mixture of a model file (either kind), checked as ``gmmfast.load``
    checks it except for the constructor's constraints on parameters that neither
    scoring nor sampling uses."""

    def __init__(self, path):
        model_file = read_checked_model(path)
        self.kind = model_file.kind
        self.params = model_file.params
        self.arrays = model_file.arrays
        self.metadata = model_file.metadata

    @property
    def means(self):
        return self.arrays["means_"]

    @property
    def n_components(self):
        return self.means.shape[0]

    def probabilities(self, X, nan_policy="raise"):
        """p(k | x) of the rows of X (C-contiguous, of the model's dtype, finite except for
        NaN entries under ``nan_policy="omit"``, where each row's observed entries are
        scored): the estimators' ``predict_proba``, with all the threads.

        The finite check is the data reader's: a NaN under "raise" or an infinity never
        reaches this point."""
        kernel_params = self._kernel_parameters(with_covariances=nan_policy == "omit")
        score = score_missing if nan_policy == "omit" else score_arrays
        return score(X, kernel_params, resp=True, log_prob=False)[2]

    def sample(self, n_samples, seed=None):
        """(X float64 (n_samples, D), component labels) drawn as the estimators' ``sample``
        draws them with ``random_state=seed`` (None: the model's own)."""
        seed = self.params["random_state"] if seed is None else seed
        return sample_mixture(self.arrays["weights_"], self.means, self.arrays["covariances_"],
                              sklearn_layout(self.params["covariance_type"]), n_samples,
                              np.random.RandomState(seed))

    def _kernel_parameters(self, with_covariances):
        if self.kind == "BayesianGaussianMixture":
            return fitted_kernel_parameters({**self.params, **self.metadata["fitted"],
                                             **self.arrays})
        arrays = self.arrays
        covariances = arrays["covariances_"] if with_covariances else None
        return mixture_kernel_parameters(
            (arrays["weights_"], self.means, covariances, arrays["precisions_cholesky_"]),
            sklearn_layout(self.params["covariance_type"]))
