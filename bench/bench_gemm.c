/* bench_gemm.c - linear (x W^T + b) and batched GEMM on the SD 1.5 / CLIP shapes, beside OpenBLAS
 * cblas_sgemm (f32, same transposes, bias not included for the peer) in the same run.
 *
 * Shapes (M = tokens, K = in features, N = out features):
 *   UNet 64x64 latent, level 1 (320 ch, 4096 tokens): proj_in/out and attention q/k/v/out
 *     4096x320x320, GEGLU proj 4096x320x2560, FF out 4096x1280x320, cross-attn k/v 77x768x320
 *   UNet 32x32 level 2 (640 ch, 1024 tokens): 1024x640x640, 1024x640x5120, 1024x2560x640
 *   UNet 16x16 level 3 (1280 ch, 256 tokens): 256x1280x1280, 256x1280x10240
 *   CLIP text: 77x768x768, 77x768x3072, 77x3072x768
 *   attention scores (batched, heads=8, head dim 40 at 64x64 is 4096x4096x40: run at 1024 tokens
 *     to keep the run short): Q K^T 1024x1024x40, P V 1024x40x1024
 * --quick: fewer shapes and shorter timing.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "gemm.h"

typedef struct lin_ctx {
    int M, N, K;
    dk_wtype wt;
    float *x, *Wf, *b, *y;
    void *Wt;
    void *ws;
    size_t wsb;
} lin_ctx;

static void run_ours(void *p) {
    lin_ctx *c = p;
    linear(c->M, c->N, c->K, c->x, c->Wt, c->wt, c->b, c->y, c->ws, c->wsb);
}
static void run_blas(void *p) {
    lin_ctx *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->M, c->N, c->K, 1.0f, c->x, c->K, c->Wf, c->K, 0.0f, c->y,
                c->N);
}

/* OpenBLAS's pthreads busy-wait ~2^28 cycles after each call; on 2 cores a spinning peer thread
 * steals the core our next call needs. OpenBLAS reads OPENBLAS_THREAD_TIMEOUT (2^n cycles) when it
 * loads, so re-exec once with n = 20 (~0.3 ms, about libgomp's default 300k-spin wait). */
static void openblas_spin_like_gomp(char **argv) {
    if (getenv("OPENBLAS_THREAD_TIMEOUT")) return;
    setenv("OPENBLAS_THREAD_TIMEOUT", "20", 1);
    execv("/proc/self/exe", argv);
}

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}

static void bench_linear(const char *name, int M, int N, int K, double min_s, int dtypes) {
    lin_ctx c = {M, N, K, DK_F32, 0, 0, 0, 0, 0, 0, 0};
    c.x = malloc((size_t)M * K * 4);
    c.Wf = malloc((size_t)N * K * 4);
    c.b = malloc((size_t)N * 4);
    c.y = malloc((size_t)M * N * 4);
    uint16_t *W16 = malloc((size_t)N * K * 2);
    unsigned s = 1;
    for (size_t i = 0; i < (size_t)M * K; i++) c.x[i] = frand(&s);
    for (size_t i = 0; i < (size_t)N * K; i++) c.Wf[i] = frand(&s) * 0.1f;
    for (int i = 0; i < N; i++) c.b[i] = frand(&s);
    c.wsb = linear_workspace_size(M, N, K);
    c.ws = malloc(c.wsb);
    char shape[64];
    snprintf(shape, sizeof shape, "%s %dx%dx%d", name, M, K, N);
    double flops = 2.0 * M * N * K;
    c.Wt = c.Wf;
    c.wt = DK_F32;
    double tb, t;
    bench_median_pair(run_blas, run_ours, &c, 5, min_s, &tb, &t);
    bench_row("sgemm", shape, "openblas", tb, flops, "GFLOP/s", 0);
    bench_row("linear", shape, "f32", t, flops, "GFLOP/s", tb);
    if (dtypes) {
        for (size_t i = 0; i < (size_t)N * K; i++) W16[i] = dk_f32_to_f16(c.Wf[i]);
        c.Wt = W16;
        c.wt = DK_F16;
        bench_median_pair(run_blas, run_ours, &c, 5, min_s, &tb, &t);
        bench_row("linear", shape, "f16w", t, flops, "GFLOP/s", tb);
        for (size_t i = 0; i < (size_t)N * K; i++) W16[i] = dk_f32_to_bf16(c.Wf[i]);
        c.wt = DK_BF16;
        bench_median_pair(run_blas, run_ours, &c, 5, min_s, &tb, &t);
        bench_row("linear", shape, "bf16w", t, flops, "GFLOP/s", tb);
    }
    free(c.x), free(c.Wf), free(c.b), free(c.y), free(W16), free(c.ws);
}

