"""The compiled EM kernels for this CPU.

``gmmfast._em`` is built for the x86-64 baseline (and holds the public C API). x86-64 builds
also contain the same source compiled for wider vector units, ``gmmfast._em_x86_64_v3``
(AVX2, FMA) and ``gmmfast._em_x86_64_v4`` (AVX-512); ``em`` is the widest one the CPU runs.
The environment variable ``GMMFAST_KERNELS`` (``baseline``, ``x86_64_v3``, ``x86_64_v4``)
caps the choice, e.g. to compare variants or to rule one out.
"""

import importlib
import os
import warnings

from gmmfast import _em

# Widest first, with the cpu_level() each needs.
VARIANTS = (("x86_64_v4", 4), ("x86_64_v3", 3), ("baseline", 0))
VARIANT_NAMES = tuple(name for name, _ in VARIANTS)


def available_variants():
    """Variants this build contains and this CPU can run, widest first."""
    level = _em.cpu_level()
    return [name for name, needed in VARIANTS if level >= needed and _load(name) is not None]


def _load(name):
    if name == "baseline":
        return _em
    try:
        return importlib.import_module(f"gmmfast._em_{name}")
    except ImportError:
        return None  # not built for this platform or compiler


def _requested_cap():
    requested = os.environ.get("GMMFAST_KERNELS", "").strip() or VARIANT_NAMES[0]
    if requested not in VARIANT_NAMES:
        raise ValueError(
            f"GMMFAST_KERNELS={requested!r} is not a kernel variant; use one of "
            f"{', '.join(VARIANT_NAMES)}, or unset it to use the widest this CPU runs."
        )
    return requested


def _select():
    cap = _requested_cap()
    allowed = VARIANT_NAMES[VARIANT_NAMES.index(cap):]
    usable = [name for name in available_variants() if name in allowed]
    if usable[0] != cap and "GMMFAST_KERNELS" in os.environ:
        warnings.warn(
            f"GMMFAST_KERNELS={cap} is not available on this CPU or in this build; "
            f"using {usable[0]}.",
            RuntimeWarning,
            stacklevel=3,
        )
    return usable[0], _load(usable[0])


variant, em = _select()


def variant_module(name):
    """The kernel module of variant ``name`` (tests compare every variant)."""
    if name not in available_variants():
        raise ValueError(f"kernel variant {name!r} is not available here")
    return _load(name)
