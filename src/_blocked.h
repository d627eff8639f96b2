/* Full-covariance kernels for small and moderate D, over blocks of rows, in float64 (names
 * ending _f64, 8 rows per block) and float32 (_f32, 16 rows per block); the kernels
 * themselves are in src/_blocked_kernels.h, written once for both.
 *
 * Used by src/_em.pyx for one chunk and one component at a time. A chunk is stored
 * transposed: row l of an array is feature l, and `stride` elements separate two features.
 * Only whole blocks are handled here (the caller finishes the last m % ROW_BLOCK rows).
 *
 * Why not BLAS: at D <= 16 a gemm per component and chunk costs more in call overhead and
 * packing than in arithmetic, and it cannot use the triangle (U is upper-triangular, the
 * scatter symmetric). Written with GCC/Clang vector types, a block of rows is one AVX-512
 * register (two AVX2, four SSE2 ones), so partial products stay in registers; independent
 * accumulators keep the multiply-adds from waiting on each other. Other compilers get the
 * same arithmetic as plain loops.
 */
#ifndef GMMFAST_BLOCKED_H
#define GMMFAST_BLOCKED_H

#include <stddef.h>

/* Rows per block: one 64-byte register (AVX-512; two AVX2, four SSE2 ones) of each type. */
#define GMMFAST_ROW_BLOCK_F64 8
#define GMMFAST_ROW_BLOCK_F32 16

#define GMMFAST_REAL double
#define GMMFAST_INDEX long long
#define GMMFAST_ROWS GMMFAST_ROW_BLOCK_F64
#define GMMFAST_FN(name) gmmfast_##name##_f64
#include "_blocked_kernels.h"
#undef GMMFAST_REAL
#undef GMMFAST_INDEX
#undef GMMFAST_ROWS
#undef GMMFAST_FN

#define GMMFAST_REAL float
#define GMMFAST_INDEX int
#define GMMFAST_ROWS GMMFAST_ROW_BLOCK_F32
#define GMMFAST_FN(name) gmmfast_##name##_f32
#include "_blocked_kernels.h"
#undef GMMFAST_REAL
#undef GMMFAST_INDEX
#undef GMMFAST_ROWS
#undef GMMFAST_FN

/* Row gathering for accumulate_full: copy the rows i < m whose responsibility r[i] is not
 * zero into kept (d x n_kept, feature-major like xt) and their r into kept_r, in order;
 * returns their number (the caller counted n_kept). Scalar, the test on r is a branch that
 * mispredicts on every change of cluster, and it made a quarter of a float32 pass on
 * workload b; with AVX-512 a block of rows is compressed at once (vcompressps/pd), which
 * keeps the order, so both versions give the same rows. */
#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

static inline ptrdiff_t gmmfast_gather_rows_f64(const double *xt, ptrdiff_t m, ptrdiff_t d,
                                                const double *r, ptrdiff_t n_kept,
                                                double *kept, double *kept_r)
{
    ptrdiff_t t = 0, i = 0;
    for (; i + 8 <= m; i += 8) {
        __m512d rv = _mm512_loadu_pd(r + i);
        __mmask8 keep = _mm512_cmp_pd_mask(rv, _mm512_setzero_pd(), _CMP_NEQ_UQ);
        if (!keep)
            continue;
        int count = __builtin_popcount((unsigned) keep);
        __mmask8 head = (__mmask8) ((1u << count) - 1u);
        _mm512_mask_storeu_pd(kept_r + t, head, _mm512_maskz_compress_pd(keep, rv));
        for (ptrdiff_t j = 0; j < d; j++)
            _mm512_mask_storeu_pd(kept + j * n_kept + t, head,
                                  _mm512_maskz_compress_pd(keep, _mm512_loadu_pd(xt + j * m + i)));
        t += count;
    }
    for (; i < m; i++)
        if (r[i] != 0.0) {
            for (ptrdiff_t j = 0; j < d; j++)
                kept[j * n_kept + t] = xt[j * m + i];
            kept_r[t++] = r[i];
        }
    return t;
}

static inline ptrdiff_t gmmfast_gather_rows_f32(const float *xt, ptrdiff_t m, ptrdiff_t d,
                                                const float *r, ptrdiff_t n_kept,
                                                float *kept, float *kept_r)
{
    ptrdiff_t t = 0, i = 0;
    for (; i + 16 <= m; i += 16) {
        __m512 rv = _mm512_loadu_ps(r + i);
        __mmask16 keep = _mm512_cmp_ps_mask(rv, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        if (!keep)
            continue;
        int count = __builtin_popcount((unsigned) keep);
        __mmask16 head = (__mmask16) ((1u << count) - 1u);
        _mm512_mask_storeu_ps(kept_r + t, head, _mm512_maskz_compress_ps(keep, rv));
        for (ptrdiff_t j = 0; j < d; j++)
            _mm512_mask_storeu_ps(kept + j * n_kept + t, head,
                                  _mm512_maskz_compress_ps(keep, _mm512_loadu_ps(xt + j * m + i)));
        t += count;
    }
    for (; i < m; i++)
        if (r[i] != 0.0f) {
            for (ptrdiff_t j = 0; j < d; j++)
                kept[j * n_kept + t] = xt[j * m + i];
            kept_r[t++] = r[i];
        }
    return t;
}

#else

#define GMMFAST_GATHER_ROWS(name, real)                                                     \
    static inline ptrdiff_t name(const real *xt, ptrdiff_t m, ptrdiff_t d, const real *r,   \
                                 ptrdiff_t n_kept, real *kept, real *kept_r)                \
    {                                                                                       \
        ptrdiff_t t = 0;                                                                    \
        for (ptrdiff_t i = 0; i < m; i++)                                                   \
            if (r[i] != 0) {                                                                \
                for (ptrdiff_t j = 0; j < d; j++)                                           \
                    kept[j * n_kept + t] = xt[j * m + i];                                   \
                kept_r[t++] = r[i];                                                         \
            }                                                                               \
        return t;                                                                           \
    }
GMMFAST_GATHER_ROWS(gmmfast_gather_rows_f64, double)
GMMFAST_GATHER_ROWS(gmmfast_gather_rows_f32, float)
#undef GMMFAST_GATHER_ROWS

#endif

#endif /* GMMFAST_BLOCKED_H */
