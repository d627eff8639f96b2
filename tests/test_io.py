"""Model files: GaussianMixture.save / gmmfast.load round-trip exactly and refuse bad files."""

import io
import json
import os
import stat
import struct
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest

import gmmfast
from gmmfast import BayesianGaussianMixture, GaussianMixture
from gmmfast._compat import HAS_SKLEARN
from gmmfast._io import ModelFileError, read_model, save_model
from gmmfast._model_file import FORMAT_VERSION, checksum, describe_array

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
FITTED_ARRAYS = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")


def fitted(X, covariance_type="full", **params):
    return GaussianMixture(3, covariance_type=covariance_type, random_state=0, n_threads=1,
                           **params).fit(X)


def assert_same_model(loaded, original):
    for name in FITTED_ARRAYS:
        a, b = getattr(loaded, name), getattr(original, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), f"{name} differs"
    assert type(loaded.lower_bound_) is type(original.lower_bound_)
    assert loaded.lower_bound_.tobytes() == original.lower_bound_.tobytes()
    assert len(loaded.lower_bounds_) == len(original.lower_bounds_)
    for a, b in zip(loaded.lower_bounds_, original.lower_bounds_):
        assert type(a) is type(b) and a.tobytes() == b.tobytes()
    assert loaded.converged_ is original.converged_
    assert loaded.n_iter_ == original.n_iter_ and type(loaded.n_iter_) is int
    assert loaded.n_features_in_ == original.n_features_in_
    params, expected = loaded.get_params(), original.get_params()
    assert params == expected


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_round_trip_is_exact(tmp_path, X_small, covariance_type, dtype):
    X = X_small.astype(dtype)
    model = fitted(X, covariance_type)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = gmmfast.load(path)
    assert isinstance(loaded, GaussianMixture)
    assert_same_model(loaded, model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    assert loaded.bic(X) == model.bic(X)
    np.testing.assert_array_equal(loaded.sample(20)[0], model.sample(20)[0])


def test_fortran_ordered_arrays_round_trip(tmp_path, X_small):
    model = fitted(X_small, "full")
    model.means_ = np.asfortranarray(model.means_)  # stored with fortran_order: True
    model.covariances_ = np.asfortranarray(model.covariances_)
    model.save(tmp_path / "model.npz")
    loaded = gmmfast.load(tmp_path / "model.npz")
    assert_same_model(loaded, model)
    assert loaded.means_.flags.writeable


def test_the_file_has_exactly_the_given_name(tmp_path, X_small):
    path = tmp_path / "my.model"
    fitted(X_small).save(str(path))
    assert path.exists() and not (tmp_path / "my.model.npz").exists()
    assert zipfile.is_zipfile(path)


@pytest.mark.filterwarnings("ignore::UserWarning")  # ConvergenceWarning after max_iter=5
def test_feature_names_inits_and_extra_metadata_round_trip(tmp_path, X_small, make_inits):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X_small, columns=["a", "b", "c", "d"])
    inits = make_inits(X_small, 3, "diag")
    model = GaussianMixture(3, covariance_type="diag", max_iter=5, **inits).fit(frame)
    path = tmp_path / "m.npz"
    save_model(model, path, extra={"columns": ["a", "b", "c", "d"], "note": "x"})
    loaded, metadata = read_model(path)
    assert loaded.feature_names_in_.dtype == object
    assert loaded.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    for name in ("weights_init", "means_init", "precisions_init"):
        np.testing.assert_array_equal(getattr(loaded, name), inits[name])
    assert metadata["extra"] == {"columns": ["a", "b", "c", "d"], "note": "x"}
    assert metadata["format_version"] == 2  # the version that holds a "diag" model
    assert metadata["gmmfast_version"] == gmmfast.__version__
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


def test_a_random_state_instance_is_stored_as_none(tmp_path, X_small):
    model = GaussianMixture(2, random_state=np.random.RandomState(0)).fit(X_small)
    model.save(tmp_path / "m.npz")
    assert gmmfast.load(tmp_path / "m.npz").random_state is None


def test_an_unfitted_model_cannot_be_saved(tmp_path):
    from gmmfast._compat import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianMixture().save(tmp_path / "m.npz")


def test_the_best_model_of_a_search_can_be_saved(tmp_path, X_small):
    search = gmmfast.GaussianMixtureIC(n_components=[2, 3], random_state=0,
                                       covariance_type="full,VVV,EEE,VEV,EVI").fit(X_small)
    search.best_estimator_.save(tmp_path / "best.npz")
    loaded = gmmfast.load(tmp_path / "best.npz")
    np.testing.assert_array_equal(loaded.predict(X_small), search.predict(X_small))


# --------------------------------------------------------------------------------------
# Bayesian mixtures
# --------------------------------------------------------------------------------------

BAYESIAN_ARRAYS = FITTED_ARRAYS + ("mean_precision_", "mean_prior_")
PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")


def fitted_bayesian(X, covariance_type="full", prior_type="dirichlet_process", **params):
    params.setdefault("max_iter", 500)
    return BayesianGaussianMixture(n_components=5, covariance_type=covariance_type,
                                   weight_concentration_prior_type=prior_type,
                                   random_state=0, n_threads=1, **params).fit(X)


