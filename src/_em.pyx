"""The compiled EM core: one fused, chunked, parallel pass over the samples.

For a block of rows and the current parameters the pass computes the per-component weighted
log-densities, their log-sum-exp, the responsibilities, and adds the rows' contribution to the
sufficient statistics (counts, shifted first and second moments), all while a chunk of
``CHUNK_ROWS`` rows is hot in cache. The N×K responsibility matrix is never materialised.

Determinism: the chunks are dealt to a number of *groups* that depends only on the problem
shape (never on the thread count); each group sums its chunks in order into its own
accumulator and the accumulators are added in group order afterwards. Any thread count, and
any OpenMP schedule, therefore produces bit-identical statistics.
"""

from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport isfinite, sqrt, INFINITY
from libc.stdlib cimport calloc, free, malloc
from scipy.linalg.cython_blas cimport dgemm, dsyrk, dtrmm, strmm
from scipy.linalg.cython_lapack cimport dpotrf, dtrtri

cimport numpy as cnp
import numpy as np

from gmmfast._threads import single_threaded_blas

from gmmfast._chunking cimport (
    CHUNK_ROWS, group_first_chunk, n_chunks_of, n_groups_of, resolve_threads,
)
from gmmfast._ndarray cimport contiguous, has_shape, is_writable_float64
from gmmfast._openmp cimport GMMFAST_OPENMP_ENABLED, omp_get_max_threads

cnp.import_array()

ROWS_PER_CHUNK = CHUNK_ROWS

# Responsibilities below exp(−600) ≈ 3e-261 are flushed to exactly zero: they cannot change
# any statistic at double precision (they are < 1e-245 of the 10·eps floor added to every
# count), while leaving them in would let products underflow into subnormal numbers, which
# cost the CPU ~100 cycles each (well-separated clusters produce them in bulk).
cdef double LOG_RESP_FLOOR = -600.0

cdef extern from *:
    # One exponential per (row, component) is the E-step's largest non-BLAS cost, and libm's
    # exp is a scalar call that stops the loop around it from vectorising. This exp has no
    # branch, table or errno: Cody-Waite reduction x = n ln2 + r (n ln2_hi exact), a degree
    # 13 Taylor polynomial on |r| <= ln2/2 and 2^n built in the exponent bits, so the loops
    # over a chunk's rows vectorise. The low part of ln 2 is applied as the factor
    # (1 - n ln2_lo) rather than subtracted from r: the build's -fassociative-math would fold
    # that subtraction into one rounded n ln2 and lose up to 300 ulp. Measured error against
    # numpy.exp: <= 7 ulp for x >= -40 (every responsibility that can change a statistic),
    # <= 1.4e-14 relative down to the floor.
    """
    #include <stdint.h>
    static inline double gmmfast_exp_or_zero(double x, double floor_)
    {
        const double log2e = 1.4426950408889634;
        const double ln2_hi = 6.93147180369123816490e-01;
        const double ln2_lo = 1.90821492927058770002e-10;
        /* Clamped so that the arithmetic below stays finite; NaN also maps to the floor. */
        double keep = x >= floor_ ? 1.0 : 0.0;
        double clamped = x > floor_ ? x : floor_;
        double nd = clamped * log2e - 0.5;
        int32_t n = (int32_t) nd;  /* round(clamped / ln 2): truncation of a value <= 0 */
        double r = clamped - n * ln2_hi;
        double p = 1.0 / 6227020800.0;
        p = p * r + 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        union { int64_t bits; double value; } two_to_n;
        two_to_n.bits = (int64_t) (n + 1023) << 52;
        /* A multiplication by 0 or 1 instead of a select: GCC vectorises this form. */
        return (p - p * (n * ln2_lo)) * two_to_n.value * keep;
    }
    """
    # exp(x) for floor <= x <= 0, exactly 0 below the floor or for NaN; floor >= -700.
    double exp_or_zero "gmmfast_exp_or_zero"(double x, double floor) noexcept nogil

# The float32 E-step flushes responsibilities below exp(−87) ≈ 1.6e-38: smaller ones are not
# normal float32 numbers (subnormals cost ~100 cycles each); scikit-learn's float32 E-step
# turns them into subnormals and then zeros, equally unable to move any statistic.
cdef float LOG_RESP_FLOOR_F32 = -87.0

cdef extern from *:
    # exp_or_zero in float32 for the float32 E-step: the same scheme with 16 lanes per
    # AVX-512 register. ln 2 is split so that n ln2_hi is exact for |n| < 512 and
    # n ln2_lo <= 2e-4, whose factor (1 - n ln2_lo) is exact to 2e-8; a degree 7 polynomial
    # on |r| <= ln2/2 leaves 5e-9. Measured error: <= 2 ulp (float32) on [-87, 0].
    """
    static inline float gmmfast_exp_or_zero_f32(float x, float floor_)
    {
        const float log2e = 1.44269504088896341f;
        const float ln2_hi = 0.693145751953125f;
        const float ln2_lo = 1.428606765330187045e-06f;
        float keep = x >= floor_ ? 1.0f : 0.0f;
        float clamped = x > floor_ ? x : floor_;
        float nd = clamped * log2e - 0.5f;
        int32_t n = (int32_t) nd;
        float r = clamped - n * ln2_hi;
        float p = 1.0f / 5040.0f;
        p = p * r + 1.0f / 720.0f;
        p = p * r + 1.0f / 120.0f;
        p = p * r + 1.0f / 24.0f;
        p = p * r + 1.0f / 6.0f;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        union { int32_t bits; float value; } two_to_n;
        two_to_n.bits = (n + 127) << 23;
        return (p - p * (n * ln2_lo)) * two_to_n.value * keep;
    }
    """
    # exp(x) for floor <= x <= 0, exactly 0 below the floor or for NaN; floor >= -87.
    float exp_or_zero_f32 "gmmfast_exp_or_zero_f32"(float x, float floor) noexcept nogil

