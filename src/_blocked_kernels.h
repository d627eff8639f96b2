/* The kernels of src/_blocked.h for one element type. Included once per type, with
 *   GMMFAST_REAL       the element type of the chunk and the parameters (double, float),
 *   GMMFAST_INDEX      the integer type of GMMFAST_REAL's size (shuffle indices),
 *   GMMFAST_ROWS       rows per block: one vector register of GMMFAST_REAL,
 *   GMMFAST_TILE_TRANSPOSE  1 when eight GMMFAST_REAL fill at most one register (the
 *                      transpose's 8 x 8 tiles), else 0,
 *   GMMFAST_FN(name)   the name of a function for this type.
 * Accumulated statistics (sums, scatter) are double whatever the element type: a chunk's
 * partial sums are formed in GMMFAST_REAL and added to them once per call.
 */

#if defined(__GNUC__) || defined(__clang__)

typedef GMMFAST_REAL GMMFAST_FN(rows)
    __attribute__((vector_size(sizeof(GMMFAST_REAL) * GMMFAST_ROWS),
                   aligned(sizeof(GMMFAST_REAL)), may_alias));

#define GMMFAST_LOAD(p) (*(const GMMFAST_FN(rows) *) (p))
#define GMMFAST_STORE(p, v) (*(GMMFAST_FN(rows) *) (p) = (v))

static inline double GMMFAST_FN(hsum)(GMMFAST_FN(rows) v)
{
    double s = 0.0;
    for (int k = 0; k < GMMFAST_ROWS; k++)
        s += v[k];
    return s;
}

/* log_prob[i] = log_norm - ||y_i U - offset||^2 / 2 for the rows of n_blocks blocks, from
 * y = x - centre: with offset = (mu - centre) U this is the log-density about mu, and one
 * centred copy of a chunk serves every component (a pass of x - mu per component was ~10 %
 * of an EM pass at D = 8, K = 16). Coordinate j of the whitened row needs only y_0..y_j:
 * D(D+1)/2 multiply-adds per row, the offset entering as the first one's addend. Four
 * blocks at a time, for four independent chains of multiply-adds (with two, the loop
 * waited on their latency). */
static inline void GMMFAST_FN(whiten_log_prob_blocks)(const GMMFAST_REAL *y, ptrdiff_t stride,
                                                      ptrdiff_t n_blocks, ptrdiff_t d,
                                                      const GMMFAST_REAL *U,
                                                      const GMMFAST_REAL *offset,
                                                      GMMFAST_REAL log_norm,
                                                      GMMFAST_REAL *log_prob)
{
    ptrdiff_t b = 0;
    for (; b + 4 <= n_blocks; b += 4) {
        const GMMFAST_REAL *p = y + b * GMMFAST_ROWS;
        GMMFAST_FN(rows) total0 = {0}, total1 = {0}, total2 = {0}, total3 = {0};
        for (ptrdiff_t j = 0; j < d; j++) {
            GMMFAST_FN(rows) z0 = U[j] * GMMFAST_LOAD(p) - offset[j];
            GMMFAST_FN(rows) z1 = U[j] * GMMFAST_LOAD(p + GMMFAST_ROWS) - offset[j];
            GMMFAST_FN(rows) z2 = U[j] * GMMFAST_LOAD(p + 2 * GMMFAST_ROWS) - offset[j];
            GMMFAST_FN(rows) z3 = U[j] * GMMFAST_LOAD(p + 3 * GMMFAST_ROWS) - offset[j];
            for (ptrdiff_t l = 1; l <= j; l++) {
                GMMFAST_REAL u = U[l * d + j];
                const GMMFAST_REAL *q = p + l * stride;
                z0 += u * GMMFAST_LOAD(q);
                z1 += u * GMMFAST_LOAD(q + GMMFAST_ROWS);
                z2 += u * GMMFAST_LOAD(q + 2 * GMMFAST_ROWS);
                z3 += u * GMMFAST_LOAD(q + 3 * GMMFAST_ROWS);
            }
            total0 += z0 * z0;
            total1 += z1 * z1;
            total2 += z2 * z2;
            total3 += z3 * z3;
        }
        GMMFAST_REAL *out = log_prob + b * GMMFAST_ROWS;
        GMMFAST_STORE(out, log_norm - (GMMFAST_REAL) 0.5 * total0);
        GMMFAST_STORE(out + GMMFAST_ROWS, log_norm - (GMMFAST_REAL) 0.5 * total1);
        GMMFAST_STORE(out + 2 * GMMFAST_ROWS, log_norm - (GMMFAST_REAL) 0.5 * total2);
        GMMFAST_STORE(out + 3 * GMMFAST_ROWS, log_norm - (GMMFAST_REAL) 0.5 * total3);
    }
    for (; b < n_blocks; b++) {
        const GMMFAST_REAL *p = y + b * GMMFAST_ROWS;
        GMMFAST_FN(rows) total = {0};
        for (ptrdiff_t j = 0; j < d; j++) {
            GMMFAST_FN(rows) z = U[j] * GMMFAST_LOAD(p) - offset[j];
            for (ptrdiff_t l = 1; l <= j; l++)
                z += U[l * d + j] * GMMFAST_LOAD(p + l * stride);
            total += z * z;
        }
        GMMFAST_STORE(log_prob + b * GMMFAST_ROWS, log_norm - (GMMFAST_REAL) 0.5 * total);
    }
}

