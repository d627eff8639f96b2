"""gmmfast's C-level API: where its ``.pxd`` files are, and which version of them this is.

The public C-level API is the set of ``cdef`` functions declared in ``gmmfast/_em.pxd`` and
``gmmfast/_kmeans.pxd`` (see ``docs/c_api.md``). Other Cython modules ``cimport`` them and
call them through Cython's cross-module function import (each compiled module's
``__pyx_capi__``), so a downstream build needs only :func:`get_include` on its include path
and gmmfast importable at run time.

The API is versioned by :data:`C_API_VERSION`. ``DECLARATION_DIGESTS`` records, for every
version, a SHA-256 of each public ``.pxd`` file's declarations with comments and layout
normalised away; ``tests/test_c_api.py`` fails when a shipped ``.pxd`` no longer matches the
digests of the current version. Changing a declaration therefore means: bump
``C_API_VERSION`` and add its digests (``python -m gmmfast._capi`` prints them) as a new
entry. Released entries are never edited.
"""

import hashlib
import re
from pathlib import Path

C_API_VERSION = 1

# The .pxd files whose declarations are the public C-level API. gmmfast's other .pxd files
# (_chunking.pxd, _ndarray.pxd, _openmp.pxd) are internal and may change in any release.
PUBLIC_PXD = ("_em.pxd", "_kmeans.pxd")

# Append-only: one entry per C API version, {pxd file name: digest of its declarations}.
DECLARATION_DIGESTS = {
    1: {
        "_em.pxd": "1b2359d229a4005994b849b29209eb8fef5f33e1e8286b4e56fd653723b91330",
        "_kmeans.pxd": "f402c92475e9840508e8b66c589f02a449d2f493e12f9c45765674664578e22b",
    },
}

_PUNCTUATION = r"[()\[\],:*=<>]"


def get_include():
    """The folder to add to a Cython build's include path to ``cimport`` gmmfast's kernels.

    It is the folder that *contains* the installed ``gmmfast`` package, so that
    ``from gmmfast._em cimport log_prob_full`` finds ``gmmfast/_em.pxd`` (as
    ``numpy.get_include()`` does for NumPy's headers).
    """
    return str(Path(__file__).resolve().parent.parent)


def normalise_declarations(text):
    """A ``.pxd`` file's declarations as one canonical string.

    Comments, blank lines, line breaks, indentation, spacing around punctuation and trailing
    commas do not change the result; a changed name, type, qualifier, argument or function
    does.
    """
    code = " ".join(line.split("#", 1)[0] for line in text.splitlines())
    code = " ".join(code.split())
    code = re.sub(rf"\s*({_PUNCTUATION})\s*", r"\1", code)
    return re.sub(r",\)", ")", code)


def declaration_digest(text):
    """SHA-256 (hex) of :func:`normalise_declarations` of a ``.pxd`` file's text."""
    return hashlib.sha256(normalise_declarations(text).encode("utf-8")).hexdigest()


def declaration_digests(folder=None):
    """{pxd file name: digest} for the public ``.pxd`` files in ``folder`` (default: this
    installed package)."""
    folder = Path(folder) if folder is not None else Path(__file__).resolve().parent
    return {
        name: declaration_digest((folder / name).read_text(encoding="utf-8"))
        for name in PUBLIC_PXD
    }


if __name__ == "__main__":  # pragma: no cover - maintainer's helper
    print(f"C_API_VERSION = {C_API_VERSION}; digests of the .pxd files in this package:")
    for pxd_name, digest in declaration_digests().items():
        print(f'        "{pxd_name}": "{digest}",')