cdef extern from *:
    # The E-step's exponentials for a whole chunk (gmmfast_exp_terms_*). Plain C loops over
    # exp_or_zero elsewhere (GCC vectorises them); with AVX-512 the same scheme written in
    # intrinsics, for two instructions the compiler does not pick: vrndscale rounds x / ln 2
    # to n and vscalef multiplies by 2^n, in place of conversions to and from int32 and
    # exponent-bit arithmetic, with the floor as a zeroing mask. r = x − n ln 2 in two fused
    # multiply-adds (the first exact), not through the (1 − n ln2_lo) factor. Each block of
    # rows goes through all K components at once, so its maximum and sum stay in registers.
    # Measured error <= 1 ulp in both types; see benchmarks/README.md for the speed.
    """
    #include <stddef.h>
    #if defined(__AVX512F__)
    #include <immintrin.h>
    static inline __m512d gmmfast_exp8(__m512d x, __m512d floor_)
    {
        __mmask8 keep = _mm512_cmp_pd_mask(x, floor_, _CMP_GE_OQ);  /* false for NaN */
        __m512d clamped = _mm512_max_pd(x, floor_);
        __m512d n = _mm512_roundscale_pd(_mm512_mul_pd(clamped, _mm512_set1_pd(1.4426950408889634)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(6.93147180369123816490e-01), clamped);
        r = _mm512_fnmadd_pd(n, _mm512_set1_pd(1.90821492927058770002e-10), r);
        __m512d p = _mm512_set1_pd(1.0 / 6227020800.0);
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 479001600.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 39916800.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 3628800.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 362880.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 40320.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 5040.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 720.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
        p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
        return _mm512_maskz_scalef_pd(keep, p, n);
    }
    static inline __m512 gmmfast_exp16(__m512 x, __m512 floor_)
    {
        __mmask16 keep = _mm512_cmp_ps_mask(x, floor_, _CMP_GE_OQ);
        __m512 clamped = _mm512_max_ps(x, floor_);
        __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(clamped, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), clamped);
        r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
        __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
        return _mm512_maskz_scalef_ps(keep, p, n);
    }
    #endif
    /* One register's rows (those in `lanes`) of gmmfast_exp_terms. */
    #if defined(__AVX512F__)
    static inline void gmmfast_exp_block_f64(double *lp, ptrdiff_t m, ptrdiff_t k,
                                             double *top, double *total, double floor_,
                                             __mmask8 lanes)
    {
        __m512d floor_v = _mm512_set1_pd(floor_);
        __m512d t = _mm512_maskz_loadu_pd(lanes, lp);
        for (ptrdiff_t c = 1; c < k; c++)  /* NaN entries never become the maximum */
            t = _mm512_max_pd(_mm512_maskz_loadu_pd(lanes, lp + c * m), t);
        __m512d sum = _mm512_setzero_pd();
        for (ptrdiff_t c = 0; c < k; c++) {
            __m512d term = gmmfast_exp8(
                _mm512_sub_pd(_mm512_maskz_loadu_pd(lanes, lp + c * m), t), floor_v);
            _mm512_mask_storeu_pd(lp + c * m, lanes, term);
            sum = _mm512_add_pd(sum, term);
        }
        _mm512_mask_storeu_pd(top, lanes, t);
        _mm512_mask_storeu_pd(total, lanes, sum);
    }
    static inline void gmmfast_exp_block_f32(float *lp, ptrdiff_t m, ptrdiff_t k,
                                             float *top, float *total, float floor_,
                                             __mmask16 lanes)
    {
        __m512 floor_v = _mm512_set1_ps(floor_);
        __m512 t = _mm512_maskz_loadu_ps(lanes, lp);
        for (ptrdiff_t c = 1; c < k; c++)
            t = _mm512_max_ps(_mm512_maskz_loadu_ps(lanes, lp + c * m), t);
        __m512 sum = _mm512_setzero_ps();
        for (ptrdiff_t c = 0; c < k; c++) {
            __m512 term = gmmfast_exp16(
                _mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, lp + c * m), t), floor_v);
            _mm512_mask_storeu_ps(lp + c * m, lanes, term);
            sum = _mm512_add_ps(sum, term);
        }
        _mm512_mask_storeu_ps(top, lanes, t);
        _mm512_mask_storeu_ps(total, lanes, sum);
    }
    #endif
    /* lp is a chunk's (k, m) log-densities, component-major: top[i] = max_c lp[c][i],
       lp[c][i] = exp_or_zero(lp[c][i] - top[i]), total[i] = sum_c lp[c][i] (in order of c).
       With AVX-512, a block of rows at a time through all k components, so that its maximum
       and sum stay in registers; elsewhere loops over the rows that GCC vectorises. */
    static inline void gmmfast_exp_terms_f64(double *lp, ptrdiff_t m, ptrdiff_t k,
                                             double *top, double *total, double floor_)
    {
    #if defined(__AVX512F__)
        ptrdiff_t i = 0;
        for (; i + 8 <= m; i += 8)
            gmmfast_exp_block_f64(lp + i, m, k, top + i, total + i, floor_, (__mmask8) 0xff);
        if (i < m)
            gmmfast_exp_block_f64(lp + i, m, k, top + i, total + i, floor_,
                                  (__mmask8) ((1u << (m - i)) - 1));
    #else
        for (ptrdiff_t i = 0; i < m; i++) {
            top[i] = lp[i];
            total[i] = 0;
        }
        for (ptrdiff_t c = 1; c < k; c++)  /* NaN entries never become the maximum */
            for (ptrdiff_t i = 0; i < m; i++)
                top[i] = lp[c * m + i] > top[i] ? lp[c * m + i] : top[i];
        for (ptrdiff_t c = 0; c < k; c++)
            for (ptrdiff_t i = 0; i < m; i++) {
                double term = gmmfast_exp_or_zero(lp[c * m + i] - top[i], floor_);
                lp[c * m + i] = term;
                total[i] += term;
            }
    #endif
    }
    static inline void gmmfast_exp_terms_f32(float *lp, ptrdiff_t m, ptrdiff_t k,
                                             float *top, float *total, float floor_)
    {
    #if defined(__AVX512F__)
        ptrdiff_t i = 0;
        for (; i + 16 <= m; i += 16)
            gmmfast_exp_block_f32(lp + i, m, k, top + i, total + i, floor_, (__mmask16) 0xffff);
        if (i < m)
            gmmfast_exp_block_f32(lp + i, m, k, top + i, total + i, floor_,
                                  (__mmask16) ((1u << (m - i)) - 1));
    #else
        for (ptrdiff_t i = 0; i < m; i++) {
            top[i] = lp[i];
            total[i] = 0;
        }
        for (ptrdiff_t c = 1; c < k; c++)
            for (ptrdiff_t i = 0; i < m; i++)
                top[i] = lp[c * m + i] > top[i] ? lp[c * m + i] : top[i];
        for (ptrdiff_t c = 0; c < k; c++)
            for (ptrdiff_t i = 0; i < m; i++) {
                float term = gmmfast_exp_or_zero_f32(lp[c * m + i] - top[i], floor_);
                lp[c * m + i] = term;
                total[i] += term;
            }
    #endif
    }
    /* labels[i] = the first c of largest lp[c][i] (a NaN only as the first entry, which
       nothing then beats). With AVX-512, a block of rows at a time through all k
       components, the running maximum and its index in registers: a loop over the rows
       per component compiled to a branch around a masked store, mispredicted. */
    #if defined(__AVX512F__)
    static inline void gmmfast_argmax_block_f64(const double *lp, ptrdiff_t m, ptrdiff_t k,
                                                long long *labels, __mmask8 lanes)
    {
        __m512d top = _mm512_maskz_loadu_pd(lanes, lp);
        __m512i best = _mm512_setzero_si512();
        for (ptrdiff_t c = 1; c < k; c++) {
            __m512d x = _mm512_maskz_loadu_pd(lanes, lp + c * m);
            __mmask8 larger = _mm512_cmp_pd_mask(x, top, _CMP_GT_OQ);
            top = _mm512_mask_blend_pd(larger, top, x);
            best = _mm512_mask_blend_epi64(larger, best, _mm512_set1_epi64(c));
        }
        _mm512_mask_storeu_epi64(labels, lanes, best);
    }
    static inline void gmmfast_argmax_block_f32(const float *lp, ptrdiff_t m, ptrdiff_t k,
                                                long long *labels, __mmask16 lanes)
    {
        __m512 top = _mm512_maskz_loadu_ps(lanes, lp);
        __m512i best = _mm512_setzero_si512();
        for (ptrdiff_t c = 1; c < k; c++) {
            __m512 x = _mm512_maskz_loadu_ps(lanes, lp + c * m);
            __mmask16 larger = _mm512_cmp_ps_mask(x, top, _CMP_GT_OQ);
            top = _mm512_mask_blend_ps(larger, top, x);
            best = _mm512_mask_blend_epi32(larger, best, _mm512_set1_epi32((int) c));
        }
        _mm512_mask_storeu_epi64(labels, (__mmask8) lanes,
                                 _mm512_cvtepi32_epi64(_mm512_castsi512_si256(best)));
        _mm512_mask_storeu_epi64(labels + 8, (__mmask8) (lanes >> 8),
                                 _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(best, 1)));
    }
    #endif
    static inline void gmmfast_row_argmax_f64(const double *lp, ptrdiff_t m, ptrdiff_t k,
                                              long long *labels)
    {
    #if defined(__AVX512F__)
        ptrdiff_t i = 0;
        for (; i + 8 <= m; i += 8)
            gmmfast_argmax_block_f64(lp + i, m, k, labels + i, (__mmask8) 0xff);
        if (i < m)
            gmmfast_argmax_block_f64(lp + i, m, k, labels + i, (__mmask8) ((1u << (m - i)) - 1));
    #else
        for (ptrdiff_t i = 0; i < m; i++) {
            ptrdiff_t best = 0;
            for (ptrdiff_t c = 1; c < k; c++)
                best = lp[c * m + i] > lp[best * m + i] ? c : best;
            labels[i] = best;
        }
    #endif
    }
    static inline void gmmfast_row_argmax_f32(const float *lp, ptrdiff_t m, ptrdiff_t k,
                                              long long *labels)
    {
    #if defined(__AVX512F__)
        ptrdiff_t i = 0;
        for (; i + 16 <= m; i += 16)
            gmmfast_argmax_block_f32(lp + i, m, k, labels + i, (__mmask16) 0xffff);
        if (i < m)
            gmmfast_argmax_block_f32(lp + i, m, k, labels + i,
                                     (__mmask16) ((1u << (m - i)) - 1));
    #else
        for (ptrdiff_t i = 0; i < m; i++) {
            ptrdiff_t best = 0;
            for (ptrdiff_t c = 1; c < k; c++)
                best = lp[c * m + i] > lp[best * m + i] ? c : best;
            labels[i] = best;
        }
    #endif
    }
    """
    void exp_terms_f64 "gmmfast_exp_terms_f64"(
        double* log_prob, Py_ssize_t m, Py_ssize_t k, double* top, double* total,
        double floor) noexcept nogil
    void exp_terms_f32 "gmmfast_exp_terms_f32"(
        float* log_prob, Py_ssize_t m, Py_ssize_t k, float* top, float* total,
        float floor) noexcept nogil
    void row_argmax_f64 "gmmfast_row_argmax_f64"(
        const double* log_prob, Py_ssize_t m, Py_ssize_t k, long long* labels) noexcept nogil
    void row_argmax_f32 "gmmfast_row_argmax_f32"(
        const float* log_prob, Py_ssize_t m, Py_ssize_t k, long long* labels) noexcept nogil

cdef extern from *:
    # The log of a row's sum of max-shifted exponentials (>= 1: its largest term is 1), once
    # per row: libm's scalar log kept that loop from vectorising, and on small problems it
    # was a quarter of the pass (workload a). x = 2^e m with m in [√½, √2), then
    # log m = 2 atanh(s) = 2 (s + s³/3 + s⁵/5 + ...) with s = (m − 1)/(m + 1), |s| <= 0.172:
    # ten terms reach 1e-18 in float64, four 2e-9 in float32. Measured error <= 2 ulp. For
    # x >= 1 only: the caller discards the result for x = 0 (a row of zero density).
    """
    static inline double gmmfast_log_ge1(double x)
    {
        union { double value; uint64_t bits; } u = { x }, m, e_float;
        uint64_t offset = u.bits - 0x3fe6a09e667f3bcdULL;  /* bits of √½ */
        uint64_t e = offset >> 52;
        m.bits = u.bits - (e << 52);
        /* e as a double without an integer conversion (none vectorises on AVX2): the bits
           of 2^52 + e, minus 2^52. */
        e_float.bits = 0x4330000000000000ULL + e;
        double s = (m.value - 1.0) / (m.value + 1.0);
        double s2 = s * s;
        double p = 1.0 / 21.0;
        p = p * s2 + 1.0 / 19.0;
        p = p * s2 + 1.0 / 17.0;
        p = p * s2 + 1.0 / 15.0;
        p = p * s2 + 1.0 / 13.0;
        p = p * s2 + 1.0 / 11.0;
        p = p * s2 + 1.0 / 9.0;
        p = p * s2 + 1.0 / 7.0;
        p = p * s2 + 1.0 / 5.0;
        p = p * s2 + 1.0 / 3.0;
        return (e_float.value - 4503599627370496.0) * 0.6931471805599453
               + (s + s * s2 * p) * 2.0;
    }
    static inline float gmmfast_log_ge1_f32(float x)
    {
        union { float value; uint32_t bits; } u = { x }, m;
        uint32_t offset = u.bits - 0x3f3504f3u;  /* bits of √½ */
        uint32_t e = offset >> 23;
        m.bits = u.bits - (e << 23);
        /* e < 2^8 here: its int32 -> float conversion vectorises everywhere. */
        float s = (m.value - 1.0f) / (m.value + 1.0f);
        float s2 = s * s;
        float p = 1.0f / 9.0f;
        p = p * s2 + 1.0f / 7.0f;
        p = p * s2 + 1.0f / 5.0f;
        p = p * s2 + 1.0f / 3.0f;
        return (float) (int32_t) e * 0.693147180559945f + (s + s * s2 * p) * 2.0f;
    }
    """
    double log_ge1 "gmmfast_log_ge1"(double x) noexcept nogil
    float log_ge1_f32 "gmmfast_log_ge1_f32"(float x) noexcept nogil