/* z = (x - centre) U, the whitened rows, for the rows of n_blocks blocks (z has xt's
 * layout): tied covariances whiten a chunk once for all components. Coordinate j is a chain
 * of j + 1 multiply-adds; four blocks at a time give four independent chains (one block at
 * a time, each chain would wait on the latency of its previous multiply-add). Each
 * x - centre is formed where it is used, on the adders that the multiply-adds leave idle,
 * instead of in a pass of its own over the chunk. */
static inline void GMMFAST_FN(whiten_rows)(const GMMFAST_REAL *xt, ptrdiff_t stride,
                                           ptrdiff_t n_blocks, ptrdiff_t d,
                                           const GMMFAST_REAL *centre,
                                           const GMMFAST_REAL *U, GMMFAST_REAL *z)
{
    ptrdiff_t b = 0;
    for (; b + 4 <= n_blocks; b += 4) {
        const GMMFAST_REAL *p = xt + b * GMMFAST_ROWS;
        GMMFAST_REAL *out = z + b * GMMFAST_ROWS;
        for (ptrdiff_t j = 0; j < d; j++) {
            GMMFAST_REAL u = U[j], c = centre[0];
            GMMFAST_FN(rows) y0 = u * (GMMFAST_LOAD(p) - c);
            GMMFAST_FN(rows) y1 = u * (GMMFAST_LOAD(p + GMMFAST_ROWS) - c);
            GMMFAST_FN(rows) y2 = u * (GMMFAST_LOAD(p + 2 * GMMFAST_ROWS) - c);
            GMMFAST_FN(rows) y3 = u * (GMMFAST_LOAD(p + 3 * GMMFAST_ROWS) - c);
            for (ptrdiff_t l = 1; l <= j; l++) {
                const GMMFAST_REAL *q = p + l * stride;
                u = U[l * d + j];
                c = centre[l];
                y0 += u * (GMMFAST_LOAD(q) - c);
                y1 += u * (GMMFAST_LOAD(q + GMMFAST_ROWS) - c);
                y2 += u * (GMMFAST_LOAD(q + 2 * GMMFAST_ROWS) - c);
                y3 += u * (GMMFAST_LOAD(q + 3 * GMMFAST_ROWS) - c);
            }
            GMMFAST_STORE(out + j * stride, y0);
            GMMFAST_STORE(out + j * stride + GMMFAST_ROWS, y1);
            GMMFAST_STORE(out + j * stride + 2 * GMMFAST_ROWS, y2);
            GMMFAST_STORE(out + j * stride + 3 * GMMFAST_ROWS, y3);
        }
    }
    for (; b < n_blocks; b++) {
        const GMMFAST_REAL *p = xt + b * GMMFAST_ROWS;
        for (ptrdiff_t j = 0; j < d; j++) {
            GMMFAST_FN(rows) y = U[j] * (GMMFAST_LOAD(p) - centre[0]);
            for (ptrdiff_t l = 1; l <= j; l++)
                y += U[l * d + j] * (GMMFAST_LOAD(p + l * stride) - centre[l]);
            GMMFAST_STORE(z + j * stride + b * GMMFAST_ROWS, y);
        }
    }
}

/* One tile of tied_log_prob_blocks: n_components components by n_blocks blocks of rows (at
 * most GMMFAST_TIED_TILE each), from z's block 0, offsets[0], log_norm[0] and log_prob[0]
 * on. Each sum runs over the features in order, as it would one component at a time. */
static inline __attribute__((always_inline)) void GMMFAST_FN(tied_tile)(
    const GMMFAST_REAL *z, ptrdiff_t stride, ptrdiff_t d, const GMMFAST_REAL *offsets,
    const GMMFAST_REAL *log_norm, GMMFAST_REAL *log_prob, ptrdiff_t out_stride,
    const int n_components, const int n_blocks)
{
    GMMFAST_FN(rows) total[GMMFAST_TIED_TILE][GMMFAST_TIED_TILE];
    for (int c = 0; c < n_components; c++)
        for (int b = 0; b < n_blocks; b++)
            total[c][b] = (GMMFAST_FN(rows)) {0};
    for (ptrdiff_t j = 0; j < d; j++) {
        GMMFAST_FN(rows) zj[GMMFAST_TIED_TILE];
        for (int b = 0; b < n_blocks; b++)
            zj[b] = GMMFAST_LOAD(z + j * stride + b * GMMFAST_ROWS);
        for (int c = 0; c < n_components; c++) {
            GMMFAST_REAL o = offsets[c * d + j];
            for (int b = 0; b < n_blocks; b++) {
                GMMFAST_FN(rows) t = zj[b] - o;
                total[c][b] += t * t;
            }
        }
    }
    for (int c = 0; c < n_components; c++)
        for (int b = 0; b < n_blocks; b++)
            GMMFAST_STORE(log_prob + c * out_stride + b * GMMFAST_ROWS,
                          log_norm[c] - (GMMFAST_REAL) 0.5 * total[c][b]);
}

