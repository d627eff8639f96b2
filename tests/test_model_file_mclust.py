"""Model files of mclust's fourteen covariance models: exact round trips, the command line,
older files, and the refusal of decompositions that are not the model's."""

import json
import os

import numpy as np
import pytest
from test_cli import ok, read_csv, write_blobs
from test_io import FITTED_ARRAYS, assert_same_model, members, rewrite

import gmmfast
from gmmfast import GaussianMixture
from gmmfast._covariance_models import COVARIANCE_MODELS, compose, sklearn_layout
from gmmfast._io import ModelFileError, read_model
from gmmfast._model_file import DECOMPOSITION_ARRAYS, checksum, describe_array
from gmmfast._mstep import precision_cholesky, precisions_from_cholesky

DIAGONAL_MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI")
# The models whose M-step iterates from the previous decomposition.
ITERATIVE_MODELS = ("VEI", "VEE", "EVE", "VVE", "VEV")


def fitted(X, covariance_type, **params):
    return GaussianMixture(3, covariance_type=covariance_type, random_state=0, n_threads=1,
                           **params).fit(X)


def assert_same_decomposition(loaded, original):
    for name in DECOMPOSITION_ARRAYS:
        a, b = getattr(loaded, name), getattr(original, name)
        if b is None:
            assert a is None, name
        else:
            assert a.dtype == b.dtype and a.shape == b.shape, name
            assert a.tobytes() == b.tobytes(), f"{name} differs"


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_MODELS)
def test_every_covariance_model_round_trips_exactly(tmp_path, X_small, covariance_type,
                                                     dtype):
    X = X_small.astype(dtype)
    model = fitted(X, covariance_type)
    path = tmp_path / "model.gmm"
    model.save(path)
    loaded, metadata = read_model(path)
    assert metadata["format_version"] == 3
    assert loaded.covariance_type == covariance_type
    assert_same_model(loaded, model)
    assert_same_decomposition(loaded, model)
    assert (loaded.orientations_ is None) == (covariance_type in DIAGONAL_MODELS)
    for method in ("predict", "predict_proba", "score_samples"):
        assert getattr(loaded, method)(X).tobytes() == getattr(model, method)(X).tobytes()
    assert loaded.bic(X) == model.bic(X)
    for a, b in zip(loaded.sample(50), model.sample(50)):
        assert a.tobytes() == b.tobytes()


def test_scikit_learn_names_are_written_as_version_2(tmp_path, X_small):
    # A file an older gmmfast (which reads versions 1 and 2) can read is written as such.
    path = tmp_path / "model.gmm"
    fitted(X_small, "full").save(path)
    _, metadata = read_model(path)
    assert metadata["format_version"] == 2
    assert not set(DECOMPOSITION_ARRAYS) & set(members(path))


@pytest.mark.filterwarnings("ignore::UserWarning")  # ConvergenceWarning after max_iter=2
@pytest.mark.parametrize("covariance_type", ITERATIVE_MODELS)
def test_a_loaded_model_warm_starts_as_the_fitted_one(tmp_path, X_small, covariance_type):
    # The decomposition is the warm start of the next M-step: it must come back exactly.
    model = fitted(X_small, covariance_type, max_iter=3)
    model.save(tmp_path / "model.gmm")
    loaded = gmmfast.load(tmp_path / "model.gmm")
    for estimator in (loaded, model):
        estimator.set_params(warm_start=True, max_iter=2).fit(X_small)
    assert_same_model(loaded, model)
    assert_same_decomposition(loaded, model)


def test_a_model_that_holds_its_given_precisions_round_trips(tmp_path, X_small):
    # max_iter=0 keeps the user's precisions_init, which need not meet EEV's constraints.
    rng = np.random.RandomState(0)
    factors = np.eye(4) + 0.1 * rng.randn(3, 4, 4)
    precisions = factors @ factors.transpose(0, 2, 1)
    model = fitted(X_small, "EEV", max_iter=0, precisions_init=precisions)
    assert np.ptp(model.volumes_) > 0.1
    path = tmp_path / "model.gmm"
    model.save(path)
    loaded = gmmfast.load(path)
    for name in FITTED_ARRAYS:
        assert getattr(loaded, name).tobytes() == getattr(model, name).tobytes(), name
    assert_same_decomposition(loaded, model)
    np.testing.assert_array_equal(loaded.precisions_init, precisions)
    # The same arrays said to be the result of an EM iteration are refused.
    forge(path, lambda content, meta: meta["fitted"].update(n_iter_=1))
    with pytest.raises(ModelFileError, match="volumes_ differ across components, which "
                                             "EEV requires to be equal"):
        gmmfast.load(path)


