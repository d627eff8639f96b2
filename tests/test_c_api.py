"""gmmfast's C-level API (docs/c_api.md): the shipped .pxd files, ``get_include``, the API
version contract, and a downstream Cython module built against the *installed* gmmfast.

The downstream module is ``examples/cython_consumer``: it cimports gmmfast's chunk kernels
and calls them from its own ``prange`` loop. The build needs a C compiler, Cython and
setuptools (the ``test`` extra installs the last two); only a missing C compiler skips it.
"""

import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest

import gmmfast
from gmmfast import GaussianMixture, _capi, _em, _kmeans

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "cython_consumer"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
PXD_MODULES = {"_em.pxd": _em, "_kmeans.pxd": _kmeans}


def _declared_functions(pxd_text):
    """Names of the cdef functions a .pxd declares, and whether each is fused (floating)."""
    code = _capi.normalise_declarations(pxd_text)
    functions = {}
    for match in re.finditer(r"cdef [\w ]*?\b(\w+)\(([^)]*)\)", code):
        functions[match.group(1)] = "floating" in match.group(2)
    return functions


# --------------------------------------------------------------------------------------------
# The shipped declarations and the version contract
# --------------------------------------------------------------------------------------------

def test_get_include_is_the_folder_containing_the_installed_package():
    include = Path(gmmfast.get_include())
    assert include.is_dir()
    assert (include / "gmmfast" / "__init__.py").samefile(gmmfast.__file__)
    for name in _capi.PUBLIC_PXD:
        assert (include / "gmmfast" / name).is_file(), f"{name} is not installed"
    assert gmmfast.get_include is _capi.get_include


def test_api_version_constant():
    assert gmmfast.C_API_VERSION == _capi.C_API_VERSION
    assert isinstance(_capi.C_API_VERSION, int) and _capi.C_API_VERSION >= 1
    assert {"C_API_VERSION", "get_include"} <= set(gmmfast.__all__)


def test_declarations_have_not_changed_without_a_new_api_version():
    """The shipped public .pxd files are exactly those of C_API_VERSION.

    If this fails, a public declaration changed. Downstream modules compiled against the
    previous declarations would fail to import (Cython checks each cimported function's
    signature), so the change needs a new C API version: bump ``C_API_VERSION`` in
    ``gmmfast/_capi.py`` and add the new digests printed below (``python -m gmmfast._capi``)
    as a new entry of ``DECLARATION_DIGESTS``; also update docs/c_api.md.
    """
    actual = _capi.declaration_digests()
    expected = _capi.DECLARATION_DIGESTS[_capi.C_API_VERSION]
    changed = sorted(name for name in actual if actual[name] != expected.get(name))
    assert not changed, (
        f"public declarations changed in {changed} without a new C_API_VERSION "
        f"(still {_capi.C_API_VERSION}). Bump C_API_VERSION in gmmfast/_capi.py and add "
        f"DECLARATION_DIGESTS[{_capi.C_API_VERSION + 1}] = {actual!r}"
    )


def test_api_version_history_is_append_only():
    versions = sorted(_capi.DECLARATION_DIGESTS)
    assert versions == list(range(1, len(versions) + 1)), "versions are 1, 2, 3, ..."
    assert _capi.C_API_VERSION == versions[-1], "C_API_VERSION is the newest entry"
    # A new version must come with new declarations (an edited old entry would show here as
    # two versions with the same digests, or as the test above failing).
    seen = [tuple(sorted(_capi.DECLARATION_DIGESTS[v].items())) for v in versions]
    assert len(set(seen)) == len(seen), "two C API versions with the same declarations"
    for digests in _capi.DECLARATION_DIGESTS.values():
        assert set(digests) == set(_capi.PUBLIC_PXD)


def test_digest_ignores_comments_and_layout_but_not_declarations():
    original = (
        "# header comment\n"
        "from cython cimport floating\n\n"
        "cdef void f(\n    const double* x, Py_ssize_t n,\n) noexcept nogil  # trailing\n"
    )
    reformatted = (
        "from cython cimport floating\n"
        "cdef void f(const double *x,   Py_ssize_t n) noexcept nogil\n"
    )
    digest = _capi.declaration_digest(original)
    assert _capi.declaration_digest(reformatted) == digest
    for changed in (
        original.replace("const double*", "double*"),          # a qualifier
        original.replace("Py_ssize_t n", "int n"),             # a type
        original.replace("Py_ssize_t n", "Py_ssize_t n_rows"),  # a name (keyword calls)
        original.replace("n,\n)", "n, double* work,\n)"),       # an argument
        original.replace(" nogil", ""),                          # an exception/GIL spec
        original + "cdef double g(double x) noexcept nogil\n",   # a new function
    ):
        assert _capi.declaration_digest(changed) != digest, changed


@pytest.mark.parametrize("pxd_name", _capi.PUBLIC_PXD)
def test_every_declared_function_is_exported_by_the_compiled_module(pxd_name):
    """What a downstream module cimports is found in the compiled module's __pyx_capi__."""
    text = (Path(gmmfast.get_include()) / "gmmfast" / pxd_name).read_text(encoding="utf-8")
    functions = _declared_functions(text)
    assert functions, f"no cdef function found in {pxd_name}"
    exported = set(PXD_MODULES[pxd_name].__pyx_capi__)
    for name, fused in functions.items():
        wanted = ({f"{name}[const float *]", f"{name}[const double *]"} if fused
                  else {name})
        assert wanted <= exported, (name, sorted(exported))