/* The tiles of one row of tiles: n_components (at most GMMFAST_TIED_TILE) components over
 * the rows of n_blocks blocks. */
static inline __attribute__((always_inline)) void GMMFAST_FN(tied_tile_row)(
    const GMMFAST_REAL *z, ptrdiff_t stride, ptrdiff_t n_blocks, ptrdiff_t d,
    const GMMFAST_REAL *offsets, const GMMFAST_REAL *log_norm, GMMFAST_REAL *log_prob,
    ptrdiff_t out_stride, const int n_components)
{
    ptrdiff_t b = 0;
    for (; b + GMMFAST_TIED_TILE <= n_blocks; b += GMMFAST_TIED_TILE)
        GMMFAST_FN(tied_tile)(z + b * GMMFAST_ROWS, stride, d, offsets, log_norm,
                              log_prob + b * GMMFAST_ROWS, out_stride, n_components,
                              GMMFAST_TIED_TILE);
    for (; b < n_blocks; b++)
        GMMFAST_FN(tied_tile)(z + b * GMMFAST_ROWS, stride, d, offsets, log_norm,
                              log_prob + b * GMMFAST_ROWS, out_stride, n_components, 1);
}

/* log_prob[c * out_stride + i] = log_norm[c] - sum_j (z[j][i] - offsets[c * d + j])^2 / 2
 * for c < n_components and the rows of n_blocks blocks: tied components' log-densities from
 * the whitened rows (offsets[c], component c's whitened mean). A small matrix product's
 * register tiling, GMMFAST_TIED_TILE (4) components by as many blocks at a time: each load
 * of z serves four components and each broadcast offset four blocks, and sixteen
 * independent sums hide the multiply-adds' latency, so that the loop is bound by its
 * subtraction and multiply-add per feature, row block and component (which run on separate
 * units). One component and one block at a time would load z and the offset for every
 * subtraction, and each block's sum would wait on its previous feature. */
static inline void GMMFAST_FN(tied_log_prob_blocks)(const GMMFAST_REAL *z, ptrdiff_t stride,
                                                    ptrdiff_t n_blocks, ptrdiff_t d,
                                                    ptrdiff_t n_components,
                                                    const GMMFAST_REAL *offsets,
                                                    const GMMFAST_REAL *log_norm,
                                                    GMMFAST_REAL *log_prob,
                                                    ptrdiff_t out_stride)
{
    ptrdiff_t c = 0;
    for (; c + GMMFAST_TIED_TILE <= n_components; c += GMMFAST_TIED_TILE)
        GMMFAST_FN(tied_tile_row)(z, stride, n_blocks, d, offsets + c * d, log_norm + c,
                                  log_prob + c * out_stride, out_stride, GMMFAST_TIED_TILE);
    for (; c < n_components; c++)
        GMMFAST_FN(tied_tile_row)(z, stride, n_blocks, d, offsets + c * d, log_norm + c,
                                  log_prob + c * out_stride, out_stride, 1);
}

/* log_prob[i] = log_norm - sum_j ((x[j][i] - mean[j]) * inv_std[j])^2 / 2 for the rows of
 * n_blocks blocks (diagonal covariances): the running sum stays in a register instead of
 * going back to memory once per feature, and the log-density is formed as it is stored
 * (not in a second pass over the chunk). Each term is formed as x * s - mean * s with
 * s = inv_std / sqrt(2), one multiply-add instead of a subtraction and a multiplication,
 * and taken off a sum that starts at log_norm: two multiply-adds per feature, the least a
 * diagonal quadratic form needs, and none after the last feature (the scaled means are
 * computed once per call, for features in slabs of GMMFAST_DIAG_SLAB, whose partial sums go
 * through log_prob). Four blocks at a time: with one, each feature waited for the previous
 * one's multiply-add (its latency bound the loop). */