# How full covariances are computed, by number of features D. Measured on the project's
# 2-core AVX-512 machine with OpenBLAS, one thread, D = 2..64, K = 8 (benchmarks/README.md):
# - log-densities: the triangular kernel of src/_blocked.h below WHITEN_BLAS_MIN_FEATURES
#   (5-15 % faster than any BLAS call up to D = 24), BLAS trmm from there on;
# - scatter: src/_blocked.h below SCATTER_BLAS_MIN_FEATURES, BLAS gemm up to
#   SCATTER_SYRK_MIN_FEATURES (a faster kernel on small matrices), syrk (half the flops)
#   from there on.
# The float32 kernels use the same thresholds: on workload e (D = 8, mostly gathered rows)
# BLAS beat the blocked scatter by 28 % per pass. (Its operands are widened to float64 there:
# see _accumulate_component_blas.)
cdef Py_ssize_t WHITEN_BLAS_MIN_FEATURES = 32
cdef Py_ssize_t SCATTER_BLAS_MIN_FEATURES = 4
cdef Py_ssize_t SCATTER_SYRK_MIN_FEATURES = 24
# Fewer rows than this go to the blocked scatter even where gemm is used (D < 24):
# OpenBLAS's small-matrix dgemm (Aᵀ B) refuses K < 32, and its general path allocates its
# packing buffers under a process-wide lock, where two threads queued (b on 2 threads: 7 %
# of the pass in pthread_mutex_lock/unlock and futex waits).
cdef Py_ssize_t GEMM_MIN_ROWS = 32
# accumulate_full gathers a component's rows of non-zero responsibility from this many
# features on: below, the gather's branches cost more than the rows it saves (workload a,
# D = 2: 1.3 -> 2.1 ms per pass when gathering).
cdef Py_ssize_t GATHER_MIN_FEATURES = 4
# score() writes responsibilities of at least this many bytes with streaming stores (through
# a row-major staging copy of each chunk) when their memory is already mapped in: an output
# this large is not in the cache when the caller reads it anyway, and an ordinary store
# costs a read of the line first (src/_blocked.h, gmmfast_pages_resident, says why not into
# fresh memory).
cdef size_t STREAM_MIN_BYTES = 16 << 20

cdef enum StatsSource:
    FROM_DENSITY = 0  # responsibilities from the current parameters (the E-step)
    FROM_LABELS = 1   # hard assignments (k-means initialisation)
    FROM_RESP = 2     # responsibilities given by the caller (random initialisation)


cdef extern from *:
    # Which ISA_LEVEL_FLAGS (setup.py) the running CPU and OS support: the same features,
    # checked through the compiler's cpuid/xgetbv helper.
    """
    #if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
    static int gmmfast_cpu_level(void)
    {
        __builtin_cpu_init();
        int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                 && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
        int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                 && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq")
                 && __builtin_cpu_supports("avx512vl");
        return v4 ? 4 : (v3 ? 3 : 1);
    }
    #else
    static int gmmfast_cpu_level(void) { return 0; }  /* not x86-64, or no cpuid helper */
    #endif
    """
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


def openmp_enabled():
    """True when the compiled core was built with OpenMP."""
    return bool(GMMFAST_OPENMP_ENABLED)


def max_threads():
    """The OpenMP default thread count (honours OMP_NUM_THREADS and threadpoolctl)."""
    return omp_get_max_threads()


# --------------------------------------------------------------------------------------------
# Chunk-level kernels
#
# A chunk is handled transposed: ``xt[j * n_rows + i]`` is feature j of row i, and per-row
# results are component-major (``log_prob[c * n_rows + i]``). Every inner loop then runs over
# the samples of the chunk with unit stride, which the compiler vectorises.
#
# The kernels are written once over ``floating``, the type they compute in: float64 data are
# processed in float64, float32 data in float32 (twice the rows per vector register), with the
# parameters rounded to float32. The statistics are always accumulated in float64: a chunk's
# partial sums are formed in the compute type and added once per chunk and component.
# The float64 versions are the C-level API (gmmfast/_em.pxd), further below.
# --------------------------------------------------------------------------------------------

cdef extern from "_blocked.h":
    # Full-covariance kernels over whole blocks of rows (see src/_blocked.h).
    const Py_ssize_t ROW_BLOCK_F64 "GMMFAST_ROW_BLOCK_F64"
    const Py_ssize_t ROW_BLOCK_F32 "GMMFAST_ROW_BLOCK_F32"
    # log_prob[i] = log_norm − ‖y_i U − offset‖² / 2 (U upper-triangular),
    # i < n_blocks * row block.
    void whiten_log_prob_blocks_f64 "gmmfast_whiten_log_prob_blocks_f64"(
        const double* y, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* U, const double* offset, double log_norm,
        double* log_prob) noexcept nogil
    void whiten_log_prob_blocks_f32 "gmmfast_whiten_log_prob_blocks_f32"(
        const float* y, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* U, const float* offset, float log_norm,
        float* log_prob) noexcept nogil
    # diff = x − shift, wd = r ⊙ diff, sums += Σ_i wd, over i < n_blocks * row block.
    void weighted_differences_f64 "gmmfast_weighted_differences_f64"(
        const double* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* r, const double* shift, double* diff, double* wd,
        double* sums) noexcept nogil
    void weighted_differences_f32 "gmmfast_weighted_differences_f32"(
        const float* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* r, const float* shift, float* diff, float* wd,
        double* sums) noexcept nogil
    # z = diff U (whitened rows, diff's layout), i < n_blocks * row block.
    void whiten_rows_f64 "gmmfast_whiten_rows_f64"(
        const double* diff, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* U, double* z) noexcept nogil
    void whiten_rows_f32 "gmmfast_whiten_rows_f32"(
        const float* diff, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* U, float* z) noexcept nogil
    # log_prob[i] = log_norm − Σ_j (z[j][i] − offset[j])² / 2, i < n_blocks * row block.
    void offset_log_prob_blocks_f64 "gmmfast_offset_log_prob_blocks_f64"(
        const double* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* offset, double log_norm, double* log_prob) noexcept nogil
    void offset_log_prob_blocks_f32 "gmmfast_offset_log_prob_blocks_f32"(
        const float* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* offset, float log_norm, float* log_prob) noexcept nogil
    # log_prob[i] = log_norm − Σ_j ((x[j][i] − mean[j]) · inv_std[j])² / 2,
    # i < n_blocks * row block.
    void diag_log_prob_blocks_f64 "gmmfast_diag_log_prob_blocks_f64"(
        const double* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const double* mean, const double* inv_std, double log_norm,
        double* log_prob) noexcept nogil
    void diag_log_prob_blocks_f32 "gmmfast_diag_log_prob_blocks_f32"(
        const float* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
        const float* mean, const float* inv_std, float log_norm,
        float* log_prob) noexcept nogil
    # C[j * D + l] += Σ_i wd[j][i] · diff[l][i] for j <= l, i < n_blocks * row block.
    void scatter_blocks_f64 "gmmfast_scatter_blocks_f64"(
        const double* wd, const double* diff, Py_ssize_t stride, Py_ssize_t n_blocks,
        Py_ssize_t n_features, double* C) noexcept nogil
    void scatter_blocks_f32 "gmmfast_scatter_blocks_f32"(
        const float* wd, const float* diff, Py_ssize_t stride, Py_ssize_t n_blocks,
        Py_ssize_t n_features, double* C) noexcept nogil
    # dst[j * dst_stride + i] = src[i * src_stride + j], i < rows, j < cols.
    void transpose_f64 "gmmfast_transpose_f64"(
        const double* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
        double* dst, Py_ssize_t dst_stride) noexcept nogil
    void transpose_f32 "gmmfast_transpose_f32"(
        const float* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
        float* dst, Py_ssize_t dst_stride) noexcept nogil
    # The same with dst[j * dst_stride + i] multiplied by scale[j].
    void transpose_scaled_f64 "gmmfast_transpose_scaled_f64"(
        const double* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
        double* dst, Py_ssize_t dst_stride, const double* scale) noexcept nogil
    void transpose_scaled_f32 "gmmfast_transpose_scaled_f32"(
        const float* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
        float* dst, Py_ssize_t dst_stride, const float* scale) noexcept nogil
    # dst[i] = src[i], i < n, with non-temporal stores (outputs larger than the caches).
    void stream_copy_f64 "gmmfast_stream_copy_f64"(
        double* dst, const double* src, Py_ssize_t n) noexcept nogil
    void stream_copy_f32 "gmmfast_stream_copy_f32"(
        float* dst, const float* src, Py_ssize_t n) noexcept nogil
    # Whether the memory at p (start, middle and end pages) is already mapped in (Linux).
    bint pages_resident "gmmfast_pages_resident"(const void* p, size_t nbytes) noexcept nogil
    # The rows with r != 0 (n_kept of them), in order, into kept (D × n_kept) and kept_r.
    Py_ssize_t gather_rows_f64 "gmmfast_gather_rows_f64"(
        const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const double* r,
        Py_ssize_t n_kept, double* kept, double* kept_r) noexcept nogil
    Py_ssize_t gather_rows_f32 "gmmfast_gather_rows_f32"(
        const float* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const float* r,
        Py_ssize_t n_kept, float* kept, float* kept_r) noexcept nogil


cdef enum:
    # The widest row block of either type: the size of the kernels' on-stack tail buffers.
    MAX_ROW_BLOCK = 16


cdef inline Py_ssize_t _row_block(const floating* typed) noexcept nogil:
    """Rows per block of src/_blocked.h for the compute type (``typed`` is not read)."""
    if floating is double:
        return ROW_BLOCK_F64
    else:
        return ROW_BLOCK_F32