def assert_same_value(a, b, name):
    """Equal bit for bit, of the same type (and dtype and shape for arrays)."""
    assert type(a) is type(b), name
    if isinstance(a, tuple):
        assert len(a) == len(b), name
        for x, y in zip(a, b):
            assert_same_value(x, y, name)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, name
        if a.dtype == object:
            assert a.tolist() == b.tolist(), f"{name} differs"
        else:
            assert a.tobytes() == b.tobytes(), f"{name} differs"
    else:
        assert a == b, name


def assert_same_bayesian_model(loaded, original):
    assert type(loaded) is BayesianGaussianMixture
    fitted_names = sorted(name for name in vars(original) if name.endswith("_")
                          and not name.startswith("_"))
    assert sorted(name for name in vars(loaded) if name.endswith("_")
                  and not name.startswith("_")) == fitted_names
    for name in fitted_names:
        if name == "lower_bounds_":
            assert len(loaded.lower_bounds_) == len(original.lower_bounds_)
            for a, b in zip(loaded.lower_bounds_, original.lower_bounds_):
                assert_same_value(a, b, name)
        else:
            assert_same_value(getattr(loaded, name), getattr(original, name), name)
    loaded_params, original_params = loaded.get_params(), original.get_params()
    for name, value in original_params.items():
        if isinstance(value, (np.ndarray, list)):  # stored as float64 arrays
            np.testing.assert_array_equal(loaded_params[name], value)
        else:
            assert loaded_params[name] == value, name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_a_bayesian_mixture_round_trips_exactly(tmp_path, X_small, covariance_type,
                                                prior_type, dtype):
    X = X_small.astype(dtype)
    model = fitted_bayesian(X, covariance_type, prior_type)
    path = tmp_path / "bayes.npz"
    model.save(path)
    loaded, metadata = read_model(path)
    assert metadata["kind"] == "BayesianGaussianMixture"
    assert metadata["format_version"] == 2  # a version 2 reader reads it
    assert_same_bayesian_model(loaded, model)
    assert loaded.means_.dtype == dtype
    if HAS_SKLEARN:  # every fitted attribute scikit-learn's estimator has
        from sklearn.mixture import BayesianGaussianMixture as SklearnBayesian

        reference = SklearnBayesian(n_components=2, covariance_type=covariance_type,
                                    weight_concentration_prior_type=prior_type,
                                    max_iter=100).fit(X[:50])
        assert {name for name in vars(reference) if name.endswith("_")} <= set(vars(loaded))
    assert loaded.n_components_in_use_ == model.n_components_in_use_
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    assert loaded.score(X) == model.score(X)
    np.testing.assert_array_equal(loaded.sample(30)[0], model.sample(30)[0])


@pytest.mark.parametrize("covariance_type, covariance_prior", [
    ("full", 2.0 * np.eye(4)),
    ("tied", np.eye(4) + 0.5),
    ("diag", np.array([1.0, 2.0, 3.0, 4.0])),
    ("spherical", 1.5),
])
def test_given_priors_and_feature_names_round_trip(tmp_path, X_small, covariance_type,
                                                   covariance_prior):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(X_small, columns=["a", "b", "c", "d"])
    model = fitted_bayesian(frame, covariance_type, weight_concentration_prior=0.01,
                            mean_precision_prior=0.5, mean_prior=[1, 2, 3, 4],
                            degrees_of_freedom_prior=6.5,
                            covariance_prior=covariance_prior)
    model.save(tmp_path / "m.npz")
    loaded = gmmfast.load(tmp_path / "m.npz")
    assert_same_bayesian_model(loaded, model)
    assert loaded.feature_names_in_.tolist() == ["a", "b", "c", "d"]
    assert loaded.covariance_prior_ == pytest.approx(model.covariance_prior_)
    np.testing.assert_array_equal(loaded.predict(frame), model.predict(frame))


@pytest.mark.filterwarnings("ignore::UserWarning")  # ConvergenceWarning after max_iter=3
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_a_loaded_bayesian_mixture_warm_starts_and_refits(tmp_path, X_small,
                                                          covariance_type, prior_type):
    X = X_small.astype(np.float32)
    model = fitted_bayesian(X, covariance_type, prior_type, max_iter=3, warm_start=True)
    model.save(tmp_path / "m.npz")
    loaded = gmmfast.load(tmp_path / "m.npz")
    model.fit(X)  # continues from its parameters
    loaded.fit(X)
    assert_same_bayesian_model(loaded, model)
    fresh = fitted_bayesian(X, covariance_type, prior_type, max_iter=3)
    loaded.set_params(warm_start=False).fit(X)
    np.testing.assert_array_equal(loaded.means_, fresh.means_)


def test_a_bayesian_mixture_that_ran_no_iteration_round_trips(tmp_path, X_small):
    model = fitted_bayesian(X_small, max_iter=0)
    model.save(tmp_path / "m.npz")
    loaded = gmmfast.load(tmp_path / "m.npz")
    assert loaded.lower_bound_ == -np.inf and loaded.lower_bounds_ == []
    assert_same_bayesian_model(loaded, model)