static inline void GMMFAST_FN(diag_log_prob_blocks)(const GMMFAST_REAL *xt, ptrdiff_t stride,
                                                    ptrdiff_t n_blocks, ptrdiff_t d,
                                                    const GMMFAST_REAL *mean,
                                                    const GMMFAST_REAL *inv_std,
                                                    GMMFAST_REAL log_norm,
                                                    GMMFAST_REAL *log_prob)
{
    GMMFAST_REAL s[GMMFAST_DIAG_SLAB], scaled_mean[GMMFAST_DIAG_SLAB];
    for (ptrdiff_t j0 = 0; j0 < d; j0 += GMMFAST_DIAG_SLAB) {
        ptrdiff_t width = d - j0 < GMMFAST_DIAG_SLAB ? d - j0 : GMMFAST_DIAG_SLAB;
        for (ptrdiff_t j = 0; j < width; j++) {
            s[j] = inv_std[j0 + j] * (GMMFAST_REAL) GMMFAST_SQRT_HALF;
            scaled_mean[j] = mean[j0 + j] * s[j];
        }
        GMMFAST_FN(rows) start = (GMMFAST_FN(rows)) {0} + log_norm; /* in every lane */
        ptrdiff_t b = 0;
        for (; b + 4 <= n_blocks; b += 4) {
            const GMMFAST_REAL *p = xt + j0 * stride + b * GMMFAST_ROWS;
            GMMFAST_REAL *out = log_prob + b * GMMFAST_ROWS;
            GMMFAST_FN(rows) t0 = start, t1 = start, t2 = start, t3 = start;
            if (j0) {
                t0 = GMMFAST_LOAD(out);
                t1 = GMMFAST_LOAD(out + GMMFAST_ROWS);
                t2 = GMMFAST_LOAD(out + 2 * GMMFAST_ROWS);
                t3 = GMMFAST_LOAD(out + 3 * GMMFAST_ROWS);
            }
            for (ptrdiff_t j = 0; j < width; j++) {
                const GMMFAST_REAL *q = p + j * stride;
                GMMFAST_FN(rows) u0 = GMMFAST_LOAD(q) * s[j] - scaled_mean[j];
                GMMFAST_FN(rows) u1 = GMMFAST_LOAD(q + GMMFAST_ROWS) * s[j] - scaled_mean[j];
                GMMFAST_FN(rows) u2 = GMMFAST_LOAD(q + 2 * GMMFAST_ROWS) * s[j] - scaled_mean[j];
                GMMFAST_FN(rows) u3 = GMMFAST_LOAD(q + 3 * GMMFAST_ROWS) * s[j] - scaled_mean[j];
                t0 -= u0 * u0;
                t1 -= u1 * u1;
                t2 -= u2 * u2;
                t3 -= u3 * u3;
            }
            GMMFAST_STORE(out, t0);
            GMMFAST_STORE(out + GMMFAST_ROWS, t1);
            GMMFAST_STORE(out + 2 * GMMFAST_ROWS, t2);
            GMMFAST_STORE(out + 3 * GMMFAST_ROWS, t3);
        }
        for (; b < n_blocks; b++) {
            const GMMFAST_REAL *p = xt + j0 * stride + b * GMMFAST_ROWS;
            GMMFAST_FN(rows) total = j0 ? GMMFAST_LOAD(log_prob + b * GMMFAST_ROWS) : start;
            for (ptrdiff_t j = 0; j < width; j++) {
                GMMFAST_FN(rows) t = GMMFAST_LOAD(p + j * stride) * s[j] - scaled_mean[j];
                total -= t * t;
            }
            GMMFAST_STORE(log_prob + b * GMMFAST_ROWS, total);
        }
    }
}

/* diff = x - shift and wd = r * diff for the rows of n_blocks blocks; sums[j] += sum of wd
 * over those rows. Two blocks at a time, each with its own partial sum. */
static inline void GMMFAST_FN(weighted_differences)(const GMMFAST_REAL *xt, ptrdiff_t stride,
                                                    ptrdiff_t n_blocks, ptrdiff_t d,
                                                    const GMMFAST_REAL *r,
                                                    const GMMFAST_REAL *shift,
                                                    GMMFAST_REAL *diff, GMMFAST_REAL *wd,
                                                    double *sums)
{
    for (ptrdiff_t j = 0; j < d; j++) {
        const GMMFAST_REAL *x = xt + j * stride;
        GMMFAST_REAL *dj = diff + j * stride, *wj = wd + j * stride;
        GMMFAST_FN(rows) sum0 = {0}, sum1 = {0};
        ptrdiff_t b = 0;
        for (; b + 2 <= n_blocks; b += 2) {
            ptrdiff_t i = b * GMMFAST_ROWS, k = i + GMMFAST_ROWS;
            GMMFAST_FN(rows) t0 = GMMFAST_LOAD(x + i) - shift[j];
            GMMFAST_FN(rows) t1 = GMMFAST_LOAD(x + k) - shift[j];
            GMMFAST_FN(rows) w0 = GMMFAST_LOAD(r + i) * t0, w1 = GMMFAST_LOAD(r + k) * t1;
            GMMFAST_STORE(dj + i, t0);
            GMMFAST_STORE(dj + k, t1);
            GMMFAST_STORE(wj + i, w0);
            GMMFAST_STORE(wj + k, w1);
            sum0 += w0;
            sum1 += w1;
        }
        if (b < n_blocks) {
            ptrdiff_t i = b * GMMFAST_ROWS;
            GMMFAST_FN(rows) t = GMMFAST_LOAD(x + i) - shift[j];
            GMMFAST_FN(rows) w = GMMFAST_LOAD(r + i) * t;
            GMMFAST_STORE(dj + i, t);
            GMMFAST_STORE(wj + i, w);
            sum0 += w;
        }
        sums[j] += GMMFAST_FN(hsum)(sum0 + sum1);
    }
}

/* Bit b of the result: block b of r (b < count <= 64) is to be read. With `sparse` and
 * AVX-512, the blocks that hold a non-zero entry (or a NaN), one compare per block;
 * otherwise every block. */
