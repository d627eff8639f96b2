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

import numpy  # noqa: F401  (build requirement; imported so a missing numpy fails early)
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


class BuildExtWithOpenMP(build_ext):
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
        for ext in self.extensions:
            ext.extra_compile_args = optimise + compile_args + ext.extra_compile_args
            ext.extra_link_args = link_args + ext.extra_link_args
        super().build_extensions()


def extensions():
    macros = [("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")]
    modules = sorted(p.stem for p in (HERE / "src").glob("_*.pyx"))
    if not modules:
        # An sdist without its .pyx files would otherwise build a pure-Python wheel that
        # fails at import; say so at build time instead.
        raise RuntimeError(f"no Cython sources src/_*.pyx found under {HERE}")
    return [
        Extension(f"gmmfast.{name}", [f"src/{name}.pyx"], define_macros=macros)
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