def test_save_is_defined_once_for_every_estimator(tmp_path, X_small):
    from gmmfast._gaussian_mixture import MixtureEstimator

    assert "save" in vars(MixtureEstimator)
    assert "save" not in vars(GaussianMixture)
    assert "save" not in vars(BayesianGaussianMixture)

    class Tuned(BayesianGaussianMixture):
        pass

    Tuned(n_components=2, random_state=0).fit(X_small).save(tmp_path / "m.npz")
    assert type(gmmfast.load(tmp_path / "m.npz")) is BayesianGaussianMixture

    with pytest.raises(TypeError, match="int has no model file format"):
        save_model(3, tmp_path / "n.npz")


# --------------------------------------------------------------------------------------
# files of format version 1, written before model files had a kind
# --------------------------------------------------------------------------------------

DATA = os.path.join(os.path.dirname(__file__), "data")


def test_a_version_1_file_loads_as_a_gaussian_mixture(tmp_path):
    # Written by gmmfast 0.1.0 (format version 1): GaussianMixture(2, random_state=0,
    # n_threads=1) on two unit blobs at (0, 0) and (5, 5), 40 rows each, with the column
    # names the command line stores.
    path = os.path.join(DATA, "model_v1_full.npz")
    model, metadata = read_model(path)
    assert metadata["format_version"] == 1 and "kind" not in metadata
    assert metadata["extra"]["columns"] == ["x", "y"]
    assert type(model) is GaussianMixture
    assert model.get_params()["n_components"] == 2 and model.random_state == 0
    np.testing.assert_allclose(model.means_, [[5.036286123255739, 5.439320066613383],
                                              [-0.0088842539013188, -0.05220109414370285]],
                               rtol=1e-15)
    assert model.lower_bound_ == pytest.approx(-3.5171530638024144, rel=1e-15)
    np.testing.assert_array_equal(model.predict([[0.0, 0.0], [5.0, 5.0]]), [1, 0])
    # Saved again, it is a version 2 file of kind GaussianMixture with the same model.
    model.save(tmp_path / "again.npz")
    again, metadata = read_model(tmp_path / "again.npz")
    assert metadata["format_version"] == 2
    assert metadata["kind"] == "GaussianMixture"
    assert_same_model(again, model)


def test_a_version_1_float32_file_loads(tmp_path):
    model = gmmfast.load(os.path.join(DATA, "model_v1_tied_float32.npz"))
    assert type(model) is GaussianMixture and model.covariance_type == "tied"
    assert model.means_.dtype == np.float32 and type(model.lower_bound_) is np.float32
    np.testing.assert_array_equal(model.means_, np.array(
        [[5.036285, 5.4393187], [-0.008884619, -0.052201916]], dtype=np.float32))


# --------------------------------------------------------------------------------------
# a stream of partial_fit calls
# --------------------------------------------------------------------------------------

STREAM_MEMBERS = ("stream_nk", "stream_sums", "stream_scatter", "stream_shifts",
                  "stream_weight", "stream_n_batches")


def streamed(model, X, n_batches, batch_rows=150):
    for start in range(0, n_batches * batch_rows, batch_rows):
        model.partial_fit(X[start:start + batch_rows])
    return model


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES + ("VVV", "VEV", "EEI"))
def test_a_saved_stream_resumes_as_if_it_never_stopped(tmp_path, X_small, covariance_type,
                                                        dtype):
    X = X_small.astype(dtype)
    make = lambda: GaussianMixture(3, covariance_type=covariance_type, random_state=0)  # noqa: E731
    whole = streamed(make(), X, 4)
    path = tmp_path / "stream.npz"
    streamed(make(), X, 2).save(path)
    assert set(STREAM_MEMBERS) <= set(members(path))
    resumed = gmmfast.load(path)
    for start in (300, 450):
        resumed.partial_fit(X[start:start + 150])
    for name in FITTED_ARRAYS:
        assert getattr(resumed, name).tobytes() == getattr(whole, name).tobytes(), name
    assert resumed.lower_bound_.tobytes() == whole.lower_bound_.tobytes()
    assert resumed.n_iter_ == whole.n_iter_ == 4


def test_a_model_without_a_stream_saves_no_stream(tmp_path, X_small):
    path = tmp_path / "model.npz"
    fitted(X_small).save(path)
    assert not set(STREAM_MEMBERS) & set(members(path))
    # fit ends a stream: its model file holds none either
    model = streamed(GaussianMixture(3, random_state=0), X_small, 2).fit(X_small)
    model.save(path)
    assert not set(STREAM_MEMBERS) & set(members(path))
    loaded = gmmfast.load(path).partial_fit(X_small[:150])
    expected = model.partial_fit(X_small[:150])
    assert loaded.means_.tobytes() == expected.means_.tobytes()


@pytest.fixture
def stream_file(tmp_path, X_small):
    path = tmp_path / "stream.npz"
    streamed(GaussianMixture(3, covariance_type="full", random_state=0), X_small, 2).save(path)
    return path


def set_first(value):
    def change(a):
        a.reshape(-1)[0] = value
        return a
    return change


