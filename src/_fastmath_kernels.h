/* The fast math of src/_fastmath.h for one element type. Included once per type, with
 *   GMMFAST_REAL            the element type (double, float),
 *   GMMFAST_FN(name)        the name of a function for this type,
 *   GMMFAST_BITS, GMMFAST_UBITS  the signed and unsigned integers of GMMFAST_REAL's size,
 *   GMMFAST_MANTISSA_BITS, GMMFAST_EXPONENT_BIAS  the type's IEEE 754 layout,
 *   GMMFAST_SQRT_HALF_BITS  the bits of sqrt(1/2) in the type,
 *   GMMFAST_EXPONENT_VALUE(e)  the unsigned exponent e (< 2^11) as a GMMFAST_REAL,
 *   GMMFAST_LOG2E, GMMFAST_LN2_HI, GMMFAST_LN2_LO, GMMFAST_LN2  constants in the type,
 *   GMMFAST_EXP_FIRST, GMMFAST_EXP_STEPS(STEP)  exp's Taylor coefficients, highest first
 *                           (STEP(c) applies one Horner step with coefficient c),
 *   GMMFAST_LOG_FIRST, GMMFAST_LOG_STEPS(STEP)  log's atanh series coefficients, likewise,
 * and with AVX-512 the vector type and its intrinsics:
 *   GMMFAST_V, GMMFAST_MASK, GMMFAST_LANES  the register type, its mask and its width,
 *   GMMFAST_V_(op), GMMFAST_V_CMP  _mm512_<op>_pd (or _ps) and _mm512_cmp_pd_mask,
 *   GMMFAST_BLEND_INDEX(mask, best, c), GMMFAST_STORE_INDEX(labels, lanes, best)
 *                           the running argmax's index in a __m512i, and its store.
 *   GMMFAST_EXP16_TABLE, GMMFAST_EXP16_LOOKUP(table, index)  2^(j/16) for j < 16, and
 *                           the register of table[low four bits of each lane of index],
 *   GMMFAST_EXP16_SHIFTER   the constant whose sum with k/16 holds k in its low bits,
 *   GMMFAST_EXP16_FIRST, GMMFAST_EXP16_STEPS(STEP)  (e^r - 1) / r's Taylor coefficients.
 *
 * It undefines them all at its end, ready for the next type.
 *
 * Every loop here runs over the rows of a chunk with unit stride; entries are
 * component-major, lp[c * m + i] for component c and row i. Nothing branches on the data
 * and nothing calls libm, so the compiler vectorises the plain loops.
 */

/* exp(x) for floor <= x <= 0, exactly 0 below the floor or for NaN (see src/_fastmath.h
 * for the scheme). The low part of ln 2 is applied as the factor (1 - n ln2_lo) rather
 * than subtracted from r: the build's -fassociative-math would fold that subtraction into
 * one rounded n ln2 and lose up to 300 ulp. */
static inline GMMFAST_REAL GMMFAST_FN(exp_or_zero)(GMMFAST_REAL x, GMMFAST_REAL floor_)
{
    /* Clamped so that the arithmetic below stays finite; NaN also maps to the floor. */
    GMMFAST_REAL keep = x >= floor_ ? (GMMFAST_REAL) 1 : (GMMFAST_REAL) 0;
    GMMFAST_REAL clamped = x > floor_ ? x : floor_;
    GMMFAST_REAL nd = clamped * GMMFAST_LOG2E - (GMMFAST_REAL) 0.5;
    int32_t n = (int32_t) nd;  /* round(clamped / ln 2): truncation of a value <= 0 */
    GMMFAST_REAL r = clamped - n * GMMFAST_LN2_HI;
    GMMFAST_REAL p = GMMFAST_EXP_FIRST;
#define GMMFAST_HORNER(c) p = p * r + (c);
    GMMFAST_EXP_STEPS(GMMFAST_HORNER)
#undef GMMFAST_HORNER
    union { GMMFAST_BITS bits; GMMFAST_REAL value; } two_to_n;
    two_to_n.bits = (GMMFAST_BITS) (n + GMMFAST_EXPONENT_BIAS) << GMMFAST_MANTISSA_BITS;
    /* A multiplication by 0 or 1 instead of a select: GCC vectorises this form. */
    return (p - p * (n * GMMFAST_LN2_LO)) * two_to_n.value * keep;
}