static inline uint64_t GMMFAST_FN(nonzero_blocks)(const GMMFAST_REAL *r, ptrdiff_t count,
                                                  int sparse)
{
#ifdef GMMFAST_NONZERO_LANES
    if (sparse) {
        uint64_t bits = 0;
        for (ptrdiff_t b = 0; b < count; b++)
            bits |= (uint64_t) (GMMFAST_NONZERO_LANES(r + b * GMMFAST_ROWS) != 0) << b;
        return bits;
    }
#endif
    (void) r;
    (void) sparse;
    return count >= 64 ? ~(uint64_t) 0 : ((uint64_t) 1 << count) - 1;
}

/* sums[j] += sum_i r[i] t and squares[j] += sum_i r[i] t^2, t = x[j][i] - shift[j], over
 * the rows of n_blocks blocks: the diagonal statistics of one component; returns the sum
 * of r over those rows (its count). Features go in slabs of GMMFAST_MOMENT_SLAB, each block
 * of rows through all of a slab's features while r's block and the slab's
 * 2 x GMMFAST_MOMENT_SLAB partial sums stay in registers (per chunk at D = 8, K = 16:
 * 3.8 us with the plain loop, 3.4 us one feature at a time with four blocks' partial sums,
 * 3.1 us this way). A slab that passes the last feature reads the last feature again and
 * drops those sums, so that the loop has no branch. `squares` may be NULL: the sums alone
 * (the pooled statistics' per-component part), through a copy of the loop without them.
 *
 * With `scale`, r[i] is a row's unscaled term and its responsibility is r[i] * scale[i]
 * (the pass's row factors): multiplied here as each block is loaded, the same products
 * a separate scaling pass would have stored, so the same bits without that pass over the
 * chunk's K x m terms (nor the count's own pass over them).
 *
 * With `sparse`, blocks whose responsibilities are all zero, which would add zeros, are
 * skipped: found by nonzero_blocks and walked bit by bit, in order (a test per block
 * would mispredict where clusters are shuffled). Under the Bayesian mixture's floor about
 * half of a component's blocks are zero on well-separated clusters; the sums are the same
 * bits either way. */
static inline __attribute__((always_inline)) double GMMFAST_FN(moment_slabs)(
    const GMMFAST_REAL *xt, ptrdiff_t stride, ptrdiff_t n_blocks, ptrdiff_t d,
    const GMMFAST_REAL *r, const GMMFAST_REAL *scale, const GMMFAST_REAL *shift,
    double *sums, double *squares, int sparse, const int with_squares, const int scaled)
{
    double count = 0.0;
    for (ptrdiff_t j0 = 0; j0 < d; j0 += GMMFAST_MOMENT_SLAB) {
        const GMMFAST_REAL *x[GMMFAST_MOMENT_SLAB];
        GMMFAST_REAL c[GMMFAST_MOMENT_SLAB];
        GMMFAST_FN(rows) s[GMMFAST_MOMENT_SLAB], q[GMMFAST_MOMENT_SLAB], n = {0};
        for (int j = 0; j < GMMFAST_MOMENT_SLAB; j++) {
            ptrdiff_t feature = j0 + j < d ? j0 + j : d - 1;
            x[j] = xt + feature * stride;
            c[j] = shift[feature];
            s[j] = (GMMFAST_FN(rows)) {0};
            q[j] = (GMMFAST_FN(rows)) {0};
        }
        for (ptrdiff_t b0 = 0; b0 < n_blocks; b0 += 64) {
            uint64_t bits = GMMFAST_FN(nonzero_blocks)(
                r + b0 * GMMFAST_ROWS, n_blocks - b0 < 64 ? n_blocks - b0 : 64, sparse);
            for (; bits; bits &= bits - 1) {
                ptrdiff_t i = (b0 + __builtin_ctzll(bits)) * GMMFAST_ROWS;
                GMMFAST_FN(rows) rv = GMMFAST_LOAD(r + i);
                if (scaled)
                    rv *= GMMFAST_LOAD(scale + i);
                n += rv;
                for (int j = 0; j < GMMFAST_MOMENT_SLAB; j++) {
                    GMMFAST_FN(rows) t = GMMFAST_LOAD(x[j] + i) - c[j];
                    GMMFAST_FN(rows) w = rv * t;
                    s[j] += w;
                    if (with_squares)
                        q[j] += w * t;
                }
            }
        }
        if (j0 == 0)
            count = GMMFAST_FN(hsum)(n);
        for (int j = 0; j < GMMFAST_MOMENT_SLAB && j0 + j < d; j++) {
            sums[j0 + j] += GMMFAST_FN(hsum)(s[j]);
            if (with_squares)
                squares[j0 + j] += GMMFAST_FN(hsum)(q[j]);
        }
    }
    return count;
}

