/* unet.c - the SD 1.x / InstructPix2Pix / SDXL UNet forward (see unet.h).
 *
 * Mirrors diffusers UNet2DConditionModel (0.42: get_down_block/get_up_block with CrossAttnDownBlock2D,
 * DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D, CrossAttnUpBlock2D; ResnetBlock2D; Transformer2DModel
 * with conv or linear proj_in/proj_out and 1..16 BasicTransformerBlocks; Attention with
 * AttnProcessor2_0; GEGLU FeedForward; addition_embed_type "text_time": add_time_proj + add_embedding),
 * i.e. ldm openaimodel.UNetModel + attention.SpatialTransformer of SD 1.x and sgm's SDXL UNetModel.
 *
 * Every forward runs twice per shape (backend.h): planning, where the arena and backend only count
 * bytes, then for real on exactly that memory. Memory plan (arena is a stack with mark/reset):
 *   [timesteps, context, SiLU(temb)] [every skip connection] [hidden A, hidden B] [per-block scratch]
 * The down path writes each block's output straight into its skip buffer (diffusers' output_states),
 * so skips cost no copies; they live until the up block that concatenates them. Mid and up blocks
 * ping-pong between two hidden buffers sized for the largest up-path activation. Everything a block
 * needs beyond that is taken after a mark and released at its end, so the peak is the skips plus
 * one block's scratch (the feed-forward of the first level dominates: tokens x 12C floats).
 */
#include "unet.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "weights.h"

#define MAX_LAYERS 4  /* layers_per_block (SD 1.x: 2; up levels have one more) */
#define MAX_TBLOCKS 16 /* transformer_layers_per_block (SD 1.x: 1, SDXL: up to 10) */
#define MAX_SKIPS (1 + DA_MAX_LEVELS * (MAX_LAYERS + 1))

/* diffusers hard-codes these: Transformer2DModel's GroupNorm eps=1e-6, BasicTransformerBlock's
 * LayerNorm eps=1e-5 (norm_eps default); the resnet and conv_norm_out GroupNorms use cfg.norm_eps. */
#define TRANSFORMER_GN_EPS 1e-6f
#define TRANSFORMER_LN_EPS 1e-5f

typedef struct ulin { /* a Linear or Conv2d: weight in its stored dtype, bias as f32 (NULL: none) */
    da_w w;
    const float *b;
} ulin;

typedef struct unorm {
    const float *g, *b;
} unorm;

typedef struct uresnet {
    int cin, cout;
    unorm norm1, norm2;
    ulin conv1, temb, conv2, shortcut; /* shortcut.w.p NULL when cin == cout */
} uresnet;

typedef struct utblock { /* BasicTransformerBlock */
    unorm norm1, norm2, norm3;
    ulin q1, k1, v1, o1; /* self-attention */
    ulin q2, k2, v2, o2; /* cross-attention over the text states */
    ulin ff1, ff2;       /* GEGLU projection to 2 x 4C, then back to C */
} utblock;

typedef struct utrans { /* Transformer2DModel */
    int ch, heads, depth;
    bool linear; /* proj_in/proj_out are Linear on tokens (use_linear_projection), else 1x1 convs */
    unorm norm;
    ulin proj_in, proj_out;
    utblock tb[MAX_TBLOCKS];
} utrans;

typedef struct ulevel {
    int ch;
    bool attn, resample; /* downsampler (down) / upsampler (up) after the layers */
    uresnet res[MAX_LAYERS + 1];
    utrans tr[MAX_LAYERS + 1];
    ulin sample; /* downsamplers.0.conv / upsamplers.0.conv */
} ulevel;

struct da_unet {
    da_unet_config cfg;
    da_binder b;
    ulin conv_in, time1, time2, conv_out;
    ulin add1, add2; /* add_embedding.linear_1/2 (text_time conditioning); w.p NULL without */
    unorm norm_out;
    ulevel down[DA_MAX_LEVELS], up[DA_MAX_LEVELS];
    uresnet mid_res[2];
    utrans mid_tr;
};

struct da_unet_ctx {
    const da_unet *u;
    da_backend *be;
    da_arena arena;
    da_unet_shape planned;
    bool ready;
};

/* ---- binding ------------------------------------------------------------------------------------ */

static ulin bind_lin(da_binder *b, const char *p, bool bias) {
    ulin l = {0};
    l.w = da_bind(b, "%s.weight", p);
    if (bias) l.b = da_bind_f32(b, "%s.bias", p);
    return l;
}