cdef inline void _exp_block_terms(
    floating* log_prob, Py_ssize_t m, Py_ssize_t k, floating* top, floating* total,
    floating floor,
) noexcept nogil:
    """See gmmfast_exp_terms_f64: the shifted exponentials of a chunk, their row maxima and
    row sums."""
    if floating is double:
        exp_terms_f64(log_prob, m, k, top, total, floor)
    else:
        exp_terms_f32(log_prob, m, k, top, total, floor)


cdef inline floating _log(floating x) noexcept nogil:
    """log x for x >= 1 (see gmmfast_log_ge1)."""
    if floating is double:
        return log_ge1(x)
    else:
        return log_ge1_f32(x)


cdef inline floating _log_resp_floor(const floating* typed) noexcept nogil:
    if floating is double:
        return LOG_RESP_FLOOR
    else:
        return LOG_RESP_FLOOR_F32


cdef inline void _transpose(
    const floating* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
    floating* dst, Py_ssize_t dst_stride,
) noexcept nogil:
    """dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols."""
    if floating is double:
        transpose_f64(src, src_stride, rows, cols, dst, dst_stride)
    else:
        transpose_f32(src, src_stride, rows, cols, dst, dst_stride)


cdef inline void _transpose_scaled(
    const floating* src, Py_ssize_t src_stride, Py_ssize_t rows, Py_ssize_t cols,
    floating* dst, Py_ssize_t dst_stride, const floating* scale,
) noexcept nogil:
    """dst[j * dst_stride + i] = src[i * src_stride + j] · scale[j]."""
    if floating is double:
        transpose_scaled_f64(src, src_stride, rows, cols, dst, dst_stride, scale)
    else:
        transpose_scaled_f32(src, src_stride, rows, cols, dst, dst_stride, scale)


cdef inline void _stream_copy(floating* dst, const floating* src, Py_ssize_t n) noexcept nogil:
    if floating is double:
        stream_copy_f64(dst, src, n)
    else:
        stream_copy_f32(dst, src, n)


cdef inline void _transpose_chunk(
    const floating* X, Py_ssize_t n_rows, Py_ssize_t n_features, floating* xt,
) noexcept nogil:
    _transpose(X, n_features, n_rows, n_features, xt, n_rows)


cdef void _log_prob_full_blocked(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    floating* work, floating* log_prob,
) noexcept nogil:
    """log_prob_full for small and moderate D (< WHITEN_BLAS_MIN_FEATURES): whole blocks
    of rows in src/_blocked.h, from the chunk centred once on the mean of the means (the
    rows stay small, so x·U − μ·U cancels no more than the cluster spread)."""
    cdef Py_ssize_t i, c, j, l
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t rows = _row_block(xt)
    cdef Py_ssize_t n_blocks = m // rows
    cdef Py_ssize_t done = n_blocks * rows
    cdef floating* y = work
    # The last m % rows rows go through the same kernel, zero-padded to a block, so a row's
    # log-density does not depend on where the chunk boundaries fall (Dask blocks, slices
    # of X). Sized for D < WHITEN_BLAS_MIN_FEATURES = 32.
    cdef floating tail_y[32 * MAX_ROW_BLOCK]
    cdef floating tail_out[MAX_ROW_BLOCK]
    cdef floating centre[32]
    cdef floating offset[32]
    cdef double total
    cdef const floating* U
    # The centre and offsets are formed here, per chunk, from the kernel's own inputs (those
    # of the C API): K·D² operations against the chunk's m·K·D²/2, and no second copy of
    # the geometry to keep consistent with the means.
    for j in range(d):
        total = 0.0
        for c in range(n_components):
            total += means[c * d + j]
        centre[j] = <floating> (total / n_components)
        for i in range(m):
            y[j * m + i] = xt[j * m + i] - centre[j]
    if done < m:
        for j in range(d):
            for i in range(rows):
                tail_y[j * rows + i] = y[j * m + done + i] if done + i < m else 0
    for c in range(n_components):
        U = precisions_chol + c * d * d
        for j in range(d):  # (μ_c − centre) U, in float64
            total = 0.0
            for l in range(j + 1):
                total += <double> U[l * d + j] * (<double> means[c * d + l] - centre[l])
            offset[j] = <floating> total
        _whiten_log_prob_blocks(y, m, n_blocks, d, U, offset, log_norm[c], log_prob + c * m)
        if done < m:
            _whiten_log_prob_blocks(tail_y, rows, 1, d, U, offset, log_norm[c], tail_out)
            for i in range(m - done):
                log_prob[c * m + done + i] = tail_out[i]


cdef inline void _whiten_log_prob_blocks(
    const floating* y, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* U, const floating* offset, floating log_norm, floating* log_prob,
) noexcept nogil:
    if floating is double:
        whiten_log_prob_blocks_f64(y, stride, n_blocks, n_features, U, offset, log_norm,
                                   log_prob)
    else:
        whiten_log_prob_blocks_f32(y, stride, n_blocks, n_features, U, offset, log_norm,
                                   log_prob)


cdef inline void _whiten_rows(
    const floating* diff, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* U, floating* z,
) noexcept nogil:
    if floating is double:
        whiten_rows_f64(diff, stride, n_blocks, n_features, U, z)
    else:
        whiten_rows_f32(diff, stride, n_blocks, n_features, U, z)


cdef inline void _offset_log_prob_blocks(
    const floating* z, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* offset, floating log_norm, floating* log_prob,
) noexcept nogil:
    if floating is double:
        offset_log_prob_blocks_f64(z, stride, n_blocks, n_features, offset, log_norm,
                                   log_prob)
    else:
        offset_log_prob_blocks_f32(z, stride, n_blocks, n_features, offset, log_norm,
                                   log_prob)


cdef void _log_prob_tied(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* centre, const floating* U, const floating* offsets,
    const floating* log_norm, floating* work, floating* log_prob,
) noexcept nogil:
    """log_prob_full when every component has the same precision factor U (tied).

    The chunk is whitened once, z = (x − centre) U, and component c's squared distance is
    ‖z − offsets[c]‖² with offsets[c] = (μ_c − centre) U: D(D+1)/2 multiply-adds per row for
    all components together, then 2D operations per row and component (instead of
    D(D+3)/2). ``centre`` (near the means) keeps z small, so no digits are lost in the
    difference. work: 2 D m elements.
    """
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t rows = _row_block(xt)
    cdef Py_ssize_t n_blocks = m // rows
    cdef Py_ssize_t done = n_blocks * rows
    cdef bint blocked = d < WHITEN_BLAS_MIN_FEATURES
    cdef floating* diff = work
    cdef floating* z = work + d * m if blocked else work  # trmm works in place
    # As in _log_prob_full_blocked, the last m % rows rows are zero-padded to a block, so
    # a row's result does not depend on where the chunk boundaries fall.
    cdef floating tail_diff[32 * MAX_ROW_BLOCK]
    cdef floating tail_z[32 * MAX_ROW_BLOCK]
    cdef floating tail_out[MAX_ROW_BLOCK]
    cdef floating* out
    cdef floating half_norm, t
    cdef int m_int = <int> m
    cdef int d_int = <int> d
    cdef floating one = 1
    cdef char right = b'R'
    cdef char lower = b'L'
    cdef char trans = b'T'
    cdef char non_unit = b'N'
    for j in range(d):
        for i in range(m):
            diff[j * m + i] = xt[j * m + i] - centre[j]
    if blocked:
        _whiten_rows(diff, m, n_blocks, d, U, z)
        if done < m:
            for j in range(d):
                for i in range(rows):
                    tail_diff[j * rows + i] = diff[j * m + done + i] if done + i < m else 0
            _whiten_rows(tail_diff, rows, 1, d, U, tail_z)
    else:  # column-major (m × d) z = diff U in place, U as the column-major lower Uᵀ
        n_blocks = 0
        done = 0
        if floating is double:
            dtrmm(&right, &lower, &trans, &non_unit, &m_int, &d_int, &one, <double*> U,
                  &d_int, z, &m_int)
        else:
            strmm(&right, &lower, &trans, &non_unit, &m_int, &d_int, &one, <float*> U,
                  &d_int, z, &m_int)
    for c in range(n_components):
        out = log_prob + c * m
        if blocked:
            _offset_log_prob_blocks(z, m, n_blocks, d, offsets + c * d, log_norm[c], out)
            if done < m:
                _offset_log_prob_blocks(tail_z, rows, 1, d, offsets + c * d, log_norm[c],
                                        tail_out)
                for i in range(m - done):
                    out[done + i] = tail_out[i]
        else:
            for i in range(m):
                out[i] = 0
            for j in range(d):
                for i in range(m):
                    t = z[j * m + i] - offsets[c * d + j]
                    out[i] += t * t
            half_norm = log_norm[c]
            for i in range(m):
                out[i] = half_norm - <floating> 0.5 * out[i]


cdef inline void _diag_log_prob_blocks(
    const floating* xt, Py_ssize_t stride, Py_ssize_t n_blocks, Py_ssize_t n_features,
    const floating* mean, const floating* inv_std, floating log_norm, floating* log_prob,
) noexcept nogil:
    if floating is double:
        diag_log_prob_blocks_f64(xt, stride, n_blocks, n_features, mean, inv_std, log_norm,
                                 log_prob)
    else:
        diag_log_prob_blocks_f32(xt, stride, n_blocks, n_features, mean, inv_std, log_norm,
                                 log_prob)


