/* Full-covariance kernels for small and moderate D, over blocks of GMMFAST_ROW_BLOCK rows.
 *
 * Used by src/_em.pyx for one chunk and one component at a time. A chunk is stored
 * transposed: row l of an array is feature l, and `stride` doubles separate two features.
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

#define GMMFAST_ROW_BLOCK 8

#if defined(__GNUC__) || defined(__clang__)

typedef double gmmfast_rows
    __attribute__((vector_size(8 * GMMFAST_ROW_BLOCK), aligned(8), may_alias));

#define GMMFAST_LOAD(p) (*(const gmmfast_rows *) (p))
#define GMMFAST_STORE(p, v) (*(gmmfast_rows *) (p) = (v))

static inline double gmmfast_hsum(gmmfast_rows v)
{
    double s = 0.0;
    for (int k = 0; k < GMMFAST_ROW_BLOCK; k++)
        s += v[k];
    return s;
}

/* sq_norm[i] = ||(x_i - mu) U||^2 for the rows of n_blocks blocks, from diff = x - mu.
 * Coordinate j of the whitened row needs only the differences 0..j: D(D+1)/2 multiply-adds
 * per row. Two blocks at a time, for two independent chains of multiply-adds. */
static inline void gmmfast_whiten_blocks(const double *diff, ptrdiff_t stride,
                                         ptrdiff_t n_blocks, ptrdiff_t d, const double *U,
                                         double *sq_norm)
{
    ptrdiff_t b = 0;
    for (; b + 2 <= n_blocks; b += 2) {
        const double *p = diff + b * GMMFAST_ROW_BLOCK;
        gmmfast_rows total0 = {0.0}, total1 = {0.0};
        for (ptrdiff_t j = 0; j < d; j++) {
            gmmfast_rows y0 = U[j] * GMMFAST_LOAD(p);
            gmmfast_rows y1 = U[j] * GMMFAST_LOAD(p + GMMFAST_ROW_BLOCK);
            for (ptrdiff_t l = 1; l <= j; l++) {
                double u = U[l * d + j];
                y0 += u * GMMFAST_LOAD(p + l * stride);
                y1 += u * GMMFAST_LOAD(p + l * stride + GMMFAST_ROW_BLOCK);
            }
            total0 += y0 * y0;
            total1 += y1 * y1;
        }
        GMMFAST_STORE(sq_norm + b * GMMFAST_ROW_BLOCK, total0);
        GMMFAST_STORE(sq_norm + (b + 1) * GMMFAST_ROW_BLOCK, total1);
    }
    if (b < n_blocks) {
        const double *p = diff + b * GMMFAST_ROW_BLOCK;
        gmmfast_rows total = {0.0};
        for (ptrdiff_t j = 0; j < d; j++) {
            gmmfast_rows y = U[j] * GMMFAST_LOAD(p);
            for (ptrdiff_t l = 1; l <= j; l++)
                y += U[l * d + j] * GMMFAST_LOAD(p + l * stride);
            total += y * y;
        }
        GMMFAST_STORE(sq_norm + b * GMMFAST_ROW_BLOCK, total);
    }
}

/* sq_norm[i] = sum_j ((x[j][i] - mean[j]) * inv_std[j])^2 for the rows of n_blocks blocks
 * (diagonal covariances): the running sum stays in a register instead of going back to
 * memory once per feature. */
static inline void gmmfast_diag_blocks(const double *xt, ptrdiff_t stride, ptrdiff_t n_blocks,
                                       ptrdiff_t d, const double *mean, const double *inv_std,
                                       double *sq_norm)
{
    for (ptrdiff_t b = 0; b < n_blocks; b++) {
        const double *p = xt + b * GMMFAST_ROW_BLOCK;
        gmmfast_rows total = {0.0};
        for (ptrdiff_t j = 0; j < d; j++) {
            gmmfast_rows t = (GMMFAST_LOAD(p + j * stride) - mean[j]) * inv_std[j];
            total += t * t;
        }
        GMMFAST_STORE(sq_norm + b * GMMFAST_ROW_BLOCK, total);
    }
}

/* diff = x - shift and wd = r * diff for the rows of n_blocks blocks; sums[j] += sum of wd
 * over those rows. Two blocks at a time, each with its own partial sum. */
static inline void gmmfast_weighted_differences(const double *xt, ptrdiff_t stride,
                                                ptrdiff_t n_blocks, ptrdiff_t d,
                                                const double *r, const double *shift,
                                                double *diff, double *wd, double *sums)
{
    for (ptrdiff_t j = 0; j < d; j++) {
        const double *x = xt + j * stride;
        double *dj = diff + j * stride, *wj = wd + j * stride;
        gmmfast_rows sum0 = {0.0}, sum1 = {0.0};
        ptrdiff_t b = 0;
        for (; b + 2 <= n_blocks; b += 2) {
            ptrdiff_t i = b * GMMFAST_ROW_BLOCK, k = i + GMMFAST_ROW_BLOCK;
            gmmfast_rows t0 = GMMFAST_LOAD(x + i) - shift[j];
            gmmfast_rows t1 = GMMFAST_LOAD(x + k) - shift[j];
            gmmfast_rows w0 = GMMFAST_LOAD(r + i) * t0, w1 = GMMFAST_LOAD(r + k) * t1;
            GMMFAST_STORE(dj + i, t0);
            GMMFAST_STORE(dj + k, t1);
            GMMFAST_STORE(wj + i, w0);
            GMMFAST_STORE(wj + k, w1);
            sum0 += w0;
            sum1 += w1;
        }
        if (b < n_blocks) {
            ptrdiff_t i = b * GMMFAST_ROW_BLOCK;
            gmmfast_rows t = GMMFAST_LOAD(x + i) - shift[j];
            gmmfast_rows w = GMMFAST_LOAD(r + i) * t;
            GMMFAST_STORE(dj + i, t);
            GMMFAST_STORE(wj + i, w);
            sum0 += w;
        }
        sums[j] += gmmfast_hsum(sum0 + sum1);
    }
}

