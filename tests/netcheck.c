/* netcheck.c - networks and pipelines on a named backend with fixed inputs (see netcheck.h). */
#include "netcheck.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "backend.h"
#include "blip.h"
#include "clip.h"
#include "image.h"
#include "kcommon.h"
#include "mkmodel.h"
#include "modelfile.h"
#include "testutil.h"
#include "unet.h"
#include "util.h"
#include "vae.h"

/* Inputs come from a local generator reseeded for every runner, so every backend sees the same bytes
 * whatever ran before. */
typedef struct nc_rng {
    uint64_t s;
} nc_rng;
static float nc_rand(nc_rng *r, float lo, float hi) {
    r->s ^= r->s << 13, r->s ^= r->s >> 7, r->s ^= r->s << 17;
    return lo + (hi - lo) * (float)((r->s >> 40) * (1.0 / 16777216.0));
}
static float *nc_buf(nc_rng *r, size_t n, float lo, float hi) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = nc_rand(r, lo, hi);
    return p;
}

void nc_out_free(nc_out *o) {
    for (int i = 0; i < o->count; i++) free(o->v[i]);
    memset(o, 0, sizeof *o);
}

static float *nc_add(nc_out *o, const char *name, size_t n) {
    if (o->count >= NC_MAX_OUT) return NULL;
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) return NULL;
    o->name[o->count] = name;
    o->v[o->count] = p;
    o->n[o->count++] = n;
    return p;
}

char *nc_make_model(const char *dir, const char *name, const char *preset, da_dtype dt, uint64_t seed, da_error *err) {
    char *path = da_path_join(dir, name);
    char *vocab = strstr(preset, "blip") ? strdup("tests/data/blip/vocab")
                                         : da_path_join(da_test_shared(), "data/clip-tokenizer");
    da_mkmodel_params p;
    da_mkmodel_params_init(&p);
    p.config = preset;
    p.layout = DA_LAYOUT_DIFFUSERS;
    p.dtype = dt;
    p.seed = seed;
    p.jitter = 0.2f;
    p.vocab_dir = vocab;
    da_status st = da_mkmodel(&p, path, err);
    free(vocab);
    if (st) {
        free(path);
        return NULL;
    }
    return path;
}

/* ---- "cpu-tc": the CPU with tensor-core input rounding ------------------------------------------ */

static const da_backend_ops *g_cpu_ops;
static da_backend_ops g_tc_ops;

static float *rounded_copy(const float *x, size_t n, dk_wtype t) {
    float *r = malloc((n ? n : 1) * sizeof *r);
    if (!r) return NULL;
    for (size_t i = 0; i < n; i++)
        r[i] = t == DK_F16 ? dk_f16_to_f32(dk_f32_to_f16(x[i])) : dk_bf16_to_f32(dk_f32_to_bf16(x[i]));
    return r;
}

static da_status tc_linear(da_backend *be, int M, int N, int K, const float *x, const da_w *w, const float *bias,
                           float *y) {
    if (w->t == DK_F32) return g_cpu_ops->linear(be, M, N, K, x, w, bias, y);
    float *r = rounded_copy(x, (size_t)M * K, w->t);
    if (!r) return da_backend_fail(be, DA_ERR_NOMEM, "cpu-tc linear: out of memory");
    da_status st = g_cpu_ops->linear(be, M, N, K, r, w, bias, y);
    free(r);
    return st;
}

static da_status tc_conv2d(da_backend *be, const dk_conv2d *s, const float *x, const da_w *w, const float *bias,
                           float *y) {
    if (w->t == DK_F32) return g_cpu_ops->conv2d(be, s, x, w, bias, y);
    float *r = rounded_copy(x, (size_t)s->N * s->C * s->H * s->W, w->t);
    if (!r) return da_backend_fail(be, DA_ERR_NOMEM, "cpu-tc conv2d: out of memory");
    da_status st = g_cpu_ops->conv2d(be, s, r, w, bias, y);
    free(r);
    return st;
}

/* v2's default tensor-core attention rounds Q, K and V to f16 whatever the model's dtype (P too, which is
 * not emulated: it adds at most the same 2^-11 per weight). Each operand is copied over its strided
 * extent, rounded, and handed to the CPU kernel at the same offsets. */
