"""gmmfast.load on damaged model files: it loads them or raises ModelFileError, nothing else.

Property-based (hypothesis): byte flips, truncations, inserted and deleted bytes, and
members replaced by other bytes, applied to small valid model files of every covariance
type, of GaussianMixture (fitted, and in the middle of a stream of partial_fit calls; with
scikit-learn's names and with mclust's, whose files hold the decomposition) and
BayesianGaussianMixture; and forged values (any float, checksums recomputed), after which a
file that loads must score without NaN, and resume its stream with finite parameters or a
ValueError. Derandomised and
bounded, so the suite stays fast and reproducible.
"""

import functools
import io
import json
import os
import tempfile
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gmmfast  # noqa: E402
from gmmfast import BayesianGaussianMixture, GaussianMixture  # noqa: E402
from gmmfast._io import ModelFileError  # noqa: E402

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


# Four of mclust's models, with equal or variable volumes, shapes and orientations, diagonal
# or not, standing for the fourteen: files with volumes_, shapes_ (and orientations_).
MCLUST_MODELS = ("VEV", "EVE", "EEI", "VII")


@functools.lru_cache(maxsize=None)
def original(which):
    """The bytes of a small valid model file; ``which`` picks the covariance type, from 4
    on a Bayesian mixture (alternately with a Dirichlet-process and a Dirichlet prior),
    from 8 on a GaussianMixture saved in the middle of a stream, from 12 with one of
    :data:`MCLUST_MODELS`, and from 16 with those in the middle of a stream."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(30, 2), rng.randn(30, 2) + 4])
    names = MCLUST_MODELS if which >= 12 else ("full", "tied", "diag", "spherical")
    covariance_type = names[which % 4]
    if which < 4 or 12 <= which < 16:
        model = GaussianMixture(2, covariance_type=covariance_type, random_state=0,
                                n_threads=1).fit(X)
    elif which >= 8:  # 8 to 11 and 16 to 19
        model = GaussianMixture(2, covariance_type=covariance_type, random_state=0,
                                n_threads=1)
        for batch in np.array_split(rng.permutation(X), 3):
            model.partial_fit(batch)
    else:
        prior_type = ("dirichlet_process", "dirichlet_distribution")[which % 2]
        model = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                        weight_concentration_prior_type=prior_type,
                                        random_state=0, n_threads=1, max_iter=500).fit(X)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.npz")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "damaged.npz"


def assert_loads_or_refuses(path, data):
    path.write_bytes(data)
    try:
        gmmfast.load(path)
    except ModelFileError as exc:
        assert str(exc).startswith(f"{path}: not a valid gmmfast model file: ")


def replace_member(data, index, payload):
    """The archive with its ``index``-th member's bytes replaced by ``payload``."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        content = {info.filename: archive.read(info) for info in archive.infolist()}
    names = sorted(content)
    content[names[index % len(names)]] = payload
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, member in content.items():
            archive.writestr(name, member)
    return buffer.getvalue()


which = st.integers(0, 19)
position = st.floats(0, 1, exclude_max=True)


def at(data, fraction):
    return int(fraction * len(data))


@FUZZ
@given(which=which, flips=st.lists(st.tuples(position, st.integers(1, 255)), min_size=1,
                                   max_size=4))
def test_flipped_bytes(target, which, flips):
    data = bytearray(original(which))
    for fraction, mask in flips:
        data[at(data, fraction)] ^= mask
    assert_loads_or_refuses(target, bytes(data))


@FUZZ
@given(which=which, keep=position)
def test_truncated(target, which, keep):
    data = original(which)
    assert_loads_or_refuses(target, data[:at(data, keep)])


@FUZZ
@given(which=which, where=position, inserted=st.binary(min_size=1, max_size=64),
       deleted=st.integers(0, 64))
def test_inserted_and_deleted_bytes(target, which, where, inserted, deleted):
    data = original(which)
    i = at(data, where)
    assert_loads_or_refuses(target, data[:i] + inserted + data[i:])
    assert_loads_or_refuses(target, data[:i] + data[i + deleted:])


npy_header = st.builds(
    lambda text, tail: b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + tail,
    st.one_of(st.binary(max_size=120),
              st.text(alphabet="{}()[]',: <>|fUO0123456789descrshapefortran_orderTrueFalse",
                      max_size=120).map(lambda t: t.encode("latin1"))),
    st.binary(max_size=64))


@FUZZ
@given(which=which, member=st.integers(0, 20),
       payload=st.one_of(st.binary(max_size=256), npy_header))
def test_replaced_members(target, which, member, payload):
    assert_loads_or_refuses(target, replace_member(original(which), member, payload))


def float_members(data):
    """The names of the non-empty float arrays of a model file."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return sorted(name for name in archive.files
                      if archive[name].dtype.kind == "f" and archive[name].size)


def forged(data, name, index, value):
    """The archive with one number of the array ``name`` set to ``value``, every checksum
    recomputed (as a careful forger would)."""
    from gmmfast._model_file import checksum, describe_array

    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        content = {member: archive[member] for member in archive.files}
    metadata = json.loads(str(content.pop("metadata")))
    array = content[name].copy()
    array.reshape(-1)[index % array.size] = value
    content[name] = array
    metadata["arrays"][name] = describe_array(array)
    metadata["checksum"] = checksum(metadata)
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.asarray(json.dumps(metadata)), **content)
    return buffer.getvalue()


POINTS = np.array([[0.0, 0.0], [4.0, 4.0], [2.0, -1.0]])
SPECIAL_VALUES = [0.0, -1.0, 1.0, 0.5, 1e-30, 1e30, -1e30, np.nan, np.inf, -np.inf]


@settings(FUZZ, max_examples=300)
@given(which=which, choice=st.data(), index=st.integers(0, 20),
       value=st.one_of(st.sampled_from(SPECIAL_VALUES), st.floats(width=32)))
def test_forged_values(target, which, choice, index, value):
    data = original(which)
    name = choice.draw(st.sampled_from(float_members(data)))
    target.write_bytes(forged(data, name, index, value))
    try:
        model = gmmfast.load(target)
    except ModelFileError:
        return
    with np.errstate(all="raise"):
        assert not np.isnan(model.score_samples(POINTS)).any()
        assert np.isfinite(model.predict_proba(POINTS)).all()
    assert np.isfinite(model.sample(5)[0]).all()
    if hasattr(model, "partial_fit"):
        try:
            model.partial_fit(POINTS)
        except ValueError:
            return
        assert np.isfinite(model.means_).all() and np.isfinite(model.covariances_).all()