static inline double GMMFAST_FN(diag_moments_blocks)(const GMMFAST_REAL *xt, ptrdiff_t stride,
                                                     ptrdiff_t n_blocks, ptrdiff_t d,
                                                     const GMMFAST_REAL *r,
                                                     const GMMFAST_REAL *scale,
                                                     const GMMFAST_REAL *shift,
                                                     double *sums, double *squares,
                                                     int sparse)
{
    if (squares && scale)
        return GMMFAST_FN(moment_slabs)(xt, stride, n_blocks, d, r, scale, shift, sums,
                                        squares, sparse, 1, 1);
    if (squares)
        return GMMFAST_FN(moment_slabs)(xt, stride, n_blocks, d, r, NULL, shift, sums,
                                        squares, sparse, 1, 0);
    if (scale)
        return GMMFAST_FN(moment_slabs)(xt, stride, n_blocks, d, r, scale, shift, sums,
                                        NULL, sparse, 0, 1);
    return GMMFAST_FN(moment_slabs)(xt, stride, n_blocks, d, r, NULL, shift, sums, NULL,
                                    sparse, 0, 0);
}

/* C[j * d + l] += sum_i wd[j][i] * diff[l][i] for j <= l over the rows of n_blocks blocks.
 * Tiles of 2 x 4 entries: 6 loads for 8 independent multiply-adds. Tiles that cross the
 * diagonal or the last feature compute a few products that are then dropped, so the inner
 * loop has no branch (out-of-range rows read the last feature's row instead). */
static inline void GMMFAST_FN(scatter_blocks)(const GMMFAST_REAL *wd, const GMMFAST_REAL *diff,
                                              ptrdiff_t stride, ptrdiff_t n_blocks,
                                              ptrdiff_t d, double *C)
{
    for (ptrdiff_t j0 = 0; j0 < d; j0 += 2) {
        const GMMFAST_REAL *w0 = wd + j0 * stride;
        const GMMFAST_REAL *w1 = wd + (j0 + 1 < d ? j0 + 1 : j0) * stride;
        for (ptrdiff_t l0 = j0 - j0 % 4; l0 < d; l0 += 4) {
            const GMMFAST_REAL *q[4];
            for (int t = 0; t < 4; t++)
                q[t] = diff + (l0 + t < d ? l0 + t : d - 1) * stride;
            GMMFAST_FN(rows) a00 = {0}, a01 = {0}, a02 = {0}, a03 = {0};
            GMMFAST_FN(rows) a10 = {0}, a11 = {0}, a12 = {0}, a13 = {0};
            for (ptrdiff_t b = 0; b < n_blocks; b++) {
                ptrdiff_t i = b * GMMFAST_ROWS;
                GMMFAST_FN(rows) x0 = GMMFAST_LOAD(w0 + i), x1 = GMMFAST_LOAD(w1 + i);
                GMMFAST_FN(rows) y0 = GMMFAST_LOAD(q[0] + i), y1 = GMMFAST_LOAD(q[1] + i);
                GMMFAST_FN(rows) y2 = GMMFAST_LOAD(q[2] + i), y3 = GMMFAST_LOAD(q[3] + i);
                a00 += x0 * y0; a01 += x0 * y1; a02 += x0 * y2; a03 += x0 * y3;
                a10 += x1 * y0; a11 += x1 * y1; a12 += x1 * y2; a13 += x1 * y3;
            }
            GMMFAST_FN(rows) tile[2][4] = {{a00, a01, a02, a03}, {a10, a11, a12, a13}};
            for (int s = 0; s < 2; s++)
                for (int t = 0; t < 4; t++) {
                    ptrdiff_t j = j0 + s, l = l0 + t;
                    if (j < d && l < d && j <= l)
                        C[j * d + l] += GMMFAST_FN(hsum)(tile[s][t]);
                }
        }
    }
}

#if GMMFAST_TILE_TRANSPOSE

/* dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols: tiles of 8 x 8
 * transposed in registers (three rounds of two-vector shuffles), the edges one element at a
 * time. Used for a chunk's rows (m x D -> D x m) and the responsibilities (K x m -> m x K):
 * element by element, these copies were ~5 % of an EM pass and ~40 % of predict_proba's
 * kernel time on D = 8, K = 16. */
typedef GMMFAST_REAL GMMFAST_FN(tile_row)
    __attribute__((vector_size(sizeof(GMMFAST_REAL) * 8), aligned(sizeof(GMMFAST_REAL)),
                   may_alias));
#if defined(__clang__) || __GNUC__ >= 12
#define GMMFAST_SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shufflevector(a, b, i0, i1, i2, i3, i4, i5, i6, i7)
#else
typedef GMMFAST_INDEX GMMFAST_FN(tile_index) __attribute__((vector_size(sizeof(GMMFAST_REAL) * 8)));
#define GMMFAST_SHUFFLE8(a, b, i0, i1, i2, i3, i4, i5, i6, i7) \
    __builtin_shuffle(a, b, (GMMFAST_FN(tile_index)) {i0, i1, i2, i3, i4, i5, i6, i7})
#endif