@pytest.mark.parametrize("arrays, match", [
    ({"stream_nk": lambda a: a[:2]}, r"stream_nk should be float64 of shape \(3,\) for the "
                                     "running statistics of 3 full components in 4 dim"),
    ({"stream_scatter": lambda a: np.diagonal(a, axis1=1, axis2=2).copy()},
     r"stream_scatter should be float64 of shape \(3, 4, 4\)"),
    ({"stream_sums": lambda a: a.astype(np.float32)}, "stream_sums should be float64"),
    ({"stream_shifts": lambda a: a[:, :3]}, r"stream_shifts should be float64 of shape"),
    ({"stream_weight": lambda a: a.reshape(1)}, r"stream_weight should be float64 of shape"),
    ({"stream_n_batches": lambda a: a.astype(np.float64)}, "stream_n_batches should be an "
                                                            "int64 number of batches"),
    ({"stream_sums": set_first(np.nan)}, "running statistics of online EM contain NaN"),
    ({"stream_scatter": set_first(np.inf)}, "running statistics of online EM contain NaN"),
    ({"stream_weight": set_first(np.inf)}, "running statistics of online EM contain NaN"),
    ({"stream_nk": set_first(-1.0)}, "negative counts"),
    ({"stream_scatter": set_first(-1.0)}, "scatter diagonals"),
    ({"stream_weight": set_first(0.0)}, "stream_weight=0.0 is not positive"),
    ({"stream_n_batches": set_first(0)}, "stream_n_batches=0 is not a positive count"),
])
def test_an_invalid_stream_is_refused(stream_file, arrays, match):
    forge(stream_file, arrays=arrays)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(stream_file)


def test_a_diagonal_stream_has_the_diagonal_form(tmp_path, X_small):
    path = tmp_path / "stream.npz"
    streamed(GaussianMixture(3, covariance_type="spherical", random_state=0),
             X_small, 2).save(path)
    assert members(path)["stream_scatter"].shape == (3, 4)
    forge(path, arrays={"stream_scatter": lambda a: np.stack([np.diag(r) for r in a])})
    with pytest.raises(ModelFileError, match=r"stream_scatter should be float64 of shape "
                                             r"\(3, 4\) for the running statistics of 3 "
                                             "spherical components"):
        gmmfast.load(path)


def test_a_pooled_tied_stream_needs_the_version_that_added_it(tmp_path, X_small):
    """A reader before format version 5 knows one scatter per component: a stream holding
    tied statistics in the pooled form is written as version 5, so that such a reader asks
    for an upgrade instead of refusing the scatter's shape."""
    path = tmp_path / "stream.npz"
    streamed(GaussianMixture(3, covariance_type="tied", random_state=0), X_small, 2).save(path)
    content = members(path)
    assert content["stream_scatter"].shape == (1, 4, 4)
    assert json.loads(str(content["metadata"]))["format_version"] == 5
    assert gmmfast.load(path)._stream.statistics.form == "pooled"
    forge(path, metadata=lambda meta: meta.update(format_version=4))
    with pytest.raises(ModelFileError, match=r"stream_scatter should be float64 of shape "
                                             r"\(3, 4, 4\)"):
        gmmfast.load(path)


def test_a_stream_of_one_scatter_per_component_keeps_version_2(stream_file):
    assert json.loads(str(members(stream_file)["metadata"]))["format_version"] == 2


def test_an_incomplete_stream_is_refused(stream_file):
    def drop_weight(meta):
        del meta["arrays"]["stream_weight"]
    content = members(stream_file)
    del content["stream_weight"]
    rewrite(stream_file, content)
    forge(stream_file, metadata=drop_weight)
    with pytest.raises(ModelFileError, match=r"running state of online EM is incomplete: "
                                             r"missing arrays \['stream_weight'\]"):
        gmmfast.load(stream_file)


def test_a_version_1_file_holds_no_stream(stream_file):
    def as_version_1(meta):
        meta["format_version"] = 1
        del meta["kind"]
        for name in ("nan_policy", "learning_decay", "learning_offset"):
            del meta["params"][name]
    forge(stream_file, metadata=as_version_1)
    with pytest.raises(ModelFileError, match="unknown arrays"):
        gmmfast.load(stream_file)


def test_a_bayesian_model_file_holds_no_stream(bayesian_file, stream_file):
    stream = {name: array for name, array in members(stream_file).items()
              if name.startswith("stream_")}
    content = members(bayesian_file)
    meta = json.loads(str(content.pop("metadata")))
    for name, array in stream.items():
        meta["arrays"][name] = describe_array(array)
    meta["checksum"] = checksum(meta)
    rewrite(bayesian_file, {"metadata": np.asarray(json.dumps(meta)), **content, **stream})
    with pytest.raises(ModelFileError, match="unknown arrays"):
        gmmfast.load(bayesian_file)


# --------------------------------------------------------------------------------------
# refused files
# --------------------------------------------------------------------------------------


@pytest.fixture
def model_file(tmp_path, X_small):
    path = tmp_path / "model.npz"
    fitted(X_small, "full").save(path)
    return path


def members(path):
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def rewrite(path, content):
    with open(path, "wb") as f:
        np.savez(f, **content)


def edit_metadata(path, change):
    content = members(path)
    metadata = json.loads(str(content["metadata"]))
    change(metadata)
    content["metadata"] = np.asarray(json.dumps(metadata))
    rewrite(path, content)


@pytest.mark.parametrize("keep", [0.2, 0.5, 0.9, 0.99])
def test_a_truncated_file_is_refused(model_file, keep):
    data = model_file.read_bytes()
    model_file.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFileError, match="the archive is truncated or damaged"):
        gmmfast.load(model_file)


def test_an_edited_array_is_refused(model_file):
    content = members(model_file)
    content["means_"] = content["means_"] + 1e-9
    rewrite(model_file, content)
    with pytest.raises(ModelFileError, match="array 'means_' differs from its description"):
        gmmfast.load(model_file)


