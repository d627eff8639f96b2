"""gmmfast.load on damaged model files: it loads them or raises ModelFileError, nothing else.

Property-based (hypothesis): byte flips, truncations, inserted and deleted bytes, and
members replaced by other bytes, applied to small valid model files of every covariance
type. Derandomised and bounded, so the suite stays fast and reproducible.
"""

import functools
import io
import os
import tempfile
import zipfile

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import gmmfast  # noqa: E402
from gmmfast import GaussianMixture  # noqa: E402
from gmmfast._io import ModelFileError  # noqa: E402

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@functools.lru_cache(maxsize=None)
def original(which):
    """The bytes of a small valid model file; ``which`` picks the covariance type."""
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(30, 2), rng.randn(30, 2) + 4])
    covariance_type = ("full", "tied", "diag", "spherical")[which]
    model = GaussianMixture(2, covariance_type=covariance_type, random_state=0,
                            n_threads=1).fit(X)
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


which = st.integers(0, 3)
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
@given(which=which, member=st.integers(0, 10),
       payload=st.one_of(st.binary(max_size=256), npy_header))
def test_replaced_members(target, which, member, payload):
    assert_loads_or_refuses(target, replace_member(original(which), member, payload))