static inline void GMMFAST_FN(transpose_tiles)(const GMMFAST_REAL *src, ptrdiff_t src_stride,
                                               ptrdiff_t rows, ptrdiff_t cols,
                                               GMMFAST_REAL *dst, ptrdiff_t dst_stride,
                                               const GMMFAST_REAL *scale)
{
    ptrdiff_t i0 = 0;
    for (; i0 + 8 <= rows; i0 += 8) {
        ptrdiff_t j0 = 0;
        for (; j0 + 8 <= cols; j0 += 8) {
            GMMFAST_FN(tile_row) r[8], t[8], u[8];
            for (int k = 0; k < 8; k++)
                r[k] = *(const GMMFAST_FN(tile_row) *) (src + (i0 + k) * src_stride + j0);
            /* t[2k], t[2k+1]: rows 2k and 2k+1 interleaved, even and odd columns */
            for (int k = 0; k < 8; k += 2) {
                t[k] = GMMFAST_SHUFFLE8(r[k], r[k + 1], 0, 8, 2, 10, 4, 12, 6, 14);
                t[k + 1] = GMMFAST_SHUFFLE8(r[k], r[k + 1], 1, 9, 3, 11, 5, 13, 7, 15);
            }
            /* u[c], u[c + 4]: columns c and c + 4 of rows 0-3 and of rows 4-7 */
            for (int h = 0; h < 8; h += 4)
                for (int k = 0; k < 2; k++) {
                    u[h + k] = GMMFAST_SHUFFLE8(t[h + k], t[h + k + 2],
                                                0, 1, 8, 9, 4, 5, 12, 13);
                    u[h + k + 2] = GMMFAST_SHUFFLE8(t[h + k], t[h + k + 2],
                                                    2, 3, 10, 11, 6, 7, 14, 15);
                }
            for (int c = 0; c < 4; c++) {
                GMMFAST_FN(tile_row) low = GMMFAST_SHUFFLE8(u[c], u[c + 4],
                                                            0, 1, 2, 3, 8, 9, 10, 11);
                GMMFAST_FN(tile_row) high = GMMFAST_SHUFFLE8(u[c], u[c + 4],
                                                             4, 5, 6, 7, 12, 13, 14, 15);
                if (scale) {
                    low *= scale[j0 + c];
                    high *= scale[j0 + c + 4];
                }
                *(GMMFAST_FN(tile_row) *) (dst + (j0 + c) * dst_stride + i0) = low;
                *(GMMFAST_FN(tile_row) *) (dst + (j0 + c + 4) * dst_stride + i0) = high;
            }
        }
        for (; j0 < cols; j0++)
            for (int k = 0; k < 8; k++)
                dst[j0 * dst_stride + i0 + k] = src[(i0 + k) * src_stride + j0]
                                                * (scale ? scale[j0] : 1);
    }
    for (; i0 < rows; i0++)
        for (ptrdiff_t j = 0; j < cols; j++)
            dst[j * dst_stride + i0] = src[i0 * src_stride + j] * (scale ? scale[j] : 1);
}

#endif /* GMMFAST_TILE_TRANSPOSE */

#undef GMMFAST_SHUFFLE8
#undef GMMFAST_LOAD
#undef GMMFAST_STORE

#else /* plain loops, same results up to the order of additions */

static inline void GMMFAST_FN(whiten_log_prob_blocks)(const GMMFAST_REAL *y, ptrdiff_t stride,
                                                      ptrdiff_t n_blocks, ptrdiff_t d,
                                                      const GMMFAST_REAL *U,
                                                      const GMMFAST_REAL *offset,
                                                      GMMFAST_REAL log_norm,
                                                      GMMFAST_REAL *log_prob)
{
    for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROWS; i++) {
        GMMFAST_REAL total = 0;
        for (ptrdiff_t j = 0; j < d; j++) {
            GMMFAST_REAL z = -offset[j];
            for (ptrdiff_t l = 0; l <= j; l++)
                z += U[l * d + j] * y[l * stride + i];
            total += z * z;
        }
        log_prob[i] = log_norm - (GMMFAST_REAL) 0.5 * total;
    }
}

static inline void GMMFAST_FN(whiten_rows)(const GMMFAST_REAL *xt, ptrdiff_t stride,
                                           ptrdiff_t n_blocks, ptrdiff_t d,
                                           const GMMFAST_REAL *centre,
                                           const GMMFAST_REAL *U, GMMFAST_REAL *z)
{
    for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROWS; i++)
        for (ptrdiff_t j = 0; j < d; j++) {
            GMMFAST_REAL y = 0;
            for (ptrdiff_t l = 0; l <= j; l++)
                y += U[l * d + j] * (xt[l * stride + i] - centre[l]);
            z[j * stride + i] = y;
        }
}

static inline void GMMFAST_FN(tied_log_prob_blocks)(const GMMFAST_REAL *z, ptrdiff_t stride,
                                                    ptrdiff_t n_blocks, ptrdiff_t d,
                                                    ptrdiff_t n_components,
                                                    const GMMFAST_REAL *offsets,
                                                    const GMMFAST_REAL *log_norm,
                                                    GMMFAST_REAL *log_prob,
                                                    ptrdiff_t out_stride)
{
    for (ptrdiff_t c = 0; c < n_components; c++)
        for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROWS; i++) {
            GMMFAST_REAL total = 0;
            for (ptrdiff_t j = 0; j < d; j++) {
                GMMFAST_REAL t = z[j * stride + i] - offsets[c * d + j];
                total += t * t;
            }
            log_prob[c * out_stride + i] = log_norm[c] - (GMMFAST_REAL) 0.5 * total;
        }
}

