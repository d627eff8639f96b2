/* The E-step's elementary functions, without libm, in float64 (names ending _f64) and
 * float32 (_f32); the functions themselves are in src/_fastmath_kernels.h, written once for
 * both types. Used by src/_em.pyx on whole chunks.
 *
 * exp_or_zero(x, floor): one exponential per (row, component) is the E-step's largest
 * non-BLAS cost, and libm's exp is a scalar call that stops the loop around it from
 * vectorising. This exp has no branch or errno (and, but for AVX-512's, no table):
 * Cody-Waite reduction x = n ln2 + r (n ln2_hi exact), a Taylor polynomial on
 * |r| <= ln2/2 and 2^n built in the exponent bits. For floor <= x <= 0; exactly 0 below
 * the floor or for NaN.
 *   float64: degree 13; <= 7 ulp against numpy.exp for x >= -40 (every responsibility that
 *            can change a statistic), <= 1.4e-14 relative down to the floor (>= -700).
 *   float32: ln 2 split so that n ln2_hi is exact for |n| < 512 and n ln2_lo <= 2e-4, whose
 *            factor (1 - n ln2_lo) is exact to 2e-8; degree 7 leaves 5e-9. <= 2 ulp on
 *            [-87, 0] (floor >= -87).
 *   AVX-512: a finer reduction x = (k/16) ln2 + r, |r| <= ln2/32, exp x = 2^floor(k/16)
 *            2^((k mod 16)/16) e^r, the 16 powers 2^(j/16) (correctly rounded) in
 *            registers, picked by a permute, so that degree 7 (float64) or 3 (float32)
 *            suffices; vrndscale rounds to sixteenths and vscalef applies 2^floor(k/16).
 *            A 512-bit operation takes a cycle on Zen 4, so the count of them is the
 *            cost: 16 per register instead of 20 with the degree-13 polynomial (a
 *            chunk's exp_terms ~20 % faster). Measured error <= 0.9 ulp down to the floor
 *            in float64.
 *
 * log_ge1(x): the log of a row's sum of max-shifted exponentials (>= 1: its largest term is
 * 1), once per row; libm's scalar log kept that loop from vectorising, a quarter of a pass
 * on small problems. Ten terms of the atanh series reach 1e-18 in float64, four 2e-9 in
 * float32; measured error <= 2 ulp.
 *
 * exp_terms, row_argmax: a chunk's shifted exponentials with their row maxima and sums, and
 * its most likely components. With AVX-512 a block of rows goes through all components at
 * once, its running maximum, sum or index in registers.
 */
#ifndef GMMFAST_FASTMATH_H
#define GMMFAST_FASTMATH_H

#include <stddef.h>
#include <stdint.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* e as a double without an integer conversion (none vectorises on AVX2): the bits of
 * 2^52 + e, minus 2^52. */
static inline double gmmfast_exponent_value_f64(uint64_t e)
{
    union { uint64_t bits; double value; } u;
    u.bits = 0x4330000000000000ULL + e;
    return u.value - 4503599627370496.0;
}

#define GMMFAST_REAL double
#define GMMFAST_FN(name) gmmfast_##name##_f64
#define GMMFAST_BITS int64_t
#define GMMFAST_UBITS uint64_t
#define GMMFAST_MANTISSA_BITS 52
#define GMMFAST_EXPONENT_BIAS 1023
#define GMMFAST_SQRT_HALF_BITS 0x3fe6a09e667f3bcdULL
#define GMMFAST_EXPONENT_VALUE(e) gmmfast_exponent_value_f64(e)
#define GMMFAST_LOG2E 1.4426950408889634
#define GMMFAST_LN2_HI 6.93147180369123816490e-01
#define GMMFAST_LN2_LO 1.90821492927058770002e-10
#define GMMFAST_LN2 0.6931471805599453
#define GMMFAST_EXP_FIRST (1.0 / 6227020800.0)
#define GMMFAST_EXP_STEPS(STEP)                                                             \
    STEP(1.0 / 479001600.0) STEP(1.0 / 39916800.0) STEP(1.0 / 3628800.0)                    \
    STEP(1.0 / 362880.0) STEP(1.0 / 40320.0) STEP(1.0 / 5040.0) STEP(1.0 / 720.0)           \
    STEP(1.0 / 120.0) STEP(1.0 / 24.0) STEP(1.0 / 6.0) STEP(0.5) STEP(1.0) STEP(1.0)
#define GMMFAST_LOG_FIRST (1.0 / 21.0)
#define GMMFAST_LOG_STEPS(STEP)                                                             \
    STEP(1.0 / 19.0) STEP(1.0 / 17.0) STEP(1.0 / 15.0) STEP(1.0 / 13.0) STEP(1.0 / 11.0)    \
    STEP(1.0 / 9.0) STEP(1.0 / 7.0) STEP(1.0 / 5.0) STEP(1.0 / 3.0)
#if defined(__AVX512F__)
#define GMMFAST_V __m512d
#define GMMFAST_MASK __mmask8
#define GMMFAST_LANES 8
#define GMMFAST_V_(op) _mm512_##op##_pd
#define GMMFAST_V_CMP _mm512_cmp_pd_mask
/* 2^(j/16), j = 0..15, correctly rounded: two registers, one vpermt2pd. */
#define GMMFAST_EXP16_TABLE                                                                 \
    0x1.0000000000000p+0, 0x1.0b5586cf9890fp+0, 0x1.172b83c7d517bp+0, 0x1.2387a6e756238p+0, \
    0x1.306fe0a31b715p+0, 0x1.3dea64c123422p+0, 0x1.4bfdad5362a27p+0, 0x1.5ab07dd485429p+0, \
    0x1.6a09e667f3bcdp+0, 0x1.7a11473eb0187p+0, 0x1.8ace5422aa0dbp+0, 0x1.9c49182a3f090p+0, \
    0x1.ae89f995ad3adp+0, 0x1.c199bdd85529cp+0, 0x1.d5818dcfba487p+0, 0x1.ea4afa2a490dap+0
