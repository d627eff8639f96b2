"""Model files: GaussianMixture.save / gmmfast.load round-trip exactly and refuse bad files."""

import json
import zipfile

import numpy as np
import pytest

import gmmfast
from gmmfast import GaussianMixture
from gmmfast._io import FORMAT_VERSION, ModelFileError, read_model, save_model

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
    assert metadata["format_version"] == FORMAT_VERSION
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
    search = gmmfast.GaussianMixtureIC(n_components=[2, 3], random_state=0).fit(X_small)
    search.best_estimator_.save(tmp_path / "best.npz")
    loaded = gmmfast.load(tmp_path / "best.npz")
    np.testing.assert_array_equal(loaded.predict(X_small), search.predict(X_small))


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
    with pytest.raises(ModelFileError, match="not a valid gmmfast model file"):
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
    (FORMAT_VERSION + 1, "format_version 2 is not supported.*newer gmmfast"),
    (0, "format_version 0 is not supported"),
    ("1", "unknown format_version '1'"),
])
def test_a_wrong_format_version_is_refused(model_file, version, match):
    edit_metadata(model_file, lambda m: m.update(format_version=version))
    with pytest.raises(ModelFileError, match=match):
        gmmfast.load(model_file)


def test_a_consistent_but_invalid_model_is_refused(model_file):
    # Edited with the checksums recomputed (as a careful forger would): the semantic
    # checks still refuse weights that do not sum to one.
    from gmmfast._io import _checksum, _describe_array

    content = members(model_file)
    content["weights_"] = content["weights_"] * 2
    metadata = json.loads(str(content["metadata"]))
    metadata["arrays"]["weights_"] = _describe_array(content["weights_"])
    metadata["checksum"] = _checksum(metadata)
    content["metadata"] = np.asarray(json.dumps(metadata))
    rewrite(model_file, content)
    with pytest.raises(ModelFileError, match="weights_ are not non-negative numbers summing"):
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
    with pytest.raises(ModelFileError, match="not an .npz archive"):
        gmmfast.load(npy)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    with pytest.raises(ModelFileError, match="metadata"):
        gmmfast.load(plain)
    with pytest.raises(FileNotFoundError):
        gmmfast.load(tmp_path / "missing.npz")
