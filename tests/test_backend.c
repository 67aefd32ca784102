/* test_backend.c - the planned arena, the CPU backend's two-pass protocol and sticky errors, and
 * the weight binder on a tiny random model in both layouts and all dtypes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "backend.h"
#include "gemm.h"
#include "mkmodel.h"
#include "testutil.h"
#include "util.h"
#include "weights.h"

/* A two-op "network": y = silu(x W^T + b), everything from the arena. */
static void tiny_forward(da_backend *be, da_arena *a, const float *host_x, const da_w *w, const float *b, int M,
                         int N, int K, float *host_y) {
    size_t mark = da_arena_mark(a);
    float *x = da_arena_floats(a, (size_t)M * K);
    float *h = da_arena_floats(a, (size_t)M * N);
    da_op_upload(be, x, host_x, (size_t)M * K);
    da_op_linear(be, M, N, K, x, w, b, h);
    da_op_act(be, DA_ACT_SILU, h, h, (size_t)M * N);
    da_op_download(be, host_y, h, (size_t)M * N);
    da_arena_reset(a, mark);
}

START_TEST(test_plan_then_run) {
    enum { M = 37, N = 19, K = 53 };
    float *x = malloc(sizeof(float) * M * K), *wt = malloc(sizeof(float) * N * K), bias[N];
    float *y = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
    for (int i = 0; i < M * K; i++) x[i] = sinf(0.37f * i);
    for (int i = 0; i < N * K; i++) wt[i] = cosf(0.11f * i) * 0.2f;
    for (int i = 0; i < N; i++) bias[i] = 0.01f * i;
    da_w w = {wt, DK_F32, 2, {N, K}};
    da_backend *be = da_backend_cpu_new();
    da_arena a = {0};
    da_error err;
    /* planning computes nothing: the host output stays as it was */
    for (int i = 0; i < M * N; i++) y[i] = -7.0f;
    da_backend_plan(be);
    da_arena_plan(&a);
    tiny_forward(be, &a, x, &w, bias, M, N, K, y);
    ck_assert_float_eq(y[0], -7.0f);
    ck_assert_uint_ge(a.peak, sizeof(float) * (M * K + M * N));
    ck_assert_uint_gt(be->ws_need, 0);
    ck_assert_int_eq(da_backend_commit(be, &err), DA_OK);
    ck_assert_int_eq(da_arena_commit(&a, 0, &err), DA_OK);
    tiny_forward(be, &a, x, &w, bias, M, N, K, y);
    ck_assert(!a.overflow);
    ck_assert_int_eq(be->st, DA_OK);
    linear_ref(M, N, K, x, wt, DK_F32, bias, ref);
    for (int i = 0; i < M * N; i++) ref[i] = ref[i] / (1.0f + expf(-ref[i]));
    DA_ASSERT_CLOSE("linear+silu", y, ref, (size_t)M * N, 0.999999, 1e-5);
    /* a run bigger than the plan overflows instead of writing past the block */
    ck_assert_ptr_null(da_arena_alloc(&a, a.cap + 1));
    ck_assert(a.overflow);
    da_arena_free(&a);
    da_backend_free(be);
    free(x), free(wt), free(y), free(ref);
}
END_TEST

START_TEST(test_sticky_error) {
    da_backend *be = da_backend_cpu_new();
    da_error err;
    ck_assert_int_eq(da_backend_commit(be, &err), DA_OK);
    float x[4] = {1, 2, 3, 4}, y[4] = {0};
    /* a linear with no scratch fails (scratch too small), and later ops do nothing */
    float wv[4] = {1, 0, 0, 1};
    da_w w = {wv, DK_F32, 2, {2, 2}};
    da_op_linear(be, 2, 2, 2, x, &w, NULL, y);
    ck_assert_int_ne(be->st, DA_OK);
    da_op_copy(be, y, x, 4);
    ck_assert_float_eq(y[0], 0.0f);
    ck_assert_int_ne(da_backend_take_error(be, &err), DA_OK);
    ck_assert_ptr_nonnull(strstr(err.msg, "linear"));
    ck_assert_int_eq(be->st, DA_OK);
    da_backend_free(be);
}
END_TEST

