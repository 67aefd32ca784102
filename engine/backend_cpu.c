/* backend_cpu.c - the CPU backend: the operation table filled with the OpenMP + SIMD kernels of
 * kernels/cpu, scratch from one buffer sized by the planning pass (backend.h). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gemm.h"
#include "rng.h"
#include "util.h"

static const char *gemm_status_text(dk_gemm_status s) {
    switch (s) {
    case DK_GEMM_EWORKSPACE: return "scratch smaller than one thread's packing buffers (planning pass missed this op)";
    case DK_GEMM_EARG: return "invalid size or leading dimension";
    default: return "ok";
    }
}

static da_status cpu_linear(da_backend *be, int M, int N, int K, const float *x, const da_w *w, const float *bias,
                            float *y) {
    dk_gemm_status s = linear(M, N, K, x, w->p, w->t, bias, y, be->ws, be->ws_bytes);
    if (s != DK_GEMM_OK)
        return da_backend_fail(be, DA_ERR_INVALID_ARG, "linear M=%d N=%d K=%d: %s", M, N, K, gemm_status_text(s));
    return DA_OK;
}

static da_status cpu_conv2d(da_backend *be, const dk_conv2d *s, const float *x, const da_w *w, const float *bias,
                            float *y) {
    dk_gemm_status st = conv2d(s, x, w->p, w->t, bias, y, be->ws, be->ws_bytes);
    if (st != DK_GEMM_OK)
        return da_backend_fail(be, DA_ERR_INVALID_ARG, "conv2d [%d,%d,%d,%d] -> %d (k %dx%d): %s", s->N, s->C, s->H,
                               s->W, s->OC, s->KH, s->KW, gemm_status_text(st));
    return DA_OK;
}

static size_t cpu_attention_ws(const dk_attn_params *p) { return dk_attention_workspace_size(p, 0); }

static da_status cpu_attention(da_backend *be, const dk_attn_params *p, const float *q, const float *k,
                               const float *v, float *o) {
    dk_attn_status s = dk_attention(p, q, k, v, o, be->ws, be->ws_bytes);
    if (s != DK_ATTN_OK)
        return da_backend_fail(be, DA_ERR_INVALID_ARG, "attention B=%d H=%d Nq=%d Nk=%d d=%d: %s", p->batch,
                               p->heads, p->nq, p->nk, p->head_dim,
                               s == DK_ATTN_BAD_SHAPE ? "bad shape" : "scratch too small");
    return DA_OK;
}

static void cpu_groupnorm(da_backend *be, float *y, const float *x, const dk_groupnorm_params *p) {
    dk_groupnorm(y, x, p);
}

static void cpu_layernorm(da_backend *be, float *y, const float *x, size_t M, size_t D, float eps, const float *g,
                          const float *b) {
    dk_layernorm(y, x, M, D, eps, g, b, DK_F32);
}

static void cpu_act(da_backend *be, da_act kind, float *y, const float *x, size_t n) {
    switch (kind) {
    case DA_ACT_SILU: dk_silu(y, x, n); break;
    case DA_ACT_GELU: dk_gelu(y, x, n); break;
    case DA_ACT_GELU_TANH: dk_gelu_tanh(y, x, n); break;
    case DA_ACT_QUICK_GELU: dk_quick_gelu(y, x, n); break;
    }
}

static void cpu_geglu(da_backend *be, float *y, const float *x, size_t M, size_t F) { dk_geglu(y, x, M, F); }
static void cpu_add(da_backend *be, float *y, const float *a, const float *b, size_t n) { dk_add(y, a, b, n); }
static void cpu_mul(da_backend *be, float *y, const float *a, const float *b, size_t n) { dk_mul(y, a, b, n); }
static void cpu_scale(da_backend *be, float *y, const float *x, float s, float t, size_t n) { dk_scale(y, x, s, t, n); }

static void cpu_add_channel_bias(da_backend *be, float *y, const float *x, const float *bias, size_t N, size_t C,
                                 size_t HW) {
    dk_add_channel_bias(y, x, bias, DK_F32, N, C, HW);
}

static void cpu_add_row(da_backend *be, float *y, const float *x, const float *row, size_t M, size_t N) {
    dk_add_row(y, x, row, DK_F32, M, N);
}

static void cpu_upsample2x(da_backend *be, float *y, const float *x, size_t N, size_t C, size_t H, size_t W) {
    dk_upsample2x_nearest(y, x, N, C, H, W);
}

static void cpu_concat(da_backend *be, float *y, const float *a, size_t Ca, const float *b, size_t Cb, size_t N,
                       size_t HW) {
    dk_concat_channels(y, a, Ca, b, Cb, N, HW);
}

static void cpu_temb(da_backend *be, float *y, const float *t, size_t B, const dk_temb_params *p) {
    dk_timestep_embedding(y, t, B, p);
}

/* Tiles keep both the reads and the writes within a few cache lines per row. */
static void cpu_transpose(da_backend *be, float *y, const float *x, size_t B, size_t M, size_t N) {
    enum { T = 32 };
    size_t tm = (M + T - 1) / T, tn = (N + T - 1) / T;
#pragma omp parallel for collapse(2) schedule(static)
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < tm * tn; t++) {
            size_t m0 = t / tn * T, n0 = t % tn * T;
            size_t m1 = m0 + T < M ? m0 + T : M, n1 = n0 + T < N ? n0 + T : N;
            const float *xb = x + b * M * N;
            float *yb = y + b * M * N;
            for (size_t m = m0; m < m1; m++)
                for (size_t n = n0; n < n1; n++) yb[n * M + m] = xb[m * N + n];
        }
}

