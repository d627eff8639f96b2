# One pass over the samples: chunks dealt to groups, each group's chunks in order into its
# own accumulator (one per parameter set), on OpenMP threads.

cdef enum StatsSource:
    FROM_DENSITY = 0  # responsibilities from the current parameters (the E-step)
    FROM_LABELS = 1   # hard assignments (k-means initialisation)
    FROM_RESP = 2     # responsibilities given by the caller (random initialisation)


cdef void _fill_resp_from_labels(
    const long long* labels, const double* sample_weight, Py_ssize_t n_rows,
    Py_ssize_t n_components, floating* resp,
) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n_rows * n_components):
        resp[i] = 0
    for i in range(n_rows):
        resp[labels[i] * n_rows + i] = 1 if sample_weight == NULL else <floating> sample_weight[i]


cdef void _fill_resp_from_given(
    const double* given, const double* sample_weight, Py_ssize_t n_rows,
    Py_ssize_t n_components, floating* resp,
) noexcept nogil:
    cdef Py_ssize_t i, c
    cdef double w
    for i in range(n_rows):
        w = 1.0 if sample_weight == NULL else sample_weight[i]
        for c in range(n_components):
            resp[c * n_rows + i] = <floating> (w * given[i * n_components + c])


cdef struct PassInputs:
    # _stats_pass's arrays, typed by the pass's dtype (shifts, chol, log_norm, tied_*) or
    # float64/int64; NULL where the source or the covariance form does not use them.
    Form form  # of the densities (FROM_DENSITY only)
    const double* w
    const long long* labels
    const double* resp
    const void* shifts
    const void* chol
    const void* log_norm
    const void* tied_centre  # also the common shift of the pooled statistics
    const void* tied_offsets
    # Responsibilities below exp(log_resp_floor) of their row's largest count as 0
    # (FROM_DENSITY only; at least the compute type's own floor, _log_resp_floor).
    double log_resp_floor


cdef void _stats_group(
    const floating* X, Py_ssize_t n_samples, StatsSource source, const PassInputs* sets,
    Py_ssize_t n_sets, AccLayout layout, Py_ssize_t group, Py_ssize_t n_groups,
    double* accumulators, Scratch s,
) noexcept nogil:
    """Accumulate group ``group``'s chunks into its accumulators, one per parameter set
    (set i's at (i × n_groups + group) × layout.size), computing in X's type. Each chunk is
    transposed once and serves every set while it is in cache; the group's next chunk is
    asked for from memory meanwhile."""
    cdef Py_ssize_t d = layout.d
    cdef Py_ssize_t n_chunks = n_chunks_of(n_samples)
    cdef Py_ssize_t chunk_begin = group_first_chunk(group, n_groups, n_chunks)
    cdef Py_ssize_t chunk_end = group_first_chunk(group + 1, n_groups, n_chunks)
    cdef Py_ssize_t group_end = min(chunk_end * <Py_ssize_t> CHUNK_ROWS, n_samples)
    cdef floating* xt = <floating*> s.xt
    cdef Py_ssize_t chunk, row0, m, i
    cdef Lookahead ahead
    for chunk in range(chunk_begin, chunk_end):
        row0 = chunk * CHUNK_ROWS
        m = min(<Py_ssize_t> CHUNK_ROWS, n_samples - row0)
        _transpose_chunk(X + row0 * d, m, d, xt)
        ahead = _next_chunk(X, d, row0 + m, group_end)
        for i in range(n_sets):
            _chunk_statistics(X + row0 * d, xt, row0, m, source, sets[i], layout,
                              accumulators + (i * n_groups + group) * layout.size, s, &ahead)