static size_t attn_extent(size_t batch_stride, size_t row_stride, int batch, int rows, size_t row) {
    return (size_t)(batch - 1) * batch_stride + (size_t)(rows - 1) * row_stride + row;
}

static da_status tc_attention(da_backend *be, const dk_attn_params *p, const float *q, const float *k, const float *v,
                              float *o) {
    size_t row = (size_t)p->heads * p->head_dim;
    size_t qr = p->q_row ? p->q_row : row, kr = p->k_row ? p->k_row : row, vr = p->v_row ? p->v_row : row;
    size_t qb = p->q_batch ? p->q_batch : (size_t)p->nq * qr, kb = p->k_batch ? p->k_batch : (size_t)p->nk * kr;
    size_t vb = p->v_batch ? p->v_batch : (size_t)p->nk * vr;
    float *rq = rounded_copy(q, attn_extent(qb, qr, p->batch, p->nq, row), DK_F16);
    float *rk = rounded_copy(k, attn_extent(kb, kr, p->batch, p->nk, row), DK_F16);
    float *rv = rounded_copy(v, attn_extent(vb, vr, p->batch, p->nk, row), DK_F16);
    da_status st = rq && rk && rv ? g_cpu_ops->attention(be, p, rq, rk, rv, o)
                                  : da_backend_fail(be, DA_ERR_NOMEM, "cpu-tc attention: out of memory");
    free(rq), free(rk), free(rv);
    return st;
}

da_backend *nc_backend_new(const char *name, da_error *err) {
    if (strcmp(name, "cpu-tc")) return da_backend_new(name, err);
    da_backend *be = da_backend_cpu_new();
    if (!be) {
        da_err_set(err, DA_ERR_NOMEM, "cpu-tc: out of memory");
        return NULL;
    }
    if (!g_cpu_ops) {
        g_cpu_ops = be->ops;
        g_tc_ops = *be->ops;
        g_tc_ops.name = "cpu-tc";
        g_tc_ops.linear = tc_linear;
        g_tc_ops.conv2d = tc_conv2d;
        g_tc_ops.attention = tc_attention;
    }
    be->ops = &g_tc_ops; /* no destroy: da_backend_free frees it as a CPU backend */
    return be;
}

/* The model and the backend every runner starts from. */
static da_status open_both(const char *model, const char *backend, da_model_file **m, da_backend **be, da_error *err) {
    *m = NULL;
    *be = NULL;
    da_status st = da_model_open(model, m, err);
    if (st) return st;
    if (!(*be = nc_backend_new(backend, err))) {
        da_model_close(*m);
        *m = NULL;
        return err->code ? err->code : DA_ERR_NOMEM;
    }
    return DA_OK;
}

/* The second run must give the same bytes as the first (the plan is reused, nothing left over). */
static da_status same_twice(const char *what, const float *a, const float *b, size_t n, da_error *err) {
    if (memcmp(a, b, n * sizeof *a))
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: a second run on the same context gave different bytes", what);
    return DA_OK;
}