static unorm bind_norm(da_binder *b, const char *p) {
    unorm n = {da_bind_f32(b, "%s.weight", p), da_bind_f32(b, "%s.bias", p)};
    return n;
}

static void bind_resnet(da_binder *b, uresnet *r, const char *p, int cin, int cout) {
    char s[256];
    r->cin = cin;
    r->cout = cout;
    snprintf(s, sizeof s, "%s.norm1", p), r->norm1 = bind_norm(b, s);
    snprintf(s, sizeof s, "%s.conv1", p), r->conv1 = bind_lin(b, s, true);
    snprintf(s, sizeof s, "%s.time_emb_proj", p), r->temb = bind_lin(b, s, true);
    snprintf(s, sizeof s, "%s.norm2", p), r->norm2 = bind_norm(b, s);
    snprintf(s, sizeof s, "%s.conv2", p), r->conv2 = bind_lin(b, s, true);
    if (cin != cout) snprintf(s, sizeof s, "%s.conv_shortcut", p), r->shortcut = bind_lin(b, s, true);
}

static void bind_transformer(da_binder *b, utrans *t, const char *p, int ch, int heads, int layers, bool linear) {
    char s[300];
    t->linear = linear;
    t->ch = ch;
    t->heads = heads;
    t->depth = layers;
    snprintf(s, sizeof s, "%s.norm", p), t->norm = bind_norm(b, s);
    snprintf(s, sizeof s, "%s.proj_in", p), t->proj_in = bind_lin(b, s, true);
    snprintf(s, sizeof s, "%s.proj_out", p), t->proj_out = bind_lin(b, s, true);
    for (int i = 0; i < layers; i++) {
        utblock *k = &t->tb[i];
        char q[256];
        snprintf(q, sizeof q, "%s.transformer_blocks.%d", p, i);
        snprintf(s, sizeof s, "%s.norm1", q), k->norm1 = bind_norm(b, s);
        snprintf(s, sizeof s, "%s.norm2", q), k->norm2 = bind_norm(b, s);
        snprintf(s, sizeof s, "%s.norm3", q), k->norm3 = bind_norm(b, s);
        snprintf(s, sizeof s, "%s.attn1.to_q", q), k->q1 = bind_lin(b, s, false);
        snprintf(s, sizeof s, "%s.attn1.to_k", q), k->k1 = bind_lin(b, s, false);
        snprintf(s, sizeof s, "%s.attn1.to_v", q), k->v1 = bind_lin(b, s, false);
        snprintf(s, sizeof s, "%s.attn1.to_out.0", q), k->o1 = bind_lin(b, s, true);
        snprintf(s, sizeof s, "%s.attn2.to_q", q), k->q2 = bind_lin(b, s, false);
        snprintf(s, sizeof s, "%s.attn2.to_k", q), k->k2 = bind_lin(b, s, false);
        snprintf(s, sizeof s, "%s.attn2.to_v", q), k->v2 = bind_lin(b, s, false);
        snprintf(s, sizeof s, "%s.attn2.to_out.0", q), k->o2 = bind_lin(b, s, true);
        snprintf(s, sizeof s, "%s.ff.net.0.proj", q), k->ff1 = bind_lin(b, s, true);
        snprintf(s, sizeof s, "%s.ff.net.2", q), k->ff2 = bind_lin(b, s, true);
    }
}

static da_status check_config(const da_unet_config *c, da_error *err) {
    if (c->n_levels < 1 || c->n_levels > DA_MAX_LEVELS || c->layers_per_block < 1 || c->layers_per_block > MAX_LAYERS)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "unet: %d levels, %d layers per block (supported: <= %d, <= %d)",
                          c->n_levels, c->layers_per_block, DA_MAX_LEVELS, MAX_LAYERS);
    if (c->norm_num_groups < 1 || c->in_channels < 1 || c->out_channels < 1 || c->cross_attention_dim < 1 ||
        c->time_embed_dim < 1)
        return da_err_set(err, DA_ERR_INVALID_ARG, "unet: invalid configuration");
    for (int i = 0; i < c->n_levels; i++) {
        int ch = c->block_out_channels[i], h = c->heads[i], d = c->transformer_depth[i];
        if (ch < 1 || ch % c->norm_num_groups || (c->level_has_attn[i] && (h < 1 || ch % h)))
            return da_err_set(err, DA_ERR_INVALID_ARG, "unet: level %d width %d not divisible by %d groups / %d heads",
                              i, ch, c->norm_num_groups, h);
        if ((c->level_has_attn[i] || i == c->n_levels - 1) && (d < 1 || d > MAX_TBLOCKS))
            return da_err_set(err, DA_ERR_UNSUPPORTED, "unet: level %d has %d transformer layers (supported: 1..%d)", i,
                              d, MAX_TBLOCKS);
    }
    if (c->addition_embed_dim > 0 &&
        (c->addition_time_embed_dim < 1 || c->addition_embed_dim <= 6 * c->addition_time_embed_dim))
        return da_err_set(err, DA_ERR_INVALID_ARG,
                          "unet: addition embedding width %d must exceed 6 x addition_time_embed_dim %d",
                          c->addition_embed_dim, c->addition_time_embed_dim);
    return DA_OK;
}

