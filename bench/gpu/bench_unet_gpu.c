/* bench_unet_gpu.c - `make bench-gpu`, second part: one full SD 1.5 UNet step on the CUDA backend as
 * the pipeline runs it (da_unet_forward: sample, timesteps and text states uploaded, eps downloaded),
 * 64x64 latent (512x512 images), batch 2 (one image with classifier-free guidance) and 16, f16 and
 * bf16 weights (random, written once by da_mkmodel in the real diffusers layout; the speed does not
 * depend on the values).
 *
 * Timing: CUDA events recorded on the backend's stream around each forward (the forward ends with a
 * synchronous download, so the interval covers every launch of the step), median of REPS after WARM
 * warm-up steps; the host wall time of the same steps is printed beside it.
 * FLOPs: counted, not estimated: one step runs with the backend's linear / conv2d / attention ops
 * wrapped by counters (2*M*N*K per linear, 2*N*OC*OH*OW*C*KH*KW per convolution, 4*B*H*Nq*Nk*d per
 * attention for QK^T and PV; elementwise ops and norms are not counted: < 1% of the work).
 * Peak: the device's dense FP16/BF16 tensor-core rate from its SM count and clock (4096 FLOP per SM
 * per clock on Hopper; H100 SXM datasheet 989 TFLOP/s) - the share of it is what the step reaches.
 *
 * Refuses to run (exit 2, one line) without a GPU. Environment: DIFFAUG_BENCH_DIR (where the two
 * 1.7 GB model folders are written, default /tmp; removed at the end unless DIFFAUG_BENCH_KEEP=1),
 * DIFFAUG_BENCH_BATCHES (default "2 16").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "dcuda.h"
#include "mkmodel.h"
#include "modelfile.h"
#include "unet.h"
#include "util.h"

#define WARM 2
#define REPS 5

static double g_flop;
static const da_backend_ops *g_inner;

static da_status count_linear(da_backend *be, int M, int N, int K, const float *x, const da_w *w, const float *bias,
                              float *y) {
    g_flop += 2.0 * M * N * K;
    return g_inner->linear(be, M, N, K, x, w, bias, y);
}
static da_status count_conv2d(da_backend *be, const dk_conv2d *s, const float *x, const da_w *w, const float *bias,
                              float *y) {
    int OH = (s->H + s->pad_t + s->pad_b - s->dil_h * (s->KH - 1) - 1) / s->stride_h + 1;
    int OW = (s->W + s->pad_l + s->pad_r - s->dil_w * (s->KW - 1) - 1) / s->stride_w + 1;
    g_flop += 2.0 * s->N * s->OC * OH * OW * (double)s->C * s->KH * s->KW;
    return g_inner->conv2d(be, s, x, w, bias, y);
}
static da_status count_attention(da_backend *be, const dk_attn_params *p, const float *q, const float *k,
                                 const float *v, float *o) {
    g_flop += 4.0 * p->batch * p->heads * (double)p->nq * p->nk * p->head_dim * (p->causal ? 0.5 : 1.0);
    return g_inner->attention(be, p, q, k, v, o);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fail(const char *what, const da_error *e) {
    fprintf(stderr, "bench_unet_gpu: %s: %s\n", what, e->msg);
    exit(1);
}

int main(void) {
    da_error err;
    char msg[512] = "";
    int ndev = 0;
    if (dcu_device_count(&ndev, msg, sizeof msg) != 0 || ndev == 0) {
        fprintf(stderr, "bench_unet_gpu: no usable GPU (%s); nothing measured\n", *msg ? msg : "0 devices");
        return 2;
    }
    dcu_device_info info;
    if (dcu_device_info_get(0, &info, msg, sizeof msg)) {
        fprintf(stderr, "bench_unet_gpu: %s\n", msg);
        return 1;
    }
    const double peak_tc = (double)info.multiprocessors * info.clock_khz * 1e3 * 4096.0;
    const char *root = getenv("DIFFAUG_BENCH_DIR") ? getenv("DIFFAUG_BENCH_DIR") : "/tmp";
    const char *bl = getenv("DIFFAUG_BENCH_BATCHES") ? getenv("DIFFAUG_BENCH_BATCHES") : "2 16";
    int batches[8], nb = 0;
    for (const char *p = bl; *p && nb < 8;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        if (v >= 1 && v <= 64) batches[nb++] = (int)v;
        p = end;
    }
    printf("# diffaug SD 1.5 UNet step on the CUDA backend: %s, compute %d.%d, %d SMs, %.0f MHz\n", info.name,
           info.major, info.minor, info.multiprocessors, info.clock_khz / 1e3);
    printf("# peak FP16/BF16 tensor (dense, from SMs x clock x 4096): %.1f TFLOP/s; median of %d steps after %d "
           "warm-up, CUDA events on the backend stream\n\n",
           peak_tc / 1e12, REPS, WARM);
    printf("| %-34s | %10s | %10s | %10s | %10s | %8s |\n|---|---:|---:|---:|---:|---:|\n", "UNet step (64x64 latent)",
           "ms/step", "wall ms", "GFLOP/step", "TFLOP/s", "% peak");
    static const da_dtype dts[2] = {DA_F16, DA_BF16};
    for (int k = 0; k < 2; k++) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/diffaug-bench-sd15-%s-%d", root, k ? "bf16" : "f16", (int)getpid());
        da_mkmodel_params mp;
        da_mkmodel_params_init(&mp);
        mp.config = "sd15";
        mp.layout = DA_LAYOUT_DIFFUSERS;
        mp.dtype = dts[k];
        mp.seed = 1;
        double t0 = now_s();
        if (da_mkmodel(&mp, dir, &err)) fail("mkmodel sd15", &err);
        fprintf(stderr, "# wrote %s in %.1f s\n", dir, now_s() - t0);
        da_model_file *m;
        if (da_model_open(dir, &m, &err)) fail("open", &err);
        da_backend *be = da_backend_new("cuda", &err);
        if (!be) fail("cuda backend", &err);
        dcu_ctx *cx = da_backend_cuda_ctx(be);
        da_unet *u;
        if (da_unet_load_on(m, be, &u, &err)) fail("unet load", &err);
        const da_unet_config *c = da_unet_config_of(u);
        da_unet_ctx *uc = da_unet_ctx_new(u, be);
        for (int bi = 0; bi < nb; bi++) {
            int B = batches[bi];
            da_unet_shape s = {B, c->in_channels, 64, 64, 77, c->cross_attention_dim};
            size_t nx = (size_t)B * c->in_channels * 64 * 64, nc = (size_t)B * 77 * c->cross_attention_dim;
            float *x = malloc(nx * sizeof *x), *ctx = malloc(nc * sizeof *ctx), *t = malloc(B * sizeof *t);
            float *y = malloc((size_t)B * c->out_channels * 64 * 64 * sizeof *y);
            if (!x || !ctx || !t || !y) {
                fprintf(stderr, "bench_unet_gpu: out of host memory\n");
                return 1;
            }
            for (size_t i = 0; i < nx; i++) x[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
            for (size_t i = 0; i < nc; i++) ctx[i] = (float)((i * 40503u) % 2001) / 2000.0f - 0.5f;
            for (int i = 0; i < B; i++) t[i] = 500.0f;
            /* one counted step (also plans and commits every byte of device memory) */
            da_backend_ops counting = *be->ops;
            g_inner = be->ops;
            counting.linear = count_linear, counting.conv2d = count_conv2d, counting.attention = count_attention;
            be->ops = &counting;
            g_flop = 0;
            if (da_unet_forward(uc, &s, x, t, ctx, y, &err)) fail("forward", &err);
            be->ops = g_inner;
            double flop = g_flop;
            for (int i = 0; i < WARM; i++)
                if (da_unet_forward(uc, &s, x, t, ctx, y, &err)) fail("forward", &err);
            double ms[REPS], wall[REPS];
            for (int i = 0; i < REPS; i++) {
                void *ev;
                float e;
                if (dcu_timer_start(cx, &ev)) fprintf(stderr, "timer: %s\n", cx->msg), exit(1);
                double w0 = now_s();
                if (da_unet_forward(uc, &s, x, t, ctx, y, &err)) fail("forward", &err);
                wall[i] = (now_s() - w0) * 1e3;
                if (dcu_timer_stop(cx, ev, &e)) fprintf(stderr, "timer: %s\n", cx->msg), exit(1);
                ms[i] = e;
            }
            qsort(ms, REPS, sizeof ms[0], cmp_d);
            qsort(wall, REPS, sizeof wall[0], cmp_d);
            double med = ms[REPS / 2], tfs = flop / (med * 1e-3) / 1e12;
            size_t arena, scratch;
            da_unet_ctx_bytes(uc, &arena, &scratch);
            char name[64];
            snprintf(name, sizeof name, "sd15 %s batch %d", k ? "bf16" : "f16", B);
            printf("| %-34s | %10.2f | %10.2f | %10.1f | %10.1f | %7.1f%% |\n", name, med, wall[REPS / 2], flop / 1e9,
                   tfs, 100.0 * tfs * 1e12 / peak_tc);
            fprintf(stderr, "# %s: arena %.0f MiB, scratch %.0f MiB of device memory\n", name, arena / 1048576.0,
                    scratch / 1048576.0);
            free(x), free(ctx), free(t), free(y);
        }
        da_unet_ctx_free(uc);
        da_unet_free(u);
        da_backend_free(be);
        da_model_close(m);
        if (!getenv("DIFFAUG_BENCH_KEEP") || strcmp(getenv("DIFFAUG_BENCH_KEEP"), "1")) {
            char cmd[1100];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd) != 0) fprintf(stderr, "# could not remove %s\n", dir);
        }
    }
    return 0;
}
