"""gmmfast without scikit-learn: the fallback base and validation behave like scikit-learn.

Each test runs in a fresh interpreter in which ``import sklearn`` fails, so the fallback code
paths of ``gmmfast._compat`` are the ones exercised, whatever this environment has installed.
"""

import subprocess
import sys
import tempfile
import textwrap

import pytest

BLOCK_SKLEARN = textwrap.dedent(
    """
    import sys
    sys.modules["sklearn"] = None  # any "import sklearn..." now raises ImportError
    import numpy as np
    import gmmfast
    from gmmfast import _compat
    assert not _compat.HAS_SKLEARN
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 6])
    """
)


def run_without_sklearn(body):
    code = BLOCK_SKLEARN + textwrap.dedent(body)
    # "python -c" puts its working directory first on sys.path: run it in an empty one, so
    # the installed gmmfast is imported even when the tests are run from a source checkout.
    with tempfile.TemporaryDirectory() as empty_dir:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                                text=True, timeout=120, cwd=empty_dir)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_fit_predict_score_without_sklearn():
    out = run_without_sklearn(
        """
        gm = gmmfast.GaussianMixture(2, random_state=0).fit(X)
        labels = gm.predict(X)
        assert labels.dtype == np.int64 and set(labels) == {0, 1}
        assert abs(gm.means_[:, 0].min() - 0) < 0.3 and abs(gm.means_[:, 0].max() - 6) < 0.3
        assert gm.converged_ and gm.n_features_in_ == 2
        proba = gm.predict_proba(X)
        assert np.allclose(proba.sum(axis=1), 1)
        assert np.isclose(gm.score(X), gm.score_samples(X).mean())
        assert gm.bic(X) > gm.aic(X) - 1e9
        Xs, ys = gm.sample(10)
        assert Xs.shape == (10, 2) and ys.shape == (10,)
        print(repr(gmmfast.GaussianMixture(3, covariance_type="diag")))
        """
    )
    assert "GaussianMixture(n_components=3, covariance_type='diag')" in out or (
        "covariance_type='diag'" in out and "n_components=3" in out
    )


def test_get_set_params_and_pickle_without_sklearn():
    run_without_sklearn(
        """
        import pickle
        gm = gmmfast.GaussianMixture(2)
        params = gm.get_params()
        assert params["n_components"] == 2 and params["n_threads"] is None
        assert len(params) == 19
        gm.set_params(covariance_type="tied", random_state=1)
        assert gm.covariance_type == "tied"
        try:
            gm.set_params(not_a_param=1)
        except ValueError as exc:
            assert "Invalid parameter 'not_a_param'" in str(exc)
        else:
            raise AssertionError("set_params accepted an unknown parameter")
        gm.fit(X)
        again = pickle.loads(pickle.dumps(gm))
        assert np.array_equal(again.predict(X), gm.predict(X))
        """
    )


@pytest.mark.parametrize(
    "setup, exception, message",
    [
        ("gmmfast.GaussianMixture(0).fit(X)", "InvalidParameterError",
         "The 'n_components' parameter of GaussianMixture must be an int in the range "
         "[1, inf). Got 0 instead."),
        ("gmmfast.GaussianMixture(covariance_type='bad').fit(X)", "InvalidParameterError",
         "The 'covariance_type' parameter of GaussianMixture must be a str among"),
        ("gmmfast.GaussianMixture(n_threads=0).fit(X)", "InvalidParameterError",
         "The 'n_threads' parameter of GaussianMixture must be an int in the range "
         "[1, inf) or None. Got 0 instead."),
        ("gmmfast.GaussianMixture(learning_decay=1.5).partial_fit(X)",
         "InvalidParameterError", "The 'learning_decay' parameter of GaussianMixture must be "
         "a float in the range [0.0, 1.0]. Got 1.5 instead."),
        ("gmmfast.GaussianMixture(2).partial_fit(X).partial_fit(X[:5, :1])", "ValueError",
         "X has 1 features, but GaussianMixture is expecting 2 features as input."),
        ("gmmfast.GaussianMixture().fit(X[:, 0])", "ValueError", "Expected 2D array"),
        ("gmmfast.GaussianMixture().fit(X[:1])", "ValueError",
         "Found array with 1 sample(s) (shape=(1, 2)) while a minimum of 2 is required by "
         "GaussianMixture."),
        ("gmmfast.GaussianMixture().fit(np.where(X > 5, np.nan, X))", "ValueError",
         "Input X contains NaN."),
        ("gmmfast.GaussianMixture().fit(np.where(X > 5, np.inf, X))", "ValueError",
         "Input X contains infinity"),
        # Scoring checks finiteness in the kernel, not in the validation: same messages.
        ("gmmfast.GaussianMixture().fit(X).predict(np.where(X > 5, np.nan, X))",
         "ValueError", "Input X contains NaN."),
        ("gmmfast.GaussianMixture().fit(X).predict_proba(np.where(X > 5, np.inf, X))",
         "ValueError", "Input X contains infinity or a value too large for dtype('float64')."),
        ("gmmfast.GaussianMixture().fit(X).score_samples(np.where(X > 5, -np.inf, X))",
         "ValueError", "Input X contains infinity"),
        ("gmmfast.GaussianMixture().fit(X).score(np.where(X > 5, np.nan, X))",
         "ValueError", "Input X contains NaN."),
        ("gmmfast.GaussianMixture().fit(X + 1j)", "ValueError", "Complex data not supported"),
        ("gmmfast.GaussianMixture().fit([['a', 'b'], ['c', 'd']])", "ValueError",
         "X must contain only numbers"),
        ("import scipy.sparse; gmmfast.GaussianMixture().fit(scipy.sparse.csr_matrix(X))",
         "TypeError", "Sparse data was passed for X, but dense data is required"),
        ("gmmfast.GaussianMixture().predict(X)", "NotFittedError",
         "This GaussianMixture instance is not fitted yet."),
        ("gmmfast.GaussianMixture().fit(X).predict(np.ones((3, 3)))", "ValueError",
         "X has 3 features, but GaussianMixture is expecting 2 features as input."),
        ("gmmfast.GaussianMixture().fit(X, sample_weight=-np.ones(len(X)))", "ValueError",
         "Negative values in data passed to `sample_weight`"),
        ("gmmfast.GaussianMixture().fit(X, sample_weight=np.zeros(len(X)))", "ValueError",
         "Sample weights must contain at least one non-zero number."),
        ("gmmfast.GaussianMixture().fit(X, sample_weight=np.ones(3))", "ValueError",
         "sample_weight.shape == (3,), expected (400,)!"),
    ],
)
def test_validation_messages_without_sklearn(setup, exception, message):
    run_without_sklearn(
        f"""
        try:
            {setup}
        except Exception as exc:
            assert type(exc).__name__ == {exception!r}, (type(exc), exc)
            assert {message!r} in str(exc), str(exc)
        else:
            raise AssertionError("no error raised")
        """
    )