da_status da_unet_load(const da_model_file *m, da_unet **out, da_error *err) {
    *out = NULL;
    if (!da_model_has(m, DA_COMP_UNET))
        return da_err_set(err, DA_ERR_NOT_FOUND, "%s: the model has no UNet", m->path);
    da_status cst = check_config(&m->cfg.unet, err);
    if (cst) return cst;
    da_unet *u = calloc(1, sizeof *u);
    if (!u) return da_err_set(err, DA_ERR_NOMEM, "unet: out of memory");
    u->cfg = m->cfg.unet;
    const da_unet_config *c = &u->cfg;
    da_binder *b = &u->b;
    da_binder_init(b, m, DA_COMP_UNET);
    const int n = c->n_levels, lpb = c->layers_per_block;
    const int *hd = c->heads, *dp = c->transformer_depth;
    const int *boc = c->block_out_channels;
    char p[128];

    u->conv_in = bind_lin(b, "conv_in", true);
    u->time1 = bind_lin(b, "time_embedding.linear_1", true);
    u->time2 = bind_lin(b, "time_embedding.linear_2", true);
    if (c->addition_embed_dim > 0) {
        u->add1 = bind_lin(b, "add_embedding.linear_1", true);
        u->add2 = bind_lin(b, "add_embedding.linear_2", true);
    }
    int ch_in = boc[0];
    for (int i = 0; i < n; i++) {
        ulevel *L = &u->down[i];
        L->ch = boc[i];
        L->attn = c->level_has_attn[i];
        L->resample = i < n - 1;
        for (int j = 0; j < lpb; j++) {
            snprintf(p, sizeof p, "down_blocks.%d.resnets.%d", i, j);
            bind_resnet(b, &L->res[j], p, j == 0 ? ch_in : L->ch, L->ch);
            if (L->attn) {
                snprintf(p, sizeof p, "down_blocks.%d.attentions.%d", i, j);
                bind_transformer(b, &L->tr[j], p, L->ch, hd[i], dp[i], c->linear_proj);
            }
        }
        if (L->resample) {
            snprintf(p, sizeof p, "down_blocks.%d.downsamplers.0.conv", i);
            L->sample = bind_lin(b, p, true);
        }
        ch_in = L->ch;
    }
    int mid = boc[n - 1];
    bind_resnet(b, &u->mid_res[0], "mid_block.resnets.0", mid, mid);
    bind_transformer(b, &u->mid_tr, "mid_block.attentions.0", mid, hd[n - 1], dp[n - 1], c->linear_proj);
    bind_resnet(b, &u->mid_res[1], "mid_block.resnets.1", mid, mid);
    /* up level i mirrors down level n-1-i; resnet j concatenates the skip of down level n-1-i
     * (the level's own skips), except the last which takes the previous level's last skip */
    int prev = mid;
    for (int i = 0; i < n; i++) {
        ulevel *L = &u->up[i];
        int lv = n - 1 - i;
        L->ch = boc[lv];
        L->attn = c->level_has_attn[lv];
        L->resample = i < n - 1;
        int skip_last = boc[lv > 0 ? lv - 1 : 0];
        for (int j = 0; j <= lpb; j++) {
            snprintf(p, sizeof p, "up_blocks.%d.resnets.%d", i, j);
            bind_resnet(b, &L->res[j], p, (j == 0 ? prev : L->ch) + (j == lpb ? skip_last : L->ch), L->ch);
            if (L->attn) {
                snprintf(p, sizeof p, "up_blocks.%d.attentions.%d", i, j);
                bind_transformer(b, &L->tr[j], p, L->ch, hd[lv], dp[lv], c->linear_proj);
            }
        }
        if (L->resample) {
            snprintf(p, sizeof p, "up_blocks.%d.upsamplers.0.conv", i);
            L->sample = bind_lin(b, p, true);
        }
        prev = L->ch;
    }
    u->norm_out = bind_norm(b, "conv_norm_out");
    u->conv_out = bind_lin(b, "conv_out", true);
    if (b->st) {
        da_status st = b->st;
        if (err) *err = b->err;
        da_unet_free(u);
        return st;
    }
    *out = u;
    return DA_OK;
}

