/* backend.h - the compute backend seen by the network code: a table of operations filled by each
 * backend (CPU today: kernels/cpu; CUDA: kernels/cuda), chosen at run time.
 *
 * Networks never call kernels directly. They call the da_op_* wrappers below on buffers from a
 * da_arena and weights from a binder (weights.h). Two passes per shape:
 *   1. planning (da_backend_plan + da_arena_plan): every op only records the scratch it would need
 *      and computes nothing, so placeholder buffers are never touched;
 *   2. da_backend_commit + da_arena_commit allocate once, then the same forward runs for real.
 * Errors are sticky: the first failing op stores its status and message in the backend and every
 * later op returns at once, so forwards are straight-line code that checks be->st at the end.
 *
 * Buffers are backend memory (host memory for the CPU backend, device memory for CUDA); host
 * data enters and leaves only through da_op_upload / da_op_download.
 */
#ifndef DA_BACKEND_H
#define DA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "attention.h"
#include "conv.h"
#include "diffaug.h"
#include "kcommon.h"
#include "norm.h"
#include "ops.h"
#include "sampling.h"

/* A weight as the network sees it: storage type, shape (PyTorch order) and data in that type.
 * 16-bit weights stay 16-bit; kernels convert while packing. */
typedef struct da_w {
    const void *p;
    dk_wtype t;
    int rank;
    int64_t shape[4];
} da_w;

typedef enum da_act { DA_ACT_SILU, DA_ACT_GELU, DA_ACT_GELU_TANH, DA_ACT_QUICK_GELU } da_act;

typedef struct da_backend da_backend;

typedef struct da_backend_ops {
    const char *name;
    /* scratch bytes the op needs for a shape (queried while planning) */
    size_t (*linear_ws)(int M, int N, int K);
    size_t (*conv2d_ws)(const dk_conv2d *s);
    size_t (*attention_ws)(const dk_attn_params *p);
    /* y[M,N] = x[M,K] W[N,K]^T + bias[N] */
    da_status (*linear)(da_backend *be, int M, int N, int K, const float *x, const da_w *w, const float *bias,
                        float *y);
    /* y = conv(x, w) + bias, NCHW */
    da_status (*conv2d)(da_backend *be, const dk_conv2d *s, const float *x, const da_w *w, const float *bias,
                        float *y);
    /* softmax(Q K^T scale) V, layouts and strides as dk_attn_params */
    da_status (*attention)(da_backend *be, const dk_attn_params *p, const float *q, const float *k, const float *v,
                           float *o);
    void (*groupnorm)(da_backend *be, float *y, const float *x, const dk_groupnorm_params *p);
    void (*layernorm)(da_backend *be, float *y, const float *x, size_t M, size_t D, float eps, const float *gamma,
                      const float *beta);
    void (*act)(da_backend *be, da_act kind, float *y, const float *x, size_t n);
    void (*geglu)(da_backend *be, float *y, const float *x, size_t M, size_t F);
    void (*add)(da_backend *be, float *y, const float *a, const float *b, size_t n);
    void (*mul)(da_backend *be, float *y, const float *a, const float *b, size_t n);
    void (*scale)(da_backend *be, float *y, const float *x, float s, float t, size_t n);
    void (*add_channel_bias)(da_backend *be, float *y, const float *x, const float *bias, size_t N, size_t C,
                             size_t HW);
    void (*add_row)(da_backend *be, float *y, const float *x, const float *row, size_t M, size_t N);
    void (*upsample2x)(da_backend *be, float *y, const float *x, size_t N, size_t C, size_t H, size_t W);
    void (*concat_channels)(da_backend *be, float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N,
                            size_t HW);
    void (*timestep_embedding)(da_backend *be, float *y, const float *t, size_t B, const dk_temb_params *p);
    /* y[b, n, m] = x[b, m, n] for b < B (NCHW <-> (B, HW, C)) */
    void (*transpose)(da_backend *be, float *y, const float *x, size_t B, size_t M, size_t N);
    /* y[i, :] = table[ids[i], :] (ids in host memory), table [rows, D] of any weight type */
    void (*gather_rows)(da_backend *be, float *y, const da_w *table, const int32_t *ids, size_t n, size_t D);
    void (*copy)(da_backend *be, float *dst, const float *src, size_t n);
    void (*upload)(da_backend *be, float *dst, const float *host, size_t n);
    void (*download)(da_backend *be, float *host, const float *src, size_t n);
    /* Optional (NULL = host memory, the CPU's behaviour). Backend memory for scratch and arena blocks;
     * adopt_weight makes a bound weight usable by the backend: the CUDA backend uploads the `bytes`
     * at w->p once (kept in its stored dtype, owned by the backend until da_backend_free) and points
     * w->p at the device copy; the CPU's is the identity. destroy frees everything the backend owns. */
    void *(*mem_alloc)(da_backend *be, size_t bytes);
    void (*mem_free)(da_backend *be, void *p);
    da_status (*adopt_weight)(da_backend *be, da_w *w, size_t bytes);
    void (*destroy)(da_backend *be);
    /* ---- optional ops for a device-resident sampling loop and CUDA graphs (NULL = not offered;
     * the da_op_* wrappers below turn a missing op into a DA_ERR_UNSUPPORTED error) ----------------
     * lincomb: y[j] = a[0] x[0][j] + ... + a[k-1] x[k-1][j], 1 <= k <= DK_LINCOMB_MAX, each product
     *   rounded to f32 and summed left to right (kernels/cpu/sampling.h); y may be any of the x.
     * cfg_combine: y = uncond + g (cond - uncond); with img (InstructPix2Pix) a = uncond + g (cond -
     *   img), y = a + g_img (img - uncond); torch's order, as pipeline.c.
     * philox_normal: y[i] = element (first + i) of da_rng_normal(seed, stream) as N(mean, std).
 * sampler_step: x = one sampler update (dk_step_elem over n elements) with the scalars that
 *   da_sampler_step_params computed on the host; m the model output, noise when st->noisy, the x0
 *   buffers when st->uses_x0 (DPM++: the caller swaps them after the step).
 * model_input: y = the step's model input from x (da_sampler_model_input_params; y may be x).
     * graph_begin / graph_end / graph_replay: record the ops issued between begin and end (nothing
     *   runs while recording) and replay them; see docs/CUDA.md for what may be recorded. */
    void (*lincomb)(da_backend *be, float *y, int k, const float *a, const float *const *x, size_t n);
    void (*cfg_combine)(da_backend *be, float *y, const float *uncond, const float *cond, const float *img, float g,
                        float g_img, size_t n);
    void (*philox_normal)(da_backend *be, float *y, uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                          float mean, float std);
    void (*sampler_step)(da_backend *be, const dk_step *st, float *x, const float *m, const float *noise,
                         float *cur_x0, const float *prev_x0, size_t n);
    void (*model_input)(da_backend *be, const dk_model_input *p, float *y, const float *x, size_t n);
    da_status (*graph_begin)(da_backend *be);
    da_status (*graph_end)(da_backend *be);
    da_status (*graph_replay)(da_backend *be);
} da_backend_ops;

