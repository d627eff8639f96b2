"""Build the compiled core: every ``src/_name.pyx`` becomes the module ``gmmfast._name``.

OpenMP is detected by compiling *and running* a tiny program with the compiler's OpenMP
flags, because a flag that compiles but links against a missing runtime would otherwise give
a module that fails at import. ``GMMFAST_REQUIRE_OPENMP=1`` turns a failed probe into a build
error, so a release wheel is never silently serial.
"""

import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import numpy  # build requirement: its headers (see extensions())
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent.resolve()

OPENMP_PROBE = r"""
#include <omp.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    printf("%d %d\n", n, omp_get_max_threads());
    return n >= 1 ? 0 : 1;
}
"""

# x86-64 microarchitecture levels the kernel modules are also built for. ``src/_em.pyx``
# itself targets the baseline (SSE2) and keeps the public C API; ``src/_em_<level>.pyx``
# includes the same source, is compiled with the level's instruction sets, and is chosen at
# import by ``gmmfast._kernels`` when the CPU has them (their loops run 4 or 8 doubles wide
# instead of 2). GCC and Clang only; elsewhere the baseline module serves alone.
ISA_LEVEL_FLAGS = {
    # Exactly the features gmmfast_cpu_level() in src/_cpu_level.h checks before loading them.
    "x86_64_v3": ["-mavx2", "-mfma", "-mbmi", "-mbmi2"],
    "x86_64_v4": ["-mavx2", "-mfma", "-mbmi", "-mbmi2",
                  "-mavx512f", "-mavx512bw", "-mavx512cd", "-mavx512dq", "-mavx512vl"],
}

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "nonecheck": False,
    "cdivision": True,
    "embedsignature": True,
}


def _openmp_flags(compiler):
    """Candidate (compile_args, link_args) for the compiler in use, best first."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    if sys.platform == "darwin":
        # Apple clang needs the preprocessor flag and Homebrew's libomp.
        return [
            (["-Xpreprocessor", "-fopenmp"], ["-lomp"]),
            (["-fopenmp"], ["-fopenmp"]),
        ]
    return [(["-fopenmp"], ["-fopenmp"])]


def _probe_openmp(compiler):
    """Return the working OpenMP flags, or None when no candidate compiles, links and runs."""
    for compile_args, link_args in _openmp_flags(compiler):
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(tmp, "probe_openmp.c")
            source.write_text(OPENMP_PROBE)
            try:
                objects = compiler.compile(
                    [str(source)], output_dir=tmp, extra_postargs=compile_args
                )
                exe = str(Path(tmp, "probe_openmp"))
                compiler.link_executable(objects, exe, extra_postargs=link_args)
                if compiler.compiler_type == "msvc":
                    exe += ".exe"
                out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
            except Exception:  # compile, link or run failure: try the next candidate
                continue
            if out.returncode == 0:
                return compile_args, link_args
    return None


def available_cores():
    """The cores this process may run on (its affinity mask, not the machine's total)."""
    if hasattr(os, "process_cpu_count"):  # Python 3.13
        return os.process_cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class BuildExtWithOpenMP(build_ext):
    def finalize_options(self):
        super().finalize_options()
        # pip has no way to pass -j, and the modules are independent: unless the user chose
        # (build_ext -j N, or --parallel in setup.cfg), compile one module per core.
        if self.parallel is None:
            self.parallel = available_cores()

    def build_extensions(self):
        flags = _probe_openmp(self.compiler)
        require = os.environ.get("GMMFAST_REQUIRE_OPENMP", "0") not in ("", "0")
        if flags is None and require:
            raise RuntimeError(
                "GMMFAST_REQUIRE_OPENMP is set but the compiler cannot build and run an "
                "OpenMP program. Install an OpenMP runtime (libgomp, libomp) or unset "
                "GMMFAST_REQUIRE_OPENMP to build a single-threaded gmmfast."
            )
        if flags is None:
            print("gmmfast: OpenMP not available; building single-threaded kernels")
        compile_args, link_args = flags if flags else ([], [])
        optimise = [] if self.compiler.compiler_type == "msvc" else [
            "-O3",
            # Let sums over the samples of a chunk vectorise (reassociation only: no
            # finite-math assumptions, so infinities and NaN keep their meaning). The
            # order is fixed by the code, so results stay identical for any thread count.
            "-fassociative-math",
            "-fno-signed-zeros",
            "-fno-trapping-math",
            # sqrt and log never set errno, so the loops that call them can vectorise.
            "-fno-math-errno",
        ]
        isa_capable = self.compiler.compiler_type != "msvc" and _targets_x86_64()
        if not isa_capable:
            self.extensions = [e for e in self.extensions if _isa_level(e.name) is None]
        for ext in self.extensions:
            level = _isa_level(ext.name)
            isa = ISA_LEVEL_FLAGS[level] if level else []
            ext.extra_compile_args = optimise + isa + compile_args + ext.extra_compile_args
            ext.extra_link_args = link_args + ext.extra_link_args
        super().build_extensions()


def _isa_level(module_name):
    """The x86-64 level a module is built for (``gmmfast._em_x86_64_v3`` -> x86_64_v3)."""
    for level in ISA_LEVEL_FLAGS:
        if module_name.endswith("_" + level):
            return level
    return None


def _targets_x86_64():
    """True when the extensions are compiled for x86-64 (not arm64, not a 32-bit x86)."""
    platform = sysconfig.get_platform().lower()
    if "universal2" in platform or "arm64" in platform or "aarch64" in platform:
        return False
    return platform.endswith(("x86_64", "amd64")) and sys.maxsize > 2**32


def extensions():
    macros = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
    modules = sorted(p.stem for p in (HERE / "src").glob("_*.pyx"))
    if not modules:
        # An sdist without its .pyx files would otherwise build a pure-Python wheel that
        # fails at import; say so at build time instead.
        raise RuntimeError(f"no Cython sources src/_*.pyx found under {HERE}")
    # NumPy's headers: _mstep_core allocates and reads arrays through NumPy's C API (the
    # kernels themselves take typed memoryviews only).
    # The C headers are compiled into every module; naming them makes build_ext recompile
    # when only a header changed (Cython's .c files do not change then).
    headers = sorted(f"src/{p.name}" for p in (HERE / "src").glob("*.h"))
    return [
        Extension(f"gmmfast.{name}", [f"src/{name}.pyx"], define_macros=macros,
                  include_dirs=["src", numpy.get_include()], depends=headers)
        for name in modules
    ]


setup(
    ext_modules=cythonize(
        extensions(),
        include_path=[str(HERE)],
        compiler_directives=CYTHON_DIRECTIVES,
    ),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