void da_unet_free(da_unet *u) {
    if (!u) return;
    da_binder_release(&u->b);
    free(u);
}

const da_unet_config *da_unet_config_of(const da_unet *u) { return &u->cfg; }

void da_unet_weight_bytes(const da_unet *u, size_t *mapped, size_t *copied) {
    if (mapped) *mapped = u->b.bytes_mapped;
    if (copied) *copied = u->b.bytes_copied;
}

/* ---- blocks ------------------------------------------------------------------------------------- */

typedef struct fwd {
    da_backend *be;
    da_arena *a;
    const da_unet_config *c;
    int B, L;             /* batch, context tokens */
    const float *ctx;     /* [B, L, D] */
    const float *stemb;   /* [B, time_embed_dim] = SiLU(temb): every resnet's time_emb_proj input */
} fwd;

static float *take(fwd *f, size_t n) {
    float *p = da_arena_floats(f->a, n);
    if (!p && !f->be->st) da_backend_fail(f->be, DA_ERR_NOMEM, "unet: activation arena exhausted (%zu floats)", n);
    return p;
}

static void groupnorm(fwd *f, float *y, const float *x, int C, size_t HW, const unorm *n, float eps, bool silu) {
    dk_groupnorm_params p = {.N = (size_t)f->B, .C = (size_t)C, .HW = HW, .groups = f->c->norm_num_groups,
                             .eps = eps, .gamma = n->g, .beta = n->b, .wtype = DK_F32, .silu = silu};
    da_op_groupnorm(f->be, y, x, &p);
}

static void conv(fwd *f, const ulin *l, const float *x, float *y, int C, int H, int W, int OC, int k, int stride) {
    dk_conv2d s = dk_conv2d_make(f->B, C, H, W, OC, k, stride, k / 2);
    da_op_conv2d(f->be, &s, x, &l->w, l->b, y);
}

/* ResnetBlock2D (temb_channels > 0, "default" time norm, output_scale_factor 1):
 * x [B, cin, H, W] -> y [B, cout, H, W]; y must not alias x. */
static void resnet(fwd *f, const uresnet *r, const float *x, float *y, int H, int W) {
    da_backend *be = f->be;
    size_t HW = (size_t)H * W, mark = da_arena_mark(f->a);
    const size_t B = (size_t)f->B;
    float *t1 = take(f, B * r->cin * HW), *t2 = take(f, B * r->cout * HW), *tp = take(f, B * r->cout);
    groupnorm(f, t1, x, r->cin, HW, &r->norm1, f->c->norm_eps, true);
    conv(f, &r->conv1, t1, t2, r->cin, H, W, r->cout, 3, 1);
    /* time_emb_proj(SiLU(temb)) [B, cout], added per sample and channel */
    da_op_linear(be, f->B, r->cout, f->c->time_embed_dim, f->stemb, &r->temb.w, r->temb.b, tp);
    for (size_t b = 0; b < B; b++)
        da_op_add_channel_bias(be, t2 + b * r->cout * HW, t2 + b * r->cout * HW, tp + b * r->cout, 1, r->cout, HW);
    groupnorm(f, t2, t2, r->cout, HW, &r->norm2, f->c->norm_eps, true);
    conv(f, &r->conv2, t2, y, r->cout, H, W, r->cout, 3, 1);
    if (r->cin != r->cout) {
        conv(f, &r->shortcut, x, t2, r->cin, H, W, r->cout, 1, 1); /* t2 is free again */
        da_op_add(be, y, y, t2, B * r->cout * HW);
    } else
        da_op_add(be, y, y, x, B * r->cout * HW);
    da_arena_reset(f->a, mark);
}

/* Attention (H heads, scale d^-0.5) of normed tokens n [B, N, C] over keys from kv [B, Nk, Ckv]
 * (kv == n: self-attention); adds to_out(...) to the residual stream hs [B, N, C]. */