struct da_backend {
    const da_backend_ops *ops;
    bool planning;
    size_t ws_need; /* largest scratch any op asked for while planning */
    void *ws;
    size_t ws_bytes;
    da_status st;   /* first error (sticky) */
    da_error err;
};

/* The CPU backend (always present). */
da_backend *da_backend_cpu_new(void);
/* The CUDA backend on GPU `device` (defined only in a CUDA build; use da_backend_new elsewhere).
 * NULL and a DA_ERR_CUDA error naming the failing call when there is no usable GPU. */
da_backend *da_backend_cuda_new(int device, da_error *err);
/* CUDA build only: the backend's dcu_ctx (kernels/cuda/dcuda.h), for benchmarks that record CUDA
 * events on its stream. */
struct dcu_ctx *da_backend_cuda_ctx(da_backend *be);
/* The guard backend (backend_guard.c): the CPU kernels behind a device backend's memory discipline.
 * Its memory (arena blocks, scratch, adopted weights) is mapped PROT_NONE except while one of its ops
 * runs, so host code touching an activation or weight outside da_op_* faults; ops refuse buffers that
 * are not its memory. Results are bit-identical to "cpu". For tests. */
da_backend *da_backend_guard_new(da_error *err);
/* By name, in every build: "cpu", "cuda" (GPU 0), "cuda:N", "guard" (tests), or "auto" (CUDA when
 * this build has it and a GPU answers, else the CPU: the only way to get the CPU without asking for
 * it). "cuda" where there is no CUDA build or no GPU is DA_ERR_CUDA, never a silent CPU run. */
da_backend *da_backend_new(const char *name, da_error *err);
/* Put the arena's block in the backend's memory (device memory for CUDA, host memory for the CPU).
 * Call before da_arena_plan / da_arena_commit; the backend must outlive the arena's block. An arena
 * whose block came from another allocator (another backend) has that block freed first. */
void da_arena_on_backend(da_arena *a, da_backend *be);
/* Make the backend's copy of a bound weight (identity on the CPU); see adopt_weight. */
da_status da_backend_adopt(da_backend *be, da_w *w, size_t bytes);
void da_backend_free(da_backend *be);
/* Whether weights placed by a binder on `wbe` (NULL: host views, never adopted) can be used by ops of
 * `be`: the same backend, or host weights on a backend whose memory is host memory (the CPU). Else a
 * DA_ERR_INVALID_ARG naming `what` and both backends. */
