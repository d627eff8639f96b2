# Accumulation of the sufficient statistics (Σ r, Σ r (x − c), Σ r (x − c)(x − c)ᵀ or its
# diagonal) from a chunk's responsibilities, the accumulator layout, and the sum of the
# groups' accumulators.

# The scatter kernels by number of features D: see WHITEN_BLAS_MIN_FEATURES.
cdef Py_ssize_t SCATTER_BLAS_MIN_FEATURES = 4
cdef Py_ssize_t SCATTER_SYRK_MIN_FEATURES = 24
# Fewer rows than this go to the blocked scatter even where gemm is used (D < 24):
# OpenBLAS's small-matrix dgemm (Aᵀ B) refuses K < 32, and its general path allocates its
# packing buffers under a process-wide lock, where two threads queue (7 % of a 2-thread
# pass on 2 000 000 × 16 data went to pthread_mutex_lock/unlock and futex waits).
cdef Py_ssize_t GEMM_MIN_ROWS = 32
# accumulate_full gathers a component's rows of non-zero responsibility from this many
# features on: below, the gather's branches cost more than the rows it saves (at D = 2 a
# pass took 2.1 ms with the gather, 1.3 ms without).
cdef Py_ssize_t GATHER_MIN_FEATURES = 4

# The blocked scatter keeps its two operands this far further apart than adjacent, where its
# work area of (2D + 2) m elements has room for it (m >= 8 doubles, 16 floats): with 256-row
# chunks and D = 8, diff[i] and weighted[i] would be 4 KiB apart, and the CPU stalls loads
# whose address matches a pending store's modulo 4 KiB.
cdef enum:
    OPERAND_GAP_BYTES = 128


cdef struct AccLayout:
    # Where each statistic sits in an accumulator of doubles:
    # [Σ w log p(x) | nk (K) | sums (K·D) | scatter (K·D·D full, K·D diag, D·D pooled)
    #  | pooled only: Σ_i v_i (x_i − c) (D), the pooled scatter kernel's by-product].
    # The pooled form (tied precisions) takes every moment about one common shift c and
    # keeps one scatter, Σ_i v_i (x_i − c)(x_i − c)ᵀ with v_i = Σ_k r_ik: summed over the
    # components, it is their scatters' sum about c (see _accumulate_pooled).
    Py_ssize_t k        # components
    Py_ssize_t d        # features
    bint full           # D×D scatter matrices (else their diagonals)
    bint pooled         # one D×D scatter for all the components, about one shift
    Py_ssize_t nk       # offset of nk (the log-likelihood is at 0)
    Py_ssize_t sums     # offset of sums
    Py_ssize_t scatter  # offset of scatter
    Py_ssize_t scatter_size  # elements of scatter
    Py_ssize_t row_sums  # offset of the pooled form's Σ_i v_i (x_i − c)
    Py_ssize_t size     # doubles in one accumulator


cdef inline AccLayout acc_layout(Py_ssize_t k, Py_ssize_t d, bint full,
                                 bint pooled) noexcept nogil:
    """The accumulator of K components in D features; ``full``: D×D scatter matrices;
    ``pooled`` (with ``full``): one of them, about one shift, for all the components."""
    cdef AccLayout layout
    layout.k = k
    layout.d = d
    layout.full = full
    layout.pooled = pooled and full
    layout.nk = 1
    layout.sums = 1 + k
    layout.scatter = 1 + k + k * d
    layout.scatter_size = d * d if layout.pooled else k * (d * d if full else d)
    layout.row_sums = layout.scatter + layout.scatter_size
    layout.size = layout.row_sums + (d if layout.pooled else 0)
    return layout


