/* backend_cuda.c - the CUDA backend: the da_backend_ops table of backend.h filled with the
 * launchers of kernels/cuda (dcuda.h). Compiled only in a CUDA build (the Makefile adds
 * engine/<name>_cuda.c when nvcc is found). Semantics are those of backend_cpu.c, op for op.
 *
 * Memory: every buffer an op sees is device memory. Scratch is one cudaMalloc'd block sized by the
 * planning pass (da_backend_commit through mem_alloc), the arena's block comes from mem_alloc too
 * (da_arena_on_backend), and weights are uploaded once when bound (adopt_weight; kept in their
 * stored dtype, owned here until da_backend_free). Everything runs in order on one stream; errors of
 * a kernel's execution surface at the next download (or at once with DIFFAUG_CUDA_SYNC=1).
 */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "dcuda.h"
#include "util.h"

typedef struct cuda_backend {
    da_backend base; /* first: a da_backend * is a cuda_backend * */
    dcu_ctx *ctx;
    void **owned; /* device copies of weights */
    size_t n_owned, cap_owned;
    int32_t *ids; /* device copy of gather_rows' host ids */
    size_t ids_cap;
    /* kernel choices (environment at creation; docs/CUDA.md) and the recorded graph */
    int attn_wt;  /* DIFFAUG_CUDA_ATTN: 1 tc (f16, default), 2 tc-bf16, 0 fp32 (the v1 kernel) */
    int gemm_lt;  /* DIFFAUG_CUDA_GEMM: 1 lt (cuBLASLt + bias epilogue, default), 0 gemmex (v1) */
    int conv_tc;  /* DIFFAUG_CUDA_CONV: 1 tc (implicit GEMM for 16-bit weights, default), 0 im2col (v1) */
    void *graph;  /* cudaGraphExec_t of the last graph_begin .. graph_end */
    bool capturing;
} cuda_backend;

static cuda_backend *cb(da_backend *be) { return (cuda_backend *)be; }
static dcu_ctx *cx(da_backend *be) { return cb(be)->ctx; }

/* A launcher's non-zero return becomes the backend's sticky error with the launcher's message. */
static da_status chk(da_backend *be, int rc, const char *op) {
    if (rc == 0) return DA_OK;
    return da_backend_fail(be, DA_ERR_CUDA, "cuda %s: %s", op, cx(be)->msg);
}

static size_t cuda_linear_ws(int M, int N, int K) { return dcu_linear_ws(M, K); }

static dcu_conv conv_of(const dk_conv2d *s) {
    return (dcu_conv){s->N, s->C, s->H, s->W, s->OC, s->KH, s->KW, s->stride_h, s->stride_w,
                      s->pad_t, s->pad_b, s->pad_l, s->pad_r, s->dil_h, s->dil_w};
}
static size_t cuda_conv2d_ws(const dk_conv2d *s) {
    dcu_conv c = conv_of(s);
    return dcu_conv2d_ws(&c);
}
static size_t cuda_attention_ws(const dk_attn_params *p) { return 0; } /* all in shared memory */

static da_status cuda_linear(da_backend *be, int M, int N, int K, const float *x, const da_w *w, const float *bias,
                             float *y) {
    if (cb(be)->gemm_lt)
        return chk(be, dcu_linear_lt(cx(be), M, N, K, x, w->p, (int)w->t, bias, y, be->ws, be->ws_bytes), "linear");
    return chk(be, dcu_linear(cx(be), M, N, K, x, w->p, (int)w->t, bias, y, be->ws, be->ws_bytes), "linear");
}

static da_status cuda_conv2d(da_backend *be, const dk_conv2d *s, const float *x, const da_w *w, const float *bias,
                             float *y) {
    dcu_conv c = conv_of(s);
    /* f32 weights keep the exact FP32 im2col + cuBLAS path */
    if (cb(be)->conv_tc && w->t != DK_F32) return chk(be, dcu_conv2d_tc(cx(be), &c, x, w->p, (int)w->t, bias, y), "conv2d");
    return chk(be, dcu_conv2d(cx(be), &c, x, w->p, (int)w->t, bias, y, be->ws, be->ws_bytes), "conv2d");
}

