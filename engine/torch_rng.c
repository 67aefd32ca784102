/* torch_rng.c - PyTorch's CPU generator (at::CPUGeneratorImpl over at::mt19937) and its float32
 * randn path (normal_kernel -> normal_fill / normal_fill_16, or normal_distribution<double> for
 * fewer than 16 elements), reproduced bit for bit. Written from the published algorithms
 * (Matsumoto-Nishimura MT19937, Box-Muller); see torch_rng.h for the behaviour mirrored.
 */
#include "torch_rng.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* The reproduction depends on exactly which products are fused: keep the compiler from fusing any
 * a*b+c on its own (-std=c11 already implies this for GCC; gnu11 and clang would not). */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define MT_N 624
#define MT_M 397

void da_torch_rng_seed(da_torch_rng *g, uint64_t seed) {
    g->mt[0] = (uint32_t)(seed & 0xffffffffu);
    for (int i = 1; i < MT_N; i++)
        g->mt[i] = 1812433253u * (g->mt[i - 1] ^ (g->mt[i - 1] >> 30)) + (uint32_t)i;
    g->mti = MT_N;
    g->has_next_double_normal = false;
    g->next_double_normal = 0;
}

static void mt_twist(da_torch_rng *g) {
    uint32_t *s = g->mt;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (s[i] & 0x80000000u) | (s[(i + 1) % MT_N] & 0x7fffffffu);
        uint32_t v = s[(i + MT_M) % MT_N] ^ (y >> 1);
        if (y & 1u) v ^= 0x9908b0dfu;
        s[i] = v;
    }
    g->mti = 0;
}

