cdef inline void _log_of_total(
    const floating* top, const floating* total, Py_ssize_t m, floating* log_prob_norm,
) noexcept nogil:
    """log p = top + log Σ exp(log_prob − top); may write over ``top`` itself.

    A select rather than a branch, so that the loop vectorises. A row whose maximum is −inf
    keeps log p = −inf (its total is 0, whose "log" is dropped).
    """
    cdef Py_ssize_t i
    cdef floating lse
    for i in range(m):
        lse = top[i] + _log(total[i])
        log_prob_norm[i] = lse if top[i] != -INFINITY else top[i]


cdef void _exp_terms(
    floating* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components,
    floating* log_prob_norm, floating* total, floating floor,
) noexcept nogil:
    """log p(x_i) of a chunk; log_prob is replaced by exp(log_prob − max_c log_prob), or 0
    where that is below exp(floor), and total[i] is the sum of those terms of row i (the
    responsibilities before scaling).

    _log_prob_to_resp and score() without responsibilities both go through this one
    function, so their log p agree bit for bit (the compiler may contract the exponential's
    last multiply with the sum differently in two copies of the loop).
    """
    cdef Py_ssize_t m = n_rows
    cdef floating* top = log_prob_norm
    # One exp per entry. Rows whose maximum is −inf have shifted = NaN there, which
    # exp_or_zero maps to 0.
    _exp_block_terms(log_prob, m, n_components, top, total, floor)
    _log_of_total(top, total, m, log_prob_norm)


cdef double _resp_factors(
    floating* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components,
    const double* sample_weight, floating* log_prob_norm, floating* factor, floating floor,
) noexcept nogil:
    """The responsibilities before their last step: log_prob is replaced by
    exp(log_prob − max) (0 below exp(floor)), which factor[i] then scales to row i's
    responsibilities (w_i / Σ); log p(x_i) in log_prob_norm. Returns Σ w_i log p(x_i)."""
    cdef Py_ssize_t i
    cdef Py_ssize_t m = n_rows
    cdef double w, loglik = 0.0
    _exp_terms(log_prob, m, n_components, log_prob_norm, factor, floor)  # factor = Σ_c terms
    # Rows of zero weight, or of zero density under every component, carry no
    # responsibility (and no 0 · inf = NaN).
    if sample_weight == NULL:
        for i in range(m):
            loglik += log_prob_norm[i]
            factor[i] = 0 if log_prob_norm[i] == -INFINITY else 1 / factor[i]
    else:
        for i in range(m):
            w = sample_weight[i]
            loglik += w * log_prob_norm[i] if w != 0.0 else 0.0
            factor[i] = 0 if (w == 0.0 or log_prob_norm[i] == -INFINITY) else <floating> (
                w / factor[i])
    return loglik


cdef void _unit_factors(
    floating* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components, floating* top,
    floating* factor,
) noexcept nogil:
    """_resp_factors without weights and without log p (predict_proba has no use for it,
    and its log is a division and a polynomial per row): the same terms and factors."""
    cdef Py_ssize_t i
    _exp_block_terms(log_prob, n_rows, n_components, top, factor, _log_resp_floor(log_prob))
    for i in range(n_rows):
        factor[i] = 0 if top[i] == -INFINITY else 1 / factor[i]


cdef double _log_prob_to_resp(
    floating* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components,
    const double* sample_weight, floating* log_prob_norm, floating* work, floating floor,
) noexcept nogil:
    """log_prob replaced by the (weighted) responsibilities, those below exp(floor) of their
    row's largest flushed to 0; see _resp_factors."""
    cdef Py_ssize_t i, c
    cdef floating* row
    cdef floating* factor = work
    cdef double loglik = _resp_factors(log_prob, n_rows, n_components, sample_weight,
                                       log_prob_norm, factor, floor)
    for c in range(n_components):
        row = log_prob + c * n_rows
        for i in range(n_rows):
            row[i] *= factor[i]
    return loglik


