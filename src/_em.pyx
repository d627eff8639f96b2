"""The compiled EM core: one fused, chunked, parallel pass over the samples.

For a block of rows and the current parameters the pass computes the per-component weighted
log-densities, their log-sum-exp, the responsibilities, and adds the rows' contribution to the
sufficient statistics (counts, shifted first and second moments), all while a chunk of
``CHUNK_ROWS`` rows is hot in cache. The N×K responsibility matrix is never materialised.

Determinism: the chunks are dealt to a number of *groups* that depends only on the problem
shape (never on the thread count); each group sums its chunks in order into its own
accumulator and the accumulators are added in group order afterwards. Any thread count, and
any OpenMP schedule, therefore produces bit-identical statistics.

A chunk is handled transposed: ``xt[j * n_rows + i]`` is feature j of row i, and per-row
results are component-major (``log_prob[c * n_rows + i]``). Every inner loop then runs over
the samples of the chunk with unit stride, which the compiler vectorises. The kernels are
written once over ``floating``, the type they compute in: float64 data are processed in
float64, float32 data in float32 (twice the rows per vector register), with the parameters
rounded to float32. The statistics are always accumulated in float64: a chunk's partial sums
are formed in the compute type and added once per chunk and component.

This file holds the Python entry points and the C-level API (gmmfast/_em.pxd, the float64
kernels); the work is in the files it includes, one job each:

- src/_fastmath.h (.pxi): exp, log and argmax over a chunk, without libm;
- src/_blocked.h (_blocked.pxi): full-covariance kernels over blocks of rows;
- _densities.pxi: the log-densities per covariance form (``Form``);
- _responsibilities.pxi: log-sum-exp and responsibilities;
- _accumulate.pxi: the sufficient statistics and the accumulator layout (``AccLayout``);
- _pass.pxi: a pass's groups of chunks on OpenMP threads;
- _predict.pxi: score()'s chunks.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport isfinite, sqrt, INFINITY, NAN
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memmove
from scipy.linalg.cython_blas cimport dgemm, dsyrk, dtrmm, strmm
from scipy.linalg.cython_lapack cimport dpotrf, dtrtri

cimport numpy as cnp
import numpy as np

from gmmfast._threads import single_threaded_blas

from gmmfast._chunking cimport (
    CHUNK_ROWS, GROUP_BUDGET_DOUBLES, group_first_chunk, n_chunks_of, n_groups_of, pass_work,
    requested_threads, resolve_threads,
)
from gmmfast._ndarray cimport contiguous, has_shape, is_writable_float64
from gmmfast._openmp cimport GMMFAST_OPENMP_ENABLED, omp_get_max_threads

cnp.import_array()

include "_fastmath.pxi"
include "_blocked.pxi"
include "_densities.pxi"
include "_responsibilities.pxi"
include "_accumulate.pxi"
include "_scratch.pxi"
include "_pass.pxi"
include "_predict.pxi"

ROWS_PER_CHUNK = CHUNK_ROWS

cdef extern from "_cpu_level.h":
    int gmmfast_cpu_level() noexcept nogil


def cpu_level():
    """The x86-64 microarchitecture level of this CPU (1, 3 or 4; 3 and 4 as in setup.py's
    ISA_LEVEL_FLAGS), or 0 when it is not x86-64 or cannot be told."""
    return gmmfast_cpu_level()


def precisions_cholesky(const double[:, :, ::1] covariances, double[:, :, ::1] out):
    """Upper-triangular U_k with U_k U_kᵀ = Σ_k⁻¹ for each covariance, in one call.

    The M-step's linear algebra on K small matrices: going through SciPy's wrappers costs
    ~20 µs per matrix and call, more than a whole EM iteration's pass on small data. Here
    LAPACK's potrf and trtri run directly.

    Parameters
    ----------
    covariances : ndarray of shape (K, D, D), float64, C-contiguous
        IN. Symmetric; only their lower triangle is read.
    out : ndarray of shape (K, D, D), float64, C-contiguous
        OUT. U_k, zero below the diagonal.

    Returns
    -------
    failed : int
        The first k whose covariance is not positive definite (or not finite), else -1;
        ``out`` is then incomplete.
    """
    cdef Py_ssize_t k = covariances.shape[0]
    cdef int d = <int> covariances.shape[1]
    if covariances.shape[2] != d or out.shape[0] != k or out.shape[1] != d or out.shape[2] != d:
        raise ValueError(f"covariances and out must have shape (K, D, D), got "
                         f"{np.shape(covariances)} and {np.shape(out)}")
    return _precisions_cholesky(&covariances[0, 0, 0] if k > 0 else NULL,
                                &out[0, 0, 0] if k > 0 else NULL, k, d)


cdef Py_ssize_t _precisions_cholesky(
    const double* covariances, double* out, Py_ssize_t n_components, int d,
) noexcept nogil:
    cdef Py_ssize_t c, i, j
    cdef int info = 0
    cdef char upper = b'U'
    cdef char non_unit = b'N'
    cdef double* a
    for c in range(n_components):
        a = out + c * d * d
        # The row-major lower triangle is the column-major upper triangle LAPACK is given.
        for i in range(d):
            for j in range(d):
                a[i * d + j] = covariances[c * d * d + i * d + j] if j <= i else 0.0
                if not isfinite(a[i * d + j]):
                    return c
        # Column-major: Σ = RᵀR with R upper (R = Lᵀ, L the lower Cholesky factor), then
        # R⁻¹ = L⁻ᵀ = U in place; read row-major, the buffer holds Uᵀ.
        dpotrf(&upper, &d, a, &d, &info)
        if info != 0:
            return c
        dtrtri(&upper, &non_unit, &d, a, &d, &info)
        if info != 0:
            return c
        for i in range(d):  # transpose into row-major U
            for j in range(i + 1, d):
                a[i * d + j] = a[j * d + i]
                a[j * d + i] = 0.0
    return -1


def _exp_or_zero(const floating[::1] x, double floor):
    """The E-step's exponential on an array, in its dtype (for the tests: accuracy and
    floor), through the E-step's own loop."""
    # As the second of two components whose first is 0: the E-step's row maximum is then 0
    # for every x <= 0 (and for NaN, which never becomes a maximum).
    dtype = np.float64 if floating is double else np.float32
    n = x.shape[0]
    terms = np.zeros((2, n), dtype=dtype)
    terms[1] = x
    top = np.empty(n, dtype=dtype)
    total = np.empty(n, dtype=dtype)
    cdef floating[:, ::1] terms_view = terms
    cdef floating[::1] top_view = top, total_view = total
    if n:
        _exp_block_terms(&terms_view[0, 0], n, 2, &top_view[0], &total_view[0], floor)
    return terms[1]


