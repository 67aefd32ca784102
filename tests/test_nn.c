/* test_nn.c - normalisation (kernels/cpu/norm.c) and elementwise ops (kernels/cpu/ops.c) against
 * their double-precision *_ref twins over SD 1.x shapes and awkward ones, thread-count invariance,
 * the vectorised exp/erf accuracy, and the timestep embedding against values printed by diffusers.
 *
 * Tolerance table (the measured worst case is in brackets; each row's reason):
 *   | op                         | check                 | why                                          |
 *   | groupnorm, layernorm       | max abs 5e-6, cos     | f32 normalise of N(0,1)-scale outputs, stats  |
 *   |                            |   0.9999999           |   in double from shifted f32 sums [7.2e-7]    |
 *   | groupnorm at VAE scale     | same                  | mean 3000: shifted sums + hi/lo mean [7.2e-7] |
 *   | softmax                    | max abs 1e-6          | outputs <= 1, ~2-ulp exp, f32 row sums [1.2e-7]|
 *   | silu, quick_gelu           | rel 2e-6 + abs 1e-30  | nn_expf ~2 ulp, one division [~1e-6]          |
 *   | gelu, geglu, gelu_tanh     | rel 1e-5 + abs 1e-30  | erfc fit 1.2e-7 plus exp(-z^2) (or exp(-2u)), |
 *   |                            |                       |   argument rounded in f32, amplified in the   |
 *   |                            |                       |   far negative tail [2.8e-6]                  |
 *   | add, mul, biases, concat,  | bit-equal             | one correctly rounded f32 op (or a copy)      |
 *   |   upsample                 |                       |                                               |
 *   | scale (x*s+t)              | max abs 2e-6          | one ulp of |x*s| <= 18: fused (native) or two |
 *   |                            |                       |   roundings (PORTABLE) vs double; cancels     |
 *   | timestep embedding         | max abs 1e-5 vs torch | f32 sin/cos of arguments up to 1e3 rad        |
 *   | 1 vs 2 threads             | bit-equal             | fixed per-row / per-group order               |
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#include "convert.h"
#include "nn_vec.h"
#include "norm.h"
#include "ops.h"
#include "testutil.h"

static float *rand_buf(size_t n, unsigned seed, float lo, float hi) {
    float *x = malloc(n * sizeof(float) + 4);
    uint32_t s = seed * 2654435761u + 7;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * (float)(s >> 8) / 16777216.0f;
    }
    return x;
}

/* |got - ref| <= rtol*|ref| + atol everywhere, both finite or both the same non-finite class. */
static void check_rel(const char *label, const float *got, const float *ref, size_t n, double rtol, double atol) {
    for (size_t i = 0; i < n; i++) {
        if (isnan(ref[i])) {
            ck_assert_msg(isnan(got[i]), "%s[%zu]: got %g want NaN", label, i, got[i]);
            continue;
        }
        double e = fabs((double)got[i] - ref[i]);
        ck_assert_msg(e <= rtol * fabs(ref[i]) + atol, "%s[%zu]: got %.9g want %.9g (rel %.3g)", label, i,
                      got[i], ref[i], e / fabs(ref[i]));
    }
}

/* A weight vector of n values in type t (values representable in every type, so f32/f16/bf16
 * runs mean the same thing to the reference). */
static void *make_w(size_t n, dk_wtype t, unsigned seed, float lo, float hi) {
    float *f = rand_buf(n, seed, lo, hi);
    for (size_t i = 0; i < n; i++) f[i] = dk_bf16_to_f32(dk_f32_to_bf16(f[i])); /* bf16 grid is in f16 range here */
    if (t == DK_F32) return f;
    uint16_t *h = malloc(n * 2);
    if (t == DK_F16) dk_f32_to_f16_n(h, f, n);
    else dk_f32_to_bf16_n(h, f, n);
    free(f);
    return h;
}

