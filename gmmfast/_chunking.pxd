# How gmmfast's kernels cut the samples into work, shared by every module so that all of
# them follow one determinism rule: chunk boundaries and the grouping of chunks into
# accumulators depend on the problem shape only, never on the number of threads.

from cpython.number cimport PyNumber_Index

from gmmfast._openmp cimport gmmfast_num_procs, omp_get_max_threads

# Rows per chunk: a chunk's responsibilities (CHUNK_ROWS × K doubles) stay in L1/L2.
cdef enum:
    CHUNK_ROWS = 256
    # At most this many accumulators: enough for many threads, few enough to stay small.
    MAX_GROUPS = 64
    # Per-pass budget for all accumulators together, in doubles (16 MiB).
    GROUP_BUDGET_DOUBLES = 2097152
    # Work (see pass_work) a thread must have before a pass starts an OpenMP team for it:
    # ~100 µs of compute at the ~0.4 ns per unit measured on 2-core x86-64. Waking the team's
    # threads costs ~10 µs on an idle machine and a scheduler time slice (~10 ms) on a busy
    # one, where a tiny pass on 2 threads made a fit of 272 rows 10 to 50× slower than on one.
    MIN_WORK_PER_THREAD = 262144
    # What a (row, component) pair costs besides its per-feature work: the exponential,
    # the logarithm, the responsibility and the counts.
    PAIR_OVERHEAD = 16


cdef inline Py_ssize_t n_chunks_of(Py_ssize_t n_samples) noexcept nogil:
    return (n_samples + CHUNK_ROWS - 1) // CHUNK_ROWS


cdef inline Py_ssize_t n_groups_of(Py_ssize_t n_chunks, Py_ssize_t acc_size) noexcept nogil:
    """Number of independent accumulators for a reduction over ``n_chunks`` chunks."""
    cdef Py_ssize_t by_memory = GROUP_BUDGET_DOUBLES // max(acc_size, <Py_ssize_t> 1)
    if by_memory < 1:
        by_memory = 1
    return max(1, min(n_chunks, min(<Py_ssize_t> MAX_GROUPS, by_memory)))


cdef inline Py_ssize_t group_first_chunk(
    Py_ssize_t group, Py_ssize_t n_groups, Py_ssize_t n_chunks
) noexcept nogil:
    """Group g owns chunks [first(g), first(g + 1))."""
    return group * n_chunks // n_groups


cdef inline double pass_work(
    Py_ssize_t n_samples, Py_ssize_t n_components, Py_ssize_t per_pair
) noexcept nogil:
    """The work of a pass, in the units of MIN_WORK_PER_THREAD: n_samples × n_components
    (row, component or centre) pairs of ``per_pair`` operations each (D for distances and
    diagonal densities, D² for full ones) and PAIR_OVERHEAD."""
    return <double> n_samples * n_components * (per_pair + PAIR_OVERHEAD)


cdef inline int resolve_threads(int n_threads, Py_ssize_t n_tasks, double work) noexcept nogil:
    """The threads a parallel loop over ``n_tasks`` tasks, of ``work`` in all (pass_work),
    runs on: an explicit n_threads wins, <= 0 means the OpenMP default; never more than the
    CPUs this process may run on (``omp_get_num_procs``, read once: more threads only wait
    for each other, and each costs a stack), nor than tasks, nor than threads with
    MIN_WORK_PER_THREAD each (starting a team costs more than a small pass)."""
    if n_threads <= 0:
        n_threads = omp_get_max_threads()
    n_threads = min(n_threads, gmmfast_num_procs())
    if n_tasks < n_threads:
        n_threads = <int> n_tasks
    if work < <double> n_threads * MIN_WORK_PER_THREAD:
        n_threads = <int> (work / MIN_WORK_PER_THREAD)
    return n_threads if n_threads > 0 else 1


cdef inline int requested_threads(object n_threads) except? -1:
    """A Python ``n_threads`` (any integer) as resolve_threads takes it: values beyond the
    CPU count, however large, become the CPU count (which resolve_threads caps at anyway),
    and <= 0 stays the OpenMP default. A non-integer is a TypeError."""
    n = PyNumber_Index(n_threads)
    if n <= 0:
        return 0
    cdef int cpus = gmmfast_num_procs()
    return cpus if n > cpus else <int> n