cdef void _log_prob_diag(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    floating* log_prob,
) noexcept nogil:
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t rows = _row_block(xt)
    cdef Py_ssize_t n_blocks = m // rows
    cdef Py_ssize_t done = n_blocks * rows
    cdef floating* tail_x = NULL
    cdef floating tail_out[MAX_ROW_BLOCK]
    cdef floating* out
    if done < m:  # only the last chunk of a pass has a partial block
        tail_x = <floating*> malloc(d * rows * sizeof(floating))
    for c in range(n_components):
        out = log_prob + c * m
        _diag_log_prob_blocks(xt, m, n_blocks, d, means + c * d, precisions_chol + c * d,
                              log_norm[c], out)
        if done < m:
            for j in range(d):
                for i in range(rows):
                    tail_x[j * rows + i] = (xt[j * m + done + i] if done + i < m
                                            else means[c * d + j])
            _diag_log_prob_blocks(tail_x, rows, 1, d, means + c * d,
                                  precisions_chol + c * d, log_norm[c], tail_out)
            for i in range(m - done):
                out[done + i] = tail_out[i]
    free(tail_x)


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
    floating* log_prob_norm, floating* total,
) noexcept nogil:
    """log p(x_i) of a chunk; log_prob is replaced by exp(log_prob − max_c log_prob) and
    total[i] is the sum of those terms of row i (the responsibilities before scaling).

    _log_prob_to_resp and score() without responsibilities both go through this one
    function, so their log p agree bit for bit (the compiler may contract the exponential's
    last multiply with the sum differently in two copies of the loop).
    """
    cdef Py_ssize_t m = n_rows
    cdef floating* top = log_prob_norm
    cdef floating floor = _log_resp_floor(log_prob)
    # One exp per entry. Rows whose maximum is −inf have shifted = NaN there, which
    # exp_or_zero maps to 0.
    _exp_block_terms(log_prob, m, n_components, top, total, floor)
    _log_of_total(top, total, m, log_prob_norm)


cdef double _resp_factors(
    floating* log_prob, Py_ssize_t n_rows, Py_ssize_t n_components,
    const double* sample_weight, floating* log_prob_norm, floating* factor,
) noexcept nogil:
    """The responsibilities before their last step: log_prob is replaced by
    exp(log_prob − max), which factor[i] then scales to row i's responsibilities (w_i / Σ);
    log p(x_i) in log_prob_norm. Returns Σ w_i log p(x_i)."""
    cdef Py_ssize_t i
    cdef Py_ssize_t m = n_rows
    cdef double w, loglik = 0.0
    _exp_terms(log_prob, m, n_components, log_prob_norm, factor)  # factor = Σ_c terms
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
    const double* sample_weight, floating* log_prob_norm, floating* work,
) noexcept nogil:
    """log_prob replaced by the (weighted) responsibilities; see _resp_factors."""
    cdef Py_ssize_t i, c
    cdef floating* row
    cdef floating* factor = work
    cdef double loglik = _resp_factors(log_prob, n_rows, n_components, sample_weight,
                                       log_prob_norm, factor)
    for c in range(n_components):
        row = log_prob + c * n_rows
        for i in range(n_rows):
            row[i] *= factor[i]
    return loglik


cdef void _accumulate_component_blocked(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const floating* r,
    const floating* shift, double* sums, double* C, floating* work,
) noexcept nogil:
    """One component's Σ r (x − c) and upper triangle of Σ r (x − c)(x − c)ᵀ, small and
    moderate D: whole blocks of rows in src/_blocked.h (no BLAS call overhead)."""
    cdef Py_ssize_t i, j, l
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t rows = _row_block(xt)
    cdef Py_ssize_t n_blocks = m // rows
    cdef floating* diff = work
    # 128 bytes further than adjacent: with 256-row chunks and D = 8, diff[i] and
    # weighted[i] would be 4 KiB apart, and the CPU stalls loads whose address matches a
    # pending store's modulo 4 KiB.
    cdef floating* weighted = work + d * m + (128 // sizeof(floating) if m >= rows else 0)
    cdef floating t
    if floating is double:
        weighted_differences_f64(xt, m, n_blocks, d, r, shift, diff, weighted, sums)
        scatter_blocks_f64(weighted, diff, m, n_blocks, d, C)
    else:
        weighted_differences_f32(xt, m, n_blocks, d, r, shift, diff, weighted, sums)
        scatter_blocks_f32(weighted, diff, m, n_blocks, d, C)
    for i in range(n_blocks * rows, m):  # the last few rows, one at a time
        for j in range(d):
            t = r[i] * (xt[j * m + i] - shift[j])
            sums[j] += t
            for l in range(j, d):
                C[j * d + l] += t * (xt[l * m + i] - shift[l])


cdef void _log_prob_full_blas(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    floating* work, floating* log_prob,
) noexcept nogil:
    """log_prob_full with y = (x − μ) U as one BLAS trmm per component (large D)."""
    cdef Py_ssize_t i, c, j
    cdef int m = <int> n_rows
    cdef int d = <int> n_features
    cdef floating* y = work
    cdef floating* out
    cdef floating shift
    cdef floating one = 1
    cdef char right = b'R'
    cdef char lower = b'L'
    cdef char trans = b'T'
    cdef char non_unit = b'N'
    cdef floating* U
    for c in range(n_components):
        for j in range(d):
            shift = means[c * d + j]
            for i in range(m):
                y[j * m + i] = xt[j * m + i] - shift
        # y, column-major (m × d), holds x − μ; U, row-major upper-triangular, is stored as
        # the column-major lower-triangular Uᵀ. In place: y = (x − μ) U.
        U = <floating*> precisions_chol + c * d * d
        if floating is double:
            dtrmm(&right, &lower, &trans, &non_unit, &m, &d, &one, U, &d, y, &m)
        else:
            strmm(&right, &lower, &trans, &non_unit, &m, &d, &one, U, &d, y, &m)
        out = log_prob + c * m
        for i in range(m):
            out[i] = 0
        for j in range(d):
            for i in range(m):
                out[i] += y[j * m + i] * y[j * m + i]
        for i in range(m):
            out[i] = log_norm[c] - <floating> 0.5 * out[i]


cdef void _accumulate_component_blas(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const floating* r,
    const floating* shifts, double* sums, double* C, floating* work,
    double* wide, bint symmetric,
) noexcept nogil:
    """_accumulate_component_blocked with the scatter as one BLAS product (larger D).

    ``symmetric`` uses syrk on √r ⊙ (x − c) (half the flops, worth it for large D),
    otherwise gemm of (r ⊙ (x − c))ᵀ and (x − c), added to C. float32 operands are formed
    in float32 and stored widened into ``wide`` (2 D m doubles), for dgemm/dsyrk: OpenBLAS's
    sgemm takes these small products through its packing path, whose buffer allocation is locked
    process-wide, and a float32 pass on 2 threads was no faster than on one (e: 0.052 s vs
    0.054 s; dgemm's small-matrix kernel has no lock).
    """
    cdef Py_ssize_t i, j
    cdef int m = <int> n_rows
    cdef int d = <int> n_features
    cdef bint few_rows = not symmetric and m < GEMM_MIN_ROWS
    cdef double* weighted  # the BLAS operands, in float64
    cdef double* diff  # gemm only
    cdef floating* root = work + d * m  # syrk only
    cdef floating shift, t
    cdef double acc
    cdef double one = 1.0
    cdef char lower = b'L'
    cdef char trans = b'T'
    cdef char no_trans = b'N'
    if floating is double:
        weighted = work
        diff = work + d * m
    else:
        weighted = wide
        diff = wide + d * m
    if symmetric:
        for i in range(m):
            root[i] = sqrt(r[i])
    # Two copies of the loop: a test inside it would stop it from vectorising.
    for j in range(d):
        shift = shifts[j]
        acc = 0.0
        if symmetric:
            for i in range(m):
                t = xt[j * m + i] - shift
                acc += r[i] * t
                weighted[j * m + i] = root[i] * t
        else:
            for i in range(m):
                t = xt[j * m + i] - shift
                acc += r[i] * t
                diff[j * m + i] = t
                weighted[j * m + i] = r[i] * t
        sums[j] += acc
    # Column-major (m × d) operands; the lower triangle of the column-major result is the
    # upper triangle row-major, the part the caller reads.
    if symmetric:
        dsyrk(&lower, &trans, &d, &m, &one, weighted, &m, &one, C, &d)
    elif few_rows:
        _scatter_few_rows(weighted, diff, m, d, C)
    else:
        dgemm(&trans, &no_trans, &d, &d, &m, &one, weighted, &m, diff, &m, &one, C, &d)


cdef void _scatter_few_rows(
    const double* weighted, const double* diff, Py_ssize_t m, Py_ssize_t d, double* C,
) noexcept nogil:
    """C[j, l] += Σ_i weighted[j][i] diff[l][i] for j <= l: gemm's product for the few
    (m < GEMM_MIN_ROWS = 32) rows of operands D × m, D < SCATTER_SYRK_MIN_FEATURES (24).

    The blocked kernel ends with one horizontal sum per (j, l), a fixed cost that only pays
    from one row block (8 rows with AVX-512) on: below, the rows are added one by one.
    From there, the operands are copied, padded with zeros to whole row blocks, so that the
    kernel runs once.
    """
    cdef Py_ssize_t i, j, l
    cdef Py_ssize_t stride = (m + ROW_BLOCK_F64 - 1) // ROW_BLOCK_F64 * ROW_BLOCK_F64
    cdef double t
    cdef double padded_weighted[32 * 32]
    cdef double padded_diff[32 * 32]
    if m < ROW_BLOCK_F64:
        for i in range(m):
            for j in range(d):
                t = weighted[j * m + i]
                for l in range(j, d):
                    C[j * d + l] += t * diff[l * m + i]
        return
    for j in range(d):
        for i in range(stride):
            padded_weighted[j * stride + i] = weighted[j * m + i] if i < m else 0.0
            padded_diff[j * stride + i] = diff[j * m + i] if i < m else 0.0
    scatter_blocks_f64(padded_weighted, padded_diff, stride, stride // ROW_BLOCK_F64, d, C)


cdef inline Py_ssize_t _gather_responsible_rows(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const floating* r,
    Py_ssize_t n_kept, floating* kept_xt, floating* kept_r,
) noexcept nogil:
    """Copy the rows with r != 0 (n_kept of them) into kept_xt (D × n_kept), kept_r."""
    if floating is double:
        return gather_rows_f64(xt, n_rows, n_features, r, n_kept, kept_xt, kept_r)
    else:
        return gather_rows_f32(xt, n_rows, n_features, r, n_kept, kept_xt, kept_r)


cdef void _log_prob_full(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    floating* work, floating* log_prob,
) noexcept nogil:
    if n_features < WHITEN_BLAS_MIN_FEATURES:
        _log_prob_full_blocked(xt, n_rows, n_features, n_components, means, precisions_chol,
                               log_norm, work, log_prob)
    else:
        _log_prob_full_blas(xt, n_rows, n_features, n_components, means, precisions_chol,
                            log_norm, work, log_prob)


cdef void _accumulate_full(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* resp, const floating* shifts,
    double* nk, double* sums, double* scatter, floating* work, double* wide,
) noexcept nogil:
    cdef Py_ssize_t c, i, n_kept
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef const floating* r
    cdef double total
    cdef floating* kept_xt
    cdef floating* kept_r
    for c in range(n_components):
        r = resp + c * m
        total = 0.0
        n_kept = 0
        for i in range(m):
            total += r[i]
            n_kept += r[i] != 0
        if n_kept == 0:
            continue
        nk[c] += total
        if d >= GATHER_MIN_FEATURES and m >= 16 and 2 * n_kept <= m:
            # Layout: kept rows (D × n_kept), their r, then the kernel's own scratch, which
            # needs at most 2 D n_kept elements + 128 bytes: all within (2D + 2) m.
            kept_xt = work
            kept_r = work + d * n_kept
            _gather_responsible_rows(xt, m, d, r, n_kept, kept_xt, kept_r)
            _accumulate_component(kept_xt, n_kept, d, kept_r, shifts + c * d, sums + c * d,
                                  scatter + c * d * d, kept_r + n_kept, wide)
        else:
            _accumulate_component(xt, m, d, r, shifts + c * d, sums + c * d,
                                  scatter + c * d * d, work, wide)


cdef inline void _accumulate_component(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, const floating* r,
    const floating* shift, double* sums, double* C, floating* work, double* wide,
) noexcept nogil:
    if n_features < SCATTER_BLAS_MIN_FEATURES:
        _accumulate_component_blocked(xt, n_rows, n_features, r, shift, sums, C, work)
    else:
        _accumulate_component_blas(xt, n_rows, n_features, r, shift, sums, C, work,
                                   wide, n_features >= SCATTER_SYRK_MIN_FEATURES)


cdef void _accumulate_diag(
    const floating* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const floating* resp, const floating* shifts,
    double* nk, double* sums, double* scatter,
) noexcept nogil:
    cdef Py_ssize_t i, c, j
    cdef Py_ssize_t m = n_rows
    cdef Py_ssize_t d = n_features
    cdef const floating* r
    cdef floating shift, t, rt, first, second
    cdef double total
    for c in range(n_components):
        r = resp + c * m
        total = 0.0
        for i in range(m):
            total += r[i]
        if total == 0.0:
            continue
        nk[c] += total
        for j in range(d):
            shift = shifts[c * d + j]
            first = 0
            second = 0
            for i in range(m):
                t = xt[j * m + i] - shift
                rt = r[i] * t
                first += rt
                second += rt * t
            sums[c * d + j] += first
            scatter[c * d + j] += second


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
                   work, log_prob)


cdef void log_prob_diag(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* means, const double* precisions_chol, const double* log_norm,
    double* log_prob,
) noexcept nogil:
    """log π_c + log N(x_i | μ_c, diag σ_c²) for every row and component.

    log_prob: OUT (n_components, n_rows); no scratch needed. Whole blocks of rows go through
    src/_blocked.h; the last m % ROW_BLOCK rows through the same kernel, zero-padded, so a
    row's result does not depend on where the chunk boundaries fall.
    """
    _log_prob_diag(xt, n_rows, n_features, n_components, means, precisions_chol, log_norm,
                   log_prob)


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
                             work)


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
    _accumulate_full(xt, n_rows, n_features, n_components, resp, shifts, nk, sums, scatter,
                     work, <double*> NULL)