# --------------------------------------------------------------------------------------
# the command line
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", ["VEV", "EVI"])
def test_fit_saves_and_predict_reads_a_constrained_model(tmp_path, covariance_type):
    X = write_blobs(tmp_path / "blobs.csv")
    fit = ok(tmp_path, "fit", "blobs.csv", "--columns", "x,y,z", "-c", covariance_type,
             "-k", "3", "--save", "model.gmm", "--labels", "labels.csv")
    assert "Model written to model.gmm" in fit.stdout
    # The command line's default start.
    direct = fitted(X, covariance_type, init_params="multistart")
    loaded = gmmfast.load(tmp_path / "model.gmm")
    assert loaded.covariance_type == covariance_type
    np.testing.assert_allclose(loaded.means_, direct.means_, rtol=1e-12)
    np.testing.assert_allclose(loaded.volumes_, direct.volumes_, rtol=1e-12)

    predicted = ok(tmp_path, "predict", "model.gmm", "blobs.csv")
    assert predicted.stdout == (tmp_path / "labels.csv").read_text()
    _, values = read_csv(predicted.stdout)
    np.testing.assert_array_equal(values[:, 0], loaded.predict(X))
    np.testing.assert_array_equal(values[:, 1:], loaded.predict_proba(X))
    drawn = ok(tmp_path, "sample", "model.gmm", "-n", "5", "--seed", "1").stdout
    expected = loaded.set_params(random_state=1).sample(5)[0]
    np.testing.assert_array_equal(read_csv(drawn)[1][:, :3], expected)


def test_fit_saves_an_mclust_name_of_a_scikit_learn_model_under_that_name(tmp_path,
                                                                          monkeypatch):
    from gmmfast._cli import main
    from test_cli import old_faithful

    monkeypatch.chdir(tmp_path)
    assert main(["fit", "-c", "VVV", "-k", "2", "-q", "--save", "vvv.gmm"]) == 0
    loaded = gmmfast.load(tmp_path / "vvv.gmm")
    direct = GaussianMixture(2, covariance_type="VVV", init_params="multistart",
                             random_state=0).fit(old_faithful())
    assert loaded.covariance_type == "VVV"
    np.testing.assert_allclose(loaded.means_, direct.means_, rtol=1e-12)
    np.testing.assert_allclose(loaded.orientations_, direct.orientations_, rtol=1e-12)


# --------------------------------------------------------------------------------------
# a file of format version 2
# --------------------------------------------------------------------------------------


def test_a_version_2_file_loads_and_resumes_its_stream():
    # Written by gmmfast before format version 3: GaussianMixture(2, covariance_type="VVV",
    # random_state=0, n_threads=1), partial_fit on two halves of the rows below, saved
    # (as version 2 did) under the scikit-learn name "full".
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(40, 2), rng.randn(40, 2) + 5])[rng.permutation(80)]
    path = os.path.join(os.path.dirname(__file__), "data", "model_v2_vvv_stream.npz")
    model, metadata = read_model(path)
    assert metadata["format_version"] == 2 and metadata["extra"]["columns"] == ["x", "y"]
    assert model.covariance_type == "full" and not hasattr(model, "volumes_")
    np.testing.assert_allclose(model.means_, [[5.169207910059464, 5.293776248936702],
                                              [0.002987890185392684, -0.08507716087013874]],
                               rtol=1e-15)
    assert model.lower_bound_ == pytest.approx(-3.592097350643668, rel=1e-15)
    streamed = GaussianMixture(2, random_state=0, n_threads=1)
    streamed.partial_fit(X[:40]).partial_fit(X[40:])
    assert_same_model(model, streamed)
    model.partial_fit(X[:40])
    streamed.partial_fit(X[:40])
    assert_same_model(model, streamed)


# --------------------------------------------------------------------------------------
# refused files
# --------------------------------------------------------------------------------------


def forge(path, change):
    """Rewrite a model file through ``change(arrays, metadata)``, with every description
    and the checksum recomputed (as a careful forger would)."""
    content = members(path)
    meta = json.loads(str(content.pop("metadata")))
    change(content, meta)
    meta["arrays"] = {name: describe_array(array) for name, array in content.items()}
    meta["checksum"] = checksum(meta)
    rewrite(path, {"metadata": np.asarray(json.dumps(meta)), **content})


def saved(tmp_path, X, covariance_type):
    path = tmp_path / "model.gmm"
    fitted(X, covariance_type).save(path)
    return path


def edit(name, change):
    def apply(content, meta):
        content[name] = change(content[name].copy())
    return apply


def drop(name):
    return lambda content, meta: content.pop(name)


def swap_first_shapes(shapes):
    shapes[0, [0, 1]] = shapes[0, [1, 0]]
    return shapes


def stretch_first_axis(orientations):
    orientations[0, :, 0] *= 1.001
    return orientations