da_status nc_unet(const char *model, const char *backend, int B, int h, int w, nc_out *o, da_error *err) {
    memset(o, 0, sizeof *o);
    da_model_file *m;
    da_backend *be;
    da_status st = open_both(model, backend, &m, &be, err);
    if (st) return st;
    da_unet *u = NULL;
    da_unet_ctx *c = NULL;
    float *x = NULL, *ctx = NULL, *again = NULL, *te = NULL, *ti = NULL, t[16];
    if ((st = da_unet_load_on(m, be, &u, err))) goto done;
    const da_unet_config *cfg = da_unet_config_of(u);
    da_unet_shape s = {B, cfg->in_channels, h, w, 77, cfg->cross_attention_dim};
    nc_rng r = {0x9E3779B97F4A7C15ull};
    size_t nx = (size_t)B * cfg->in_channels * h * w, nc = (size_t)B * 77 * cfg->cross_attention_dim;
    size_t ny = (size_t)B * cfg->out_channels * h * w;
    x = nc_buf(&r, nx, -2.0f, 2.0f);
    ctx = nc_buf(&r, nc, -1.0f, 1.0f);
    again = malloc(ny * sizeof *again);
    static const float ts[4] = {999.0f, 1.5f, 500.0f, 37.25f};
    for (int i = 0; i < B && i < 16; i++) t[i] = ts[i % 4];
    float *y = nc_add(o, "eps", ny);
    /* SDXL's added conditioning: pooled text embeds and the six micro-conditioning values */
    const bool sdxl = cfg->addition_embed_dim > 0;
    const int Dt = sdxl ? cfg->addition_embed_dim - 6 * cfg->addition_time_embed_dim : 0;
    if (sdxl) {
        te = nc_buf(&r, (size_t)B * Dt, -1.0f, 1.0f);
        ti = malloc(sizeof *ti * 6 * B);
        static const float mc[6] = {1024, 1024, 0, 0, 1024, 1024};
        for (int i = 0; ti && i < 6 * B; i++) ti[i] = mc[i % 6] - 64.0f * (i / 6);
    }
    da_unet_added ad = {te, ti};
    if (B > 16 || !x || !ctx || !again || !y || (sdxl && (!te || !ti)) || !(c = da_unet_ctx_new(u, be))) {
        st = da_err_set(err, DA_ERR_NOMEM, "nc_unet: out of memory (or batch > 16)");
        goto done;
    }
    if ((st = da_unet_forward_added(c, &s, x, t, ctx, sdxl ? &ad : NULL, y, err))) goto done;
    if ((st = da_unet_forward_added(c, &s, x, t, ctx, sdxl ? &ad : NULL, again, err))) goto done;
    st = same_twice("unet", y, again, ny, err);
done:
    free(x), free(ctx), free(again), free(te), free(ti);
    da_unet_ctx_free(c);
    da_unet_free(u);
    da_backend_free(be);
    da_model_close(m);
    if (st) nc_out_free(o);
    return st;
}

da_status nc_vae(const char *model, const char *backend, nc_out *o, da_error *err) {
    memset(o, 0, sizeof *o);
    da_model_file *m;
    da_backend *be;
    da_status st = open_both(model, backend, &m, &be, err);
    if (st) return st;
    da_vae *v = NULL;
    da_arena a = {0};
    float *img = NULL, *z = NULL, *again = NULL;
    if ((st = da_vae_load_on(m, be, &v, err))) goto done;
    const da_vae_config *c = da_vae_cfg(v);
    const int f = da_vae_factor(v), S = 8 * f, L = c->latent_channels;
    nc_rng r = {0xD1B54A32D192ED03ull};
    size_t ni = (size_t)2 * 3 * S * S, nz = (size_t)2 * L * 8 * 8;
    img = nc_buf(&r, ni, -1.0f, 1.0f);
    z = nc_buf(&r, nz, -3.0f, 3.0f);
    again = malloc(ni * sizeof *again);
    float *mean = nc_add(o, "mean", nz), *logvar = nc_add(o, "logvar", nz), *dec = nc_add(o, "image", ni);
    if (!img || !z || !again || !mean || !logvar || !dec) {
        st = da_err_set(err, DA_ERR_NOMEM, "nc_vae: out of memory");
        goto done;
    }
    if ((st = da_vae_encode(v, be, &a, img, 2, S, S, mean, logvar, err))) goto done;
    if ((st = da_vae_decode(v, be, &a, z, 2, 8, 8, dec, err))) goto done;
    if ((st = da_vae_decode(v, be, &a, z, 2, 8, 8, again, err))) goto done;
    st = same_twice("vae decode", dec, again, ni, err);
done:
    free(img), free(z), free(again);
    da_arena_free(&a); /* before the backend: the block may be its memory */
    da_vae_free(v);
    da_backend_free(be);
    da_model_close(m);
    if (st) nc_out_free(o);
    return st;
}