/* log x for x >= 1: x = 2^e m with m in [sqrt(1/2), sqrt(2)), then
 * log m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...) with s = (m - 1)/(m + 1), |s| <= 0.172.
 * The caller discards the result for x = 0 (a row of zero density). */
static inline GMMFAST_REAL GMMFAST_FN(log_ge1)(GMMFAST_REAL x)
{
    union { GMMFAST_REAL value; GMMFAST_UBITS bits; } u = { x }, m;
    GMMFAST_UBITS offset = u.bits - GMMFAST_SQRT_HALF_BITS;
    GMMFAST_UBITS e = offset >> GMMFAST_MANTISSA_BITS;
    m.bits = u.bits - (e << GMMFAST_MANTISSA_BITS);
    GMMFAST_REAL s = (m.value - 1) / (m.value + 1);
    GMMFAST_REAL s2 = s * s;
    GMMFAST_REAL p = GMMFAST_LOG_FIRST;
#define GMMFAST_HORNER(c) p = p * s2 + (c);
    GMMFAST_LOG_STEPS(GMMFAST_HORNER)
#undef GMMFAST_HORNER
    return GMMFAST_EXPONENT_VALUE(e) * GMMFAST_LN2 + (s + s * s2 * p) * 2;
}

#if defined(__AVX512F__)

/* exp_or_zero for a register (see src/_fastmath.h): kq = k/16, x rounded to sixteenths
 * of ln 2 by vrndscale; r = x - kq ln 2 in two fused multiply-adds; 2^(j/16) from the
 * table by the low four bits of kq + SHIFTER (k mod 16, also for k < 0); vscalef
 * multiplies by 2^floor(kq), with the floor as a zeroing mask. Below the floor (-inf too)
 * or for NaN the arithmetic may overflow or give NaN: the mask discards it. */
