"""The command line's view of a model file (``SavedMixture``): the same probabilities and
samples as the estimator ``gmmfast.load`` builds, for every kind and covariance type."""

import numpy as np
import pytest

import gmmfast
from gmmfast._model_file import ModelFileError
from gmmfast._saved_mixture import SavedMixture

rng = np.random.RandomState(0)
X = np.vstack([rng.randn(120, 3) + centre for centre in ([0, 0, 0], [6, 0, 2], [0, 5, 5])])
X32 = X.astype(np.float32)

MODELS = [
    *(gmmfast.GaussianMixture(3, covariance_type=t, random_state=0)
      for t in ("full", "tied", "diag", "spherical", "VEV", "EEI")),
    *(gmmfast.BayesianGaussianMixture(n_components=5, covariance_type=t, random_state=0,
                                      weight_concentration_prior_type=prior)
      for t in ("full", "tied", "diag", "spherical")
      for prior in ("dirichlet_process", "dirichlet_distribution")),
]


@pytest.fixture(params=MODELS, ids=repr)
def saved(request, tmp_path):
    """(the estimator gmmfast.load gives, the SavedMixture of the same file)."""
    path = tmp_path / "model.npz"
    data = X32 if "spherical" in repr(request.param) else X  # one float32 model per kind
    request.param.fit(data).save(path)
    return gmmfast.load(path), SavedMixture(path), data


def test_probabilities_are_predict_proba(saved):
    model, mixture, data = saved
    rows = np.ascontiguousarray(data[::7])
    np.testing.assert_array_equal(mixture.probabilities(rows), model.predict_proba(rows))


def test_probabilities_of_rows_with_missing_entries_are_predict_proba(saved):
    model, mixture, data = saved
    rows = data[::7].copy()
    rows[::3, 1] = np.nan
    rows[1::3, [0, 2]] = np.nan
    np.testing.assert_array_equal(mixture.probabilities(rows, nan_policy="omit"),
                                  model.set_params(nan_policy="omit").predict_proba(rows))


@pytest.mark.parametrize("seed", [None, 4])
def test_samples_are_the_estimators(saved, seed):
    model, mixture, _ = saved
    # None: the model's own random_state (0, as fitted).
    X_model, labels_model = model.set_params(random_state=seed or 0).sample(50)
    X_saved, labels_saved = mixture.sample(50, seed)
    np.testing.assert_array_equal(X_saved, X_model)
    np.testing.assert_array_equal(labels_saved, labels_model)


def test_a_damaged_file_is_refused_as_load_refuses_it(tmp_path):
    path = tmp_path / "model.npz"
    gmmfast.GaussianMixture(2, random_state=0).fit(X).save(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as from_load:
        gmmfast.load(path)
    with pytest.raises(ModelFileError) as from_saved:
        SavedMixture(path)
    assert str(from_saved.value) == str(from_load.value)
