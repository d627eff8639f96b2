"""scikit-learn when it is installed, a small faithful stand-in when it is not.

With scikit-learn importable, gmmfast's estimators are real scikit-learn estimators: they
derive from its ``BaseEstimator``/``DensityMixin``, validate parameters through its
``_parameter_constraints`` machinery and validate data with its ``validate_data`` (so
feature names, DataFrames, error texts and tags are scikit-learn's own). Without it, the
fallbacks below give the same behaviour and messages for NumPy input.
"""

import functools
import inspect
import numbers
import warnings

import numpy as np

try:  # pragma: no cover - exercised by the environment, not by a branch in one test run
    from sklearn.base import BaseEstimator, DensityMixin, _fit_context
    from sklearn.exceptions import ConvergenceWarning, NotFittedError
    from sklearn.utils import assert_all_finite
    from sklearn.utils._param_validation import (
        Interval,
        InvalidParameterError,
        StrOptions,
    )
    from sklearn.utils.validation import (
        _check_sample_weight,
        check_is_fitted,
        check_random_state,
        validate_data,
    )

    HAS_SKLEARN = True
except ImportError:  # pragma: no cover
    HAS_SKLEARN = False

    # Same names and bases as scikit-learn's, so ``except`` clauses written for
    # scikit-learn keep working.
    class InvalidParameterError(ValueError, TypeError):
        """A constructor parameter has an invalid type or value."""

    class ConvergenceWarning(UserWarning):
        """EM stopped at max_iter before the change of the lower bound fell below tol."""

    class NotFittedError(ValueError, AttributeError):
        """The estimator is used before ``fit``."""


class _FallbackBaseEstimator:
    """get_params / set_params / repr following scikit-learn's conventions."""

    @classmethod
    def _get_param_names(cls):
        signature = inspect.signature(cls.__init__)
        return sorted(
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind != p.VAR_KEYWORD
        )

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {self}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
        }
        changed = [
            f"{name}={value!r}"
            for name, value in self.get_params().items()
            if not _same_value(value, defaults.get(name))
        ]
        return f"{type(self).__name__}({', '.join(changed)})"


