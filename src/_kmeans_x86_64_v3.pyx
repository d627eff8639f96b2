"""``gmmfast._kmeans``, compiled for x86-64-v3 (see ``ISA_LEVEL_FLAGS`` in setup.py).

Same source, same results up to rounding (FMA contraction); ``gmmfast._kernels`` imports it
instead of the baseline module on CPUs that have the instruction sets.
"""

include "_kmeans.pyx"
