/* test_convert.c - bulk f16/bf16 <-> f32 (kernels/cpu/convert.c) against the scalar kcommon.h
 * converters (bit for bit) and against known IEEE values: every f16 pattern, rounding ties,
 * overflow to inf, subnormals, NaN. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "testutil.h"

static int is_nan16(uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu); }
static int is_nan32(uint32_t u) { return (u & 0x7fffffffu) > 0x7f800000u; }

/* All 65536 f16 patterns through the bulk path: equal to the scalar path bit for bit, equal to
 * the exact value (checked independently with ldexp), and back to the same pattern (NaNs come
 * back quieted, as torch does). Offsets 0..16 exercise the vector body and the scalar tails. */
START_TEST(test_f16_all_patterns) {
    uint16_t *h = malloc(65536 * 2 + 64), *back = malloc(65536 * 2 + 64);
    float *f = malloc(65536 * 4 + 64), *fr = malloc(65536 * 4 + 64);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    for (int off = 0; off < 3; off++) {
        size_t n = 65536 - (size_t)off * 7;
        dk_f16_to_f32_n(f, h + off, n);
        dk_f16_to_f32_n_ref(fr, h + off, n);
        ck_assert_msg(memcmp(f, fr, n * 4) == 0, "f16->f32 bulk differs from scalar (offset %d)", off);
    }
    dk_f16_to_f32_n(f, h, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        uint32_t e = (i >> 10) & 31, m = i & 1023;
        double v = e == 0 ? ldexp((double)m, -24) : e < 31 ? ldexp(1024.0 + m, (int)e - 25) : (m ? NAN : INFINITY);
        if (i & 0x8000) v = -v;
        if (isnan(v)) ck_assert_msg(isnan(f[i]), "pattern %04x should be NaN", i);
        else ck_assert_msg((double)f[i] == v && !signbit(f[i]) == !signbit(v), "pattern %04x: %g != %g", i, f[i], v);
    }
    dk_f32_to_f16_n(back, f, 65536);
    for (uint32_t i = 0; i < 65536; i++) {
        if (is_nan16((uint16_t)i)) ck_assert_msg(is_nan16(back[i]) && (back[i] | 0x200u) == (i | 0x200u),
                                                 "NaN %04x -> %04x", i, back[i]);
        else ck_assert_msg(back[i] == i, "round trip %04x -> %04x", i, back[i]);
    }
    free(h), free(back), free(f), free(fr);
}
END_TEST

/* f32 -> f16 edge cases: (input, expected f16 bits) from the IEEE definition. */
START_TEST(test_f32_to_f16_edges) {
    static const struct { float x; uint16_t want; } cases[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},              /* below the midpoint to 65536: stays max finite */
        {65520.0f, 0x7c00},               /* exact tie with odd mantissa 0x3ff: rounds up to inf */
        {1e10f, 0x7c00}, {-1e10f, 0xfc00}, {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
        {1.0f + 1.0f / 2048, 0x3c00},     /* tie between 0x3c00 (even) and 0x3c01: down */
        {1.0f + 3.0f / 2048, 0x3c02},     /* tie between 0x3c01 and 0x3c02 (even): up */
        {1.0f + 1.0f / 2048 + 1.0f / 65536, 0x3c01}, /* just above the tie: up */
        {5.9604644775390625e-8f, 0x0001}, /* smallest subnormal 2^-24 */
        {2.98023223876953125e-8f, 0x0000},/* 2^-25: tie between 0 and 1, even is 0 */
        {4.470348358154297e-8f, 0x0001},  /* 1.5 * 2^-25 rounds to 2^-24 */
        {8.940696716308594e-8f, 0x0002},  /* 1.5 * 2^-24: tie between 1 and 2, even 2 */
        {6.097555160522461e-5f, 0x03ff},  /* largest subnormal */
        {6.103515625e-5f, 0x0400},        /* smallest normal */
        {1e-30f, 0x0000}, {-1e-30f, 0x8000}, {-0.0f, 0x8000},
    };
    size_t n = sizeof cases / sizeof cases[0];
    float x[64];
    uint16_t got[64];
    for (size_t i = 0; i < 64; i++) x[i] = cases[i % n].x; /* fill a full vector body too */
    dk_f32_to_f16_n(got, x, 64);
    for (size_t i = 0; i < 64; i++) {
        ck_assert_msg(got[i] == cases[i % n].want, "f16(%.10g) = %04x, want %04x", (double)x[i], got[i], cases[i % n].want);
        ck_assert_uint_eq(dk_f32_to_f16(x[i]), cases[i % n].want);
    }
    /* NaNs: quiet and signalling, both signs, stay NaN with the payload's top bits */
    uint32_t nans[4] = {0x7fc00000u, 0x7f800001u, 0xffa00000u, 0x7fbfe000u};
    for (int i = 0; i < 4; i++) {
        float v[16];
        uint16_t o[16];
        for (int j = 0; j < 16; j++) memcpy(&v[j], &nans[i], 4);
        dk_f32_to_f16_n(o, v, 16);
        ck_assert_msg(is_nan16(o[0]) && o[0] == dk_f32_to_f16(v[0]), "NaN %08x -> %04x", nans[i], o[0]);
    }
}
END_TEST

/* bf16: ties, overflow, subnormals (kept, not flushed), NaN, and a sweep of random and
 * structured bit patterns equal to the scalar converter. */
