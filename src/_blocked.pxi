# The kernels of src/_blocked.h and src/_blocked_kernels.h (whole blocks of rows, one vector
# register each) for the compute type ``floating``, and the chunk transposes.

from libc.stdint cimport uint64_t

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
    # z = (x − centre) U (whitened rows, xt's layout), i < n_blocks * row block.
    void whiten_rows_f64 "gmmfast_whiten_rows_f64"(
        const double* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* centre, const double* U, double* z) noexcept nogil
    void whiten_rows_f32 "gmmfast_whiten_rows_f32"(
        const float* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* centre, const float* U, float* z) noexcept nogil
    # log_prob[c * out_stride + i] = log_norm[c] − Σ_j (z[j][i] − offsets[c * D + j])² / 2,
    # c < n_components, i < n_blocks * row block.
    void tied_log_prob_blocks_f64 "gmmfast_tied_log_prob_blocks_f64"(
        const double* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        Py_ssize_t n_components, const double* offsets, const double* log_norm,
        double* log_prob, Py_ssize_t out_stride) noexcept nogil
    void tied_log_prob_blocks_f32 "gmmfast_tied_log_prob_blocks_f32"(
        const float* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        Py_ssize_t n_components, const float* offsets, const float* log_norm,
        float* log_prob, Py_ssize_t out_stride) noexcept nogil
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
    # sums[j] += Σ_i r[i] t and squares[j] += Σ_i r[i] t² (unless squares is NULL),
    # t = x[j][i] − shift[j], i < n_blocks * row block, with r[i] · scale[i] for r[i]
    # unless scale is NULL; returns Σ_i r[i] (scaled likewise). ``sparse``: skip the blocks
    # of r that are all zero.
    double diag_moments_blocks_f64 "gmmfast_diag_moments_blocks_f64"(
        const double* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* r, const double* scale, const double* shift, double* sums,
        double* squares, bint sparse) noexcept nogil
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
    # Components (and blocks of rows) per register tile of tied_log_prob_blocks.
    enum: TIED_TILE "GMMFAST_TIED_TILE"
    # Bytes per cache line of prefetch_lines.
    const Py_ssize_t CACHE_LINE "GMMFAST_CACHE_LINE"
    # Lines first .. end − 1 from p on asked for into the L1 (into_l1) or L2 cache,
    # without waiting.
    void prefetch_lines "gmmfast_prefetch_lines"(
        const void* p, Py_ssize_t first, Py_ssize_t end, bint into_l1) noexcept nogil
    # Whether the memory at p (start, middle and end pages) is already mapped in (Linux).
    bint pages_resident "gmmfast_pages_resident"(const void* p, size_t nbytes) noexcept nogil
    # Bit i % 64 of rows[i / 64]: r[i] != 0, i < m; returns their number, *blocks that of
    # the blocks of 8 rows with one.
    Py_ssize_t nonzero_rows_f64 "gmmfast_nonzero_rows_f64"(
        const double* r, Py_ssize_t m, uint64_t* rows, Py_ssize_t* blocks) noexcept nogil
    Py_ssize_t nonzero_rows_f32 "gmmfast_nonzero_rows_f32"(
        const float* r, Py_ssize_t m, uint64_t* rows, Py_ssize_t* blocks) noexcept nogil
    # Σ r (x − c), and the diag moments (as diag_moments_blocks_f64's) into ``squares`` or the
    # upper triangle of Σ r (x − c)(x − c)ᵀ (D × D row-major) into ``scatter`` (either may be
    # NULL), over the rows marked in ``rows``, one row of x (m × d, as stored,
    # d <= ROW_MOMENTS_MAX_FEATURES) at a time.
    const Py_ssize_t ROW_MOMENTS_MAX_FEATURES "GMMFAST_ROW_MOMENTS_MAX_FEATURES"
    double moments_rows_f64 "gmmfast_moments_rows_f64"(
        const double* x, Py_ssize_t m, Py_ssize_t d, const double* r, const double* scale,
        const uint64_t* rows, const double* shift, double* sums, double* squares,
        double* scatter) noexcept nogil
    # float32 rows and responsibilities, widened to float64 as they load.
    double moments_rows_f32 "gmmfast_moments_rows_f32"(
        const float* x, Py_ssize_t m, Py_ssize_t d, const float* r, const float* scale,
        const uint64_t* rows, const float* shift, double* sums, double* squares,
        double* scatter) noexcept nogil
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


