/* bench_gpu.c - `make bench-gpu`: the CUDA kernels (kernels/cuda through dcuda.h) on SD 1.5 shapes
 * (batch 2 for classifier-free guidance, 64x64 latent; VAE decoder at 512x512), timed with CUDA
 * events on the backend's stream: median of REPS runs after WARM warm-up runs. Prints time, TFLOP/s
 * (matrix ops) or TB/s (memory-bound ops, bytes read + written once) and the share of this device's
 * peak.
 *
 * Peaks are computed from the device's own SM count, boost clock and memory clock / bus width
 * (cudaGetDeviceProperties / cudaDeviceGetAttribute) times Hopper's per-SM rates from NVIDIA's
 * "H100 Tensor Core GPU Architecture" whitepaper: per SM per clock 128 FP32 FMA (256 FLOP) on CUDA
 * cores and 1024 dense FP16/BF16 FMA (4096 FLOP) on tensor cores. Reference values (NVIDIA H100 and
 * H200 datasheets, dense): H100 SXM 67 TFLOP/s FP32, 989 TFLOP/s FP16/BF16, 3.35 TB/s HBM3;
 * H100 PCIe 51 / 756 TFLOP/s, 2.0 TB/s; H200 SXM 67 / 989 TFLOP/s, 4.8 TB/s HBM3e. The table prints
 * both the computed and (when the name matches) the datasheet figure.
 *
 * The v2 rows (tensor-core attention, cuBLASLt linear, implicit-GEMM conv beside im2col, sampling
 * ops, graph replay vs direct launches) follow the v1 rows.
 *
 * Refuses to run (exit 2, one line) without a GPU. Compiled only in a CUDA build.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include "dcuda.h"
#include "sampling.h"

#define WARM 3
#define REPS 10

static dcu_ctx *g_c;
static double g_peak_f32, g_peak_tc, g_peak_bw; /* FLOP/s, FLOP/s, B/s */

static void die(const char *what) {
    fprintf(stderr, "bench_gpu: %s: %s\n", what, g_c ? g_c->msg : "");
    exit(1);
}

static void *dalloc(size_t bytes) {
    void *p;
    if (dcu_malloc(g_c, &p, bytes)) die("cudaMalloc");
    return p;
}

/* device buffer of n floats filled with small values (speed does not depend on them) */
static float *dfloats(size_t n) {
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
    float *d = dalloc(n * sizeof *d);
    if (dcu_upload(g_c, d, h, n * sizeof *h)) die("upload");
    if (dcu_sync(g_c)) die("sync");
    free(h);
    return d;
}
static void *dweights(size_t n, int wt) {
    float *f = dfloats(n);
    if (wt == 0) return f;
    void *d = dalloc(n * 2);
    if ((wt == 1 ? dcu_f32_to_f16(g_c, d, f, n) : dcu_f32_to_bf16(g_c, d, f, n)) || dcu_sync(g_c)) die("convert");
    dcu_free(g_c, f);
    return d;
}

typedef int (*bench_fn)(void *arg);

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double time_ms(bench_fn fn, void *arg, const char *label) {
    float t[REPS];
    for (int i = 0; i < WARM; i++)
        if (fn(arg)) die(label);
    for (int i = 0; i < REPS; i++) {
        void *ev;
        if (dcu_timer_start(g_c, &ev)) die("timer");
        if (fn(arg)) die(label);
        if (dcu_timer_stop(g_c, ev, &t[i])) die(label);
    }
    qsort(t, REPS, sizeof t[0], cmp_f);
    return t[REPS / 2];
}

static void row_flops(const char *name, double ms, double flop, double peak, const char *peak_name) {
    double tf = flop / (ms * 1e-3);
    printf("| %-44s | %9.3f | %8.1f TFLOP/s | %5.1f%% of %s |\n", name, ms, tf / 1e12, 100.0 * tf / peak, peak_name);
}
static void row_bytes(const char *name, double ms, double bytes) {
    double bw = bytes / (ms * 1e-3);
    printf("| %-44s | %9.3f | %8.2f TB/s    | %5.1f%% of HBM   |\n", name, ms, bw / 1e12, 100.0 * bw / g_peak_bw);
}