static void attention(fwd *f, int H, const ulin *q, const ulin *k, const ulin *v, const ulin *o, const float *n, int N,
                      const float *kv, int Nk, int Ckv, int C, float *hs) {
    da_backend *be = f->be;
    size_t mark = da_arena_mark(f->a);
    const int B = f->B, M = B * N, Mk = B * Nk;
    float *qb = take(f, (size_t)M * C), *kb = take(f, (size_t)Mk * C), *vb = take(f, (size_t)Mk * C);
    float *ob = take(f, (size_t)M * C);
    da_op_linear(be, M, C, C, n, &q->w, NULL, qb);
    da_op_linear(be, Mk, C, Ckv, kv, &k->w, NULL, kb);
    da_op_linear(be, Mk, C, Ckv, kv, &v->w, NULL, vb);
    dk_attn_params p = dk_attn_params_packed(B, H, N, Nk, C / H, 0);
    da_op_attention(be, &p, qb, kb, vb, ob);
    da_op_linear(be, M, C, C, ob, &o->w, o->b, qb);
    da_op_add(be, hs, hs, qb, (size_t)M * C);
    da_arena_reset(f->a, mark);
}

/* Transformer2DModel, in place: x [B, C, H, W] -> x + proj_out(blocks(proj_in(GN(x)))). */
static void transformer(fwd *f, const utrans *t, float *x, int H, int W) {
    da_backend *be = f->be;
    const int C = t->ch, N = H * W, M = f->B * N;
    const size_t HW = (size_t)N, sz = (size_t)f->B * C * HW, mark = da_arena_mark(f->a);
    float *t0 = take(f, sz), *hs = take(f, sz), *nb = take(f, sz);
    groupnorm(f, t0, x, C, HW, &t->norm, TRANSFORMER_GN_EPS, false);
    if (t->linear) { /* tokens first, then Linear proj_in */
        da_op_transpose(be, nb, t0, (size_t)f->B, (size_t)C, HW);
        da_op_linear(be, M, C, C, nb, &t->proj_in.w, t->proj_in.b, hs);
    } else {
        conv(f, &t->proj_in, t0, nb, C, H, W, C, 1, 1);
        da_op_transpose(be, hs, nb, (size_t)f->B, (size_t)C, HW); /* [B, C, HW] -> tokens [B, HW, C] */
    }
    for (int i = 0; i < t->depth; i++) {
        const utblock *k = &t->tb[i];
        da_op_layernorm(be, nb, hs, (size_t)M, (size_t)C, TRANSFORMER_LN_EPS, k->norm1.g, k->norm1.b);
        attention(f, t->heads, &k->q1, &k->k1, &k->v1, &k->o1, nb, N, nb, N, C, C, hs);
        da_op_layernorm(be, nb, hs, (size_t)M, (size_t)C, TRANSFORMER_LN_EPS, k->norm2.g, k->norm2.b);
        attention(f, t->heads, &k->q2, &k->k2, &k->v2, &k->o2, nb, N, f->ctx, f->L, f->c->cross_attention_dim, C, hs);
        da_op_layernorm(be, nb, hs, (size_t)M, (size_t)C, TRANSFORMER_LN_EPS, k->norm3.g, k->norm3.b);
        /* FeedForward: GEGLU(C -> 2 x 4C) then Linear(4C -> C) */
        size_t m2 = da_arena_mark(f->a);
        float *ff = take(f, (size_t)M * 8 * C), *g = take(f, (size_t)M * 4 * C);
        da_op_linear(be, M, 8 * C, C, nb, &k->ff1.w, k->ff1.b, ff);
        da_op_geglu(be, g, ff, (size_t)M, (size_t)4 * C);
        da_op_linear(be, M, C, 4 * C, g, &k->ff2.w, k->ff2.b, nb);
        da_op_add(be, hs, hs, nb, (size_t)M * C);
        da_arena_reset(f->a, m2);
    }
    if (t->linear) {
        da_op_linear(be, M, C, C, hs, &t->proj_out.w, t->proj_out.b, nb);
        da_op_transpose(be, t0, nb, (size_t)f->B, HW, (size_t)C); /* back to [B, C, HW] */
    } else {
        da_op_transpose(be, nb, hs, (size_t)f->B, HW, (size_t)C); /* back to [B, C, HW] */
        conv(f, &t->proj_out, nb, t0, C, H, W, C, 1, 1);
    }
    da_op_add(be, x, x, t0, sz);
    da_arena_reset(f->a, mark);
}

/* ---- the network ------------------------------------------------------------------------------ */

/* sample [B, Cin, h, w], timesteps [B], context [B, L, D], and with text_time conditioning
 * text_embeds [B, Dt] + time_ids [B, 6] (host) -> out [B, Cout, h, w] (host). The same code plans
 * (backend and arena counting) and runs. */
