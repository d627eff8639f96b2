# Chunk-level kernels of gmmfast's EM core, callable from other Cython code without the GIL.
#
# Conventions shared by every function below (m = n_rows of the chunk, at most a few hundred):
# - A chunk of samples is passed transposed: ``xt`` is an (n_features, m) C-contiguous float64
#   block, xt[j * m + i] = feature j of row i (``transpose_chunk`` builds it from rows).
# - Model parameters are float64, C-contiguous:
#   ``means`` (n_components, n_features); ``precisions_chol`` (n_components, n_features,
#   n_features) upper-triangular U with U Uᵀ = Σ⁻¹ (full) or (n_components, n_features)
#   1/σ (diag); ``log_norm`` (n_components,) = log π_k + log det U_k − ½ D log 2π.
# - Per-row, per-component blocks (``log_prob``, ``resp``) are component-major
#   (n_components, m) float64: entry [c * m + i].
# - Accumulators are float64 and are *added to*, never overwritten.

from cython cimport floating


cdef void transpose_chunk(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, double* xt,
) noexcept nogil

cdef void log_prob_full(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* work, double* log_prob,
) noexcept nogil

cdef void log_prob_diag(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* log_prob,
) noexcept nogil

cdef double log_prob_to_resp(
    double* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components,
    const double* sample_weight, double* log_prob_norm, double* work,
) noexcept nogil

cdef void accumulate_full(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter, double* work,
) noexcept nogil

cdef void accumulate_diag(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter,
) noexcept nogil
