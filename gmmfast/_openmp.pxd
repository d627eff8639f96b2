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
    """
    bint GMMFAST_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    int omp_get_num_procs() noexcept nogil
    int omp_get_thread_num() noexcept nogil