START_TEST(test_binder_layouts_and_dtypes) {
    char *dir = da_test_tmpdir("backend");
    const char *layouts[] = {"single", "diffusers"}, *dtypes[] = {"f32", "f16", "bf16"};
    float *first = NULL;
    size_t n_first = 0;
    for (int l = 0; l < 2; l++)
        for (int d = 0; d < 3; d++) {
            char path[512];
            snprintf(path, sizeof path, "%s/m-%s-%s%s", dir, layouts[l], dtypes[d], l == 0 ? ".safetensors" : "");
            ck_assert_int_eq(da_test_sh(NULL, "%s mkmodel --config tiny-sd15 --layout %s --dtype %s --seed 3 -o %s",
                                        da_test_cli(), layouts[l], dtypes[d], path),
                             0);
            da_model_file *m;
            da_error err;
            ck_assert_msg(da_model_open(path, &m, &err) == DA_OK, "%s", err.msg);
            da_binder b;
            da_binder_init(&b, m, DA_COMP_UNET);
            da_backend *cpu = da_backend_cpu_new();
            b.be = cpu; /* the CPU's adopt is the identity: the same views as without a backend */
            da_w w = da_bind(&b, "conv_in.weight");
            const float *bias = da_bind_f32(&b, "down_blocks.%d.resnets.%d.norm1.bias", 0, 1);
            ck_assert_int_eq(b.st, DA_OK);
            ck_assert_int_eq(w.t, d == 0 ? DK_F32 : d == 1 ? DK_F16 : DK_BF16);
            ck_assert_int_eq(w.rank, 4);
            ck_assert_int_eq(w.shape[1], 4);
            ck_assert_ptr_nonnull(bias);
            size_t n = (size_t)(w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3]);
            float *vals = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) vals[i] = dk_load_w(w.p, w.t, i);
            if (d == 0 && l == 0) {
                first = vals;
                n_first = n;
            } else {
                /* the same seed gives the same weights in every layout; 16-bit copies round them */
                ck_assert_uint_eq(n, n_first);
                for (size_t i = 0; i < n; i++)
                    ck_assert_msg(fabsf(vals[i] - first[i]) <= (d == 0 ? 0.0f : 0.01f * fabsf(first[i]) + 1e-6f),
                                  "%s/%s element %zu: %g vs %g", layouts[l], dtypes[d], i, vals[i], first[i]);
                free(vals);
            }
            /* an unknown name is an error naming it, and sticks */
            da_bind(&b, "no.such.tensor");
            ck_assert_int_eq(b.st, DA_ERR_NOT_FOUND);
            ck_assert_ptr_nonnull(strstr(b.err.msg, "no.such.tensor"));
            ck_assert_ptr_null(da_bind_f32(&b, "conv_in.bias"));
            da_binder_release(&b);
            da_backend_free(cpu);
            da_model_close(m);
        }
    free(first);
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* The arena's block allocator hook (how a backend puts activations in its memory) survives
 * plan / free and is used for the block. */
static size_t g_blocks_alloc, g_blocks_free;
static void *count_alloc(void *ctx, size_t bytes) {
    g_blocks_alloc++;
    *(size_t *)ctx = bytes;
    return aligned_alloc(DA_ARENA_ALIGN, bytes);
}
static void count_free(void *ctx, void *p) {
    if (p) g_blocks_free++;
    free(p);
}

START_TEST(test_arena_block_allocator) {
    size_t last = 0;
    da_arena a = {0};
    a.block_alloc = count_alloc, a.block_free = count_free, a.block_ctx = &last;
    da_error err;
    for (int round = 0; round < 2; round++) {
        da_arena_plan(&a);
        ck_assert_ptr_eq(a.block_alloc, count_alloc);
        da_arena_floats(&a, 1000);
        ck_assert_int_eq(da_arena_commit(&a, 0, &err), DA_OK);
        ck_assert_uint_ge(last, 4000);
        ck_assert_ptr_nonnull(da_arena_floats(&a, 1000));
    }
    ck_assert_uint_eq(g_blocks_alloc, 2);
    da_arena_free(&a);
    ck_assert_uint_eq(g_blocks_free, 2);
    /* the CPU backend keeps host memory: no hook installed */
    da_backend *be = da_backend_cpu_new();
    da_arena h = {0};
    da_arena_on_backend(&h, be);
    ck_assert_ptr_null(h.block_alloc);
    /* and its adopt is the identity */
    float v[3] = {1, 2, 3};
    da_w w = {v, DK_F32, 1, {3}};
    ck_assert_int_eq(da_backend_adopt(be, &w, sizeof v), DA_OK);
    ck_assert_ptr_eq(w.p, v);
    da_backend_free(be);
    /* by name */
    be = da_backend_new("cpu", &err);
    ck_assert_ptr_nonnull(be);
    ck_assert_str_eq(be->ops->name, "cpu");
    da_backend_free(be);
    ck_assert_ptr_null(da_backend_new("cuda:x", &err));
    ck_assert_int_eq(err.code, DA_ERR_INVALID_ARG);
}
END_TEST

static Suite *backend_suite(void) {
    Suite *s = suite_create("backend");
    TCase *tc = da_tcase("backend", "fast", 30);
    tcase_add_test(tc, test_plan_then_run);
    tcase_add_test(tc, test_sticky_error);
    tcase_add_test(tc, test_arena_block_allocator);
    suite_add_tcase(s, tc);
    TCase *tm = da_tcase("binder", "model", 60);
    tcase_add_test(tm, test_binder_layouts_and_dtypes);
    suite_add_tcase(s, tm);
    return s;
}

DA_TEST_MAIN(backend_suite)