/* ---- the cases ---------------------------------------------------------------------------------- */
typedef struct { int M, N, K, wt; const float *x; const void *w; const float *b; float *y; void *ws; size_t wsb; } lin_arg;
static int run_linear(void *p) {
    lin_arg *a = p;
    return dcu_linear(g_c, a->M, a->N, a->K, a->x, a->w, a->wt, a->b, a->y, a->ws, a->wsb);
}
typedef struct { dcu_conv s; int wt; const float *x; const void *w; const float *b; float *y; void *ws; size_t wsb; } conv_arg;
static int run_conv(void *p) {
    conv_arg *a = p;
    return dcu_conv2d(g_c, &a->s, a->x, a->w, a->wt, a->b, a->y, a->ws, a->wsb);
}
typedef struct { dcu_attn p; const float *q, *k, *v; float *o; } attn_arg;
static int run_attn(void *p) {
    attn_arg *a = p;
    return dcu_attention(g_c, &a->p, a->q, a->k, a->v, a->o);
}
typedef struct { dcu_attn p; const float *q, *k, *v; float *o; int wt; } attn_tc_arg;
static int run_attn_tc(void *p) {
    attn_tc_arg *a = p;
    return dcu_attention_tc(g_c, &a->p, a->q, a->k, a->v, a->o, a->wt);
}
static int run_conv_tc(void *p) {
    conv_arg *a = p;
    return dcu_conv2d_tc(g_c, &a->s, a->x, a->w, a->wt, a->b, a->y);
}
static int run_linear_lt(void *p) {
    lin_arg *a = p;
    return dcu_linear_lt(g_c, a->M, a->N, a->K, a->x, a->w, a->wt, a->b, a->y, a->ws, a->wsb);
}
typedef struct { float *y; const float *x[4]; size_t n; int k; void *graph; int reps; } samp_arg;
static int run_lincomb(void *p) {
    samp_arg *a = p;
    const float c[4] = {0.5f, -0.25f, 2.0f, 1.0f};
    return dcu_lincomb(g_c, a->y, a->k, c, a->x, a->n);
}
static int run_cfg(void *p) {
    samp_arg *a = p;
    return dcu_cfg_combine(g_c, a->y, a->x[0], a->x[1], NULL, 7.5f, 0.0f, a->n);
}
static int run_philox(void *p) {
    samp_arg *a = p;
    return dcu_philox_normal(g_c, a->y, 1234, 5678, 0, a->n, 0.0f, 1.0f);
}
static int run_sampler_step(void *p) {
    samp_arg *a = p;
    /* DPM++ 2M second order (the most memory traffic: x, m, prev x0 in; x, cur x0 out) */
    dk_step st = {DK_STEP_DPM_SECOND, 1, 0, 0, 0, 1, {0.9f, 0.4f, 0.8f, -0.2f, 1.1f, 0.05f}};
    return dcu_sampler_step(g_c, &st, a->y, a->x[0], NULL, (float *)a->x[1], a->x[2], a->n);
}
/* a chain of `reps` small launches (what a UNet step at batch 2 looks like to the launcher) */
static int run_chain(void *p) {
    samp_arg *a = p;
    for (int i = 0; i < a->reps; i++) {
        int rc = dcu_add(g_c, a->y, a->y, a->x[0], a->n);
        if (rc) return rc;
    }
    return 0;
}
static int run_graph(void *p) {
    samp_arg *a = p;
    return dcu_graph_replay(g_c, a->graph);
}
typedef struct { float *y; const float *x, *x2; size_t a, b, c; } mem_arg;
static int run_groupnorm(void *p) {
    mem_arg *a = p;
    return dcu_groupnorm(g_c, a->y, a->x, 2, a->a, a->b, 32, 1e-5f, NULL, NULL, 0, 1);
}
static int run_layernorm(void *p) {
    mem_arg *a = p;
    return dcu_layernorm(g_c, a->y, a->x, a->a, a->b, 1e-5f, NULL, NULL, 0);
}
static int run_add(void *p) {
    mem_arg *a = p;
    return dcu_add(g_c, a->y, a->x, a->x2, a->a);
}
static int run_geglu(void *p) {
    mem_arg *a = p;
    return dcu_geglu(g_c, a->y, a->x, a->a, a->b);
}
static int run_transpose(void *p) {
    mem_arg *a = p;
    return dcu_transpose(g_c, a->y, a->x, 2, a->a, a->b);
}
static int run_upsample(void *p) {
    mem_arg *a = p;
    return dcu_upsample2x(g_c, a->y, a->x, 2, a->a, a->b, a->c);
}
static int run_softmax(void *p) {
    mem_arg *a = p;
    return dcu_softmax(g_c, a->y, a->x, a->a, a->b);
}

static const char *wname(int wt) { return wt == 0 ? "f32" : wt == 1 ? "f16" : "bf16"; }

