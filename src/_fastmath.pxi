# The E-step's elementary functions on a chunk, for the compute type (src/_fastmath.h):
# exponentials shifted by each row's maximum, the log of their sum, and each row's most
# likely component.

cdef extern from "_fastmath.h":
    # lp (k, m) component-major: top[i] = max_c lp[c][i], lp[c][i] = exp(lp[c][i] − top[i])
    # (exactly 0 below exp(floor) or for NaN), total[i] = Σ_c lp[c][i] in order of c.
    void exp_terms_f64 "gmmfast_exp_terms_f64"(
        double* log_prob, Py_ssize_t m, Py_ssize_t k, double* top, double* total,
        double floor) noexcept nogil
    void exp_terms_f32 "gmmfast_exp_terms_f32"(
        float* log_prob, Py_ssize_t m, Py_ssize_t k, float* top, float* total,
        float floor) noexcept nogil
    # labels[i] = the first c of largest lp[c][i].
    void row_argmax_f64 "gmmfast_row_argmax_f64"(
        const double* log_prob, Py_ssize_t m, Py_ssize_t k, long long* labels) noexcept nogil
    void row_argmax_f32 "gmmfast_row_argmax_f32"(
        const float* log_prob, Py_ssize_t m, Py_ssize_t k, long long* labels) noexcept nogil
    # log x for x >= 1.
    double log_ge1_f64 "gmmfast_log_ge1_f64"(double x) noexcept nogil
    float log_ge1_f32 "gmmfast_log_ge1_f32"(float x) noexcept nogil

# Responsibilities below exp(−600) ≈ 3e-261 are flushed to exactly zero: they cannot change
# any statistic at double precision (they are < 1e-245 of the 10·eps floor added to every
# count), while leaving them in would let products underflow into subnormal numbers, which
# cost the CPU ~100 cycles each (well-separated clusters produce them in bulk).
cdef double LOG_RESP_FLOOR = -600.0

# The float32 E-step flushes responsibilities below exp(−87) ≈ 1.6e-38: smaller ones are not
# normal float32 numbers (subnormals cost ~100 cycles each); scikit-learn's float32 E-step
# turns them into subnormals and then zeros, equally unable to move any statistic.
cdef float LOG_RESP_FLOOR_F32 = -87.0


cdef inline void _exp_block_terms(
    floating* log_prob, Py_ssize_t m, Py_ssize_t k, floating* top, floating* total,
    floating floor,
) noexcept nogil:
    """The shifted exponentials of a chunk, their row maxima and row sums (exp_terms)."""
    if floating is double:
        exp_terms_f64(log_prob, m, k, top, total, floor)
    else:
        exp_terms_f32(log_prob, m, k, top, total, floor)


cdef inline floating _log(floating x) noexcept nogil:
    """log x for x >= 1."""
    if floating is double:
        return log_ge1_f64(x)
    else:
        return log_ge1_f32(x)


cdef inline bint _raised_floor(floating floor) noexcept nogil:
    """Whether ``floor`` flushes more than the type's own: a caller's floor, as the Bayesian
    mixture's (about exp(−55)), under which well-separated clusters leave whole blocks of
    rows without responsibility for about half of the components. The diag statistics then
    skip those blocks; under the type's own floor they are rare, and the plain loop runs."""
    if floating is double:
        return floor > LOG_RESP_FLOOR
    else:
        return floor > LOG_RESP_FLOOR_F32


cdef inline floating _log_resp_floor(const floating* typed) noexcept nogil:
    """The log-responsibility below which the compute type flushes to zero (``typed`` is
    not read)."""
    if floating is double:
        return LOG_RESP_FLOOR
    else:
        return LOG_RESP_FLOOR_F32


cdef inline void _row_argmax(
    const floating* log_prob, Py_ssize_t m, Py_ssize_t n_components, long long* labels,
) noexcept nogil:
    """Each row's most likely component (the first on ties)."""
    if floating is double:
        row_argmax_f64(log_prob, m, n_components, labels)
    else:
        row_argmax_f32(log_prob, m, n_components, labels)
