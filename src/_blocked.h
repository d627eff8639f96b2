/* Full-covariance kernels for small and moderate D, over blocks of rows, in float64 (names
 * ending _f64) and float32 (_f32), a block being one vector register; the kernels
 * themselves are in src/_blocked_kernels.h, written once for both.
 *
 * Used by src/_em.pyx for one chunk and one component at a time. A chunk is stored
 * transposed: row l of an array is feature l, and `stride` elements separate two features.
 * Only whole blocks are handled here (the caller finishes the last m % ROW_BLOCK rows).
 *
 * Why not BLAS: at D <= 16 a gemm per component and chunk costs more in call overhead and
 * packing than in arithmetic, and it cannot use the triangle (U is upper-triangular, the
 * scatter symmetric). Written with GCC/Clang vector types, a block of rows is one vector
 * register (AVX-512, AVX2 or SSE2), so partial products stay in registers; independent
 * accumulators keep the multiply-adds from waiting on each other. Other compilers get the
 * same arithmetic as plain loops.
 */
#ifndef GMMFAST_BLOCKED_H
#define GMMFAST_BLOCKED_H

#include <stddef.h>

/* Rows per block: one vector register of each type, 64 bytes with AVX-512, 32 with AVX, 16
 * otherwise. The blocks must not be wider than the registers: GCC keeps a wider vector in
 * memory and moves it element by element (with 64-byte blocks, the AVX2 build scored 7x
 * slower than the AVX-512 one, and slower than the SSE2 baseline). */
#if defined(__AVX512F__)
#define GMMFAST_VECTOR_BYTES 64
#elif defined(__AVX__)
#define GMMFAST_VECTOR_BYTES 32
#else
#define GMMFAST_VECTOR_BYTES 16
#endif
#define GMMFAST_ROW_BLOCK_F64 (GMMFAST_VECTOR_BYTES / 8)
#define GMMFAST_ROW_BLOCK_F32 (GMMFAST_VECTOR_BYTES / 4)

/* Features per slab of diag_log_prob_blocks: the size of its on-stack scaled means. */
#define GMMFAST_DIAG_SLAB 64

/* sqrt(1/2): diag_log_prob_blocks scales its terms by it, so that their squares are the
 * halves it subtracts. */
#define GMMFAST_SQRT_HALF 0.70710678118654752440

/* Components, and blocks of rows, per register tile of tied_log_prob_blocks. */
#define GMMFAST_TIED_TILE 4

/* Most features of moments_rows: a row of the chunk as stored is one register. */
#define GMMFAST_ROW_MOMENTS_MAX_FEATURES 8

/* Features per slab of diag_moments_blocks: two partial sums per feature and the slab's
 * shifts must fit in the vector registers (32 with AVX-512, 16 otherwise). */
#if defined(__AVX512F__)
#define GMMFAST_MOMENT_SLAB 8
#else
#define GMMFAST_MOMENT_SLAB 4
#endif

/* Non-zero lanes of a block of rows, as a bit mask (AVX-512 only; see nonzero_blocks). */
#include <stdint.h>
#if defined(__AVX512F__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GMMFAST_NONZERO_LANES_F64(p) \
    _mm512_cmp_pd_mask(_mm512_loadu_pd(p), _mm512_setzero_pd(), _CMP_NEQ_UQ)
#define GMMFAST_NONZERO_LANES_F32(p) \
    _mm512_cmp_ps_mask(_mm512_loadu_ps(p), _mm512_setzero_ps(), _CMP_NEQ_UQ)
#endif

#define GMMFAST_REAL double
#define GMMFAST_INDEX long long
#define GMMFAST_ROWS GMMFAST_ROW_BLOCK_F64
#define GMMFAST_TILE_TRANSPOSE (GMMFAST_VECTOR_BYTES >= 64)
#define GMMFAST_FN(name) gmmfast_##name##_f64
#ifdef GMMFAST_NONZERO_LANES_F64
#define GMMFAST_NONZERO_LANES(p) GMMFAST_NONZERO_LANES_F64(p)
#endif
#include "_blocked_kernels.h"
#undef GMMFAST_NONZERO_LANES
#undef GMMFAST_REAL
#undef GMMFAST_INDEX
#undef GMMFAST_ROWS
#undef GMMFAST_TILE_TRANSPOSE
#undef GMMFAST_FN

