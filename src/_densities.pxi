# The weighted log-densities log π_c + log N(x_i | θ_c) of a chunk, one kernel per
# covariance form (full, tied, diag), chosen by the explicit ``Form`` of the model.

cdef enum Form:
    # How the precisions are given, and so which kernel computes the densities.
    FULL = 0  # (K, D, D) upper-triangular factors U_k, U_k U_kᵀ = Σ_k⁻¹
    TIED = 1  # (1, D, D) one factor U shared by every component
    DIAG = 2  # (K, D) inverse standard deviations

# The forms as Python ints, for em_pass(form=...) and score(form=...).
FORM_FULL = <int> FULL
FORM_TIED = <int> TIED
FORM_DIAG = <int> DIAG

# How full covariances are computed, by number of features D. Measured on the project's
# 2-core AVX-512 machine with OpenBLAS, one thread, D = 2..64, K = 8 (benchmarks/README.md):
# - log-densities: the triangular kernel of src/_blocked.h below WHITEN_BLAS_MIN_FEATURES
#   (5-15 % faster than any BLAS call up to D = 24), BLAS trmm from there on;
# - scatter: src/_blocked.h below SCATTER_BLAS_MIN_FEATURES, BLAS gemm up to
#   SCATTER_SYRK_MIN_FEATURES (a faster kernel on small matrices), syrk (half the flops)
#   from there on.
# The float32 kernels use the same thresholds: on D = 8 float32 data whose rows are mostly
# gathered, BLAS beat the blocked scatter by 28 % per pass. (Its operands are widened to
# float64 there: see _accumulate_component_blas.)
cdef Py_ssize_t WHITEN_BLAS_MIN_FEATURES = 32


cdef int _resolve_form(cnp.ndarray precisions_chol, Py_ssize_t k, Py_ssize_t d,
                       form) except -1:
    """The density form of a model of K components in D features, checked against the
    shape of ``precisions_chol``: ``form`` itself when given, else the form that shape
    implies ((1, D, D) for K > 1 components is tied). Every entry point resolves it here."""
    cdef bint full_shape = has_shape(precisions_chol, k, d, d)
    cdef bint tied_shape = has_shape(precisions_chol, 1, d, d)
    cdef bint diag_shape = has_shape(precisions_chol, k, d, -1)
    if form is None:
        if tied_shape and k > 1:
            return TIED
        if full_shape:
            return FULL
        if diag_shape:
            return DIAG
        raise ValueError(
            f"precisions_chol must have shape ({k}, {d}, {d}) (full), (1, {d}, {d}) (tied: "
            f"one factor shared by all components) or ({k}, {d}) (diag) for {k} components "
            f"in {d} features, got {np.shape(precisions_chol)}"
        )
    if (isinstance(form, bool) or not isinstance(form, (int, np.integer))
            or form not in (FULL, TIED, DIAG)):
        raise ValueError(f"form must be FORM_FULL, FORM_TIED or FORM_DIAG (gmmfast._em), "
                         f"got {form!r}")
    if ((form == FULL and full_shape) or (form == TIED and tied_shape)
            or (form == DIAG and diag_shape)):
        return form
    expected = {FULL: (k, d, d), TIED: (1, d, d), DIAG: (k, d)}[form]
    raise ValueError(f"precisions_chol must have shape {expected} for this form, got "
                     f"{np.shape(precisions_chol)}")


cdef inline void _log_prob(
    const floating* xt, Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, Form form,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    const floating* tied_centre, const floating* tied_offsets,
    floating* work, floating* log_prob, Lookahead* ahead,
) noexcept nogil:
    """The chunk's weighted log-densities in the model's form; ``tied_centre`` and
    ``tied_offsets`` (see _tied_geometry) are read for TIED only. work: (2 D + 2) m
    elements for FULL and TIED, D × MAX_ROW_BLOCK for DIAG. The next chunk's rows
    (``ahead``, may be NULL) are asked for a share per component."""
    if form == TIED:
        _log_prob_tied(xt, m, d, k, tied_centre, precisions_chol, tied_offsets, log_norm,
                       work, log_prob, ahead)
    elif form == FULL:
        _log_prob_full(xt, m, d, k, means, precisions_chol, log_norm, work, log_prob, ahead)
    else:
        _log_prob_diag(xt, m, d, k, means, precisions_chol, log_norm, work, log_prob, ahead)


