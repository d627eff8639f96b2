# The one place gmmfast touches OpenMP symbols. Every module cimports them from here, so a
# build without OpenMP compiles the same sources with serial stand-ins (prange then runs as a
# plain loop, which Cython emits without the pragmas mattering).

cdef extern from *:
    """
    #ifdef _OPENMP
        #include <omp.h>
        #define GMMFAST_OPENMP_ENABLED 1
    #else
        #define GMMFAST_OPENMP_ENABLED 0
        #define omp_get_max_threads() 1
        #define omp_get_num_procs() 1
        #define omp_get_thread_num() 0
    #endif
    /* libgomp's omp_get_num_procs() asks the kernel for the process's CPU affinity on
       every call (~0.3 us, in each pass's argument handling): it is read once per module. A
       later change of the affinity is not seen. */
    static int gmmfast_num_procs_cache = 0;
    static int gmmfast_num_procs(void) {
        if (gmmfast_num_procs_cache <= 0)
            gmmfast_num_procs_cache = omp_get_num_procs();
        return gmmfast_num_procs_cache;
    }
    """
    bint GMMFAST_OPENMP_ENABLED
    int gmmfast_num_procs() noexcept nogil
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil
    int omp_get_thread_num() noexcept nogil