START_TEST(test_bf16_edges_and_sweep) {
    static const struct { uint32_t x; uint16_t want; } cases[] = {
        {0x3f800000u, 0x3f80}, {0x3f808000u, 0x3f80}, /* tie, even stays */
        {0x3f818000u, 0x3f82},                       /* tie, odd rounds up */
        {0x3f808001u, 0x3f81},                       /* above tie */
        {0x7f7fffffu, 0x7f80},                       /* FLT_MAX rounds to inf */
        {0x7f7f7fffu, 0x7f7f},                       /* just below: stays finite */
        {0x7f800000u, 0x7f80}, {0xff800000u, 0xff80},
        {0x00000001u, 0x0000}, {0x00008000u, 0x0000}, {0x00018000u, 0x0002}, /* subnormal ties */
        {0x007fffffu, 0x0080},                       /* largest subnormal rounds to smallest normal */
        {0x80000000u, 0x8000},
        {0x7f800001u, 0x7fc0}, {0xffc00000u, 0xffc0}, /* NaN quieted */
    };
    size_t n = sizeof cases / sizeof cases[0];
    float x[48];
    uint16_t got[48];
    for (size_t i = 0; i < 48; i++) memcpy(&x[i], &cases[i % n].x, 4);
    dk_f32_to_bf16_n(got, x, 48);
    for (size_t i = 0; i < 48; i++)
        ck_assert_msg(got[i] == cases[i % n].want, "bf16(%08x) = %04x want %04x", cases[i % n].x, got[i], cases[i % n].want);
    /* sweep: every exponent and sign with random mantissas, plus every 16-bit low half of 1.0 */
    size_t m = 1u << 20;
    uint32_t *u = malloc(m * 4);
    uint16_t *a = malloc(m * 2), *b = malloc(m * 2);
    uint32_t s = 12345;
    for (size_t i = 0; i < m; i++) {
        s = s * 1664525u + 1013904223u;
        u[i] = i < 65536 ? (0x3f800000u | (uint32_t)i) : ((uint32_t)(i & 0x1ff) << 23) | (s >> 9);
    }
    dk_f32_to_bf16_n(a, (const float *)u, m);
    dk_f32_to_bf16_n_ref(b, (const float *)u, m);
    ck_assert(memcmp(a, b, m * 2) == 0);
    for (size_t i = 0; i < m; i++)
        if (!is_nan32(u[i])) {
            /* the result is one of the two neighbours and the nearer one */
            float f;
            memcpy(&f, &u[i], 4);
            float r = dk_bf16_to_f32(a[i]);
            uint16_t other = (uint16_t)(a[i] ^ 1u);
            float o = dk_bf16_to_f32(other);
            if (!isinf(r) && !isinf(o)) ck_assert_msg(fabs((double)r - f) <= fabs((double)o - f), "bf16 %08x", u[i]);
        }
    /* all 65536 bf16 patterns to f32 and back */
    float *f = malloc(65536 * 4), *fr = malloc(65536 * 4);
    uint16_t *h = malloc(65536 * 2);
    for (uint32_t i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    dk_bf16_to_f32_n(f, h, 65536);
    dk_bf16_to_f32_n_ref(fr, h, 65536);
    ck_assert(memcmp(f, fr, 65536 * 4) == 0);
    dk_f32_to_bf16_n(a, f, 65536);
    for (uint32_t i = 0; i < 65536; i++)
        ck_assert_msg(a[i] == (is_nan32((uint32_t)i << 16) ? (i | 0x40u) : i), "bf16 round trip %04x -> %04x", i, a[i]);
    free(u), free(a), free(b), free(f), free(fr), free(h);
}
END_TEST

/* Random f32 values across the whole range, large enough to take the threaded path. */
START_TEST(test_bulk_random_matches_scalar) {
    size_t n = 300001;
    float *x = malloc(n * 4), *y = malloc(n * 4), *yr = malloc(n * 4);
    uint16_t *a = malloc(n * 2), *b = malloc(n * 2);
    uint32_t s = 99;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        uint32_t u = s;
        memcpy(&x[i], &u, 4);
    }
    dk_f32_to_f16_n(a, x, n);
    dk_f32_to_f16_n_ref(b, x, n);
    ck_assert(memcmp(a, b, n * 2) == 0);
    dk_f16_to_f32_n(y, a, n);
    dk_f16_to_f32_n_ref(yr, a, n);
    ck_assert(memcmp(y, yr, n * 4) == 0);
    dk_f32_to_bf16_n(a, x, n);
    dk_f32_to_bf16_n_ref(b, x, n);
    ck_assert(memcmp(a, b, n * 2) == 0);
    dk_convert_to_f32(y, a, DK_BF16, n);
    dk_bf16_to_f32_n_ref(yr, a, n);
    ck_assert(memcmp(y, yr, n * 4) == 0);
    free(x), free(y), free(yr), free(a), free(b);
}
END_TEST

static Suite *convert_suite(void) {
    Suite *s = suite_create("convert");
    TCase *tc = da_tcase("convert", "fast", 30);
    tcase_add_test(tc, test_f16_all_patterns);
    tcase_add_test(tc, test_f32_to_f16_edges);
    tcase_add_test(tc, test_bf16_edges_and_sweep);
    tcase_add_test(tc, test_bulk_random_matches_scalar);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(convert_suite)