da_status nc_clip_text(const char *model, const char *backend, nc_out *o, da_error *err) {
    memset(o, 0, sizeof *o);
    da_model_file *m;
    da_backend *be;
    da_status st = open_both(model, backend, &m, &be, err);
    if (st) return st;
    da_clip_text *t = NULL;
    da_arena a = {0};
    int32_t *ids = NULL;
    if ((st = da_clip_text_load_on(m, DA_COMP_CLIP, be, &t, err))) goto done;
    const da_clip_text_config *c = da_clip_text_cfg(t);
    const int B = 2, L = c->max_positions, D = c->hidden_size, P = da_clip_text_projection_dim(t);
    ids = malloc(sizeof *ids * B * L);
    float *hs = nc_add(o, "last_hidden_state", (size_t)B * L * D), *pool = nc_add(o, "pooler_output", (size_t)B * D);
    float *emb = nc_add(o, "text_embeds", (size_t)B * P), *skip = nc_add(o, "clip_skip1", (size_t)B * L * D);
    float *pen = nc_add(o, "penultimate", (size_t)B * L * D);
    if (!ids || !hs || !pool || !emb || !skip || !pen) {
        st = da_err_set(err, DA_ERR_NOMEM, "nc_clip_text: out of memory");
        goto done;
    }
    nc_rng r = {0x2545F4914F6CDD1Dull};
    for (int b = 0; b < B; b++) /* BOS, random tokens, EOS (the largest id), then padding */
        for (int j = 0; j < L; j++) {
            int end = 5 + 9 * b;
            ids[b * L + j] = j == 0 ? c->vocab_size - 2
                           : j < end ? (int32_t)(nc_rand(&r, 0.0f, 1.0f) * (c->vocab_size - 2))
                           : j == end ? c->vocab_size - 1 : 0;
        }
    da_clip_text_out out = {.last_hidden_state = hs, .penultimate = pen, .pooler_output = pool, .text_embeds = emb};
    if ((st = da_clip_text_forward(t, be, &a, ids, B, L, NULL, &out, err))) goto done;
    da_clip_text_opts op;
    da_clip_text_opts_init(&op);
    op.clip_skip = c->num_layers > 1 ? 1 : 0;
    da_clip_text_out out2 = {.last_hidden_state = skip};
    st = da_clip_text_forward(t, be, &a, ids, B, L, &op, &out2, err);
done:
    free(ids);
    da_arena_free(&a);
    da_clip_text_free(t);
    da_backend_free(be);
    da_model_close(m);
    if (st) nc_out_free(o);
    return st;
}

da_status nc_clip_vision(const char *model, const char *backend, nc_out *o, da_error *err) {
    memset(o, 0, sizeof *o);
    da_model_file *m;
    da_backend *be;
    da_status st = open_both(model, backend, &m, &be, err);
    if (st) return st;
    da_clip_vision *v = NULL;
    da_arena a = {0};
    float *px = NULL;
    if ((st = da_clip_vision_load_on(m, be, &v, err))) goto done;
    const da_clip_vision_config *c = da_clip_vision_cfg(v);
    const int B = 2, S = c->image_size, D = c->hidden_size, T = da_clip_vision_tokens(v);
    const int P = da_clip_vision_projection_dim(v);
    nc_rng r = {0xBF58476D1CE4E5B9ull};
    px = nc_buf(&r, (size_t)B * 3 * S * S, -1.8f, 2.1f);
    float *hs = nc_add(o, "last_hidden_state", (size_t)B * T * D), *pool = nc_add(o, "pooler_output", (size_t)B * D);
    float *emb = nc_add(o, "image_embeds", (size_t)B * P);
    if (!px || !hs || !pool || !emb) {
        st = da_err_set(err, DA_ERR_NOMEM, "nc_clip_vision: out of memory");
        goto done;
    }
    da_clip_vision_out out = {.last_hidden_state = hs, .pooler_output = pool, .image_embeds = emb};
    st = da_clip_vision_forward(v, be, &a, px, B, &out, err);
done:
    free(px);
    da_arena_free(&a);
    da_clip_vision_free(v);
    da_backend_free(be);
    da_model_close(m);
    if (st) nc_out_free(o);
    return st;
}

