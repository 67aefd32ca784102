/* test_gemm.c - gemm / linear / gemm_batched (kernels/cpu/gemm.c) against their double-accumulating
 * references over SD 1.5 shapes (scaled down in M where the reference would be slow) and awkward
 * ones, for every weight dtype; thread-count determinism; workspace and argument errors.
 *
 * Tolerance table (one row per op; bound = abs_mult * 2^-24 * sqrt(K) * max|ref| + abs_floor):
 *   the fast kernels accumulate in f32 (the reference in double), so the error is a random walk of
 *   ~K roundings of partial sums no larger than max|ref| in typical data: sqrt(K) * u * max|ref|;
 *   abs_mult = 16 leaves room for unlucky walks and for the generic build, which rounds each
 *   product separately (no FMA contraction under -std=c11). 16-bit weights widen to f32 exactly
 *   and the reference reads the same widened values, so f16/bf16 rows equal the f32 row.
 */
#include <math.h>
#include <stdio.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"
#include "testutil.h"

typedef struct tol_row {
    const char *op;
    double abs_mult, abs_floor, min_cos;
    const char *why;
} tol_row;

static const tol_row TOL[] = {
    {"gemm", 16, 1e-6, 0.999999, "f32 accumulation over K vs double: sqrt(K) random walk of roundings"},
    {"linear", 16, 1e-6, 0.999999, "as gemm; f16/bf16 weights widen exactly, reference reads the same values"},
    {"gemm_batched", 16, 1e-6, 0.999999, "as gemm, per batch entry"},
};

static const tol_row *tol_for(const char *op) {
    for (size_t i = 0; i < sizeof TOL / sizeof TOL[0]; i++)
        if (strcmp(TOL[i].op, op) == 0) return &TOL[i];
    return &TOL[0];
}

static void check_close(const char *op, const char *label, const float *got, const float *ref, size_t n, int K) {
    const tol_row *t = tol_for(op);
    double mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
    double tol = t->abs_mult * ldexp(1.0, -24) * sqrt((double)(K > 1 ? K : 1)) * mx + t->abs_floor;
    DA_ASSERT_CLOSE(label, got, ref, n, t->min_cos, tol);
}


/* ---- gemm --------------------------------------------------------------------------------------- */

typedef struct gcase {
    int M, N, K, tA, tB, pad; /* pad: extra leading-dimension elements */
    float alpha, beta;
} gcase;

static const gcase GEMM_CASES[] = {
    {1, 1, 1, 0, 0, 0, 1, 0},        {3, 13, 33, 0, 0, 0, 1, 0},      {7, 5, 3, 1, 0, 2, 1, 0},
    {13, 33, 1, 0, 1, 1, 0.5f, 0.7f}, {33, 17, 65, 1, 1, 3, 1, 1},    {64, 64, 4608, 0, 1, 0, 1, 0},
    {256, 320, 320, 0, 0, 0, 1, 0},  {100, 77, 768, 0, 1, 5, 2, 0.5f}, {31, 2560, 40, 1, 0, 0, 1, 0},
    {77, 40, 77, 0, 0, 0, 1, -1},    {200, 100, 300, 1, 1, 0, 1, 0},   {15, 29, 513, 0, 1, 0, 1, 0},
};

static void run_gemm_case(const gcase *c) {
    int lda = (c->tA ? c->M : c->K) + c->pad, ldb = (c->tB ? c->K : c->N) + c->pad, ldc = c->N + c->pad;
    size_t na = (size_t)(c->tA ? c->K : c->M) * lda, nb = (size_t)(c->tB ? c->N : c->K) * ldb,
           nc = (size_t)c->M * ldc;
    float *A = da_test_rand_buf(na), *B = da_test_rand_buf(nb), *C0 = da_test_rand_buf(nc);
    float *C = malloc(nc * 4), *R = malloc(nc * 4);
    memcpy(C, C0, nc * 4);
    memcpy(R, C0, nc * 4);
    if (c->beta == 0) /* beta 0 must not read C: poison it */
        for (size_t i = 0; i < nc; i++) C[i] = NAN;
    size_t wsb = gemm_workspace_size(c->M, c->N, c->K);
    void *ws = malloc(wsb ? wsb : 1);
    ck_assert_int_eq(gemm(c->tA, c->tB, c->M, c->N, c->K, c->alpha, A, lda, B, ldb, c->beta, C, ldc, ws, wsb), DK_GEMM_OK);
    gemm_ref(c->tA, c->tB, c->M, c->N, c->K, c->alpha, A, lda, B, ldb, c->beta, R, ldc);
    /* padding columns of C must be untouched */
    for (int i = 0; i < c->M; i++)
        for (int j = c->N; j < ldc; j++) ck_assert_msg(C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j] || c->beta == 0, "pad written");
    for (int i = 0; i < c->M; i++) memset(C + (size_t)i * ldc + c->N, 0, (size_t)c->pad * 4), memset(R + (size_t)i * ldc + c->N, 0, (size_t)c->pad * 4);
    char label[96];
    snprintf(label, sizeof label, "gemm %dx%dx%d tA=%d tB=%d", c->M, c->N, c->K, c->tA, c->tB);
    check_close("gemm", label, C, R, nc, c->K);
    free(A), free(B), free(C0), free(C), free(R), free(ws);
}

