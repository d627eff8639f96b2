# Array arguments through NumPy's C API, for the Python entry points that run once or more
# per EM iteration (the pass wrapper, the M-step). Right after a pass has evicted the caches,
# each typed memoryview costs ~1 µs (an object, a lock, a format string parsed) and each NumPy
# call several: together a few per cent of an iteration on small data. The kernels never see
# NumPy: they take the pointers. Internal to gmmfast (not part of the C-level API).
# Every module that cimports this calls ``cnp.import_array()``.

cimport numpy as cnp


cdef inline cnp.ndarray contiguous(object a, int typenum):
    """``a`` itself when it is an aligned, native, C-contiguous array of ``typenum``
    (checked without a NumPy call), else a converted copy."""
    if (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray> a) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> a)
            and cnp.PyArray_ISBEHAVED_RO(<cnp.ndarray> a)):
        return <cnp.ndarray> a
    return cnp.PyArray_FROMANY(a, typenum, 0, 0,
                              cnp.NPY_ARRAY_CARRAY_RO | cnp.NPY_ARRAY_FORCECAST)


cdef inline bint has_shape(cnp.ndarray a, Py_ssize_t n0, Py_ssize_t n1,
                           Py_ssize_t n2) noexcept:
    """Whether ``a`` has shape (n0,), (n0, n1) or (n0, n1, n2): trailing -1s are left out."""
    cdef int ndim = 1 if n1 < 0 else (2 if n2 < 0 else 3)
    cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(a)
    if cnp.PyArray_NDIM(a) != ndim or dims[0] != n0:
        return False
    return (ndim < 2 or dims[1] == n1) and (ndim < 3 or dims[2] == n2)


cdef inline bint is_writable_float64(object a) noexcept:
    """Whether ``a`` is an array the kernels can add float64 results into in place."""
    return (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray> a) == cnp.NPY_DOUBLE
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> a)
            and cnp.PyArray_ISBEHAVED(<cnp.ndarray> a))
