# Per-thread work areas of a pass or a scoring: their sizes, for the rows really present, and
# their allocation, checked. Each thread allocates its own inside the parallel region (the
# memory is then local to the thread); a thread whose areas are incomplete skips its work and
# counts the failure, and the caller raises MemoryError after the region.

cdef struct ScratchShape:
    # Elements of each area, in the compute type (``wide``: doubles); 0 = not needed.
    Py_ssize_t xt        # (n_features, rows): the chunk transposed
    Py_ssize_t log_prob  # (n_components, rows): log-probabilities, then responsibilities
    Py_ssize_t row_work  # (rows,): log p(x) per row
    Py_ssize_t work      # the kernels' scratch (see scratch_shape)
    Py_ssize_t wide      # (2 n_features, rows): float32 BLAS or pooled operands, widened
    Py_ssize_t staging   # (rows, n_components): responsibilities before streaming stores
    size_t itemsize      # bytes per element of the compute type


cdef struct Scratch:
    void* xt
    void* log_prob
    void* row_work
    void* work
    double* wide
    void* staging
    bint complete  # every area of the shape was allocated


cdef ScratchShape scratch_shape(
    Py_ssize_t n_samples, Py_ssize_t n_features, Py_ssize_t n_components, bint full,
    bint widen, bint staging, size_t itemsize,
) noexcept nogil:
    """The areas for chunks of n_samples rows at most (never more than CHUNK_ROWS).

    ``full``: full or tied densities or statistics, whose kernels need 2 D + 2 values per
    row; diag needs the last, zero-padded, row block of the chunk (D × MAX_ROW_BLOCK) and
    then one value per row. ``widen``: float32 statistics through float64 BLAS, or
    pooled ones (formed in float64).
    ``staging``: responsibilities written with streaming stores.
    """
    cdef Py_ssize_t rows = min(n_samples, <Py_ssize_t> CHUNK_ROWS)
    cdef Py_ssize_t d = n_features
    cdef ScratchShape shape
    shape.xt = d * rows
    shape.log_prob = n_components * rows
    shape.row_work = rows
    shape.work = (2 * d + 2) * rows if full else max(d * <Py_ssize_t> MAX_ROW_BLOCK, rows)
    shape.wide = 2 * d * rows if widen else 0
    shape.staging = n_components * rows if staging else 0
    shape.itemsize = itemsize
    return shape


cdef size_t scratch_bytes(ScratchShape shape) noexcept nogil:
    """Bytes of one thread's areas."""
    return ((shape.xt + shape.log_prob + shape.row_work + shape.work + shape.staging)
            * shape.itemsize + shape.wide * sizeof(double))


cdef inline void* _area(Py_ssize_t elements, size_t itemsize, bint* complete) noexcept nogil:
    """malloc of ``elements`` items (NULL, and complete untouched, for none); a failure
    clears ``complete``."""
    if elements == 0:
        return NULL
    cdef void* p = malloc(elements * itemsize)
    if p == NULL:
        complete[0] = False
    return p


cdef Scratch alloc_scratch(ScratchShape shape) noexcept nogil:
    """One thread's areas; ``complete`` is False when any allocation failed (the others
    are still to be freed with free_scratch)."""
    cdef Scratch s
    s.complete = True
    s.xt = _area(shape.xt, shape.itemsize, &s.complete)
    s.log_prob = _area(shape.log_prob, shape.itemsize, &s.complete)
    s.row_work = _area(shape.row_work, shape.itemsize, &s.complete)
    s.work = _area(shape.work, shape.itemsize, &s.complete)
    s.wide = <double*> _area(shape.wide, sizeof(double), &s.complete)
    s.staging = _area(shape.staging, shape.itemsize, &s.complete)
    return s


cdef void free_scratch(Scratch s) noexcept nogil:
    free(s.xt)
    free(s.log_prob)
    free(s.row_work)
    free(s.work)
    free(s.wide)
    free(s.staging)


cdef scratch_error(ScratchShape shape, int threads):
    """The MemoryError of a pass whose work areas could not all be allocated."""
    cdef double mib = scratch_bytes(shape) / 1048576.0
    return MemoryError(
        f"not enough memory for the compiled core's work areas: {mib:.1f} MiB per thread, "
        f"{threads} thread(s); free memory, or use fewer threads (n_threads) or features"
    )


# What one thread's first BLAS call may allocate: OpenBLAS takes a work buffer of its
# BUFFER_SIZE (32 MiB in SciPy's wheels) from a pool it grows on demand, one per thread
# calling it at the same time, and when the address space is exhausted it waits forever for
# a buffer instead of failing. Other BLAS libraries need less.
cdef size_t BLAS_BUFFER_BYTES = (32 << 20) + (64 << 10)


cdef int reserve_blas_memory(ScratchShape shape, int threads) except -1:
    """Before a parallel region whose kernels call BLAS: a MemoryError now, rather than a
    hang inside BLAS later, when ``threads`` threads' scratch and a BLAS buffer each do not
    fit in memory. Checked by allocating it all once and freeing it (address space only:
    no page is touched, a few µs); buffers BLAS already holds are not known, so this may
    refuse a call that would just have fitted."""
    cdef size_t per_thread = scratch_bytes(shape) + BLAS_BUFFER_BYTES
    cdef double mib = per_thread / 1048576.0
    cdef void* trial = malloc(per_thread * threads)
    if trial == NULL:
        raise MemoryError(
            f"not enough memory for the compiled core's work areas and BLAS's work buffers: "
            f"{mib:.1f} MiB per thread, {threads} thread(s); free memory, or use fewer "
            f"threads (n_threads)"
        )
    free(trial)
    return 0