def _same_value(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is b
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:
        return False


class _FallbackDensityMixin:
    """Marks a density estimator (scikit-learn's DensityMixin has no behaviour we need)."""


def _describe_interval(kind, low, closed_low, high=None, closed_high=False):
    name = "an int" if kind is numbers.Integral else "a float"
    left = "[" if closed_low else "("
    right = f"{high}]" if closed_high else f"{'inf' if high is None else high})"
    return f"{name} in the range {left}{low}, {right}"


def validate_params(estimator):
    """Check every constructor parameter against ``estimator._constraints``."""
    name = type(estimator).__name__
    for param, allowed in estimator._constraints.items():
        if allowed == NO_VALIDATION:
            continue
        value = getattr(estimator, param)
        for constraint in allowed:
            if _satisfies(value, constraint):
                break
        else:
            described = [_describe(c) for c in allowed]
            text = described[0] if len(described) == 1 else (
                f"{', '.join(described[:-1])} or {described[-1]}"
            )
            raise InvalidParameterError(
                f"The {param!r} parameter of {name} must be {text}. Got {value!r} instead."
            )


def _satisfies(value, constraint):
    if constraint is None:
        return value is None
    kind = constraint[0]
    if kind == "interval":
        _, number_type, low, closed_low, *upper = constraint
        if isinstance(value, bool) or not isinstance(value, number_type):
            return False
        above = value >= low if closed_low else value > low
        if upper:
            high, closed_high = upper
            return above and (value <= high if closed_high else value < high)
        return above
    if kind == "options":
        return isinstance(value, str) and value in constraint[1]
    if kind == "boolean":
        return isinstance(value, (bool, np.bool_))
    if kind == "array-like":
        return hasattr(value, "__len__") or hasattr(value, "shape") or hasattr(
            value, "__array__"
        )
    if kind == "random_state":
        return value is None or isinstance(value, (numbers.Integral, np.random.RandomState))
    if kind == "verbose":
        return isinstance(value, (numbers.Integral, bool, np.bool_)) and value >= 0
    raise AssertionError(f"unknown constraint {constraint!r}")


def _describe(constraint):
    if constraint is None:
        return "None"
    kind = constraint[0]
    if kind == "interval":
        return _describe_interval(*constraint[1:])
    if kind == "options":
        return f"a str among {set(sorted(constraint[1]))}"
    return {
        # numpy.bool (NumPy 2) was numpy.bool_ before: name it as scikit-learn does.
        "boolean": f"an instance of 'bool' or an instance of 'numpy.{np.bool_.__name__}'",
        "array-like": "an array-like",
        "random_state": "None, an int or an instance of 'numpy.random.RandomState'",
        "verbose": "an int in the range [0, inf) or a bool",
    }[kind]


# gmmfast declares each estimator's parameter constraints once, as plain tuples
# (``("interval", Integral, 1, True)`` = an int >= 1, ``("interval", Real, 0, True, 1, True)``
# = a float in [0, 1], ``("options", {...})``, ``("boolean",)``,
# ``("array-like",)``, ``("random_state",)``, ``("verbose",)``, ``None``, or NO_VALIDATION for
# a parameter the estimator checks itself); ``sklearn_constraints`` turns the table into
# scikit-learn's ``_parameter_constraints`` and the fallback validator reads it directly.
NO_VALIDATION = "no_validation"


def sklearn_constraints(constraints):
    """scikit-learn's ``_parameter_constraints`` for a gmmfast constraint table."""
    return {
        name: allowed if allowed == NO_VALIDATION else [_to_sklearn(c) for c in allowed]
        for name, allowed in constraints.items()
    }


def _to_sklearn(constraint):
    if constraint is None:
        return None
    kind = constraint[0]
    if kind == "interval":
        _, number_type, low, closed_low, *upper = constraint
        high, closed_high = upper or (None, False)
        closed = {(True, True): "both", (True, False): "left", (False, True): "right",
                  (False, False): "neither"}[closed_low, closed_high]
        return Interval(number_type, low, high, closed=closed)
    if kind == "options":
        return StrOptions(set(constraint[1]))
    return kind  # "boolean", "array-like", "random_state", "verbose": scikit-learn's names


def _fallback_fit_context(fit_method):
    @functools.wraps(fit_method)
    def wrapper(estimator, *args, **kwargs):
        validate_params(estimator)
        return fit_method(estimator, *args, **kwargs)

    return wrapper


def _fallback_check_random_state(seed):
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


def _fallback_check_is_fitted(estimator):
    fitted = [v for v in vars(estimator) if v.endswith("_") and not v.startswith("__")]
    if not fitted:
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this estimator."
        )


def _feature_names(X):
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(list(columns), dtype=object)
    if len(names) and all(isinstance(n, str) for n in names):
        return names
    if any(isinstance(n, str) for n in names):
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            "but your input has mixed types. Convert all feature names to str."
        )
    return None


def check_array_fallback(X, *, name="X", estimator_name="GaussianMixture",
                         ensure_min_samples=1, dtype=(np.float64, np.float32),
                         ensure_2d=True, ensure_all_finite=True):
    """Dense, finite, float32/float64 array with scikit-learn's messages (no sklearn needed)."""
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"Sparse data was passed for {name}, but dense data is required. Use '.toarray()' "
            "to convert to a dense numpy array."
        )
    array = np.asarray(X)
    if np.iscomplexobj(array):
        raise ValueError(f"Complex data not supported\n{array}\n")
    if array.dtype not in dtype:
        try:
            array = array.astype(dtype[0])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must contain only numbers; {exc}") from None
    if ensure_2d and array.ndim != 2:
        kind = "scalar array" if array.ndim == 0 else f"{array.ndim}D array"
        raise ValueError(
            f"Expected 2D array, got {kind} instead:\narray={array!r}.\n"
            "Reshape your data either using array.reshape(-1, 1) if your data has a single "
            "feature or array.reshape(1, -1) if it contains a single sample."
        )
    n_samples = array.shape[0] if array.ndim else 1
    if n_samples < ensure_min_samples:
        raise ValueError(
            f"Found array with {n_samples} sample(s) (shape={array.shape}) while a minimum "
            f"of {ensure_min_samples} is required by {estimator_name}."
        )
    if ensure_2d and array.shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={array.shape}) while a minimum of 1 is "
            f"required by {estimator_name}."
        )
    if ensure_all_finite == "allow-nan":  # scikit-learn's value: NaN passes, infinity not
        if np.isinf(array).any():
            raise ValueError(
                f"Input {name} contains infinity or a value too large for {array.dtype!r}.")
    elif ensure_all_finite and not np.all(np.isfinite(array)):
        problem = "NaN" if np.isnan(array).any() else (
            f"infinity or a value too large for {array.dtype!r}"
        )
        raise ValueError(f"Input {name} contains {problem}.")
    return np.ascontiguousarray(array)