def _log_ge1(const floating[::1] x):
    """The row log-sum-exp's log on an array (x >= 1), in its dtype (for the tests)."""
    out = np.empty(x.shape[0], dtype=np.float64 if floating is double else np.float32)
    cdef floating[::1] out_view = out
    cdef Py_ssize_t i
    for i in range(x.shape[0]):
        out_view[i] = _log(x[i])
    return out


def _lookahead_shares(const floating[:, ::1] X, Py_ssize_t row0, Py_ssize_t row_end,
                      Py_ssize_t parts):
    """The chunk loops' lookahead on X's chunk from row ``row0`` on (none from ``row_end``
    on), for the tests: the offset of its first byte in X (−1 for none), its number of
    cache lines, whether it goes into L1, and the lines asked for after each of ``parts``
    shares."""
    cdef Lookahead ahead = _next_chunk(&X[0, 0], X.shape[1], row0, row_end)
    cdef Py_ssize_t part
    asked = []
    for part in range(parts):
        _fetch_share(&ahead, part, parts)
        asked.append(ahead.asked)
    offset = -1 if ahead.rows == NULL else <char*> ahead.rows - <char*> &X[0, 0]
    return offset, ahead.lines, bool(ahead.into_l1), asked


def openmp_enabled():
    """True when the compiled core was built with OpenMP."""
    return bool(GMMFAST_OPENMP_ENABLED)


def max_threads():
    """The OpenMP default thread count (honours OMP_NUM_THREADS and threadpoolctl)."""
    return omp_get_max_threads()


def pass_threads(n_threads, Py_ssize_t n_tasks, Py_ssize_t n_samples,
                 Py_ssize_t n_components, Py_ssize_t per_pair):
    """The threads that work split into ``n_tasks`` tasks, of ``n_samples`` ×
    ``n_components`` (row, component) pairs of ``per_pair`` operations in all, runs on: the
    compiled passes' one rule (``resolve_threads`` and ``pass_work`` in
    gmmfast/_chunking.pxd), for Python code that spreads 1-thread passes over threads of
    its own. ``n_threads`` <= 0 means the OpenMP default."""
    return resolve_threads(requested_threads(n_threads), n_tasks,
                           pass_work(n_samples, n_components, per_pair))


# --------------------------------------------------------------------------------------------
# The C-level API (declared in gmmfast/_em.pxd): the float64 kernels
# --------------------------------------------------------------------------------------------

cdef void transpose_chunk(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, double* xt,
) noexcept nogil:
    """xt (n_features, n_rows) float64 OUT = the rows X (n_rows, n_features) transposed."""
    cdef Py_ssize_t i, j
    for i in range(n_rows):
        for j in range(n_features):
            xt[j * n_rows + i] = X[i * n_features + j]


cdef void log_prob_full(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* work, double* log_prob,
) noexcept nogil:
    """log π_c + log N(x_i | μ_c, Σ_c) for every row and component, full precisions.

    work: scratch of (2 * n_features + 2) * n_rows doubles.
    log_prob: OUT (n_components, n_rows).
    The implementation is chosen by n_features (see WHITEN_BLAS_MIN_FEATURES).
    """
    _log_prob_full(xt, n_rows, n_features, n_components, means, precisions_chol, log_norm,
                   work, log_prob, NULL)


cdef void log_prob_diag(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* log_prob,
) noexcept nogil:
    """log π_c + log N(x_i | μ_c, diag σ_c²) for every row and component.

    log_prob: OUT (n_components, n_rows). Whole blocks of rows go through
    src/_blocked.h; the last m % ROW_BLOCK rows through the same kernel, padded, so a row's
    result does not depend on where the chunk boundaries fall. Those rows need a buffer of
    n_features × 16 doubles, allocated here: if that fails, log_prob is all NaN.
    """
    cdef double* tail = NULL
    cdef Py_ssize_t i
    if n_rows % ROW_BLOCK_F64:
        tail = <double*> malloc(n_features * MAX_ROW_BLOCK * sizeof(double))
        if tail == NULL:
            for i in range(n_components * n_rows):
                log_prob[i] = NAN
            return
    _log_prob_diag(xt, n_rows, n_features, n_components, means, precisions_chol, log_norm,
                   tail, log_prob, NULL)
    free(tail)


cdef double log_prob_to_resp(
    double* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components,
    const double* sample_weight, double* log_prob_norm, double* work,
) noexcept nogil:
    """Turn weighted log-probabilities into (sample-weighted) responsibilities, in place.

    log_prob: IN (n_components, n_rows) log π_c + log N(x_i | θ_c); OUT w_i · r_ic.
    sample_weight: (n_rows,) or NULL for unit weights.
    log_prob_norm: OUT (n_rows,) log p(x_i) = logsumexp over components (max-shifted).
    work: scratch of n_rows doubles.
    Returns Σ_i w_i log p(x_i) over rows of non-zero weight.
    """
    return _log_prob_to_resp(log_prob, n_rows, n_components, sample_weight, log_prob_norm,
                             work, LOG_RESP_FLOOR)


cdef void accumulate_full(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter, double* work,
) noexcept nogil:
    """Add Σ r, Σ r (x − c) and the upper triangle of Σ r (x − c)(x − c)ᵀ per component.

    resp: (n_components, n_rows), already multiplied by the sample weights.
    shifts: (n_components, n_features), the c_k the moments are taken about.
    nk (K,), sums (K, D), scatter (K, D, D): accumulators; only j <= l of scatter (row-major)
    is meaningful. work: scratch of (2 * n_features + 2) * n_rows doubles.

    Rows whose responsibility is exactly zero add nothing. With well-separated clusters
    most are (beyond exp(-600) they are flushed to zero): when at most half of a
    component's rows remain, they are first gathered, and only they go through the kernel.
    """
    _accumulate_full(xt, n_rows, n_features, n_components, <double*> resp, NULL, shifts, nk,
                     sums, scatter, work, NULL, NULL)


cdef void accumulate_diag(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter,
) noexcept nogil:
    """Add Σ r, Σ r (x − c) and Σ r (x − c)² (element-wise) per component."""
    _accumulate_diag(xt, n_rows, n_features, n_components, resp, NULL, shifts, nk, sums,
                     scatter, False, NULL)


# --------------------------------------------------------------------------------------------
# Python entry points
# --------------------------------------------------------------------------------------------