cdef inline void _chunk_statistics(
    const floating* x_rows, const floating* xt, Py_ssize_t row0, Py_ssize_t m,
    StatsSource source, PassInputs a, AccLayout layout, double* acc, Scratch s,
    Lookahead* ahead,
) noexcept nogil:
    """One chunk (rows row0 .. row0 + m: ``x_rows`` as stored, ``xt`` transposed) of one
    parameter set into ``acc``; the densities ask for ``ahead``'s rows as they go."""
    cdef Py_ssize_t d = layout.d
    cdef Py_ssize_t k = layout.k
    cdef double* nk = acc + layout.nk
    cdef double* sums = acc + layout.sums
    cdef double* scatter = acc + layout.scatter
    cdef floating* log_prob = <floating*> s.log_prob
    cdef floating* row_work = <floating*> s.row_work
    cdef floating* work = <floating*> s.work
    cdef const floating* shifts = <const floating*> a.shifts
    cdef const double* wc = NULL
    # The row factors of terms left unscaled (the statistics scale them as they read them,
    # instead of a load-multiply-store pass over the chunk's K × m).
    cdef const floating* scale = NULL
    if a.w != NULL:
        wc = a.w + row0
    if source == FROM_DENSITY:
        _log_prob(xt, m, d, k, a.form, shifts, <const floating*> a.chol,
                  <const floating*> a.log_norm, <const floating*> a.tied_centre,
                  <const floating*> a.tied_offsets, work, log_prob, ahead)
        if layout.full and not layout.pooled:
            # The factors in row_work: work is the full statistics' scratch.
            acc[0] += _resp_factors(log_prob, m, k, wc, work, row_work,
                                    <floating> a.log_resp_floor)
            scale = row_work
        else:
            acc[0] += _resp_factors(log_prob, m, k, wc, row_work, work,
                                    <floating> a.log_resp_floor)
            scale = work
    elif source == FROM_LABELS:
        _fill_resp_from_labels(a.labels + row0, wc, m, k, log_prob)
    else:
        _fill_resp_from_given(a.resp + row0 * k, wc, m, k, log_prob)
    # Under a raised floor, whole blocks of rows have no responsibility for a component.
    cdef bint sparse = source == FROM_DENSITY and _raised_floor(<floating> a.log_resp_floor)
    if layout.pooled:
        # Its float64 scratch: the chunk's own areas for float64, free once the row
        # factors are read (row_work's log p, work's factors once the row weights and
        # sums are formed); for float32 work's doubles past its m factors and the widened
        # BLAS operands (``wide``).
        if floating is double:
            _accumulate_pooled(xt, m, d, k, log_prob, scale, wc,
                               <const floating*> a.tied_centre, nk, sums, scatter,
                               acc + layout.row_sums, row_work, work, sparse, x_rows)
        else:
            _accumulate_pooled(xt, m, d, k, log_prob, scale, wc,
                               <const floating*> a.tied_centre, nk, sums, scatter,
                               acc + layout.row_sums, <double*> work + m, s.wide, sparse,
                               x_rows)
    elif layout.full:
        _accumulate_full(xt, m, d, k, log_prob, scale, shifts, nk, sums, scatter, work,
                         s.wide, x_rows)
    else:
        _accumulate_diag(xt, m, d, k, log_prob, scale, shifts, nk, sums, scatter, sparse,
                         x_rows)


cdef Py_ssize_t _dispatch_pass(
    const void* X, bint single, Py_ssize_t n, StatsSource source, const PassInputs* sets,
    Py_ssize_t n_sets, AccLayout layout, ScratchShape shape, Py_ssize_t n_groups, int threads,
    double* acc,
) noexcept nogil:
    """_pass_groups in float32 (``single``) or float64."""
    if single:
        return _pass_groups(<const float*> X, n, source, sets, n_sets, layout, shape, n_groups,
                            threads, acc)
    return _pass_groups(<const double*> X, n, source, sets, n_sets, layout, shape, n_groups,
                        threads, acc)