da_status da_backend_check_weights(const da_backend *wbe, const da_backend *be, const char *what, da_error *err);
/* Run a forward written as straight-line da_op_* code twice: a planning pass on a counting arena
 * (nothing computed, nothing allocated), then, after da_backend_commit and growing `a` only when the
 * plan needs more than its block (in backend memory: da_arena_on_backend), the real pass. wbe: the
 * backend the weights were bound on (checked against be; NULL: host weights). `what` prefixes errors. */
typedef void (*da_forward_fn)(const void *ctx, da_backend *be, da_arena *a);
da_status da_plan_and_run(da_backend *be, const da_backend *wbe, da_arena *a, da_forward_fn fwd, const void *ctx,
                          const char *what, da_error *err);
/* Start a planning pass (clears the recorded scratch need, keeps any allocated scratch). */
void da_backend_plan(da_backend *be);
/* Allocate scratch for what planning recorded and switch to computing. */
da_status da_backend_commit(da_backend *be, da_error *err);
/* Take the first error: returns be->st and copies its message into err, then clears it. */
da_status da_backend_take_error(da_backend *be, da_error *err);
/* Record an error from network code (shape checks), sticky like an op's. */
da_status da_backend_fail(da_backend *be, da_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- the wrappers networks call ---------------------------------------------------------------- */
static inline bool da_op_skip(da_backend *be) { return be->st != DA_OK || be->planning; }
static inline void da_op_need(da_backend *be, size_t bytes) {
    if (bytes > be->ws_need) be->ws_need = bytes;
}

static inline void da_op_linear(da_backend *be, int M, int N, int K, const float *x, const da_w *w,
                                const float *bias, float *y) {
    if (be->planning) da_op_need(be, be->ops->linear_ws(M, N, K));
    if (da_op_skip(be)) return;
    be->ops->linear(be, M, N, K, x, w, bias, y);
}
static inline void da_op_conv2d(da_backend *be, const dk_conv2d *s, const float *x, const da_w *w,
                                const float *bias, float *y) {
    if (be->planning) da_op_need(be, be->ops->conv2d_ws(s));
    if (da_op_skip(be)) return;
    be->ops->conv2d(be, s, x, w, bias, y);
}
static inline void da_op_attention(da_backend *be, const dk_attn_params *p, const float *q, const float *k,
                                   const float *v, float *o) {
    if (be->planning) da_op_need(be, be->ops->attention_ws(p));
    if (da_op_skip(be)) return;
    be->ops->attention(be, p, q, k, v, o);
}
#define DA_OP_FORWARD(name, params, args)                                                                        \
    static inline void da_op_##name params {                                                                     \
        if (da_op_skip(be)) return;                                                                              \
        be->ops->name args;                                                                                      \
    }
DA_OP_FORWARD(groupnorm, (da_backend * be, float *y, const float *x, const dk_groupnorm_params *p), (be, y, x, p))
DA_OP_FORWARD(layernorm,
              (da_backend * be, float *y, const float *x, size_t M, size_t D, float eps, const float *g,
               const float *b),
              (be, y, x, M, D, eps, g, b))
DA_OP_FORWARD(act, (da_backend * be, da_act kind, float *y, const float *x, size_t n), (be, kind, y, x, n))
DA_OP_FORWARD(geglu, (da_backend * be, float *y, const float *x, size_t M, size_t F), (be, y, x, M, F))
DA_OP_FORWARD(add, (da_backend * be, float *y, const float *a, const float *b, size_t n), (be, y, a, b, n))
DA_OP_FORWARD(mul, (da_backend * be, float *y, const float *a, const float *b, size_t n), (be, y, a, b, n))
DA_OP_FORWARD(scale, (da_backend * be, float *y, const float *x, float s, float t, size_t n), (be, y, x, s, t, n))
DA_OP_FORWARD(add_channel_bias,
              (da_backend * be, float *y, const float *x, const float *bias, size_t N, size_t C, size_t HW),
              (be, y, x, bias, N, C, HW))
DA_OP_FORWARD(add_row, (da_backend * be, float *y, const float *x, const float *row, size_t M, size_t N),
              (be, y, x, row, M, N))
DA_OP_FORWARD(upsample2x, (da_backend * be, float *y, const float *x, size_t N, size_t C, size_t H, size_t W),
              (be, y, x, N, C, H, W))
DA_OP_FORWARD(concat_channels,
              (da_backend * be, float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N, size_t HW),
              (be, y, a, Ca, b, Cb, N, HW))
