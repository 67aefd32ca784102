/* test_gpu.c - the CUDA backend (engine/backend_cuda.c over kernels/cuda) op by op against the
 * CPU references of kernels/cpu (*_ref, double accumulation), over shape tables with SD 1.5 shapes
 * and awkward ones. Tag "gpu" (make test-gpu); a "fast" case checks that asking for CUDA where
 * there is none is an error.
 *
 * The Check parent never calls CUDA: the suite constructor probes for a GPU in a forked child
 * (fork + dcu_device_count, result through the exit status and a pipe); each test body runs in
 * Check's own forked child. Without a GPU (or without a CUDA build) every gpu test prints one
 * "# skip" line and passes, unless DIFFAUG_REQUIRE_GPU=1 (make test-gpu), where it fails loudly.
 *
 * Tolerances (max abs error; relative ones are scaled by the reference's max |value|), one row each:
 *   | op                          | tolerance              | why                                           |
 *   | f16/bf16 conversion         | bit-exact              | same integer algorithm as kcommon.h           |
 *   | add/mul/bias/move/gather    | 2e-6 / exact           | one f32 rounding (fma in scale) / pure copies |
 *   | activations                 | 1e-5                   | CUDA expf <= 2 ulp, erfcf <= 4 ulp, |y| <= 12 |
 *   | GEGLU                       | 4e-5                   | the same, times |hidden| <= 6 (|y| <= 36)     |
 *   | GroupNorm / LayerNorm       | 2e-5 (1e-4 mean 1e4)   | f32 two-pass stats; outputs O(1..4)           |
 *   | softmax                     | 1e-6                   | probabilities <= 1                            |
 *   | timestep embedding          | 3e-4                   | sin/cos of f32 arguments up to 1e3 rad: 1 ulp |
 *   |                             |                        | of the argument is 6e-5, and CUDA's expf (2   |
 *   |                             |                        | ulp) feeds it; the CPU's f32 path gets 1e-4   |
 *   | linear/conv f32 weights     | 2e-5 rel               | FP32 GEMM, K <= 4608 terms                    |
 *   | linear/conv f16 weights     | 4e-3 rel, cos 0.99999  | activations rounded to f16 (2^-11 each)       |
 *   | linear/conv bf16 weights    | 3e-2 rel, cos 0.9999   | activations rounded to bf16 (2^-8 each)       |
 *   | attention (FP32 v1)         | 2e-5                   | f32 dots over d <= 512, |o| <= max|v| = 1     |
 *
 * Whole networks and the pipeline ("cuda" vs "cpu" through tests/netcheck.c: the same model file, the
 * same inputs, weights adopted by each backend at bind time). The CPU multiplies the stored 16-bit
 * weights with f32 activations; CUDA also rounds the GEMM's activations to the weight's type, so the
 * error budget grows with the number of GEMMs in series (tiny UNet: ~40 on the longest path, full
 * SD 1.5: ~150; residual adds keep it from compounding multiplicatively). Per GEMM the relative L2
 * error is ~ulp/sqrt(12) of the activation type: 2.8e-4 (f16), 2.3e-3 (bf16), ~1e-6 (f32, summation
 * order only). Bounds: cosine (the sharp check: a wrong index or tile gives < 0.9 on random
 * weights) and max |error| relative to the reference's max |value| (catches a local blow-up):
 *   | network output (tiny models)     | f32              | f16              | bf16             |
 *   | UNet eps, VAE, CLIP states       | cos 0.99999, 1e-3| cos 0.99995, 2e-2| cos 0.999, 0.1   |
 *   |   (f32: DIFFAUG_CUDA_ATTN=fp32;  | with v2's default f16 tensor-core attention an f32    |
 *   |   default attention: f16 bounds) | model gets the f16 bounds: attention rounds Q,K,V,P)  |
 *   | txt2img latents (3 steps, CFG)   | cos 0.9999, 1e-2 | cos 0.999, 0.1   |  -               |
 *   |   (f32 with fp32 attention)      |                  |                  |                  |
 *   | txt2img RGB8 pixels              | max 3 levels     | max 16 levels    |  -               |
 *   | full SD 1.5 UNet step (f16)      |  -               | cos 0.999, 5e-2  |  -               |
 * The f32 bounds are 10-100x the expected error (summation order over ~40 ops). The 16-bit ones are
 * checked without a GPU by the "cuda-tolerances" case (tag model): the same networks on the CPU with
 * the CUDA backend's GEMM input rounding and the default attention's Q/K/V rounding to f16 emulated
 * (tests/netcheck.h "cpu-tc") reach, worst output over the networks (2026-12-07; the case prints one
 * line per network and dtype): f32 with f16 attention 1-cos 1.1e-8, max err 2.1e-4 of max|ref| (CLIP
 * text); f16 1.5e-6, 1.8e-3 (VAE); bf16 9.1e-5, 1.8e-2 (VAE). The bounds leave 10-30x (1-cos) and
 * 5-10x (max) of margin for what the emulation leaves out (P's rounding, f32 summation order,
 * cuBLAS's accumulation).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "backend.h"
#include "conv.h"
#include "convert.h"
#include "gemm.h"
#include "norm.h"
#include "ops.h"
#include "netcheck.h"
#include "sampler.h"
#include "schedule.h"
#include "testutil.h"
#include "util.h"
#ifdef DIFFAUG_HAVE_CUDA
#include "dcuda.h"
#endif

/* ---- GPU probe (parent: fork only) ------------------------------------------------------------- */
static int g_have_gpu;
static char g_why[512] = "not probed";

static void probe_gpu(void) {
#ifndef DIFFAUG_HAVE_CUDA
    snprintf(g_why, sizeof g_why, "this build has no CUDA backend (nvcc was not found at build time, or NO_CUDA=1)");
    g_have_gpu = 0;
#else
    int fd[2];
    if (pipe(fd) != 0) {
        snprintf(g_why, sizeof g_why, "pipe() failed");
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        char msg[512] = "";
        int n = 0;
        int rc = dcu_device_count(&n, msg, sizeof msg);
        if (rc == 0 && n == 0) snprintf(msg, sizeof msg, "cudaGetDeviceCount reports 0 devices");
        if (rc == 0 && n > 0) {
            dcu_device_info info;
            if (dcu_device_info_get(0, &info, msg, sizeof msg) == 0)
                snprintf(msg, sizeof msg, "%s, compute %d.%d, %d SMs", info.name, info.major, info.minor,
                         info.multiprocessors);
            else n = 0;
        }
        ssize_t w = write(fd[1], msg, strlen(msg));
        (void)w;
        _exit(rc == 0 && n > 0 ? 0 : 1);
    }
    close(fd[1]);
    ssize_t r = pid > 0 ? read(fd[0], g_why, sizeof g_why - 1) : -1;
    g_why[r > 0 ? r : 0] = 0;
    close(fd[0]);
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) g_have_gpu = 1;
    else if (!g_why[0]) snprintf(g_why, sizeof g_why, "GPU probe child failed");
#endif
}

static int require_gpu(void) {
    const char *e = getenv("DIFFAUG_REQUIRE_GPU");
    return e && !strcmp(e, "1");
}

/* Start of every gpu test: one line and return when there is nothing to test on. */
#define GPU_OR_SKIP()                                                                                         \
    do {                                                                                                      \
        if (!g_have_gpu) {                                                                                    \
            ck_assert_msg(!require_gpu(), "DIFFAUG_REQUIRE_GPU=1 but no usable GPU: %s", g_why);              \
            printf("# skip %s: no GPU (%s)\n", __func__, g_why);                                              \
            return;                                                                                           \
        }                                                                                                     \
    } while (0)

/* ---- helpers ------------------------------------------------------------------------------------ */
static uint64_t g_rng = 88172645463325252ull;
static float frand(float lo, float hi) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return lo + (hi - lo) * (float)((g_rng >> 40) * (1.0 / 16777216.0));
}
static float *rand_buf(size_t n, float lo, float hi) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand(lo, hi);
    return p;
}

/* A CUDA backend with at least ws bytes of scratch, through the plan / commit protocol. */
static da_backend *gpu_backend(size_t ws) {
    da_error err;
    da_backend *be = da_backend_new("cuda", &err);
    ck_assert_msg(be != NULL, "da_backend_new(cuda): %s", err.msg);
    ck_assert_str_eq(be->ops->name, "cuda");
    da_backend_plan(be);
    da_op_need(be, ws);
    ck_assert_msg(da_backend_commit(be, &err) == DA_OK, "commit: %s", err.msg);
    return be;
}

static void *dev_alloc(da_backend *be, size_t bytes) {
    void *p = be->ops->mem_alloc(be, bytes ? bytes : 4);
    ck_assert_ptr_nonnull(p);
    return p;
}
static float *dev_from(da_backend *be, const float *host, size_t n) {
    float *d = dev_alloc(be, n * sizeof(float));
    da_op_upload(be, d, host, n);
    return d;
}
static float *host_from(da_backend *be, const float *dev, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = NAN; /* a download that does not happen cannot pass */
    da_op_download(be, h, dev, n);
    return h;
}
static void assert_ok(da_backend *be) {
    da_error err;
    ck_assert_msg(da_backend_take_error(be, &err) == DA_OK, "backend error: %s", err.msg);
}
static double max_abs_of(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}
/* A weight of type t on the device, plus its exact values as f32 on the host for the reference. */
static da_w dev_weight(da_backend *be, const float *vals, size_t n, dk_wtype t, void **host_store) {
    void *h = malloc(n * dk_wtype_size(t));
    if (t == DK_F32) memcpy(h, vals, n * 4);
    else if (t == DK_F16) dk_f32_to_f16_n_ref(h, vals, n);
    else dk_f32_to_bf16_n_ref(h, vals, n);
    da_w w = {h, t, 1, {(int64_t)n}};
    ck_assert_int_eq(da_backend_adopt(be, &w, n * dk_wtype_size(t)), DA_OK);
    ck_assert_ptr_ne(w.p, h); /* now a device copy */
    *host_store = h;
    return w;
}
static const char *tname(dk_wtype t) { return t == DK_F32 ? "f32" : t == DK_F16 ? "f16" : "bf16"; }