cdef Py_ssize_t _pass_groups(
    const floating* X, Py_ssize_t n, StatsSource source, const PassInputs* sets,
    Py_ssize_t n_sets, AccLayout layout, ScratchShape shape, Py_ssize_t n_groups, int threads,
    double* acc,
) noexcept nogil:
    """Every group's chunks into its own accumulators (acc: n_groups of them per parameter
    set), in parallel.

    Returns the number of groups left out for want of memory for their thread's scratch
    (then the accumulators are incomplete).
    """
    cdef Scratch scratch
    cdef Py_ssize_t g
    cdef Py_ssize_t groups_without_memory = 0
    if threads == 1:
        # The same groups in the same order, without starting an OpenMP team: ~3 µs per
        # pass once the caches are cold, 0.3 % of a 1 ms iteration.
        scratch = alloc_scratch(shape)
        if scratch.complete:
            for g in range(n_groups):
                _stats_group(X, n, source, sets, n_sets, layout, g, n_groups, acc, scratch)
        else:
            groups_without_memory = n_groups
        free_scratch(scratch)
        return groups_without_memory
    with parallel(num_threads=threads):
        scratch = alloc_scratch(shape)
        for g in prange(n_groups, schedule="static"):
            if not scratch.complete:
                groups_without_memory += 1
                continue
            _stats_group(X, n, source, sets, n_sets, layout, g, n_groups, acc, scratch)
        free_scratch(scratch)
    return groups_without_memory


cdef struct RowBlock:
    # One block of rows of a pass over several blocks, each with its own parameters (and
    # number of features), and its accumulators: as many as its own pass would have.
    const void* X
    Py_ssize_t n_samples
    PassInputs inputs
    AccLayout layout
    Py_ssize_t n_groups
    double* acc  # n_groups accumulators of layout.size doubles


cdef Py_ssize_t _pass_blocks(
    bint single, const RowBlock* blocks, Py_ssize_t n_blocks, const Py_ssize_t* task_block,
    const Py_ssize_t* task_group, Py_ssize_t n_tasks, ScratchShape shape, int threads,
) noexcept nogil:
    """Every task (group ``task_group[t]`` of block ``task_block[t]``) into its block's
    accumulators, in parallel, the threads drawing the tasks in the given order as they
    come free; then each block's groups summed into its first accumulator, in group order
    (_sum_groups), the blocks in parallel too: a block's statistics do not depend on which
    thread summed what.

    ``shape`` must hold the scratch of every block's chunks. Returns the number of tasks
    left out for want of memory for their thread's scratch.
    """
    cdef Scratch scratch
    cdef Py_ssize_t t, b
    cdef Py_ssize_t tasks_without_memory = 0
    if threads == 1:
        scratch = alloc_scratch(shape)
        if scratch.complete:
            for t in range(n_tasks):
                _block_task(single, &blocks[task_block[t]], task_group[t], scratch)
        else:
            tasks_without_memory = n_tasks
        free_scratch(scratch)
        for b in range(n_blocks):
            _sum_groups(blocks[b].acc, blocks[b].n_groups, blocks[b].layout)
        return tasks_without_memory
    with parallel(num_threads=threads):
        scratch = alloc_scratch(shape)
        for t in prange(n_tasks, schedule="dynamic"):
            if not scratch.complete:
                tasks_without_memory += 1
                continue
            _block_task(single, &blocks[task_block[t]], task_group[t], scratch)
        free_scratch(scratch)
        # After the loop's barrier: every group of every block is done.
        for b in prange(n_blocks, schedule="dynamic"):
            _sum_groups(blocks[b].acc, blocks[b].n_groups, blocks[b].layout)
    return tasks_without_memory


cdef inline void _block_task(
    bint single, const RowBlock* block, Py_ssize_t group, Scratch scratch,
) noexcept nogil:
    """Group ``group`` of the block's chunks into its accumulator."""
    if single:
        _stats_group(<const float*> block.X, block.n_samples, FROM_DENSITY, &block.inputs, 1,
                     block.layout, group, block.n_groups, block.acc, scratch)
    else:
        _stats_group(<const double*> block.X, block.n_samples, FROM_DENSITY, &block.inputs,
                     1, block.layout, group, block.n_groups, block.acc, scratch)