DA_OP_FORWARD(timestep_embedding, (da_backend * be, float *y, const float *t, size_t B, const dk_temb_params *p),
              (be, y, t, B, p))
DA_OP_FORWARD(transpose, (da_backend * be, float *y, const float *x, size_t B, size_t M, size_t N),
              (be, y, x, B, M, N))
DA_OP_FORWARD(gather_rows, (da_backend * be, float *y, const da_w *table, const int32_t *ids, size_t n, size_t D),
              (be, y, table, ids, n, D))
DA_OP_FORWARD(copy, (da_backend * be, float *dst, const float *src, size_t n), (be, dst, src, n))
DA_OP_FORWARD(upload, (da_backend * be, float *dst, const float *host, size_t n), (be, dst, host, n))
DA_OP_FORWARD(download, (da_backend * be, float *host, const float *src, size_t n), (be, host, src, n))
#undef DA_OP_FORWARD

/* ---- wrappers of the optional ops (appended block: sampling ops and graphs) ---------------------- */
static inline bool da_op_missing(da_backend *be, bool present, const char *name) {
    if (present) return false;
    da_backend_fail(be, DA_ERR_UNSUPPORTED, "the %s backend has no %s op", be->ops->name, name);
    return true;
}
static inline void da_op_lincomb(da_backend *be, float *y, int k, const float *a, const float *const *x, size_t n) {
    if (da_op_skip(be) || da_op_missing(be, be->ops->lincomb != NULL, "lincomb")) return;
    if (k < 1 || k > DK_LINCOMB_MAX) {
        da_backend_fail(be, DA_ERR_INVALID_ARG, "lincomb: %d terms (1..%d)", k, DK_LINCOMB_MAX);
        return;
    }
    be->ops->lincomb(be, y, k, a, x, n);
}
static inline void da_op_cfg_combine(da_backend *be, float *y, const float *uncond, const float *cond,
                                     const float *img, float g, float g_img, size_t n) {
    if (da_op_skip(be) || da_op_missing(be, be->ops->cfg_combine != NULL, "cfg_combine")) return;
    be->ops->cfg_combine(be, y, uncond, cond, img, g, g_img, n);
}
static inline void da_op_philox_normal(da_backend *be, float *y, uint64_t seed, uint64_t stream, uint64_t first,
                                       size_t n, float mean, float std) {
    if (da_op_skip(be) || da_op_missing(be, be->ops->philox_normal != NULL, "philox_normal")) return;
    be->ops->philox_normal(be, y, seed, stream, first, n, mean, std);
}
static inline void da_op_sampler_step(da_backend *be, const dk_step *st, float *x, const float *m, const float *noise,
                                      float *cur_x0, const float *prev_x0, size_t n) {
    if (da_op_skip(be) || da_op_missing(be, be->ops->sampler_step != NULL, "sampler_step")) return;
    if ((st->noisy && !noise) || (st->uses_x0 && !cur_x0) || (st->kind == DK_STEP_DPM_SECOND && !prev_x0)) {
        da_backend_fail(be, DA_ERR_INVALID_ARG, "sampler_step: step kind %d needs %s", st->kind,
                        st->noisy && !noise ? "noise" : "the x0 buffers");
        return;
    }
    be->ops->sampler_step(be, st, x, m, noise, cur_x0, prev_x0, n);
}
static inline void da_op_model_input(da_backend *be, const dk_model_input *p, float *y, const float *x, size_t n) {
    if (da_op_skip(be) || da_op_missing(be, be->ops->model_input != NULL, "model_input")) return;
    be->ops->model_input(be, p, y, x, n);
}
/* Graphs return the status (also sticky). A backend without graphs (the CPU) answers
 * DA_ERR_UNSUPPORTED: callers that only want speed check da_backend_has_graphs first. */
static inline bool da_backend_has_graphs(const da_backend *be) { return be->ops->graph_begin != NULL; }
static inline da_status da_op_graph_begin(da_backend *be) {
    if (da_op_skip(be)) return be->st;
    if (da_op_missing(be, be->ops->graph_begin != NULL, "graph_begin")) return be->st;
    return be->ops->graph_begin(be);
}
static inline da_status da_op_graph_end(da_backend *be) {
    if (be->planning) return be->st;
    if (da_op_missing(be, be->ops->graph_end != NULL, "graph_end")) return be->st;
    return be->ops->graph_end(be); /* runs even after an error so the recording is always closed */
}
static inline da_status da_op_graph_replay(da_backend *be) {
    if (da_op_skip(be)) return be->st;
    if (da_op_missing(be, be->ops->graph_replay != NULL, "graph_replay")) return be->st;
    return be->ops->graph_replay(be);
}

#endif