START_TEST(test_gemm_shapes) { run_gemm_case(&GEMM_CASES[_i]); }
END_TEST

START_TEST(test_gemm_k0_and_errors) {
    float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {0}, B[1] = {0};
    ck_assert_int_eq(gemm(0, 0, 2, 3, 0, 1, A, 1, B, 3, 2.0f, C, 3, NULL, 0), DK_GEMM_OK);
    ck_assert(C[0] == 2 && C[5] == 12);
    ck_assert_int_eq(gemm(0, 0, 2, 3, 0, 1, A, 1, B, 3, 0.0f, C, 3, NULL, 0), DK_GEMM_OK);
    ck_assert(C[0] == 0 && C[5] == 0);
    ck_assert_int_eq(gemm(0, 0, 2, 3, 4, 1, A, 3, B, 3, 0, C, 3, NULL, 0), DK_GEMM_EARG); /* lda < K */
    ck_assert_int_eq(gemm(0, 0, -1, 3, 4, 1, A, 4, B, 3, 0, C, 3, NULL, 0), DK_GEMM_EARG);
    float big[64 * 64];
    memset(big, 0, sizeof big);
    ck_assert_int_eq(gemm(0, 0, 8, 8, 8, 1, big, 8, big, 8, 0, big + 128, 8, big + 256, 16), DK_GEMM_EWORKSPACE);
}
END_TEST

/* ---- linear ------------------------------------------------------------------------------------ */

typedef struct lcase {
    int M, N, K, bias;
    const char *what;
} lcase;

static const lcase LIN_CASES[] = {
    {256, 320, 320, 1, "UNet 64x64 q/k/v/out (M 4096 scaled to 256)"},
    {64, 2560, 320, 1, "UNet GEGLU proj 320->2560"},
    {64, 320, 1280, 1, "UNet FF out 1280->320"},
    {77, 320, 768, 0, "cross-attn k/v from CLIP 768"},
    {77, 1280, 768, 0, "cross-attn k/v at level 3"},
    {77, 768, 768, 1, "CLIP q/k/v/out"},
    {16, 1280, 320, 1, "time embedding 320->1280 (M small)"},
    {3, 13, 33, 1, "awkward"},
    {1, 7, 1, 1, "K 1"},
    {5, 3, 3, 0, "K 3"},
    {9, 40, 4608, 1, "K large"},
    {97, 65, 129, 1, "all dims one past a block multiple"},
    {1, 30524, 768, 1, "BLIP LM head, one decode row (dot-product path)"},
    {8, 3072, 768, 1, "BLIP decoder FFN, 8 decode rows (dot-product path, its largest M)"},
    {9, 768, 3072, 1, "9 decode rows: back on the blocked kernel"},
    {2, 33, 600, 0, "K not a multiple of the 256 chunk"},
};

static void run_linear_case(const lcase *c, dk_wtype t) {
    float *x = da_test_rand_buf((size_t)c->M * c->K), *b = c->bias ? da_test_rand_buf(c->N) : NULL;
    void *W = da_test_rand_weights((size_t)c->N * c->K, t, 0.2f);
    float *y = malloc((size_t)c->M * c->N * 4), *r = malloc((size_t)c->M * c->N * 4);
    size_t wsb = linear_workspace_size(c->M, c->N, c->K);
    void *ws = malloc(wsb);
    ck_assert_int_eq(linear(c->M, c->N, c->K, x, W, t, b, y, ws, wsb), DK_GEMM_OK);
    linear_ref(c->M, c->N, c->K, x, W, t, b, r);
    char label[128];
    snprintf(label, sizeof label, "linear %dx%dx%d %s (%s)", c->M, c->K, c->N, da_test_wname(t), c->what);
    check_close("linear", label, y, r, (size_t)c->M * c->N, c->K);
    free(x), free(b), free(W), free(y), free(r), free(ws);
}