#define GMMFAST_REAL float
#define GMMFAST_INDEX int
#define GMMFAST_ROWS GMMFAST_ROW_BLOCK_F32
#define GMMFAST_TILE_TRANSPOSE (GMMFAST_VECTOR_BYTES >= 32)
#define GMMFAST_FN(name) gmmfast_##name##_f32
#ifdef GMMFAST_NONZERO_LANES_F32
#define GMMFAST_NONZERO_LANES(p) GMMFAST_NONZERO_LANES_F32(p)
#endif
#include "_blocked_kernels.h"
#undef GMMFAST_NONZERO_LANES
#undef GMMFAST_REAL
#undef GMMFAST_INDEX
#undef GMMFAST_ROWS
#undef GMMFAST_TILE_TRANSPOSE
#undef GMMFAST_FN

/* Row gathering for accumulate_full: copy the rows i < m whose responsibility r[i] is not
 * zero into kept (d x n_kept, feature-major like xt) and their r into kept_r, in order;
 * returns their number (the caller counted n_kept). Scalar, the test on r is a branch that
 * mispredicts on every change of cluster, and it made a quarter of a float32 pass at
 * D = 8, K = 16; with AVX-512 a block of rows is compressed at once (vcompressps/pd), which
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

/* One component's diagonal moments from the rows of a chunk it is responsible for, one row
 * at a time (accumulate_diag and accumulate_pooled under a raised floor): where most rows
 * have one component's responsibility, a row costs a few operations per component it
 * belongs to, where a block of rows costs four per feature for every component with a
 * row in it. The rows are marked as bits, 64 to a word, and walked in order; the plain
 * versions below mark the same rows and add them in the same order. */
/* Bit i % 64 of rows[i / 64]: r[i] is not zero (or NaN), for i < m; returns the number of
 * those rows, and *blocks that of the blocks of 8 rows with any of them. Blocks of 8 rows
 * whatever the vector width, so that both versions tell the caller the same. */
#define GMMFAST_NONZERO_ROWS(name, real, mask, lanes_per_register, nonzero_lanes)           \
    static inline ptrdiff_t name(const real *r, ptrdiff_t m, uint64_t *rows, ptrdiff_t *blocks) \
    {                                                                                       \
        ptrdiff_t kept = 0, kept_blocks = 0;                                                \
        for (ptrdiff_t i0 = 0; i0 < m; i0 += 64) {                                          \
            uint64_t bits = 0;                                                              \
            for (ptrdiff_t i = i0; i < m && i < i0 + 64; i += lanes_per_register) {         \
                mask lanes = m - i >= lanes_per_register                                    \
                    ? (mask) ((1u << lanes_per_register) - 1u)                              \
                    : (mask) ((1u << (m - i)) - 1u);                                        \
                mask nonzero = nonzero_lanes(lanes, r + i);                                 \
                /* Blocks of 8 rows: one or two per register. */                            \
                kept_blocks += ((nonzero & 0xff) != 0) + ((nonzero >> 8) != 0);             \
                bits |= (uint64_t) nonzero << (i - i0);                                     \
            }                                                                               \
            rows[i0 / 64] = bits;                                                           \
            kept += __builtin_popcountll(bits);                                             \
        }                                                                                   \
        *blocks = kept_blocks;                                                              \
        return kept;                                                                        \
    }
#define GMMFAST_NONZERO_F64(lanes, p) _mm512_mask_cmp_pd_mask( \
    lanes, _mm512_maskz_loadu_pd(lanes, p), _mm512_setzero_pd(), _CMP_NEQ_UQ)
#define GMMFAST_NONZERO_F32(lanes, p) _mm512_mask_cmp_ps_mask( \
    lanes, _mm512_maskz_loadu_ps(lanes, p), _mm512_setzero_ps(), _CMP_NEQ_UQ)
GMMFAST_NONZERO_ROWS(gmmfast_nonzero_rows_f64, double, __mmask8, 8, GMMFAST_NONZERO_F64)
GMMFAST_NONZERO_ROWS(gmmfast_nonzero_rows_f32, float, __mmask16, 16, GMMFAST_NONZERO_F32)
#undef GMMFAST_NONZERO_ROWS
#undef GMMFAST_NONZERO_F64
#undef GMMFAST_NONZERO_F32