/* Zero strides select the packed layout exactly as kernels/cpu/attention.c resolves them. */
static da_status cuda_attention(da_backend *be, const dk_attn_params *p, const float *q, const float *k,
                                const float *v, float *o) {
    size_t row = (size_t)p->heads * p->head_dim;
    dcu_attn a = {p->batch, p->heads, p->nq, p->nk, p->head_dim, p->causal, p->scale,
                  p->q_row ? p->q_row : row, p->k_row ? p->k_row : row,
                  p->v_row ? p->v_row : row, p->o_row ? p->o_row : row, 0, 0, 0, 0};
    a.q_batch = p->q_batch ? p->q_batch : (size_t)p->nq * a.q_row;
    a.k_batch = p->k_batch ? p->k_batch : (size_t)p->nk * a.k_row;
    a.v_batch = p->v_batch ? p->v_batch : (size_t)p->nk * a.v_row;
    a.o_batch = p->o_batch ? p->o_batch : (size_t)p->nq * a.o_row;
    /* the tensor-core kernel where its shared memory fits (d <= 304 on Hopper), else the FP32 one */
    int wt = cb(be)->attn_wt;
    if (wt && dcu_attention_tc_smem(p->head_dim) <= (size_t)cx(be)->smem_optin)
        return chk(be, dcu_attention_tc(cx(be), &a, q, k, v, o, wt), "attention");
    return chk(be, dcu_attention(cx(be), &a, q, k, v, o), "attention");
}

static void cuda_groupnorm(da_backend *be, float *y, const float *x, const dk_groupnorm_params *p) {
    chk(be, dcu_groupnorm(cx(be), y, x, p->N, p->C, p->HW, p->groups, p->eps, p->gamma, p->beta, (int)p->wtype, p->silu),
        "groupnorm");
}

static void cuda_layernorm(da_backend *be, float *y, const float *x, size_t M, size_t D, float eps, const float *g,
                           const float *b) {
    chk(be, dcu_layernorm(cx(be), y, x, M, D, eps, g, b, 0), "layernorm");
}

static void cuda_act(da_backend *be, da_act kind, float *y, const float *x, size_t n) {
    int k = kind == DA_ACT_SILU ? DCU_ACT_SILU
          : kind == DA_ACT_GELU ? DCU_ACT_GELU
          : kind == DA_ACT_GELU_TANH ? DCU_ACT_GELU_TANH
                                     : DCU_ACT_QUICK_GELU;
    chk(be, dcu_act(cx(be), k, y, x, n), "act");
}

static void cuda_geglu(da_backend *be, float *y, const float *x, size_t M, size_t F) {
    chk(be, dcu_geglu(cx(be), y, x, M, F), "geglu");
}
static void cuda_add(da_backend *be, float *y, const float *a, const float *b, size_t n) {
    chk(be, dcu_add(cx(be), y, a, b, n), "add");
}
static void cuda_mul(da_backend *be, float *y, const float *a, const float *b, size_t n) {
    chk(be, dcu_mul(cx(be), y, a, b, n), "mul");
}
static void cuda_scale(da_backend *be, float *y, const float *x, float s, float t, size_t n) {
    chk(be, dcu_scale(cx(be), y, x, s, t, n), "scale");
}
static void cuda_add_channel_bias(da_backend *be, float *y, const float *x, const float *bias, size_t N, size_t C,
                                  size_t HW) {
    chk(be, dcu_add_channel_bias(cx(be), y, x, bias, 0, N, C, HW), "add_channel_bias");
}
static void cuda_add_row(da_backend *be, float *y, const float *x, const float *row, size_t M, size_t N) {
    chk(be, dcu_add_row(cx(be), y, x, row, 0, M, N), "add_row");
}
static void cuda_upsample2x(da_backend *be, float *y, const float *x, size_t N, size_t C, size_t H, size_t W) {
    chk(be, dcu_upsample2x(cx(be), y, x, N, C, H, W), "upsample2x");
}
static void cuda_concat(da_backend *be, float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N,
                        size_t HW) {
    chk(be, dcu_concat_channels(cx(be), y, a, Ca, b, Cb, N, HW), "concat_channels");
}
static void cuda_temb(da_backend *be, float *y, const float *t, size_t B, const dk_temb_params *p) {
    dcu_temb q = {p->dim, p->flip_sin_to_cos, p->downscale_freq_shift, p->scale, p->max_period};
    chk(be, dcu_timestep_embedding(cx(be), y, t, B, &q), "timestep_embedding");
}
static void cuda_transpose(da_backend *be, float *y, const float *x, size_t B, size_t M, size_t N) {
    chk(be, dcu_transpose(cx(be), y, x, B, M, N), "transpose");
}

/* ids live in host memory (backend.h); they go to a small device buffer that grows only when a
 * longer id list arrives (CLIP: 77 tokens, once per prompt, outside the denoising loop). */