cdef void accumulate_diag(
    const double* xt, Py_ssize_t n_rows, Py_ssize_t n_features, Py_ssize_t n_components,
    const double* resp, const double* shifts,
    double* nk, double* sums, double* scatter,
) noexcept nogil:
    """Add Σ r, Σ r (x − c) and Σ r (x − c)² (element-wise) per component."""
    _accumulate_diag(xt, n_rows, n_features, n_components, resp, shifts, nk, sums, scatter)


# --------------------------------------------------------------------------------------------
# One group: its chunks in order, into its own accumulator
# --------------------------------------------------------------------------------------------

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


cdef inline void _log_prob(
    const floating* xt, Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, bint full,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    const floating* tied_centre, const floating* tied_offsets,
    floating* work, floating* log_prob,
) noexcept nogil:
    """The chunk's weighted log-densities in the model's form (full, tied or diag)."""
    if tied_centre != NULL:
        _log_prob_tied(xt, m, d, k, tied_centre, precisions_chol, tied_offsets, log_norm,
                       work, log_prob)
    elif full:
        _log_prob_full(xt, m, d, k, means, precisions_chol, log_norm, work, log_prob)
    else:
        _log_prob_diag(xt, m, d, k, means, precisions_chol, log_norm, log_prob)


cdef struct Scratch:
    # Per-thread work areas in the compute type, sized for a full chunk (_alloc_scratch).
    void* xt             # (n_features, CHUNK_ROWS): the chunk transposed
    void* log_prob       # (n_components, CHUNK_ROWS): log-probabilities, then resp.
    void* row_work       # (CHUNK_ROWS,): log p(x) per row
    void* work           # ((2 * n_features + 2), CHUNK_ROWS): kernel scratch
    double* wide         # (2 * n_features, CHUNK_ROWS): float32 BLAS operands, widened


cdef Scratch _alloc_scratch(
    Py_ssize_t n_features, Py_ssize_t n_components, size_t itemsize,
) noexcept nogil:
    cdef Scratch s
    s.xt = malloc(n_features * CHUNK_ROWS * itemsize)
    s.log_prob = malloc(n_components * CHUNK_ROWS * itemsize)
    s.row_work = malloc(CHUNK_ROWS * itemsize)
    s.work = malloc((2 * n_features + 2) * CHUNK_ROWS * itemsize)
    s.wide = <double*> malloc(2 * n_features * CHUNK_ROWS * sizeof(double))
    return s


cdef void _free_scratch(Scratch s) noexcept nogil:
    free(s.xt)
    free(s.log_prob)
    free(s.row_work)
    free(s.work)
    free(s.wide)


cdef struct PassInputs:
    # _stats_pass's arrays, typed by the pass's dtype (shifts, chol, log_norm, tied_*) or
    # float64/int64; NULL where the source or the covariance form does not use them.
    const double* w
    const long long* labels
    const double* resp
    const void* shifts
    const void* chol
    const void* log_norm
    const void* tied_centre
    const void* tied_offsets


cdef void _stats_group(
    const floating* X, Py_ssize_t n_samples, Py_ssize_t n_features, Py_ssize_t n_components,
    bint full, StatsSource source, PassInputs a, Py_ssize_t group, Py_ssize_t n_groups,
    double* accumulators, Scratch s,
) noexcept nogil:
    """Accumulate group ``group``'s chunks into its accumulator, computing in X's type.

    With ``a.tied_centre`` (not NULL), the densities are tied: one factor a.chol, see
    _log_prob_tied.

    acc layout: [Σ w log p(x) | nk (K) | sums (K·D) | scatter (K·D·D full, K·D diag)].
    """
    cdef Py_ssize_t d = n_features
    cdef Py_ssize_t k = n_components
    cdef Py_ssize_t n_chunks = n_chunks_of(n_samples)
    cdef Py_ssize_t chunk_begin = group_first_chunk(group, n_groups, n_chunks)
    cdef Py_ssize_t chunk_end = group_first_chunk(group + 1, n_groups, n_chunks)
    cdef double* acc = accumulators + group * (1 + k * (1 + d + (d * d if full else d)))
    cdef double* nk = acc + 1
    cdef double* sums = nk + k
    cdef double* scatter = sums + k * d
    cdef floating* xt = <floating*> s.xt
    cdef floating* log_prob = <floating*> s.log_prob
    cdef floating* row_work = <floating*> s.row_work
    cdef floating* work = <floating*> s.work
    cdef const floating* shifts = <const floating*> a.shifts
    cdef const double* sample_weight = a.w
    cdef Py_ssize_t chunk, row0, m
    cdef const double* wc
    for chunk in range(chunk_begin, chunk_end):
        row0 = chunk * CHUNK_ROWS
        m = min(<Py_ssize_t> CHUNK_ROWS, n_samples - row0)
        wc = NULL if sample_weight == NULL else sample_weight + row0
        _transpose_chunk(X + row0 * d, m, d, xt)
        if source == FROM_DENSITY:
            _log_prob(xt, m, d, k, full, shifts, <const floating*> a.chol,
                      <const floating*> a.log_norm, <const floating*> a.tied_centre,
                      <const floating*> a.tied_offsets, work, log_prob)
            acc[0] += _log_prob_to_resp(log_prob, m, k, wc, row_work, work)
        elif source == FROM_LABELS:
            _fill_resp_from_labels(a.labels + row0, wc, m, k, log_prob)
        else:
            _fill_resp_from_given(a.resp + row0 * k, wc, m, k, log_prob)
        if full:
            _accumulate_full(xt, m, d, k, log_prob, shifts, nk, sums, scatter, work,
                             s.wide)
        else:
            _accumulate_diag(xt, m, d, k, log_prob, shifts, nk, sums, scatter)


# --------------------------------------------------------------------------------------------
# Python entry points
# --------------------------------------------------------------------------------------------

def _as_flat(a, dtype):
    """A C-contiguous 1-D view (or copy, when the dtype or layout differs) of ``a``."""
    return np.ascontiguousarray(a, dtype=dtype).reshape(-1)