/* ---- conversions: bit-exact against kcommon.h --------------------------------------------------- */
#ifdef DIFFAUG_HAVE_CUDA
START_TEST(test_gpu_convert) {
    GPU_OR_SKIP();
    dcu_ctx *c;
    char msg[512];
    ck_assert_msg(dcu_ctx_create(&c, 0, msg, sizeof msg) == 0, "%s", msg);
    enum { N = 1 << 16 };
    float *x = malloc(N * 4), *back = malloc(N * 4), *refback = malloc(N * 4);
    uint16_t *h = malloc(N * 2), *ref = malloc(N * 2), *bits = malloc(N * 2);
    /* special values first, then random bit patterns over every exponent */
    const float sp[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 65504.0f, 65519.99f, 65520.0f, 1e-8f, 5.96e-8f, 2.98e-8f,
                        -3e-5f, 6.1035156e-05f, 1.0009765625f, 1.00048828125f, 3.0e38f};
    for (int i = 0; i < N; i++) {
        uint32_t u = (uint32_t)(i * 2654435761u) ^ (uint32_t)(i << 7);
        x[i] = i < (int)(sizeof sp / sizeof sp[0]) ? sp[i] : dk_bits_f32(u);
        bits[i] = (uint16_t)(i * 40503u);
    }
    void *dx, *dh, *db;
    ck_assert_int_eq(dcu_malloc(c, &dx, N * 4), 0);
    ck_assert_int_eq(dcu_malloc(c, &dh, N * 2), 0);
    ck_assert_int_eq(dcu_malloc(c, &db, N * 4), 0);
    for (int kind = 0; kind < 2; kind++) {
        ck_assert_int_eq(dcu_upload(c, dx, x, N * 4), 0);
        ck_assert_int_eq(kind ? dcu_f32_to_bf16(c, dh, dx, N) : dcu_f32_to_f16(c, dh, dx, N), 0);
        ck_assert_int_eq(dcu_download(c, h, dh, N * 2), 0);
        kind ? dk_f32_to_bf16_n_ref(ref, x, N) : dk_f32_to_f16_n_ref(ref, x, N);
        for (int i = 0; i < N; i++)
            ck_assert_msg(h[i] == ref[i], "%s(%a): gpu 0x%04x cpu 0x%04x", kind ? "bf16" : "f16", x[i], h[i], ref[i]);
        /* and back, from every 16-bit pattern class */
        ck_assert_int_eq(dcu_upload(c, dh, bits, N * 2), 0);
        ck_assert_int_eq(kind ? dcu_bf16_to_f32(c, db, dh, N) : dcu_f16_to_f32(c, db, dh, N), 0);
        ck_assert_int_eq(dcu_download(c, back, db, N * 4), 0);
        kind ? dk_bf16_to_f32_n_ref(refback, bits, N) : dk_f16_to_f32_n_ref(refback, bits, N);
        ck_assert_int_eq(memcmp(back, refback, N * 4), 0);
    }
    dcu_free(c, dx), dcu_free(c, dh), dcu_free(c, db);
    dcu_ctx_destroy(c);
    free(x), free(back), free(refback), free(h), free(ref), free(bits);
}
END_TEST

START_TEST(test_gpu_softmax) {
    GPU_OR_SKIP();
    dcu_ctx *c;
    char msg[512];
    ck_assert_msg(dcu_ctx_create(&c, 0, msg, sizeof msg) == 0, "%s", msg);
    const size_t shapes[][2] = {{1, 1}, {77, 77}, {16, 4096}, {3, 1001}, {4096, 77}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t M = shapes[s][0], D = shapes[s][1], n = M * D;
        float *x = rand_buf(n, -30, 30), *y = malloc(n * 4), *yr = malloc(n * 4);
        void *d;
        ck_assert_int_eq(dcu_malloc(c, &d, n * 4), 0);
        ck_assert_int_eq(dcu_upload(c, d, x, n * 4), 0);
        ck_assert_msg(dcu_softmax(c, d, d, M, D) == 0, "%s", c->msg); /* in place */
        ck_assert_int_eq(dcu_download(c, y, d, n * 4), 0);
        dk_softmax_ref(yr, x, M, D);
        char lab[64];
        snprintf(lab, sizeof lab, "softmax %zux%zu", M, D);
        DA_ASSERT_CLOSE(lab, y, yr, n, 0.9999999, 1e-6);
        dcu_free(c, d);
        free(x), free(y), free(yr);
    }
    dcu_ctx_destroy(c);
}
END_TEST
#endif

/* ---- elementwise ------------------------------------------------------------------------------- */
START_TEST(test_gpu_activations) {
    GPU_OR_SKIP();
    da_backend *be = gpu_backend(0);
    const size_t sizes[] = {1, 31, 1000003, 2 * 320 * 64 * 64};
    void (*refs[])(float *, const float *, size_t) = {dk_silu_ref, dk_gelu_ref, dk_gelu_tanh_ref, dk_quick_gelu_ref};
    for (size_t s = 0; s < 4; s++)
        for (int k = 0; k < 4; k++) {
            size_t n = sizes[s];
            float *x = rand_buf(n, -12, 12), *yr = malloc(n * 4);
            float *dx = dev_from(be, x, n), *dy = dev_alloc(be, n * 4);
            da_op_act(be, (da_act)k, dy, dx, n);
            da_op_act(be, (da_act)k, dx, dx, n); /* in place */
            float *y = host_from(be, dy, n), *y2 = host_from(be, dx, n);
            assert_ok(be);
            refs[k](yr, x, n);
            char lab[64];
            snprintf(lab, sizeof lab, "act %d n=%zu", k, n);
            DA_ASSERT_CLOSE(lab, y, yr, n, 0.9999999, 1e-5);
            DA_ASSERT_CLOSE(lab, y2, yr, n, 0.9999999, 1e-5);
            be->ops->mem_free(be, dx), be->ops->mem_free(be, dy);
            free(x), free(yr), free(y), free(y2);
        }
    /* GEGLU: SD's [2*4096, 2*1280] and an odd F */
    const size_t gs[][2] = {{2 * 4096, 1280}, {3, 7}};
    for (int s = 0; s < 2; s++) {
        size_t M = gs[s][0], F = gs[s][1];
        float *x = rand_buf(M * 2 * F, -6, 6), *yr = malloc(M * F * 4);
        float *dx = dev_from(be, x, M * 2 * F), *dy = dev_alloc(be, M * F * 4);
        da_op_geglu(be, dy, dx, M, F);
        float *y = host_from(be, dy, M * F);
        assert_ok(be);
        dk_geglu_ref(yr, x, M, F);
        DA_ASSERT_CLOSE("geglu", y, yr, M * F, 0.9999999, 4e-5);
        be->ops->mem_free(be, dx), be->ops->mem_free(be, dy);
        free(x), free(yr), free(y);
    }
    da_backend_free(be);
}
END_TEST

START_TEST(test_gpu_arith) {
    GPU_OR_SKIP();
    da_backend *be = gpu_backend(0);
    const size_t shapes[][3] = {{2, 320, 64 * 64}, {1, 3, 7}, {2, 1280, 64}, {1, 1, 1}}; /* N, C, HW */
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t N = shapes[s][0], C = shapes[s][1], HW = shapes[s][2], n = N * C * HW;
        float *a = rand_buf(n, -10, 10), *b = rand_buf(n, -10, 10), *bias = rand_buf(C, -1, 1), *r = malloc(n * 4);
        float *row = rand_buf(HW, -1, 1);
        float *da = dev_from(be, a, n), *db = dev_from(be, b, n), *dbias = dev_from(be, bias, C), *drow = dev_from(be, row, HW);
        float *dy = dev_alloc(be, n * 4);
        float *y;
        da_op_add(be, dy, da, db, n);
        y = host_from(be, dy, n), dk_add_ref(r, a, b, n);
        DA_ASSERT_CLOSE("add", y, r, n, 0.9999999, 2e-6); free(y);
        da_op_mul(be, dy, da, db, n);
        y = host_from(be, dy, n), dk_mul_ref(r, a, b, n);
        DA_ASSERT_CLOSE("mul", y, r, n, 0.9999999, 1e-5); free(y); /* |a*b| <= 100: one ulp is 7.6e-6 */
        da_op_scale(be, dy, da, 0.18215f, -0.5f, n);
        y = host_from(be, dy, n), dk_scale_ref(r, a, 0.18215f, -0.5f, n);
        DA_ASSERT_CLOSE("scale", y, r, n, 0.9999999, 2e-6); free(y);
        da_op_add_channel_bias(be, dy, da, dbias, N, C, HW);
        y = host_from(be, dy, n), dk_add_channel_bias_ref(r, a, bias, DK_F32, N, C, HW);
        DA_ASSERT_CLOSE("add_channel_bias", y, r, n, 0.9999999, 2e-6); free(y);
        da_op_add_row(be, dy, da, drow, N * C, HW);
        y = host_from(be, dy, n), dk_add_row_ref(r, a, row, DK_F32, N * C, HW);
        DA_ASSERT_CLOSE("add_row", y, r, n, 0.9999999, 2e-6); free(y);
        da_op_add(be, da, da, db, n); /* residual add in place */
        y = host_from(be, da, n), dk_add_ref(r, a, b, n);
        DA_ASSERT_CLOSE("add in place", y, r, n, 0.9999999, 2e-6); free(y);
        assert_ok(be);
        be->ops->mem_free(be, da), be->ops->mem_free(be, db), be->ops->mem_free(be, dbias);
        be->ops->mem_free(be, drow), be->ops->mem_free(be, dy);
        free(a), free(b), free(bias), free(r), free(row);
    }
    da_backend_free(be);
}
END_TEST

/* ---- data movement: exact ---------------------------------------------------------------------- */
START_TEST(test_gpu_movement) {
    GPU_OR_SKIP();
    da_backend *be = gpu_backend(0);
    /* upsample [N, C, H, W] */
    const size_t us[][4] = {{2, 1280, 8, 8}, {1, 512, 64, 64}, {1, 3, 5, 7}};
    for (int s = 0; s < 3; s++) {
        size_t N = us[s][0], C = us[s][1], H = us[s][2], W = us[s][3], n = N * C * H * W;
        float *x = rand_buf(n, -1, 1), *r = malloc(4 * n * 4);
        float *dx = dev_from(be, x, n), *dy = dev_alloc(be, 4 * n * 4);
        da_op_upsample2x(be, dy, dx, N, C, H, W);
        float *y = host_from(be, dy, 4 * n);
        dk_upsample2x_nearest_ref(r, x, N, C, H, W);
        DA_ASSERT_CLOSE("upsample2x", y, r, 4 * n, 1.0 - 1e-12, 0.0);
        be->ops->mem_free(be, dx), be->ops->mem_free(be, dy);
        free(x), free(r), free(y);
    }
    /* concat a [N, Ca, HW] ++ b [N, Cb, HW]: the UNet skip connections and the pix2pix 4+4 input */
    const size_t cs[][4] = {{2, 1280, 640, 16 * 16}, {2, 4, 4, 64 * 64}, {3, 1, 2, 5}};
    for (int s = 0; s < 3; s++) {
        size_t N = cs[s][0], Ca = cs[s][1], Cb = cs[s][2], HW = cs[s][3], n = N * (Ca + Cb) * HW;
        float *a = rand_buf(N * Ca * HW, -1, 1), *b = rand_buf(N * Cb * HW, -1, 1), *r = malloc(n * 4);
        float *da = dev_from(be, a, N * Ca * HW), *db = dev_from(be, b, N * Cb * HW), *dy = dev_alloc(be, n * 4);
        da_op_concat_channels(be, dy, da, Ca, db, Cb, N, HW);
        float *y = host_from(be, dy, n);
        dk_concat_channels_ref(r, a, Ca, b, Cb, N, HW);
        DA_ASSERT_CLOSE("concat", y, r, n, 1.0 - 1e-12, 0.0);
        be->ops->mem_free(be, da), be->ops->mem_free(be, db), be->ops->mem_free(be, dy);
        free(a), free(b), free(r), free(y);
    }
    /* transpose [B, M, N] -> [B, N, M]: NCHW <-> tokens */
    const size_t ts[][3] = {{2, 320, 4096}, {2, 4096, 320}, {1, 33, 31}, {3, 1, 70}};
    for (int s = 0; s < 4; s++) {
        size_t B = ts[s][0], M = ts[s][1], N = ts[s][2], n = B * M * N;
        float *x = rand_buf(n, -1, 1), *r = malloc(n * 4);
        float *dx = dev_from(be, x, n), *dy = dev_alloc(be, n * 4);
        da_op_transpose(be, dy, dx, B, M, N);
        float *y = host_from(be, dy, n);
        for (size_t b = 0; b < B; b++)
            for (size_t m = 0; m < M; m++)
                for (size_t j = 0; j < N; j++) r[b * M * N + j * M + m] = x[b * M * N + m * N + j];
        DA_ASSERT_CLOSE("transpose", y, r, n, 1.0 - 1e-12, 0.0);
        be->ops->mem_free(be, dx), be->ops->mem_free(be, dy);
        free(x), free(r), free(y);
    }
    /* gather_rows from a token-embedding table of each dtype */
    for (int t = 0; t < 3; t++) {
        size_t rows = 1000, D = 768, n = 77;
        float *tab = rand_buf(rows * D, -1, 1), *r = malloc(n * D * 4);
        void *hstore;
        da_w w = dev_weight(be, tab, rows * D, (dk_wtype)t, &hstore);
        int32_t ids[77];
        for (size_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 613 + 7) % rows);
        ids[n - 1] = (int32_t)rows - 1;
        float *dy = dev_alloc(be, n * D * 4);
        da_op_gather_rows(be, dy, &w, ids, n, D);
        float *y = host_from(be, dy, n * D);
        for (size_t i = 0; i < n; i++)
            for (size_t d = 0; d < D; d++) r[i * D + d] = dk_load_w(hstore, (dk_wtype)t, (size_t)ids[i] * D + d);
        DA_ASSERT_CLOSE(tname((dk_wtype)t), y, r, n * D, 1.0 - 1e-12, 0.0);
        be->ops->mem_free(be, dy);
        free(tab), free(r), free(y), free(hstore);
    }
    /* copy, overlapping both ways (memmove semantics) */
    {
        size_t n = 1 << 20;
        float *x = rand_buf(n + 1000, -1, 1);
        float *dx = dev_from(be, x, n + 1000);
        da_op_copy(be, dx + 1000, dx, n);
        float *y = host_from(be, dx + 1000, n);
        DA_ASSERT_CLOSE("copy overlapping up", y, x, n, 1.0 - 1e-12, 0.0);
        free(y);
        da_op_copy(be, dx, dx + 1000, n);
        y = host_from(be, dx, n);
        DA_ASSERT_CLOSE("copy overlapping down", y, x, n, 1.0 - 1e-12, 0.0);
        be->ops->mem_free(be, dx);
        free(x), free(y);
    }
    assert_ok(be);
    da_backend_free(be);
}
END_TEST