def test_the_documented_kernels_are_declared():
    """The kernels docs/c_api.md and the example rely on."""
    text = (Path(gmmfast.get_include()) / "gmmfast" / "_em.pxd").read_text(encoding="utf-8")
    assert set(_declared_functions(text)) >= {
        "transpose_chunk", "log_prob_full", "log_prob_diag", "log_prob_to_resp",
        "accumulate_full", "accumulate_diag",
    }


# --------------------------------------------------------------------------------------------
# A downstream module built against the installed gmmfast
# --------------------------------------------------------------------------------------------

def _c_compiler_problem():
    """None when the platform's C compiler compiles a file here, else what went wrong."""
    import setuptools  # noqa: F401  (provides distutils on Python >= 3.12)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from distutils.ccompiler import new_compiler
        from distutils.sysconfig import customize_compiler

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "probe.c")
        source.write_text("int probe(int x) { return x + 1; }\n")
        try:
            compiler = new_compiler()
            customize_compiler(compiler)
            compiler.compile([str(source)], output_dir=tmp)
        except Exception as exc:  # any failure to find or run a compiler
            return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="module")
def consumer(tmp_path_factory):
    """examples/cython_consumer built by pip against the installed gmmfast, imported."""
    assert EXAMPLE.is_dir(), (
        f"{EXAMPLE} not found: run the tests with examples/ next to tests/ (copy both when "
        "testing an installed gmmfast from outside the source tree)"
    )
    problem = _c_compiler_problem()
    if problem is not None:
        pytest.skip(f"no working C compiler to build examples/cython_consumer ({problem})")
    for needed in ("Cython", "setuptools"):
        assert importlib.util.find_spec(needed) is not None, (
            f"{needed} is needed to build the example (pip install \".[test]\")"
        )

    tmp = tmp_path_factory.mktemp("cython_consumer")
    source = tmp / "src"
    target = tmp / "site"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns(
        "build", "*.so", "*.pyd", "*.c", "*.egg-info"))
    # --no-build-isolation: compile against *this* environment's gmmfast (the one under
    # test), not one that pip would fetch into an isolated build environment.
    command = [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
               "--no-index", "--disable-pip-version-check", "--target", str(target),
               str(source)]
    proc = subprocess.run(command, cwd=tmp, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail("building examples/cython_consumer failed:\n"
                    + (proc.stdout + proc.stderr)[-6000:])

    built = sorted(target.glob("gmm_consumer*"))
    built = [p for p in built if p.suffix in (".so", ".pyd")]
    assert len(built) == 1, sorted(p.name for p in target.iterdir())
    spec = importlib.util.spec_from_file_location("gmm_consumer", built[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mixture_data():
    rng = np.random.default_rng(7)
    # Three blobs, 1,000 rows (four chunks of the example's 256, the last one partial), 5
    # features (log_prob_full's BLAS path) off the origin.
    centers = rng.normal(0.0, 4.0, size=(3, 5)) + 10.0
    mixing = [np.eye(5) + 0.3 * rng.normal(size=(5, 5)) for _ in range(3)]
    X = np.vstack([c + rng.normal(size=(n, 5)) @ m
                   for c, m, n in zip(centers, mixing, (300, 450, 250))])
    return X[rng.permutation(len(X))]


def _fitted(X, covariance_type):
    return GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_consumer_score_samples_equals_gaussian_mixture(consumer, mixture_data,
                                                        covariance_type):
    X = mixture_data
    gm = _fitted(X, covariance_type)
    params = consumer.kernel_parameters(gm.weights_, gm.means_, gm.precisions_cholesky_,
                                        covariance_type)
    expected = gm.score_samples(X)
    for n_threads in (1, 2):
        actual = consumer.score_samples(X, *params, n_threads=n_threads)
        assert actual.dtype == np.float64 and actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_consumer_reads_float32_samples(consumer, mixture_data, covariance_type):
    """transpose_chunk's float32 specialisation: the float64 result of the same values."""
    X32 = mixture_data.astype(np.float32)
    gm = _fitted(mixture_data, covariance_type)
    params = consumer.kernel_parameters(gm.weights_, gm.means_, gm.precisions_cholesky_,
                                        covariance_type)
    actual = consumer.score_samples(X32, *params, n_threads=2)
    expected = gm.score_samples(X32.astype(np.float64))
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_consumer_statistics_equal_a_numpy_reference(consumer, mixture_data,
                                                     covariance_type):
    X = mixture_data
    gm = _fitted(X, covariance_type)
    params = consumer.kernel_parameters(gm.weights_, gm.means_, gm.precisions_cholesky_,
                                        covariance_type)
    loglik, nk, sums, scatter = consumer.mixture_statistics(X, *params, n_threads=2)

    resp = gm.predict_proba(X)
    diff = X[:, None, :] - gm.means_[None, :, :]
    np.testing.assert_allclose(loglik, gm.score_samples(X).sum(), rtol=1e-12)
    np.testing.assert_allclose(nk, resp.sum(axis=0), rtol=1e-12)
    # Shifted first moments are differences of large terms: compare on their own scale.
    scale = np.einsum("nk,nkd->kd", resp, np.abs(diff))
    np.testing.assert_array_less(np.abs(sums - np.einsum("nk,nkd->kd", resp, diff)),
                                 1e-12 * scale + 1e-300)
    if scatter.ndim == 3:
        expected = np.einsum("nk,nkd,nke->kde", resp, diff, diff)
        scale = np.einsum("nk,nkd,nke->kde", resp, np.abs(diff), np.abs(diff))
    else:
        expected = np.einsum("nk,nkd->kd", resp, diff**2)
        scale = expected
    np.testing.assert_array_less(np.abs(scatter - expected), 1e-12 * scale + 1e-300)