@pytest.mark.parametrize("covariance_type, change, match", [
    ("VEV", edit("volumes_", lambda v: v * 1.001), "covariances_ differ from the volumes_, "
                                                   "shapes_ and orientations_"),
    ("VEV", edit("shapes_", swap_first_shapes), "covariances_ differ from the volumes_"),
    ("EVI", edit("shapes_", swap_first_shapes), "covariances_ differ from the volumes_"),
    ("VII", edit("volumes_", lambda v: v[::-1].copy()), "covariances_ differ from the vol"),
    ("EEE", edit("orientations_", lambda o: np.stack([rotate_plane(a) for a in o])),
     "covariances_ differ from the volumes_"),
    ("VEV", edit("shapes_", lambda s: s * 1.001), "shapes_ do not multiply to 1"),
    ("VEV", edit("orientations_", stretch_first_axis), "orientations_ are not orthogonal"),
    ("VEV", edit("volumes_", lambda v: -v), "volumes_ and shapes_ must be positive"),
    ("EVI", edit("shapes_", lambda s: s * 0), "volumes_ and shapes_ must be positive"),
    ("VEV", edit("shapes_", lambda s: s * np.nan), "contain NaN or infinity"),
    ("VEV", edit("orientations_", lambda o: o * np.inf), "contain NaN or infinity"),
    ("VEV", edit("volumes_", lambda v: v[:2]),
     r"volumes_ should be float64 of shape \(3,\) for 3 VEV components in 4 dimensions"),
    ("VEV", edit("shapes_", lambda s: s.astype(np.float32)), "shapes_ should be float64"),
    ("VEV", edit("orientations_", lambda o: o[:, :, :3]), "orientations_ should be float"),
    ("VEV", drop("orientations_"), "'VEV' models hold volumes_, shapes_, orientations_; "
                                   "the file has volumes_, shapes_"),
    ("VEV", drop("volumes_"), "the file has shapes_, orientations_"),
    ("EVI", lambda content, meta: content.update(orientations_=np.ones((3, 4, 4))),
     "'EVI' models hold volumes_, shapes_; the file has volumes_, shapes_, orientations_"),
    ("VEV", lambda content, meta: meta["params"].update(covariance_type="full"),
     "'full' models hold no decomposition; the file has volumes_"),
    ("VEV", lambda content, meta: meta["params"].update(covariance_type="EEE"),
     r"covariances_ should be float64 of shape \(4, 4\)"),
    ("VEV", lambda content, meta: meta["params"].update(covariance_type="VVE"),
     "orientations_ differ across components, which VVE requires to be equal"),
    ("VEV", lambda content, meta: meta.update(format_version=2), r"unknown arrays \['orie"),
])
def test_an_invalid_decomposition_is_refused(tmp_path, X_small, covariance_type, change,
                                             match):
    path = saved(tmp_path, X_small, covariance_type)
    forge(path, change)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(path)


def breaking(name, component_change):
    """A change of ``name`` in component 1 only, with the covariances, precisions and their
    factors recomputed to match: a file consistent in every way but the constraint."""
    def apply(content, meta):
        content[name] = content[name].copy()
        content[name][1] = component_change(content[name][1])
        covariance_type = meta["params"]["covariance_type"]
        layout = sklearn_layout(covariance_type)
        covariances = compose(*(content.get(part) for part in DECOMPOSITION_ARRAYS))
        if layout == "spherical":
            covariances = covariances[:, 0]
        elif layout == "tied":
            covariances = covariances[0]
        cholesky = precision_cholesky(covariances, layout)
        content["covariances_"] = covariances
        content["precisions_cholesky_"] = cholesky
        content["precisions_"] = precisions_from_cholesky(cholesky, layout)
    return apply


def rotate_plane(orientations):
    cos, sin = np.cos(0.3), np.sin(0.3)
    rotation = np.eye(len(orientations))
    rotation[:2, :2] = [[cos, -sin], [sin, cos]]
    return orientations @ rotation


def reverse(shapes):
    return shapes[::-1].copy()


@pytest.mark.parametrize("covariance_type, change, match", [
    ("EVI", breaking("volumes_", lambda v: v * 2), "volumes_ differ across components, "
                                                   "which EVI requires to be equal"),
    ("EEV", breaking("volumes_", lambda v: v * 2), "volumes_ differ across"),
    ("EEI", breaking("shapes_", reverse), "shapes_ differ across components, which EEI"),
    ("VEV", breaking("shapes_", reverse), "shapes_ differ across components, which VEV"),
    ("VEE", breaking("orientations_", rotate_plane),
     "orientations_ differ across components, which VEE requires to be equal"),
    ("EVE", breaking("orientations_", rotate_plane), "orientations_ differ across"),
    ("EII", breaking("shapes_", lambda s: s * [2.0, 0.5, 1.0, 1.0]),
     "shapes_ are not all 1, which EII"),
])
def test_a_decomposition_that_breaks_the_constraints_is_refused(tmp_path, X_small,
                                                                covariance_type, change,
                                                                match):
    path = saved(tmp_path, X_small, covariance_type)
    forge(path, change)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(path)


def test_the_forger_of_the_constraint_tests_writes_valid_files(tmp_path, X_small):
    # The same recomputation without breaking anything loads: the refusals above are the
    # constraints', not the recomputation's.
    for covariance_type in ("EVI", "EEV", "EEI", "VEV", "VEE", "EVE", "EII"):
        path = saved(tmp_path, X_small, covariance_type)
        forge(path, breaking("volumes_", lambda v: v))
        gmmfast.load(path)