cdef void _accumulate_full(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    floating* resp, const floating* scale, const floating* shifts,
    double* nk, double* sums, double* scatter, floating* work, double* wide,
    const floating* x_rows,
) noexcept nogil:
    """Per component Σ r, Σ r (x − c) and the upper triangle of Σ r (x − c)(x − c)ᵀ; r is
    ``resp``, or the pass's unscaled terms times their row's factor (``scale``, see
    _scaled_resp). ``x_rows``: the chunk's rows as stored, or NULL.

    From GATHER_MIN_FEATURES features on, a component with at most half of the chunk's rows
    goes over those rows only: with at most ROW_MOMENTS_MAX_FEATURES features one row at a
    time (moments_rows_f64/_f32, reading ``x_rows`` and the factors as it goes, float32
    widened to float64; at D = 8, K = 16 the float64 pass took 0.69 of the time of gathering
    the rows and calling gemm), otherwise gathered first. A component that goes through a product over rows of ``xt``
    has its terms scaled in place first (``resp`` is then the pass's own scratch).
    """
    cdef Py_ssize_t c, i, n_kept, kept_blocks
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef floating* r
    cdef double total
    cdef floating* kept_xt
    cdef floating* kept_r
    cdef uint64_t kept_rows[(CHUNK_ROWS + 63) >> 6]  # a bit per row
    for c in range(n_components):
        r = resp + c * m
        if (x_rows != NULL and GATHER_MIN_FEATURES <= d <= ROW_MOMENTS_MAX_FEATURES
                and 16 <= m <= CHUNK_ROWS):
            n_kept = _nonzero_rows(r, m, kept_rows, &kept_blocks)
            if n_kept == 0:
                continue
            if 2 * n_kept <= m:
                nk[c] += _moments_rows(x_rows, m, d, r, scale, kept_rows, shifts + c * d,
                                       sums + c * d, NULL, scatter + c * d * d)
                continue
        if scale != NULL:
            for i in range(m):
                r[i] *= scale[i]
        total = 0.0
        n_kept = 0
        for i in range(m):
            total += r[i]
            n_kept += r[i] != 0
        if n_kept == 0:
            continue
        nk[c] += total
        if d >= GATHER_MIN_FEATURES and m >= 16 and 2 * n_kept <= m:
            # Layout: kept rows (D × n_kept), their r, then the kernel's own scratch, which
            # needs at most (2D + 2) n_kept elements: all within (2D + 2) m.
            kept_xt = work
            kept_r = work + d * n_kept
            _gather_responsible_rows(xt, m, d, r, n_kept, kept_xt, kept_r)
            _accumulate_component(kept_xt, n_kept, d, kept_r, shifts + c * d, sums + c * d,
                                  scatter + c * d * d, kept_r + n_kept, wide)
        else:
            _accumulate_component(xt, m, d, r, shifts + c * d, sums + c * d,
                                  scatter + c * d * d, work, wide)


cdef inline bint _moments_by_rows(
    const floating* r, Py_ssize_t m, Py_ssize_t d, const floating* x_rows, bint sparse,
    uint64_t* kept_rows,
) noexcept nogil:
    """Whether one component's moments over a chunk go row by row (moments_rows_f64,
    over the rows marked in ``kept_rows``, filled here: a bit per row of a chunk) rather
    than by blocks of rows.

    Only float64 under a raised floor (``sparse``), with the chunk's rows as stored
    (``x_rows``) of at most ROW_MOMENTS_MAX_FEATURES features. A row costs about eight
    vector operations per component it belongs to; a block of 8 rows with any of them,
    about four per feature and four more. Rows pay where a component's rows are few per
    block it has any in, as where separated clusters leave most rows one responsibility
    (d: ~1.3 per block), and not where every row has some of every component (8).
    """
    cdef Py_ssize_t n_kept, kept_blocks
    if floating is double:
        if (sparse and x_rows != NULL and d <= ROW_MOMENTS_MAX_FEATURES
                and m <= CHUNK_ROWS):
            n_kept = nonzero_rows_f64(r, m, kept_rows, &kept_blocks)
            return 8 * n_kept <= (4 * d + 4) * kept_blocks
    return False


cdef inline floating _scaled_resp(
    const floating* r, const floating* scale, Py_ssize_t i,
) noexcept nogil:
    """Row i's responsibility: r[i], or r[i] · scale[i] where the pass left its terms
    unscaled (_chunk_statistics), the product a scaling pass would have stored."""
    return r[i] if scale == NULL else r[i] * scale[i]