START_TEST(test_linear_f32) { run_linear_case(&LIN_CASES[_i], DK_F32); }
END_TEST
START_TEST(test_linear_f16) { run_linear_case(&LIN_CASES[_i], DK_F16); }
END_TEST
START_TEST(test_linear_bf16) { run_linear_case(&LIN_CASES[_i], DK_BF16); }
END_TEST

/* ---- batched ----------------------------------------------------------------------------------- */

START_TEST(test_gemm_batched) {
    /* attention-like: scores = Q K^T (tB) then out = P V, heads as batch, head dims 40 and 64 */
    static const struct { int M, N, K, tB, batch; } cs[] = {{37, 29, 40, 1, 3}, {64, 40, 64, 0, 2}, {5, 64, 7, 1, 8}};
    for (size_t ci = 0; ci < 3; ci++) {
        int M = cs[ci].M, N = cs[ci].N, K = cs[ci].K, tB = cs[ci].tB, nb = cs[ci].batch;
        ptrdiff_t sA = (ptrdiff_t)M * K + 3, sB = (ptrdiff_t)K * N + 1, sC = (ptrdiff_t)M * N + 2;
        float *A = da_test_rand_buf(sA * nb), *B = da_test_rand_buf(sB * nb), *C = da_test_rand_buf(sC * nb), *R = malloc(sC * nb * 4);
        memcpy(R, C, sC * nb * 4);
        size_t wsb = gemm_batched_workspace_size(M, N, K);
        void *ws = malloc(wsb);
        int ldb = tB ? K : N;
        ck_assert_int_eq(gemm_batched(0, tB, M, N, K, 0.25f, A, K, sA, B, ldb, sB, 0.5f, C, N, sC, nb, ws, wsb), DK_GEMM_OK);
        gemm_batched_ref(0, tB, M, N, K, 0.25f, A, K, sA, B, ldb, sB, 0.5f, R, N, sC, nb);
        check_close("gemm_batched", "batched", C, R, sC * nb, K);
        free(A), free(B), free(C), free(R), free(ws);
    }
}
END_TEST

START_TEST(test_gemm_batched_matches_gemm) {
    /* 16 heads: the batched call runs whole GEMMs per thread; it must equal gemm() bit for bit */
    int M = 50, N = 45, K = 40, nb = 16;
    float *A = da_test_rand_buf((size_t)nb * M * K), *B = da_test_rand_buf((size_t)nb * N * K);
    float *C1 = malloc((size_t)nb * M * N * 4), *C2 = malloc((size_t)nb * M * N * 4);
    size_t wsb = gemm_batched_workspace_size(M, N, K);
    void *ws = malloc(wsb);
    ck_assert_int_eq(gemm_batched(0, 1, M, N, K, 1.0f, A, K, (ptrdiff_t)M * K, B, K, (ptrdiff_t)N * K, 0.0f, C1, N,
                                  (ptrdiff_t)M * N, nb, ws, wsb), DK_GEMM_OK);
    for (int b = 0; b < nb; b++)
        ck_assert_int_eq(gemm(0, 1, M, N, K, 1.0f, A + (size_t)b * M * K, K, B + (size_t)b * N * K, K, 0.0f,
                              C2 + (size_t)b * M * N, N, ws, wsb), DK_GEMM_OK);
    ck_assert_msg(memcmp(C1, C2, (size_t)nb * M * N * 4) == 0, "batched differs from gemm");
    free(A), free(B), free(C1), free(C2), free(ws);
}
END_TEST

/* ---- determinism across thread counts ----------------------------------------------------------- */