/* sums[j] += sum_i r_i t_ij, t_ij = x[i][j] - shift[j], over the rows i marked in `rows`
 * (gmmfast_nonzero_rows_f64), in order, with r_i = r[i] * scale[i] (r[i] without `scale`),
 * and with `squares` the diagonal moments, squares[j] += sum_i r_i t_ij^2, or with `scatter`
 * the full ones, for l >= j (the upper triangle, row-major) scatter[j * d + l] +=
 * sum_i r_i t_ij t_il (either may be NULL, not both given); returns sum_i r_i. `x` holds the
 * chunk's rows as stored (m x d, d <= GMMFAST_ROW_MOMENTS_MAX_FEATURES): a row is one
 * register t, and its products with every feature one multiply-add each: row j of the
 * scatter gains (r_i t_ij) t_i, r_i t_ij broadcast from memory. Where a component has few
 * rows in a chunk this replaces gathering them, forming a product's operands and a gemm
 * call. */
#define GMMFAST_MOMENTS_ROWS(name, real, load_row)                                          \
    static inline double name(const real *x, ptrdiff_t m, ptrdiff_t d, const real *r,      \
                              const real *scale, const uint64_t *rows, const real *shift,    \
                              double *sums, double *squares, double *scatter)               \
    {                                                                                       \
        __mmask8 features = (__mmask8) ((1u << d) - 1u);                                    \
        __m512d c = load_row(features, shift);                                              \
        __m512d s = _mm512_setzero_pd();                                                    \
        /* q[0] the squares; with `scatter`, q[j] row j of it. Rows past d stay zero (so    \
         * do the lanes of t past d): a fixed count of accumulators keeps them in           \
         * registers. */                                                                    \
        __m512d q[GMMFAST_ROW_MOMENTS_MAX_FEATURES];                                        \
        double weighted[GMMFAST_ROW_MOMENTS_MAX_FEATURES];                                  \
        for (int j = 0; j < GMMFAST_ROW_MOMENTS_MAX_FEATURES; j++)                          \
            q[j] = _mm512_setzero_pd();                                                     \
        double count = 0.0;                                                                 \
        for (ptrdiff_t i0 = 0; i0 < m; i0 += 64)                                            \
            for (uint64_t bits = rows[i0 / 64]; bits; bits &= bits - 1) {                   \
                ptrdiff_t i = i0 + __builtin_ctzll(bits);                                   \
                double rv = scale ? (double) (r[i] * scale[i]) : (double) r[i];            \
                __m512d t = _mm512_sub_pd(load_row(features, x + i * d), c);                \
                __m512d w = _mm512_mul_pd(_mm512_set1_pd(rv), t);                           \
                count += rv;                                                                \
                s = _mm512_add_pd(s, w);                                                    \
                if (scatter) {                                                              \
                    _mm512_storeu_pd(weighted, w);                                          \
                    for (int j = 0; j < GMMFAST_ROW_MOMENTS_MAX_FEATURES; j++)              \
                        q[j] = _mm512_fmadd_pd(_mm512_set1_pd(weighted[j]), t, q[j]);       \
                } else {                                                                    \
                    q[0] = _mm512_fmadd_pd(w, t, q[0]);                                     \
                }                                                                           \
            }                                                                               \
        _mm512_mask_storeu_pd(sums, features,                                               \
                              _mm512_add_pd(_mm512_maskz_loadu_pd(features, sums), s));     \
        if (squares)                                                                        \
            _mm512_mask_storeu_pd(squares, features,                                        \
                                  _mm512_add_pd(_mm512_maskz_loadu_pd(features, squares),   \
                                                q[0]));                                     \
        if (scatter)                                                                        \
            for (ptrdiff_t j = 0; j < d; j++) {                                             \
                __mmask8 upper = (__mmask8) (features & (0xffu << j));                      \
                double *row = scatter + j * d;                                              \
                _mm512_mask_storeu_pd(row, upper,                                           \
                                      _mm512_add_pd(_mm512_maskz_loadu_pd(upper, row),      \
                                                    q[j]));                                 \
            }                                                                               \
        return count;                                                                       \
    }
/* A row of `features` entries as float64 lanes: float32 rows are widened as they load, so
 * that their statistics are summed in float64 as everywhere else. */
#define GMMFAST_LOAD_ROW_F64(features, p) _mm512_maskz_loadu_pd(features, p)
#define GMMFAST_LOAD_ROW_F32(features, p) \
    _mm512_cvtps_pd(_mm512_castps512_ps256(_mm512_maskz_loadu_ps((__mmask16) (features), p)))
GMMFAST_MOMENTS_ROWS(gmmfast_moments_rows_f64, double, GMMFAST_LOAD_ROW_F64)
GMMFAST_MOMENTS_ROWS(gmmfast_moments_rows_f32, float, GMMFAST_LOAD_ROW_F32)
#undef GMMFAST_MOMENTS_ROWS
#undef GMMFAST_LOAD_ROW_F64
#undef GMMFAST_LOAD_ROW_F32

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