def test_convergence_warning_and_feature_names_without_sklearn():
    run_without_sklearn(
        """
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gmmfast.GaussianMixture(2, max_iter=1, tol=0, random_state=0).fit(X)
        assert any(issubclass(w.category, _compat.ConvergenceWarning) for w in caught)
        try:
            import pandas as pd
        except ImportError:
            raise SystemExit(0)
        frame = pd.DataFrame(X, columns=["a", "b"])
        gm = gmmfast.GaussianMixture(2, random_state=0).fit(frame)
        assert list(gm.feature_names_in_) == ["a", "b"]
        try:
            gm.predict(frame[["b", "a"]])
        except ValueError as exc:
            assert "feature names should match" in str(exc)
        else:
            raise AssertionError("reordered columns accepted")
        """
    )


def test_bayesian_mixture_without_sklearn():
    out = run_without_sklearn(
        """
        from gmmfast import BayesianGaussianMixture
        model = BayesianGaussianMixture(n_components=5, random_state=0).fit(X)
        print(model.n_components_in_use_)
        try:
            BayesianGaussianMixture(weight_concentration_prior=-1.0).fit(X)
        except ValueError as error:
            print(error)
        """
    )
    in_use, message = out.strip().split("\n")
    assert in_use == "2"
    assert "'weight_concentration_prior' parameter of BayesianGaussianMixture" in message


def test_missing_values_and_the_imputer_without_sklearn():
    run_without_sklearn(
        """
        X[::3, 0] = np.nan
        X[1] = np.nan
        gm = gmmfast.GaussianMixture(2, nan_policy="omit", random_state=0).fit(X)
        assert np.isfinite(gm.score(X)) and gm.predict(X).shape == (400,)
        search = gmmfast.GaussianMixtureIC(n_components=[1, 2], nan_policy="omit").fit(X)
        assert search.n_components_ == 2
        imputed = gmmfast.GaussianMixtureImputer(gmmfast.GaussianMixture(2)).fit_transform(X)
        assert np.isfinite(imputed).all()
        try:
            gmmfast.GaussianMixture(nan_policy="skip").fit(X)
        except ValueError as exc:
            assert "nan_policy" in str(exc) and "'omit'" in str(exc)
        else:
            raise AssertionError("an unknown nan_policy was accepted")
        """
    )


def test_model_files_without_sklearn():
    out = run_without_sklearn(
        """
        import os, tempfile
        from gmmfast import BayesianGaussianMixture, GaussianMixture
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "m.npz")
            for model in (GaussianMixture(2, random_state=0).fit(X),
                          GaussianMixture(2, covariance_type="VEV", random_state=0).fit(X),
                          BayesianGaussianMixture(n_components=4, covariance_type="diag",
                                                  mean_prior=[1.0, 2.0],
                                                  random_state=0).fit(X)):
                model.save(path)
                loaded = gmmfast.load(path)
                assert type(loaded) is type(model)
                assert (loaded.score_samples(X) == model.score_samples(X)).all()
                print(type(loaded).__name__)
        """
    )
    assert out.split() == ["GaussianMixture", "GaussianMixture", "BayesianGaussianMixture"]