static inline GMMFAST_V GMMFAST_FN(exp_vector)(GMMFAST_V x, GMMFAST_V floor_)
{
    static const GMMFAST_REAL table[16] = {GMMFAST_EXP16_TABLE};
    GMMFAST_MASK keep = GMMFAST_V_CMP(x, floor_, _CMP_GE_OQ);  /* false for NaN */
    GMMFAST_V kq = GMMFAST_V_(roundscale)(
        GMMFAST_V_(mul)(x, GMMFAST_V_(set1)(GMMFAST_LOG2E)),
        (4 << 4) | _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    GMMFAST_V index = GMMFAST_V_(add)(kq, GMMFAST_V_(set1)(GMMFAST_EXP16_SHIFTER));
    GMMFAST_V r = GMMFAST_V_(fnmadd)(kq, GMMFAST_V_(set1)(GMMFAST_LN2_HI), x);
    r = GMMFAST_V_(fnmadd)(kq, GMMFAST_V_(set1)(GMMFAST_LN2_LO), r);
    GMMFAST_V q = GMMFAST_V_(set1)(GMMFAST_EXP16_FIRST);
#define GMMFAST_HORNER(c) q = GMMFAST_V_(fmadd)(q, r, GMMFAST_V_(set1)(c));
    GMMFAST_EXP16_STEPS(GMMFAST_HORNER)
#undef GMMFAST_HORNER
    q = GMMFAST_V_(mul)(q, r);  /* e^r - 1 */
    GMMFAST_V power = GMMFAST_EXP16_LOOKUP(table, index);
    return GMMFAST_V_(maskz_scalef)(keep, GMMFAST_V_(fmadd)(power, q, power), kq);
}

/* exp_terms for the rows of one register (those in `lanes`), through all k components at
 * once, so that their maximum and sum stay in registers. */
static inline void GMMFAST_FN(exp_block)(GMMFAST_REAL *lp, ptrdiff_t m, ptrdiff_t k,
                                         GMMFAST_REAL *top, GMMFAST_REAL *total,
                                         GMMFAST_REAL floor_, GMMFAST_MASK lanes)
{
    GMMFAST_V floor_v = GMMFAST_V_(set1)(floor_);
    GMMFAST_V t = GMMFAST_V_(maskz_loadu)(lanes, lp);
    for (ptrdiff_t c = 1; c < k; c++)  /* NaN entries never become the maximum */
        t = GMMFAST_V_(max)(GMMFAST_V_(maskz_loadu)(lanes, lp + c * m), t);
    GMMFAST_V sum = GMMFAST_V_(setzero)();
    for (ptrdiff_t c = 0; c < k; c++) {
        GMMFAST_V term = GMMFAST_FN(exp_vector)(
            GMMFAST_V_(sub)(GMMFAST_V_(maskz_loadu)(lanes, lp + c * m), t), floor_v);
        GMMFAST_V_(mask_storeu)(lp + c * m, lanes, term);
        sum = GMMFAST_V_(add)(sum, term);
    }
    GMMFAST_V_(mask_storeu)(top, lanes, t);
    GMMFAST_V_(mask_storeu)(total, lanes, sum);
}

/* exp_block for two full registers of rows at once: two independent chains of the
 * polynomial's multiply-adds, which one register's leaves waiting on their latency
 * (~7 % of exp_terms). Each lane's arithmetic is exp_block's. */
static inline void GMMFAST_FN(exp_pair)(GMMFAST_REAL *lp, ptrdiff_t m, ptrdiff_t k,
                                        GMMFAST_REAL *top, GMMFAST_REAL *total,
                                        GMMFAST_REAL floor_)
{
    GMMFAST_REAL *lp1 = lp + GMMFAST_LANES;
    GMMFAST_V floor_v = GMMFAST_V_(set1)(floor_);
    GMMFAST_V t0 = GMMFAST_V_(loadu)(lp), t1 = GMMFAST_V_(loadu)(lp1);
    for (ptrdiff_t c = 1; c < k; c++) {  /* NaN entries never become the maximum */
        t0 = GMMFAST_V_(max)(GMMFAST_V_(loadu)(lp + c * m), t0);
        t1 = GMMFAST_V_(max)(GMMFAST_V_(loadu)(lp1 + c * m), t1);
    }
    GMMFAST_V sum0 = GMMFAST_V_(setzero)(), sum1 = GMMFAST_V_(setzero)();
    for (ptrdiff_t c = 0; c < k; c++) {
        GMMFAST_V term0 = GMMFAST_FN(exp_vector)(
            GMMFAST_V_(sub)(GMMFAST_V_(loadu)(lp + c * m), t0), floor_v);
        GMMFAST_V term1 = GMMFAST_FN(exp_vector)(
            GMMFAST_V_(sub)(GMMFAST_V_(loadu)(lp1 + c * m), t1), floor_v);
        GMMFAST_V_(storeu)(lp + c * m, term0);
        GMMFAST_V_(storeu)(lp1 + c * m, term1);
        sum0 = GMMFAST_V_(add)(sum0, term0);
        sum1 = GMMFAST_V_(add)(sum1, term1);
    }
    GMMFAST_V_(storeu)(top, t0);
    GMMFAST_V_(storeu)(top + GMMFAST_LANES, t1);
    GMMFAST_V_(storeu)(total, sum0);
    GMMFAST_V_(storeu)(total + GMMFAST_LANES, sum1);
}

/* row_argmax for the rows of one register, the running maximum and its index in
 * registers: a loop over the rows per component compiled to a branch around a masked
 * store, mispredicted. */
static inline void GMMFAST_FN(argmax_block)(const GMMFAST_REAL *lp, ptrdiff_t m, ptrdiff_t k,
                                            long long *labels, GMMFAST_MASK lanes)
{
    GMMFAST_V top = GMMFAST_V_(maskz_loadu)(lanes, lp);
    __m512i best = _mm512_setzero_si512();
    for (ptrdiff_t c = 1; c < k; c++) {
        GMMFAST_V x = GMMFAST_V_(maskz_loadu)(lanes, lp + c * m);
        GMMFAST_MASK larger = GMMFAST_V_CMP(x, top, _CMP_GT_OQ);
        top = GMMFAST_V_(mask_blend)(larger, top, x);
        best = GMMFAST_BLEND_INDEX(larger, best, c);
    }
    GMMFAST_STORE_INDEX(labels, lanes, best);
}

#endif /* __AVX512F__ */

/* lp is a chunk's (k, m) log-densities: top[i] = max_c lp[c][i],
 * lp[c][i] = exp_or_zero(lp[c][i] - top[i]), total[i] = sum_c lp[c][i] (in order of c). */
static inline void GMMFAST_FN(exp_terms)(GMMFAST_REAL *lp, ptrdiff_t m, ptrdiff_t k,
                                         GMMFAST_REAL *top, GMMFAST_REAL *total,
                                         GMMFAST_REAL floor_)
{
#if defined(__AVX512F__)
    ptrdiff_t i = 0;
    for (; i + 2 * GMMFAST_LANES <= m; i += 2 * GMMFAST_LANES)
        GMMFAST_FN(exp_pair)(lp + i, m, k, top + i, total + i, floor_);
    for (; i + GMMFAST_LANES <= m; i += GMMFAST_LANES)
        GMMFAST_FN(exp_block)(lp + i, m, k, top + i, total + i, floor_,
                              (GMMFAST_MASK) ~(GMMFAST_MASK) 0);
    if (i < m)
        GMMFAST_FN(exp_block)(lp + i, m, k, top + i, total + i, floor_,
                              (GMMFAST_MASK) ((1u << (m - i)) - 1));
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
            GMMFAST_REAL term = GMMFAST_FN(exp_or_zero)(lp[c * m + i] - top[i], floor_);
            lp[c * m + i] = term;
            total[i] += term;
        }
#endif
}