static void unet_graph(const da_unet *u, da_backend *be, da_arena *a, const da_unet_shape *s, const float *h_sample,
                       const float *h_t, const float *h_ctx, const float *h_text_embeds, const float *h_time_ids,
                       float *h_out) {
    const da_unet_config *c = &u->cfg;
    const int B = s->batch, n = c->n_levels, lpb = c->layers_per_block, T = c->time_embed_dim;
    const int *boc = c->block_out_channels;
    fwd f = {be, a, c, B, s->context_len, NULL, NULL};
    int Hs[DA_MAX_LEVELS], Ws[DA_MAX_LEVELS];
    for (int i = 0; i < n; i++) Hs[i] = s->height >> i, Ws[i] = s->width >> i;
#define HW_(i) ((size_t)Hs[i] * Ws[i])

    /* long-lived: timesteps, text states, SiLU(temb) */
    float *t = take(&f, (size_t)B);
    float *ctx = take(&f, (size_t)B * s->context_len * s->context_dim);
    float *stemb = take(&f, (size_t)B * T);
    da_op_upload(be, t, h_t, (size_t)B);
    da_op_upload(be, ctx, h_ctx, (size_t)B * s->context_len * s->context_dim);
    f.ctx = ctx;
    f.stemb = stemb;
    {
        size_t m = da_arena_mark(a);
        float *sin = take(&f, (size_t)B * boc[0]), *h1 = take(&f, (size_t)B * T);
        dk_temb_params tp = dk_temb_params_sd(boc[0]); /* time_proj: flip_sin_to_cos, shift 0 */
        da_op_timestep_embedding(be, sin, t, (size_t)B, &tp);
        da_op_linear(be, B, T, boc[0], sin, &u->time1.w, u->time1.b, h1);
        da_op_act(be, DA_ACT_SILU, h1, h1, (size_t)B * T);
        da_op_linear(be, B, T, T, h1, &u->time2.w, u->time2.b, stemb);
        if (c->addition_embed_dim > 0) {
            /* text_time: emb += add_embedding(cat(text_embeds, add_time_proj(time_ids).reshape(B, 6 d))) */
            const int d = c->addition_time_embed_dim, Dt = c->addition_embed_dim - 6 * d, Da = c->addition_embed_dim;
            float *te = take(&f, (size_t)B * Dt), *ids = take(&f, (size_t)B * 6);
            float *tid = take(&f, (size_t)B * 6 * d), *cat = take(&f, (size_t)B * Da);
            da_op_upload(be, te, h_text_embeds, (size_t)B * Dt);
            da_op_upload(be, ids, h_time_ids, (size_t)B * 6);
            dk_temb_params ap = dk_temb_params_sd(d); /* add_time_proj: the same flip_sin_to_cos, shift 0 */
            da_op_timestep_embedding(be, tid, ids, (size_t)B * 6, &ap);
            da_op_concat_channels(be, cat, te, (size_t)Dt, tid, (size_t)6 * d, (size_t)B, 1);
            da_op_linear(be, B, T, Da, cat, &u->add1.w, u->add1.b, h1);
            da_op_act(be, DA_ACT_SILU, h1, h1, (size_t)B * T);
            float *aug = take(&f, (size_t)B * T);
            da_op_linear(be, B, T, T, h1, &u->add2.w, u->add2.b, aug);
            da_op_add(be, stemb, stemb, aug, (size_t)B * T);
        }
        da_op_act(be, DA_ACT_SILU, stemb, stemb, (size_t)B * T);
        da_arena_reset(a, m);
    }

    /* skips: conv_in, then per level each layer's output and the downsampler's */
    float *skip[MAX_SKIPS];
    int skip_ch[MAX_SKIPS], skip_lv[MAX_SKIPS], ns = 0;
    skip_ch[ns] = boc[0], skip_lv[ns++] = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < lpb; j++) skip_ch[ns] = boc[i], skip_lv[ns++] = i;
        if (i < n - 1) skip_ch[ns] = boc[i], skip_lv[ns++] = i + 1;
    }
    for (int k = 0; k < ns; k++) skip[k] = take(&f, (size_t)B * skip_ch[k] * HW_(skip_lv[k]));
    /* hidden ping-pong: the largest of the mid output, up resnet outputs and upsampler outputs */
    size_t hmax = (size_t)boc[n - 1] * HW_(n - 1);
    for (int i = 0; i < n; i++) {
        size_t v = (size_t)boc[i] * HW_(i);
        if (i > 0 && (size_t)boc[i] * HW_(i - 1) > v) v = (size_t)boc[i] * HW_(i - 1);
        if (v > hmax) hmax = v;
    }
    float *hid[2] = {take(&f, (size_t)B * hmax), take(&f, (size_t)B * hmax)};

    /* conv_in */
    {
        size_t m = da_arena_mark(a);
        float *x = take(&f, (size_t)B * s->in_channels * HW_(0));
        da_op_upload(be, x, h_sample, (size_t)B * s->in_channels * HW_(0));
        conv(&f, &u->conv_in, x, skip[0], s->in_channels, Hs[0], Ws[0], boc[0], 3, 1);
        da_arena_reset(a, m);
    }
    /* down */
    int k = 1;
    for (int i = 0; i < n; i++) {
        const ulevel *L = &u->down[i];
        for (int j = 0; j < lpb; j++, k++) {
            resnet(&f, &L->res[j], skip[k - 1], skip[k], Hs[i], Ws[i]);
            if (L->attn) transformer(&f, &L->tr[j], skip[k], Hs[i], Ws[i]);
        }
        if (L->resample) {
            conv(&f, &L->sample, skip[k - 1], skip[k], L->ch, Hs[i], Ws[i], L->ch, 3, 2);
            k++;
        }
    }
    /* mid */
    resnet(&f, &u->mid_res[0], skip[ns - 1], hid[0], Hs[n - 1], Ws[n - 1]);
    transformer(&f, &u->mid_tr, hid[0], Hs[n - 1], Ws[n - 1]);
    resnet(&f, &u->mid_res[1], hid[0], hid[1], Hs[n - 1], Ws[n - 1]);
    int cur = 1, cur_ch = boc[n - 1];
    /* up: each resnet takes cat([hidden, skip], dim=1) with skips popped last-first */
    k = ns;
    for (int i = 0; i < n; i++) {
        const ulevel *L = &u->up[i];
        int lv = n - 1 - i;
        for (int j = 0; j <= lpb; j++) {
            k--;
            size_t m = da_arena_mark(a);
            float *cat = take(&f, (size_t)B * (cur_ch + skip_ch[k]) * HW_(lv));
            da_op_concat_channels(be, cat, hid[cur], (size_t)cur_ch, skip[k], (size_t)skip_ch[k], (size_t)B, HW_(lv));
            resnet(&f, &L->res[j], cat, hid[!cur], Hs[lv], Ws[lv]);
            da_arena_reset(a, m);
            cur = !cur, cur_ch = L->ch;
            if (L->attn) transformer(&f, &L->tr[j], hid[cur], Hs[lv], Ws[lv]);
        }
        if (L->resample) { /* Upsample2D: nearest 2x, conv3x3 */
            size_t m = da_arena_mark(a);
            float *upb = take(&f, (size_t)B * L->ch * HW_(lv - 1));
            da_op_upsample2x(be, upb, hid[cur], (size_t)B, (size_t)L->ch, (size_t)Hs[lv], (size_t)Ws[lv]);
            conv(&f, &L->sample, upb, hid[!cur], L->ch, Hs[lv - 1], Ws[lv - 1], L->ch, 3, 1);
            da_arena_reset(a, m);
            cur = !cur;
        }
    }
    /* conv_norm_out + SiLU + conv_out */
    {
        size_t m = da_arena_mark(a);
        float *nb = take(&f, (size_t)B * boc[0] * HW_(0)), *o = take(&f, (size_t)B * c->out_channels * HW_(0));
        groupnorm(&f, nb, hid[cur], boc[0], HW_(0), &u->norm_out, c->norm_eps, true);
        conv(&f, &u->conv_out, nb, o, boc[0], Hs[0], Ws[0], c->out_channels, 3, 1);
        da_op_download(be, h_out, o, (size_t)B * c->out_channels * HW_(0));
        da_arena_reset(a, m);
    }