cdef double _resolved_floor(log_resp_floor, bint single) except? 1.0:
    """The floor of a pass's responsibilities (see em_pass): the compute type's own floor,
    or the caller's if that flushes more."""
    cdef double own = LOG_RESP_FLOOR_F32 if single else LOG_RESP_FLOOR
    if log_resp_floor is None:
        return own
    cdef double floor = float(log_resp_floor)
    if not floor <= 0.0:
        raise ValueError(f"log_resp_floor must be a log-ratio <= 0 (or None for the dtype's "
                         f"own), got {log_resp_floor!r}")
    return max(floor, own)


cdef class _PassArguments:
    """The arguments of one pass (em_pass, stats_from_labels, stats_from_resp, or one block
    of em_pass_blocks), checked and converted as the kernels read them by
    :func:`_pass_arguments`. The converted arrays live as long as this object, whose
    ``inputs`` point into them."""

    cdef cnp.ndarray x
    cdef bint single
    cdef Py_ssize_t n_samples
    cdef AccLayout layout
    cdef PassInputs inputs
    # The shifts the caller asked for, and those the kernels take their moments about:
    # rounded to float32, or the pooled form's common one.
    cdef cnp.ndarray exact_shifts, moment_shifts
    cdef object nk, sums, scatter  # the caller's statistics, added to in place
    cdef tuple alive  # the other converted arrays the inputs point into

    cdef double add_total(self, double* total) except? -1.0:
        """Add the pass's summed accumulator ``total`` to the caller's statistics (moved
        onto the exact shifts first when the kernels took them about others); returns
        Σ w log p."""
        if self.single or self.layout.pooled:
            _recentre_total(total, self.layout, self.scatter.shape, self.exact_shifts,
                            self.moment_shifts)
        _add_totals(total, self.layout, <double*> (<cnp.ndarray> self.nk).data,
                    <double*> (<cnp.ndarray> self.sums).data,
                    <double*> (<cnp.ndarray> self.scatter).data)
        return total[0]


cdef _PassArguments _pass_arguments(
    X, sample_weight, shifts, precisions_chol, log_norm, labels, given_resp,
    nk, sums, scatter, int source, form, log_resp_floor,
):
    """The arguments of a pass checked (a ValueError says which is wrong) and converted.

    The arguments are handled through NumPy's C API (gmmfast/_ndarray.pxd): this runs once
    per EM iteration, where typed memoryviews and NumPy calls cost ~10 µs, 1 % of a 1 ms
    iteration. Parameters are converted (to X's dtype, C order) when needed; the
    statistics must be writable C-contiguous float64, as they are added to in place.
    """
    cdef _PassArguments args = _PassArguments.__new__(_PassArguments)
    cdef cnp.ndarray x = _samples(X)
    cdef bint single = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT
    cdef int compute = cnp.NPY_FLOAT if single else cnp.NPY_DOUBLE
    cdef Py_ssize_t n = cnp.PyArray_DIMS(x)[0]
    cdef Py_ssize_t d = cnp.PyArray_DIMS(x)[1]
    cdef cnp.ndarray exact_shifts = contiguous(shifts, cnp.NPY_DOUBLE)
    cdef Py_ssize_t k = cnp.PyArray_DIMS(exact_shifts)[0] if exact_shifts.ndim == 2 else 0
    if k < 1 or not has_shape(exact_shifts, k, d, -1):
        raise ValueError(f"means/shifts must have shape (K >= 1, {d}), got {np.shape(shifts)}")
    _check_writable(nk, sums, scatter)
    # Without densities (labels, given responsibilities), the scatter's shape says which
    # statistics are wanted; with them, the form of the precisions does.
    cdef cnp.ndarray chol = None
    cdef int density_form = FULL if scatter.ndim == 3 else DIAG
    if source == FROM_DENSITY:
        chol = contiguous(precisions_chol, compute)
        density_form = _resolve_form(chol, k, d, form)
    # Tied densities with one (1, D, D) scatter: the pooled statistics.
    cdef bint pooled = density_form == TIED and k > 1 and has_shape(scatter, 1, d, d)
    cdef AccLayout layout = acc_layout(k, d, density_form != DIAG, pooled)
    if not has_shape(nk, k, -1, -1) or not has_shape(sums, k, d, -1):
        raise ValueError("nk must have shape (K,) and sums shape (K, D)")
    if not has_shape(scatter, 1 if pooled else k, d, d if layout.full else -1):
        expected = f"({k}, {d}, {d})" if layout.full else f"({k}, {d})"
        if density_form == TIED:
            expected += f" or (1, {d}, {d}) (pooled over the components)"
        raise ValueError(f"scatter must have shape {expected} for these precisions")

    cdef cnp.ndarray weights = _weights(sample_weight, n)
    # The kernels take their moments about the shifts rounded to the compute type; they
    # are moved onto the exact shifts after the pass (_recentre).
    cdef cnp.ndarray rounded_shifts = contiguous(exact_shifts, compute)
    cdef cnp.ndarray norm = None
    cdef cnp.ndarray label_array = None, resp_array = None
    cdef cnp.ndarray centre = None, offsets = None
    if source == FROM_DENSITY:
        norm = contiguous(log_norm, compute)
        if not has_shape(norm, k, -1, -1):
            raise ValueError(f"log_norm must have shape ({k},)")
        if density_form == TIED:
            centre, offsets = _tied_geometry(exact_shifts, precisions_chol, rounded_shifts.dtype)
    elif source == FROM_LABELS:
        label_array = contiguous(labels, cnp.NPY_INT64)
        if not has_shape(label_array, n, -1, -1):
            raise ValueError(f"labels must have shape ({n},)")
        if n and (np.min(label_array) < 0 or np.max(label_array) >= k):
            raise ValueError(f"labels must be in [0, {k})")
    elif source == FROM_RESP:
        resp_array = contiguous(given_resp, cnp.NPY_DOUBLE)
        if not has_shape(resp_array, n, k, -1):
            raise ValueError(f"resp must have shape ({n}, {k}), got {np.shape(given_resp)}")

    args.inputs.form = <Form> density_form
    args.inputs.w = NULL if weights is None else <double*> weights.data
    args.inputs.labels = NULL if label_array is None else <long long*> label_array.data
    args.inputs.resp = NULL if resp_array is None else <double*> resp_array.data
    args.inputs.shifts = rounded_shifts.data
    args.inputs.chol = NULL if chol is None else chol.data
    args.inputs.log_norm = NULL if norm is None else norm.data
    args.inputs.tied_centre = NULL if centre is None else centre.data
    args.inputs.tied_offsets = NULL if offsets is None else offsets.data
    args.inputs.log_resp_floor = _resolved_floor(log_resp_floor, single)
    args.x = x
    args.single = single
    args.n_samples = n
    args.layout = layout
    args.exact_shifts = exact_shifts
    args.moment_shifts = (np.broadcast_to(centre, (k, d)) if pooled else rounded_shifts)
    args.nk, args.sums, args.scatter = nk, sums, scatter
    args.alive = (weights, chol, norm, label_array, resp_array, centre, offsets,
                  rounded_shifts)
    return args


