/* bench_attention.c - flash attention (kernels/cpu/attention.c) at SD 1.5 / VAE / CLIP shapes,
 * beside the GEMM-equivalent: the same 4*Nq*Nk*d FLOPs per head through OpenBLAS cblas_sgemm as
 * S = Q K^T then O = S V with S materialised (the softmax itself is not timed for the peer, so the
 * peer is a lower bound on any GEMM-based attention). vs_peer = peer_time / our_time; the target
 * at N=4096, d=40 is >= 0.5x (within 2x of the GEMM rate) with O(N*d) memory.
 *
 * Usage: bench_attention [--quick]   (--quick: fewer repetitions)
 */
#include <cblas.h>
#include <stdint.h>
#include <string.h>

#include "attention.h"
#include "bench.h"

typedef struct {
    dk_attn_params p;
    float *q, *k, *v, *o, *s;
    void *ws;
    size_t wsb;
} actx;

static void run_ours(void *c) {
    actx *a = c;
    dk_attention(&a->p, a->q, a->k, a->v, a->o, a->ws, a->wsb);
}

static void run_gemm(void *c) {
    actx *a = c;
    const dk_attn_params *p = &a->p;
    int hd = p->heads * p->head_dim;
    for (int b = 0; b < p->batch; b++)
        for (int h = 0; h < p->heads; h++) {
            const float *q = a->q + ((size_t)b * p->nq * hd + (size_t)h * p->head_dim);
            const float *k = a->k + ((size_t)b * p->nk * hd + (size_t)h * p->head_dim);
            const float *v = a->v + ((size_t)b * p->nk * hd + (size_t)h * p->head_dim);
            float *o = a->o + ((size_t)b * p->nq * hd + (size_t)h * p->head_dim);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p->nq, p->nk, p->head_dim, p->scale, q, hd, k, hd, 0.0f,
                        a->s, p->nk);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->nq, p->head_dim, p->nk, 1.0f, a->s, p->nk, v, hd,
                        0.0f, o, hd);
        }
}

static float *rnd(size_t n, uint32_t s) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
    }
    return x;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    struct { const char *name; int B, H, nq, nk, d, causal; } cs[] = {
        {"unet64 self", 1, 8, 4096, 4096, 40, 0},
        {"unet64 cross", 1, 8, 4096, 77, 40, 0},
        {"unet32 self", 1, 8, 1024, 1024, 80, 0},
        {"unet32 cross", 1, 8, 1024, 77, 80, 0},
        {"unet16 self", 1, 8, 256, 256, 160, 0},
        {"vae mid self", 1, 1, 4096, 4096, 512, 0},
        {"clip causal", 1, 12, 77, 77, 64, 1},
    };
    bench_header();
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        actx a;
        a.p = dk_attn_params_packed(cs[i].B, cs[i].H, cs[i].nq, cs[i].nk, cs[i].d, cs[i].causal);
        size_t hd = (size_t)cs[i].H * cs[i].d;
        a.q = rnd((size_t)cs[i].B * cs[i].nq * hd, 1);
        a.k = rnd((size_t)cs[i].B * cs[i].nk * hd, 2);
        a.v = rnd((size_t)cs[i].B * cs[i].nk * hd, 3);
        a.o = malloc((size_t)cs[i].B * cs[i].nq * hd * sizeof(float));
        a.s = malloc((size_t)cs[i].nq * cs[i].nk * sizeof(float));
        a.wsb = dk_attention_workspace_size(&a.p, 0);
        a.ws = malloc(a.wsb);
        /* causal attention does about half the work; FLOPs are counted as dense for both sides */
        double flops = 4.0 * cs[i].B * cs[i].H * (double)cs[i].nq * cs[i].nk * cs[i].d;
        int reps = quick ? 3 : 7;
        double tg = bench_median(run_gemm, &a, reps, quick ? 0.2 : 1.0);
        double to = bench_median(run_ours, &a, reps, quick ? 0.2 : 1.0);
        char shape[64];
        snprintf(shape, sizeof shape, "%s N%d Nk%d d%d h%d", cs[i].causal ? "C" : "", cs[i].nq, cs[i].nk, cs[i].d,
                 cs[i].H);
        bench_row("attention", shape, "gemm-eq", tg, flops, "GFLOP/s", 0);
        bench_row("attention", shape, "flash", to, flops, "GFLOP/s", tg);
        printf("%-18s %-30s workspace %.1f KB (materialised S: %.1f MB)\n", "", cs[i].name, a.wsb / 1024.0,
               (double)cs[i].nq * cs[i].nk * 4 / 1048576.0);
        free(a.q), free(a.k), free(a.v), free(a.o), free(a.s), free(a.ws);
    }
    return 0;
}