static void cuda_gather_rows(da_backend *be, float *y, const da_w *table, const int32_t *ids, size_t n, size_t D) {
    cuda_backend *c = cb(be);
    if (!n) return;
    if (n > c->ids_cap) {
        void *p;
        if (chk(be, dcu_malloc(c->ctx, &p, n * sizeof(int32_t)), "gather_rows ids")) return;
        dcu_free(c->ctx, c->ids);
        c->ids = p;
        c->ids_cap = n;
    }
    if (chk(be, dcu_upload(c->ctx, c->ids, ids, n * sizeof(int32_t)), "gather_rows ids upload")) return;
    chk(be, dcu_gather_rows(c->ctx, y, table->p, (int)table->t, c->ids, n, D), "gather_rows");
}

static void cuda_copy(da_backend *be, float *dst, const float *src, size_t n) {
    chk(be, dcu_copy(cx(be), dst, src, n * sizeof(float)), "copy");
}
static void cuda_upload(da_backend *be, float *dst, const float *host, size_t n) {
    chk(be, dcu_upload(cx(be), dst, host, n * sizeof(float)), "upload");
}
static void cuda_download(da_backend *be, float *host, const float *src, size_t n) {
    chk(be, dcu_download(cx(be), host, src, n * sizeof(float)), "download");
}

/* ---- sampling ops (sampling.cu over kernels/cpu/sampling.h) -------------------------------------- */
static void cuda_lincomb(da_backend *be, float *y, int k, const float *a, const float *const *x, size_t n) {
    chk(be, dcu_lincomb(cx(be), y, k, a, x, n), "lincomb");
}
static void cuda_cfg_combine(da_backend *be, float *y, const float *u, const float *c, const float *img, float g,
                             float g_img, size_t n) {
    chk(be, dcu_cfg_combine(cx(be), y, u, c, img, g, g_img, n), "cfg_combine");
}
static void cuda_philox_normal(da_backend *be, float *y, uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                               float mean, float std) {
    chk(be, dcu_philox_normal(cx(be), y, seed, stream, first, n, mean, std), "philox_normal");
}

static void cuda_sampler_step(da_backend *be, const dk_step *st, float *x, const float *m, const float *noise,
                              float *cur_x0, const float *prev_x0, size_t n) {
    chk(be, dcu_sampler_step(cx(be), st, x, m, noise, cur_x0, prev_x0, n), "sampler_step");
}

static void cuda_model_input(da_backend *be, const dk_model_input *p, float *y, const float *x, size_t n) {
    chk(be, dcu_model_input(cx(be), p, y, x, n), "model_input");
}

/* ---- graphs (graph.cu): constraints in docs/CUDA.md ------------------------------------------------ */
static da_status cuda_graph_begin(da_backend *be) {
    cuda_backend *c = cb(be);
    if (c->capturing) return da_backend_fail(be, DA_ERR_INVALID_ARG, "cuda graph_begin: already recording");
    if (chk(be, dcu_graph_begin(c->ctx), "graph_begin")) return be->st;
    c->capturing = true;
    return DA_OK;
}
static da_status cuda_graph_end(da_backend *be) {
    cuda_backend *c = cb(be);
    if (!c->capturing) return da_backend_fail(be, DA_ERR_INVALID_ARG, "cuda graph_end: no graph_begin before it");
    c->capturing = false;
    /* always end the capture (the stream is unusable until then), even after a failed op */
    int rc = dcu_graph_end(c->ctx, &c->graph);
    if (be->st) return be->st; /* the first error stays the one reported */
    return chk(be, rc, "graph_end");
}
static da_status cuda_graph_replay(da_backend *be) {
    cuda_backend *c = cb(be);
    if (c->capturing) return da_backend_fail(be, DA_ERR_INVALID_ARG, "cuda graph_replay: still recording");
    return chk(be, dcu_graph_replay(c->ctx, c->graph), "graph_replay");
}

static void *cuda_mem_alloc(da_backend *be, size_t bytes) {
    void *p;
    return dcu_malloc(cx(be), &p, bytes) == 0 ? p : NULL;
}
static void cuda_mem_free(da_backend *be, void *p) { dcu_free(cx(be), p); }

/* Upload once, in the stored dtype: 16-bit weights stay 16-bit (half the memory, and the tensor-core
 * GEMM path reads them as they are); f32 weights stay f32 (the exact FP32 GEMM path). */
