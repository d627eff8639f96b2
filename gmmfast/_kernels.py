"""The compiled kernels for this CPU.

``gmmfast._em`` and ``gmmfast._kmeans`` are built for the x86-64 baseline (and hold the
public C API). x86-64 builds also contain the same sources compiled for wider vector units,
``gmmfast._em_x86_64_v3`` (AVX2, FMA) and ``gmmfast._em_x86_64_v4`` (AVX-512), likewise for
``_kmeans``; ``em`` and ``kmeans`` are the widest variant the CPU runs. The environment
variable ``GMMFAST_KERNELS`` (``baseline``, ``x86_64_v3``, ``x86_64_v4``) caps the choice,
e.g. to compare variants or to rule one out.
"""

import importlib
import os
import warnings

from gmmfast import _em, _kmeans

# Widest first, with the cpu_level() each needs.
VARIANTS = (("x86_64_v4", 4), ("x86_64_v3", 3), ("baseline", 0))
VARIANT_NAMES = tuple(name for name, _ in VARIANTS)


def available_variants():
    """Variants this build contains and this CPU can run, widest first."""
    level = _em.cpu_level()
    return [name for name, needed in VARIANTS if level >= needed and _load(name) is not None]


def _load(name):
    """(em, kmeans) modules of variant ``name``, or None when this build lacks them."""
    if name == "baseline":
        return _em, _kmeans
    try:
        return (importlib.import_module(f"gmmfast._em_{name}"),
                importlib.import_module(f"gmmfast._kmeans_{name}"))
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


variant, (em, kmeans) = _select()


def variant_modules(name):
    """(em, kmeans) modules of variant ``name`` (the tests check every variant)."""
    if name not in available_variants():
        raise ValueError(f"kernel variant {name!r} is not available here")
    return _load(name)