/* ---- GroupNorm ---- */
typedef struct { size_t N, C, H, W; int G; float eps; int silu, affine; dk_wtype wt; float mean, spread; } gn_case;
static const gn_case gn_cases[] = {
    {1, 320, 64, 64, 32, 1e-5f, 1, 1, DK_F32, 0, 1},     /* UNet down 0 resnet */
    {1, 640, 32, 32, 32, 1e-5f, 1, 1, DK_F16, 0.5f, 2},  /* down 1, f16 affine */
    {2, 1280, 16, 16, 32, 1e-5f, 1, 1, DK_BF16, 0, 1},   /* down 2, CFG batch 2, bf16 affine */
    {1, 1280, 8, 8, 32, 1e-6f, 0, 1, DK_F32, 0, 3},      /* mid block transformer norm */
    {1, 960, 32, 32, 32, 1e-5f, 1, 1, DK_F32, 0, 1},     /* up block after concat */
    {1, 512, 64, 64, 32, 1e-6f, 1, 1, DK_F16, 3000, 5},  /* VAE decoder, large activations */
    {1, 128, 67, 65, 32, 1e-6f, 0, 1, DK_F32, -800, 20}, /* VAE-like, odd spatial */
    {3, 48, 7, 9, 1, 1e-5f, 1, 1, DK_F32, 0, 1},         /* groups 1, batch 3 */
    {1, 30, 5, 5, 3, 1e-5f, 0, 1, DK_BF16, 0, 1},        /* C not a multiple of 16 */
    {2, 64, 1, 1, 32, 1e-5f, 0, 0, DK_F32, 0, 1},        /* HW 1, no affine */
    {1, 320, 13, 11, 32, 1e-5f, 1, 0, DK_F32, 0, 1},     /* no affine, silu */
};

START_TEST(test_groupnorm_shapes) {
    const gn_case *c = &gn_cases[_i];
    size_t n = c->N * c->C * c->H * c->W;
    float *x = rand_buf(n, 10 + _i, c->mean - c->spread, c->mean + c->spread);
    float *y = malloc(n * 4), *yr = malloc(n * 4);
    void *g = c->affine ? make_w(c->C, c->wt, 1, 0.5f, 1.5f) : NULL, *b = c->affine ? make_w(c->C, c->wt, 2, -0.5f, 0.5f) : NULL;
    dk_groupnorm_params p = {c->N, c->C, c->H * c->W, c->G, c->eps, g, b, c->wt, c->silu};
    dk_groupnorm(y, x, &p);
    dk_groupnorm_ref(yr, x, &p);
    char lab[96];
    snprintf(lab, sizeof lab, "groupnorm %zux%zux%zux%zu G%d", c->N, c->C, c->H, c->W, c->G);
    DA_ASSERT_CLOSE(lab, y, yr, n, 0.9999999, 5e-6);
    /* in place gives the same bits */
    dk_groupnorm(x, x, &p);
    ck_assert(memcmp(x, y, n * 4) == 0);
    free(x), free(y), free(yr), free(g), free(b);
}
END_TEST

/* ---- LayerNorm ---- */
typedef struct { size_t M, D; dk_wtype wt; int affine; float mean, spread; } ln_case;
static const ln_case ln_cases[] = {
    {4096, 320, DK_F32, 1, 0, 2},  {1024, 640, DK_F16, 1, 0, 2}, {77, 768, DK_BF16, 1, 0, 4},  /* CLIP */
    {64, 1280, DK_F32, 1, 0, 2},   {33, 17, DK_F32, 1, 0, 1},    {3, 1, DK_F32, 1, 0, 1},
    {50, 320, DK_F32, 1, 1000, 3}, {19, 300, DK_F32, 0, 0, 1},
};

START_TEST(test_layernorm_shapes) {
    const ln_case *c = &ln_cases[_i];
    size_t n = c->M * c->D;
    float *x = rand_buf(n, 30 + _i, c->mean - c->spread, c->mean + c->spread);
    float *y = malloc(n * 4), *yr = malloc(n * 4);
    void *g = c->affine ? make_w(c->D, c->wt, 3, 0.5f, 1.5f) : NULL, *b = c->affine ? make_w(c->D, c->wt, 4, -0.5f, 0.5f) : NULL;
    dk_layernorm(y, x, c->M, c->D, 1e-5f, g, b, c->wt);
    dk_layernorm_ref(yr, x, c->M, c->D, 1e-5f, g, b, c->wt);
    char lab[64];
    snprintf(lab, sizeof lab, "layernorm %zux%zu", c->M, c->D);
    DA_ASSERT_CLOSE(lab, y, yr, n, 0.9999999, 5e-6);
    free(x), free(y), free(yr), free(g), free(b);
}
END_TEST

