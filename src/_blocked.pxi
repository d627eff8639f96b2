# The kernels of src/_blocked.h and src/_blocked_kernels.h (whole blocks of rows, one vector
# register each) for the compute type ``floating``, and the chunk transposes.

cdef extern from "_blocked.h":
    # Full-covariance kernels over whole blocks of rows (see src/_blocked.h).
    const Py_ssize_t ROW_BLOCK_F64 "GMMFAST_ROW_BLOCK_F64"
    const Py_ssize_t ROW_BLOCK_F32 "GMMFAST_ROW_BLOCK_F32"
    # log_prob[i] = log_norm − ‖y_i U − offset‖² / 2 (U upper-triangular),
    # i < n_blocks * row block.
    void whiten_log_prob_blocks_f64 "gmmfast_whiten_log_prob_blocks_f64"(
        const double* y, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* U, const double* offset, double log_norm,
        double* log_prob) noexcept nogil
    void whiten_log_prob_blocks_f32 "gmmfast_whiten_log_prob_blocks_f32"(
        const float* y, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* U, const float* offset, float log_norm,
        float* log_prob) noexcept nogil
    # diff = x − shift, wd = r ⊙ diff, sums += Σ_i wd, over i < n_blocks * row block.
    void weighted_differences_f64 "gmmfast_weighted_differences_f64"(
        const double* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* r, const double* shift, double* diff, double* wd,
        double* sums) noexcept nogil
    void weighted_differences_f32 "gmmfast_weighted_differences_f32"(
        const float* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* r, const float* shift, float* diff, float* wd,
        double* sums) noexcept nogil
    # z = diff U (whitened rows, diff's layout), i < n_blocks * row block.
    void whiten_rows_f64 "gmmfast_whiten_rows_f64"(
        const double* diff, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* U, double* z) noexcept nogil
    void whiten_rows_f32 "gmmfast_whiten_rows_f32"(
        const float* diff, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* U, float* z) noexcept nogil
    # log_prob[i] = log_norm − Σ_j (z[j][i] − offset[j])² / 2, i < n_blocks * row block.
    void offset_log_prob_blocks_f64 "gmmfast_offset_log_prob_blocks_f64"(
        const double* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* offset, double log_norm, double* log_prob) noexcept nogil
    void offset_log_prob_blocks_f32 "gmmfast_offset_log_prob_blocks_f32"(
        const float* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* offset, float log_norm, float* log_prob) noexcept nogil
    # log_prob[i] = log_norm − Σ_j ((x[j][i] − mean[j]) · inv_std[j])² / 2,
    # i < n_blocks * row block.
    void diag_log_prob_blocks_f64 "gmmfast_diag_log_prob_blocks_f64"(
        const double* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* mean, const double* inv_std, double log_norm,
        double* log_prob) noexcept nogil
    void diag_log_prob_blocks_f32 "gmmfast_diag_log_prob_blocks_f32"(
        const float* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* mean, const float* inv_std, float log_norm,
        float* log_prob) noexcept nogil
    # Σ_i r[i] over i < n_blocks * row block.
    double block_total_f64 "gmmfast_block_total_f64"(
        const double* r, Py_ssize_t n_blocks) noexcept nogil
    # sums[j] += Σ_i r[i] t and squares[j] += Σ_i r[i] t² (unless squares is NULL),
    # t = x[j][i] − shift[j], i < n_blocks * row block; ``sparse``: skip the blocks of r
    # that are all zero.
    void diag_moments_blocks_f64 "gmmfast_diag_moments_blocks_f64"(
        const double* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* r, const double* shift, double* sums, double* squares,
        bint sparse) noexcept nogil
    # row_weight[i] += r[i], i < n_blocks * row block; returns Σ_i r[i].
    double row_weight_blocks_f64 "gmmfast_row_weight_blocks_f64"(
        const double* r, Py_ssize_t n_blocks, double* row_weight) noexcept nogil
    # C[j * D + l] += Σ_i wd[j][i] · diff[l][i] for j <= l, i < n_blocks * row block.
    void scatter_blocks_f64 "gmmfast_scatter_blocks_f64"(
        const double* wd, const double* diff, Py_ssize_t stride, Py_ssize_t n_blocks,
        Py_ssize_t n_features, double* C) noexcept nogil
    void scatter_blocks_f32 "gmmfast_scatter_blocks_f32"(
        const float* wd, const float* diff, Py_ssize_t stride, Py_ssize_t n_blocks,
        Py_ssize_t n_features, double* C) noexcept nogil
    # dst[j * dst_stride + i] = src[i * src_stride + j], i < rows, j < cols.
    void transpose_f64 "gmmfast_transpose_f64"(
        const double* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
        double* dst, Py_ssize_t dst_stride) noexcept nogil
    void transpose_f32 "gmmfast_transpose_f32"(
        const float* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
        float* dst, Py_ssize_t dst_stride) noexcept nogil
    # The same with dst[j * dst_stride + i] multiplied by scale[j].
    void transpose_scaled_f64 "gmmfast_transpose_scaled_f64"(
        const double* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
        double* dst, Py_ssize_t dst_stride, const double* scale) noexcept nogil
    void transpose_scaled_f32 "gmmfast_transpose_scaled_f32"(
        const float* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
        float* dst, Py_ssize_t dst_stride, const float* scale) noexcept nogil
    # dst[i] = src[i], i < n, with non-temporal stores (outputs larger than the caches).
    void stream_copy_f64 "gmmfast_stream_copy_f64"(
        double* dst, const double* src, Py_ssize_t n) noexcept nogil
    void stream_copy_f32 "gmmfast_stream_copy_f32"(
        float* dst, const float* src, Py_ssize_t n) noexcept nogil
    # Whether the memory at p (start, middle and end pages) is already mapped in (Linux).
    bint pages_resident "gmmfast_pages_resident"(const void* p, size_t nbytes) noexcept nogil
    # The rows with r != 0 (n_kept of them), in order, into kept (D × n_kept) and kept_r.
    Py_ssize_t gather_rows_f64 "gmmfast_gather_rows_f64"(
        const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const double* r,
        Py_ssize_t n_kept, double* kept, double* kept_r) noexcept nogil
    Py_ssize_t gather_rows_f32 "gmmfast_gather_rows_f32"(
        const float* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const float* r,
        Py_ssize_t n_kept, float* kept, float* kept_r) noexcept nogil


