/* dev_gemm_blocking.c - experiment 01: blocking parameters of kernels/cpu/gemm.c. Built once per
 * variant by run_blocking.sh with -DDK_MR / -DDK_KC_MAX / -DDK_MC_MAX / -DDK_NC_MAX (gemm.c and
 * conv.c compiled in with those macros). Every variant is first validated against linear_ref /
 * conv2d_ref on a small shape, then timed on SD shapes beside cblas_sgemm in the same process.
 * Prints: variant, shape, ms, GFLOP/s, ratio to OpenBLAS.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench.h"
#include "conv.h"
#include "gemm.h"

#ifndef VARIANT
#define VARIANT "default"
#endif

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 65536.0f - 0.5f;
}
static float *rbuf(size_t n, unsigned seed) {
    float *p = malloc(n * 4);
    for (size_t i = 0; i < n; i++) p[i] = frand(&seed);
    return p;
}

static int validate(void) {
    int M = 77, N = 100, K = 600;
    float *x = rbuf((size_t)M * K, 1), *w = rbuf((size_t)N * K, 2), *b = rbuf(N, 3);
    float *y = malloc((size_t)M * N * 4), *r = malloc((size_t)M * N * 4);
    size_t wsb = linear_workspace_size(M, N, K);
    void *ws = malloc(wsb);
    linear(M, N, K, x, w, DK_F32, b, y, ws, wsb);
    linear_ref(M, N, K, x, w, DK_F32, b, r);
    double e = 0;
    for (int i = 0; i < M * N; i++) e = fmax(e, fabs(y[i] - r[i]));
    dk_conv2d s = dk_conv2d_make(1, 20, 9, 7, 33, 3, 1, 1);
    float *cx = rbuf(20 * 63, 4), *cw = rbuf(33 * 20 * 9, 5), *cy = malloc(33 * 63 * 4), *cr = malloc(33 * 63 * 4);
    size_t cwsb = conv2d_workspace_size(&s);
    void *cws = malloc(cwsb);
    conv2d(&s, cx, cw, DK_F32, NULL, cy, cws, cwsb);
    conv2d_ref(&s, cx, cw, DK_F32, NULL, cr);
    for (int i = 0; i < 33 * 63; i++) e = fmax(e, fabs(cy[i] - cr[i]));
    free(x), free(w), free(b), free(y), free(r), free(ws), free(cx), free(cw), free(cy), free(cr), free(cws);
    return e < 1e-3;
}

typedef struct ctx { int M, N, K; float *x, *w, *y; void *ws; size_t wsb; dk_conv2d s; } ctx;
static void f_lin(void *p) { ctx *c = p; linear(c->M, c->N, c->K, c->x, c->w, DK_F32, NULL, c->y, c->ws, c->wsb); }
static void f_blas(void *p) {
    ctx *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->M, c->N, c->K, 1, c->x, c->K, c->w, c->K, 0, c->y, c->N);
}
static void f_conv(void *p) { ctx *c = p; conv2d(&c->s, c->x, c->w, DK_F32, NULL, c->y, c->ws, c->wsb); }

static void lin(int M, int N, int K) {
    ctx c = {M, N, K, rbuf((size_t)M * K, 1), rbuf((size_t)N * K, 2), malloc((size_t)M * N * 4), 0, 0, {0}};
    c.wsb = linear_workspace_size(M, N, K);
    c.ws = malloc(c.wsb);
    double tb = bench_median(f_blas, &c, 5, 0.3), t = bench_median(f_lin, &c, 5, 0.3), fl = 2.0 * M * N * K;
    printf("%-34s linear %5dx%5dx%5d %8.3f ms %7.1f GF/s  openblas %7.1f GF/s  ratio %.2f\n", VARIANT, M, K, N, t * 1e3,
           fl / t / 1e9, fl / tb / 1e9, tb / t);
    free(c.x), free(c.w), free(c.y), free(c.ws);
}
static void conv(int C, int HW) {
    ctx c = {0};
    c.s = dk_conv2d_make(1, C, HW, HW, C, 3, 1, 1);
    c.x = rbuf((size_t)C * HW * HW, 1), c.w = rbuf((size_t)C * C * 9, 2), c.y = malloc((size_t)C * HW * HW * 4);
    c.wsb = conv2d_workspace_size(&c.s);
    c.ws = malloc(c.wsb);
    double t = bench_median(f_conv, &c, 3, 0.3), fl = 2.0 * C * C * 9 * HW * HW;
    printf("%-34s conv3x3 %4d@%-3d             %8.3f ms %7.1f GF/s\n", VARIANT, C, HW, t * 1e3, fl / t / 1e9);
    free(c.x), free(c.w), free(c.y), free(c.ws);
}

int main(void) {
    if (!validate()) {
        printf("%s: VALIDATION FAILED\n", VARIANT);
        return 1;
    }
    lin(4096, 320, 320);
    lin(4096, 2560, 320);
    lin(4096, 320, 1280);
    lin(77, 768, 768);
    lin(1024, 640, 640);
    lin(1024, 640, 2560);
    lin(256, 1280, 1280);
    if (getenv("DEV_LINEAR_ONLY")) return 0;
    conv(320, 64);
    conv(1280, 16);
    conv(1280, 8);
    return 0;
}