/* ---- softmax ---- */
START_TEST(test_softmax) {
    const size_t shapes[][2] = {{77, 77}, {4096, 77}, {512, 4096}, {5, 1}, {3, 17}, {2, 1000}};
    for (int s = 0; s < 6; s++) {
        size_t M = shapes[s][0], D = shapes[s][1], n = M * D;
        float *x = rand_buf(n, 50 + s, -30, 30), *y = malloc(n * 4), *yr = malloc(n * 4);
        if (s == 4) /* large logits and masked entries */
            for (size_t i = 0; i < n; i++) x[i] = i % 5 == 1 ? -INFINITY : x[i] * 300.0f;
        dk_softmax(y, x, M, D);
        dk_softmax_ref(yr, x, M, D);
        DA_ASSERT_CLOSE("softmax", y, yr, n, 0.9999999, 1e-6);
        for (size_t r = 0; r < M; r++) { /* rows sum to 1 */
            double t = 0;
            for (size_t j = 0; j < D; j++) t += y[r * D + j];
            ck_assert_msg(fabs(t - 1) < 1e-5, "row %zu sums to %.8f", r, t);
        }
        free(x), free(y), free(yr);
    }
}
END_TEST

/* ---- the vectorised transcendental helpers against double libm ---- */
START_TEST(test_vec_exp_erfc_accuracy) {
    double worst_exp = 0, worst_erfc = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -86.0f + 174.5f * (float)i / 2000000.0f;
        double r = exp((double)x);
        double e = fabs((double)nn_expf(x) - r) / r;
        if (e > worst_exp) worst_exp = e;
        float z = -6.0f + 15.0f * (float)i / 2000000.0f;
        double rz = erfc((double)z);
        if (rz > 1e-37) {
            double ez = fabs((double)nn_erfcf(z) - rz) / rz;
            if (ez > worst_erfc) worst_erfc = ez;
        }
    }
    ck_assert_msg(worst_exp < 2.5e-7, "nn_expf max rel error %.3g", worst_exp); /* ~2 ulp */
    ck_assert_msg(worst_erfc < 1.5e-5, "nn_erfcf max rel error %.3g", worst_erfc);
    ck_assert(nn_expf(-87.0f) == 0.0f && nn_expf(-INFINITY) == 0.0f);
    ck_assert(isinf(nn_expf(89.0f)) && isinf(nn_expf(INFINITY)) && isnan(nn_expf(NAN)));
    ck_assert(nn_expf(0.0f) == 1.0f);
    /* the 16-lane form (attention's softmax) has the same accuracy and limits */
    for (int blk = 0; blk < 20000; blk++) {
        float xs[16], ys[16];
        for (int i = 0; i < 16; i++) xs[i] = -95.0f + 190.0f * (float)(blk * 16 + i) / 320000.0f;
        dv_store(ys, dv_exp(dv_load(xs)));
        for (int i = 0; i < 16; i++) {
            double r = exp((double)xs[i]);
            if (xs[i] < NN_EXP_LO) ck_assert(ys[i] == 0.0f);
            else if (xs[i] > NN_EXP_HI) ck_assert(isinf(ys[i]));
            else ck_assert_msg(fabs(ys[i] - r) <= 2.5e-7 * r, "dv_exp(%.9g) = %.9g, exp = %.9g", xs[i], ys[i], r);
        }
    }
}
END_TEST

