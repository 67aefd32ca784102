/* test_conv.c - conv2d (kernels/cpu/conv.c, implicit GEMM) against conv2d_ref (direct loops, double
 * accumulation) over SD 1.5 UNet / VAE shapes (spatially scaled down so the reference stays fast)
 * and awkward ones, for every weight dtype; thread-count determinism; argument and workspace rules.
 *
 * Tolerance table (bound = abs_mult * 2^-24 * sqrt(K) * max|ref| + abs_floor, K = C*KH*KW):
 *   conv2d: f32 accumulation over K vs double, same random-walk argument as tests/test_gemm.c;
 *     zero padding adds exact zeros, 16-bit weights widen exactly (the reference reads the same
 *     widened values), so one row covers every dtype and padding.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conv.h"
#include "testutil.h"

typedef struct tol_row {
    const char *op;
    double abs_mult, abs_floor, min_cos;
    const char *why;
} tol_row;

static const tol_row TOL[] = {
    {"conv2d", 16, 1e-6, 0.999999, "f32 accumulation over C*KH*KW vs double; padding and 16-bit widening exact"},
};

static void check_close(const char *label, const float *got, const float *ref, size_t n, int K) {
    const tol_row *t = &TOL[0];
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    double tol = t->abs_mult * ldexp(1.0, -24) * sqrt((double)K) * mx + t->abs_floor;
    DA_ASSERT_CLOSE(label, got, ref, n, t->min_cos, tol);
}


typedef struct ccase {
    dk_conv2d s;
    int bias;
    const char *what;
} ccase;

/* N C H W OC KH KW sh sw pt pb pl pr dh dw */
static const ccase CASES[] = {
    {{1, 320, 8, 8, 320, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "UNet level-1 resnet conv 320->320 3x3 (64x64 -> 8x8)"},
    {{1, 640, 4, 4, 640, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "UNet level-2 conv 640->640 3x3 (scaled to 4x4)"},
    {{1, 1280, 2, 3, 1280, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "UNet level-3/4 conv 1280 3x3 (scaled to 2x3)"},
    {{1, 320, 8, 8, 320, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, 1, "UNet downsample 3x3 stride 2 pad 1"},
    {{2, 4, 12, 10, 320, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "UNet conv_in 4->320, batch 2 (CFG)"},
    {{1, 320, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "UNet conv_out 320->4"},
    {{1, 320, 6, 5, 640, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1}, 1, "resnet 1x1 shortcut 320->640"},
    {{1, 512, 6, 6, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "VAE decoder 512 3x3 (scaled to 6x6)"},
    {{1, 128, 16, 16, 128, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1}, 1, "VAE encoder downsample, pad (0,1,0,1) stride 2"},
    {{1, 13, 15, 13, 16, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1}, 1, "VAE downsample padding on odd sizes"},
    {{1, 128, 20, 20, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "VAE conv_out 128->3"},
    {{3, 3, 7, 5, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "awkward: batch 3, 7x5, C 3, OC 13"},
    {{1, 13, 7, 5, 33, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1}, 0, "1x1 on 7x5, C 13, OC 33"},
    {{1, 33, 9, 7, 17, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1}, 1, "3x3 stride 2 pad 1 on 9x7"},
    {{1, 1, 9, 11, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1}, 1, "K = 1"},
    {{1, 512, 5, 7, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "K = 4608"},
    {{2, 3, 11, 9, 8, 7, 7, 2, 2, 3, 3, 3, 3, 1, 1}, 1, "general: 7x7 stride 2 pad 3"},
    {{1, 5, 10, 12, 6, 5, 3, 1, 2, 2, 1, 0, 2, 1, 1}, 1, "general: 5x3, strides 1x2, uneven pads"},
    {{1, 4, 9, 9, 7, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2}, 1, "general: dilation 2"},
    {{1, 6, 9, 8, 5, 1, 1, 2, 2, 0, 0, 0, 0, 1, 1}, 1, "general: 1x1 stride 2"},
    {{1, 8, 3, 3, 4, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "kernel as large as the padded input: 1x1 out"},
    {{1, 40, 35, 3, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1}, 1, "narrow image: panels span many rows"},
};

static void run_case(const ccase *c, dk_wtype t) {
    const dk_conv2d *s = &c->s;
    int OH = dk_conv2d_oh(s), OW = dk_conv2d_ow(s);
    ck_assert(OH > 0 && OW > 0);
    size_t nx = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->OC * s->C * s->KH * s->KW,
           ny = (size_t)s->N * s->OC * OH * OW;
    float *x = da_test_rand_buf(nx), *b = c->bias ? da_test_rand_buf(s->OC) : NULL;
    void *w = da_test_rand_weights(nw, t, 0.2f);
    float *y = malloc(ny * 4), *r = malloc(ny * 4);
    for (size_t i = 0; i < ny; i++) y[i] = NAN; /* every output must be written */
    size_t wsb = conv2d_workspace_size(s);
    void *ws = malloc(wsb);
    ck_assert_int_eq(conv2d(s, x, w, t, b, y, ws, wsb), DK_GEMM_OK);
    conv2d_ref(s, x, w, t, b, r);
    char label[192];
    snprintf(label, sizeof label, "conv2d %s %s N%d C%d %dx%d OC%d k%dx%d", da_test_wname(t), c->what, s->N, s->C, s->H, s->W,
             s->OC, s->KH, s->KW);
    check_close(label, y, r, ny, s->C * s->KH * s->KW);
    free(x), free(b), free(w), free(y), free(r), free(ws);
}

START_TEST(test_conv_f32) { run_case(&CASES[_i], DK_F32); }
END_TEST
START_TEST(test_conv_f16) { run_case(&CASES[_i], DK_F16); }
END_TEST
START_TEST(test_conv_bf16) { run_case(&CASES[_i], DK_BF16); }
END_TEST

START_TEST(test_conv_shapes_and_errors) {
    dk_conv2d s = dk_conv2d_make(1, 4, 7, 5, 8, 3, 2, 1);
    ck_assert_int_eq(dk_conv2d_oh(&s), 4);
    ck_assert_int_eq(dk_conv2d_ow(&s), 3);
    /* VAE downsample: 512 -> 256 with pad (0,1,0,1) */
    dk_conv2d v = {1, 128, 512, 512, 128, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1};
    ck_assert_int_eq(dk_conv2d_oh(&v), 256);
    ck_assert_int_eq(dk_conv2d_ow(&v), 256);
    dk_conv2d bad = s;
    bad.stride_h = 0;
    ck_assert_int_eq(dk_conv2d_oh(&bad), 0);
    float x[140] = {0}, w[288] = {0}, y[96];
    ck_assert_int_eq(conv2d(&bad, x, w, DK_F32, NULL, y, NULL, 0), DK_GEMM_EARG);
    ck_assert_int_eq(conv2d(&s, x, w, DK_F32, NULL, y, NULL, 0), DK_GEMM_EWORKSPACE);
}
END_TEST

START_TEST(test_conv_thread_determinism) {
    dk_conv2d s = dk_conv2d_make(2, 96, 19, 23, 80, 3, 1, 1);
    int OH = dk_conv2d_oh(&s), OW = dk_conv2d_ow(&s);
    size_t ny = (size_t)2 * 80 * OH * OW;
    float *x = da_test_rand_buf((size_t)2 * 96 * 19 * 23), *b = da_test_rand_buf(80);
    void *w = da_test_rand_weights((size_t)80 * 96 * 9, DK_F16, 0.2f);
    float *y1 = malloc(ny * 4), *y2 = malloc(ny * 4);
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    size_t wsb = conv2d_workspace_size(&s);
    void *ws = malloc(wsb);
    ck_assert_int_eq(conv2d(&s, x, w, DK_F16, b, y2, ws, wsb), DK_GEMM_OK);
    omp_set_num_threads(1);
    ck_assert_int_eq(conv2d(&s, x, w, DK_F16, b, y1, ws, wsb), DK_GEMM_OK);
    omp_set_num_threads(saved);
    ck_assert_msg(memcmp(y1, y2, ny * 4) == 0, "1 and 2 threads differ");
    free(x), free(b), free(w), free(y1), free(y2), free(ws);
}
END_TEST

static Suite *conv_suite(void) {
    Suite *s = suite_create("conv");
    TCase *tc = da_tcase("conv", "fast", 60);
    int n = (int)(sizeof CASES / sizeof CASES[0]);
    tcase_add_loop_test(tc, test_conv_f32, 0, n);
    tcase_add_loop_test(tc, test_conv_f16, 0, n);
    tcase_add_loop_test(tc, test_conv_bf16, 0, n);
    tcase_add_test(tc, test_conv_shapes_and_errors);
    tcase_add_test(tc, test_conv_thread_determinism);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(conv_suite)