cdef void _sum_groups(
    double* acc, Py_ssize_t n_groups, Py_ssize_t k, Py_ssize_t d, bint full,
) noexcept nogil:
    """Add the groups' accumulators into the first, in group order, and mirror the upper
    triangle of each full scatter (the only one the kernels fill) into the lower.

    The order is fixed by the shape, never by the threads, so neither is the result; it is
    NumPy's ``sum(axis=0)`` order, in one loop instead of ~10 µs of NumPy calls per pass.
    """
    cdef Py_ssize_t acc_size = 1 + k * (1 + d + (d * d if full else d))
    cdef Py_ssize_t g, e, c, i, j
    cdef double* scatter = acc + 1 + k + k * d
    for g in range(1, n_groups):
        for e in range(acc_size):
            acc[e] += acc[g * acc_size + e]
    if full:
        for c in range(k):
            for i in range(d):
                for j in range(i):
                    scatter[c * d * d + i * d + j] = scatter[c * d * d + j * d + i]


cdef void _add_totals(
    const double* total, Py_ssize_t k, Py_ssize_t d, bint full,
    double* nk, double* sums, double* scatter,
) noexcept nogil:
    """nk, sums and scatter += their parts of ``total`` (laid out as an accumulator)."""
    cdef Py_ssize_t e
    for e in range(k):
        nk[e] += total[1 + e]
    for e in range(k * d):
        sums[e] += total[1 + k + e]
    for e in range(k * (d * d if full else d)):
        scatter[e] += total[1 + k + k * d + e]


cdef double _stats_pass(
    X, sample_weight, shifts, precisions_chol, log_norm, labels, given_resp,
    nk, sums, scatter, int n_threads, int source,
) except? -1.0:
    """em_pass, stats_from_labels and stats_from_resp: arguments checked, then the pass.

    The arguments are handled through NumPy's C API (gmmfast/_ndarray.pxd): this wrapper
    runs once per EM iteration, where typed memoryviews and NumPy calls cost ~10 µs, 1 % of
    workload a's iteration. Parameters are converted (to X's dtype, C order) when needed;
    the statistics must be writable C-contiguous float64, as they are added to in place.
    """
    cdef cnp.ndarray x = _samples(X)
    cdef bint single = cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT
    cdef int compute = cnp.NPY_FLOAT if single else cnp.NPY_DOUBLE
    cdef Py_ssize_t n = cnp.PyArray_DIMS(x)[0]
    cdef Py_ssize_t d = cnp.PyArray_DIMS(x)[1]
    cdef cnp.ndarray exact_shifts = contiguous(shifts, cnp.NPY_DOUBLE)
    cdef Py_ssize_t k = cnp.PyArray_DIMS(exact_shifts)[0] if exact_shifts.ndim == 2 else 0
    if k < 1 or not has_shape(exact_shifts, k, d, -1):
        raise ValueError(f"means/shifts must have shape (K >= 1, {d}), got {np.shape(shifts)}")
    if not (is_writable_float64(nk) and is_writable_float64(sums)
            and is_writable_float64(scatter)):
        raise ValueError("nk, sums and scatter must be writable, aligned, C-contiguous "
                         "float64 arrays: the statistics are added to them in place")
    cdef bint full = scatter.ndim == 3
    if not has_shape(nk, k, -1, -1) or not has_shape(sums, k, d, -1):
        raise ValueError("nk must have shape (K,) and sums shape (K, D)")
    if not has_shape(scatter, k, d, d if full else -1):
        raise ValueError(f"scatter must have shape ({k}, {d}, {d}) or ({k}, {d})")

    cdef cnp.ndarray weights = None
    if sample_weight is not None:
        weights = contiguous(sample_weight, cnp.NPY_DOUBLE)
        if not has_shape(weights, n, -1, -1):
            raise ValueError(f"sample_weight must have shape ({n},)")
    # The kernels take their moments about the shifts rounded to the compute type; they
    # are moved onto the exact shifts after the pass (_recentre).
    cdef cnp.ndarray rounded_shifts = contiguous(exact_shifts, compute)
    cdef cnp.ndarray chol = rounded_shifts, norm = rounded_shifts
    cdef cnp.ndarray label_array = None, resp_array = None
    cdef cnp.ndarray centre = None, offsets = None
    cdef bint tied = False
    if source == FROM_DENSITY:
        chol = contiguous(precisions_chol, compute)
        norm = contiguous(log_norm, compute)
        tied = k > 1 and has_shape(chol, 1, d, d)
        if not (has_shape(chol, k, d, d if full else -1) or (tied and full)):
            raise ValueError("precisions_chol must have the shape of scatter, or (1, D, D) "
                             "for one factor shared by all components (tied)")
        if not has_shape(norm, k, -1, -1):
            raise ValueError(f"log_norm must have shape ({k},)")
        if tied:
            centre, offsets = _tied_geometry(exact_shifts, precisions_chol, rounded_shifts.dtype)
    elif source == FROM_LABELS:
        label_array = contiguous(labels, cnp.NPY_INT64)
        if not has_shape(label_array, n, -1, -1):
            raise ValueError(f"labels must have shape ({n},)")
        if n and (np.min(label_array) < 0 or np.max(label_array) >= k):
            raise ValueError(f"labels must be in [0, {k})")
    else:
        resp_array = contiguous(given_resp, cnp.NPY_DOUBLE)
        if not has_shape(resp_array, n, k, -1):
            raise ValueError(f"resp must have shape ({n}, {k}), got {np.shape(given_resp)}")

    cdef Py_ssize_t stat_size = d * d if full else d
    cdef Py_ssize_t acc_size = 1 + k * (1 + d + stat_size)
    cdef Py_ssize_t n_chunks = n_chunks_of(n)
    cdef Py_ssize_t n_groups = n_groups_of(n_chunks, acc_size)
    cdef int threads = resolve_threads(n_threads, n_groups)
    cdef double* acc = <double*> calloc(n_groups * acc_size, sizeof(double))
    if acc == NULL:
        raise MemoryError(f"no memory for {n_groups} accumulators of {acc_size} doubles")
    cdef PassInputs inputs
    inputs.w = NULL if weights is None else <double*> weights.data
    inputs.labels = NULL if label_array is None else <long long*> label_array.data
    inputs.resp = NULL if resp_array is None else <double*> resp_array.data
    inputs.shifts = rounded_shifts.data
    inputs.chol = chol.data
    inputs.log_norm = norm.data
    inputs.tied_centre = NULL if centre is None else centre.data
    inputs.tied_offsets = NULL if offsets is None else offsets.data
    cdef double loglik
    try:
        if n > 0 and full and d >= SCATTER_BLAS_MIN_FEATURES:
            # Each chunk calls BLAS on small blocks: its own threads would only fight ours.
            # (Below this size, and for diag, the pass calls no BLAS: the limit, ~1 µs per
            # pass, is not applied.)
            with single_threaded_blas():
                _dispatch_pass(x.data, single, n, d, k, full, <StatsSource> source, inputs,
                               n_groups, threads, acc)
        elif n > 0:
            _dispatch_pass(x.data, single, n, d, k, full, <StatsSource> source, inputs,
                           n_groups, threads, acc)
        _sum_groups(acc, n_groups, k, d, full)
        if single:
            _recentre_total(acc, k, d, scatter.shape, exact_shifts, rounded_shifts)
        _add_totals(acc, k, d, full, <double*> (<cnp.ndarray> nk).data,
                    <double*> (<cnp.ndarray> sums).data, <double*> (<cnp.ndarray> scatter).data)
        loglik = acc[0]
    finally:
        free(acc)
    return loglik


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


cdef void _dispatch_pass(
    const void* X, bint single, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k, bint full,
    StatsSource source, PassInputs a, Py_ssize_t n_groups, int threads, double* acc,
) noexcept nogil:
    """_pass_groups in float32 (``single``) or float64."""
    if single:
        _pass_groups(<const float*> X, n, d, k, full, source, a, n_groups, threads, acc)
    else:
        _pass_groups(<const double*> X, n, d, k, full, source, a, n_groups, threads, acc)


cdef void _pass_groups(
    const floating* X, Py_ssize_t n, Py_ssize_t d, Py_ssize_t k, bint full,
    StatsSource source, PassInputs a, Py_ssize_t n_groups, int threads, double* acc,
) noexcept nogil:
    """Every group's chunks into its own accumulator (acc: n_groups rows), in parallel."""
    cdef Scratch scratch
    cdef Py_ssize_t g
    if threads == 1:
        # The same groups in the same order, without starting an OpenMP team: ~3 µs per
        # pass once the caches are cold, 0.3 % of workload a's iteration.
        scratch = _alloc_scratch(d, k, sizeof(floating))
        for g in range(n_groups):
            _stats_group(X, n, d, k, full, source, a, g, n_groups, acc, scratch)
        _free_scratch(scratch)
        return
    with parallel(num_threads=threads):
        scratch = _alloc_scratch(d, k, sizeof(floating))
        for g in prange(n_groups, schedule="static"):
            _stats_group(X, n, d, k, full, source, a, g, n_groups, acc, scratch)
        _free_scratch(scratch)


cdef _recentre_total(double* total, Py_ssize_t k, Py_ssize_t d, scatter_shape,
                     cnp.ndarray exact_shifts, cnp.ndarray rounded_shifts):
    """A float32 pass's summed accumulator, moved from the rounded onto the exact shifts."""
    cdef Py_ssize_t size = 1 + k + k * d + k * (d * d if len(scatter_shape) == 3 else d)
    view = np.asarray(<double[:size]> total)
    pass_sums, block = _recentre(view[1:1 + k], view[1 + k:1 + k + k * d].reshape(k, d),
                                 view[1 + k + k * d:].reshape(scatter_shape),
                                 exact_shifts - rounded_shifts.astype(np.float64))
    view[1 + k:1 + k + k * d] = pass_sums.reshape(-1)
    view[1 + k + k * d:] = block.reshape(-1)