#undef HW_
}

/* ---- contexts ----------------------------------------------------------------------------------- */

da_status da_unet_check_shape(const da_unet *u, const da_unet_shape *s, da_error *err) {
    const da_unet_config *c = &u->cfg;
    int mult = 1 << (c->n_levels - 1);
    if (s->batch < 1) return da_err_set(err, DA_ERR_SHAPE, "unet: sample batch %d, expected >= 1", s->batch);
    if (s->in_channels != c->in_channels)
        return da_err_set(err, DA_ERR_SHAPE, "unet: sample has %d channels, expected %d (in_channels of the model)",
                          s->in_channels, c->in_channels);
    if (s->height < mult || s->width < mult || s->height % mult || s->width % mult)
        return da_err_set(err, DA_ERR_SHAPE, "unet: sample latent %dx%d, expected height and width multiples of %d",
                          s->height, s->width, mult);
    if (s->context_len < 1)
        return da_err_set(err, DA_ERR_SHAPE, "unet: encoder_hidden_states has %d tokens, expected >= 1",
                          s->context_len);
    if (s->context_dim != c->cross_attention_dim)
        return da_err_set(err, DA_ERR_SHAPE, "unet: encoder_hidden_states width %d, expected %d (cross_attention_dim)",
                          s->context_dim, c->cross_attention_dim);
    /* kernels index with int: the largest GEMM operand is tokens x 8C (feed-forward) */
    int cmax = 0;
    for (int i = 0; i < c->n_levels; i++)
        if (c->block_out_channels[i] > cmax) cmax = c->block_out_channels[i];
    double big = (double)s->batch * s->height * s->width * 8.0 * cmax;
    double bigc = (double)s->batch * s->context_len * cmax;
    if (big > INT_MAX || bigc > INT_MAX)
        return da_err_set(err, DA_ERR_SHAPE, "unet: batch %d x %dx%d latent (context %d) is too large for one forward",
                          s->batch, s->height, s->width, s->context_len);
    return DA_OK;
}

