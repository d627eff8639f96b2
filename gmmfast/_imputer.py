"""``GaussianMixtureImputer``: a scikit-learn transformer that fills in missing entries
(NaN) from a Gaussian mixture fitted over the observed entries (``nan_policy="omit"``)."""

from numbers import Integral

import numpy as np

from gmmfast._compat import (
    HAS_SKLEARN,
    NO_VALIDATION,
    BaseEstimator,
    check_is_fitted,
    check_random_state,
    fit_context,
    sklearn_constraints,
    validate_data,
)
from gmmfast._covariance_models import sklearn_layout
from gmmfast._dask_input import is_dask_collection
from gmmfast._engine import mixture_kernel_parameters
from gmmfast._missing import impute_missing
from gmmfast._selection import GaussianMixtureIC
from gmmfast._threads import single_threaded_blas

if HAS_SKLEARN:
    from sklearn.base import OneToOneFeatureMixin, TransformerMixin, clone
else:  # pragma: no cover - exercised without scikit-learn

    class TransformerMixin:
        """``fit_transform`` as scikit-learn's transformers have it."""

        def fit_transform(self, X, y=None, **fit_params):
            return self.fit(X, y, **fit_params).transform(X)

    class OneToOneFeatureMixin:
        """The output columns are the input columns (scikit-learn names them so)."""

    def clone(estimator):
        return type(estimator)(**estimator.get_params())


class GaussianMixtureImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Fill in missing entries (NaN) from a Gaussian mixture fitted to the observed ones.

    ``fit`` fits a gmmfast mixture with ``nan_policy="omit"`` (exact EM over the observed
    entries): by default the model chosen by BIC among 1 to 10 components and the four
    covariance types (:class:`gmmfast.GaussianMixtureIC`), or a clone of ``estimator``.
    ``transform`` replaces each NaN by its conditional mean under the mixture,
    Σ_k p(k | x_o) E[x_m | x_o, k] (the best guess in squared error); with
    ``sample_posterior=True`` by a draw from the conditional distribution p(x_m | x_o)
    instead (for multiple imputation: the imputed values keep the data's spread). A row with
    no observed entry gets the mixture's mean (or a draw from the mixture). Observed
    entries are never changed; the output has X's dtype (float32 or float64).

    On a dask array, ``fit`` fits ``estimator`` (a :class:`gmmfast.GaussianMixture` or
    :class:`gmmfast.BayesianGaussianMixture`: the search does not take dask arrays) block
    by block on the workers, and ``transform`` returns a lazy dask array, each block
    filled in on its worker (with ``sample_posterior``, each block draws from its own
    seed, so the draws depend on the chunking).

    Parameters
    ----------
    estimator : GaussianMixture, BayesianGaussianMixture or GaussianMixtureIC, default=None
        The mixture to fit (cloned, with ``nan_policy="omit"`` set); None: a
        ``GaussianMixtureIC(nan_policy="omit", random_state=random_state,
        n_threads=n_threads)``. The imputation uses the fitted ``weights_``, ``means_`` and
        ``covariances_`` (of ``best_estimator_`` for a search).
    sample_posterior : bool, default=False
        Draw each row's missing entries from their conditional distribution instead of
        taking its mean (scikit-learn's ``IterativeImputer`` has the same parameter).
    random_state : int, RandomState instance or None, default=None
        Seeds the draws of ``sample_posterior`` (each ``transform`` call with an int
        draws the same values) and the default estimator's initialisation.
    n_threads : int or None, default=None
        Threads for the compiled kernels; None uses the OpenMP default.

    Attributes
    ----------
    estimator_ : the fitted mixture
    n_features_in_ : int
    feature_names_in_ : ndarray of str
    """

    _constraints = {
        "estimator": NO_VALIDATION,  # checked in fit: a gmmfast mixture or None
        "sample_posterior": [("boolean",)],
        "random_state": [("random_state",)],
        "n_threads": [("interval", Integral, 1, True), None],
    }
    if HAS_SKLEARN:
        _parameter_constraints = sklearn_constraints(_constraints)

    def __init__(self, estimator=None, *, sample_posterior=False, random_state=None,
                 n_threads=None):
        self.estimator = estimator
        self.sample_posterior = sample_posterior
        self.random_state = random_state
        self.n_threads = n_threads

    @fit_context
    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture to the observed entries of X. Returns ``self``."""
        if is_dask_collection(X):
            return self._fit_dask(X, sample_weight)
        X = validate_data(self, X, dtype=[np.float64, np.float32],
                          ensure_all_finite="allow-nan")
        estimator = self._unfitted_mixture()
        estimator.fit(X, sample_weight=sample_weight)
        self.estimator_ = estimator
        return self

    def _fit_dask(self, X, sample_weight):
        """The mixture fitted to a dask array, which validates X from its metadata and
        block by block."""
        if self.estimator is None:
            raise TypeError(
                f"GaussianMixtureImputer's default estimator, the model search, does not "
                f"take Dask input ({type(X).__name__}): pass "
                f"estimator=gmmfast.GaussianMixture(n_components=...) to fit the dask "
                f"array on its workers, or X.compute() if it fits in memory."
            )
        estimator = self._unfitted_mixture().fit(X, sample_weight=sample_weight)
        self.estimator_ = estimator
        self.n_features_in_ = estimator.n_features_in_
        vars(self).pop("feature_names_in_", None)  # a dask array has no column names
        return self

    def _unfitted_mixture(self):
        if self.estimator is None:
            return GaussianMixtureIC(nan_policy="omit", random_state=self.random_state,
                                     n_threads=self.n_threads)
        if "nan_policy" not in self.estimator.get_params():
            raise ValueError(
                f"estimator must be a gmmfast mixture (GaussianMixture, "
                f"BayesianGaussianMixture or GaussianMixtureIC), got "
                f"{type(self.estimator).__name__}: its fit must take NaN "
                f"(nan_policy='omit')."
            )
        return clone(self.estimator).set_params(nan_policy="omit")

    def transform(self, X):
        """X with every NaN filled in (see the class docstring); a new array."""
        check_is_fitted(self)
        random_state = (check_random_state(self.random_state) if self.sample_posterior
                        else None)
        n_threads = 0 if self.n_threads is None else int(self.n_threads)
        if is_dask_collection(X):
            from gmmfast import _dask  # imported only once Dask input has been seen

            return _dask.impute_lazily(self, X, self._kernel_parameters(), random_state,
                                       n_threads)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32],
                          ensure_all_finite="allow-nan")
        with single_threaded_blas():
            return impute_missing(X, self._kernel_parameters(), random_state, n_threads)

    def _kernel_parameters(self):
        """The fitted mixture, with its covariances, in the kernels' form."""
        mixture = getattr(self.estimator_, "best_estimator_", self.estimator_)
        return mixture_kernel_parameters(
            (mixture.weights_, mixture.means_, mixture.covariances_,
             mixture.precisions_cholesky_), sklearn_layout(mixture.covariance_type))

    if HAS_SKLEARN:

        def __sklearn_tags__(self):
            tags = super().__sklearn_tags__()
            tags.input_tags.allow_nan = True
            tags.transformer_tags.preserves_dtype = ["float64", "float32"]
            return tags