/* ---- activations ---- */
typedef void (*act_fn)(float *, const float *, size_t);
START_TEST(test_activations) {
    struct { const char *name; act_fn fast, ref; double rtol; } acts[] = {
        {"silu", dk_silu, dk_silu_ref, 2e-6},
        {"gelu", dk_gelu, dk_gelu_ref, 1e-5},
        {"gelu_tanh", dk_gelu_tanh, dk_gelu_tanh_ref, 1e-5},
        {"quick_gelu", dk_quick_gelu, dk_quick_gelu_ref, 2e-6},
    };
    size_t n = 200003;
    float *x = rand_buf(n, 77, -12, 12);
    const float special[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 50.0f, -50.0f, 100.0f, -100.0f, 1e4f, -1e4f, 1e-3f, -1e-3f};
    memcpy(x, special, sizeof special);
    float *y = malloc(n * 4), *yr = malloc(n * 4);
    for (int a = 0; a < 4; a++) {
        acts[a].fast(y, x, n);
        acts[a].ref(yr, x, n);
        check_rel(acts[a].name, y, yr, n, acts[a].rtol, 1e-30);
        acts[a].fast(y, x, 37); /* short tail without threads */
        check_rel(acts[a].name, y, yr, 37, acts[a].rtol, 1e-30);
    }
    float nanv = NAN;
    dk_silu(y, &nanv, 1);
    ck_assert(isnan(y[0]));
    free(x), free(y), free(yr);
}
END_TEST

START_TEST(test_geglu) {
    const size_t shapes[][2] = {{4096, 1280}, {77, 2560}, {7, 13}, {1, 1}};
    for (int s = 0; s < 4; s++) {
        size_t M = shapes[s][0], F = shapes[s][1];
        float *x = rand_buf(M * 2 * F, 90 + s, -6, 6), *y = malloc(M * F * 4), *yr = malloc(M * F * 4);
        dk_geglu(y, x, M, F);
        dk_geglu_ref(yr, x, M, F);
        check_rel("geglu", y, yr, M * F, 1e-5, 1e-30);
        /* hidden comes first: swapping the halves changes the answer */
        ck_assert(M * F < 4 || fabsf(y[1] - x[1] * 0.5f * x[F + 1] * (1.0f + erff(x[F + 1] / sqrtf(2.0f)))) < 1e-4f);
        free(x), free(y), free(yr);
    }
}
END_TEST

/* ---- arithmetic and data movement ---- */
START_TEST(test_elementwise_exact) {
    size_t N = 2, C = 320, HW = 64 * 64, n = N * C * HW;
    float *a = rand_buf(n, 5, -100, 100), *b = rand_buf(n, 6, -1, 1), *y = malloc(n * 4), *yr = malloc(n * 4);
    dk_add(y, a, b, n), dk_add_ref(yr, a, b, n);
    ck_assert(memcmp(y, yr, n * 4) == 0);
    dk_mul(y, a, b, n), dk_mul_ref(yr, a, b, n);
    ck_assert(memcmp(y, yr, n * 4) == 0);
    dk_scale(y, a, 0.18215f, 0.5f, n), dk_scale_ref(yr, a, 0.18215f, 0.5f, n);
    DA_ASSERT_CLOSE("scale", y, yr, n, 0.9999999, 2e-6); /* |x*s| <= 18.2: one ulp is 1.9e-6 */
    for (int t = 0; t < 3; t++) {
        void *bias = make_w(C, (dk_wtype)t, 8 + t, -2, 2);
        dk_add_channel_bias(y, a, bias, (dk_wtype)t, N, C, HW), dk_add_channel_bias_ref(yr, a, bias, (dk_wtype)t, N, C, HW);
        ck_assert(memcmp(y, yr, n * 4) == 0);
        dk_add_channel_bias(y, a, bias, (dk_wtype)t, 3, 7, 5), dk_add_channel_bias_ref(yr, a, bias, (dk_wtype)t, 3, 7, 5);
        ck_assert(memcmp(y, yr, 105 * 4) == 0);
        /* row broadcast: [M, N] + [N] with N = 320 (linear bias) and an awkward 300 */
        dk_add_row(y, a, bias, (dk_wtype)t, 4096, 320), dk_add_row_ref(yr, a, bias, (dk_wtype)t, 4096, 320);
        ck_assert(memcmp(y, yr, 4096 * 320 * 4) == 0);
        dk_add_row(y, a, bias, (dk_wtype)t, 5, 300), dk_add_row_ref(yr, a, bias, (dk_wtype)t, 5, 300);
        ck_assert(memcmp(y, yr, 1500 * 4) == 0);
        free(bias);
    }
    /* per-sample channel bias (time embedding): batch 2 with different rows */
    float *temb = rand_buf(N * C, 9, -3, 3);
    dk_add_sample_channel_bias(y, a, temb, N, C, HW), dk_add_sample_channel_bias_ref(yr, a, temb, N, C, HW);
    ck_assert(memcmp(y, yr, n * 4) == 0);
    ck_assert(y[C * HW] == a[C * HW] + temb[C]); /* sample 1 uses its own row */
    dk_add_sample_channel_bias(y, a, temb, 3, 5, 7), dk_add_sample_channel_bias_ref(yr, a, temb, 3, 5, 7);
    ck_assert(memcmp(y, yr, 105 * 4) == 0);
    free(temb);
    /* residual add in place */
    memcpy(y, a, n * 4);
    dk_add(y, y, b, n);
    dk_add_ref(yr, a, b, n);
    ck_assert(memcmp(y, yr, n * 4) == 0);
    free(a), free(b), free(y), free(yr);
}
END_TEST

