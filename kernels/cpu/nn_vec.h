/* nn_vec.h - private helpers of the normalisation / attention / elementwise kernels (norm.c,
 * attention.c, ops.c): a 16-lane f32 vector type (GCC vector extensions, so one source compiles to
 * AVX-512 natively and to SSE2 pairs under PORTABLE=1) and scalar transcendental functions written
 * without libm calls so that `#pragma omp simd` loops around them vectorise.
 *
 * Accuracy (measured in tests/test_nn.c against double-precision libm):
 *   nn_expf   Cody-Waite reduction by ln2 + degree-7 Taylor polynomial on |r| <= ln2/2; max relative
 *             error about 2 ulp for x in [-86.5, 88.72]; results below exp(-86.5) = 2.7e-38 flush to
 *             +0 (no subnormal outputs), x > 88.72 gives +inf, NaN stays NaN.
 *   nn_erfcf  the Chebyshev fit erfc(z) = t*exp(-z^2 + P(t)), t = 1/(1+z/2) (Numerical Recipes 6.2,
 *             fractional error < 1.2e-7 for all z >= 0), reflected for z < 0; GELU is computed as
 *             0.5*x*erfc(-x/sqrt2) so its relative error stays ~1e-6 even deep in the negative tail.
 *
 * Files including this are compiled with fp-contract=fast (pragma below) because -std=c11 turns
 * contraction off and the inner products here need fused multiply-adds to reach FMA peak; that is
 * not -ffast-math: no reassociation, NaN/Inf semantics kept.
 */
#ifndef DK_NN_VEC_H
#define DK_NN_VEC_H

#pragma GCC optimize("fp-contract=fast")
/* dv16 by value in static inline helpers only: the AVX-512 calling-convention note GCC gives for
 * builds without AVX-512 (PORTABLE=1) concerns no real interface */
#pragma GCC diagnostic ignored "-Wpsabi"

#include <stdint.h>
#include <string.h>

/* Always inlined: no dv16 ever crosses a real call boundary (see -Wpsabi above). */
#define DV_INLINE static inline __attribute__((always_inline))

/* 16 floats, unaligned access allowed, may alias float arrays. */
typedef float dv16 __attribute__((vector_size(64), aligned(4), may_alias));

DV_INLINE dv16 dv_load(const float *p) { return *(const dv16 *)p; }
DV_INLINE void dv_store(float *p, dv16 v) { *(dv16 *)p = v; }
DV_INLINE dv16 dv_set1(float s) { return (dv16){0} + s; }

static inline float nn_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t nn_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

#define NN_EXP_LO -86.5f               /* below: flush to 0 (keeps 2^n a normal number) */
#define NN_EXP_HI 88.72283935546875f   /* ln(FLT_MAX) rounded up: above is +inf */

static inline float nn_expf(float x) {
    float xc = x > NN_EXP_HI ? NN_EXP_HI : x;
    xc = xc < NN_EXP_LO ? NN_EXP_LO : xc;
    /* n = round(x / ln2) via the 1.5*2^23 trick: the integer sits in the low mantissa bits of t,
     * so no float->int conversion (UB for NaN) is needed. */
    float t = xc * 1.44269504088896341f + 12582912.0f;
    uint32_t tb = nn_f32_to_bits(t);
    float n = t - 12582912.0f;
    /* r = x - n*ln2 in two steps: 0.693359375 has 9 significant bits so n*C1 is exact */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    /* 2^(n-1) * 2: n reaches 128 at the top of the range, which has no f32 exponent of its own */
    float s = nn_bits_to_f32((tb - 0x4B400000u + 126u) << 23);
    float y = p * s * 2.0f;
    y = x < NN_EXP_LO ? 0.0f : y;
    y = x > NN_EXP_HI ? __builtin_inff() : y;
    return y;
}

/* 16-lane integer vector for masks and bit patterns (GCC vector comparisons yield 0 / -1). */
typedef int32_t di16 __attribute__((vector_size(64), aligned(4), may_alias));

/* Lane select without C++'s vector ?: : m lanes all-ones take a, zero lanes take b. */
DV_INLINE dv16 dv_select(di16 m, dv16 a, dv16 b) { return (dv16)(((di16)a & m) | ((di16)b & ~m)); }

DV_INLINE float dv_hmax(dv16 v) {
    float m = v[0];
    for (int i = 1; i < 16; i++) m = v[i] > m ? v[i] : m;
    return m;
}
DV_INLINE float dv_hsum(dv16 v) {
    /* pairwise, a fixed order */
    for (int w = 8; w >= 1; w /= 2)
        for (int i = 0; i < w; i++) v[i] += v[i + w];
    return v[0];
}

/* nn_expf on 16 lanes: the same algorithm; may differ from the scalar form by 1 ulp where the
 * compiler contracts a different multiply-add pair. */
DV_INLINE dv16 dv_exp(dv16 x) {
    const dv16 hi = dv_set1(NN_EXP_HI), lo = dv_set1(NN_EXP_LO);
    dv16 xc = dv_select(x > hi, hi, x);
    xc = dv_select(xc < lo, lo, xc);
    dv16 t = xc * 1.44269504088896341f + 12582912.0f;
    dv16 n = t - 12582912.0f;
    dv16 r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    dv16 p = dv_set1(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    di16 e = ((di16)t - 0x4B400000 + 126) << 23;
    dv16 y = p * (dv16)e * 2.0f;
    y = dv_select(x < lo, dv_set1(0.0f), y);
    y = dv_select(x > hi, dv_set1(__builtin_inff()), y);
    return y;
}

DV_INLINE dv16 dv_sigmoid(dv16 x) { return 1.0f / (1.0f + dv_exp(-x)); }

/* nn_erfcf on 16 lanes (same fit, same accuracy). */
DV_INLINE dv16 dv_erfc(dv16 z) {
    dv16 a = (dv16)((di16)z & 0x7fffffff);
    dv16 t = 1.0f / (1.0f + 0.5f * a);
    dv16 p = dv_set1(0.17087277f);
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    dv16 e = t * dv_exp(p - a * a);
    return dv_select(z < 0.0f, 2.0f - e, e);
}

/* Apply a 16-lane function to y[0..n) = f(x[0..n)), the last partial vector through a zero-padded
 * stack copy: every element takes the same vector arithmetic whatever n or the thread split. */
#define DV_MAP_TAIL(y, x, n, VF)                                                                   \
    do {                                                                                           \
        size_t dv_full_ = (n) / 16 * 16, dv_rem_ = (n) - dv_full_;                                 \
        if (dv_rem_) {                                                                             \
            float dv_buf_[16] = {0};                                                               \
            memcpy(dv_buf_, (x) + dv_full_, dv_rem_ * sizeof(float));                              \
            dv_store(dv_buf_, VF(dv_load(dv_buf_)));                                               \
            memcpy((y) + dv_full_, dv_buf_, dv_rem_ * sizeof(float));                              \
        }                                                                                          \
    } while (0)

/* 1 / (1 + exp(-x)); exp overflow gives 1/inf = 0, so large negative x is exact 0. */
static inline float nn_sigmoidf(float x) { return 1.0f / (1.0f + nn_expf(-x)); }

/* erfc(z) for any z; relative error ~2e-7 (plus nn_expf's) for z >= 0, and z < 0 uses 2 - erfc(-z). */
static inline float nn_erfcf(float z) {
    float a = z < 0.0f ? -z : z;
    float t = 1.0f / (1.0f + 0.5f * a);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float e = t * nn_expf(p - a * a);
    return z < 0.0f ? 2.0f - e : e;
}

#endif