#define GMMFAST_NONZERO_ROWS(name, real)                                                    \
    static inline ptrdiff_t name(const real *r, ptrdiff_t m, uint64_t *rows, ptrdiff_t *blocks) \
    {                                                                                       \
        ptrdiff_t kept = 0, kept_blocks = 0;                                                \
        for (ptrdiff_t i0 = 0; i0 < m; i0 += 64) {                                          \
            uint64_t bits = 0;                                                              \
            for (ptrdiff_t i = i0; i < m && i < i0 + 64; i++) {                             \
                bits |= (uint64_t) (r[i] != 0) << (i - i0);                                 \
                kept += r[i] != 0;                                                          \
            }                                                                               \
            for (ptrdiff_t b = 0; b < 64 && i0 + b < m; b += 8)                             \
                kept_blocks += (bits >> b & 0xff) != 0;                                     \
            rows[i0 / 64] = bits;                                                           \
        }                                                                                   \
        *blocks = kept_blocks;                                                              \
        return kept;                                                                        \
    }
GMMFAST_NONZERO_ROWS(gmmfast_nonzero_rows_f64, double)
GMMFAST_NONZERO_ROWS(gmmfast_nonzero_rows_f32, float)
#undef GMMFAST_NONZERO_ROWS

#define GMMFAST_MOMENTS_ROWS(name, real)                                                    \
    static inline double name(const real *x, ptrdiff_t m, ptrdiff_t d, const real *r,      \
                              const real *scale, const uint64_t *rows, const real *shift,    \
                              double *sums, double *squares, double *scatter)               \
    {                                                                                       \
        enum { D = GMMFAST_ROW_MOMENTS_MAX_FEATURES };                                      \
        double s[GMMFAST_ROW_MOMENTS_MAX_FEATURES] = {0};                                   \
        double t[GMMFAST_ROW_MOMENTS_MAX_FEATURES];                                         \
        double q[GMMFAST_ROW_MOMENTS_MAX_FEATURES * GMMFAST_ROW_MOMENTS_MAX_FEATURES] = {0}; \
        double count = 0.0;                                                                 \
        for (ptrdiff_t i = 0; i < m; i++)                                                   \
            if (rows[i / 64] >> (i % 64) & 1) {                                             \
                double rv = scale ? (double) (r[i] * scale[i]) : (double) r[i];            \
                count += rv;                                                                \
                for (ptrdiff_t j = 0; j < d; j++)                                           \
                    t[j] = (double) x[i * d + j] - (double) shift[j];                       \
                for (ptrdiff_t j = 0; j < d; j++) {                                         \
                    double w = rv * t[j];                                                   \
                    s[j] += w;                                                              \
                    for (ptrdiff_t l = j; l < (scatter ? d : j + 1); l++)                   \
                        q[j * D + l] += w * t[l];                                           \
                }                                                                           \
            }                                                                               \
        for (ptrdiff_t j = 0; j < d; j++) {                                                 \
            sums[j] += s[j];                                                                \
            if (squares)                                                                    \
                squares[j] += q[j * D + j];                                                 \
            for (ptrdiff_t l = j; scatter && l < d; l++)                                    \
                scatter[j * d + l] += q[j * D + l];                                         \
        }                                                                                   \
        return count;                                                                       \
    }
GMMFAST_MOMENTS_ROWS(gmmfast_moments_rows_f64, double)
GMMFAST_MOMENTS_ROWS(gmmfast_moments_rows_f32, float)
#undef GMMFAST_MOMENTS_ROWS

#endif

/* dst[i] = src[i] for i < n with non-temporal (streaming) stores: for outputs far larger
 * than the caches (predict_proba's N x K responsibilities), which an ordinary store first
 * reads into the cache line by line. On this project's machine a 128 MB array was written
 * in 13 ms with ordinary stores and 5.8 ms with streaming ones. The destination's first
 * elements up to a vector boundary and the last partial vector are ordinary stores. The
 * fence orders the streaming stores before anything the thread does next (other threads
 * see them after the parallel region's barrier). Without SSE2: a plain copy. */
#include <stdint.h>