#define GMMFAST_EXP16_LOOKUP(table, index)                                                 \
    _mm512_permutex2var_pd(_mm512_loadu_pd(table), _mm512_castpd_si512(index),              \
                           _mm512_loadu_pd((table) + 8))
/* k/16 + 1.5 * 2^48 holds k in its low mantissa bits (one unit there is 1/16). */
#define GMMFAST_EXP16_SHIFTER 0x1.8p48
/* (e^r - 1) / r to degree 6: |r|^8 / 8! <= 1.2e-18 on |r| <= ln2/32. */
#define GMMFAST_EXP16_FIRST (1.0 / 5040.0)
#define GMMFAST_EXP16_STEPS(STEP) \
    STEP(1.0 / 720.0) STEP(1.0 / 120.0) STEP(1.0 / 24.0) STEP(1.0 / 6.0) STEP(0.5) STEP(1.0)
#define GMMFAST_BLEND_INDEX(mask, best, c) \
    _mm512_mask_blend_epi64(mask, best, _mm512_set1_epi64(c))
#define GMMFAST_STORE_INDEX(labels, lanes, best) _mm512_mask_storeu_epi64(labels, lanes, best)
#endif
#include "_fastmath_kernels.h"

#if defined(__AVX512F__)
/* float32 labels are blended as 32-bit indices (16 per register) and widened to int64 in
 * two halves on the way out. */
static inline void gmmfast_store_index_f32(long long *labels, __mmask16 lanes, __m512i best)
{
    _mm512_mask_storeu_epi64(labels, (__mmask8) lanes,
                             _mm512_cvtepi32_epi64(_mm512_castsi512_si256(best)));
    _mm512_mask_storeu_epi64(labels + 8, (__mmask8) (lanes >> 8),
                             _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(best, 1)));
}
#endif

#define GMMFAST_REAL float
#define GMMFAST_FN(name) gmmfast_##name##_f32
#define GMMFAST_BITS int32_t
#define GMMFAST_UBITS uint32_t
#define GMMFAST_MANTISSA_BITS 23
#define GMMFAST_EXPONENT_BIAS 127
#define GMMFAST_SQRT_HALF_BITS 0x3f3504f3u
/* e < 2^8 here: its int32 -> float conversion vectorises everywhere. */
#define GMMFAST_EXPONENT_VALUE(e) ((float) (int32_t) (e))
#define GMMFAST_LOG2E 1.44269504088896341f
#define GMMFAST_LN2_HI 0.693145751953125f
#define GMMFAST_LN2_LO 1.428606765330187045e-06f
#define GMMFAST_LN2 0.693147180559945f
#define GMMFAST_EXP_FIRST (1.0f / 5040.0f)
#define GMMFAST_EXP_STEPS(STEP)                                                             \
    STEP(1.0f / 720.0f) STEP(1.0f / 120.0f) STEP(1.0f / 24.0f) STEP(1.0f / 6.0f)           \
    STEP(0.5f) STEP(1.0f) STEP(1.0f)
#define GMMFAST_LOG_FIRST (1.0f / 9.0f)
#define GMMFAST_LOG_STEPS(STEP) STEP(1.0f / 7.0f) STEP(1.0f / 5.0f) STEP(1.0f / 3.0f)
#if defined(__AVX512F__)
#define GMMFAST_V __m512
#define GMMFAST_MASK __mmask16
#define GMMFAST_LANES 16
#define GMMFAST_V_(op) _mm512_##op##_ps
#define GMMFAST_V_CMP _mm512_cmp_ps_mask
/* 2^(j/16) rounded to float: one register, one vpermps. */
#define GMMFAST_EXP16_TABLE                                                                 \
    0x1.000000p+0f, 0x1.0b5586p+0f, 0x1.172b84p+0f, 0x1.2387a6p+0f, 0x1.306fe0p+0f,         \
    0x1.3dea64p+0f, 0x1.4bfdaep+0f, 0x1.5ab07ep+0f, 0x1.6a09e6p+0f, 0x1.7a1148p+0f,         \
    0x1.8ace54p+0f, 0x1.9c4918p+0f, 0x1.ae89fap+0f, 0x1.c199bep+0f, 0x1.d5818ep+0f,         \
    0x1.ea4afap+0f
#define GMMFAST_EXP16_LOOKUP(table, index) \
    _mm512_permutexvar_ps(_mm512_castps_si512(index), _mm512_loadu_ps(table))
#define GMMFAST_EXP16_SHIFTER 0x1.8p19f
/* (e^r - 1) / r to degree 2: |r|^4 / 4! <= 9.2e-9 (0.08 ulp) on |r| <= ln2/32. */
#define GMMFAST_EXP16_FIRST (1.0f / 6.0f)
#define GMMFAST_EXP16_STEPS(STEP) STEP(0.5f) STEP(1.0f)
#define GMMFAST_BLEND_INDEX(mask, best, c) \
    _mm512_mask_blend_epi32(mask, best, _mm512_set1_epi32((int) (c)))
#define GMMFAST_STORE_INDEX(labels, lanes, best) gmmfast_store_index_f32(labels, lanes, best)
#endif
#include "_fastmath_kernels.h"

#endif /* GMMFAST_FASTMATH_H */