START_TEST(test_gpu_timestep_embedding) {
    GPU_OR_SKIP();
    da_backend *be = gpu_backend(0);
    float t[5] = {0.0f, 1.0f, 261.5f, 999.0f, 500.25f};
    const int dims[] = {320, 7, 2}; /* dim 1 is left out: dk_timestep_embedding_ref writes nothing for it */
    for (int s = 0; s < 3; s++) {
        dk_temb_params p = dk_temb_params_sd(dims[s]);
        if (s == 1) p.flip_sin_to_cos = 0, p.downscale_freq_shift = 1.0f;
        size_t n = 5 * (size_t)p.dim;
        float *r = malloc(n * 4), *dt = dev_from(be, t, 5), *dy = dev_alloc(be, n * 4);
        da_op_timestep_embedding(be, dy, dt, 5, &p);
        float *y = host_from(be, dy, n);
        dk_timestep_embedding_ref(r, t, 5, &p);
        DA_ASSERT_CLOSE("temb", y, r, n, 0.99999, 3e-4);
        be->ops->mem_free(be, dt), be->ops->mem_free(be, dy);
        free(r), free(y);
    }
    assert_ok(be);
    da_backend_free(be);
}
END_TEST

/* ---- normalisation ------------------------------------------------------------------------------ */
START_TEST(test_gpu_groupnorm) {
    GPU_OR_SKIP();
    da_backend *be = gpu_backend(0);
    struct { size_t N, C, HW; int G; float eps; int silu; dk_wtype wt; float mean, spread; } cs[] = {
        {2, 320, 64 * 64, 32, 1e-5f, 1, DK_F32, 0, 3},      /* UNet resnet */
        {1, 128, 128 * 128, 32, 1e-6f, 1, DK_F16, 0, 3},    /* VAE decoder, f16 affine */
        {1, 512, 64 * 64, 32, 1e-6f, 0, DK_BF16, 1e4f, 5},  /* VAE mid: large mean, small spread */
        {2, 6, 37, 3, 1e-5f, 0, DK_F32, -2, 1},             /* odd HW */
        {1, 4, 1, 1, 1e-5f, 1, DK_F32, 0, 1},               /* one group, HW 1 */
        {3, 64, 13 * 11, 1, 1e-6f, 1, DK_F16, 0.5f, 2},     /* groups 1 */
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        size_t n = cs[s].N * cs[s].C * cs[s].HW;
        float *x = rand_buf(n, cs[s].mean - cs[s].spread, cs[s].mean + cs[s].spread), *r = malloc(n * 4);
        float *g = rand_buf(cs[s].C, 0.5f, 1.5f), *b = rand_buf(cs[s].C, -0.5f, 0.5f);
        void *hg, *hb;
        da_w wg = dev_weight(be, g, cs[s].C, cs[s].wt, &hg), wb = dev_weight(be, b, cs[s].C, cs[s].wt, &hb);
        dk_groupnorm_params p = {cs[s].N, cs[s].C, cs[s].HW, cs[s].G, cs[s].eps, wg.p, wb.p, cs[s].wt, cs[s].silu};
        float *dx = dev_from(be, x, n);
        da_op_groupnorm(be, dx, dx, &p); /* in place, as the resnets call it */
        float *y = host_from(be, dx, n);
        p.gamma = hg, p.beta = hb;
        dk_groupnorm_ref(r, x, &p);
        char lab[96];
        snprintf(lab, sizeof lab, "groupnorm case %zu (%s affine)", s, tname(cs[s].wt));
        DA_ASSERT_CLOSE(lab, y, r, n, 0.999999, cs[s].mean > 100 ? 1e-4 : 2e-5);
        be->ops->mem_free(be, dx);
        free(x), free(r), free(g), free(b), free(hg), free(hb), free(y);
    }
    assert_ok(be);
    da_backend_free(be);
}
END_TEST

START_TEST(test_gpu_layernorm) {
    GPU_OR_SKIP();
    da_backend *be = gpu_backend(0);
    const size_t ls[][2] = {{2 * 4096, 320}, {77, 768}, {2 * 64, 1280}, {3, 1}, {5, 1001}};
    for (size_t s = 0; s < sizeof ls / sizeof ls[0]; s++) {
        size_t M = ls[s][0], D = ls[s][1], n = M * D;
        float *x = rand_buf(n, -4, 6), *r = malloc(n * 4), *g = rand_buf(D, 0.5f, 1.5f), *b = rand_buf(D, -1, 1);
        float *dx = dev_from(be, x, n), *dg = dev_from(be, g, D), *db = dev_from(be, b, D), *dy = dev_alloc(be, n * 4);
        da_op_layernorm(be, dy, dx, M, D, 1e-5f, dg, db);
        float *y = host_from(be, dy, n);
        dk_layernorm_ref(r, x, M, D, 1e-5f, g, b, DK_F32);
        DA_ASSERT_CLOSE("layernorm", y, r, n, 0.999999, 2e-5);
        free(y);
        da_op_layernorm(be, dy, dx, M, D, 1e-5f, NULL, NULL);
        y = host_from(be, dy, n);
        dk_layernorm_ref(r, x, M, D, 1e-5f, NULL, NULL, DK_F32);
        DA_ASSERT_CLOSE("layernorm no affine", y, r, n, 0.999999, 2e-5);
        be->ops->mem_free(be, dx), be->ops->mem_free(be, dg), be->ops->mem_free(be, db), be->ops->mem_free(be, dy);
        free(x), free(r), free(g), free(b), free(y);
    }
    assert_ok(be);
    da_backend_free(be);
}
END_TEST

/* ---- GEMM: linear and conv2d -------------------------------------------------------------------- */
static void gemm_tol(dk_wtype t, double ref_max, double *min_cos, double *max_abs) {
    double rel = t == DK_F32 ? 2e-5 : t == DK_F16 ? 4e-3 : 3e-2;
    *min_cos = t == DK_F32 ? 0.9999999 : t == DK_F16 ? 0.99999 : 0.9999;
    *max_abs = rel * (ref_max > 1 ? ref_max : 1);
}

START_TEST(test_gpu_linear) {
    GPU_OR_SKIP();
    setenv("DIFFAUG_CUDA_GEMM", "gemmex", 1); /* this test is the v1 path's; cuBLASLt: test_gpu_linear_lt */
    /* M, N, K: attention projections, the GEGLU / MLP widths, time embedding, degenerate sizes */
    const int shapes[][3] = {{37, 19, 53}, {1024, 320, 320}, {77, 3072, 768}, {154, 320, 768}, {2, 1280, 320},
                             {1, 1, 1}, {33, 5, 1}};
    enum { NS = sizeof shapes / sizeof shapes[0] };
    da_backend *probe = gpu_backend(0);
    size_t ws = 0;
    for (int s = 0; s < NS; s++) {
        size_t w = probe->ops->linear_ws(shapes[s][0], shapes[s][1], shapes[s][2]);
        ws = w > ws ? w : ws;
    }
    da_backend_free(probe);
    da_backend *be = gpu_backend(ws);
    for (int s = 0; s < NS; s++)
        for (int t = 0; t < 3; t++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            float *x = rand_buf((size_t)M * K, -2, 2), *wv = rand_buf((size_t)N * K, -0.1f, 0.1f);
            float *bias = rand_buf(N, -1, 1), *r = malloc((size_t)M * N * 4);
            void *hw;
            da_w w = dev_weight(be, wv, (size_t)N * K, (dk_wtype)t, &hw);
            w.rank = 2, w.shape[0] = N, w.shape[1] = K;
            float *dx = dev_from(be, x, (size_t)M * K), *db = dev_from(be, bias, N), *dy = dev_alloc(be, (size_t)M * N * 4);
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                da_op_linear(be, M, N, K, dx, &w, with_bias ? db : NULL, dy);
                float *y = host_from(be, dy, (size_t)M * N);
                assert_ok(be);
                linear_ref(M, N, K, x, hw, (dk_wtype)t, with_bias ? bias : NULL, r);
                double mc, ma;
                gemm_tol((dk_wtype)t, max_abs_of(r, (size_t)M * N), &mc, &ma);
                char lab[96];
                snprintf(lab, sizeof lab, "linear %dx%dx%d %s%s", M, N, K, tname((dk_wtype)t), with_bias ? " +bias" : "");
                DA_ASSERT_CLOSE(lab, y, r, (size_t)M * N, mc, ma);
                free(y);
            }
            be->ops->mem_free(be, dx), be->ops->mem_free(be, db), be->ops->mem_free(be, dy);
            free(x), free(wv), free(bias), free(r), free(hw);
        }
    da_backend_free(be);
}
END_TEST