#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__AVX512F__)
#define GMMFAST_STREAM_BYTES 64
#define GMMFAST_STREAM_PD(p, s) _mm512_stream_pd(p, _mm512_loadu_pd(s))
#define GMMFAST_STREAM_PS(p, s) _mm512_stream_ps(p, _mm512_loadu_ps(s))
#elif defined(__AVX__)
#define GMMFAST_STREAM_BYTES 32
#define GMMFAST_STREAM_PD(p, s) _mm256_stream_pd(p, _mm256_loadu_pd(s))
#define GMMFAST_STREAM_PS(p, s) _mm256_stream_ps(p, _mm256_loadu_ps(s))
#else
#define GMMFAST_STREAM_BYTES 16
#define GMMFAST_STREAM_PD(p, s) _mm_stream_pd(p, _mm_loadu_pd(s))
#define GMMFAST_STREAM_PS(p, s) _mm_stream_ps(p, _mm_loadu_ps(s))
#endif

#define GMMFAST_STREAM_COPY(name, real, stream)                                             \
    static inline void name(real *dst, const real *src, ptrdiff_t n)                        \
    {                                                                                       \
        const ptrdiff_t width = GMMFAST_STREAM_BYTES / (ptrdiff_t) sizeof(real);            \
        ptrdiff_t i = 0;                                                                    \
        for (; i < n && ((uintptr_t) (dst + i) % GMMFAST_STREAM_BYTES); i++)                \
            dst[i] = src[i];                                                                \
        for (; i + width <= n; i += width)                                                  \
            stream(dst + i, src + i);                                                       \
        for (; i < n; i++)                                                                  \
            dst[i] = src[i];                                                                \
        _mm_sfence();                                                                       \
    }
GMMFAST_STREAM_COPY(gmmfast_stream_copy_f64, double, GMMFAST_STREAM_PD)
GMMFAST_STREAM_COPY(gmmfast_stream_copy_f32, float, GMMFAST_STREAM_PS)
#undef GMMFAST_STREAM_COPY

#else

#include <string.h>

static inline void gmmfast_stream_copy_f64(double *dst, const double *src, ptrdiff_t n)
{
    memcpy(dst, src, (size_t) n * sizeof(double));
}

static inline void gmmfast_stream_copy_f32(float *dst, const float *src, ptrdiff_t n)
{
    memcpy(dst, src, (size_t) n * sizeof(float));
}

#endif

/* Whether the pages at the start, middle and end of [p, p + nbytes) are in memory. Streaming
 * stores pay only there: a freshly mapped output is zeroed page by page by the kernel on the
 * first write, which leaves the page in the cache, where ordinary stores are cheaper (a
 * 128 MB predict_proba output: 71 ms with ordinary stores, 83 ms with streaming ones; into
 * memory already in use, 57 and 48 ms). Elsewhere than Linux: never (0). */
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>

static inline int gmmfast_pages_resident(const void *p, size_t nbytes)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || nbytes == 0)
        return 0;
    uintptr_t mask = ~(uintptr_t) (page - 1);
    uintptr_t first = (uintptr_t) p & mask, last = ((uintptr_t) p + nbytes - 1) & mask;
    uintptr_t probes[3] = {first, first + (((last - first) / 2) & mask), last};
    for (int i = 0; i < 3; i++) {
        unsigned char state = 0;
        if (mincore((void *) probes[i], (size_t) page, &state) != 0 || !(state & 1))
            return 0;
    }
    return 1;
}
#else
static inline int gmmfast_pages_resident(const void *p, size_t nbytes)
{
    (void) p;
    (void) nbytes;
    return 0;
}
#endif

/* Ask for the 64-byte lines first .. end - 1 from p on to be brought into the L1 cache
 * (into_l1) or the L2 cache, without waiting for them (a 128-byte-line machine is asked
 * for each line twice). A chunk's rows are read once, by its transpose: asked for while
 * the chunk before is being computed, they are there when it starts (see _fetch_share in
 * src/_blocked.pxi). */
#define GMMFAST_CACHE_LINE 64
#if defined(__GNUC__) || defined(__clang__)
static inline void gmmfast_prefetch_lines(const void *p, ptrdiff_t first, ptrdiff_t end,
                                          int into_l1)
{
    const char *lines = (const char *) p;
    if (into_l1)
        for (ptrdiff_t l = first; l < end; l++)
            __builtin_prefetch(lines + l * GMMFAST_CACHE_LINE, 0, 3);
    else
        for (ptrdiff_t l = first; l < end; l++)
            __builtin_prefetch(lines + l * GMMFAST_CACHE_LINE, 0, 2);
}
#else
static inline void gmmfast_prefetch_lines(const void *p, ptrdiff_t first, ptrdiff_t end,
                                          int into_l1)
{
    (void) p;
    (void) first;
    (void) end;
    (void) into_l1;
}
#endif

#endif /* GMMFAST_BLOCKED_H */