cdef double _stats_pass(
    X, sample_weight, shifts, precisions_chol, log_norm, labels, given_resp,
    nk, sums, scatter, int n_threads, int source, form, log_resp_floor=None,
) except? -1.0:
    """em_pass, stats_from_labels and stats_from_resp: arguments checked, then the pass."""
    cdef _PassArguments args = _pass_arguments(
        X, sample_weight, shifts, precisions_chol, log_norm, labels, given_resp,
        nk, sums, scatter, source, form, log_resp_floor)
    cdef double* total = _run_pass(args.x, args.single, <StatsSource> source, &args.inputs, 1,
                                   args.layout, n_threads)
    try:
        return args.add_total(total)
    finally:
        free(total)


# The accumulators of a pass over several parameter sets: each set has as many as its own
# pass would (so that its statistics are summed in the same order), and all of them together
# are capped here (256 MiB), a multiple of what one pass may take (GROUP_BUDGET_DOUBLES).
cdef Py_ssize_t MAX_SET_ACCUMULATOR_DOUBLES = 16 * GROUP_BUDGET_DOUBLES


cdef Py_ssize_t _max_sets(Py_ssize_t n_groups, AccLayout layout) noexcept nogil:
    """The parameter sets one pass takes (at least one: a single set is a plain pass)."""
    return max(<Py_ssize_t> 1, MAX_SET_ACCUMULATOR_DOUBLES // (n_groups * layout.size))


cdef double* _run_pass(
    cnp.ndarray x, bint single, StatsSource source, const PassInputs* sets, Py_ssize_t n_sets,
    AccLayout layout, int n_threads,
) except NULL:
    """The pass of ``n_sets`` parameter sets (``sets``) over the rows of x.

    Returns the sets' statistics, each summed over its groups, set i's accumulator at
    i × layout.size (malloc'd: the caller frees it). Every set's groups are those of its
    own pass, summed in the same order: a set's statistics are those of its own pass, bit
    for bit, whatever the number of sets or threads.
    """
    cdef Py_ssize_t n = cnp.PyArray_DIMS(x)[0]
    cdef Py_ssize_t d = layout.d
    cdef Py_ssize_t i
    cdef Py_ssize_t n_chunks = n_chunks_of(n)
    cdef Py_ssize_t n_groups = n_groups_of(n_chunks, layout.size)
    cdef Py_ssize_t allowed = _max_sets(n_groups, layout)
    if n_sets > allowed:
        raise ValueError(
            f"{n_sets} parameter sets of {layout.k} components in {d} features need "
            f"{n_sets * n_groups * layout.size * 8 / 1048576.0:.0f} MiB of accumulators in "
            f"one pass over {n} rows; pass at most {allowed} sets per call "
            f"(gmmfast._em.max_sets_per_pass gives the number)"
        )
    cdef int threads = resolve_threads(
        n_threads, n_groups, n_sets * pass_work(n, layout.k, d * d if layout.full else d))
    cdef double* acc = <double*> calloc(n_sets * n_groups * layout.size, sizeof(double))
    if acc == NULL:
        raise MemoryError(f"no memory for {n_sets * n_groups} accumulators of {layout.size} "
                          f"doubles")
    cdef bint blas = layout.full and d >= SCATTER_BLAS_MIN_FEATURES
    # float32 statistics through float64 BLAS, and the pooled ones in float64 throughout.
    cdef bint widen = single and (blas or layout.pooled)
    cdef ScratchShape shape = scratch_shape(n, d, layout.k, layout.full, widen, False,
                                            sizeof(float) if single else sizeof(double))
    cdef Py_ssize_t groups_without_memory = 0
    try:
        if n > 0 and blas:
            # Each chunk calls BLAS on small blocks: its own threads would only fight ours.
            # (Below this size, and for diag, the pass calls no BLAS: the limit, ~1 µs per
            # pass, is not applied.)
            reserve_blas_memory(shape, threads)
            with single_threaded_blas():
                with nogil:
                    groups_without_memory = _dispatch_pass(
                        x.data, single, n, source, sets, n_sets, layout, shape, n_groups,
                        threads, acc)
        elif n > 0:
            # Other Python threads (a model search's candidates, groups of rows with
            # missing entries, callers predicting meanwhile) run during the pass.
            with nogil:
                groups_without_memory = _dispatch_pass(
                    x.data, single, n, source, sets, n_sets, layout, shape, n_groups,
                    threads, acc)
        if groups_without_memory:
            raise scratch_error(shape, threads)
    except BaseException:
        free(acc)
        raise
    for i in range(n_sets):
        _sum_groups(acc + i * n_groups * layout.size, n_groups, layout)
        if i:
            memmove(acc + i * layout.size, acc + i * n_groups * layout.size,
                    layout.size * sizeof(double))
    return acc


def max_sets_per_pass(Py_ssize_t n_samples, Py_ssize_t n_components, Py_ssize_t n_features,
                      bint full, bint pooled=False):
    """How many parameter sets :func:`em_pass_sets` takes in one call on n_samples rows,
    for mixtures of n_components components in n_features features (``full``: full or
    tied precisions, else diag; ``pooled``: tied precisions' pooled statistics)."""
    cdef AccLayout layout = acc_layout(n_components, n_features, full, pooled)
    return _max_sets(n_groups_of(n_chunks_of(n_samples), layout.size), layout)


cdef int _check_writable(nk, sums, scatter) except -1:
    if not (is_writable_float64(nk) and is_writable_float64(sums)
            and is_writable_float64(scatter)):
        raise ValueError("nk, sums and scatter must be writable, aligned, C-contiguous "
                         "float64 arrays: the statistics are added to them in place")
    return 0


cdef cnp.ndarray _weights(sample_weight, Py_ssize_t n):
    """The sample weights as the kernels read them (float64, C order), or None."""
    if sample_weight is None:
        return None
    cdef cnp.ndarray weights = contiguous(sample_weight, cnp.NPY_DOUBLE)
    if not has_shape(weights, n, -1, -1):
        raise ValueError(f"sample_weight must have shape ({n},)")
    return weights


cdef cnp.ndarray _samples(X):
    """X as the kernels read it: a C-contiguous float32/float64 (n_samples, n_features) array
    (itself, never copied: a pass over a copy would double the memory of a fit)."""
    if not cnp.PyArray_Check(X):
        X = np.asarray(X)
    cdef cnp.ndarray x = <cnp.ndarray> X
    if cnp.PyArray_NDIM(x) != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {np.shape(X)}")
    if (cnp.PyArray_TYPE(x) not in (cnp.NPY_DOUBLE, cnp.NPY_FLOAT)
            or not cnp.PyArray_ISNOTSWAPPED(x)):
        raise ValueError(f"X must be float32 or float64 in native byte order, got {x.dtype}")
    # Not necessarily aligned: blocks that Dask deserialised from a network frame may not
    # be, and every load of the kernels is an unaligned one anyway.
    if not cnp.PyArray_IS_C_CONTIGUOUS(x):
        raise ValueError("X must be C-contiguous: pass np.ascontiguousarray(X)")
    return x



def em_pass(X, sample_weight, means, precisions_chol, log_norm, nk, sums, scatter,
            n_threads=0, form=None, log_resp_floor=None):
    """One E-step fused with the accumulation of the M-step's sufficient statistics.

    The pass computes in X's dtype: float32 data with the parameters rounded to float32
    (responsibilities below exp(−87) of a row's largest are then flushed to zero, instead of
    exp(−600)). The statistics are summed in float64 either way, and are exactly about
    ``means`` (the float32 pass re-centres its moments from the rounded means).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        IN. The samples.
    sample_weight : ndarray of shape (n_samples,) float64, or None
        IN. Non-negative weights; None means all ones.
    means : ndarray of shape (n_components, n_features), float64
        IN. Current means; also the shifts the moments are taken about.
    precisions_chol : ndarray, float64
        IN. (n_components, n_features, n_features) upper-triangular Cholesky factors of the
        precisions (full), (1, n_features, n_features) one factor shared by all components
        (tied: each chunk is whitened once), or (n_components, n_features) inverse standard
        deviations (diag).
    log_norm : ndarray of shape (n_components,), float64
        IN. log π_k + log det U_k − ½ D log 2π.
    nk : ndarray of shape (n_components,), float64, C-contiguous
        IN/OUT. Σ_i w_i r_ik is added.
    sums : ndarray of shape (n_components, n_features), float64, C-contiguous
        IN/OUT. Σ_i w_i r_ik (x_i − μ_k) is added.
    scatter : ndarray, float64, C-contiguous
        IN/OUT. (n_components, n_features, n_features) Σ_i w_i r_ik (x_i − μ_k)(x_i − μ_k)ᵀ
        (full) or (n_components, n_features) its diagonal (diag) is added; with tied
        precisions, (1, n_features, n_features) takes the pooled form, the sum of those
        matrices over the components: the pass then accumulates one D×D scatter per row
        (about the mean of the means, moved onto the means at the end) instead of one per
        row and component.
    n_threads : int
        IN. Threads to use; <= 0 means the OpenMP default. At most the number of CPUs this
        process may run on (``omp_get_num_procs()``): larger values are capped. A small pass
        (a few hundred rows) runs on fewer, down to one, as waking threads would cost more
        than the pass (see MIN_WORK_PER_THREAD in gmmfast/_chunking.pxd). Results do not
        depend on it.
    form : FORM_FULL, FORM_TIED, FORM_DIAG or None
        IN. The covariance form of ``precisions_chol``, which selects the density kernel;
        None infers it from the shapes ((1, D, D) for K > 1 components is tied). A form
        that does not match the shape of ``precisions_chol`` is a ValueError.
    log_resp_floor : float <= 0 or None
        IN. Responsibilities below exp(log_resp_floor) of their row's largest count as 0 in
        the statistics and in ``loglik``: a model whose parameters such weights cannot move
        saves their accumulation (the full and tied scatters of a component gather its rows
        of non-zero responsibility when they are at most half of a chunk; the float64 diag
        statistics skip the blocks of rows where a component has none). None, or a value
        below it, means the dtype's own floor above.

    Returns
    -------
    loglik : float
        Σ_i w_i log p(x_i) under the given parameters.
    """
    return _stats_pass(X, sample_weight, means, precisions_chol, log_norm, None, None,
                       nk, sums, scatter, requested_threads(n_threads), FROM_DENSITY, form,
                       log_resp_floor)


def em_pass_sets(X, sample_weight, means, precisions_chol, log_norm, nk, sums, scatter,
                 n_threads=0, form=None, log_resp_floor=None):
    """:func:`em_pass` for M parameter sets of the same form at once: one read of X.

    Each chunk of rows is transposed once and, while it is in cache, goes through the
    densities, responsibilities and statistics of every set, each into its own
    accumulators. Set i's results are those of ``em_pass`` with set i's arrays, bit for
    bit, for any number of threads. The arrays are em_pass's, stacked on a first axis of
    length M >= 1.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        IN. The samples.
    sample_weight : ndarray of shape (n_samples,) float64, or None
        IN. Non-negative weights shared by all the sets; None means all ones.
    means : ndarray of shape (M, n_components, n_features), float64
        IN. Each set's means, also the shifts its moments are taken about.
    precisions_chol : ndarray, float64
        IN. (M, n_components, n_features, n_features) full, (M, 1, n_features, n_features)
        tied or (M, n_components, n_features) diag: each set's factors, as in em_pass.
    log_norm : ndarray of shape (M, n_components), float64
        IN. Each set's log π_k + log det U_k − ½ D log 2π.
    nk : ndarray of shape (M, n_components), float64, C-contiguous
        IN/OUT. Σ_i w_i r_ik of each set is added.
    sums : ndarray of shape (M, n_components, n_features), float64, C-contiguous
        IN/OUT. Σ_i w_i r_ik (x_i − μ_k) of each set is added.
    scatter : ndarray, float64, C-contiguous
        IN/OUT. (M, n_components, n_features, n_features) (full, tied), (M, 1, n_features,
        n_features) (tied, pooled as in em_pass) or (M, n_components, n_features) (diag):
        each set's scatter is added.
    n_threads : int
        IN. Threads to use, as in :func:`em_pass`. Results do not depend on it.
    form : FORM_FULL, FORM_TIED, FORM_DIAG or None
        IN. The covariance form of every set, as in :func:`em_pass` (inferred from the
        shape of one set's factors when None).
    log_resp_floor : float <= 0 or None
        IN. The floor of every set's responsibilities, as in :func:`em_pass`.

    Returns
    -------
    loglik : ndarray of shape (M,), float64
        Σ_i w_i log p(x_i) under each set.

    Each set needs the accumulators of its own pass: more sets than
    :func:`max_sets_per_pass` gives for this shape are a ValueError.
    """
    cdef cnp.ndarray x = _samples(X)
    cdef bint single = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT
    cdef int compute = cnp.NPY_FLOAT if single else cnp.NPY_DOUBLE
    cdef Py_ssize_t n = cnp.PyArray_DIMS(x)[0]
    cdef Py_ssize_t d = cnp.PyArray_DIMS(x)[1]
    cdef cnp.ndarray exact_means = contiguous(means, cnp.NPY_DOUBLE)
    if (exact_means.ndim != 3 or cnp.PyArray_DIMS(exact_means)[0] < 1
            or cnp.PyArray_DIMS(exact_means)[1] < 1 or cnp.PyArray_DIMS(exact_means)[2] != d):
        raise ValueError(f"means must have shape (M >= 1 sets, K >= 1, {d}), got "
                         f"{np.shape(means)}")
    cdef Py_ssize_t n_sets = cnp.PyArray_DIMS(exact_means)[0]
    cdef Py_ssize_t k = cnp.PyArray_DIMS(exact_means)[1]
    cdef cnp.ndarray chol = contiguous(precisions_chol, compute)
    if chol.ndim not in (3, 4) or cnp.PyArray_DIMS(chol)[0] != n_sets:
        raise ValueError(f"precisions_chol must stack one set's factors for each of the "
                         f"{n_sets} sets of means, got shape {np.shape(precisions_chol)}")
    cdef int density_form = _resolve_form(chol[0], k, d, form)
    cdef bint pooled = (density_form == TIED and k > 1
                        and np.shape(scatter) == (n_sets, 1, d, d))
    cdef AccLayout layout = acc_layout(k, d, density_form != DIAG, pooled)
    cdef cnp.ndarray norm = contiguous(log_norm, compute)
    if np.shape(norm) != (n_sets, k):
        raise ValueError(f"log_norm must have shape ({n_sets}, {k}), got {np.shape(log_norm)}")
    _check_writable(nk, sums, scatter)
    cdef tuple expected = (n_sets, 1 if pooled else k, d)
    if layout.full:
        expected += (d,)
    if np.shape(nk) != (n_sets, k) or np.shape(sums) != (n_sets, k, d):
        raise ValueError(f"nk must have shape ({n_sets}, {k}) and sums shape "
                         f"({n_sets}, {k}, {d}), got {np.shape(nk)} and {np.shape(sums)}")
    if np.shape(scatter) != expected:
        raise ValueError(f"scatter must have shape {expected} for these precisions, got "
                         f"{np.shape(scatter)}")
    cdef cnp.ndarray weights = _weights(sample_weight, n)
    cdef cnp.ndarray rounded_means = contiguous(exact_means, compute)
    cdef cnp.ndarray centre = None, offsets = None
    if density_form == TIED:
        centre, offsets = _tied_geometry(exact_means, precisions_chol, rounded_means.dtype)

    cdef size_t itemsize = sizeof(float) if single else sizeof(double)
    cdef Py_ssize_t chol_size = cnp.PyArray_SIZE(chol) // n_sets
    cdef double floor = _resolved_floor(log_resp_floor, single)
    cdef PassInputs* sets = <PassInputs*> malloc(n_sets * sizeof(PassInputs))
    if sets == NULL:
        raise MemoryError(f"no memory for the inputs of {n_sets} parameter sets")
    cdef Py_ssize_t i
    for i in range(n_sets):
        sets[i].form = <Form> density_form
        sets[i].w = NULL if weights is None else <double*> weights.data
        sets[i].labels = NULL
        sets[i].resp = NULL
        sets[i].shifts = rounded_means.data + i * k * d * itemsize
        sets[i].chol = chol.data + i * chol_size * itemsize
        sets[i].log_norm = norm.data + i * k * itemsize
        sets[i].tied_centre = NULL if centre is None else centre.data + i * d * itemsize
        sets[i].tied_offsets = NULL if offsets is None else offsets.data + i * k * d * itemsize
        sets[i].log_resp_floor = floor
    cdef double* totals
    try:
        totals = _run_pass(x, single, FROM_DENSITY, sets, n_sets, layout,
                           requested_threads(n_threads))
    finally:
        free(sets)
    loglik = np.empty(n_sets)
    cdef double* total
    try:
        for i in range(n_sets):
            total = totals + i * layout.size
            if pooled:
                _recentre_total(total, layout, expected[1:], exact_means[i],
                                np.broadcast_to(centre[i], (k, d)))
            elif single:
                _recentre_total(total, layout, expected[1:], exact_means[i], rounded_means[i])
            _add_totals(total, layout, <double*> (<cnp.ndarray> nk).data + i * k,
                        <double*> (<cnp.ndarray> sums).data + i * k * d,
                        <double*> (<cnp.ndarray> scatter).data + i * layout.scatter_size)
            loglik[i] = total[0]
    finally:
        free(totals)
    return loglik


def em_pass_blocks(X, sample_weight, means, precisions_chol, log_norm, nk, sums, scatter,
                   n_threads=0, form=None, log_resp_floor=None):
    """:func:`em_pass` over B blocks of rows at once, each with its own parameters and
    number of features (the observed columns of a pattern of missing entries, under the
    mixture's marginal over them, say): one call and one parallel region for all of them.

    The work is cut into tasks, one per group of a block's chunks (the groups of the
    block's own pass), which the threads draw, the heaviest first, as they come free: a
    large block is shared by every thread, many small ones cost one call instead of one
    each. Block b's results are those of ``em_pass`` with block b's arrays, bit for bit,
    for any number of threads.

    Parameters
    ----------
    X : sequence of B ndarrays of shape (n_b, d_b), float32 or float64, C-contiguous
        IN. The blocks of rows, all of one dtype.
    sample_weight : sequence of B ndarrays of shape (n_b,) float64, or of None
        IN. Each block's weights, as in em_pass.
    means, precisions_chol, log_norm : sequences of B ndarrays, float64
        IN. Each block's parameters, as in em_pass: K components (the same K for every
        block) in its d_b features.
    nk, sums, scatter : sequences of B ndarrays, float64, C-contiguous
        IN/OUT. Each block's statistics are added, as in em_pass.
    n_threads : int
        IN. Threads to use, as in :func:`em_pass`. Results do not depend on it.
    form : FORM_FULL, FORM_TIED, FORM_DIAG or None
        IN. The covariance form of every block, as in :func:`em_pass` (inferred from the
        shape of the first block's factors when None).
    log_resp_floor : float <= 0 or None
        IN. The floor of every block's responsibilities, as in :func:`em_pass`.

    Returns
    -------
    loglik : ndarray of shape (B,), float64
        Σ_i w_i log p(x_i) of each block under its parameters.
    """
    cdef Py_ssize_t n_blocks = len(X)
    cdef tuple per_block = (sample_weight, means, precisions_chol, log_norm, nk, sums, scatter)
    if any(len(arrays) != n_blocks for arrays in per_block):
        raise ValueError(f"sample_weight, means, precisions_chol, log_norm, nk, sums and "
                         f"scatter must each hold one entry per block of X ({n_blocks}), "
                         f"got {[len(arrays) for arrays in per_block]}")
    cdef list blocks = []
    cdef _PassArguments block, first = None
    cdef Py_ssize_t b
    for b in range(n_blocks):
        block = _pass_arguments(X[b], sample_weight[b], means[b], precisions_chol[b],
                                log_norm[b], None, None, nk[b], sums[b], scatter[b],
                                FROM_DENSITY, form, log_resp_floor)
        if first is None:
            first = block
            form = <int> block.inputs.form  # the other blocks' factors must have it
        elif block.single != first.single or block.layout.k != first.layout.k:
            raise ValueError(
                f"every block must have X of one dtype and the same number of components: "
                f"block {b} has {block.x.dtype} and {block.layout.k}, block 0 "
                f"{first.x.dtype} and {first.layout.k}")
        blocks.append(block)
    loglik = np.zeros(n_blocks)
    cdef int threads = requested_threads(n_threads)
    cdef Py_ssize_t start = 0, stop
    while start < n_blocks:
        stop = _wave_end(blocks, start)
        _pass_wave(blocks, start, stop, threads, loglik)
        start = stop
    return loglik


cdef inline Py_ssize_t _block_groups(_PassArguments block) noexcept:
    """The groups of chunks of a block's own pass, and so of its tasks."""
    return n_groups_of(n_chunks_of(block.n_samples), block.layout.size)


cdef Py_ssize_t _wave_end(list blocks, Py_ssize_t start) except -1:
    """The end of the run of blocks from ``start`` whose accumulators fit in
    MAX_SET_ACCUMULATOR_DOUBLES together (at least one block): the blocks of one
    parallel region."""
    cdef Py_ssize_t stop = start, doubles = 0, needed
    cdef _PassArguments block
    while stop < len(blocks):
        block = blocks[stop]
        needed = _block_groups(block) * block.layout.size
        if stop > start and doubles + needed > MAX_SET_ACCUMULATOR_DOUBLES:
            break
        doubles += needed
        stop += 1
    return stop


cdef int _pass_wave(list blocks, Py_ssize_t start, Py_ssize_t stop, int n_threads,
                    double[::1] loglik) except -1:
    """Blocks start .. stop of em_pass_blocks in one parallel region; then each block's
    groups are summed in order and added to its statistics, its Σ w log p to ``loglik``."""
    cdef Py_ssize_t n_wave = stop - start
    cdef _PassArguments block, first = blocks[start]
    cdef Py_ssize_t j, max_rows = 0, max_features = 0, doubles = 0
    cdef double work, total_work = 0.0
    group_counts = np.empty(n_wave, dtype=np.intp)
    task_weights = np.empty(n_wave)
    cdef Py_ssize_t[::1] counts = group_counts
    cdef double[::1] weights = task_weights
    cdef Py_ssize_t[::1] first_double = np.empty(n_wave, dtype=np.intp)
    for j in range(n_wave):
        block = blocks[start + j]
        counts[j] = _block_groups(block)
        first_double[j] = doubles
        doubles += counts[j] * block.layout.size
        work = pass_work(block.n_samples, block.layout.k,
                         block.layout.d * block.layout.d if block.layout.full
                         else block.layout.d)
        total_work += work
        weights[j] = work / counts[j]
        max_rows = max(max_rows, block.n_samples)
        max_features = max(max_features, block.layout.d)
    task_block = np.repeat(np.arange(n_wave), group_counts)
    task_group = np.arange(len(task_block)) - np.repeat(np.cumsum(group_counts) - group_counts,
                                                        group_counts)
    # The heaviest tasks first: the last ones, which end the region, are then short.
    order = np.argsort(-task_weights[task_block], kind="stable")
    cdef Py_ssize_t[::1] block_of = np.ascontiguousarray(task_block[order], dtype=np.intp)
    cdef Py_ssize_t[::1] group_of = np.ascontiguousarray(task_group[order], dtype=np.intp)
    cdef Py_ssize_t n_tasks = block_of.shape[0]

    cdef bint single = first.single
    cdef bint blas = first.layout.full and max_features >= SCATTER_BLAS_MIN_FEATURES
    cdef ScratchShape shape = scratch_shape(max_rows, max_features, first.layout.k,
                                            first.layout.full,
                                            single and (blas or first.layout.pooled), False,
                                            sizeof(float) if single else sizeof(double))
    cdef int threads = resolve_threads(n_threads, n_tasks, total_work)
    cdef double* acc = <double*> calloc(doubles, sizeof(double))
    cdef RowBlock* row_blocks = <RowBlock*> malloc(n_wave * sizeof(RowBlock))
    if acc == NULL or row_blocks == NULL:
        free(acc)
        free(row_blocks)
        raise MemoryError(f"no memory for the accumulators of {n_wave} blocks of rows "
                          f"({doubles * 8 / 1048576.0:.0f} MiB)")
    cdef Py_ssize_t tasks_without_memory = 0
    try:
        for j in range(n_wave):
            block = blocks[start + j]
            row_blocks[j].X = block.x.data
            row_blocks[j].n_samples = block.n_samples
            row_blocks[j].inputs = block.inputs
            row_blocks[j].layout = block.layout
            row_blocks[j].n_groups = counts[j]
            row_blocks[j].acc = acc + first_double[j]
        if max_rows > 0 and blas:
            # As in _run_pass: BLAS's own threads would only fight ours.
            reserve_blas_memory(shape, threads)
            with single_threaded_blas():
                with nogil:
                    tasks_without_memory = _pass_blocks(single, row_blocks, n_wave,
                                                        &block_of[0], &group_of[0], n_tasks,
                                                        shape, threads)
        elif max_rows > 0:
            with nogil:
                tasks_without_memory = _pass_blocks(single, row_blocks, n_wave, &block_of[0],
                                                    &group_of[0], n_tasks, shape, threads)
        if tasks_without_memory:
            raise scratch_error(shape, threads)
        # Without rows the accumulators are zero: their sum is the first.
        for j in range(n_wave):
            block = blocks[start + j]
            loglik[start + j] = block.add_total(row_blocks[j].acc)
    finally:
        free(acc)
        free(row_blocks)
    return 0


def stats_from_labels(X, sample_weight, labels, shifts, nk, sums, scatter, n_threads=0):
    """Sufficient statistics of a hard partition (labels in [0, K)), moments about ``shifts``.

    Same arrays and conventions as :func:`em_pass`; ``labels`` is an int64 (n_samples,) IN.
    """
    _stats_pass(X, sample_weight, shifts, None, None, labels, None,
                nk, sums, scatter, requested_threads(n_threads), FROM_LABELS, None)


def stats_from_resp(X, sample_weight, resp, shifts, nk, sums, scatter, n_threads=0):
    """Sufficient statistics of given responsibilities (n_samples, n_components) float64."""
    _stats_pass(X, sample_weight, shifts, None, None, None, resp,
                nk, sums, scatter, requested_threads(n_threads), FROM_RESP, None)


def score(
    const floating[:, ::1] X, means, precisions_chol, log_norm,
    floating[::1] log_prob_norm=None, long long[::1] labels=None,
    floating[:, ::1] resp=None, n_threads=0, bint check_finite=False, form=None,
):
    """Per-sample log-density, labels and responsibilities (each optional), chunk by chunk.

    Computed in X's dtype, as :func:`em_pass`. With ``check_finite``, returns whether every
    value of X is finite (checked on the chunks as they are scored, so that callers need
    not read X a second time), else None; the outputs are meaningless when it is False.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64, C-contiguous
        IN.
    means, precisions_chol, log_norm : float64 ndarrays
        IN. As in :func:`em_pass`.
    log_prob_norm : ndarray of shape (n_samples,), X's dtype, or None
        OUT. log p(x_i).
    labels : ndarray of shape (n_samples,), int64, or None
        OUT. argmax_k of log π_k + log N(x_i | θ_k) (first maximum on ties).
    resp : ndarray of shape (n_samples, n_components), X's dtype, or None
        OUT. Responsibilities p(k | x_i). A row whose density is zero under every
        component (a point so far from all of them that its squared distances overflow)
        gets 1/K for each: every row sums to 1.
    n_threads : int
        IN. Threads to use, as in :func:`em_pass`.
    check_finite : bool
        IN. Whether to check X for NaN and infinities.
    form : FORM_FULL, FORM_TIED, FORM_DIAG or None
        IN. As in :func:`em_pass`.
    """
    means = np.asarray(means)
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k = means.shape[0]
    if k < 1 or means.shape != (k, d):
        raise ValueError(f"means must have shape ({k}, {d}), got {means.shape}")
    if log_prob_norm is not None and log_prob_norm.shape[0] != n:
        raise ValueError(f"log_prob_norm must have shape ({n},)")
    if labels is not None and labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},)")
    if resp is not None and (resp.shape[0] != n or resp.shape[1] != k):
        raise ValueError(f"resp must have shape ({n}, {k})")
    cdef int compute = cnp.NPY_DOUBLE if floating is double else cnp.NPY_FLOAT
    cdef cnp.ndarray chol = contiguous(precisions_chol, compute)
    cdef Form density_form = <Form> _resolve_form(chol, k, d, form)
    cdef const floating[::1] mean_view = contiguous(means, compute).reshape(-1)
    cdef const floating[::1] chol_view = chol.reshape(-1)
    cdef const floating[::1] norm_view = contiguous(log_norm, compute).reshape(-1)
    if norm_view.shape[0] != k:
        raise ValueError(f"log_norm must have shape ({k},)")
    cdef const floating[::1] centre_view
    cdef const floating[::1] offsets_view
    cdef const floating* centre_ptr = NULL
    cdef const floating* offsets_ptr = NULL
    if density_form == TIED:
        centre, offsets = _tied_geometry(means, precisions_chol, chol.dtype)
        centre_view = centre
        offsets_view = offsets.reshape(-1)
        centre_ptr = &centre_view[0]
        offsets_ptr = &offsets_view[0]
    if n == 0:
        return True if check_finite else None

    cdef bint full = density_form != DIAG
    cdef int threads = resolve_threads(requested_threads(n_threads), n_chunks_of(n),
                                       pass_work(n, k, d * d if full else d))
    cdef floating* norm_out = &log_prob_norm[0] if log_prob_norm is not None else NULL
    cdef long long* label_out = &labels[0] if labels is not None else NULL
    cdef floating* resp_out = &resp[0, 0] if resp is not None else NULL
    cdef size_t resp_bytes = <size_t> (n * k) * sizeof(floating)
    cdef bint stream = (resp_out != NULL and resp_bytes >= STREAM_MIN_BYTES
                        and pages_resident(resp_out, resp_bytes))
    cdef ScratchShape shape = scratch_shape(n, d, k, full, False, stream, sizeof(floating))
    cdef Py_ssize_t nonfinite_chunks = 0, chunks_without_memory

    if full and d >= WHITEN_BLAS_MIN_FEATURES:
        reserve_blas_memory(shape, threads)
        # Each chunk calls BLAS on small blocks: its own threads would only fight ours.
        with single_threaded_blas():
            with nogil:
                chunks_without_memory = _score_chunks(
                    &X[0, 0], n, d, k, density_form, &mean_view[0], &chol_view[0],
                    &norm_view[0], centre_ptr, offsets_ptr, norm_out, label_out, resp_out,
                    check_finite, shape, threads, &nonfinite_chunks)
    else:
        # No BLAS below that size (as in _stats_pass): limiting it would cost ~20 µs, as
        # much as scoring a few hundred rows.
        with nogil:
            chunks_without_memory = _score_chunks(
                &X[0, 0], n, d, k, density_form, &mean_view[0], &chol_view[0], &norm_view[0],
                centre_ptr, offsets_ptr, norm_out, label_out, resp_out, check_finite, shape,
                threads, &nonfinite_chunks)
    if chunks_without_memory:
        raise scratch_error(shape, threads)
    return nonfinite_chunks == 0 if check_finite else None