static dk_conv2d conv_shape(int N, int C, int H, int W, int OC, int KH, int KW, int sh, int sw, int pt, int pb, int pl,
                            int pr, int dh, int dw) {
    return (dk_conv2d){N, C, H, W, OC, KH, KW, sh, sw, pt, pb, pl, pr, dh, dw};
}

START_TEST(test_gpu_conv2d) {
    GPU_OR_SKIP();
    setenv("DIFFAUG_CUDA_CONV", "im2col", 1); /* this test is the v1 path's; tensor cores: test_gpu_conv2d_tc */
    const dk_conv2d cs[] = {
        conv_shape(2, 4, 64, 64, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),   /* UNet conv_in (OC cut from 320) */
        conv_shape(1, 64, 32, 32, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),  /* resnet 3x3 */
        conv_shape(1, 32, 17, 17, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),  /* UNet downsample, odd size */
        conv_shape(1, 16, 20, 20, 16, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1),  /* VAE encoder downsample: pad right/bottom */
        conv_shape(2, 96, 13, 11, 40, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1),  /* 1x1 shortcut / proj */
        conv_shape(1, 8, 15, 15, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2),    /* dilation 2 */
        conv_shape(1, 5, 9, 7, 3, 3, 1, 1, 2, 1, 1, 0, 0, 1, 1),      /* non-square kernel and stride */
        conv_shape(1, 512, 64, 64, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),  /* C*9 = 4608: im2col in 2 chunks */
        conv_shape(1, 3, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1),      /* 1x1 image */
    };
    enum { NC = sizeof cs / sizeof cs[0] };
    da_backend *probe = gpu_backend(0);
    size_t ws = 0;
    for (int s = 0; s < NC; s++) {
        size_t w = probe->ops->conv2d_ws(&cs[s]);
        ws = w > ws ? w : ws;
    }
    da_backend_free(probe);
    da_backend *be = gpu_backend(ws);
    for (int s = 0; s < NC; s++)
        for (int t = 0; t < 3; t++) {
            const dk_conv2d *c = &cs[s];
            int OH = dk_conv2d_oh(c), OW = dk_conv2d_ow(c);
            ck_assert_int_gt(OH, 0);
            size_t nx = (size_t)c->N * c->C * c->H * c->W, nw = (size_t)c->OC * c->C * c->KH * c->KW;
            size_t ny = (size_t)c->N * c->OC * OH * OW;
            float *x = rand_buf(nx, -2, 2), *wv = rand_buf(nw, -0.2f, 0.2f), *bias = rand_buf(c->OC, -1, 1);
            float *r = malloc(ny * 4);
            void *hw;
            da_w w = dev_weight(be, wv, nw, (dk_wtype)t, &hw);
            w.rank = 4, w.shape[0] = c->OC, w.shape[1] = c->C, w.shape[2] = c->KH, w.shape[3] = c->KW;
            float *dx = dev_from(be, x, nx), *db = dev_from(be, bias, c->OC), *dy = dev_alloc(be, ny * 4);
            da_op_conv2d(be, c, dx, &w, db, dy);
            float *y = host_from(be, dy, ny);
            assert_ok(be);
            conv2d_ref(c, x, hw, (dk_wtype)t, bias, r);
            double mc, ma;
            gemm_tol((dk_wtype)t, max_abs_of(r, ny), &mc, &ma);
            char lab[128];
            snprintf(lab, sizeof lab, "conv2d case %d [%d,%d,%d,%d]->%d k%dx%d %s", s, c->N, c->C, c->H, c->W, c->OC,
                     c->KH, c->KW, tname((dk_wtype)t));
            DA_ASSERT_CLOSE(lab, y, r, ny, mc, ma);
            be->ops->mem_free(be, dx), be->ops->mem_free(be, db), be->ops->mem_free(be, dy);
            free(x), free(wv), free(bias), free(r), free(hw), free(y);
        }
    da_backend_free(be);
}
END_TEST

/* ---- attention ---------------------------------------------------------------------------------- */
START_TEST(test_gpu_attention) {
    GPU_OR_SKIP();
    setenv("DIFFAUG_CUDA_ATTN", "fp32", 1); /* this test is the v1 kernel's (tolerance 2e-5) */
    /* B, H, Nq, Nk, d, causal, fused (Q, K, V interleaved in one [B, N, 3*H*d] buffer) */
    const int cs[][7] = {
        {1, 2, 1024, 1024, 40, 0, 0}, /* SD 1.5 self-attention at 32x32 (heads cut from 8) */
        {2, 8, 256, 77, 40, 0, 0},    /* cross-attention to the text tokens */
        {1, 4, 256, 77, 80, 0, 0},    /* d 80 */
        {1, 2, 64, 64, 160, 0, 1},    /* d 160, fused QKV strides */
        {1, 1, 300, 300, 512, 0, 0},  /* VAE mid-block single head */
        {2, 12, 77, 77, 64, 1, 0},    /* CLIP text, causal */
        {1, 3, 70, 70, 33, 1, 1},     /* odd d, causal, fused */
        {1, 1, 1, 1, 1, 0, 0},
        {3, 1, 5, 129, 64, 0, 0},     /* Nk not a tile multiple */
    };
    da_backend *be = gpu_backend(0);
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        int B = cs[s][0], H = cs[s][1], Nq = cs[s][2], Nk = cs[s][3], d = cs[s][4], causal = cs[s][5], fused = cs[s][6];
        dk_attn_params p = dk_attn_params_packed(B, H, Nq, Nk, d, causal);
        size_t row = (size_t)H * d;
        float *q, *k, *v, *buf = NULL;
        size_t nq = (size_t)B * Nq * row, nk = (size_t)B * Nk * row;
        float *dq, *dk, *dv, *dbuf = NULL;
        if (fused) {
            ck_assert_int_eq(Nq, Nk);
            buf = rand_buf(3 * nq, -1, 1);
            q = buf, k = buf + row, v = buf + 2 * row;
            p.q_row = p.k_row = p.v_row = 3 * row;
            dbuf = dev_from(be, buf, 3 * nq);
            dq = dbuf, dk = dbuf + row, dv = dbuf + 2 * row;
        } else {
            q = rand_buf(nq, -1, 1), k = rand_buf(nk, -1, 1), v = rand_buf(nk, -1, 1);
            dq = dev_from(be, q, nq), dk = dev_from(be, k, nk), dv = dev_from(be, v, nk);
        }
        float *r = malloc(nq * 4), *dout = dev_alloc(be, nq * 4);
        da_op_attention(be, &p, dq, dk, dv, dout);
        float *o = host_from(be, dout, nq);
        assert_ok(be);
        dk_attention_ref(&p, q, k, v, r);
        char lab[128];
        snprintf(lab, sizeof lab, "attention B%d H%d Nq%d Nk%d d%d%s%s", B, H, Nq, Nk, d, causal ? " causal" : "",
                 fused ? " fused" : "");
        DA_ASSERT_CLOSE(lab, o, r, nq, 0.9999999, 2e-5);
        if (fused) be->ops->mem_free(be, dbuf), free(buf);
        else be->ops->mem_free(be, dq), be->ops->mem_free(be, dk), be->ops->mem_free(be, dv), free(q), free(k), free(v);
        be->ops->mem_free(be, dout);
        free(r), free(o);
    }
    da_backend_free(be);
}
END_TEST

/* ---- the protocol: plan, commit (scratch and arena in device memory), run, sticky errors --------- */
START_TEST(test_gpu_plan_run_and_errors) {
    GPU_OR_SKIP();
    enum { M = 37, N = 19, K = 53 };
    float *x = rand_buf(M * K, -1, 1), *wt = rand_buf(N * K, -0.3f, 0.3f), *bias = rand_buf(N, -1, 1);
    float y[M * N], ref[M * N];
    da_error err;
    da_backend *be = da_backend_new("cuda", &err);
    ck_assert_msg(be != NULL, "%s", err.msg);
    da_w w = {wt, DK_F32, 2, {N, K}};
    ck_assert_int_eq(da_backend_adopt(be, &w, sizeof(float) * N * K), DA_OK);
    ck_assert_ptr_ne(w.p, wt);
    float *db = dev_from(be, bias, N);
    da_arena a = {0};
    da_arena_on_backend(&a, be);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0) da_backend_plan(be), da_arena_plan(&a);
        float *dx = da_arena_floats(&a, M * K), *h = da_arena_floats(&a, M * N);
        for (int i = 0; i < M * N; i++) y[i] = -7.0f;
        da_op_upload(be, dx, x, M * K);
        da_op_linear(be, M, N, K, dx, &w, db, h);
        da_op_act(be, DA_ACT_SILU, h, h, M * N);
        da_op_download(be, y, h, M * N);
        da_arena_reset(&a, 0);
        if (pass == 0) {
            ck_assert_float_eq(y[0], -7.0f); /* planning computes nothing */
            ck_assert_int_eq(da_backend_commit(be, &err), DA_OK);
            ck_assert_msg(da_arena_commit(&a, 0, &err) == DA_OK, "%s", err.msg);
        }
    }
    assert_ok(be);
    linear_ref(M, N, K, x, wt, DK_F32, bias, ref);
    for (int i = 0; i < M * N; i++) ref[i] = ref[i] / (1.0f + expf(-ref[i]));
    DA_ASSERT_CLOSE("linear+silu on the device arena", y, ref, (size_t)M * N, 0.999999, 2e-5);
    /* an impossible op fails with DA_ERR_CUDA naming itself, and later ops do nothing */
    dk_attn_params p = dk_attn_params_packed(1, 1, 1, 1, 100000, 0);
    da_op_attention(be, &p, db, db, db, db);
    ck_assert_int_eq(be->st, DA_ERR_CUDA);
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_CUDA);
    ck_assert_ptr_nonnull(strstr(err.msg, "attention"));
    be->ops->mem_free(be, db);
    da_arena_free(&a);
    da_backend_free(be);
    free(x), free(wt), free(bias);
}
END_TEST

/* ---- whole networks: cuda vs cpu ------------------------------------------------------------------- */

typedef struct net_tol {
    double min_cos, rel_abs;
} net_tol;
static net_tol tol_of(da_dtype t) {
    return t == DA_F32 ? (net_tol){0.99999, 1e-3} : t == DA_F16 ? (net_tol){0.99995, 2e-2} : (net_tol){0.999, 0.1};
}
static const char *dt_name(da_dtype t) { return t == DA_F32 ? "f32" : t == DA_F16 ? "f16" : "bf16"; }

static void assert_outputs_close(const char *what, da_dtype t, const nc_out *cpu, const nc_out *gpu, net_tol tl) {
    ck_assert_int_eq(cpu->count, gpu->count);
    for (int i = 0; i < cpu->count; i++) {
        char label[160];
        snprintf(label, sizeof label, "%s %s %s (cuda vs cpu)", what, dt_name(t), cpu->name[i]);
        ck_assert_uint_eq(cpu->n[i], gpu->n[i]);
        double m = max_abs_of(cpu->v[i], cpu->n[i]);
        ck_assert_msg(m > 0, "%s: the reference is all zeros", label);
        DA_ASSERT_CLOSE(label, gpu->v[i], cpu->v[i], cpu->n[i], tl.min_cos, tl.rel_abs * m);
    }
}

