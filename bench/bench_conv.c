/* bench_conv.c - conv2d (implicit GEMM) on SD 1.5 shapes beside the OpenBLAS peer: im2col (our
 * plain OpenMP loop, timed as part of the peer) + cblas_sgemm, or a bare cblas_sgemm for 1x1.
 * Batch 1 per call (CFG's batch 2 is two such GEMMs); GFLOP/s counts 2*OC*C*KH*KW*OH*OW.
 *
 * Shapes (which and why):
 *   UNet at a 64x64 latent: the resnet 3x3 convs of each level, 320@64x64, 640@32x32, 1280@16x16,
 *     1280@8x8 (these four carry the UNet's conv FLOPs), the level-1 -> 2 downsample (3x3 s2),
 *     a 1x1 shortcut 640->1280@16x16, conv_in 4->320 (K = 36: packing-bound) .
 *   UNet at 32x32: 320@32x32, 1280@4x4 (small N, the threading edge).
 *   VAE decoder at 512x512: 512@64x64, 512@128x128, 256@256x256 (the bulk of its 2.5 TFLOP) and
 *     128@512x512 (full run only), the VAE encoder downsample 128@512 -> 256 (pad 0,1,0,1).
 * --quick: the UNet 64x64 3x3 shapes and one VAE shape only, shorter timing.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "conv.h"

typedef struct conv_ctx {
    dk_conv2d s;
    float *x, *b, *y, *col;
    float *w;
    void *ws;
    size_t wsb;
    int OH, OW;
} conv_ctx;

static void run_ours(void *p) {
    conv_ctx *c = p;
    conv2d(&c->s, c->x, c->w, DK_F32, c->b, c->y, c->ws, c->wsb);
}

/* peer: im2col into col[C*KH*KW, OH*OW] then sgemm (and bias) */
static void run_peer(void *p) {
    conv_ctx *c = p;
    const dk_conv2d *s = &c->s;
    int P = c->OH * c->OW, K = s->C * s->KH * s->KW;
    const float *B = c->x;
    if (!(s->KH == 1 && s->KW == 1 && s->stride_h == 1 && s->stride_w == 1 && !s->pad_t && !s->pad_l)) {
#pragma omp parallel for schedule(static)
        for (int k = 0; k < K; k++) {
            int ci = k / (s->KH * s->KW), kh = k / s->KW % s->KH, kw = k % s->KW;
            float *dst = c->col + (size_t)k * P;
            for (int oh = 0; oh < c->OH; oh++) {
                int ih = oh * s->stride_h - s->pad_t + kh;
                for (int ow = 0; ow < c->OW; ow++) {
                    int iw = ow * s->stride_w - s->pad_l + kw;
                    dst[oh * c->OW + ow] =
                        (ih >= 0 && ih < s->H && iw >= 0 && iw < s->W) ? c->x[((size_t)ci * s->H + ih) * s->W + iw] : 0.0f;
                }
            }
        }
        B = c->col;
    }
#pragma omp parallel for schedule(static)
    for (int o = 0; o < s->OC; o++)
        for (int i = 0; i < P; i++) c->y[(size_t)o * P + i] = c->b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->OC, P, K, 1.0f, c->w, K, B, P, 1.0f, c->y, P);
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

static void bench_conv(const char *name, dk_conv2d s, double min_s) {
    conv_ctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.OH = dk_conv2d_oh(&s), c.OW = dk_conv2d_ow(&s);
    size_t nx = (size_t)s.C * s.H * s.W, nw = (size_t)s.OC * s.C * s.KH * s.KW, P = (size_t)c.OH * c.OW;
    c.x = malloc(nx * 4), c.w = malloc(nw * 4), c.b = malloc((size_t)s.OC * 4), c.y = malloc(s.OC * P * 4);
    c.col = malloc((size_t)s.C * s.KH * s.KW * P * 4);
    unsigned r = 7;
    for (size_t i = 0; i < nx; i++) c.x[i] = frand(&r);
    for (size_t i = 0; i < nw; i++) c.w[i] = frand(&r) * 0.1f;
    for (int i = 0; i < s.OC; i++) c.b[i] = frand(&r);
    c.wsb = conv2d_workspace_size(&s);
    c.ws = malloc(c.wsb);
    char shape[64];
    snprintf(shape, sizeof shape, "%s %d->%d k%d s%d %dx%d", name, s.C, s.OC, s.KH, s.stride_h, s.H, s.W);
    double flops = 2.0 * s.OC * s.C * s.KH * s.KW * (double)P;
    double tp, t;
    bench_median_pair(run_peer, run_ours, &c, 3, min_s, &tp, &t);
    bench_row("conv2d", shape, "im2col+ob", tp, flops, "GFLOP/s", 0);
    bench_row("conv2d", shape, "implicit", t, flops, "GFLOP/s", tp);
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.col), free(c.ws);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    double min_s = quick ? 0.2 : 0.6;
    openblas_spin_like_gomp(argv);
    bench_header();
    bench_conv("unet64.l1", dk_conv2d_make(1, 320, 64, 64, 320, 3, 1, 1), min_s);
    bench_conv("unet64.l2", dk_conv2d_make(1, 640, 32, 32, 640, 3, 1, 1), min_s);
    bench_conv("unet64.l3", dk_conv2d_make(1, 1280, 16, 16, 1280, 3, 1, 1), min_s);
    bench_conv("unet64.l4", dk_conv2d_make(1, 1280, 8, 8, 1280, 3, 1, 1), min_s);
    if (!quick) {
        bench_conv("unet64.down1", dk_conv2d_make(1, 320, 64, 64, 320, 3, 2, 1), min_s);
        bench_conv("unet64.skip1x1", dk_conv2d_make(1, 640, 16, 16, 1280, 1, 1, 0), min_s);
        bench_conv("unet64.conv_in", dk_conv2d_make(1, 4, 64, 64, 320, 3, 1, 1), min_s);
        bench_conv("unet32.l1", dk_conv2d_make(1, 320, 32, 32, 320, 3, 1, 1), min_s);
        bench_conv("unet32.l4", dk_conv2d_make(1, 1280, 4, 4, 1280, 3, 1, 1), min_s);
    }
    bench_conv("vae.dec512@64", dk_conv2d_make(1, 512, 64, 64, 512, 3, 1, 1), min_s);
    if (!quick) {
        bench_conv("vae.dec512@128", dk_conv2d_make(1, 512, 128, 128, 512, 3, 1, 1), min_s);
        bench_conv("vae.dec256@256", dk_conv2d_make(1, 256, 256, 256, 256, 3, 1, 1), min_s);
        bench_conv("vae.dec128@512", dk_conv2d_make(1, 128, 512, 512, 128, 3, 1, 1), min_s);
        dk_conv2d down = {1, 128, 512, 512, 128, 3, 3, 2, 2, 0, 1, 0, 1, 1, 1};
        bench_conv("vae.enc.down", down, min_s);
    }
    return 0;
}