static inline void GMMFAST_FN(diag_log_prob_blocks)(const GMMFAST_REAL *xt, ptrdiff_t stride,
                                                    ptrdiff_t n_blocks, ptrdiff_t d,
                                                    const GMMFAST_REAL *mean,
                                                    const GMMFAST_REAL *inv_std,
                                                    GMMFAST_REAL log_norm,
                                                    GMMFAST_REAL *log_prob)
{
    for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROWS; i++) {
        GMMFAST_REAL total = log_norm;
        for (ptrdiff_t j = 0; j < d; j++) {
            GMMFAST_REAL s = inv_std[j] * (GMMFAST_REAL) GMMFAST_SQRT_HALF;
            GMMFAST_REAL t = xt[j * stride + i] * s - mean[j] * s;
            total -= t * t;
        }
        log_prob[i] = total;
    }
}

static inline void GMMFAST_FN(weighted_differences)(const GMMFAST_REAL *xt, ptrdiff_t stride,
                                                    ptrdiff_t n_blocks, ptrdiff_t d,
                                                    const GMMFAST_REAL *r,
                                                    const GMMFAST_REAL *shift,
                                                    GMMFAST_REAL *diff, GMMFAST_REAL *wd,
                                                    double *sums)
{
    for (ptrdiff_t j = 0; j < d; j++) {
        GMMFAST_REAL sum = 0;
        for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROWS; i++) {
            diff[j * stride + i] = xt[j * stride + i] - shift[j];
            wd[j * stride + i] = r[i] * diff[j * stride + i];
            sum += wd[j * stride + i];
        }
        sums[j] += sum;
    }
}

static inline double GMMFAST_FN(diag_moments_blocks)(const GMMFAST_REAL *xt, ptrdiff_t stride,
                                                     ptrdiff_t n_blocks, ptrdiff_t d,
                                                     const GMMFAST_REAL *r,
                                                     const GMMFAST_REAL *scale,
                                                     const GMMFAST_REAL *shift,
                                                     double *sums, double *squares,
                                                     int sparse)
{
    GMMFAST_REAL count = 0;
    for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROWS; i++)
        count += scale ? r[i] * scale[i] : r[i];
    for (ptrdiff_t j = 0; j < d; j++) {
        GMMFAST_REAL first = 0, second = 0;
        for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROWS; i++) {
            GMMFAST_REAL t = xt[j * stride + i] - shift[j];
            GMMFAST_REAL w = (scale ? r[i] * scale[i] : r[i]) * t;
            first += w;
            second += w * t;
        }
        sums[j] += first;
        if (squares)
            squares[j] += second;
    }
    (void) sparse;
    return count;
}

static inline void GMMFAST_FN(scatter_blocks)(const GMMFAST_REAL *wd, const GMMFAST_REAL *diff,
                                              ptrdiff_t stride, ptrdiff_t n_blocks,
                                              ptrdiff_t d, double *C)
{
    for (ptrdiff_t j = 0; j < d; j++)
        for (ptrdiff_t l = j; l < d; l++) {
            GMMFAST_REAL s = 0;
            for (ptrdiff_t i = 0; i < n_blocks * GMMFAST_ROWS; i++)
                s += wd[j * stride + i] * diff[l * stride + i];
            C[j * d + l] += s;
        }
}

#endif

#if !(defined(__GNUC__) || defined(__clang__)) || !GMMFAST_TILE_TRANSPOSE

static inline void GMMFAST_FN(transpose_tiles)(const GMMFAST_REAL *src, ptrdiff_t src_stride,
                                               ptrdiff_t rows, ptrdiff_t cols,
                                               GMMFAST_REAL *dst, ptrdiff_t dst_stride,
                                               const GMMFAST_REAL *scale)
{
    for (ptrdiff_t i = 0; i < rows; i++)
        for (ptrdiff_t j = 0; j < cols; j++)
            dst[j * dst_stride + i] = src[i * src_stride + j] * (scale ? scale[j] : 1);
}

#endif

/* dst[j * dst_stride + i] = src[i * src_stride + j] for i < rows, j < cols. */
static inline void GMMFAST_FN(transpose)(const GMMFAST_REAL *src, ptrdiff_t src_stride,
                                         ptrdiff_t rows, ptrdiff_t cols, GMMFAST_REAL *dst,
                                         ptrdiff_t dst_stride)
{
    GMMFAST_FN(transpose_tiles)(src, src_stride, rows, cols, dst, dst_stride, NULL);
}

/* The same with column j of src (row j of dst) multiplied by scale[j]: the
 * responsibilities scaled as they are written out, not in a pass of their own. */
static inline void GMMFAST_FN(transpose_scaled)(const GMMFAST_REAL *src, ptrdiff_t src_stride,
                                                ptrdiff_t rows, ptrdiff_t cols,
                                                GMMFAST_REAL *dst, ptrdiff_t dst_stride,
                                                const GMMFAST_REAL *scale)
{
    GMMFAST_FN(transpose_tiles)(src, src_stride, rows, cols, dst, dst_stride, scale);
}
