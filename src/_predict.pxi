# Prediction: per-sample log-densities, labels and responsibilities of a fitted model,
# chunk by chunk on OpenMP threads (score()).

# score() writes responsibilities of at least this many bytes with streaming stores (through
# a row-major staging copy of each chunk) when their memory is already mapped in: an output
# this large is not in the cache when the caller reads it anyway, and an ordinary store
# costs a read of the line first (src/_blocked.h, gmmfast_pages_resident, says why not into
# fresh memory).
cdef size_t STREAM_MIN_BYTES = 16 << 20

cdef Py_ssize_t _score_chunks(
    const floating* X, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k, Form form,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    const floating* tied_centre, const floating* tied_offsets,
    floating* log_prob_norm, long long* labels, floating* resp,
    bint check_finite, ScratchShape shape, int threads, Py_ssize_t* nonfinite_chunks,
) noexcept nogil:
    """score() on every chunk, in parallel; any of the three outputs may be NULL. With a
    staging area in ``shape``, ``resp`` is written with streaming stores.

    Returns the number of chunks left out for want of memory for their thread's scratch
    (then the outputs are incomplete). ``nonfinite_chunks``: OUT, the number of chunks
    holding a value that is not finite (0 unless ``check_finite``).
    """
    cdef Scratch scratch
    cdef Py_ssize_t chunk, row0, m
    cdef Py_ssize_t n_chunks = n_chunks_of(n)
    cdef Py_ssize_t nonfinite = 0, chunks_without_memory = 0
    cdef Lookahead ahead
    with parallel(num_threads=threads):
        scratch = alloc_scratch(shape)
        for chunk in prange(n_chunks, schedule="static"):
            if not scratch.complete:
                chunks_without_memory += 1
                continue
            row0 = chunk * CHUNK_ROWS
            m = min(<Py_ssize_t> CHUNK_ROWS, n - row0)
            if check_finite and not _all_finite(X + row0 * d, m * d):
                nonfinite += 1
            # Each thread's chunks are consecutive (a static schedule): ask for the next.
            ahead = _next_chunk(X, d, row0 + m, n)
            _score_chunk(X + row0 * d, m, d, k, form, means, precisions_chol, log_norm,
                         tied_centre, tied_offsets,
                         log_prob_norm + row0 if log_prob_norm != NULL else NULL,
                         labels + row0 if labels != NULL else NULL,
                         resp + row0 * k if resp != NULL else NULL, scratch, &ahead)
        free_scratch(scratch)
    nonfinite_chunks[0] = nonfinite
    return chunks_without_memory


cdef bint _all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """Whether x[0], ..., x[n − 1] are all finite (a count rather than an early exit, so
    that the loop vectorises)."""
    cdef Py_ssize_t i, nonfinite = 0
    for i in range(n):
        nonfinite += 0 if isfinite(x[i]) else 1
    return nonfinite == 0


cdef void _score_chunk(
    const floating* X, Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, Form form,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    const floating* tied_centre, const floating* tied_offsets,
    floating* log_prob_norm, long long* labels, floating* resp, Scratch s, Lookahead* ahead,
) noexcept nogil:
    """score() on one chunk of m rows; any of the three outputs may be NULL. With a
    staging area in ``s`` (m × K), ``resp`` is written with streaming stores. The
    densities ask for ``ahead``'s rows as they go.

    Only what is asked for is computed: labels need no exponential, log p(x) alone no
    scaling of the responsibilities.
    """
    cdef floating* xt = <floating*> s.xt
    cdef floating* lp = <floating*> s.log_prob
    cdef floating* row_work = <floating*> s.row_work
    cdef floating* factor = <floating*> s.work
    _transpose_chunk(X, m, d, xt)
    _log_prob(xt, m, d, k, form, means, precisions_chol, log_norm, tied_centre, tied_offsets,
              <floating*> s.work, lp, ahead)
    if labels != NULL:
        _row_argmax(lp, m, k, labels)
    if resp != NULL:
        if log_prob_norm != NULL:
            _resp_factors(lp, m, k, NULL, log_prob_norm, factor, _log_resp_floor(lp))
            _spread_rows_of_zero_density(lp, m, k, log_prob_norm, factor)
        else:
            _unit_factors(lp, m, k, row_work, factor)
            _spread_rows_of_zero_density(lp, m, k, row_work, factor)
        # component-major (K, m) to row-major (m, K), scaled on the way
        if s.staging != NULL:
            _transpose_scaled(lp, m, k, m, <floating*> s.staging, k, factor)
            _stream_copy(resp, <floating*> s.staging, m * k)
        else:
            _transpose_scaled(lp, m, k, m, resp, k, factor)
    elif log_prob_norm != NULL:
        _exp_terms(lp, m, k, log_prob_norm, <floating*> s.work, _log_resp_floor(lp))


cdef void _spread_rows_of_zero_density(
    floating* terms, Py_ssize_t m, Py_ssize_t k, const floating* top, floating* factor,
) noexcept nogil:
    """Equal responsibilities 1/K for the rows whose density is zero under every component
    (top = −inf: a point so far from all of them that every squared distance overflows),
    which would otherwise have none: every row of predict_proba then sums to 1, and its
    first maximum, component 0, is the label score() gives it. ``terms`` and ``factor``
    as _resp_factors leaves them."""
    cdef Py_ssize_t i, c, n_zero = 0
    for i in range(m):
        n_zero += top[i] == -INFINITY
    if n_zero == 0:
        return
    for i in range(m):
        if top[i] == -INFINITY:
            for c in range(k):
                terms[c * m + i] = 1
            factor[i] = <floating> 1 / <floating> k