da_status nc_blip(const char *model, const char *backend, nc_out *o, da_error *err) {
    memset(o, 0, sizeof *o);
    da_model_file *m;
    da_backend *be;
    da_status st = open_both(model, backend, &m, &be, err);
    if (st) return st;
    da_blip *b = NULL;
    da_arena a = {0};
    float *px = NULL;
    if ((st = da_blip_load(m, be, &b, err))) goto done;
    const da_model_config *c = da_blip_cfg(b);
    enum { B = 2, L = 7 };
    const int S = c->vision.image_size, T = da_blip_image_tokens(b), Dv = da_blip_image_width(b);
    const int V = c->blip_text.vocab_size;
    nc_rng r = {0xD6E8FEB86659FD93ull};
    px = nc_buf(&r, (size_t)B * 3 * S * S, -1.8f, 2.1f);
    int32_t ids[B * L];
    for (int i = 0; i < B * L; i++) ids[i] = (int32_t)((i * 7919u + 13u) % (unsigned)V);
    float *emb = nc_add(o, "image_embeds", (size_t)B * T * Dv), *logits = nc_add(o, "logits", (size_t)B * L * V);
    if (!px || !emb || !logits) {
        st = da_err_set(err, DA_ERR_NOMEM, "nc_blip: out of memory");
        goto done;
    }
    if (!(st = da_blip_vision_forward(b, be, &a, px, B, emb, NULL, err)))
        st = da_blip_decoder_forward(b, be, &a, ids, B, L, emb, logits, err);
done:
    free(px);
    da_arena_free(&a);
    da_blip_free(b);
    da_backend_free(be);
    da_model_close(m);
    if (st) nc_out_free(o);
    return st;
}

da_status nc_generate(const char *model, const char *backend, da_gen_mode mode, da_sampler_kind sampler, int steps,
                      nc_out *o, da_error *err) {
    memset(o, 0, sizeof *o);
    da_sd_options so;
    da_sd_options_init(&so);
    so.model = model;
    so.backend = backend;
    da_sd *sd = NULL;
    da_status st = da_sd_open(&so, &sd, err);
    if (st) return st;
    enum { W = 64, H = 64, N = 2 };
    da_image src[N] = {0}, out[N] = {0};
    da_gen_params p;
    da_gen_params_init(&p);
    p.mode = mode;
    p.sampler = sampler;
    p.steps = steps;
    p.width = W, p.height = H;
    p.strength = 0.7f;
    da_gen_item it[N];
    static const char *prompts[N] = {"a photo of a red fox in snow", "watercolor lighthouse"};
    nc_rng r = {0x94D049BB133111EBull};
    for (int i = 0; i < N; i++) {
        da_gen_item_init(&it[i]);
        it[i].prompt = prompts[i];
        it[i].negative = i == 0 ? "blurry" : NULL;
        it[i].guidance = i == 0 ? 7.5f : 1.0f; /* item 1 has no unconditional branch */
        it[i].image_guidance = 1.5f;
        it[i].seed = 1234;
        it[i].image_id = 7 + i;
        if (mode != DA_GEN_TXT2IMG) {
            if ((st = da_image_alloc(&src[i], W, H, err))) goto done;
            for (size_t k = 0; k < (size_t)W * H * 3; k++) src[i].data[k] = (uint8_t)(nc_rand(&r, 0.0f, 255.99f));
            it[i].init = &src[i];
        }
    }
    size_t nl = (size_t)N * 4 * (H / 8) * (W / 8), npx = (size_t)N * W * H * 3;
    float *lat = nc_add(o, "latents", nl), *pix = nc_add(o, "pixels", npx);
    if (!lat || !pix) {
        st = da_err_set(err, DA_ERR_NOMEM, "nc_generate: out of memory");
        goto done;
    }
    if ((st = da_sd_generate(sd, &p, it, N, out, lat, err))) goto done;
    for (int i = 0; i < N; i++)
        for (size_t k = 0; k < (size_t)W * H * 3; k++) pix[(size_t)i * W * H * 3 + k] = out[i].data[k];
done:
    for (int i = 0; i < N; i++) {
        da_image_free(&src[i]);
        da_image_free(&out[i]);
    }
    da_sd_close(sd);
    if (st) nc_out_free(o);
    return st;
}