typedef da_status (*net_runner)(const char *model, const char *backend, nc_out *o, da_error *err);
static da_status run_unet_2x8x8(const char *m, const char *b, nc_out *o, da_error *e) { return nc_unet(m, b, 2, 8, 8, o, e); }

/* `backend` against "cpu" over the three weight dtypes; report (emulation only) prints what each
 * comparison reached, to show the margin to the bound. */
/* The CUDA attention kernel is chosen from DIFFAUG_CUDA_ATTN when the backend is created (NULL: the
 * default, f16 tensor cores). */
static void set_attn(const char *v) {
    if (v) setenv("DIFFAUG_CUDA_ATTN", v, 1);
    else unsetenv("DIFFAUG_CUDA_ATTN");
}

/* `backend` against "cpu" over the three weight dtypes with the default kernels (f32 models get the
 * f16 bounds there: the default attention rounds to f16 for every model), and f32 once more with FP32
 * attention under the f32 bounds. report (emulation only) prints what each comparison reached. */
static void net_parity_on(const char *backend, const char *what, const char *preset, net_runner fn, bool report) {
    char *dir = da_test_tmpdir("gpu-net");
    static const da_dtype dts[3] = {DA_F32, DA_F16, DA_BF16};
    for (int k = 0; k < 3; k++)
        for (int fp32_attn = dts[k] == DA_F32 && strcmp(backend, "cpu-tc"); fp32_attn >= 0; fp32_attn--) {
        da_error err;
        char name[32];
        snprintf(name, sizeof name, "m-%s-%d", dt_name(dts[k]), fp32_attn);
        /* the bounds: f32 ones only where every op is FP32 */
        net_tol tl = tol_of(dts[k] == DA_F32 && !fp32_attn ? DA_F16 : dts[k]);
        set_attn(fp32_attn ? "fp32" : NULL);
        char *model = nc_make_model(dir, name, preset, dts[k], 40 + k, &err);
        ck_assert_msg(model, "mkmodel %s: %s", preset, err.msg);
        nc_out c, g;
        ck_assert_msg(fn(model, "cpu", &c, &err) == DA_OK, "%s cpu: %s", what, err.msg);
        ck_assert_msg(fn(model, backend, &g, &err) == DA_OK, "%s %s: %s", what, backend, err.msg);
        if (report) { /* the worst output of this network and dtype, against the bounds */
            double wc = 0, wm = 0;
            for (int i = 0; i < c.count; i++) {
                da_cmp r;
                double m = max_abs_of(c.v[i], c.n[i]);
                da_compare("emulated", g.v[i], c.v[i], c.n[i], tl.min_cos, tl.rel_abs * m, &r);
                if (1.0 - r.cosine > wc) wc = 1.0 - r.cosine;
                if (m > 0 && r.max_abs / m > wm) wm = r.max_abs / m;
            }
            printf("# %s %s %s%s: worst 1-cos %.2e (bound %.1e), max|err|/max|ref| %.2e (bound %.1e)\n", backend,
                   what, dt_name(dts[k]), fp32_attn ? " (fp32 attention)" : "", wc, 1.0 - tl.min_cos, wm, tl.rel_abs);
        }
        assert_outputs_close(what, dts[k], &c, &g, tl);
        nc_out_free(&c), nc_out_free(&g);
        free(model);
        set_attn(NULL);
    }
    da_rmtree(dir);
    free(dir);
}
static void net_parity(const char *what, const char *preset, net_runner fn) {
    net_parity_on("cuda", what, preset, fn, false);
}

/* Runs everywhere (tag model): the network tolerances above against an emulation of the CUDA
 * backend's one precision choice that matters at these sizes (GEMM inputs rounded to the 16-bit
 * weight type; netcheck.h "cpu-tc"). f32 is the identity here (its bound covers summation order
 * only). If this fails, the GPU cases would too. */
START_TEST(test_network_tolerances_emulated) {
    net_parity_on("cpu-tc", "unet", "tiny-sd15", run_unet_2x8x8, true);
    net_parity_on("cpu-tc", "ip2p unet", "tiny-ip2p", run_unet_2x8x8, true);
    net_parity_on("cpu-tc", "sdxl unet", "tiny-sdxl", run_unet_2x8x8, true);
    net_parity_on("cpu-tc", "vae", "tiny-sd15", nc_vae, true);
    net_parity_on("cpu-tc", "clip text", "tiny-clip-vit-b32", nc_clip_text, true);
    net_parity_on("cpu-tc", "clip vision", "tiny-clip-vit-b32", nc_clip_vision, true);
    net_parity_on("cpu-tc", "blip", "tiny-blip", nc_blip, true);
}
END_TEST

START_TEST(test_gpu_unet_tiny) {
    GPU_OR_SKIP();
    net_parity("unet", "tiny-sd15", run_unet_2x8x8);
    net_parity("ip2p unet", "tiny-ip2p", run_unet_2x8x8);
    net_parity("sdxl unet", "tiny-sdxl", run_unet_2x8x8);
}
END_TEST

START_TEST(test_gpu_vae_tiny) {
    GPU_OR_SKIP();
    net_parity("vae", "tiny-sd15", nc_vae);
}
END_TEST

START_TEST(test_gpu_clip_tiny) {
    GPU_OR_SKIP();
    net_parity("clip text", "tiny-clip-vit-b32", nc_clip_text);
    net_parity("clip vision", "tiny-clip-vit-b32", nc_clip_vision);
}
END_TEST

START_TEST(test_gpu_blip_tiny) {
    GPU_OR_SKIP();
    net_parity("blip", "tiny-blip", nc_blip);
}
END_TEST

/* A short txt2img (3 Euler a steps, one item with CFG 7.5): the sampler and the CFG combination run on
 * the host in both cases, the three networks on the backend. */