/* C[j * d + l] += sum_i wd[j][i] * diff[l][i] for j <= l over the rows of n_blocks blocks.
 * Tiles of 2 x 4 entries: 6 loads for 8 independent multiply-adds. Tiles that cross the
 * diagonal or the last feature compute a few products that are then dropped, so the inner
 * loop has no branch (out-of-range rows read the last feature's row instead). */
static inline void gmmfast_scatter_blocks(const double *wd, const double *diff,
                                          ptrdiff_t stride, ptrdiff_t n_blocks, ptrdiff_t d,
                                          double *C)
{
    for (ptrdiff_t j0 = 0; j0 < d; j0 += 2) {
        const double *w0 = wd + j0 * stride;
        const double *w1 = wd + (j0 + 1 < d ? j0 + 1 : j0) * stride;
        for (ptrdiff_t l0 = j0 - j0 % 4; l0 < d; l0 += 4) {
            const double *q[4];
            for (int t = 0; t < 4; t++)
                q[t] = diff + (l0 + t < d ? l0 + t : d - 1) * stride;
            gmmfast_rows a00 = {0.0}, a01 = {0.0}, a02 = {0.0}, a03 = {0.0};
            gmmfast_rows a10 = {0.0}, a11 = {0.0}, a12 = {0.0}, a13 = {0.0};
            for (ptrdiff_t b = 0; b < n_blocks; b++) {
                ptrdiff_t i = b * GMMFAST_ROW_BLOCK;
                gmmfast_rows x0 = GMMFAST_LOAD(w0 + i), x1 = GMMFAST_LOAD(w1 + i);
                gmmfast_rows y0 = GMMFAST_LOAD(q[0] + i), y1 = GMMFAST_LOAD(q[1] + i);
                gmmfast_rows y2 = GMMFAST_LOAD(q[2] + i), y3 = GMMFAST_LOAD(q[3] + i);
                a00 += x0 * y0; a01 += x0 * y1; a02 += x0 * y2; a03 += x0 * y3;
                a10 += x1 * y0; a11 += x1 * y1; a12 += x1 * y2; a13 += x1 * y3;
            }
            gmmfast_rows tile[2][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}};
            for (int s = 0; s < 2; s++)
                for (int t = 0; t < 4; t++) {
                    ptrdiff_t j = j0 + s, l = l0 + t;
                    if (j < d && l < d && j <= l)
                        C[j * d + l] += gmmfast_hsum(tile[s][t]);
                }
        }
    }
}

#undef GMMFAST_LOAD
#undef GMMFAST_STORE

#else /* plain loops, same results up to the order of additions */

static inline void gmmfast_whiten_blocks(const double *diff, ptrdiff_t stride,
                                         ptrdiff_t n_blocks, ptrdiff_t d, const double *U,
                                         double *sq_norm)
{
    for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROW_BLOCK; i++) {
        double total = 0.0;
        for (ptrdiff_t j = 0; j < d; j++) {
            double y = 0.0;
            for (ptrdiff_t l = 0; l <= j; l++)
                y += U[l * d + j] * diff[l * stride + i];
            total += y * y;
        }
        sq_norm[i] = total;
    }
}

static inline void gmmfast_diag_blocks(const double *xt, ptrdiff_t stride, ptrdiff_t n_blocks,
                                       ptrdiff_t d, const double *mean, const double *inv_std,
                                       double *sq_norm)
{
    for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROW_BLOCK; i++) {
        double total = 0.0;
        for (ptrdiff_t j = 0; j < d; j++) {
            double t = (xt[j * stride + i] - mean[j]) * inv_std[j];
            total += t * t;
        }
        sq_norm[i] = total;
    }
}

static inline void gmmfast_weighted_differences(const double *xt, ptrdiff_t stride,
                                                ptrdiff_t n_blocks, ptrdiff_t d,
                                                const double *r, const double *shift,
                                                double *diff, double *wd, double *sums)
{
    for (ptrdiff_t j = 0; j < d; j++) {
        double sum = 0.0;
        for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROW_BLOCK; i++) {
            diff[j * stride + i] = xt[j * stride + i] - shift[j];
            wd[j * stride + i] = r[i] * diff[j * stride + i];
            sum += wd[j * stride + i];
        }
        sums[j] += sum;
    }
}

static inline void gmmfast_scatter_blocks(const double *wd, const double *diff,
                                          ptrdiff_t stride, ptrdiff_t n_blocks, ptrdiff_t d,
                                          double *C)
{
    for (ptrdiff_t j = 0; j < d; j++)
        for (ptrdiff_t l = j; l < d; l++) {
            double s = 0.0;
            for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROW_BLOCK; i++)
                s += wd[j * stride + i] * diff[l * stride + i];
            C[j * d + l] += s;
        }
}

#endif

#endif /* GMMFAST_BLOCKED_H */