cdef void _accumulate_pooled(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* resp, const floating* scale, const double* sample_weight,
    const floating* centre, double* nk, double* sums, double* scatter, double* row_sums,
    double* row_weight, double* operands, bint sparse, const floating* x_rows,
) noexcept nogil:
    """Per component Σ r and Σ r (x − c) about the common shift c (``centre``), and the
    upper triangle of the pooled scatter Σ_i v_i (x_i − c)(x_i − c)ᵀ, v_i = Σ_k r_ik; r is
    ``resp``, or the pass's unscaled terms times their row's factor (``scale``, see
    _scaled_resp).

    Σ_k Σ_i r_ik (x_i − c)(x_i − c)ᵀ = Σ_i v_i (x_i − c)(x_i − c)ᵀ: one D×D product per
    row instead of one per row and component. Responsibilities the pass formed add up to
    their row's weight w_i (to rounding: a raised floor renormalises over the terms it
    keeps), or to 0 for a row of zero weight or zero density, whose factor is 0: with
    ``scale``, v_i is that, without a pass over the K × m responsibilities; given ones
    (``resp``, weighted by ``sample_weight`` already) are summed, so the identity holds to
    rounding either way.

    Everything is formed in float64, float32 data too: the pooled scatter's terms are of
    the clusters' separation, and the within-cluster scatter is what is left after the
    between-cluster part is taken off at the end, so float32 products (or differences
    from the float32 centre) would cost it (separation / spread)² float32 ulps, all of it
    when the clusters have collapsed onto points. ``row_weight``: scratch of m doubles;
    ``operands``: of 2 D m doubles; ``row_sums`` receives Σ_i v_i (x_i − c).

    float64 goes through src/_blocked.h's register blocks (one partial sum per feature in
    a register: the plain loop's single one waited on each multiply-add's latency, half
    of this function's time at D = 8, K = 16); ``sparse`` (see _raised_floor) skips the
    blocks where a component has no responsibility, as _accumulate_diag does, or goes
    row by row (``x_rows``: the chunk's rows as stored, or NULL; see _moments_by_rows).
    """
    cdef Py_ssize_t c, i, j
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t n_blocks = m // _row_block(xt)
    cdef Py_ssize_t done = n_blocks * _row_block(xt)
    cdef const floating* r
    cdef double shift, total, acc, rv
    cdef uint64_t kept_rows[(CHUNK_ROWS + 63) >> 6]  # a bit per row
    for i in range(m):
        if scale == NULL:
            row_weight[i] = 0.0
        else:
            row_weight[i] = 0.0 if scale[i] == 0 else (
                1.0 if sample_weight == NULL else sample_weight[i])
    for c in range(n_components):
        r = resp + c * m
        if scale == NULL:
            for i in range(m):
                row_weight[i] += r[i]
        if floating is double:
            if _moments_by_rows(r, m, d, x_rows, sparse, kept_rows):
                nk[c] += moments_rows_f64(x_rows, m, d, r, scale, kept_rows, centre,
                                          sums + c * d, NULL, NULL)
                continue
            total = diag_moments_blocks_f64(xt, m, n_blocks, d, r, scale, centre,
                                            sums + c * d, NULL, sparse)
            for i in range(done, m):  # the last few rows, one at a time
                rv = _scaled_resp(r, scale, i)
                total += rv
                for j in range(d):
                    sums[c * d + j] += rv * (xt[j * m + i] - centre[j])
        else:
            total = 0.0
            for i in range(m):
                total += _scaled_resp(r, scale, i)
            for j in range(d):
                shift = centre[j]
                acc = 0.0
                for i in range(m):
                    acc += _scaled_resp(r, scale, i) * (<double> xt[j * m + i] - shift)
                sums[c * d + j] += acc
        nk[c] += total
    _pooled_scatter(xt, m, d, row_weight, centre, row_sums, scatter, operands)


cdef void _pooled_scatter(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const double* v,
    const floating* centre, double* row_sums, double* C, double* operands,
) noexcept nogil:
    """Σ v (x − c) and the upper triangle of Σ v (x − c)(x − c)ᵀ, in float64, with the
    kernels of the per-component scatter (_accumulate_component) on float64 operands
    (float64 data: the operands themselves through its register blocks too)."""
    cdef Py_ssize_t i, j, l
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef double* weighted = operands
    cdef double* diff = operands + d * m
    cdef double shift, t, acc
    cdef Py_ssize_t n_blocks = m // ROW_BLOCK_F64
    cdef Py_ssize_t first = 0  # the first row left to the plain loop
    if floating is double:
        weighted_differences_f64(xt, m, n_blocks, d, v, centre, diff, weighted, row_sums)
        first = n_blocks * ROW_BLOCK_F64
    for j in range(d):
        shift = centre[j]
        acc = 0.0
        for i in range(first, m):
            t = <double> xt[j * m + i] - shift
            diff[j * m + i] = t
            weighted[j * m + i] = v[i] * t
            acc += v[i] * t
        row_sums[j] += acc
    if d >= SCATTER_BLAS_MIN_FEATURES:
        _weighted_product(weighted, diff, m, d, C)
        return
    scatter_blocks_f64(weighted, diff, m, n_blocks, d, C)
    for i in range(n_blocks * ROW_BLOCK_F64, m):  # the last few rows, one at a time
        for j in range(d):
            for l in range(j, d):
                C[j * d + l] += weighted[j * m + i] * diff[l * m + i]