cdef void _log_prob_full(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    floating* work, floating* log_prob, Lookahead* ahead,
) noexcept nogil:
    if n_features < WHITEN_BLAS_MIN_FEATURES:
        _log_prob_full_blocked(xt, n_rows, n_features, n_components, means, precisions_chol,
                               log_norm, work, log_prob, ahead)
    else:
        _log_prob_full_blas(xt, n_rows, n_features, n_components, means, precisions_chol,
                            log_norm, work, log_prob, ahead)


cdef void _log_prob_full_blocked(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    floating* work, floating* log_prob, Lookahead* ahead,
) noexcept nogil:
    """log_prob_full for small and moderate D (< WHITEN_BLAS_MIN_FEATURES): whole blocks
    of rows in src/_blocked.h, from the chunk centred once on the mean of the means (the
    rows stay small, so x·U − μ·U cancels no more than the cluster spread)."""
    cdef Py_ssize_t i, c, j, l
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t rows = _row_block(xt)
    cdef Py_ssize_t n_blocks = m // rows
    cdef Py_ssize_t done = n_blocks * rows
    cdef floating* y = work
    # The last m % rows rows go through the same kernel, zero-padded to a block, so a row's
    # log-density does not depend on where the chunk boundaries fall (Dask blocks, slices
    # of X). Sized for D < WHITEN_BLAS_MIN_FEATURES = 32.
    cdef floating tail_y[32 * MAX_ROW_BLOCK]
    cdef floating tail_out[MAX_ROW_BLOCK]
    cdef floating centre[32]
    cdef floating offset[32]
    cdef double total
    cdef const floating* U
    # The centre and offsets are formed here, per chunk, from the kernel's own inputs (those
    # of the C API): K·D² operations against the chunk's m·K·D²/2, and no second copy of
    # the geometry to keep consistent with the means.
    for j in range(d):
        total = 0.0
        for c in range(n_components):
            total += means[c * d + j]
        centre[j] = <floating> (total / n_components)
        for i in range(m):
            y[j * m + i] = xt[j * m + i] - centre[j]
    if done < m:
        for j in range(d):
            for i in range(rows):
                tail_y[j * rows + i] = y[j * m + done + i] if done + i < m else 0
    for c in range(n_components):
        _fetch_share(ahead, c, n_components)
        U = precisions_chol + c * d * d
        for j in range(d):  # (μ_c − centre) U, in float64
            total = 0.0
            for l in range(j + 1):
                total += <double> U[l * d + j] * (<double> means[c * d + l] - centre[l])
            offset[j] = <floating> total
        _whiten_log_prob_blocks(y, m, n_blocks, d, U, offset, log_norm[c], log_prob + c * m)
        if done < m:
            _whiten_log_prob_blocks(tail_y, rows, 1, d, U, offset, log_norm[c], tail_out)
            for i in range(m - done):
                log_prob[c * m + done + i] = tail_out[i]


cdef void _log_prob_full_blas(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    floating* work, floating* log_prob, Lookahead* ahead,
) noexcept nogil:
    """log_prob_full with y = (x − μ) U as one BLAS trmm per component (large D)."""
    cdef Py_ssize_t i, c, j
    cdef int m = <int> n_rows
    cdef int d = <int> n_features
    cdef floating* y = work
    cdef floating* out
    cdef floating shift
    cdef floating one = 1
    cdef char right = b'R'
    cdef char lower = b'L'
    cdef char trans = b'T'
    cdef char non_unit = b'N'
    cdef floating* U
    for c in range(n_components):
        _fetch_share(ahead, c, n_components)
        for j in range(d):
            shift = means[c * d + j]
            for i in range(m):
                y[j * m + i] = xt[j * m + i] - shift
        # y, column-major (m × d), holds x − μ; U, row-major upper-triangular, is stored as
        # the column-major lower-triangular Uᵀ. In place: y = (x − μ) U.
        U = <floating*> precisions_chol + c * d * d
        if floating is double:
            dtrmm(&right, &lower, &trans, &non_unit, &m, &d, &one, U, &d, y, &m)
        else:
            strmm(&right, &lower, &trans, &non_unit, &m, &d, &one, U, &d, y, &m)
        out = log_prob + c * m
        for i in range(m):
            out[i] = 0
        for j in range(d):
            for i in range(m):
                out[i] += y[j * m + i] * y[j * m + i]
        for i in range(m):
            out[i] = log_norm[c] - <floating> 0.5 * out[i]