def test_flipped_bytes_inside_the_archive_are_refused(model_file):
    data = bytearray(model_file.read_bytes())
    # Inside the stored means_ member: the zip's CRC or our SHA-256 catches it.
    offset = data.find(b"means_.npy") + 200
    data[offset] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(ModelFileError):
        gmmfast.load(model_file)


def test_edited_metadata_is_refused(model_file):
    edit_metadata(model_file, lambda m: m["fitted"].update(n_iter_=99))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        gmmfast.load(model_file)


@pytest.mark.parametrize("version, match", [
    (FORMAT_VERSION + 1, f"format_version {FORMAT_VERSION + 1} is not supported.*newer "
                         "gmmfast"),
    (0, "format_version 0 is not supported"),
    ("1", "unknown format_version '1'"),
])
def test_a_wrong_format_version_is_refused(model_file, version, match):
    edit_metadata(model_file, lambda m: m.update(format_version=version))
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(model_file)


def forge(path, arrays=None, metadata=None):
    """Edit a model file as a careful forger would: with every checksum recomputed."""
    content = members(path)
    meta = json.loads(str(content.pop("metadata")))
    for name, change in (arrays or {}).items():
        content[name] = change(content[name].copy())
        meta["arrays"][name] = describe_array(content[name])
    if metadata is not None:
        metadata(meta)
    meta["checksum"] = checksum(meta)
    rewrite(path, {"metadata": np.asarray(json.dumps(meta)), **content})


def test_a_consistent_but_invalid_model_is_refused(model_file):
    # The semantic checks refuse weights that do not sum to one, checksums or not.
    forge(model_file, arrays={"weights_": lambda w: w * 2})
    with pytest.raises(ModelFileError, match="weights_ are not non-negative numbers summing"):
        gmmfast.load(model_file)


def negate_first(a):
    a.reshape(-1)[0] *= -1
    return a


def set_below_diagonal(a):
    a[0, 1, 0] = 0.5
    return a


@pytest.mark.parametrize("covariance_type, arrays, match", [
    ("full", {"precisions_cholesky_": negate_first}, "must have a positive diagonal"),
    ("full", {"precisions_cholesky_": set_below_diagonal}, "must be upper triangular"),
    ("full", {"covariances_": lambda c: c * 2}, "covariances_ are not the inverse"),
    ("full", {"covariances_": negate_first}, "covariances_ are not the inverse"),
    ("tied", {"covariances_": lambda c: c * 1.001}, "covariances_ are not the inverse"),
    ("full", {"precisions_": lambda p: p * 1.001}, "precisions_ differ from precisions_ch"),
    ("diag", {"covariances_": negate_first}, "must be positive"),
    ("diag", {"precisions_": negate_first}, "precisions_ differ from precisions_cholesky_"),
    ("spherical", {"precisions_cholesky_": negate_first}, "must be positive"),
    ("spherical", {"covariances_": lambda c: c * 1.01}, "covariances_ are not the inverse"),
])
def test_a_mixture_whose_parameters_disagree_is_refused(tmp_path, X_small, covariance_type,
                                                        arrays, match):
    # Scoring reads precisions_cholesky_ and sampling covariances_: a file where they
    # describe different mixtures (or no mixture) would give NaN or two answers.
    path = tmp_path / "model.npz"
    fitted(X_small.astype(np.float32), covariance_type).save(path)
    forge(path, arrays=arrays)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(path)


@pytest.fixture
def prior_file(tmp_path, X_small):
    path = tmp_path / "prior.npz"
    fitted(X_small, "full", prior={"shrinkage": 0.01, "dof": 5}).save(path)
    return path


def set_prior_param(value):
    def change(meta):
        meta["params"]["prior"] = value
    return change


@pytest.mark.parametrize("arrays, metadata, match", [
    ({"prior_dof_": lambda dof: dof * 0 - 1}, None, "prior it was fitted with is not valid: "
                                                    "The prior's dof must be"),
    ({"prior_shrinkage_": lambda s: s * np.nan}, None, "shrinkage must be a finite number"),
    ({"prior_mean_": lambda m: m[:-1]}, None, "mean must be a finite array of shape"),
    ({"prior_scale_": lambda s: -s}, None, "must be a symmetric positive definite"),
    ({"prior_scale_": lambda s: s[0, 0]}, None, "prior_scale_ has shape"),
    ({"prior_dof_": lambda dof: dof.astype(np.float32)}, None, "must be float64"),
    (None, set_prior_param({"nu": 3.0}), "prior has unknown keys"),
    (None, set_prior_param({"dof": "many"}), r"prior=\{'dof': 'many'\} is not valid"),
    (None, set_prior_param("mclust"), "prior must be None, 'default' or a dict"),
    (None, lambda meta: meta.update(format_version=3), r"unknown arrays \['prior_dof_'"),
])
def test_an_invalid_prior_is_refused(prior_file, arrays, metadata, match):
    forge(prior_file, arrays=arrays, metadata=metadata)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(prior_file)