cdef inline void _accumulate_component(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const floating* r,
    const floating* shift, double* sums, double* C, floating* work, double* wide,
) noexcept nogil:
    if n_features < SCATTER_BLAS_MIN_FEATURES:
        _accumulate_component_blocked(xt, n_rows, n_features, r, shift, sums, C, work)
    else:
        _accumulate_component_blas(xt, n_rows, n_features, r, shift, sums, C, work,
                                   wide, n_features >= SCATTER_SYRK_MIN_FEATURES)


cdef void _accumulate_component_blocked(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const floating* r,
    const floating* shift, double* sums, double* C, floating* work,
) noexcept nogil:
    """One component's Σ r (x − c) and upper triangle of Σ r (x − c)(x − c)ᵀ, small and
    moderate D: whole blocks of rows in src/_blocked.h (no BLAS call overhead)."""
    cdef Py_ssize_t i, j, l
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t rows = _row_block(xt)
    cdef Py_ssize_t n_blocks = m // rows
    cdef floating* diff = work
    cdef Py_ssize_t gap = OPERAND_GAP_BYTES // sizeof(floating)
    cdef floating* weighted = work + d * m + (gap if 2 * m >= gap else 0)
    cdef floating t
    if floating is double:
        weighted_differences_f64(xt, m, n_blocks, d, r, shift, diff, weighted, sums)
        scatter_blocks_f64(weighted, diff, m, n_blocks, d, C)
    else:
        weighted_differences_f32(xt, m, n_blocks, d, r, shift, diff, weighted, sums)
        scatter_blocks_f32(weighted, diff, m, n_blocks, d, C)
    for i in range(n_blocks * rows, m):  # the last few rows, one at a time
        for j in range(d):
            t = r[i] * (xt[j * m + i] - shift[j])
            sums[j] += t
            for l in range(j, d):
                C[j * d + l] += t * (xt[l * m + i] - shift[l])


cdef void _accumulate_component_blas(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const floating* r,
    const floating* shifts, double* sums, double* C, floating* work,
    double* wide, bint symmetric,
) noexcept nogil:
    """_accumulate_component_blocked with the scatter as one BLAS product (larger D).

    ``symmetric`` uses syrk on √r ⊙ (x − c) (half the flops, worth it for large D),
    otherwise gemm of (r ⊙ (x − c))ᵀ and (x − c), added to C. float32 operands are formed
    in float32 and stored widened into ``wide`` (2 D m doubles), for dgemm/dsyrk: OpenBLAS's
    sgemm takes these small products through its packing path, whose buffer allocation is locked
    process-wide, and a float32 pass on 2 threads was no faster than on one (e: 0.052 s vs
    0.054 s; dgemm's small-matrix kernel has no lock).
    """
    cdef Py_ssize_t i, j
    cdef int m = <int> n_rows
    cdef int d = <int> n_features
    cdef double* weighted  # the BLAS operands, in float64
    cdef double* diff  # gemm only
    cdef floating* root = work + d * m  # syrk only
    cdef floating shift, t
    cdef double acc
    cdef double one = 1.0
    cdef char lower = b'L'
    cdef char trans = b'T'
    if floating is double:
        weighted = work
        diff = work + d * m
    else:
        weighted = wide
        diff = wide + d * m
    if symmetric:
        for i in range(m):
            root[i] = sqrt(r[i])
    # Two copies of the loop: a test inside it would stop it from vectorising.
    for j in range(d):
        shift = shifts[j]
        acc = 0.0
        if symmetric:
            for i in range(m):
                t = xt[j * m + i] - shift
                acc += r[i] * t
                weighted[j * m + i] = root[i] * t
        else:
            for i in range(m):
                t = xt[j * m + i] - shift
                acc += r[i] * t
                diff[j * m + i] = t
                weighted[j * m + i] = r[i] * t
        sums[j] += acc
    # Column-major (m × d) operands; the lower triangle of the column-major result is the
    # upper triangle row-major, the part the caller reads.
    if symmetric:
        dsyrk(&lower, &trans, &d, &m, &one, weighted, &m, &one, C, &d)
    else:
        _weighted_product(weighted, diff, m, d, C)


