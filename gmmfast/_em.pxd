# Chunk-level kernels of gmmfast's EM core, callable from other Cython code without the GIL.
#
# Conventions shared by every function below:
# - ``X`` points at row ``0`` of a C-contiguous (n_rows, n_features) block of float32 or
#   float64 samples; kernels read rows [0, n_rows) only.
# - Model parameters are float64, C-contiguous:
#   ``means`` (n_components, n_features); ``precisions_chol`` (n_components, n_features,
#   n_features) upper-triangular U with U Uᵀ = Σ⁻¹ (full) or (n_components, n_features)
#   1/σ (diag); ``log_norm`` (n_components,) = log π_k + log det U_k − ½ D log 2π.
# - ``log_prob`` is an (n_rows, n_components) C-contiguous float64 scratch/output block.
# - Accumulators are float64 and are *added to*, never overwritten.

from cython cimport floating


cdef void log_prob_full(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* diff, double* log_prob,
) noexcept nogil

cdef void log_prob_diag(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* log_prob,
) noexcept nogil

cdef double log_prob_to_resp(
    double* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components,
    const double* sample_weight, double* log_prob_norm,
) noexcept nogil

cdef void accumulate_full(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter, double* diff,
) noexcept nogil

cdef void accumulate_diag(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter,
) noexcept nogil