def test_an_incomplete_prior_is_refused(prior_file):
    content = members(prior_file)
    meta = json.loads(str(content.pop("metadata")))
    del content["prior_scale_"], meta["arrays"]["prior_scale_"]
    meta["checksum"] = checksum(meta)
    rewrite(prior_file, {"metadata": np.asarray(json.dumps(meta)), **content})
    with pytest.raises(ModelFileError, match=r"the fitted prior is incomplete: missing "
                                             r"arrays \['prior_scale_'\]"):
        gmmfast.load(prior_file)


@pytest.fixture
def bayesian_file(tmp_path, X_small):
    path = tmp_path / "bayes.npz"
    fitted_bayesian(X_small, "full", mean_prior=np.zeros(4)).save(path)
    return path


def swap_first_two(a):
    a[[0, 1]] = a[[1, 0]]
    return a


def set_all(value):
    def change(a):
        a[...] = value
        return a

    return change


@pytest.mark.parametrize("arrays, match", [
    ({"weights_": swap_first_two}, "weights_ are not the expected weights of weight_conc"),
    ({"weight_concentration_": negate_first},
     "weight_concentration_ must be finite numbers above 0"),
    ({"weight_concentration_": lambda c: c[0]},
     "weight_concentration_ should be float64 of shape \\(2, 5\\) for 5 full components "
     "with a dirichlet_process prior"),
    ({"mean_precision_": set_all(0.0)}, "mean_precision_ must be finite numbers above 0"),
    ({"mean_precision_": lambda m: m.astype(np.float32)},
     "mean_precision_ should be float64 of shape \\(5,\\)"),
    ({"degrees_of_freedom_": set_all(3.0)},
     "degrees_of_freedom_ must be finite numbers above 3"),
    ({"degrees_of_freedom_": set_all(np.inf)},
     "degrees_of_freedom_ must be finite numbers above 3"),
    ({"mean_prior_": set_all(np.nan)}, "mean_prior_ contains NaN or infinity"),
    ({"mean_prior_": lambda m: m[:3]}, "mean_prior_ should be float32 or float64 of shape"),
    ({"covariance_prior_": negate_first},
     "covariance_prior_ is not finite and symmetric positive definite"),
    ({"covariance_prior_": lambda c: np.diag(c)},
     "covariance_prior_ should be float32 or float64 of shape \\(4, 4\\) for full"),
    ({"mean_prior": set_all(np.inf)},
     "the parameter mean_prior is not an array of finite float64 numbers"),
    ({"lower_bound_": set_all(np.nan)}, "lower_bound_ or lower_bounds_ is NaN or infinite"),
    ({"lower_bounds_": lambda b: b.astype(np.float32)}, "lower_bounds_ should be float64"),
    ({"lower_bounds_": set_all(np.inf)}, "lower_bound_ or lower_bounds_ is NaN or infin"),
])
def test_an_invalid_bayesian_mixture_is_refused(bayesian_file, arrays, match):
    forge(bayesian_file, arrays=arrays)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(bayesian_file)


@pytest.mark.parametrize("section, name, value, match", [
    ("fitted", "weight_concentration_prior_", -1,
     "weight_concentration_prior_=-1 is not a finite number above 0"),
    ("fitted", "mean_precision_prior_", "1", "mean_precision_prior_='1' is not a finite"),
    ("fitted", "degrees_of_freedom_prior_", True,
     "degrees_of_freedom_prior_=True is not a finite number above 3"),
    ("fitted", "degrees_of_freedom_prior_", 2.5,
     "degrees_of_freedom_prior_=2.5 is not a finite number above 3"),
    ("fitted", "n_components_in_use_", 2, "the metadata's fitted entries should be"),
    ("params", "weight_concentration_prior_type", "gamma",
     "unknown weight_concentration_prior_type 'gamma'"),
    ("params", "mean_precision_prior", -1.0, "'mean_precision_prior' parameter of "
                                             "BayesianGaussianMixture must be"),
    ("params", "weights_init", None, "the metadata's params are not those of the model"),
])
def test_invalid_bayesian_metadata_is_refused(bayesian_file, section, name, value, match):
    forge(bayesian_file, metadata=lambda m: m[section].update({name: value}))
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(bayesian_file)


@pytest.mark.parametrize("change, match", [
    (lambda m: m.update(kind="Mystery"), "unknown model kind 'Mystery'; this gmmfast reads "
                                         "GaussianMixture, BayesianGaussianMixture"),
    (lambda m: m.pop("kind"), "unknown model kind None"),
    (lambda m: m.update(kind="GaussianMixture"), "unknown arrays \\['covariance_prior_', "
                                                 "'degrees_of_freedom_', 'mean_precision_'"),
    (lambda m: m.update(format_version=1), "format_version 1 files have no 'kind'"),
])
def test_a_wrong_model_kind_is_refused(bayesian_file, change, match):
    forge(bayesian_file, metadata=change)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(bayesian_file)


@pytest.mark.parametrize("section, name, value, match", [
    ("params", "n_threads", "lots", "'n_threads' parameter of GaussianMixture must be"),
    ("params", "tol", -1, "'tol' parameter of GaussianMixture must be"),
    ("params", "max_iter", 1.5, "'max_iter' parameter of GaussianMixture must be"),
    ("params", "init_params", "magic", "'init_params' parameter of GaussianMixture must"),
    ("params", "warm_start", "yes", "'warm_start' parameter of GaussianMixture must"),
    ("params", "reg_covar", float("nan"), "reg_covar=nan is not a finite number"),
    ("params", "random_state", -1, "random_state=-1 is not None or an int"),
    ("params", "covariance_type", "round", "unknown covariance_type 'round'"),
    ("fitted", "n_iter_", -5, "n_iter_=-5 is negative"),
    ("fitted", "converged_", 1, "converged_ / n_iter_ are missing or of the wrong type"),
])
def test_invalid_parameters_are_refused(model_file, section, name, value, match):
    forge(model_file, metadata=lambda m: m[section].update({name: value}))
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(model_file)