static void cpu_gather_rows(da_backend *be, float *y, const da_w *table, const int32_t *ids, size_t n, size_t D) {
    for (size_t i = 0; i < n; i++)
        for (size_t d = 0; d < D; d++) y[i * D + d] = dk_load_w(table->p, table->t, (size_t)ids[i] * D + d);
}

static void cpu_copy(da_backend *be, float *dst, const float *src, size_t n) {
    if (dst != src) memmove(dst, src, n * sizeof *dst);
}

static da_status cpu_adopt(da_backend *be, da_w *w, size_t bytes) { return DA_OK; }

/* The sampling ops: the per-element formulas of sampling.h, the same the GPU kernels use. */
static void cpu_lincomb(da_backend *be, float *y, int k, const float *a, const float *const *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t j = 0; j < n; j++) y[j] = dk_lincomb_elem(k, a, x, j);
}

static void cpu_cfg_combine(da_backend *be, float *y, const float *u, const float *c, const float *img, float g,
                            float g_img, size_t n) {
    if (img) {
        for (size_t j = 0; j < n; j++) y[j] = dk_cfg_edit_elem(u[j], c[j], img[j], g, g_img);
    } else {
        for (size_t j = 0; j < n; j++) y[j] = dk_cfg_elem(u[j], c[j], g);
    }
}

static void cpu_sampler_step(da_backend *be, const dk_step *st, float *x, const float *m, const float *noise,
                             float *cur_x0, const float *prev_x0, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t j = 0; j < n; j++) dk_step_elem(st, x, m, noise, cur_x0, prev_x0, j);
}

static void cpu_model_input(da_backend *be, const dk_model_input *p, float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > (1u << 16))
    for (size_t j = 0; j < n; j++) y[j] = dk_model_input_elem(p, x[j]);
}

static void cpu_philox_normal(da_backend *be, float *y, uint64_t seed, uint64_t stream, uint64_t first, size_t n,
                              float mean, float std) {
    da_rng_normal(seed, stream, first, n, mean, std, y);
}

static const da_backend_ops cpu_ops = {
    .name = "cpu",
    .linear_ws = linear_workspace_size,
    .conv2d_ws = conv2d_workspace_size,
    .attention_ws = cpu_attention_ws,
    .linear = cpu_linear,
    .conv2d = cpu_conv2d,
    .attention = cpu_attention,
    .groupnorm = cpu_groupnorm,
    .layernorm = cpu_layernorm,
    .act = cpu_act,
    .geglu = cpu_geglu,
    .add = cpu_add,
    .mul = cpu_mul,
    .scale = cpu_scale,
    .add_channel_bias = cpu_add_channel_bias,
    .add_row = cpu_add_row,
    .upsample2x = cpu_upsample2x,
    .concat_channels = cpu_concat,
    .timestep_embedding = cpu_temb,
    .transpose = cpu_transpose,
    .gather_rows = cpu_gather_rows,
    .copy = cpu_copy,
    .upload = cpu_copy,
    .download = cpu_copy,
    .adopt_weight = cpu_adopt,
    .lincomb = cpu_lincomb,
    .cfg_combine = cpu_cfg_combine,
    .philox_normal = cpu_philox_normal,
    .sampler_step = cpu_sampler_step,
    .model_input = cpu_model_input,
    /* no graphs: every op runs as it is called */
};

da_backend *da_backend_cpu_new(void) {
    da_backend *be = calloc(1, sizeof *be);
    if (be) be->ops = &cpu_ops;
    return be;
}

void da_backend_free(da_backend *be) {
    if (!be) return;
    if (be->ops->destroy) {
        be->ops->destroy(be);
        return;
    }
    free(be->ws);
    free(be);
}

da_status da_backend_adopt(da_backend *be, da_w *w, size_t bytes) {
    return be->ops->adopt_weight ? be->ops->adopt_weight(be, w, bytes) : DA_OK;
}

void da_backend_plan(da_backend *be) {
    be->planning = true;
    be->ws_need = 0;
}

da_status da_backend_commit(da_backend *be, da_error *err) {
    be->planning = false;
    if (be->st) return da_backend_take_error(be, err);
    if (be->ws_need > be->ws_bytes) {
        void *p = be->ops->mem_alloc ? be->ops->mem_alloc(be, be->ws_need) : malloc(be->ws_need);
        if (!p) return da_err_set(err, DA_ERR_NOMEM, "%s backend scratch: cannot allocate %zu bytes", be->ops->name,
                                  be->ws_need);
        if (be->ops->mem_free) be->ops->mem_free(be, be->ws);
        else free(be->ws);
        be->ws = p;
        be->ws_bytes = be->ws_need;
    }
    return DA_OK;
}

da_status da_backend_take_error(da_backend *be, da_error *err) {
    da_status st = be->st;
    if (st && err) *err = be->err;
    be->st = DA_OK;
    da_err_clear(&be->err);
    return st;
}

da_status da_backend_fail(da_backend *be, da_status code, const char *fmt, ...) {
    if (be->st) return be->st;
    be->st = code;
    be->err.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err.msg, sizeof be->err.msg, fmt, ap);
    va_end(ap);
    return code;
}