def _is_tied(precisions_chol, Py_ssize_t k, Py_ssize_t d):
    """One (1, D, D) factor for K > 1 components: tied covariances."""
    return k > 1 and np.shape(precisions_chol) == (1, d, d)


def _tied_geometry(means, precisions_chol, dtype):
    """The centre and whitened offsets (μ_c − centre) U of _log_prob_tied, in ``dtype``.

    The centre is the mean of the means (rounded to ``dtype`` first, so that the offsets
    are exact for the centre the kernel uses): the whitened rows stay small.
    """
    means = np.asarray(means, dtype=np.float64)
    centre = means.mean(axis=0).astype(dtype)
    U = np.asarray(precisions_chol, dtype=np.float64)[0]
    offsets = (means - centre.astype(np.float64)) @ U
    return np.ascontiguousarray(centre), np.ascontiguousarray(offsets, dtype=dtype)


def _recentre(nk, sums, scatter, offsets):
    """Moments about c + δ from moments about c, in float64 (δ = ``offsets``, (K, D)).

    With y = x − c − δ: Σ r y = sums − nk δ and Σ r y yᵀ = scatter − δ sumsᵀ − sums δᵀ +
    nk δ δᵀ (diagonal: scatter − 2 δ ⊙ sums + nk δ²). The float32 path takes its moments
    about the shifts rounded to float32; δ is the rounding, so the correction is tiny and
    exact to float64 rounding.
    """
    new_sums = sums - nk[:, None] * offsets
    if scatter.ndim == 3:
        cross = offsets[:, :, None] * sums[:, None, :]
        new_scatter = (scatter - cross - np.swapaxes(cross, 1, 2)
                       + nk[:, None, None] * offsets[:, :, None] * offsets[:, None, :])
    else:
        new_scatter = scatter - 2.0 * offsets * sums + nk[:, None] * offsets**2
    return new_sums, new_scatter


def em_pass(X, sample_weight, means, precisions_chol, log_norm, nk, sums, scatter,
            int n_threads=0):
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
        (full) or (n_components, n_features) its diagonal (diag) is added.
    n_threads : int
        IN. Threads to use; <= 0 means the OpenMP default. Results do not depend on it.

    Returns
    -------
    loglik : float
        Σ_i w_i log p(x_i) under the given parameters.
    """
    return _stats_pass(X, sample_weight, means, precisions_chol, log_norm, None, None,
                       nk, sums, scatter, n_threads, FROM_DENSITY)


def stats_from_labels(X, sample_weight, labels, shifts, nk, sums, scatter, int n_threads=0):
    """Sufficient statistics of a hard partition (labels in [0, K)), moments about ``shifts``.

    Same arrays and conventions as :func:`em_pass`; ``labels`` is an int64 (n_samples,) IN.
    """
    _stats_pass(X, sample_weight, shifts, None, None, labels, None,
                nk, sums, scatter, n_threads, FROM_LABELS)


def stats_from_resp(X, sample_weight, resp, shifts, nk, sums, scatter, int n_threads=0):
    """Sufficient statistics of given responsibilities (n_samples, n_components) float64."""
    _stats_pass(X, sample_weight, shifts, None, None, None, resp,
                nk, sums, scatter, n_threads, FROM_RESP)


def score(
    const floating[:, ::1] X, means, precisions_chol, log_norm,
    floating[::1] log_prob_norm=None, long long[::1] labels=None,
    floating[:, ::1] resp=None, int n_threads=0, bint check_finite=False,
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
        OUT. Responsibilities p(k | x_i).
    n_threads : int
        IN. Threads to use; <= 0 means the OpenMP default.
    check_finite : bool
        IN. Whether to check X for NaN and infinities.
    """
    means = np.asarray(means)
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k = means.shape[0]
    cdef bint full = np.ndim(precisions_chol) == 3
    cdef bint tied = _is_tied(precisions_chol, k, d)
    if k < 1 or means.shape != (k, d):
        raise ValueError(f"means must have shape ({k}, {d}), got {means.shape}")
    if log_prob_norm is not None and log_prob_norm.shape[0] != n:
        raise ValueError(f"log_prob_norm must have shape ({n},)")
    if labels is not None and labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},)")
    if resp is not None and (resp.shape[0] != n or resp.shape[1] != k):
        raise ValueError(f"resp must have shape ({n}, {k})")
    compute_dtype = np.float64 if floating is double else np.float32
    cdef const floating[::1] mean_view = _as_flat(means, compute_dtype)
    cdef const floating[::1] chol_view = _as_flat(precisions_chol, compute_dtype)
    cdef const floating[::1] norm_view = _as_flat(log_norm, compute_dtype)
    if (chol_view.shape[0] != (d * d if tied else k * d * d if full else k * d)
            or norm_view.shape[0] != k):
        raise ValueError("precisions_chol or log_norm do not match means")
    cdef const floating[::1] centre_view = None
    cdef const floating[::1] offsets_view = None
    if tied:
        centre, offsets = _tied_geometry(means, precisions_chol, compute_dtype)
        centre_view = centre
        offsets_view = offsets.reshape(-1)
    if n == 0:
        return True if check_finite else None

    cdef bint want_norm = log_prob_norm is not None
    cdef bint want_labels = labels is not None
    cdef bint want_resp = resp is not None
    cdef Py_ssize_t n_chunks = n_chunks_of(n)
    cdef int threads = resolve_threads(n_threads, n_chunks)
    cdef const floating* X_ptr = &X[0, 0]
    cdef const floating* mean_ptr = &mean_view[0]
    cdef const floating* chol_ptr = &chol_view[0]
    cdef const floating* norm_ptr = &norm_view[0]
    cdef const floating* centre_ptr = NULL if centre_view is None else &centre_view[0]
    cdef const floating* offsets_ptr = NULL if offsets_view is None else &offsets_view[0]
    cdef floating* norm_out = &log_prob_norm[0] if want_norm else NULL
    cdef long long* label_out = &labels[0] if want_labels else NULL
    cdef floating* resp_out = &resp[0, 0] if want_resp else NULL
    cdef size_t resp_bytes = <size_t> (n * k) * sizeof(floating)
    cdef bint stream = (want_resp and resp_bytes >= STREAM_MIN_BYTES
                        and pages_resident(&resp[0, 0], resp_bytes))
    cdef Scratch scratch
    cdef floating* staging
    cdef Py_ssize_t chunk, row0, m
    cdef Py_ssize_t nonfinite_chunks = 0

    # Each chunk calls BLAS on small blocks: its own threads would only fight ours.
    with single_threaded_blas():
        with nogil, parallel(num_threads=threads):
            scratch = _alloc_scratch(d, k, sizeof(floating))
            staging = <floating*> malloc(k * CHUNK_ROWS * sizeof(floating)) if stream else NULL
            for chunk in prange(n_chunks, schedule="static"):
                row0 = chunk * CHUNK_ROWS
                m = min(<Py_ssize_t> CHUNK_ROWS, n - row0)
                if check_finite and not _all_finite(X_ptr + row0 * d, m * d):
                    nonfinite_chunks += 1
                _score_chunk(X_ptr + row0 * d, m, d, k, full, mean_ptr, chol_ptr, norm_ptr,
                             centre_ptr, offsets_ptr,
                             norm_out + row0 if want_norm else NULL,
                             label_out + row0 if want_labels else NULL,
                             resp_out + row0 * k if want_resp else NULL, staging, scratch)
            free(staging)
            _free_scratch(scratch)
    return nonfinite_chunks == 0 if check_finite else None


cdef bint _all_finite(const floating* x, Py_ssize_t n) noexcept nogil:
    """Whether x[0], ..., x[n − 1] are all finite (a count rather than an early exit, so
    that the loop vectorises)."""
    cdef Py_ssize_t i, nonfinite = 0
    for i in range(n):
        nonfinite += 0 if isfinite(x[i]) else 1
    return nonfinite == 0


cdef inline void _row_argmax(
    const floating* log_prob, Py_ssize_t m, Py_ssize_t n_components, long long* labels,
) noexcept nogil:
    """See gmmfast_row_argmax_f64: each row's most likely component."""
    if floating is double:
        row_argmax_f64(log_prob, m, n_components, labels)
    else:
        row_argmax_f32(log_prob, m, n_components, labels)


cdef void _score_chunk(
    const floating* X, Py_ssize_t m, Py_ssize_t d, Py_ssize_t k, bint full,
    const floating* means, const floating* precisions_chol, const floating* log_norm,
    const floating* tied_centre, const floating* tied_offsets,
    floating* log_prob_norm, long long* labels, floating* resp, floating* staging,
    Scratch s,
) noexcept nogil:
    """score() on one chunk of m rows; any of the three outputs may be NULL. With a
    ``staging`` area (m × K), ``resp`` is written with streaming stores.

    Only what is asked for is computed: labels need no exponential, log p(x) alone no
    scaling of the responsibilities.
    """
    cdef floating* xt = <floating*> s.xt
    cdef floating* lp = <floating*> s.log_prob
    cdef floating* row_work = <floating*> s.row_work
    cdef floating* factor = <floating*> s.work
    _transpose_chunk(X, m, d, xt)
    _log_prob(xt, m, d, k, full, means, precisions_chol, log_norm, tied_centre, tied_offsets,
              <floating*> s.work, lp)
    if labels != NULL:
        _row_argmax(lp, m, k, labels)
    if resp != NULL:
        if log_prob_norm != NULL:
            _resp_factors(lp, m, k, NULL, log_prob_norm, factor)
        else:
            _unit_factors(lp, m, k, row_work, factor)
        # component-major (K, m) to row-major (m, K), scaled on the way
        if staging != NULL:
            _transpose_scaled(lp, m, k, m, staging, k, factor)
            _stream_copy(resp, staging, m * k)
        else:
            _transpose_scaled(lp, m, k, m, resp, k, factor)
    elif log_prob_norm != NULL:
        _exp_terms(lp, m, k, log_prob_norm, <floating*> s.work)
