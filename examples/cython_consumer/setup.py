"""Build ``gmm_consumer`` against the installed gmmfast's ``.pxd`` files.

The only thing gmmfast contributes to the build is its include folder, so that
``from gmmfast._em cimport ...`` finds ``gmmfast/_em.pxd``; no C header or library of
gmmfast's is compiled or linked in. The cimported functions are looked up at import time in
the compiled ``gmmfast._em`` module (Cython's ``__pyx_capi__`` mechanism).
"""

import sys

import gmmfast
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExtWithOpenMP(build_ext):
    """OpenMP for our own prange loop, where the compiler has it without extra libraries."""

    def build_extensions(self):
        if self.compiler.compiler_type == "msvc":
            compile_args, link_args = ["/openmp"], []
        elif sys.platform == "darwin":
            # Apple clang has no OpenMP runtime: the prange loop runs serially (same
            # numbers). With Homebrew's libomp, pass -Xpreprocessor -fopenmp -lomp instead.
            compile_args, link_args = [], []
        else:
            compile_args, link_args = ["-fopenmp"], ["-fopenmp"]
        for ext in self.extensions:
            ext.extra_compile_args += compile_args
            ext.extra_link_args += link_args
        super().build_extensions()


print(f"gmm_consumer: building against gmmfast {gmmfast.__version__} "
      f"(C API {gmmfast.C_API_VERSION}) from {gmmfast.get_include()}")

setup(
    ext_modules=cythonize(
        [Extension("gmm_consumer", ["gmm_consumer.pyx"])],
        include_path=[gmmfast.get_include()],
        compiler_directives={"language_level": 3},
    ),
    cmdclass={"build_ext": BuildExtWithOpenMP},
)