cdef void _log_prob_tied(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* centre, const floating* U, const floating* offsets,
    const floating* log_norm, floating* work, floating* log_prob, Lookahead* ahead,
) noexcept nogil:
    """log_prob_full when every component has the same precision factor U (tied).

    The chunk is whitened once, z = (x − centre) U, and component c's squared distance is
    ‖z − offsets[c]‖² with offsets[c] = (μ_c − centre) U: D(D+1)/2 multiply-adds per row for
    all components together, then 2D operations per row and component (instead of
    D(D+3)/2). ``centre`` (near the means) keeps z small, so no digits are lost in the
    difference. work: D m elements.
    """
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t rows = _row_block(xt)
    cdef Py_ssize_t n_blocks = m // rows
    cdef Py_ssize_t done = n_blocks * rows
    cdef floating* z = work
    # As in _log_prob_full_blocked, the last m % rows rows go through the same kernels,
    # padded to a block (with the centre, so z is 0 there), so a row's result does not
    # depend on where the chunk boundaries fall.
    cdef floating tail_x[32 * MAX_ROW_BLOCK]
    cdef floating tail_z[32 * MAX_ROW_BLOCK]
    cdef floating* out
    cdef floating half_norm, t
    cdef int m_int = <int> m
    cdef int d_int = <int> d
    cdef floating one = 1
    cdef char right = b'R'
    cdef char lower = b'L'
    cdef char trans = b'T'
    cdef char non_unit = b'N'
    if d < WHITEN_BLAS_MIN_FEATURES:
        _whiten_rows(xt, m, n_blocks, d, centre, U, z)
        _tied_log_prob_tiles(z, m, n_blocks, d, n_components, offsets, log_norm, log_prob,
                             ahead)
        if done < m:
            for j in range(d):
                for i in range(rows):
                    tail_x[j * rows + i] = xt[j * m + done + i] if done + i < m else centre[j]
            _whiten_rows(tail_x, rows, 1, d, centre, U, tail_z)
            _tied_log_prob_tail(tail_z, m, done, d, n_components, offsets, log_norm, log_prob)
        return
    for j in range(d):
        for i in range(m):
            z[j * m + i] = xt[j * m + i] - centre[j]
    # column-major (m × d) z = (x − centre) U in place, U as the column-major lower Uᵀ
    if floating is double:
        dtrmm(&right, &lower, &trans, &non_unit, &m_int, &d_int, &one, <double*> U, &d_int,
              z, &m_int)
    else:
        strmm(&right, &lower, &trans, &non_unit, &m_int, &d_int, &one, <float*> U, &d_int,
              z, &m_int)
    for c in range(n_components):
        _fetch_share(ahead, c, n_components)
        out = log_prob + c * m
        for i in range(m):
            out[i] = 0
        for j in range(d):
            for i in range(m):
                t = z[j * m + i] - offsets[c * d + j]
                out[i] += t * t
        half_norm = log_norm[c]
        for i in range(m):
            out[i] = half_norm - <floating> 0.5 * out[i]