/* labels[i] = the first c of largest lp[c][i] (a NaN only as the first entry, which
 * nothing then beats). */
static inline void GMMFAST_FN(row_argmax)(const GMMFAST_REAL *lp, ptrdiff_t m, ptrdiff_t k,
                                          long long *labels)
{
#if defined(__AVX512F__)
    ptrdiff_t i = 0;
    for (; i + GMMFAST_LANES <= m; i += GMMFAST_LANES)
        GMMFAST_FN(argmax_block)(lp + i, m, k, labels + i, (GMMFAST_MASK) ~(GMMFAST_MASK) 0);
    if (i < m)
        GMMFAST_FN(argmax_block)(lp + i, m, k, labels + i,
                                 (GMMFAST_MASK) ((1u << (m - i)) - 1));
#else
    for (ptrdiff_t i = 0; i < m; i++) {
        ptrdiff_t best = 0;
        for (ptrdiff_t c = 1; c < k; c++)
            best = lp[c * m + i] > lp[best * m + i] ? c : best;
        labels[i] = best;
    }
#endif
}

#undef GMMFAST_REAL
#undef GMMFAST_FN
#undef GMMFAST_BITS
#undef GMMFAST_UBITS
#undef GMMFAST_MANTISSA_BITS
#undef GMMFAST_EXPONENT_BIAS
#undef GMMFAST_SQRT_HALF_BITS
#undef GMMFAST_EXPONENT_VALUE
#undef GMMFAST_LOG2E
#undef GMMFAST_LN2_HI
#undef GMMFAST_LN2_LO
#undef GMMFAST_LN2
#undef GMMFAST_EXP_FIRST
#undef GMMFAST_EXP_STEPS
#undef GMMFAST_LOG_FIRST
#undef GMMFAST_LOG_STEPS
#if defined(__AVX512F__)
#undef GMMFAST_V
#undef GMMFAST_MASK
#undef GMMFAST_LANES
#undef GMMFAST_V_
#undef GMMFAST_V_CMP
#undef GMMFAST_BLEND_INDEX
#undef GMMFAST_STORE_INDEX
#undef GMMFAST_EXP16_TABLE
#undef GMMFAST_EXP16_LOOKUP
#undef GMMFAST_EXP16_SHIFTER
#undef GMMFAST_EXP16_FIRST
#undef GMMFAST_EXP16_STEPS
#endif