START_TEST(test_upsample_concat) {
    const size_t shp[][4] = {{1, 1280, 8, 8}, {2, 640, 32, 32}, {3, 5, 7, 1}, {1, 1, 1, 1}, {1, 4, 3, 5}};
    for (int s = 0; s < 5; s++) {
        size_t N = shp[s][0], C = shp[s][1], H = shp[s][2], W = shp[s][3], n = N * C * H * W;
        float *x = rand_buf(n, 60 + s, -1, 1), *y = malloc(n * 16), *yr = malloc(n * 16);
        dk_upsample2x_nearest(y, x, N, C, H, W);
        dk_upsample2x_nearest_ref(yr, x, N, C, H, W);
        ck_assert(memcmp(y, yr, n * 16) == 0);
        ck_assert(y[0] == x[0] && y[1] == x[0] && y[2 * W] == x[0] && y[2 * W + 1] == x[0]);
        size_t Cb = C / 2 + 1;
        float *b = rand_buf(N * Cb * H * W, 70 + s, -1, 1);
        size_t m = N * (C + Cb) * H * W;
        float *z = malloc(m * 4), *zr = malloc(m * 4);
        dk_concat_channels(z, x, C, b, Cb, N, H * W);
        dk_concat_channels_ref(zr, x, C, b, Cb, N, H * W);
        ck_assert(memcmp(z, zr, m * 4) == 0);
        ck_assert(z[(C + Cb) * H * W - 1] == b[Cb * H * W - 1]);
        free(x), free(y), free(yr), free(b), free(z), free(zr);
    }
}
END_TEST

/* ---- timestep embedding: values printed by diffusers 0.42.1 get_timestep_embedding(t, 320,
 * flip_sin_to_cos=True, downscale_freq_shift=0) under torch 2.15 (CPU, f32) ---- */