static da_status cuda_adopt(da_backend *be, da_w *w, size_t bytes) {
    cuda_backend *c = cb(be);
    if (!w->p || !bytes) return DA_OK;
    if (c->n_owned == c->cap_owned) {
        size_t cap = c->cap_owned ? c->cap_owned * 2 : 256;
        void **p = realloc(c->owned, cap * sizeof *p);
        if (!p) return da_backend_fail(be, DA_ERR_NOMEM, "cuda adopt_weight: out of host memory");
        c->owned = p;
        c->cap_owned = cap;
    }
    void *d;
    if (chk(be, dcu_malloc(c->ctx, &d, bytes), "adopt_weight")) return be->st;
    c->owned[c->n_owned++] = d;
    if (chk(be, dcu_upload(c->ctx, d, w->p, bytes), "adopt_weight upload")) return be->st;
    w->p = d;
    return DA_OK;
}

static void cuda_destroy(da_backend *be) {
    cuda_backend *c = cb(be);
    if (c->ctx) {
        if (c->capturing) dcu_graph_end(c->ctx, &c->graph);
        dcu_graph_free(c->graph);
        dcu_sync(c->ctx);
        for (size_t i = 0; i < c->n_owned; i++) dcu_free(c->ctx, c->owned[i]);
        dcu_free(c->ctx, c->ids);
        dcu_free(c->ctx, be->ws);
        dcu_ctx_destroy(c->ctx);
    }
    free(c->owned);
    free(c);
}

static const da_backend_ops cuda_ops = {
    .name = "cuda",
    .linear_ws = cuda_linear_ws,
    .conv2d_ws = cuda_conv2d_ws,
    .attention_ws = cuda_attention_ws,
    .linear = cuda_linear,
    .conv2d = cuda_conv2d,
    .attention = cuda_attention,
    .groupnorm = cuda_groupnorm,
    .layernorm = cuda_layernorm,
    .act = cuda_act,
    .geglu = cuda_geglu,
    .add = cuda_add,
    .mul = cuda_mul,
    .scale = cuda_scale,
    .add_channel_bias = cuda_add_channel_bias,
    .add_row = cuda_add_row,
    .upsample2x = cuda_upsample2x,
    .concat_channels = cuda_concat,
    .timestep_embedding = cuda_temb,
    .transpose = cuda_transpose,
    .gather_rows = cuda_gather_rows,
    .copy = cuda_copy,
    .upload = cuda_upload,
    .download = cuda_download,
    .mem_alloc = cuda_mem_alloc,
    .mem_free = cuda_mem_free,
    .adopt_weight = cuda_adopt,
    .destroy = cuda_destroy,
    .lincomb = cuda_lincomb,
    .cfg_combine = cuda_cfg_combine,
    .philox_normal = cuda_philox_normal,
    .sampler_step = cuda_sampler_step,
    .model_input = cuda_model_input,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_replay = cuda_graph_replay,
};

/* A kernel choice from the environment: index of `val` in `names` (the first is the default when
 * unset or empty); -1 and an error naming the variable otherwise. */
static int env_choice(const char *var, const char *const *names, int n, da_error *err) {
    const char *v = getenv(var);
    if (!v || !*v) return 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, names[i], sizeof list - strlen(list) - 1);
        if (i + 1 < n) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    da_err_set(err, DA_ERR_INVALID_ARG, "%s=%s: unknown kernel choice (one of: %s)", var, v, list);
    return -1;
}

da_backend *da_backend_cuda_new(int device, da_error *err) {
    static const char *const attn_names[] = {"tc", "tc-bf16", "fp32"};
    static const char *const gemm_names[] = {"lt", "gemmex"};
    int attn = env_choice("DIFFAUG_CUDA_ATTN", attn_names, 3, err);
    if (attn < 0) return NULL;
    int gemm = env_choice("DIFFAUG_CUDA_GEMM", gemm_names, 2, err);
    if (gemm < 0) return NULL;
    static const char *const conv_names[] = {"tc", "im2col"};
    int conv = env_choice("DIFFAUG_CUDA_CONV", conv_names, 2, err);
    if (conv < 0) return NULL;
    char msg[512] = "";
    dcu_ctx *ctx;
    if (dcu_ctx_create(&ctx, device, msg, sizeof msg) != 0) {
        da_err_set(err, DA_ERR_CUDA, "CUDA backend on device %d unavailable: %s", device, msg);
        return NULL;
    }
    cuda_backend *c = calloc(1, sizeof *c);
    if (!c) {
        dcu_ctx_destroy(ctx);
        da_err_set(err, DA_ERR_NOMEM, "cannot allocate the CUDA backend");
        return NULL;
    }
    c->base.ops = &cuda_ops;
    c->ctx = ctx;
    c->attn_wt = attn == 0 ? 1 : attn == 1 ? 2 : 0;
    c->gemm_lt = gemm == 0;
    c->conv_tc = conv == 0;
    return &c->base;
}
