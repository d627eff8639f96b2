"""What this build of gmmfast is: version, OpenMP, threads, kernel variant."""

import sys

from gmmfast import _em, _kernels
from gmmfast._version import __version__


def config():
    """The build and runtime facts :func:`show_config` prints, as a dict."""
    try:
        import sklearn

        sklearn_version = sklearn.__version__
    except ImportError:
        sklearn_version = None
    import numpy
    import scipy

    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn_version,
        "openmp": _em.openmp_enabled(),
        "default_threads": _em.max_threads(),
        "rows_per_chunk": _em.ROWS_PER_CHUNK,
        "kernels": _kernels.variant,
        "kernels_available": _kernels.available_variants(),
    }


def show_config(file=None):
    """Print the version, OpenMP, default threads and the kernel variant in use."""
    info = config()
    openmp = "on" if info["openmp"] else "off (single-threaded build)"
    lines = [
        f"gmmfast {info['version']}",
        f"  OpenMP:          {openmp}",
        f"  default threads: {info['default_threads']}",
        f"  rows per chunk:  {info['rows_per_chunk']}",
        f"  kernels:         {info['kernels']} "
        f"(available here: {', '.join(info['kernels_available'])})",
        f"  python {info['python']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"scikit-learn {info['scikit-learn'] or 'not installed'}",
    ]
    print("\n".join(lines), file=file or sys.stdout)