START_TEST(test_thread_determinism) {
    int M = 300, N = 700, K = 777; /* several M, N and K blocks */
    float *x = da_test_rand_buf((size_t)M * K), *b = da_test_rand_buf(N);
    void *W = da_test_rand_weights((size_t)N * K, DK_BF16, 0.2f);
    float *y1 = malloc((size_t)M * N * 4), *y2 = malloc((size_t)M * N * 4);
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
    size_t wsb = linear_workspace_size(M, N, K); /* sized for 2 threads, used by 1 too */
    void *ws = malloc(wsb);
    ck_assert_int_eq(linear(M, N, K, x, W, DK_BF16, b, y2, ws, wsb), DK_GEMM_OK);
    omp_set_num_threads(1);
    ck_assert_int_eq(linear(M, N, K, x, W, DK_BF16, b, y1, ws, wsb), DK_GEMM_OK);
    ck_assert_msg(memcmp(y1, y2, (size_t)M * N * 4) == 0, "1 and 2 threads differ");
    /* a workspace for one thread only runs single-threaded, same bits */
    omp_set_num_threads(2);
    memset(y2, 0, (size_t)M * N * 4);
    ck_assert_int_eq(linear(M, N, K, x, W, DK_BF16, b, y2, ws, (wsb - 64) / 2 + 64), DK_GEMM_OK);
    ck_assert_msg(memcmp(y1, y2, (size_t)M * N * 4) == 0, "half workspace differs");
    /* the few-row dot-product path too */
    omp_set_num_threads(2);
    ck_assert_int_eq(linear(4, N, K, x, W, DK_BF16, b, y2, ws, wsb), DK_GEMM_OK);
    omp_set_num_threads(1);
    ck_assert_int_eq(linear(4, N, K, x, W, DK_BF16, b, y1, ws, wsb), DK_GEMM_OK);
    ck_assert_msg(memcmp(y1, y2, (size_t)4 * N * 4) == 0, "1 and 2 threads differ (4 rows)");
    /* and a row's bits never depend on how many rows came with it: the few-row path (1..8 rows)
     * equals the blocked kernel, swapped (<= 128 rows) or not, for every weight type and K blocking */
    static const dk_wtype types[3] = {DK_F32, DK_F16, DK_BF16};
    static const int ks[3] = {777, 300, 1100};
    for (int t = 0; t < 3; t++) {
        void *Wt = da_test_rand_weights((size_t)N * ks[t], types[t], 0.2f);
        float *xt = da_test_rand_buf((size_t)M * ks[t]);
        size_t w2 = linear_workspace_size(M, N, ks[t]);
        void *ws2 = malloc(w2);
        ck_assert_int_eq(linear(M, N, ks[t], xt, Wt, types[t], b, y1, ws2, w2), DK_GEMM_OK); /* 300 rows: blocked */
        float *yr = malloc((size_t)100 * N * 4);
        ck_assert_int_eq(linear(100, N, ks[t], xt, Wt, types[t], b, yr, ws2, w2), DK_GEMM_OK); /* swapped */
        ck_assert_msg(memcmp(yr, y1, (size_t)100 * N * 4) == 0, "swapped vs blocked differ (%s)", da_test_wname(types[t]));
        for (int m = 1; m <= 8; m++) {
            ck_assert_int_eq(linear(m, N, ks[t], xt + (size_t)3 * ks[t], Wt, types[t], t == 1 ? NULL : b, y2, ws2, w2), DK_GEMM_OK);
            if (t == 1) ck_assert_int_eq(linear(m, N, ks[t], xt + (size_t)3 * ks[t], Wt, types[t], NULL, yr, ws2, w2), DK_GEMM_OK);
            const float *want = t == 1 ? yr : y1 + (size_t)3 * N;
            if (t == 1) { /* no bias: compare with 20 rows through the swapped kernel */
                ck_assert_int_eq(linear(20, N, ks[t], xt + (size_t)3 * ks[t], Wt, types[t], NULL, yr, ws2, w2), DK_GEMM_OK);
                want = yr;
            }
            ck_assert_msg(memcmp(y2, want, (size_t)m * N * 4) == 0, "%d rows (%s, K %d) differ from the blocked kernel", m,
                          da_test_wname(types[t]), ks[t]);
        }
        free(Wt), free(xt), free(ws2), free(yr);
    }
    omp_set_num_threads(saved);
    free(x), free(b), free(W), free(y1), free(y2), free(ws);
}
END_TEST

static Suite *gemm_suite(void) {
    Suite *s = suite_create("gemm");
    TCase *tc = da_tcase("gemm", "fast", 60);
    tcase_add_loop_test(tc, test_gemm_shapes, 0, (int)(sizeof GEMM_CASES / sizeof GEMM_CASES[0]));
    tcase_add_test(tc, test_gemm_k0_and_errors);
    int nl = (int)(sizeof LIN_CASES / sizeof LIN_CASES[0]);
    tcase_add_loop_test(tc, test_linear_f32, 0, nl);
    tcase_add_loop_test(tc, test_linear_f16, 0, nl);
    tcase_add_loop_test(tc, test_linear_bf16, 0, nl);
    tcase_add_test(tc, test_gemm_batched);
    tcase_add_test(tc, test_gemm_batched_matches_gemm);
    tcase_add_test(tc, test_thread_determinism);
    suite_add_tcase(s, tc);
    return s;
}

DA_TEST_MAIN(gemm_suite)