def test_an_extra_or_missing_member_is_refused(model_file, tmp_path):
    content = members(model_file)
    rewrite(model_file, {**content, "payload": np.arange(3)})
    with pytest.raises(ModelFileError, match="unexpected \\['payload'\\]"):
        gmmfast.load(model_file)
    del content["covariances_"]
    rewrite(model_file, content)
    with pytest.raises(ModelFileError, match="missing \\['covariances_'\\]"):
        gmmfast.load(model_file)


def test_a_pickled_member_is_never_loaded(model_file):
    content = members(model_file)
    content["means_"] = np.array([{"evil": 1}], dtype=object)
    with open(model_file, "wb") as f:
        np.savez(f, **content)  # object arrays are pickled inside the .npy member
    with pytest.raises(ModelFileError, match="pickle"):
        gmmfast.load(model_file)


def test_other_files_are_refused(tmp_path):
    text = tmp_path / "model.npz"
    text.write_text("weights: 0.5, 0.5\n")
    with pytest.raises(ModelFileError):
        gmmfast.load(text)
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(ModelFileError, match="it is a single .npy array, not an .npz"):
        gmmfast.load(npy)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    with pytest.raises(ModelFileError, match="metadata"):
        gmmfast.load(plain)
    with pytest.raises(FileNotFoundError):
        gmmfast.load(tmp_path / "missing.npz")


# --------------------------------------------------------------------------------------
# hostile files: bounded reads, and nothing but ModelFileError
# --------------------------------------------------------------------------------------


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_with_header(header):
    """A version 1.0 .npy member whose header text is ``header``, whatever it says."""
    text = header.encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def write_members(path, raw):
    """A zip of stored members with exactly these bytes (``{name: bytes}``)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in raw.items():
            archive.writestr(name + ".npy", data)


def raw_members(path):
    with zipfile.ZipFile(path) as archive:
        return {info.filename[:-4]: archive.read(info) for info in archive.infolist()}


def patch_entry(path, name, **fields):
    """Overwrite fields of member ``name``'s local and central zip headers in place."""
    local_offsets = {"flag_bits": (6, "<H"), "compress_type": (8, "<H"), "crc": (14, "<I"),
                     "compress_size": (18, "<I"), "file_size": (22, "<I")}
    central_offsets = {"extract_version": (6, "<H"), "flag_bits": (8, "<H"),
                       "compress_type": (10, "<H"), "crc": (16, "<I"),
                       "compress_size": (20, "<I"), "file_size": (24, "<I")}
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        local = archive.getinfo(name + ".npy").header_offset
    central = data.find(b"PK\x01\x02" + data[local + 4:local + 6])
    while data[central + 46:central + 46 + len(name) + 4] != (name + ".npy").encode():
        central = data.find(b"PK\x01\x02", central + 4)
    for field, value in fields.items():
        for start, offsets in ((local, local_offsets), (central, central_offsets)):
            if field in offsets:
                offset, fmt = offsets[field]
                struct.pack_into(fmt, data, start + offset, value)
    path.write_bytes(bytes(data))