cdef inline void _weighted_product(
    double* weighted, double* diff, int m, int d, double* C,
) noexcept nogil:
    """C += weightedᵀ diff (column-major m × d operands; the lower triangle of the
    column-major result is the upper triangle row-major): gemm, or the few-rows kernel
    below GEMM_MIN_ROWS rows and SCATTER_SYRK_MIN_FEATURES features."""
    cdef double one = 1.0
    cdef char trans = b'T'
    cdef char no_trans = b'N'
    if m < GEMM_MIN_ROWS and d < SCATTER_SYRK_MIN_FEATURES:
        _scatter_few_rows(weighted, diff, m, d, C)
    else:
        dgemm(&trans, &no_trans, &d, &d, &m, &one, weighted, &m, diff, &m, &one, C, &d)


cdef void _scatter_few_rows(
    const double* weighted, const double* diff, Py_ssize_t m, Py_ssize_t d, double* C,
) noexcept nogil:
    """C[j, l] += Σ_i weighted[j][i] diff[l][i] for j <= l: gemm's product for the few
    (m < GEMM_MIN_ROWS = 32) rows of operands D × m, D < SCATTER_SYRK_MIN_FEATURES (24).

    The blocked kernel ends with one horizontal sum per (j, l), a fixed cost that only pays
    from one row block (8 rows with AVX-512) on: below, the rows are added one by one.
    From there, the operands are copied, padded with zeros to whole row blocks, so that the
    kernel runs once.
    """
    cdef Py_ssize_t i, j, l
    cdef Py_ssize_t stride = (m + ROW_BLOCK_F64 - 1) // ROW_BLOCK_F64 * ROW_BLOCK_F64
    cdef double t
    cdef double padded_weighted[32 * 32]
    cdef double padded_diff[32 * 32]
    if m < ROW_BLOCK_F64:
        for i in range(m):
            for j in range(d):
                t = weighted[j * m + i]
                for l in range(j, d):
                    C[j * d + l] += t * diff[l * m + i]
        return
    for j in range(d):
        for i in range(stride):
            padded_weighted[j * stride + i] = weighted[j * m + i] if i < m else 0.0
            padded_diff[j * stride + i] = diff[j * m + i] if i < m else 0.0
    scatter_blocks_f64(padded_weighted, padded_diff, stride, stride // ROW_BLOCK_F64, d, C)


cdef void _accumulate_diag(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* resp, const floating* scale, const floating* shifts,
    double* nk, double* sums, double* scatter, bint sparse, const floating* x_rows,
) noexcept nogil:
    """Per component: Σ r, and Σ r (x − c), Σ r (x − c)² per feature; r is ``resp``, or
    the pass's unscaled terms times their row's factor (``scale``, see _scaled_resp).
    ``x_rows``: the chunk's rows as stored, or NULL (see _moments_by_rows).

    float64 goes through src/_blocked.h's register blocks (5 % of a spherical pass faster
    than the plain loop at D = 8, K = 16), which form the count as they go; float32's
    16-row blocks leave too few blocks per chunk for them to pay (the pass was 7 % slower),
    so it keeps the plain loop. ``sparse`` (see _raised_floor): the float64 blocks skip
    those without responsibility.
    """
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t n_blocks = m // _row_block(xt)
    cdef Py_ssize_t done = n_blocks * _row_block(xt)
    cdef const floating* r
    cdef floating shift, t, rt, rv, first, second
    cdef double total
    cdef uint64_t kept_rows[(CHUNK_ROWS + 63) >> 6]  # a bit per row
    for c in range(n_components):
        r = resp + c * m
        if floating is double:
            if _moments_by_rows(r, m, d, x_rows, sparse, kept_rows):
                nk[c] += moments_rows_f64(x_rows, m, d, r, scale, kept_rows,
                                          shifts + c * d, sums + c * d, scatter + c * d, NULL)
                continue
            total = diag_moments_blocks_f64(xt, m, n_blocks, d, r, scale, shifts + c * d,
                                            sums + c * d, scatter + c * d, sparse)
            for i in range(done, m):  # the last few rows, one at a time
                rv = _scaled_resp(r, scale, i)
                total += rv
                for j in range(d):
                    t = xt[j * m + i] - shifts[c * d + j]
                    rt = rv * t
                    sums[c * d + j] += rt
                    scatter[c * d + j] += rt * t
            nk[c] += total
            continue
        total = 0.0
        for i in range(m):
            total += _scaled_resp(r, scale, i)
        if total == 0.0:
            continue
        nk[c] += total
        for j in range(d):
            shift = shifts[c * d + j]
            first = 0
            second = 0
            for i in range(m):
                t = xt[j * m + i] - shift
                rt = _scaled_resp(r, scale, i) * t
                first += rt
                second += rt * t
            sums[c * d + j] += first
            scatter[c * d + j] += second


cdef void _sum_groups(double* acc, Py_ssize_t n_groups, AccLayout layout) noexcept nogil:
    """Add the groups' accumulators into the first, in group order, and mirror the upper
    triangle of each full scatter (the only one the kernels fill) into the lower.

    The order is fixed by the shape, never by the threads, so neither is the result; it is
    NumPy's ``sum(axis=0)`` order, in one loop instead of ~10 µs of NumPy calls per pass.
    """
    cdef Py_ssize_t g, e, c, i, j
    cdef Py_ssize_t d = layout.d
    cdef double* scatter = acc + layout.scatter
    for g in range(1, n_groups):
        for e in range(layout.size):
            acc[e] += acc[g * layout.size + e]
    if layout.full:
        for c in range(1 if layout.pooled else layout.k):
            for i in range(d):
                for j in range(i):
                    scatter[c * d * d + i * d + j] = scatter[c * d * d + j * d + i]


cdef void _add_totals(
    const double* total, AccLayout layout, double* nk, double* sums, double* scatter,
) noexcept nogil:
    """nk, sums and scatter += their parts of ``total`` (an accumulator)."""
    cdef Py_ssize_t e
    for e in range(layout.k):
        nk[e] += total[layout.nk + e]
    for e in range(layout.k * layout.d):
        sums[e] += total[layout.sums + e]
    for e in range(layout.scatter_size):
        scatter[e] += total[layout.scatter + e]


def _recentre(nk, sums, scatter, offsets):
    """Moments about c + δ from moments about c, in float64 (δ = ``offsets``, (K, D)).

    With y = x − c − δ: Σ r y = sums − nk δ and Σ r y yᵀ = scatter − δ sumsᵀ − sums δᵀ +
    nk δ δᵀ (diagonal: scatter − 2 δ ⊙ sums + nk δ²); a pooled scatter ((1, D, D) for
    K > 1 components) takes the sum of those corrections over the components. The float32
    path takes its moments about the shifts rounded to float32; δ is the rounding, so the
    correction is tiny and exact to float64 rounding. The pooled pass takes them about
    one common shift, and this moves them onto each component's.
    """
    new_sums = sums - nk[:, None] * offsets
    if scatter.ndim == 3:
        cross = offsets[:, :, None] * sums[:, None, :]
        if scatter.shape[0] == nk.shape[0]:
            new_scatter = (scatter - cross - np.swapaxes(cross, 1, 2)
                           + nk[:, None, None] * offsets[:, :, None] * offsets[:, None, :])
        else:
            # δδᵀ formed first, so that every term, and the pooled scatter, stays symmetric
            # to the bit.
            square = nk[:, None, None] * (offsets[:, :, None] * offsets[:, None, :])
            new_scatter = scatter - (cross + np.swapaxes(cross, 1, 2) - square).sum(
                axis=0, keepdims=True)
    else:
        new_scatter = scatter - 2.0 * offsets * sums + nk[:, None] * offsets**2
    return new_sums, new_scatter


cdef _recentre_total(double* total, AccLayout layout, scatter_shape,
                     cnp.ndarray exact_shifts, cnp.ndarray rounded_shifts):
    """A pass's summed accumulator, moved from the shifts its kernels took the moments
    about (a float32 pass's rounded shifts, the pooled form's common one) onto the exact
    shifts."""
    view = np.asarray(<double[:layout.size]> total)
    nk = view[layout.nk:layout.sums]
    sums = view[layout.sums:layout.scatter]
    scatter = view[layout.scatter:layout.row_sums]
    new_sums, new_scatter = _recentre(nk, sums.reshape(layout.k, layout.d),
                                      scatter.reshape(scatter_shape),
                                      exact_shifts - rounded_shifts.astype(np.float64))
    sums[:] = new_sums.reshape(-1)
    scatter[:] = new_scatter.reshape(-1)
