"""Choosing the kernel variant (gmmfast._kernels): the widest the CPU runs, capped by
GMMFAST_KERNELS. The variants' numbers are checked by tests/test_kernels.py, which runs
every kernel test against every available variant."""

import importlib
import os
import platform
import subprocess
import sys
import tempfile

import pytest

from gmmfast import _em, _engine, _initialisation, _kernels, _kmeans


def test_the_widest_available_variant_serves_the_estimators():
    available = _kernels.available_variants()
    assert available[-1] == "baseline"
    assert _kernels.variant == available[0]
    assert _engine._em is _kernels.em
    assert _initialisation._em is _kernels.em
    assert _initialisation._kmeans is _kernels.kmeans
    if _em.cpu_level() >= 3 and len(available) > 1:
        # An x86-64 build with GCC/Clang carries the AVX2 variant; this CPU can run it.
        assert "x86_64_v3" in available


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                    reason="the variants are x86-64 microarchitecture levels")
@pytest.mark.skipif("GMMFAST_KERNELS" in os.environ, reason="GMMFAST_KERNELS caps the choice")
def test_the_widest_variant_the_cpu_supports_is_the_one_that_runs():
    level = _em.cpu_level()
    widest = "x86_64_v4" if level >= 4 else "x86_64_v3" if level >= 3 else "baseline"
    assert _kernels.variant == widest
    expected = _em if widest == "baseline" else importlib.import_module(f"gmmfast._em_{widest}")
    assert _kernels.em is expected
    assert _engine._em is expected


@pytest.mark.skipif(os.environ.get("GMMFAST_REQUIRE_OPENMP", "0") in ("", "0"),
                    reason="only a build made with GMMFAST_REQUIRE_OPENMP=1 must have OpenMP")
def test_openmp_is_on_when_the_build_requires_it():
    for name in _kernels.available_variants():
        em, _ = _kernels.variant_modules(name)
        assert em.openmp_enabled(), f"{name} kernels were built without OpenMP"


def test_variants_need_the_cpu_level_they_were_built_for(monkeypatch):
    monkeypatch.setattr(_em, "cpu_level", lambda: 3)
    assert "x86_64_v4" not in _kernels.available_variants()
    monkeypatch.setattr(_em, "cpu_level", lambda: 0)
    assert _kernels.available_variants() == ["baseline"]


def test_a_cap_above_what_the_cpu_runs_warns_and_falls_back(monkeypatch):
    monkeypatch.setattr(_em, "cpu_level", lambda: 0)
    monkeypatch.setenv("GMMFAST_KERNELS", "x86_64_v4")
    with pytest.warns(RuntimeWarning, match="not available on this CPU.*using baseline"):
        name, module = _kernels._select()
    assert (name, module) == ("baseline", (_em, _kmeans))


def test_an_unknown_variant_name_is_refused(monkeypatch):
    monkeypatch.setenv("GMMFAST_KERNELS", "avx9000")
    with pytest.raises(ValueError, match="not a kernel variant; use one of x86_64_v4, "
                                         "x86_64_v3, baseline"):
        _kernels._select()


def test_variant_module_refuses_what_is_not_available(monkeypatch):
    monkeypatch.setattr(_em, "cpu_level", lambda: 0)
    with pytest.raises(ValueError, match="not available"):
        _kernels.variant_modules("x86_64_v3")


@pytest.mark.parametrize("variant", _kernels.available_variants())
def test_environment_variable_selects_the_variant_at_import(variant):
    # A fresh interpreter from an empty folder: the installed gmmfast, not the source tree.
    env = dict(os.environ, GMMFAST_KERNELS=variant)
    code = "import gmmfast; from gmmfast import _kernels; print(_kernels.variant)"
    with tempfile.TemporaryDirectory() as empty:
        out = subprocess.run([sys.executable, "-c", code], cwd=empty, env=env,
                             capture_output=True, text=True, check=True)
    assert out.stdout.strip() == variant