START_TEST(test_timestep_embedding) {
    const float t[5] = {0.0f, 1.0f, 999.0f, 500.5f, 981.0f};
    const int idx[9] = {0, 1, 5, 80, 159, 160, 161, 200, 319};
    const float torch_vals[5][9] = {
        {1.000000000e+00f, 1.000000000e+00f, 1.000000000e+00f, 1.000000000e+00f, 1.000000000e+00f, 0.000000000e+00f, 0.000000000e+00f, 0.000000000e+00f, 0.000000000e+00f},
        {5.403023362e-01f, 5.865038037e-01f, 7.317609787e-01f, 9.999499917e-01f, 1.000000000e+00f, 8.414709568e-01f, 8.099464774e-01f, 9.983341396e-02f, 1.059253700e-04f},
        {9.996498227e-01f, 8.026775122e-01f, 1.252311170e-01f, -8.444697857e-01f, 9.944063425e-01f, -2.646075189e-02f, 5.964133143e-01f, -5.899291039e-01f, 1.056220606e-01f},
        {-5.513889790e-01f, 3.024123013e-01f, -9.811200947e-02f, 2.884533405e-01f, 9.985949993e-01f, -8.342483044e-01f, 9.531772137e-01f, -2.138232291e-01f, 5.299081653e-02f},
        {6.799572110e-01f, -7.984291911e-01f, 8.710014224e-01f, -9.267151952e-01f, 9.946058989e-01f, 7.332518101e-01f, 6.020886898e-01f, -6.523027420e-01f, 1.037258804e-01f},
    };
    dk_temb_params p = dk_temb_params_sd(320);
    float y[5 * 320], yr[5 * 320];
    dk_timestep_embedding(y, t, 5, &p);
    dk_timestep_embedding_ref(yr, t, 5, &p);
    for (int b = 0; b < 5; b++)
        for (int i = 0; i < 9; i++)
            ck_assert_msg(fabsf(y[b * 320 + idx[i]] - torch_vals[b][i]) < 1e-5f, "t=%g col %d: %.9g vs torch %.9g", t[b],
                          idx[i], y[b * 320 + idx[i]], torch_vals[b][i]);
    DA_ASSERT_CLOSE("temb vs double", y, yr, 5 * 320, 0.99999, 1e-4);
    /* unflipped, shifted, odd dim: sin first, zero last column */
    dk_temb_params q = {7, 0, 1.0f, 2.0f, 10000.0f};
    float z[7], zr[7];
    float tt = 3.0f;
    dk_timestep_embedding(z, &tt, 1, &q);
    dk_timestep_embedding_ref(zr, &tt, 1, &q);
    ck_assert(fabsf(z[0] - sinf(6.0f)) < 1e-6f && z[6] == 0.0f);
    DA_ASSERT_CLOSE("temb odd", z, zr, 7, 0.99999, 1e-5);
}
END_TEST

/* ---- thread count ---- */
START_TEST(test_threads_bit_identical) {
    size_t N = 1, C = 320, HW = 64 * 64, n = N * C * HW;
    float *x = rand_buf(n, 3, -3, 3), *y1 = malloc(n * 4), *y2 = malloc(n * 4);
    void *g = make_w(C, DK_F16, 1, 0.5f, 1.5f), *b = make_w(C, DK_F16, 2, -0.5f, 0.5f);
    dk_groupnorm_params p = {N, C, HW, 32, 1e-5f, g, b, DK_F16, 1};
    int saved = omp_get_max_threads();
    for (int op = 0; op < 5; op++) {
        for (int th = 1; th <= 2; th++) {
            omp_set_num_threads(th);
            float *y = th == 1 ? y1 : y2;
            switch (op) {
            case 0: dk_groupnorm(y, x, &p); break;
            case 1: dk_layernorm(y, x, 4096, 320, 1e-5f, g, b, DK_F16); break;
            case 2: dk_softmax(y, x, 4096, 320); break;
            case 3: dk_gelu(y, x, n); break;
            default: dk_add_row(y, x, g, DK_F16, 4096, 320); break;
            }
        }
        ck_assert_msg(memcmp(y1, y2, n * 4) == 0, "op %d differs between 1 and 2 threads", op);
    }
    omp_set_num_threads(saved);
    free(x), free(y1), free(y2), free(g), free(b);
}
END_TEST

static Suite *nn_suite(void) {
    Suite *s = suite_create("nn");
    TCase *tc = da_tcase("nn", "fast", 60);
    tcase_add_loop_test(tc, test_groupnorm_shapes, 0, (int)(sizeof gn_cases / sizeof gn_cases[0]));
    tcase_add_loop_test(tc, test_layernorm_shapes, 0, (int)(sizeof ln_cases / sizeof ln_cases[0]));
    tcase_add_test(tc, test_softmax);
    tcase_add_test(tc, test_vec_exp_erfc_accuracy);
    tcase_add_test(tc, test_activations);
    tcase_add_test(tc, test_geglu);
    tcase_add_test(tc, test_elementwise_exact);
    tcase_add_test(tc, test_upsample_concat);
    tcase_add_test(tc, test_timestep_embedding);
    tcase_add_test(tc, test_threads_bit_identical);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(nn_suite)