da_unet_ctx *da_unet_ctx_new(const da_unet *u, da_backend *be) {
    da_unet_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->u = u;
    c->be = be;
    return c;
}

void da_unet_ctx_free(da_unet_ctx *c) {
    if (!c) return;
    da_arena_free(&c->arena);
    free(c);
}

da_status da_unet_plan(da_unet_ctx *c, const da_unet_shape *s, da_error *err) {
    c->ready = false;
    da_status st = da_unet_check_shape(c->u, s, err);
    if (st) return st;
    da_backend_plan(c->be);
    da_arena_plan(&c->arena);
    unet_graph(c->u, c->be, &c->arena, s, NULL, NULL, NULL, NULL, NULL, NULL);
    if ((st = da_backend_commit(c->be, err))) return st;
    if ((st = da_arena_commit(&c->arena, 0, err))) return st;
    c->planned = *s;
    c->ready = true;
    return DA_OK;
}

void da_unet_ctx_bytes(const da_unet_ctx *c, size_t *arena, size_t *scratch) {
    if (arena) *arena = c->arena.cap;
    if (scratch) *scratch = c->be->ws_bytes;
}

da_status da_unet_forward(da_unet_ctx *c, const da_unet_shape *s, const float *sample, const float *timesteps,
                          const float *context, float *out, da_error *err) {
    return da_unet_forward_added(c, s, sample, timesteps, context, NULL, out, err);
}

da_status da_unet_forward_added(da_unet_ctx *c, const da_unet_shape *s, const float *sample, const float *timesteps,
                                const float *context, const da_unet_added *added, float *out, da_error *err) {
    if (!sample || !timesteps || !context || !out)
        return da_err_set(err, DA_ERR_INVALID_ARG, "unet: %s is NULL",
                          !sample ? "sample" : !timesteps ? "timesteps" : !context ? "encoder_hidden_states" : "out");
    const da_unet_config *uc = &c->u->cfg;
    if (uc->addition_embed_dim > 0) {
        if (!added || !added->text_embeds || !added->time_ids)
            return da_err_set(err, DA_ERR_INVALID_ARG,
                              "unet: this UNet has text_time conditioning (addition_embed_type \"text_time\", SDXL): "
                              "it needs %s (added_cond_kwargs: text_embeds [B, %d], time_ids [B, 6])",
                              !added ? "text_embeds and time_ids" : !added->text_embeds ? "text_embeds" : "time_ids",
                              uc->addition_embed_dim - 6 * uc->addition_time_embed_dim);
    } else if (added) {
        return da_err_set(err, DA_ERR_INVALID_ARG,
                          "unet: text_embeds/time_ids given, but this UNet has no added conditioning (not SDXL)");
    }
    if (!c->ready || memcmp(&c->planned, s, sizeof *s)) {
        da_status st = da_unet_plan(c, s, err);
        if (st) return st;
    }
    c->arena.off = 0;
    unet_graph(c->u, c->be, &c->arena, s, sample, timesteps, context, added ? added->text_embeds : NULL,
               added ? added->time_ids : NULL, out);
    /* take the backend's sticky error in every case, so the next forward starts clean */
    da_status st = da_backend_take_error(c->be, err);
    if (c->arena.overflow) {
        c->ready = false;
        return da_err_set(err, DA_ERR_INVALID_ARG, "unet: the forward outgrew its plan (a bug)");
    }
    return st;
}