def test_a_device_a_fifo_or_a_folder_is_refused_without_reading(tmp_path):
    if not os.path.exists("/dev/zero") or not hasattr(os, "mkfifo"):
        pytest.skip("needs /dev/zero and FIFOs (POSIX)")
    link = tmp_path / "zero.npz"
    link.symlink_to("/dev/zero")  # endless
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)  # opening it for reading blocks until a writer comes: none will
    # In a subprocess, so that a hang is a failure (and is killed), not a stuck suite.
    script = (
        "import sys, gmmfast\n"
        "from gmmfast._io import ModelFileError\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        gmmfast.load(path)\n"
        "    except ModelFileError as exc:\n"
        "        print(str(exc).split(': ')[-1])\n"
    )
    result = subprocess.run([sys.executable, "-c", script, link, fifo, tmp_path],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.stdout.splitlines() == [
        "it is a character device, not a regular file",
        "it is a named pipe (FIFO), not a regular file",
        "it is a directory, not a regular file",
    ], result.stderr


def test_junk_before_the_archive_is_named_as_such(model_file):
    model_file.write_bytes(b"#!/bin/sh\n" + model_file.read_bytes())
    with pytest.raises(ModelFileError, match="bytes were added before the zip archive"):
        gmmfast.load(model_file)


def test_a_compressed_member_is_refused(model_file):
    content = members(model_file)
    with open(model_file, "wb") as f:
        np.savez_compressed(f, **content)
    with pytest.raises(ModelFileError, match="is compressed; gmmfast model files store"):
        gmmfast.load(model_file)


def test_a_zip_bomb_is_refused_without_inflating_it(tmp_path, model_file):
    # 2.2 GB of zeros deflated to 2 MB as the means_ member; loaded in a subprocess limited
    # to 1.5 GB of address space, where inflating it would raise MemoryError.
    chunk_size, n_chunks = 2**20, 2100
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = deflate.compress(bytes(chunk_size)) + deflate.flush(zlib.Z_FULL_FLUSH)
    bomb = chunk * n_chunks + b"\x03\x00"  # an empty final block ends the stream
    raw = raw_members(model_file)
    raw["means_"] = bomb
    write_members(model_file, raw)
    patch_entry(model_file, "means_", compress_type=zipfile.ZIP_DEFLATED,
                file_size=chunk_size * n_chunks)
    assert model_file.stat().st_size < 3 * 2**20
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1536 * 2**20, resource.RLIM_INFINITY))\n"
        "import gmmfast\n"
        "from gmmfast._io import ModelFileError\n"
        "try:\n"
        f"    gmmfast.load({str(model_file)!r})\n"
        "except ModelFileError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path,
                            env={**os.environ, "OPENBLAS_NUM_THREADS": "1",
                                 "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert "'means_.npy' is compressed" in result.stdout


def test_a_member_larger_than_the_file_is_refused(model_file):
    patch_entry(model_file, "means_", file_size=10**9, compress_size=10**9)
    with pytest.raises(ModelFileError, match="claims 1 GB, more than the whole file"):
        gmmfast.load(model_file)
    patch_entry(model_file, "means_", compress_size=160)
    with pytest.raises(ModelFileError, match="'means_.npy' has two different sizes"):
        gmmfast.load(model_file)


@pytest.mark.parametrize("header, match", [
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (10**12, 2), }",
     "malformed .npy header"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }",
     "array 'means_' differs from its description"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (-3, 2), }", "negative shape"),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (3, 4), }", "pickled"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), '''", "malformed .npy header"),
    ("{'descr': '<f8', 'fortran_order': False, 'shape': " + "(" * 300, "malformed .npy"),
])
def test_a_member_with_a_hostile_header_is_refused(model_file, header, match):
    raw = raw_members(model_file)
    raw["means_"] = npy_with_header(header.ljust(118) + "\n")
    write_members(model_file, raw)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(model_file)


def test_a_member_of_raw_bytes_is_refused(model_file):
    raw = raw_members(model_file)
    raw["weights_"] = b"\x00\x01 not an array"
    write_members(model_file, raw)
    with pytest.raises(ModelFileError, match="member 'weights_': malformed .npy header"):
        gmmfast.load(model_file)


def test_a_member_whose_data_disagrees_with_its_forged_header_is_refused(model_file):
    # The metadata and the header agree on 1e12 elements; the member holds a few bytes.
    shape = [10**12]
    forge(model_file, metadata=lambda m: m["arrays"]["lower_bounds_"].update(shape=shape))
    raw = raw_members(model_file)
    raw["lower_bounds_"] = npy_with_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000,), }".ljust(117)
        + "\n")
    write_members(model_file, raw)
    with pytest.raises(ModelFileError, match="holds 128 bytes but its header describes 8 TB"):
        gmmfast.load(model_file)


def test_deeply_nested_or_oversized_metadata_is_refused(model_file, monkeypatch):
    raw = raw_members(model_file)
    raw["metadata"] = npy_bytes(np.asarray("[" * 100_000 + "]" * 100_000))
    write_members(model_file, raw)
    with pytest.raises(ModelFileError, match="nested too deeply"):
        gmmfast.load(model_file)
    raw["metadata"] = npy_bytes(np.asarray("1" * 5000))
    write_members(model_file, raw)
    with pytest.raises(ModelFileError, match="the metadata is not valid JSON"):
        gmmfast.load(model_file)
    monkeypatch.setattr(gmmfast._model_file, "MAX_METADATA_BYTES", 1000)
    with pytest.raises(ModelFileError, match="'metadata' member claims 20.1 kB \\(metadata "
                                             "is at most 1 kB\\)"):
        gmmfast.load(model_file)


@pytest.mark.parametrize("fields, match", [
    ({"flag_bits": 1}, "the member 'means_.npy' is encrypted"),
    ({"extract_version": 99}, "unreadable or damaged archive \\(zip file version 9.9\\)"),
    ({"compress_type": 99}, "'means_.npy' is compressed"),
    ({"crc": 0}, "unreadable or damaged archive \\(Bad CRC-32 for file 'means_.npy'\\)"),
])
def test_zip_features_numpy_does_not_write_are_refused(model_file, fields, match):
    patch_entry(model_file, "means_", **fields)
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(model_file)


# --------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------


def test_a_failed_save_keeps_the_previous_file(tmp_path, X_small, monkeypatch):
    path = tmp_path / "model.npz"
    first = fitted(X_small)
    first.save(path)
    good = path.read_bytes()

    def savez_then_fail(f, **members):
        f.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="No space left on device"):
        fitted(X_small, "diag").save(path)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    monkeypatch.undo()
    assert_same_model(gmmfast.load(path), first)


def test_save_replaces_the_file_and_keeps_its_permissions(tmp_path, X_small):
    path = tmp_path / "model.npz"
    fitted(X_small).save(path)
    os.chmod(path, 0o640)
    second = fitted(X_small, "diag")
    second.save(path)
    assert_same_model(gmmfast.load(path), second)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    with pytest.raises(FileNotFoundError, match="missing/model.npz"):
        second.save(tmp_path / "missing" / "model.npz")