START_TEST(test_gpu_txt2img_tiny) {
    GPU_OR_SKIP();
    char *dir = da_test_tmpdir("gpu-gen");
    static const da_dtype dts[2] = {DA_F32, DA_F16};
    for (int k = 0; k < 2; k++) {
        da_error err;
        char *model = nc_make_model(dir, dt_name(dts[k]), "tiny-sd15", dts[k], 50 + k, &err);
        ck_assert_msg(model, "mkmodel: %s", err.msg);
        set_attn(dts[k] == DA_F32 ? "fp32" : NULL); /* f32: every op FP32, so the tight bounds */
        nc_out c, g;
        ck_assert_msg(nc_generate(model, "cpu", DA_GEN_TXT2IMG, DA_SAMPLER_EULER_A, 3, &c, &err) == DA_OK, "cpu: %s",
                      err.msg);
        ck_assert_msg(nc_generate(model, "cuda", DA_GEN_TXT2IMG, DA_SAMPLER_EULER_A, 3, &g, &err) == DA_OK, "cuda: %s",
                      err.msg);
        double m = max_abs_of(c.v[0], c.n[0]);
        char label[64];
        snprintf(label, sizeof label, "txt2img %s latents", dt_name(dts[k]));
        if (dts[k] == DA_F32) {
            DA_ASSERT_CLOSE(label, g.v[0], c.v[0], c.n[0], 0.9999, 1e-2 * m);
            DA_ASSERT_CLOSE("txt2img f32 pixels", g.v[1], c.v[1], c.n[1], 0.9999, 3.0);
        } else {
            DA_ASSERT_CLOSE(label, g.v[0], c.v[0], c.n[0], 0.999, 0.1 * m);
            DA_ASSERT_CLOSE("txt2img f16 pixels", g.v[1], c.v[1], c.n[1], 0.999, 16.0);
        }
        set_attn(NULL);
        nc_out_free(&c), nc_out_free(&g);
        free(model);
    }
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* One full-size SD 1.5 UNet step (random f16 weights from mkmodel, 64x64 latent, batch 1) against the
 * CPU. About 1.7 GB of weights on disk and ~4 GB of device memory; the CPU reference takes tens of
 * seconds on 16 cores. */
START_TEST(test_gpu_unet_sd15_full) {
    GPU_OR_SKIP();
    char *dir = da_test_tmpdir("gpu-sd15");
    da_error err;
    char *model = nc_make_model(dir, "sd15", "sd15", DA_F16, 7, &err);
    ck_assert_msg(model, "mkmodel sd15: %s", err.msg);
    nc_out c, g;
    ck_assert_msg(nc_unet(model, "cuda", 1, 64, 64, &g, &err) == DA_OK, "cuda: %s", err.msg);
    ck_assert_msg(nc_unet(model, "cpu", 1, 64, 64, &c, &err) == DA_OK, "cpu: %s", err.msg);
    assert_outputs_close("sd15 unet 64x64", DA_F16, &c, &g, (net_tol){0.999, 5e-2});
    nc_out_free(&c), nc_out_free(&g);
    free(model);
    da_rmtree(dir);
    free(dir);
}
END_TEST

/* Runs everywhere (fast tag): asking for CUDA must never silently give the CPU. */
START_TEST(test_cuda_request_without_gpu_is_error) {
    da_error err;
    da_err_clear(&err);
    da_backend *be = da_backend_new("cuda", &err);
    if (g_have_gpu) {
        ck_assert_msg(be != NULL, "GPU present but da_backend_new(cuda) failed: %s", err.msg);
        ck_assert_str_eq(be->ops->name, "cuda");
    } else {
        /* the one line `make test` prints for the whole gpu tag */
        printf("# skip gpu suite (ops, networks, txt2img, full SD 1.5 step): no GPU (%s); make test-gpu on a GPU "
               "machine\n", g_why);
        ck_assert_ptr_null(be);
        ck_assert_int_eq(err.code, DA_ERR_CUDA);
#ifndef DIFFAUG_HAVE_CUDA
        ck_assert_ptr_nonnull(strstr(err.msg, "this build has no CUDA backend (nvcc was not found at build time)"));
#endif
    }
    da_backend_free(be);
    be = da_backend_new("auto", &err);
    ck_assert_ptr_nonnull(be);
    ck_assert_str_eq(be->ops->name, g_have_gpu ? "cuda" : "cpu");
    da_backend_free(be);
    ck_assert_ptr_null(da_backend_new("tpu", &err));
    ck_assert_int_eq(err.code, DA_ERR_INVALID_ARG);
}
END_TEST

/* ==== v2: tensor-core attention, cuBLASLt linear, sampling ops, graphs (branch cuda-tc) ============
 * Tolerances of this section (max abs error; the reference is kernels/cpu in double or the CPU op):
 *   | kernel                         | tolerance            | why                                       |
 *   | attention tc f16, |q|,|k| <= 1 | 2e-3, cos 0.99999    | Q, K, V, P rounded to f16 (u = 2^-11):    |
 *   |                                |                      | a row dominated by one key gives u max|v| |
 *   |                                |                      | = 4.9e-4 alone; P's rounding adds <= u;   |
 *   |                                |                      | the score error 2u scale sum|q k| moves   |
 *   |                                |                      | the weights. numpy emulation of exactly   |
 *   |                                |                      | these roundings on these shapes: <= 2.8e-4|
 *   | attention tc f16, |q|,|k| <= 3 | 8e-3, cos 0.99999    | sharper softmax, score error x9: emulated |
 *   |                                |                      | <= 1.5e-3                                 |
 *   | attention tc bf16              | 1.6e-2 / 5e-2,       | u = 2^-8 (8x f16): emulated <= 2.4e-3 /   |
 *   |                                | cos 0.9995           | 8e-3                                      |
 *   | linear through cuBLASLt        | as linear (gemm_tol) | same inputs and precision; bias in the    |
 *   |                                |                      | epilogue is one f32 add either way        |
 *   | conv implicit GEMM (tc)        | as conv (gemm_tol)   | the same x rounding as im2col, f32 sums   |
 *   | lincomb, cfg_combine,          | bit-exact vs the CPU | the same sampling.h code, _rn intrinsics  |
 *   | sampler_step                   |                      | (IEEE division, no fused multiply-add)    |
 *   | philox_normal                  | <= 1 float ulp, at   | Philox words identical; double log/sin/cos|
 *   |                                | most 1 in 10^5 differ| of libdevice vs glibc may differ in the   |
 *   |                                |                      | last double bit (sampling.h)              |
 *   | graph replay                   | bit-exact vs direct  | the same kernels on the same inputs       |
 */
#ifdef DIFFAUG_HAVE_CUDA
static dcu_ctx *tc_ctx(void) {
    dcu_ctx *c;
    char msg[512];
    ck_assert_msg(dcu_ctx_create(&c, 0, msg, sizeof msg) == 0, "%s", msg);
    return c;
}
static void *tc_dev(dcu_ctx *c, const void *host, size_t bytes) {
    void *d;
    ck_assert_msg(dcu_malloc(c, &d, bytes ? bytes : 4) == 0, "%s", c->msg);
    if (host) ck_assert_msg(dcu_upload(c, d, host, bytes) == 0, "%s", c->msg);
    return d;
}

START_TEST(test_gpu_attention_tc) {
    GPU_OR_SKIP();
    dcu_ctx *c = tc_ctx();
    /* B, H, Nq, Nk, d, causal, fused QKV strides, amplitude of q and k */
    const int cs[][8] = {
        {1, 1, 4096, 4096, 40, 0, 0, 1}, /* SD 1.5 64x64 self-attention, one head */
        {2, 8, 4096, 77, 40, 0, 0, 1},   /* cross-attention to the 77 text tokens, CFG batch 2 */
        {1, 2, 1024, 1024, 80, 0, 0, 1}, /* 32x32 level */
        {1, 2, 1024, 77, 80, 0, 0, 1},
        {1, 2, 256, 256, 160, 0, 1, 1},  /* 16x16 level, fused QKV */
        {2, 2, 256, 77, 160, 0, 0, 1},
        {1, 4, 512, 512, 64, 0, 0, 3},   /* d 64, sharp softmax */
        {2, 12, 77, 77, 64, 1, 0, 1},    /* CLIP text, causal */
        {1, 3, 70, 70, 33, 1, 1, 1},     /* odd d (padded to 48), causal, fused */
        {3, 1, 5, 129, 64, 0, 0, 1},     /* Nq below a tile, Nk not a tile multiple */
        {1, 1, 1, 1, 1, 0, 0, 1},
        {1, 1, 300, 300, 304, 0, 0, 1},  /* the largest d whose shared memory fits Hopper */
    };
    for (size_t s = 0; s < sizeof cs / sizeof cs[0]; s++) {
        int B = cs[s][0], H = cs[s][1], Nq = cs[s][2], Nk = cs[s][3], d = cs[s][4], causal = cs[s][5];
        int fused = cs[s][6];
        float amp = (float)cs[s][7];
        if (dcu_attention_tc_smem(d) > (size_t)c->smem_optin) {
            printf("# skip attention tc d=%d: %zu bytes of shared memory > this device's %d\n", d,
                   dcu_attention_tc_smem(d), c->smem_optin);
            continue;
        }
        dk_attn_params p = dk_attn_params_packed(B, H, Nq, Nk, d, causal);
        size_t row = (size_t)H * d, nq = (size_t)B * Nq * row, nk = (size_t)B * Nk * row;
        float *q, *k, *v, *buf = NULL;
        if (fused) {
            buf = rand_buf(3 * nq, -1, 1);
            for (size_t i = 0; i < 3 * nq; i++)
                if (i % (3 * row) < 2 * row) buf[i] *= amp;
            q = buf, k = buf + row, v = buf + 2 * row;
            p.q_row = p.k_row = p.v_row = 3 * row;
        } else {
            q = rand_buf(nq, -amp, amp), k = rand_buf(nk, -amp, amp), v = rand_buf(nk, -1, 1);
        }
        float *r = malloc(nq * 4), *o = malloc(nq * 4);
        dk_attention_ref(&p, q, k, v, r);
        /* the launcher's resolved strides, as backend_cuda.c resolves them */
        dcu_attn a = {B, H, Nq, Nk, d, causal, p.scale, fused ? 3 * row : row, fused ? 3 * row : row,
                      fused ? 3 * row : row, row, 0, 0, 0, 0};
        a.q_batch = (size_t)Nq * a.q_row, a.k_batch = (size_t)Nk * a.k_row, a.v_batch = (size_t)Nk * a.v_row;
        a.o_batch = (size_t)Nq * row;
        float *dq, *dk, *dv, *dbuf = NULL;
        if (fused) {
            dbuf = tc_dev(c, buf, 3 * nq * 4);
            dq = dbuf, dk = dbuf + row, dv = dbuf + 2 * row;
        } else {
            dq = tc_dev(c, q, nq * 4), dk = tc_dev(c, k, nk * 4), dv = tc_dev(c, v, nk * 4);
        }
        float *dout = tc_dev(c, NULL, nq * 4);
        for (int wt = 1; wt <= 2; wt++) {
            for (size_t i = 0; i < nq; i++) o[i] = NAN;
            ck_assert_msg(dcu_attention_tc(c, &a, dq, dk, dv, dout, wt) == 0, "%s", c->msg);
            ck_assert_msg(dcu_download(c, o, dout, nq * 4) == 0, "%s", c->msg);
            double tol = wt == 1 ? (amp > 1 ? 8e-3 : 2e-3) : (amp > 1 ? 5e-2 : 1.6e-2);
            char lab[160];
            snprintf(lab, sizeof lab, "attention tc %s B%d H%d Nq%d Nk%d d%d%s%s amp %g", wt == 1 ? "f16" : "bf16", B, H,
                     Nq, Nk, d, causal ? " causal" : "", fused ? " fused" : "", (double)amp);
            DA_ASSERT_CLOSE(lab, o, r, nq, wt == 1 ? 0.99999 : 0.9995, tol);
        }
        if (fused) dcu_free(c, dbuf), free(buf);
        else dcu_free(c, dq), dcu_free(c, dk), dcu_free(c, dv), free(q), free(k), free(v);
        dcu_free(c, dout);
        free(r), free(o);
    }
    dcu_ctx_destroy(c);
}
END_TEST

/* The backend's choice: tc by default where it fits, the FP32 kernel beyond (d 512) and on request. */
START_TEST(test_gpu_attention_dispatch) {
    GPU_OR_SKIP();
    const int cs[][3] = {{40, 2048, 1}, {512, 300, 0}}; /* d, N, expect tc */
    for (int choice = 0; choice < 2; choice++) {
        if (choice) setenv("DIFFAUG_CUDA_ATTN", "fp32", 1);
        else unsetenv("DIFFAUG_CUDA_ATTN");
        da_backend *be = gpu_backend(0);
        for (int s = 0; s < 2; s++) {
            int d = cs[s][0], N = cs[s][1];
            dk_attn_params p = dk_attn_params_packed(1, 1, N, N, d, 0);
            size_t n = (size_t)N * d;
            float *q = rand_buf(n, -1, 1), *k = rand_buf(n, -1, 1), *v = rand_buf(n, -1, 1), *r = malloc(n * 4);
            float *dq = dev_from(be, q, n), *dk = dev_from(be, k, n), *dv = dev_from(be, v, n), *dout = dev_alloc(be, n * 4);
            da_op_attention(be, &p, dq, dk, dv, dout);
            float *o = host_from(be, dout, n);
            assert_ok(be);
            dk_attention_ref(&p, q, k, v, r);
            bool tc = cs[s][2] && !choice;
            char lab[96];
            snprintf(lab, sizeof lab, "backend attention d%d (%s)", d, tc ? "tc f16" : "fp32");
            DA_ASSERT_CLOSE(lab, o, r, n, tc ? 0.99999 : 0.9999999, tc ? 2e-3 : 2e-5);
            be->ops->mem_free(be, dq), be->ops->mem_free(be, dk), be->ops->mem_free(be, dv);
            be->ops->mem_free(be, dout);
            free(q), free(k), free(v), free(r), free(o);
        }
        da_backend_free(be);
    }
    unsetenv("DIFFAUG_CUDA_ATTN");
}
END_TEST

START_TEST(test_gpu_linear_lt) {
    GPU_OR_SKIP();
    dcu_ctx *c = tc_ctx();
    const int shapes[][3] = {{37, 19, 53}, {1024, 320, 320}, {77, 3072, 768}, {154, 320, 768}, {2, 1280, 320},
                             {1, 1, 1}, {33, 5, 1}, {8192, 640, 320}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 3; t++) {
            int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
            float *x = rand_buf((size_t)M * K, -2, 2), *wv = rand_buf((size_t)N * K, -0.1f, 0.1f);
            float *bias = rand_buf(N, -1, 1), *r = malloc((size_t)M * N * 4), *y = malloc((size_t)M * N * 4);
            void *hw = malloc((size_t)N * K * dk_wtype_size((dk_wtype)t));
            if (t == 0) memcpy(hw, wv, (size_t)N * K * 4);
            else if (t == 1) dk_f32_to_f16_n_ref(hw, wv, (size_t)N * K);
            else dk_f32_to_bf16_n_ref(hw, wv, (size_t)N * K);
            size_t wsb = dcu_linear_ws(M, K);
            void *dx = tc_dev(c, x, (size_t)M * K * 4), *dw = tc_dev(c, hw, (size_t)N * K * dk_wtype_size((dk_wtype)t));
            void *db = tc_dev(c, bias, (size_t)N * 4), *dy = tc_dev(c, NULL, (size_t)M * N * 4), *ws = tc_dev(c, NULL, wsb);
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                ck_assert_msg(dcu_linear_lt(c, M, N, K, dx, dw, t, with_bias ? db : NULL, dy, ws, wsb) == 0, "%s", c->msg);
                ck_assert_msg(dcu_download(c, y, dy, (size_t)M * N * 4) == 0, "%s", c->msg);
                linear_ref(M, N, K, x, hw, (dk_wtype)t, with_bias ? bias : NULL, r);
                double mc, ma;
                gemm_tol((dk_wtype)t, max_abs_of(r, (size_t)M * N), &mc, &ma);
                char lab[96];
                snprintf(lab, sizeof lab, "linear lt %dx%dx%d %s%s", M, N, K, tname((dk_wtype)t), with_bias ? " +bias" : "");
                DA_ASSERT_CLOSE(lab, y, r, (size_t)M * N, mc, ma);
            }
            dcu_free(c, dx), dcu_free(c, dw), dcu_free(c, db), dcu_free(c, dy), dcu_free(c, ws);
            free(x), free(wv), free(bias), free(r), free(y), free(hw);
        }
    dcu_ctx_destroy(c);
}
END_TEST