def assert_finite(values, name, estimator_name):
    """The NaN / infinity error of scikit-learn's validation (its own, when installed)."""
    if HAS_SKLEARN:
        assert_all_finite(values, allow_nan=False, estimator_name=estimator_name,
                          input_name=name)
    else:
        check_array_fallback(values, name=name, estimator_name=estimator_name,
                             ensure_min_samples=0, ensure_2d=values.ndim == 2)


def _fallback_validate_data(estimator, X, *, reset=True, dtype=(np.float64, np.float32),
                            ensure_min_samples=1, ensure_all_finite=True):
    names = _feature_names(X)
    array = check_array_fallback(
        X, estimator_name=type(estimator).__name__, ensure_min_samples=ensure_min_samples,
        dtype=tuple(dtype) if not isinstance(dtype, str) else (np.float64, np.float32),
        ensure_all_finite=ensure_all_finite,
    )
    if reset:
        estimator.n_features_in_ = array.shape[1]
        if names is not None:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return array
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is not None and names is None:
        warnings.warn(
            f"X does not have valid feature names, but {type(estimator).__name__} was "
            "fitted with feature names", UserWarning,
        )
    elif fitted_names is None and names is not None:
        warnings.warn(
            f"X has feature names, but {type(estimator).__name__} was fitted without "
            "feature names", UserWarning,
        )
    elif names is not None and not np.array_equal(names, fitted_names):
        raise ValueError(
            "The feature names should match those that were passed during fit."
        )
    if array.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {array.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return array


def check_sample_weight_shape(shape, n_samples):
    """scikit-learn's errors for sample weights that are not of shape (n_samples,)."""
    if len(shape) != 1:
        raise ValueError(
            f"Sample weights must be 1D array or scalar, got {len(shape)}D array. "
            f"Expected either a scalar value or a 1D array of length {n_samples}."
        )
    if tuple(shape) != (n_samples,):
        raise ValueError(f"sample_weight.shape == {tuple(shape)}, expected {(n_samples,)}!")


def _fallback_check_sample_weight(sample_weight, X, *, dtype=np.float64,
                                  ensure_non_negative=False):
    n_samples = X.shape[0]
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    if isinstance(sample_weight, numbers.Number):
        weights = np.full(n_samples, sample_weight, dtype=dtype)
    else:
        weights = check_array_fallback(
            sample_weight, name="sample_weight", ensure_2d=False, dtype=(dtype,)
        )
        check_sample_weight_shape(weights.shape, n_samples)
    if np.all(weights == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    if ensure_non_negative and np.any(weights < 0):
        raise ValueError("Negative values in data passed to `sample_weight`")
    return weights


if not HAS_SKLEARN:  # pragma: no cover
    BaseEstimator = _FallbackBaseEstimator
    DensityMixin = _FallbackDensityMixin
    check_random_state = _fallback_check_random_state
    check_is_fitted = _fallback_check_is_fitted
    validate_data = _fallback_validate_data
    _check_sample_weight = _fallback_check_sample_weight
    Interval = StrOptions = None

    def fit_context(fit_method):
        return _fallback_fit_context(fit_method)

else:

    def fit_context(fit_method):
        return _fit_context(prefer_skip_nested_validation=True)(fit_method)


class restored_on_failure:
    """Context manager: if the body raises (anything, Ctrl-C included), the estimator's
    attributes are put back as they were, so a failed refit leaves the old model usable."""

    __slots__ = ("_estimator", "_state")

    def __init__(self, estimator):
        self._estimator = estimator

    def __enter__(self):
        self._state = dict(vars(self._estimator))
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            vars(self._estimator).clear()
            vars(self._estimator).update(self._state)
        return False


def check_sample_weight(sample_weight, X):
    """Validated float64 (n_samples,) weights: finite, non-negative, not all zero."""
    weights = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    # scikit-learn < 1.9 accepts all-zero weights: refuse them with 1.9's message anyway.
    if np.all(weights == 0):
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return weights