typedef struct bmm_ctx {
    int M, N, K, batch, tb;
    float *A, *B, *C;
    void *ws;
    size_t wsb;
} bmm_ctx;

static void run_bmm(void *p) {
    bmm_ctx *c = p;
    int ldb = c->tb ? c->K : c->N;
    gemm_batched(0, c->tb, c->M, c->N, c->K, 1.0f, c->A, c->K, (ptrdiff_t)c->M * c->K, c->B, ldb,
                 (ptrdiff_t)c->K * c->N, 0.0f, c->C, c->N, (ptrdiff_t)c->M * c->N, c->batch, c->ws, c->wsb);
}
static void run_bmm_blas(void *p) {
    bmm_ctx *c = p;
    int ldb = c->tb ? c->K : c->N;
    for (int b = 0; b < c->batch; b++)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, c->tb ? CblasTrans : CblasNoTrans, c->M, c->N, c->K, 1.0f,
                    c->A + (size_t)b * c->M * c->K, c->K, c->B + (size_t)b * c->K * c->N, ldb, 0.0f,
                    c->C + (size_t)b * c->M * c->N, c->N);
}

static void bench_bmm(const char *name, int M, int N, int K, int tb, int batch, double min_s) {
    bmm_ctx c = {M, N, K, batch, tb, 0, 0, 0, 0, 0};
    c.A = malloc((size_t)batch * M * K * 4);
    c.B = malloc((size_t)batch * K * N * 4);
    c.C = malloc((size_t)batch * M * N * 4);
    unsigned s = 3;
    for (size_t i = 0; i < (size_t)batch * M * K; i++) c.A[i] = frand(&s);
    for (size_t i = 0; i < (size_t)batch * K * N; i++) c.B[i] = frand(&s);
    c.wsb = gemm_batched_workspace_size(M, N, K);
    c.ws = malloc(c.wsb);
    char shape[64];
    snprintf(shape, sizeof shape, "%s %dx%dx%dx%d", name, batch, M, K, N);
    double flops = 2.0 * batch * M * N * K;
    double tbl, t;
    bench_median_pair(run_bmm_blas, run_bmm, &c, 5, min_s, &tbl, &t);
    bench_row("bmm", shape, "openblas", tbl, flops, "GFLOP/s", 0);
    bench_row("bmm", shape, "f32", t, flops, "GFLOP/s", tbl);
    free(c.A), free(c.B), free(c.C), free(c.ws);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    double min_s = quick ? 0.2 : 0.8;
    openblas_spin_like_gomp(argv);
    bench_header();
    bench_linear("unet64.qkvo", 4096, 320, 320, min_s, 1);
    bench_linear("unet64.geglu", 4096, 2560, 320, min_s, !quick);
    bench_linear("unet64.ffout", 4096, 320, 1280, min_s, !quick);
    bench_linear("unet64.xattn_kv", 77, 320, 768, min_s, 0);
    if (!quick) {
        bench_linear("unet32.qkvo", 1024, 640, 640, min_s, 0);
        bench_linear("unet32.geglu", 1024, 5120, 640, min_s, 0);
        bench_linear("unet32.ffout", 1024, 640, 2560, min_s, 0);
        bench_linear("unet16.qkvo", 256, 1280, 1280, min_s, 0);
        bench_linear("unet16.geglu", 256, 10240, 1280, min_s, 0);
    }
    bench_linear("clip.qkvo", 77, 768, 768, min_s, !quick);
    bench_linear("clip.fc1", 77, 3072, 768, min_s, 0);
    if (!quick) bench_linear("clip.fc2", 77, 768, 3072, min_s, 0);
    bench_bmm("attn.qk", 1024, 1024, 40, 1, 8, min_s);
    if (!quick) bench_bmm("attn.pv", 1024, 40, 1024, 0, 8, min_s);
    return 0;
}