cdef enum:
    # The widest row block of either type: the size of the kernels' on-stack tail buffers.
    MAX_ROW_BLOCK = 16


cdef inline Py_ssize_t _row_block(const floating* typed) noexcept nogil:
    """Rows per block of src/_blocked.h for the compute type (``typed`` is not read)."""
    if floating is double:
        return ROW_BLOCK_F64
    else:
        return ROW_BLOCK_F32


cdef inline void _transpose(
    const floating* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
    floating* dst, Py_ssize_t dst_stride,
) noexcept nogil:
    """dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols."""
    if floating is double:
        transpose_f64(src, src_stride, rows, cols, dst, dst_stride)
    else:
        transpose_f32(src, src_stride, rows, cols, dst, dst_stride)


cdef inline void _transpose_scaled(
    const floating* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
    floating* dst, Py_ssize_t dst_stride, const floating* scale,
) noexcept nogil:
    """dst[j * dst_stride + i] = src[i * src_stride + j] · scale[j]."""
    if floating is double:
        transpose_scaled_f64(src, src_stride, rows, cols, dst, dst_stride, scale)
    else:
        transpose_scaled_f32(src, src_stride, rows, cols, dst, dst_stride, scale)


cdef inline void _stream_copy(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    if floating is double:
        stream_copy_f64(dst, src, n)
    else:
        stream_copy_f32(dst, src, n)


cdef inline void _transpose_chunk(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, floating* xt,
) noexcept nogil:
    _transpose(X, n_features, n_rows, n_features, xt, n_rows)


cdef inline void _whiten_log_prob_blocks(
    const floating* y, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* U, const floating* offset, floating log_norm, floating* log_prob,
) noexcept nogil:
    if floating is double:
        whiten_log_prob_blocks_f64(y, stride, n_blocks, n_features, U, offset, log_norm,
                                   log_prob)
    else:
        whiten_log_prob_blocks_f32(y, stride, n_blocks, n_features, U, offset, log_norm,
                                   log_prob)


cdef inline void _whiten_rows(
    const floating* diff, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* U, floating* z,
) noexcept nogil:
    if floating is double:
        whiten_rows_f64(diff, stride, n_blocks, n_features, U, z)
    else:
        whiten_rows_f32(diff, stride, n_blocks, n_features, U, z)


cdef inline void _offset_log_prob_blocks(
    const floating* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* offset, floating log_norm, floating* log_prob,
) noexcept nogil:
    if floating is double:
        offset_log_prob_blocks_f64(z, stride, n_blocks, n_features, offset, log_norm,
                                   log_prob)
    else:
        offset_log_prob_blocks_f32(z, stride, n_blocks, n_features, offset, log_norm,
                                   log_prob)


cdef inline void _diag_log_prob_blocks(
    const floating* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* mean, const floating* inv_std, floating log_norm, floating* log_prob,
) noexcept nogil:
    if floating is double:
        diag_log_prob_blocks_f64(xt, stride, n_blocks, n_features, mean, inv_std, log_norm,
                                 log_prob)
    else:
        diag_log_prob_blocks_f32(xt, stride, n_blocks, n_features, mean, inv_std, log_norm,
                                 log_prob)


cdef inline Py_ssize_t _gather_responsible_rows(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const floating* r,
    Py_ssize_t n_kept, floating* kept_xt, floating* kept_r,
) noexcept nogil:
    """Copy the rows with r != 0 (n_kept of them) into kept_xt (D × n_kept), kept_r."""
    if floating is double:
        return gather_rows_f64(xt, n_rows, n_features, r, n_kept, kept_xt, kept_r)
    else:
        return gather_rows_f32(xt, n_rows, n_features, r, n_kept, kept_xt, kept_r)