cdef inline void _tied_log_prob_tiles(
    const floating* z, Py_ssize_t m, Py_ssize_t n_blocks, Py_ssize_t d,
    Py_ssize_t n_components, const floating* offsets, const floating* log_norm,
    floating* log_prob, Lookahead* ahead,
) noexcept nogil:
    """The whole blocks' log-densities from the whitened rows z (D × m), TIED_TILE
    components at a time; within each group the blocks go in one slice per component, so
    that the next chunk's shares stay spread over the loop (one per component)."""
    cdef Py_ssize_t rows = _row_block(z)
    cdef Py_ssize_t tile, c0, group, part, first, end
    for tile in range((n_components + TIED_TILE - 1) // TIED_TILE):
        c0 = tile * TIED_TILE
        group = min(<Py_ssize_t> TIED_TILE, n_components - c0)
        for part in range(group):
            _fetch_share(ahead, c0 + part, n_components)
            first = part * n_blocks // group
            end = (part + 1) * n_blocks // group
            _tied_log_prob_blocks(z + first * rows, m, end - first, d, group,
                                  offsets + c0 * d, log_norm + c0,
                                  log_prob + c0 * m + first * rows, m)


cdef inline void _tied_log_prob_tail(
    const floating* tail_z, Py_ssize_t m, Py_ssize_t done, Py_ssize_t d,
    Py_ssize_t n_components, const floating* offsets, const floating* log_norm,
    floating* log_prob,
) noexcept nogil:
    """The log-densities of rows done .. m − 1 from their whitened block tail_z (D × one
    block, zero-padded), through the same kernel, TIED_TILE components at a time."""
    cdef Py_ssize_t rows = _row_block(tail_z)
    cdef floating tail_out[TIED_TILE * MAX_ROW_BLOCK]
    cdef Py_ssize_t tile, c0, c, i, group
    for tile in range((n_components + TIED_TILE - 1) // TIED_TILE):
        c0 = tile * TIED_TILE
        group = min(<Py_ssize_t> TIED_TILE, n_components - c0)
        _tied_log_prob_blocks(tail_z, rows, 1, d, group, offsets + c0 * d, log_norm + c0,
                              tail_out, rows)
        for c in range(group):
            for i in range(m - done):
                log_prob[(c0 + c) * m + done + i] = tail_out[c * rows + i]


cdef void _log_prob_diag(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    floating* tail_x, floating* log_prob, Lookahead* ahead,
) noexcept nogil:
    """log_prob_diag; tail_x: scratch of D × MAX_ROW_BLOCK elements, for the last
    m % row block rows, which go through the same kernel padded with the means (so a row's
    result does not depend on where the chunk boundaries fall)."""
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t rows = _row_block(xt)
    cdef Py_ssize_t n_blocks = m // rows
    cdef Py_ssize_t done = n_blocks * rows
    cdef floating tail_out[MAX_ROW_BLOCK]
    cdef floating* out
    for c in range(n_components):
        _fetch_share(ahead, c, n_components)
        out = log_prob + c * m
        _diag_log_prob_blocks(xt, m, n_blocks, d, means + c * d, precisions_chol + c * d,
                              log_norm[c], out)
        if done < m:
            for j in range(d):
                for i in range(rows):
                    tail_x[j * rows + i] = (xt[j * m + done + i] if done + i < m
                                            else means[c * d + j])
            _diag_log_prob_blocks(tail_x, rows, 1, d, means + c * d,
                                  precisions_chol + c * d, log_norm[c], tail_out)
            for i in range(m - done):
                out[done + i] = tail_out[i]


def _tied_geometry(means, precisions_chol, dtype):
    """The centre and whitened offsets (μ_c − centre) U of _log_prob_tied, in ``dtype``;
    of one set of means (K, D) and factor (1, D, D), or of a stack of them (M, K, D) and
    (M, 1, D, D), set by set the same numbers.

    The centre is the mean of the means (rounded to ``dtype`` first, so that the offsets
    are exact for the centre the kernel uses): the whitened rows stay small.
    """
    means = np.asarray(means, dtype=np.float64)
    centre = means.mean(axis=-2).astype(dtype)
    U = np.asarray(precisions_chol, dtype=np.float64)[..., 0, :, :]
    offsets = (means - centre.astype(np.float64)[..., None, :]) @ U
    return np.ascontiguousarray(centre), np.ascontiguousarray(offsets, dtype=dtype)