int main(int argc, char **argv) {
    char msg[512] = "";
    int n = 0;
    if (dcu_device_count(&n, msg, sizeof msg) != 0 || n == 0) {
        fprintf(stderr, "bench_gpu: no usable GPU (%s); nothing measured\n", *msg ? msg : "0 devices");
        return 2;
    }
    dcu_device_info info;
    if (dcu_device_info_get(0, &info, msg, sizeof msg)) {
        fprintf(stderr, "bench_gpu: %s\n", msg);
        return 1;
    }
    if (dcu_ctx_create(&g_c, 0, msg, sizeof msg)) {
        fprintf(stderr, "bench_gpu: %s\n", msg);
        return 1;
    }
    double clk = info.clock_khz * 1e3;
    g_peak_f32 = (double)info.multiprocessors * clk * 256.0;
    g_peak_tc = (double)info.multiprocessors * clk * 4096.0;
    g_peak_bw = 2.0 * info.mem_clock_khz * 1e3 * info.mem_bus_bits / 8.0;
    const char *ds = strstr(info.name, "H200") ? "datasheet H200 SXM: 67 / 989 TFLOP/s, 4.8 TB/s"
                   : strstr(info.name, "H100") && strstr(info.name, "PCIe") ? "datasheet H100 PCIe: 51 / 756 TFLOP/s, 2.0 TB/s"
                   : strstr(info.name, "H100") ? "datasheet H100 SXM: 67 / 989 TFLOP/s, 3.35 TB/s"
                                                : "no datasheet row for this device";
    printf("# diffaug GPU kernel benchmarks: %s, compute %d.%d, %d SMs, %.0f MHz, built for %s\n", info.name, info.major,
           info.minor, info.multiprocessors, clk / 1e6, dcu_build_archs());
    printf("# peaks from the device: FP32 %.1f TFLOP/s, FP16/BF16 tensor (dense) %.1f TFLOP/s, HBM %.2f TB/s (%s)\n",
           g_peak_f32 / 1e12, g_peak_tc / 1e12, g_peak_bw / 1e12, ds);
    printf("# median of %d runs after %d warm-up runs, CUDA events\n\n", REPS, WARM);
    printf("| %-44s | %9s | %-16s | %-15s |\n|---|---:|---:|---:|\n", "op (SD 1.5 shape)", "ms", "rate", "share");
    (void)argc, (void)argv;

    /* linear: (M, N, K) of the UNet's 64x64 level with CFG batch 2 */
    const int lin[][3] = {{8192, 320, 320}, {8192, 2560, 320}, {8192, 320, 1280}, {154, 320, 768}, {2048, 640, 640}};
    for (size_t s = 0; s < sizeof lin / sizeof lin[0]; s++)
        for (int wt = 0; wt < 3; wt++) {
            lin_arg a = {lin[s][0], lin[s][1], lin[s][2], wt, NULL, NULL, NULL, NULL, NULL, 0};
            a.x = dfloats((size_t)a.M * a.K), a.w = dweights((size_t)a.N * a.K, wt), a.b = dfloats(a.N);
            a.y = dalloc((size_t)a.M * a.N * 4), a.wsb = dcu_linear_ws(a.M, a.K), a.ws = dalloc(a.wsb);
            char name[96];
            snprintf(name, sizeof name, "linear %dx%dx%d %s", a.M, a.N, a.K, wname(wt));
            double ms = time_ms(run_linear, &a, name);
            row_flops(name, ms, 2.0 * a.M * a.N * a.K, wt ? g_peak_tc : g_peak_f32, wt ? "TC" : "FP32");
            dcu_free(g_c, (void *)a.x), dcu_free(g_c, (void *)a.w), dcu_free(g_c, (void *)a.b), dcu_free(g_c, a.y);
            dcu_free(g_c, a.ws);
        }
    /* conv2d 3x3 pad 1 per UNet level, the stride-2 downsample, and the VAE decoder's last level */
    const int cv[][6] = {{2, 320, 64, 64, 320, 1}, {2, 640, 32, 32, 640, 1}, {2, 1280, 16, 16, 1280, 1},
                         {2, 320, 64, 64, 320, 2}, {1, 128, 512, 512, 128, 1}};
    for (size_t s = 0; s < sizeof cv / sizeof cv[0]; s++)
        for (int wt = 0; wt < 3; wt++) {
            conv_arg a = {{cv[s][0], cv[s][1], cv[s][2], cv[s][3], cv[s][4], 3, 3, cv[s][5], cv[s][5], 1, 1, 1, 1, 1, 1},
                          wt, NULL, NULL, NULL, NULL, NULL, 0};
            int OH = (a.s.H + 2 - 3) / a.s.stride_h + 1, OW = (a.s.W + 2 - 3) / a.s.stride_w + 1;
            size_t nx = (size_t)a.s.N * a.s.C * a.s.H * a.s.W, ny = (size_t)a.s.N * a.s.OC * OH * OW;
            a.x = dfloats(nx), a.w = dweights((size_t)a.s.OC * a.s.C * 9, wt), a.b = dfloats(a.s.OC), a.y = dalloc(ny * 4);
            a.wsb = dcu_conv2d_ws(&a.s), a.ws = dalloc(a.wsb);
            char name[96];
            snprintf(name, sizeof name, "conv3x3 s%d [%d,%d,%d,%d]->%d %s", a.s.stride_h, a.s.N, a.s.C, a.s.H, a.s.W,
                     a.s.OC, wname(wt));
            double ms = time_ms(run_conv, &a, name);
            row_flops(name, ms, 2.0 * ny * a.s.C * 9, wt ? g_peak_tc : g_peak_f32, wt ? "TC" : "FP32");
            dcu_free(g_c, (void *)a.x), dcu_free(g_c, (void *)a.w), dcu_free(g_c, (void *)a.b), dcu_free(g_c, a.y);
            dcu_free(g_c, a.ws);
        }
    /* attention (v1 is FP32 CUDA cores: share of the FP32 peak) */
    const int at[][5] = {{2, 8, 4096, 4096, 40}, {2, 8, 4096, 77, 40}, {2, 8, 1024, 1024, 80}, {2, 8, 256, 256, 160},
                         {1, 1, 4096, 4096, 512}, {2, 12, 77, 77, 64}};
    for (size_t s = 0; s < sizeof at / sizeof at[0]; s++) {
        attn_arg a;
        memset(&a, 0, sizeof a);
        int B = at[s][0], H = at[s][1], Nq = at[s][2], Nk = at[s][3], d = at[s][4];
        size_t row = (size_t)H * d;
        a.p = (dcu_attn){B, H, Nq, Nk, d, s == 5, 0.0f, row, row, row, row, Nq * row, Nk * row, Nk * row, Nq * row};
        a.p.scale = 1.0f / sqrtf((float)d);
        a.q = dfloats(B * Nq * row), a.k = dfloats(B * Nk * row), a.v = dfloats(B * Nk * row), a.o = dalloc(B * Nq * row * 4);
        char name[96];
        snprintf(name, sizeof name, "attention B%d H%d N%d/%d d%d%s", B, H, Nq, Nk, d, s == 5 ? " causal" : "");
        double ms = time_ms(run_attn, &a, name);
        row_flops(name, ms, 4.0 * B * H * (double)Nq * Nk * d * (s == 5 ? 0.5 : 1.0), g_peak_f32, "FP32");
        dcu_free(g_c, (void *)a.q), dcu_free(g_c, (void *)a.k), dcu_free(g_c, (void *)a.v), dcu_free(g_c, a.o);
    }
    /* ==== v2 kernels (branch cuda-tc) ==== */
    /* attention on tensor cores: share of the FP16/BF16 dense tensor peak. SD 1.5 at 512^2 (N 4096,
     * d 40 / 80 / 160 per level, 77 text keys), and 1024^2 with SD 1.5 (N 16384). */
    const int atc[][5] = {{2, 8, 4096, 4096, 40}, {2, 8, 4096, 77, 40},  {2, 8, 1024, 1024, 80}, {2, 8, 1024, 77, 80},
                          {2, 8, 256, 256, 160},  {2, 8, 256, 77, 160},  {2, 8, 4096, 4096, 64}, {2, 8, 16384, 16384, 40},
                          {2, 8, 16384, 77, 40}};
    for (size_t s = 0; s < sizeof atc / sizeof atc[0]; s++)
        for (int wt = 1; wt <= 2; wt++) {
            attn_tc_arg a;
            memset(&a, 0, sizeof a);
            int B = atc[s][0], H = atc[s][1], Nq = atc[s][2], Nk = atc[s][3], d = atc[s][4];
            size_t row = (size_t)H * d;
            a.p = (dcu_attn){B, H, Nq, Nk, d, 0, 1.0f / sqrtf((float)d), row, row, row, row, Nq * row, Nk * row,
                             Nk * row, Nq * row};
            a.wt = wt;
            a.q = dfloats(B * Nq * row), a.k = dfloats(B * Nk * row), a.v = dfloats(B * Nk * row);
            a.o = dalloc(B * Nq * row * 4);
            char name[96];
            snprintf(name, sizeof name, "attention tc %s B%d H%d N%d/%d d%d", wname(wt), B, H, Nq, Nk, d);
            double ms = time_ms(run_attn_tc, &a, name);
            row_flops(name, ms, 4.0 * B * H * (double)Nq * Nk * d, g_peak_tc, "TC");
            dcu_free(g_c, (void *)a.q), dcu_free(g_c, (void *)a.k), dcu_free(g_c, (void *)a.v), dcu_free(g_c, a.o);
        }
    /* linear through cuBLASLt with the bias epilogue (compare with the cublasGemmEx rows above) */
    for (size_t s = 0; s < sizeof lin / sizeof lin[0]; s++)
        for (int wt = 0; wt < 3; wt++) {
            lin_arg a = {lin[s][0], lin[s][1], lin[s][2], wt, NULL, NULL, NULL, NULL, NULL, 0};
            a.x = dfloats((size_t)a.M * a.K), a.w = dweights((size_t)a.N * a.K, wt), a.b = dfloats(a.N);
            a.y = dalloc((size_t)a.M * a.N * 4), a.wsb = dcu_linear_ws(a.M, a.K), a.ws = dalloc(a.wsb);
            char name[96];
            snprintf(name, sizeof name, "linear lt+bias %dx%dx%d %s", a.M, a.N, a.K, wname(wt));
            double ms = time_ms(run_linear_lt, &a, name);
            row_flops(name, ms, 2.0 * a.M * a.N * a.K, wt ? g_peak_tc : g_peak_f32, wt ? "TC" : "FP32");
            dcu_free(g_c, (void *)a.x), dcu_free(g_c, (void *)a.w), dcu_free(g_c, (void *)a.b), dcu_free(g_c, a.y);
            dcu_free(g_c, a.ws);
        }
    /* conv: implicit GEMM on tensor cores (16-bit weights), the shapes of the im2col rows above plus
     * a 1x1 shortcut, each also through im2col for the comparison */
    const int cvt[][8] = {{2, 320, 64, 64, 320, 3, 1, 1}, {2, 640, 32, 32, 640, 3, 1, 1}, {2, 1280, 16, 16, 1280, 3, 1, 1},
                          {2, 320, 64, 64, 320, 3, 2, 1}, {1, 128, 512, 512, 128, 3, 1, 1}, {2, 960, 32, 32, 640, 1, 1, 0}};
    for (size_t s = 0; s < sizeof cvt / sizeof cvt[0]; s++)
        for (int wt = 1; wt <= 2; wt++) {
            int kk = cvt[s][5], st = cvt[s][6], pd = cvt[s][7];
            conv_arg a = {{cvt[s][0], cvt[s][1], cvt[s][2], cvt[s][3], cvt[s][4], kk, kk, st, st, pd, pd, pd, pd, 1, 1},
                          wt, NULL, NULL, NULL, NULL, NULL, 0};
            int OH = (a.s.H + 2 * pd - kk) / st + 1, OW = (a.s.W + 2 * pd - kk) / st + 1;
            size_t nx = (size_t)a.s.N * a.s.C * a.s.H * a.s.W, ny = (size_t)a.s.N * a.s.OC * OH * OW;
            a.x = dfloats(nx), a.w = dweights((size_t)a.s.OC * a.s.C * kk * kk, wt), a.b = dfloats(a.s.OC);
            a.y = dalloc(ny * 4), a.wsb = dcu_conv2d_ws(&a.s), a.ws = dalloc(a.wsb);
            double flop = 2.0 * ny * a.s.C * kk * kk;
            char name[96];
            snprintf(name, sizeof name, "conv%dx%d s%d [%d,%d,%d,%d]->%d %s tc", kk, kk, st, a.s.N, a.s.C, a.s.H, a.s.W,
                     a.s.OC, wname(wt));
            row_flops(name, time_ms(run_conv_tc, &a, name), flop, g_peak_tc, "TC");
            snprintf(name, sizeof name, "conv%dx%d s%d [%d,%d,%d,%d]->%d %s im2col", kk, kk, st, a.s.N, a.s.C, a.s.H,
                     a.s.W, a.s.OC, wname(wt));
            row_flops(name, time_ms(run_conv, &a, name), flop, g_peak_tc, "TC");
            dcu_free(g_c, (void *)a.x), dcu_free(g_c, (void *)a.w), dcu_free(g_c, (void *)a.b), dcu_free(g_c, a.y);
            dcu_free(g_c, a.ws);
        }
    /* sampling ops on SD latents (CFG batch 2 at 64x64 and 128x128): memory-bound, bytes once */
    const size_t lat[] = {2 * 4 * 64 * 64, 2 * 4 * 128 * 128};
    for (int li = 0; li < 2; li++) {
        size_t nl = lat[li];
        samp_arg a;
        memset(&a, 0, sizeof a);
        a.n = nl, a.y = dalloc(nl * 4);
        for (int i = 0; i < 4; i++) a.x[i] = dfloats(nl);
        char name[96];
        for (int k = 2; k <= 4; k += 2) {
            a.k = k;
            snprintf(name, sizeof name, "lincomb %d terms [%zu]", k, nl);
            row_bytes(name, time_ms(run_lincomb, &a, name), (k + 1.0) * nl * 4);
        }
        snprintf(name, sizeof name, "cfg_combine [%zu]", nl);
        row_bytes(name, time_ms(run_cfg, &a, name), 3.0 * nl * 4);
        snprintf(name, sizeof name, "sampler_step DPM++ 2M [%zu]", nl);
        row_bytes(name, time_ms(run_sampler_step, &a, name), 5.0 * nl * 4);
        snprintf(name, sizeof name, "philox_normal [%zu] (writes only)", nl);
        row_bytes(name, time_ms(run_philox, &a, name), 1.0 * nl * 4);
        /* launch overhead: 200 dependent small launches, directly and as one graph replay */
        a.reps = 200;
        snprintf(name, sizeof name, "200 x add [%zu], direct launches", nl);
        row_bytes(name, time_ms(run_chain, &a, name), 200 * 3.0 * nl * 4);
        if (dcu_graph_begin(g_c) || run_chain(&a) || dcu_graph_end(g_c, &a.graph)) die("graph capture");
        snprintf(name, sizeof name, "200 x add [%zu], one graph replay", nl);
        row_bytes(name, time_ms(run_graph, &a, name), 200 * 3.0 * nl * 4);
        dcu_graph_free(a.graph);
        dcu_free(g_c, a.y);
        for (int i = 0; i < 4; i++) dcu_free(g_c, (void *)a.x[i]);
    }
    /* memory-bound ops: bytes = what must cross HBM once (reads + writes) */
    {
        size_t C = 320, HW = 4096, nel = 2 * C * HW;
        mem_arg a = {dalloc(nel * 4 * 2), dfloats(nel * 2), dfloats(nel * 2), C, HW, 0};
        row_bytes("groupnorm+silu [2,320,64x64] (3 passes)", time_ms(run_groupnorm, &a, "groupnorm"), 4.0 * nel * 4);
        mem_arg l = {a.y, a.x, NULL, 8192, 320, 0};
        row_bytes("layernorm [8192,320] (3 passes)", time_ms(run_layernorm, &l, "layernorm"), 4.0 * 8192 * 320 * 4);
        mem_arg d = {a.y, a.x, a.x2, nel, 0, 0};
        row_bytes("add [2*320*4096]", time_ms(run_add, &d, "add"), 3.0 * nel * 4);
        mem_arg g = {a.y, a.x, NULL, 8192 / 4, 1280, 0};
        row_bytes("geglu [2048,2*1280]", time_ms(run_geglu, &g, "geglu"), 3.0 * 2048 * 1280 * 4);
        mem_arg t = {a.y, a.x, NULL, 320, 4096, 0};
        row_bytes("transpose 2x[320,4096]", time_ms(run_transpose, &t, "transpose"), 2.0 * nel * 4);
        mem_arg u = {a.y, a.x, NULL, 640, 32, 32};
        row_bytes("upsample2x [2,640,32,32]", time_ms(run_upsample, &u, "upsample"), 5.0 * 2 * 640 * 1024 * 4);
        mem_arg sm = {a.y, a.x, NULL, 1024, 4096, 0};
        row_bytes("softmax [1024,4096] (3 passes)", time_ms(run_softmax, &sm, "softmax"), 4.0 * 1024 * 4096 * 4);
        dcu_free(g_c, a.y), dcu_free(g_c, (void *)a.x), dcu_free(g_c, (void *)a.x2);
    }
    dcu_ctx_destroy(g_c);
    return 0;
}