uint32_t da_torch_rng_u32(da_torch_rng *g) {
    if (g->mti >= MT_N) mt_twist(g);
    uint32_t y = g->mt[g->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t da_torch_rng_u64(da_torch_rng *g) {
    uint32_t hi = da_torch_rng_u32(g);
    uint32_t lo = da_torch_rng_u32(g);
    return ((uint64_t)hi << 32) | lo;
}

/* uniform_real_distribution<float>(0, 1): the low 24 bits of one draw times 2^-24 (exact). */
static float uniform_f32(da_torch_rng *g) {
    return (float)((double)(da_torch_rng_u32(g) & 0xffffffu) * (1.0 / 16777216.0));
}

/* uniform_real_distribution<double>(0, 1): the low 53 bits of a 64-bit draw times 2^-53. */
static double uniform_f64(da_torch_rng *g) {
    return (double)(da_torch_rng_u64(g) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* normal_distribution<double>(0, 1) with the generator's cached second sample. */
static double normal_f64(da_torch_rng *g) {
    if (g->has_next_double_normal) {
        g->has_next_double_normal = false;
        return g->next_double_normal;
    }
    double u1 = uniform_f64(g);
    double u2 = uniform_f64(g);
    double r = sqrt(-2.0 * log1p(-u2));
    double theta = 2.0 * M_PI * u1;
    g->next_double_normal = r * sin(theta);
    g->has_next_double_normal = true;
    return r * cos(theta);
}

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Natural log as torch's x86 kernels compute it in normal_fill (log256_ps of avx_mathfun.h, the
 * Cephes logf polynomial), lane by lane. Every rounding is spelled out: which products torch's
 * build fuses into FMAs was established by comparing against torch bit for bit (see
 * docs/SAMPLERS.md); the rest are separate float multiply and add. Only called with x in (0, 1]. */
static float cephes_logf(float x) {
    const float min_norm = u2f(0x00800000u);
    if (x < min_norm) x = min_norm;
    uint32_t bits = f2u(x);
    int32_t expo = (int32_t)(bits >> 23) - 0x7f;
    x = u2f((bits & 0x807fffffu) | 0x3f000000u); /* mantissa scaled into [0.5, 1) */
    float e = (float)expo + 1.0f;
    float below = x < 0.707106781186547524f ? x : 0.0f; /* x < sqrt(1/2): use 2x - 1, e - 1 */
    x = x - 1.0f;
    if (below != 0.0f) e = e - 1.0f;
    x = x + below;
    float z = x * x;
    float y = 7.0376836292e-2f;
    y = fmaf(y, x, -1.1514610310e-1f);
    y = fmaf(y, x, 1.1676998740e-1f);
    y = fmaf(y, x, -1.2420140846e-1f);
    y = fmaf(y, x, 1.4249322787e-1f);
    y = fmaf(y, x, -1.6668057665e-1f);
    y = fmaf(y, x, 2.0000714765e-1f);
    y = fmaf(y, x, -2.4999993993e-1f);
    y = fmaf(y, x, 3.3333331174e-1f);
    y = y * x;
    y = fmaf(y, z, e * -2.12194440e-4f);
    y = y - z * 0.5f;
    x = x + y;
    x = x + e * 0.693359375f;
    return x;
}

/* sin and cos together as sincos256_ps of avx_mathfun.h (Cephes sinf/cosf: octant reduction by
 * 4/pi with a three-part pi/4, two minimax polynomials, sign fix-ups), for x >= 0. */
static void cephes_sincosf(float x, float *sn, float *cs) {
    uint32_t sign_sin = f2u(x) & 0x80000000u;
    x = fabsf(x);
    int32_t j = (int32_t)(x * 1.27323954473516f); /* 4/pi, truncated */
    j = (j + 1) & ~1;
    float y = (float)j;
    uint32_t swap_sin = (uint32_t)(j & 4) << 29;
    bool sin_poly_is_sin = (j & 2) == 0;
    x = x + y * -0.78515625f;
    x = x + y * -2.4187564849853515625e-4f;
    x = x + y * -3.77489497744594108e-8f;
    uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
    sign_sin ^= swap_sin;
    float z = x * x;
    float c = 2.443315711809948e-5f * z + -1.388731625493765e-3f;
    c = c * z + 4.166664568298827e-2f;
    float cz = c * z;
    c = fmaf(cz, z, -(z * 0.5f));
    c = c + 1.0f;
    float s = -1.9515295891e-4f * z + 8.3321608736e-3f;
    s = fmaf(s, z, -1.6666654611e-1f);
    s = s * z;
    s = fmaf(s, x, x);
    float vs = sin_poly_is_sin ? s : c, vc = sin_poly_is_sin ? c : s;
    *sn = u2f(f2u(vs) ^ sign_sin);
    *cs = u2f(f2u(vc) ^ sign_cos);
}

/* normal_fill_16 as torch's AVX2 / AVX-512 builds run it: Box-Muller on pairs (j, j+8). */
static void normal_fill_16(float *d) {
    const float two_pi = (float)(2.0 * M_PI);
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * cephes_logf(u1));
        float s, c;
        cephes_sincosf(two_pi * u2, &s, &c);
        d[j] = radius * c;
        d[j + 8] = radius * s;
    }
}

/* The scalar template torch's default (non-AVX) CPU kernel runs: C library logf/cosf/sinf, theta
 * = 2.0f * pi<double> * u2 evaluated in double then stored as float. */
static void normal_fill_16_scalar(float *d) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - d[j];
        float u2 = d[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = (float)(2.0 * M_PI * (double)u2);
        d[j] = radius * cosf(theta);
        d[j + 8] = radius * sinf(theta);
    }
}

static void randn_impl(da_torch_rng *g, float *out, size_t numel, void (*fill16)(float *)) {
    if (numel < 16) {
        for (size_t i = 0; i < numel; i++) out[i] = (float)normal_f64(g);
        return;
    }
    for (size_t i = 0; i < numel; i++) out[i] = uniform_f32(g);
    for (size_t i = 0; i + 16 <= numel; i += 16) fill16(out + i);
    if (numel % 16 != 0) {
        /* the last 16 elements are redrawn and transformed again, overlapping finished ones */
        float *tail = out + numel - 16;
        for (int i = 0; i < 16; i++) tail[i] = uniform_f32(g);
        fill16(tail);
    }
}

void da_torch_randn(da_torch_rng *g, float *out, size_t numel) { randn_impl(g, out, numel, normal_fill_16); }

void da_torch_randn_scalar(da_torch_rng *g, float *out, size_t numel) {
    randn_impl(g, out, numel, normal_fill_16_scalar);
}