cdef inline Py_ssize_t _nonzero_rows(
    const floating* r, Py_ssize_t m, uint64_t* rows, Py_ssize_t* blocks,
) noexcept nogil:
    """nonzero_rows_f64 or _f32, for the compute type."""
    if floating is double:
        return nonzero_rows_f64(r, m, rows, blocks)
    else:
        return nonzero_rows_f32(r, m, rows, blocks)


cdef inline double _moments_rows(
    const floating* x, Py_ssize_t m, Py_ssize_t d, const floating* r, const floating* scale,
    const uint64_t* rows, const floating* shift, double* sums, double* squares,
    double* scatter,
) noexcept nogil:
    """moments_rows_f64 or _f32, for the compute type."""
    if floating is double:
        return moments_rows_f64(x, m, d, r, scale, rows, shift, sums, squares, scatter)
    else:
        return moments_rows_f32(x, m, d, r, scale, rows, shift, sums, squares, scatter)


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


cdef enum:
    # Chunks of at most this many bytes are asked for into the L1 cache, larger ones into
    # L2: a 16 KB chunk (10⁶ × 8 float64, K = 16, diag) into L1 made the pass 2 % faster
    # than into L2, a 64 KB one (200 000 × 32, K = 8, full) 1–2 % slower, crowding out of
    # a 32 KB L1 the data the current chunk is computed on.
    L1_LOOKAHEAD_MAX_BYTES = 16384


cdef struct Lookahead:
    # The next chunk's rows, asked for a share at a time while the current chunk is
    # computed: its transpose then reads them from the cache instead of waiting on
    # memory. Asked for all at once, more lines than the cache can have on their way at a
    # time, about half of the wait remained; so the shares are spread over the densities'
    # loop over the components (_fetch_share).
    const void* rows  # NULL: no next chunk
    Py_ssize_t lines  # of CACHE_LINE bytes
    Py_ssize_t asked  # lines asked for so far
    bint into_l1      # else into L2 (see L1_LOOKAHEAD_MAX_BYTES)


cdef inline Lookahead _next_chunk(
    const floating* X, Py_ssize_t n_features, Py_ssize_t row0, Py_ssize_t row_end,
) noexcept nogil:
    """The chunk of X's rows from ``row0`` on (CHUNK_ROWS of them, none from ``row_end``
    on), not yet asked for: the cache lines that hold them."""
    cdef Py_ssize_t n_bytes = (min(<Py_ssize_t> CHUNK_ROWS, row_end - row0) * n_features
                               * <Py_ssize_t> sizeof(floating))
    cdef const char* first = <const char*> (X + row0 * n_features)
    cdef Py_ssize_t into_line = <size_t> first % CACHE_LINE
    cdef Lookahead ahead
    ahead.rows = first - into_line if n_bytes > 0 else NULL
    ahead.lines = (into_line + n_bytes + CACHE_LINE - 1) // CACHE_LINE if n_bytes > 0 else 0
    ahead.asked = 0
    ahead.into_l1 = n_bytes <= L1_LOOKAHEAD_MAX_BYTES
    return ahead


cdef inline void _fetch_share(
    Lookahead* ahead, Py_ssize_t part, Py_ssize_t parts,
) noexcept nogil:
    """Ask for the lines of shares 0 .. ``part`` of ``parts`` equal ones that are not asked
    for yet (nothing when ``ahead`` is NULL)."""
    if ahead == NULL or ahead.rows == NULL:
        return
    cdef Py_ssize_t end = (part + 1) * ahead.lines // parts
    if end > ahead.asked:
        prefetch_lines(ahead.rows, ahead.asked, end, ahead.into_l1)
        ahead.asked = end


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
    const floating* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* centre, const floating* U, floating* z,
) noexcept nogil:
    if floating is double:
        whiten_rows_f64(xt, stride, n_blocks, n_features, centre, U, z)
    else:
        whiten_rows_f32(xt, stride, n_blocks, n_features, centre, U, z)


cdef inline void _tied_log_prob_blocks(
    const floating* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    Py_ssize_t n_components, const floating* offsets, const floating* log_norm,
    floating* log_prob, Py_ssize_t out_stride,
) noexcept nogil:
    if floating is double:
        tied_log_prob_blocks_f64(z, stride, n_blocks, n_features, n_components, offsets,
                                 log_norm, log_prob, out_stride)
    else:
        tied_log_prob_blocks_f32(z, stride, n_blocks, n_features, n_components, offsets,
                                 log_norm, log_prob, out_stride)


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