/* GPU sampling ops against the CPU backend's (the same sampling.h code) */
START_TEST(test_gpu_sampling_ops) {
    GPU_OR_SKIP();
    da_backend *be = gpu_backend(0), *cpu = da_backend_cpu_new();
    const size_t sizes[] = {1, 3, 2 * 4 * 64 * 64, 1000003};
    for (int si = 0; si < 4; si++) {
        size_t n = sizes[si];
        float *x[4], *dx[4], *ref = malloc(n * 4);
        for (int i = 0; i < 4; i++) x[i] = rand_buf(n, -5, 5), dx[i] = dev_from(be, x[i], n);
        float *dy = dev_alloc(be, n * 4);
        const float a[4] = {0.18215f, -1.3f, 7.5f, 1e-3f};
        for (int k = 1; k <= 4; k++) {
            da_op_lincomb(be, dy, k, a, (const float *const *)dx, n);
            da_op_lincomb(cpu, ref, k, a, (const float *const *)x, n);
            float *y = host_from(be, dy, n);
            assert_ok(be);
            for (size_t j = 0; j < n; j++)
                ck_assert_msg(dk_f32_bits(y[j]) == dk_f32_bits(ref[j]), "lincomb k=%d n=%zu [%zu]: %a vs %a", k, n, j,
                              (double)y[j], (double)ref[j]);
            free(y);
        }
        for (int edit = 0; edit < 2; edit++) {
            da_op_cfg_combine(be, dy, dx[0], dx[1], edit ? dx[2] : NULL, 7.5f, 1.5f, n);
            da_op_cfg_combine(cpu, ref, x[0], x[1], edit ? x[2] : NULL, 7.5f, 1.5f, n);
            float *y = host_from(be, dy, n);
            assert_ok(be);
            for (size_t j = 0; j < n; j++)
                ck_assert_msg(dk_f32_bits(y[j]) == dk_f32_bits(ref[j]), "cfg%s n=%zu [%zu]: %a vs %a",
                              edit ? " edit" : "", n, j, (double)y[j], (double)ref[j]);
            free(y);
        }
        const uint64_t firsts[] = {0, 1, 77777};
        for (int f = 0; f < 3; f++) {
            da_op_philox_normal(be, dy, 42, 7, firsts[f], n, 0.0f, 1.0f);
            da_op_philox_normal(cpu, ref, 42, 7, firsts[f], n, 0.0f, 1.0f);
            float *y = host_from(be, dy, n);
            assert_ok(be);
            size_t differ = 0;
            for (size_t j = 0; j < n; j++) {
                uint32_t ga = dk_f32_bits(y[j]), ra = dk_f32_bits(ref[j]);
                if (ga == ra) continue;
                differ++;
                int64_t ulp = (int64_t)ga - (int64_t)ra;
                ck_assert_msg((ga >> 31) == (ra >> 31) && (ulp == 1 || ulp == -1),
                              "philox_normal first=%llu [%zu]: gpu %a cpu %a (more than 1 ulp)",
                              (unsigned long long)firsts[f], j, (double)y[j], (double)ref[j]);
            }
            if (differ) printf("# philox_normal n=%zu first=%llu: %zu values differ by 1 ulp\n", n,
                               (unsigned long long)firsts[f], differ);
            ck_assert_msg(differ <= n / 100000, "philox_normal: %zu of %zu values differ", differ, n);
            free(y);
        }
        for (int i = 0; i < 4; i++) be->ops->mem_free(be, dx[i]), free(x[i]);
        be->ops->mem_free(be, dy);
        free(ref);
    }
    da_backend_free(cpu);
    da_backend_free(be);
}
END_TEST

/* The sampler update on the GPU against the CPU op, step by step, for every sampler and both
 * predictions: the same dk_step_elem code with IEEE division and no fused multiply-add, so bit-exact. */
START_TEST(test_gpu_sampler_step) {
    GPU_OR_SKIP();
    da_backend *be = gpu_backend(0), *cpu = da_backend_cpu_new();
    const size_t n = 2 * 4 * 64 * 64;
    const da_sampler_kind kinds[] = {DA_SAMPLER_DDIM, DA_SAMPLER_EULER, DA_SAMPLER_EULER_A, DA_SAMPLER_DPMPP_2M,
                                     DA_SAMPLER_EDM_EULER};
    for (int k = 0; k < 5; k++)
        for (int pv = 0; pv < 2; pv++) {
            da_sched_config c;
            da_sched_config_sd1x(&c, kinds[k]);
            c.prediction = pv ? DA_PRED_V : DA_PRED_EPSILON;
            if (pv) c.clip_sample = true, c.solver_heun = true;
            da_schedule *s;
            da_error e;
            ck_assert_msg(da_schedule_create(&c, 6, &s, &e) == DA_OK, "%s", e.msg);
            da_sampler_params spp;
            da_sampler_params_init(&spp);
            spp.eta = pv ? 0.5 : 0.0;
            da_sampler *sp;
            ck_assert(da_sampler_create(s, n, &spp, &sp, &e) == DA_OK);
            da_sampler_begin(sp, 0);
            float *x = rand_buf(n, -3, 3), *m = malloc(n * 4), *nz = malloc(n * 4);
            float *hx0[2] = {calloc(n, 4), calloc(n, 4)};
            float *dx = dev_from(be, x, n), *dm = dev_alloc(be, n * 4), *dn = dev_alloc(be, n * 4);
            float *dx0[2] = {dev_from(be, hx0[0], n), dev_from(be, hx0[1], n)};
            for (int i = 0; i < s->n_steps; i++) {
                for (size_t j = 0; j < n; j++) m[j] = frand(-2, 2), nz[j] = frand(-3, 3);
                da_op_upload(be, dm, m, n), da_op_upload(be, dn, nz, n);
                dk_model_input mp;
                da_sampler_model_input_params(s, i, &mp);
                da_op_model_input(be, &mp, dm, dx, n); /* into dm, checked, then overwritten */
                float *gmi = host_from(be, dm, n), *cmi = malloc(n * 4);
                da_op_model_input(cpu, &mp, cmi, x, n);
                for (size_t j = 0; j < n; j++)
                    ck_assert_msg(dk_f32_bits(gmi[j]) == dk_f32_bits(cmi[j]), "model_input %s step %d [%zu]",
                                  da_sampler_kind_name(kinds[k]), i, j);
                free(gmi), free(cmi);
                da_op_upload(be, dm, m, n);
                dk_step st;
                ck_assert_msg(da_sampler_step_params(sp, i, &st, &e) == DA_OK, "%s", e.msg);
                da_op_sampler_step(be, &st, dx, dm, dn, dx0[0], dx0[1], n);
                da_op_sampler_step(cpu, &st, x, m, nz, hx0[0], hx0[1], n);
                if (st.uses_x0) {
                    float *t = dx0[0], *th = hx0[0];
                    dx0[0] = dx0[1], dx0[1] = t, hx0[0] = hx0[1], hx0[1] = th;
                }
                float *y = host_from(be, dx, n);
                assert_ok(be);
                for (size_t j = 0; j < n; j++)
                    ck_assert_msg(dk_f32_bits(y[j]) == dk_f32_bits(x[j]), "%s %s step %d [%zu]: gpu %a cpu %a",
                                  da_sampler_kind_name(kinds[k]), pv ? "v" : "eps", i, j, (double)y[j], (double)x[j]);
                free(y);
            }
            be->ops->mem_free(be, dx), be->ops->mem_free(be, dm), be->ops->mem_free(be, dn);
            be->ops->mem_free(be, dx0[0]), be->ops->mem_free(be, dx0[1]);
            free(x), free(m), free(nz), free(hx0[0]), free(hx0[1]);
            da_sampler_free(sp);
            da_schedule_free(s);
        }
    da_backend_free(cpu);
    da_backend_free(be);
}
END_TEST

/* A small "step" (linear f16 -> SiLU -> tc attention -> lincomb with the input) recorded once and
 * replayed on new input data: the replay equals a direct run bit for bit; misuse is reported. */
static void graph_step(da_backend *be, int M, int K, const float *x, const da_w *w, const float *b, float *h,
                       float *o, float *y) {
    da_op_linear(be, M, K, K, x, w, b, h);
    da_op_act(be, DA_ACT_SILU, h, h, (size_t)M * K);
    dk_attn_params p = dk_attn_params_packed(1, 1, M, M, K, 0);
    da_op_attention(be, &p, h, h, h, o);
    const float a[2] = {1.0f, 0.5f};
    const float *xs[2] = {o, x};
    da_op_lincomb(be, y, 2, a, xs, (size_t)M * K);
}

START_TEST(test_gpu_graph) {
    GPU_OR_SKIP();
    enum { M = 192, K = 40 };
    da_error err;
    da_backend *be = da_backend_new("cuda", &err);
    ck_assert_msg(be != NULL, "%s", err.msg);
    ck_assert(da_backend_has_graphs(be));
    /* replay before recording: an error, not a crash */
    ck_assert_int_eq(da_op_graph_replay(be), DA_ERR_CUDA);
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_CUDA);
    ck_assert_ptr_nonnull(strstr(err.msg, "graph"));

    float *wv = rand_buf(K * K, -0.2f, 0.2f), *bias = rand_buf(K, -0.5f, 0.5f);
    void *hw;
    da_w w = dev_weight(be, wv, K * K, DK_F16, &hw);
    w.rank = 2, w.shape[0] = K, w.shape[1] = K;
    da_backend_plan(be);
    da_op_need(be, be->ops->linear_ws(M, K, K));
    ck_assert_int_eq(da_backend_commit(be, &err), DA_OK);
    float *x1 = rand_buf(M * K, -1, 1), *x2 = rand_buf(M * K, -1, 1);
    float *dx = dev_alloc(be, M * K * 4), *db = dev_from(be, bias, K), *dh = dev_alloc(be, M * K * 4);
    float *dout = dev_alloc(be, M * K * 4), *dy = dev_alloc(be, M * K * 4);
    /* direct runs (the first also creates cuBLASLt's handle, outside any capture) */
    float *direct[2];
    for (int i = 0; i < 2; i++) {
        da_op_upload(be, dx, i ? x2 : x1, M * K);
        graph_step(be, M, K, dx, &w, db, dh, dout, dy);
        direct[i] = host_from(be, dy, M * K);
    }
    assert_ok(be);
    /* record with x1 in place; nothing runs while recording, so y keeps x2's result */
    da_op_upload(be, dx, x1, M * K);
    float *before = host_from(be, dy, M * K);
    ck_assert_int_eq(da_op_graph_begin(be), DA_OK);
    graph_step(be, M, K, dx, &w, db, dh, dout, dy);
    ck_assert_int_eq(da_op_graph_end(be), DA_OK);
    float *after = host_from(be, dy, M * K);
    DA_ASSERT_CLOSE("nothing ran while recording", after, before, M * K, 1.0 - 1e-12, 0.0);
    DA_ASSERT_CLOSE("direct run x2", before, direct[1], M * K, 1.0 - 1e-12, 0.0);
    for (int rep = 0; rep < 3; rep++) {
        int i = rep & 1;
        da_op_upload(be, dx, i ? x2 : x1, M * K); /* new data, same pointer */
        ck_assert_int_eq(da_op_graph_replay(be), DA_OK);
        float *y = host_from(be, dy, M * K);
        assert_ok(be);
        DA_ASSERT_CLOSE(i ? "replay x2" : "replay x1", y, direct[i], M * K, 1.0 - 1e-12, 0.0);
        free(y);
    }
    /* a synchronising op while recording fails the recording, and the backend says so */
    ck_assert_int_eq(da_op_graph_begin(be), DA_OK);
    float tmp[4];
    da_op_download(be, tmp, dy, 4);
    ck_assert_int_ne(da_op_graph_end(be), DA_OK);
    ck_assert_int_eq(da_backend_take_error(be, &err), DA_ERR_CUDA);
    /* and the backend works afterwards */
    da_op_upload(be, dx, x1, M * K);
    graph_step(be, M, K, dx, &w, db, dh, dout, dy);
    float *y = host_from(be, dy, M * K);
    assert_ok(be);
    DA_ASSERT_CLOSE("direct run after a failed recording", y, direct[0], M * K, 1.0 - 1e-12, 0.0);
    free(y), free(before), free(after), free(direct[0]), free(direct[1]);
    be->ops->mem_free(be, dx), be->ops->mem_free(be, db), be->ops->mem_free(be, dh);
    be->ops->mem_free(be, dout), be->ops->mem_free(be, dy);
    free(wv), free(bias), free(hw), free(x1), free(x2);
    da_backend_free(be);
}
END_TEST

