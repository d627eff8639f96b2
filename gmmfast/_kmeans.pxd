# Chunk-level k-means kernels of gmmfast, callable from other Cython code without the GIL.
# ``X`` points at row 0 of a C-contiguous (n_rows, n_features) float32/float64 block;
# centres are float64 (n_clusters, n_features) C-contiguous.

from cython cimport floating


cdef double sq_distance(
    const floating* x, const double* center, Py_ssize_t n_features
) noexcept nogil

# Assign each row to its nearest centre (labels OUT, first on ties) and add to ``acc``
# (float64, IN/OUT): [Σ w d² | counts (n_clusters) | Σ w (x − centre) (n_clusters × D)].
# sample_weight may be NULL (unit weights).
cdef void lloyd_chunk(
    const floating* X, const double* sample_weight, Py_ssize_t n_rows,
    Py_ssize_t n_features, const double* centers, Py_ssize_t n_clusters,
    long long* labels, double* acc,
) noexcept nogil