/* Implicit-GEMM conv on tensor cores against conv2d_ref at SD 1.5 channel counts and odd sizes; then
 * the backend's default (tc for 16-bit weights, im2col + FP32 for f32) on one shape. */
START_TEST(test_gpu_conv2d_tc) {
    GPU_OR_SKIP();
    dcu_ctx *c = tc_ctx();
    const dk_conv2d cs[] = {
        /* SD's input channels and sizes; OC cut (the CPU reference is a plain double loop) */
        conv_shape(1, 320, 64, 64, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),    /* UNet level 1 resnet */
        conv_shape(1, 640, 32, 32, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),    /* level 2 */
        conv_shape(1, 1280, 16, 16, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),  /* level 3 (K = 11520) */
        conv_shape(1, 320, 64, 64, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),    /* downsample, stride 2 */
        conv_shape(2, 960, 32, 32, 160, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1),   /* 1x1 skip shortcut */
        conv_shape(2, 4, 64, 64, 320, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),     /* conv_in: K = 36, one partial K step */
        conv_shape(1, 128, 65, 63, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1),     /* VAE conv_out-like: OC 3, odd sizes */
        conv_shape(1, 32, 17, 17, 48, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),     /* stride 2, odd size */
        conv_shape(1, 16, 20, 20, 16, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1),     /* VAE encoder downsample padding */
        conv_shape(2, 96, 13, 11, 40, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1),     /* 1x1, odd */
        conv_shape(1, 8, 15, 15, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2),       /* dilation 2 */
        conv_shape(1, 5, 9, 7, 3, 3, 1, 1, 2, 1, 1, 0, 0, 1, 1),         /* non-square kernel and stride */
        conv_shape(1, 3, 1, 1, 2, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1),         /* 1x1 image */
    };
    for (size_t si = 0; si < sizeof cs / sizeof cs[0]; si++)
        for (int t = 1; t <= 2; t++) {
            const dk_conv2d *s = &cs[si];
            int OH = dk_conv2d_oh(s), OW = dk_conv2d_ow(s);
            size_t nx = (size_t)s->N * s->C * s->H * s->W, nw = (size_t)s->OC * s->C * s->KH * s->KW;
            size_t ny = (size_t)s->N * s->OC * OH * OW;
            float *x = rand_buf(nx, -2, 2), *wv = rand_buf(nw, -0.2f, 0.2f), *bias = rand_buf(s->OC, -1, 1);
            float *r = malloc(ny * 4), *y = malloc(ny * 4);
            uint16_t *hw = malloc(nw * 2);
            if (t == 1) dk_f32_to_f16_n_ref(hw, wv, nw);
            else dk_f32_to_bf16_n_ref(hw, wv, nw);
            void *dx = tc_dev(c, x, nx * 4), *dw = tc_dev(c, hw, nw * 2), *db = tc_dev(c, bias, (size_t)s->OC * 4);
            void *dy = tc_dev(c, NULL, ny * 4);
            dcu_conv dc = {s->N, s->C, s->H, s->W, s->OC, s->KH, s->KW, s->stride_h, s->stride_w,
                           s->pad_t, s->pad_b, s->pad_l, s->pad_r, s->dil_h, s->dil_w};
            conv2d_ref(s, x, hw, (dk_wtype)t, NULL, r);
            size_t P = (size_t)OH * OW;
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                if (with_bias) /* the same f32 add the kernel's epilogue does */
                    for (size_t i = 0; i < ny; i++) r[i] += bias[(i / P) % s->OC];
                for (size_t i = 0; i < ny; i++) y[i] = NAN;
                ck_assert_int_eq(dcu_upload(c, dy, y, ny * 4), 0); /* NaN: every output must be written */
                ck_assert_msg(dcu_conv2d_tc(c, &dc, dx, dw, t, with_bias ? db : NULL, dy) == 0, "%s", c->msg);
                ck_assert_msg(dcu_download(c, y, dy, ny * 4) == 0, "%s", c->msg);
                double mc, ma;
                gemm_tol((dk_wtype)t, max_abs_of(r, ny), &mc, &ma);
                char lab[128];
                snprintf(lab, sizeof lab, "conv tc case %zu [%d,%d,%d,%d]->%d k%dx%d s%d %s%s", si, s->N, s->C, s->H,
                         s->W, s->OC, s->KH, s->KW, s->stride_h, tname((dk_wtype)t), with_bias ? " +bias" : "");
                DA_ASSERT_CLOSE(lab, y, r, ny, mc, ma);
            }
            dcu_free(c, dx), dcu_free(c, dw), dcu_free(c, db), dcu_free(c, dy);
            free(x), free(wv), free(bias), free(r), free(y), free(hw);
        }
    dcu_ctx_destroy(c);
    /* through the backend with the default choice */
    unsetenv("DIFFAUG_CUDA_CONV");
    dk_conv2d s = conv_shape(2, 64, 24, 24, 96, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);
    da_backend *probe = gpu_backend(0);
    size_t ws = probe->ops->conv2d_ws(&s);
    da_backend_free(probe);
    da_backend *be = gpu_backend(ws);
    size_t nx = (size_t)2 * 64 * 24 * 24, nw = (size_t)96 * 64 * 9, ny = (size_t)2 * 96 * 24 * 24;
    for (int t = 0; t < 3; t++) {
        float *x = rand_buf(nx, -2, 2), *wv = rand_buf(nw, -0.2f, 0.2f), *bias = rand_buf(96, -1, 1), *r = malloc(ny * 4);
        void *hw;
        da_w w = dev_weight(be, wv, nw, (dk_wtype)t, &hw);
        float *dx = dev_from(be, x, nx), *db = dev_from(be, bias, 96), *dy = dev_alloc(be, ny * 4);
        da_op_conv2d(be, &s, dx, &w, db, dy);
        float *y = host_from(be, dy, ny);
        assert_ok(be);
        conv2d_ref(&s, x, hw, (dk_wtype)t, bias, r);
        double mc, ma;
        gemm_tol((dk_wtype)t, max_abs_of(r, ny), &mc, &ma);
        DA_ASSERT_CLOSE(t == 0 ? "backend conv f32 (im2col)" : "backend conv 16-bit (tc)", y, r, ny, mc, ma);
        be->ops->mem_free(be, dx), be->ops->mem_free(be, db), be->ops->mem_free(be, dy);
        free(x), free(wv), free(bias), free(r), free(hw), free(y);
    }
    da_backend_free(be);
}
END_TEST

/* Runs without a GPU (fast tag, CUDA builds): a bad kernel choice is refused before CUDA is touched. */
START_TEST(test_cuda_kernel_choice_env) {
    const char *vars[] = {"DIFFAUG_CUDA_ATTN", "DIFFAUG_CUDA_GEMM", "DIFFAUG_CUDA_CONV"};
    for (int i = 0; i < 3; i++) {
        setenv(vars[i], "bogus", 1);
        da_error err;
        da_err_clear(&err);
        da_backend *be = da_backend_new("cuda", &err);
        ck_assert_ptr_null(be);
        ck_assert_int_eq(err.code, DA_ERR_INVALID_ARG);
        ck_assert_msg(strstr(err.msg, vars[i]) && strstr(err.msg, "bogus"), "message: %s", err.msg);
        unsetenv(vars[i]);
    }
}
END_TEST
#endif

static Suite *gpu_suite(void) {
    probe_gpu();
    Suite *s = suite_create("gpu");
    TCase *tf = da_tcase("backend-choice", "fast", 60);
    tcase_add_test(tf, test_cuda_request_without_gpu_is_error);
    suite_add_tcase(s, tf);
    TCase *tc = da_tcase("cuda-ops", "gpu", 600);
#ifdef DIFFAUG_HAVE_CUDA
    tcase_add_test(tc, test_gpu_convert);
    tcase_add_test(tc, test_gpu_softmax);
#endif
    tcase_add_test(tc, test_gpu_activations);
    tcase_add_test(tc, test_gpu_arith);
    tcase_add_test(tc, test_gpu_movement);
    tcase_add_test(tc, test_gpu_timestep_embedding);
    tcase_add_test(tc, test_gpu_groupnorm);
    tcase_add_test(tc, test_gpu_layernorm);
    tcase_add_test(tc, test_gpu_linear);
    tcase_add_test(tc, test_gpu_conv2d);
    tcase_add_test(tc, test_gpu_attention);
    tcase_add_test(tc, test_gpu_plan_run_and_errors);
    suite_add_tcase(s, tc);
    TCase *te = da_tcase("cuda-tolerances", "model", 600);
    tcase_add_test(te, test_network_tolerances_emulated);
    suite_add_tcase(s, te);
    TCase *tn = da_tcase("cuda-networks", "gpu", 900);
    tcase_add_test(tn, test_gpu_unet_tiny);
    tcase_add_test(tn, test_gpu_vae_tiny);
    tcase_add_test(tn, test_gpu_clip_tiny);
    tcase_add_test(tn, test_gpu_blip_tiny);
    tcase_add_test(tn, test_gpu_txt2img_tiny);
    tcase_add_test(tn, test_gpu_unet_sd15_full);
    suite_add_tcase(s, tn);
#ifdef DIFFAUG_HAVE_CUDA
    /* v2 kernels (branch cuda-tc) */
    TCase *tv = da_tcase("cuda-v2", "gpu", 600);
    tcase_add_test(tv, test_gpu_attention_tc);
    tcase_add_test(tv, test_gpu_attention_dispatch);
    tcase_add_test(tv, test_gpu_linear_lt);
    tcase_add_test(tv, test_gpu_conv2d_tc);
    tcase_add_test(tv, test_gpu_sampling_ops);
    tcase_add_test(tv, test_gpu_sampler_step);
    tcase_add_test(tv, test_gpu_graph);
    suite_add_tcase(s, tv);
    TCase *tvf = da_tcase("cuda-v2-choice", "fast", 60);
    tcase_add_test(tvf, test_cuda_kernel_choice_env);
    suite_add_tcase(s, tvf);
#endif
    return s;
}

DA_TEST_MAIN(gpu_suite)
