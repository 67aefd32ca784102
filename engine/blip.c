/* blip.c - the BLIP captioner (see blip.h).
 *
 * Mirrors transformers 5.23 models/blip/modeling_blip.py (BlipVisionEmbeddings, BlipAttention,
 * BlipEncoderLayer, BlipVisionModel, BlipForConditionalGeneration.generate) and
 * modeling_blip_text.py (BlipTextEmbeddings, BlipTextSelfAttention, BlipTextLayer, BlipTextLMHeadModel),
 * with generation/utils.py's greedy and beam search loops restated on the host.
 * Activations are f32 [rows, tokens, width] row-major (PyTorch order); weights stay in their stored dtype.
 */
#include "blip.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "weights.h"

typedef struct vis_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b, *qkv_b, *proj_b, *fc1_b, *fc2_b;
    da_w qkv, proj, fc1, fc2;
} vis_layer;

typedef struct attn_w {
    da_w q, k, v, o;
    const float *q_b, *k_b, *v_b, *o_b, *ln_w, *ln_b;
} attn_w;

typedef struct txt_layer {
    attn_w self, cross;
    da_w inter, out;
    const float *inter_b, *out_b, *ln_w, *ln_b;
} txt_layer;

struct da_blip {
    da_model_config cfg;
    da_binder b;
    /* vision */
    const float *class_emb, *pos_emb, *patch_b, *post_w, *post_b;
    da_w patch;
    vis_layer *vl;
    int grid, tokens;
    /* decoder */
    da_w word;              /* [V, H]: embeddings and the tied LM head weight */
    const float *pos, *emb_ln_w, *emb_ln_b;
    txt_layer *tl;
    da_w head_dense;
    const float *head_dense_b, *head_ln_w, *head_ln_b, *head_bias;
};

const da_model_config *da_blip_cfg(const da_blip *b) { return &b->cfg; }
int da_blip_image_tokens(const da_blip *b) { return b->tokens; }
int da_blip_image_width(const da_blip *b) { return b->cfg.vision.hidden_size; }

static void bind_attn(da_binder *b, attn_w *a, const char *pre) {
    a->q = da_bind(b, "%s.self.query.weight", pre);
    a->k = da_bind(b, "%s.self.key.weight", pre);
    a->v = da_bind(b, "%s.self.value.weight", pre);
    a->o = da_bind(b, "%s.output.dense.weight", pre);
    a->q_b = da_bind_f32(b, "%s.self.query.bias", pre);
    a->k_b = da_bind_f32(b, "%s.self.key.bias", pre);
    a->v_b = da_bind_f32(b, "%s.self.value.bias", pre);
    a->o_b = da_bind_f32(b, "%s.output.dense.bias", pre);
    a->ln_w = da_bind_f32(b, "%s.output.LayerNorm.weight", pre);
    a->ln_b = da_bind_f32(b, "%s.output.LayerNorm.bias", pre);
}

da_status da_blip_load(const da_model_file *m, da_backend *be, da_blip **out, da_error *err) {
    *out = NULL;
    if (!da_model_has(m, DA_COMP_BLIP))
        return da_err_set(err, DA_ERR_NOT_FOUND, "%s: not a BLIP captioner (BlipForConditionalGeneration folder)", m->path);
    da_blip *b = calloc(1, sizeof *b);
    if (!b) return da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    b->cfg = m->cfg;
    const da_clip_vision_config *v = &b->cfg.vision;
    const da_blip_text_config *t = &b->cfg.blip_text;
    b->grid = v->image_size / v->patch_size;
    b->tokens = b->grid * b->grid + 1;
    b->vl = calloc((size_t)v->num_layers, sizeof *b->vl);
    b->tl = calloc((size_t)t->num_layers, sizeof *b->tl);
    if (!b->vl || !b->tl) {
        da_blip_free(b);
        return da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    }
    da_binder *B = &b->b;
    da_binder_init(B, m, DA_COMP_BLIP);
    B->be = be; /* weights adopted by the backend once (device copies on CUDA; identity on the CPU) */
    b->class_emb = da_bind_f32(B, "vision_model.embeddings.class_embedding");
    b->pos_emb = da_bind_f32(B, "vision_model.embeddings.position_embedding");
    b->patch = da_bind(B, "vision_model.embeddings.patch_embedding.weight");
    b->patch_b = da_bind_f32(B, "vision_model.embeddings.patch_embedding.bias");
    for (int i = 0; i < v->num_layers; i++) {
        vis_layer *l = &b->vl[i];
#define P "vision_model.encoder.layers.%d."
        l->ln1_w = da_bind_f32(B, P "layer_norm1.weight", i);
        l->ln1_b = da_bind_f32(B, P "layer_norm1.bias", i);
        l->ln2_w = da_bind_f32(B, P "layer_norm2.weight", i);
        l->ln2_b = da_bind_f32(B, P "layer_norm2.bias", i);
        l->qkv = da_bind(B, P "self_attn.qkv.weight", i);
        l->qkv_b = da_bind_f32(B, P "self_attn.qkv.bias", i);
        l->proj = da_bind(B, P "self_attn.projection.weight", i);
        l->proj_b = da_bind_f32(B, P "self_attn.projection.bias", i);
        l->fc1 = da_bind(B, P "mlp.fc1.weight", i);
        l->fc1_b = da_bind_f32(B, P "mlp.fc1.bias", i);
        l->fc2 = da_bind(B, P "mlp.fc2.weight", i);
        l->fc2_b = da_bind_f32(B, P "mlp.fc2.bias", i);
#undef P
    }
    b->post_w = da_bind_f32(B, "vision_model.post_layernorm.weight");
    b->post_b = da_bind_f32(B, "vision_model.post_layernorm.bias");
    b->word = da_bind(B, "text_decoder.bert.embeddings.word_embeddings.weight");
    b->pos = da_bind_f32(B, "text_decoder.bert.embeddings.position_embeddings.weight");
    b->emb_ln_w = da_bind_f32(B, "text_decoder.bert.embeddings.LayerNorm.weight");
    b->emb_ln_b = da_bind_f32(B, "text_decoder.bert.embeddings.LayerNorm.bias");
    for (int i = 0; i < t->num_layers; i++) {
        txt_layer *l = &b->tl[i];
        char pre[96];
        snprintf(pre, sizeof pre, "text_decoder.bert.encoder.layer.%d.attention", i);
        bind_attn(B, &l->self, pre);
        snprintf(pre, sizeof pre, "text_decoder.bert.encoder.layer.%d.crossattention", i);
        bind_attn(B, &l->cross, pre);
#define P "text_decoder.bert.encoder.layer.%d."
        l->inter = da_bind(B, P "intermediate.dense.weight", i);
        l->inter_b = da_bind_f32(B, P "intermediate.dense.bias", i);
        l->out = da_bind(B, P "output.dense.weight", i);
        l->out_b = da_bind_f32(B, P "output.dense.bias", i);
        l->ln_w = da_bind_f32(B, P "output.LayerNorm.weight", i);
        l->ln_b = da_bind_f32(B, P "output.LayerNorm.bias", i);
#undef P
    }
    b->head_dense = da_bind(B, "text_decoder.cls.predictions.transform.dense.weight");
    b->head_dense_b = da_bind_f32(B, "text_decoder.cls.predictions.transform.dense.bias");
    b->head_ln_w = da_bind_f32(B, "text_decoder.cls.predictions.transform.LayerNorm.weight");
    b->head_ln_b = da_bind_f32(B, "text_decoder.cls.predictions.transform.LayerNorm.bias");
    /* tie_word_embeddings: the decoder's bias is cls.predictions.bias, its weight the word embeddings */
    b->head_bias = da_bind_f32(B, "text_decoder.cls.predictions.bias");
    if (B->st) {
        da_status st = B->st;
        *err = B->err;
        da_blip_free(b);
        return st;
    }
    *out = b;
    return DA_OK;
}

void da_blip_free(da_blip *b) {
    if (!b) return;
    free(b->vl);
    free(b->tl);
    da_binder_release(&b->b);
    free(b);
}

da_status da_blip_preprocess(const da_blip *b, const da_image *im, float *out, da_error *err) {
    int S = b->cfg.vision.image_size;
    da_image r = {0};
    da_status st = da_image_resize_bicubic(im, S, S, &r, err);
    if (st) return st;
    da_image_to_clip(&r, out); /* OPENAI_CLIP_MEAN / STD, x * (1/255) as transformers rescales */
    da_image_free(&r);
    return DA_OK;
}

/* ---- vision --------------------------------------------------------------------------------- */

typedef struct vision_run {
    const da_blip *b;
    const float *px;
    int B;
    float *embeds, *pooler;
} vision_run;

/* pixel_values [B, 3, S, S] -> post_layernorm(encoder(embeddings)) [B, T, D] */
static void vision_forward(const void *ctx, da_backend *be, da_arena *a) {
    const vision_run *r = ctx;
    const da_blip *b = r->b;
    const da_clip_vision_config *c = &b->cfg.vision;
    int B = r->B, S = c->image_size, p = c->patch_size, D = c->hidden_size, T = b->tokens, I = c->intermediate_size;
    size_t np = (size_t)b->grid * b->grid, M = (size_t)B * T, MD = M * D;
    float *x = da_arena_floats(a, MD), *pool = da_arena_floats(a, (size_t)B * D);
    size_t mark = da_arena_mark(a);
    float *px = da_arena_floats(a, (size_t)B * 3 * S * S), *pe = da_arena_floats(a, (size_t)B * D * np);
    if (!x || !pool || !px || !pe) {
        da_backend_fail(be, DA_ERR_NOMEM, "BLIP vision: activation arena exhausted");
        return;
    }
    /* BlipVisionEmbeddings: stride-p convolution with bias, class token in front, then positions */
    da_op_upload(be, px, r->px, (size_t)B * 3 * S * S);
    dk_conv2d cs = dk_conv2d_make(B, 3, S, S, D, p, p, 0);
    da_op_conv2d(be, &cs, px, &b->patch, b->patch_b, pe);
    for (int i = 0; i < B; i++) {
        float *xb = x + (size_t)i * T * D;
        da_op_copy(be, xb, b->class_emb, (size_t)D);
        da_op_transpose(be, xb + D, pe + (size_t)i * D * np, 1, (size_t)D, np);
    }
    da_arena_reset(a, mark);
    da_op_add_row(be, x, x, b->pos_emb, (size_t)B, (size_t)T * D);
    float *h = da_arena_floats(a, MD), *qkv = da_arena_floats(a, 3 * MD), *f = da_arena_floats(a, M * I);
    if (!h || !qkv || !f) {
        da_backend_fail(be, DA_ERR_NOMEM, "BLIP vision: activation arena exhausted");
        return;
    }
    /* BlipAttention reads q, k, v from one fused projection [M, 3D] (columns q | k | v) */
    dk_attn_params ap = dk_attn_params_packed(B, c->num_heads, T, T, D / c->num_heads, 0);
    ap.q_row = ap.k_row = ap.v_row = 3 * (size_t)D;
    ap.q_batch = ap.k_batch = ap.v_batch = 3 * (size_t)T * D;
    for (int i = 0; i < c->num_layers; i++) {
        const vis_layer *l = &b->vl[i];
        da_op_layernorm(be, h, x, M, (size_t)D, c->layer_norm_eps, l->ln1_w, l->ln1_b);
        da_op_linear(be, (int)M, 3 * D, D, h, &l->qkv, l->qkv_b, qkv);
        da_op_attention(be, &ap, qkv, qkv + D, qkv + 2 * D, h);
        da_op_linear(be, (int)M, D, D, h, &l->proj, l->proj_b, qkv);
        da_op_add(be, x, x, qkv, MD);
        da_op_layernorm(be, h, x, M, (size_t)D, c->layer_norm_eps, l->ln2_w, l->ln2_b);
        da_op_linear(be, (int)M, I, D, h, &l->fc1, l->fc1_b, f);
        da_op_act(be, DA_ACT_GELU, f, f, M * I);
        da_op_linear(be, (int)M, D, I, f, &l->fc2, l->fc2_b, qkv);
        da_op_add(be, x, x, qkv, MD);
    }
    da_op_layernorm(be, x, x, M, (size_t)D, c->layer_norm_eps, b->post_w, b->post_b);
    if (r->embeds) da_op_download(be, r->embeds, x, MD);
    if (r->pooler) {
        for (int i = 0; i < B; i++) da_op_copy(be, pool + (size_t)i * D, x + (size_t)i * T * D, (size_t)D);
        da_op_layernorm(be, pool, pool, (size_t)B, (size_t)D, c->layer_norm_eps, b->post_w, b->post_b);
        da_op_download(be, r->pooler, pool, (size_t)B * D);
    }
}

da_status da_blip_vision_forward(const da_blip *b, da_backend *be, da_arena *a, const float *pixel_values, int B,
                                 float *image_embeds, float *pooler_output, da_error *err) {
    if (!be) return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP vision: no backend");
    const da_clip_vision_config *c = &b->cfg.vision;
    if (B < 1) return da_err_set(err, DA_ERR_SHAPE, "pixel_values: batch %d, expected >= 1", B);
    int64_t widest = c->intermediate_size > 3 * c->hidden_size ? c->intermediate_size : 3 * c->hidden_size;
    if ((int64_t)B * b->tokens * widest > INT32_MAX || (int64_t)B * 3 * c->image_size * c->image_size > INT32_MAX)
        return da_err_set(err, DA_ERR_OVERFLOW, "pixel_values: batch %d is too large for one forward", B);
    vision_run r = {b, pixel_values, B, image_embeds, pooler_output};
    return da_plan_and_run(be, b->b.be, a, vision_forward, &r, "BLIP vision", err);
}

/* ---- decoder -------------------------------------------------------------------------------- */

/* Per-generation memory: cross-attention K/V of each image per layer ([B, T, H]) and the
 * self-attention cache of each row per layer ([R, Lmax, H]), plus a copy buffer for beam reordering. */
typedef struct dec_state {
    int B, K, R, Lmax, T;
    float **ck, **cv, **sk, **sv;
    float *tmp;
    da_arena arena;
} dec_state;

static void state_alloc(dec_state *s, const da_blip *b) {
    int H = b->cfg.blip_text.hidden_size, N = b->cfg.blip_text.num_layers;
    size_t cross = (size_t)s->B * s->T * H, self = (size_t)s->R * s->Lmax * H;
    for (int i = 0; i < N; i++) {
        s->ck[i] = da_arena_floats(&s->arena, cross);
        s->cv[i] = da_arena_floats(&s->arena, cross);
        s->sk[i] = da_arena_floats(&s->arena, self);
        s->sv[i] = da_arena_floats(&s->arena, self);
    }
    s->tmp = da_arena_floats(&s->arena, self);
}

static void state_free(dec_state *s) {
    free(s->ck);
    da_arena_free(&s->arena);
}

static da_status state_init(dec_state *s, const da_blip *b, da_backend *be, int B, int K, int Lmax, da_error *err) {
    memset(s, 0, sizeof *s);
    int N = b->cfg.blip_text.num_layers;
    s->B = B, s->K = K, s->R = B * K, s->Lmax = Lmax, s->T = b->tokens;
    s->ck = calloc(4 * (size_t)N, sizeof *s->ck);
    if (!s->ck) return da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    s->cv = s->ck + N, s->sk = s->ck + 2 * N, s->sv = s->ck + 3 * N;
    da_arena_on_backend(&s->arena, be); /* the caches live where the activations do (before planning: it resets) */
    da_arena_plan(&s->arena);
    state_alloc(s, b);
    if (s->arena.overflow) {
        state_free(s);
        return da_err_set(err, DA_ERR_OVERFLOW, "BLIP: key/value cache size overflows");
    }
    if (da_arena_commit(&s->arena, 0, err)) {
        state_free(s);
        return err->code;
    }
    state_alloc(s, b);
    return DA_OK;
}

typedef struct cross_run {
    const da_blip *b;
    const dec_state *s;
    const float *embeds; /* host [B, T, E] */
} cross_run;

/* image_embeds -> cross-attention keys and values of every layer, once per image */
static void cross_forward(const void *ctx, da_backend *be, da_arena *a) {
    const cross_run *r = ctx;
    const da_blip_text_config *t = &r->b->cfg.blip_text;
    int M = r->s->B * r->s->T, E = t->encoder_hidden_size, H = t->hidden_size;
    float *e = da_arena_floats(a, (size_t)M * E);
    if (!e) {
        da_backend_fail(be, DA_ERR_NOMEM, "BLIP decoder: activation arena exhausted");
        return;
    }
    da_op_upload(be, e, r->embeds, (size_t)M * E);
    for (int i = 0; i < t->num_layers; i++) {
        const attn_w *c = &r->b->tl[i].cross;
        da_op_linear(be, M, H, E, e, &c->k, c->k_b, r->s->ck[i]);
        da_op_linear(be, M, H, E, e, &c->v, c->v_b, r->s->cv[i]);
    }
}

typedef struct step_run {
    const da_blip *b;
    const dec_state *s;
    const int32_t *ids; /* host [R, n] */
    int n, past;        /* new tokens per row, tokens already cached */
    bool all_logits;    /* logits of every new token, else of the last one of each row */
    float *logits;      /* host [R * (all ? n : 1), V] */
} step_run;

/* One decoder call on n new tokens per row: appends their keys/values to the cache and returns the
 * LM-head logits. n > 1 only with an empty cache (the prompt), where the causal mask is top-left. */
static void step_forward(const void *ctx, da_backend *be, da_arena *a) {
    const step_run *r = ctx;
    const da_blip *b = r->b;
    const dec_state *s = r->s;
    const da_blip_text_config *t = &b->cfg.blip_text;
    int R = s->R, n = r->n, p = r->past, H = t->hidden_size, I = t->intermediate_size, V = t->vocab_size;
    int M = R * n, hd = H / t->num_heads, rows = r->all_logits ? M : R;
    size_t MH = (size_t)M * H;
    float eps = t->layer_norm_eps;
    float *x = da_arena_floats(a, MH), *q = da_arena_floats(a, MH), *k = da_arena_floats(a, MH);
    float *v = da_arena_floats(a, MH), *o = da_arena_floats(a, MH), *f = da_arena_floats(a, (size_t)M * I);
    float *hl = da_arena_floats(a, (size_t)rows * H), *hl2 = da_arena_floats(a, (size_t)rows * H);
    float *lg = da_arena_floats(a, (size_t)rows * V);
    if (!x || !q || !k || !v || !o || !f || !hl || !hl2 || !lg) {
        da_backend_fail(be, DA_ERR_NOMEM, "BLIP decoder: activation arena exhausted");
        return;
    }
    /* BlipTextEmbeddings: word rows + positions past .. past+n-1, LayerNorm */
    da_op_gather_rows(be, x, &b->word, r->ids, (size_t)M, (size_t)H);
    da_op_add_row(be, x, x, b->pos + (size_t)p * H, (size_t)R, (size_t)n * H);
    da_op_layernorm(be, x, x, (size_t)M, (size_t)H, eps, b->emb_ln_w, b->emb_ln_b);
    /* self-attention over the cache: row stride H, row-to-row stride Lmax * H */
    dk_attn_params sa = dk_attn_params_packed(R, t->num_heads, n, p + n, hd, n > 1);
    sa.k_batch = sa.v_batch = (size_t)s->Lmax * H;
    /* cross-attention: the K rows of one image (n tokens each) are K*n queries of that image's tokens */
    dk_attn_params ca = dk_attn_params_packed(s->B, t->num_heads, s->K * n, s->T, hd, 0);
    for (int i = 0; i < t->num_layers; i++) {
        const txt_layer *l = &b->tl[i];
        const attn_w *w = &l->self;
        da_op_linear(be, M, H, H, x, &w->q, w->q_b, q);
        da_op_linear(be, M, H, H, x, &w->k, w->k_b, k);
        da_op_linear(be, M, H, H, x, &w->v, w->v_b, v);
        for (int j = 0; j < R; j++) {
            size_t dst = ((size_t)j * s->Lmax + p) * H, src = (size_t)j * n * H;
            da_op_copy(be, s->sk[i] + dst, k + src, (size_t)n * H);
            da_op_copy(be, s->sv[i] + dst, v + src, (size_t)n * H);
        }
        da_op_attention(be, &sa, q, s->sk[i], s->sv[i], o);
        /* BlipTextSelfOutput: LayerNorm(dense(context) + input) */
        da_op_linear(be, M, H, H, o, &w->o, w->o_b, q);
        da_op_add(be, q, q, x, MH);
        da_op_layernorm(be, x, q, (size_t)M, (size_t)H, eps, w->ln_w, w->ln_b);
        w = &l->cross;
        da_op_linear(be, M, H, H, x, &w->q, w->q_b, q);
        da_op_attention(be, &ca, q, s->ck[i], s->cv[i], o);
        da_op_linear(be, M, H, H, o, &w->o, w->o_b, q);
        da_op_add(be, q, q, x, MH);
        da_op_layernorm(be, x, q, (size_t)M, (size_t)H, eps, w->ln_w, w->ln_b);
        /* BlipTextIntermediate + BlipTextOutput */
        da_op_linear(be, M, I, H, x, &l->inter, l->inter_b, f);
        da_op_act(be, DA_ACT_GELU, f, f, (size_t)M * I);
        da_op_linear(be, M, H, I, f, &l->out, l->out_b, q);
        da_op_add(be, q, q, x, MH);
        da_op_layernorm(be, x, q, (size_t)M, (size_t)H, eps, l->ln_w, l->ln_b);
    }
    /* BlipTextLMPredictionHead on the rows wanted */
    if (r->all_logits) da_op_copy(be, hl, x, MH);
    else
        for (int j = 0; j < R; j++) da_op_copy(be, hl + (size_t)j * H, x + ((size_t)j * n + n - 1) * H, (size_t)H);
    da_op_linear(be, rows, H, H, hl, &b->head_dense, b->head_dense_b, hl2);
    da_op_act(be, DA_ACT_GELU, hl2, hl2, (size_t)rows * H);
    da_op_layernorm(be, hl2, hl2, (size_t)rows, (size_t)H, eps, b->head_ln_w, b->head_ln_b);
    da_op_linear(be, rows, V, H, hl2, &b->word, b->head_bias, lg);
    da_op_download(be, r->logits, lg, (size_t)rows * V);
}

static da_status check_ids(const da_blip *b, const int32_t *ids, size_t n, da_error *err) {
    int V = b->cfg.blip_text.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return da_err_set(err, DA_ERR_BOUNDS, "input_ids[%zu] = %d is outside the vocabulary [0, %d)", i, (int)ids[i],
                              V);
    return DA_OK;
}

static da_status size_check(const da_blip *b, int rows, int L, da_error *err) {
    const da_blip_text_config *t = &b->cfg.blip_text;
    int64_t widest = t->intermediate_size > t->vocab_size ? t->intermediate_size : t->vocab_size;
    if ((int64_t)rows * L * widest > INT32_MAX || (int64_t)rows * b->tokens * t->encoder_hidden_size > INT32_MAX)
        return da_err_set(err, DA_ERR_OVERFLOW, "BLIP decoder: %d rows x %d tokens is too large for one forward", rows, L);
    return DA_OK;
}

da_status da_blip_decoder_forward(const da_blip *b, da_backend *be, da_arena *a, const int32_t *ids, int B, int L,
                                  const float *image_embeds, float *logits, da_error *err) {
    if (!be) return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP decoder: no backend");
    const da_blip_text_config *t = &b->cfg.blip_text;
    if (B < 1 || L < 1 || L > t->max_positions)
        return da_err_set(err, DA_ERR_SHAPE, "input_ids: shape [%d, %d], expected [batch >= 1, 1..%d]", B, L,
                          t->max_positions);
    if (size_check(b, B, L, err) || check_ids(b, ids, (size_t)B * L, err)) return err->code;
    dec_state s;
    if (state_init(&s, b, be, B, 1, L, err)) return err->code;
    cross_run cr = {b, &s, image_embeds};
    da_status st = da_plan_and_run(be, b->b.be, a, cross_forward, &cr, "BLIP decoder", err);
    step_run sr = {b, &s, ids, L, 0, true, logits};
    if (!st) st = da_plan_and_run(be, b->b.be, a, step_forward, &sr, "BLIP decoder", err);
    state_free(&s);
    return st;
}

/* ---- generation ----------------------------------------------------------------------------- */

void da_blip_gen_params_init(da_blip_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->num_beams = 1;
    p->max_new_tokens = 30;
    p->repetition_penalty = 1.0f;
    p->length_penalty = 1.0f;
}

/* RepetitionPenaltyLogitsProcessor over the tokens of seq[0..len), then
 * MinNewTokensLengthLogitsProcessor (eos = -inf while fewer than min_new tokens follow the prompt). */
static void process_scores(float *sc, int V, const int32_t *seq, int len, int n_prompt, int eos,
                           const da_blip_gen_params *p) {
    if (p->repetition_penalty != 1.0f) {
        float pen = p->repetition_penalty;
        /* every distinct id once: gather the original score, then scatter the penalised one */
        for (int i = 0; i < len; i++) {
            int id = seq[i], seen = 0;
            for (int j = 0; j < i && !seen; j++) seen = seq[j] == id;
            if (seen || id < 0 || id >= V) continue;
            sc[id] = sc[id] < 0 ? sc[id] * pen : sc[id] / pen;
        }
    }
    if (len - n_prompt < p->min_new_tokens) sc[eos] = -INFINITY;
}

/* torch.log_softmax in f32 (max-shifted, the sum accumulated wider) */
static void log_softmax(float *x, int V) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++) sum += exp((double)x[i] - mx);
    float lse = (float)log(sum);
    for (int i = 0; i < V; i++) x[i] = (x[i] - mx) - lse;
}

/* Indices of the k largest of v[0..n) in descending order; ties keep the lower index first. */
static void topk(const float *v, size_t n, int k, size_t *idx) {
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        float x = v[i];
        if (have == k && !(x > v[idx[k - 1]])) continue;
        int j = have < k ? have++ : k - 1;
        while (j > 0 && x > v[idx[j - 1]]) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = i;
    }
}

typedef struct gen_ctx {
    const da_blip *b;
    da_backend *be;
    da_arena act;
    dec_state s;
    float *logits; /* host [R, V] */
} gen_ctx;

static da_status run_step(gen_ctx *g, const int32_t *ids, int n, int past, da_error *err) {
    step_run sr = {g->b, &g->s, ids, n, past, false, g->logits};
    return da_plan_and_run(g->be, g->b->b.be, &g->act, step_forward, &sr, "BLIP decoder", err);
}

/* Reorder every layer's self-attention cache rows: row r takes row src[r] (positions 0..len). */
static void reorder_cache(gen_ctx *g, const int *src, int len) {
    dec_state *s = &g->s;
    int H = g->b->cfg.blip_text.hidden_size;
    size_t row = (size_t)s->Lmax * H, used = (size_t)len * H;
    float **caches[2] = {s->sk, s->sv};
    for (int i = 0; i < g->b->cfg.blip_text.num_layers; i++)
        for (int c = 0; c < 2; c++) {
            float *base = caches[c][i];
            for (int r = 0; r < s->R; r++) da_op_copy(g->be, s->tmp + r * row, base + r * row, used);
            for (int r = 0; r < s->R; r++) da_op_copy(g->be, base + r * row, s->tmp + (size_t)src[r] * row, used);
        }
}

static da_status greedy(gen_ctx *g, int B, const int32_t *prompt, int n_prompt, const da_blip_gen_params *p,
                        int32_t *out, int cap, int *n_out, da_error *err) {
    const da_blip_text_config *t = &g->b->cfg.blip_text;
    int V = t->vocab_size, Lmax = n_prompt + p->max_new_tokens, eos = t->sep_token_id;
    int32_t *seq = malloc((size_t)B * Lmax * sizeof *seq), *ids = malloc((size_t)B * n_prompt * sizeof *ids);
    bool *done = calloc((size_t)B, sizeof *done);
    da_status st = seq && ids && done ? DA_OK : da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    for (int r = 0; r < B && !st; r++) {
        memcpy(seq + (size_t)r * Lmax, prompt, (size_t)n_prompt * sizeof *prompt);
        memcpy(ids + (size_t)r * n_prompt, prompt, (size_t)n_prompt * sizeof *prompt);
        n_out[r] = 0;
    }
    int len = n_prompt;
    if (!st) st = run_step(g, ids, n_prompt, 0, err);
    while (!st) {
        int n_done = 0;
        for (int r = 0; r < B; r++) {
            int32_t *sq = seq + (size_t)r * Lmax;
            int32_t next = t->pad_token_id; /* finished rows continue on pad, as transformers does */
            if (!done[r]) {
                float *sc = g->logits + (size_t)r * V;
                process_scores(sc, V, sq, len, n_prompt, eos, p);
                int best = 0;
                for (int i = 1; i < V; i++)
                    if (sc[i] > sc[best]) best = i;
                next = best;
                out[(size_t)r * cap + n_out[r]++] = next;
                if (next == eos) done[r] = true;
            }
            sq[len] = next;
            ids[r] = next;
            n_done += done[r];
        }
        len++;
        if (n_done == B || len >= Lmax) break;
        st = run_step(g, ids, 1, len - 1, err);
    }
    free(seq), free(ids), free(done);
    return st;
}

/* transformers' vectorised beam search (generation/utils.py _beam_search and its helpers), one
 * batch item at a time on the host; f32 arithmetic where it computes in f32. */
typedef struct beam_item {
    int32_t *run;      /* [K, Lmax] running sequences */
    float *run_score;  /* [K] */
    int32_t *fin;      /* [K, Lmax] finished sequences */
    float *fin_score;  /* [K] */
    int *fin_len;      /* [K] tokens after the prompt */
    bool *fin_done;    /* [K] is_sent_finished */
    bool unsatisfied;  /* is_early_stop_heuristic_unsatisfied */
} beam_item;

static da_status beam(gen_ctx *g, int B, const int32_t *prompt, int n_prompt, const da_blip_gen_params *p,
                      int32_t *out, int cap, int *n_out, da_error *err) {
    const da_blip_text_config *t = &g->b->cfg.blip_text;
    const int K = p->num_beams, K2 = 2 * K, V = t->vocab_size, eos = t->sep_token_id, R = B * K;
    const int Lmax = n_prompt + p->max_new_tokens;
    const float NEG = -1.0e9f;
    beam_item *it = calloc((size_t)B, sizeof *it);
    int32_t *ids = malloc((size_t)R * n_prompt * sizeof *ids), *cand_seq = malloc((size_t)K2 * Lmax * sizeof *cand_seq);
    int32_t *m_seq = malloc((size_t)3 * K * Lmax * sizeof *m_seq);
    float *acc = malloc((size_t)K * V * sizeof *acc), *cand = malloc((size_t)K2 * sizeof *cand);
    float *runsc = malloc((size_t)K2 * sizeof *runsc), *m_sc = malloc((size_t)3 * K * sizeof *m_sc);
    size_t *idx = malloc((size_t)3 * K * sizeof *idx);
    bool *hits = malloc((size_t)K2 * sizeof *hits), *m_done = malloc((size_t)3 * K * sizeof *m_done);
    int *m_len = malloc((size_t)3 * K * sizeof *m_len), *src = malloc((size_t)R * sizeof *src);
    int *cand_beam = malloc((size_t)K2 * sizeof *cand_beam);
    da_status st = it && ids && cand_seq && m_seq && acc && cand && runsc && m_sc && idx && hits && m_done && m_len &&
                           src && cand_beam
                       ? DA_OK
                       : da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    for (int b = 0; b < B && !st; b++) {
        beam_item *x = &it[b];
        x->run = malloc((size_t)K * Lmax * sizeof *x->run);
        x->fin = malloc((size_t)K * Lmax * sizeof *x->fin);
        x->run_score = malloc((size_t)K * sizeof *x->run_score);
        x->fin_score = malloc((size_t)K * sizeof *x->fin_score);
        x->fin_len = calloc((size_t)K, sizeof *x->fin_len);
        x->fin_done = calloc((size_t)K, sizeof *x->fin_done);
        if (!x->run || !x->fin || !x->run_score || !x->fin_score || !x->fin_len || !x->fin_done) {
            st = da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
            break;
        }
        for (int k = 0; k < K; k++) {
            memcpy(x->run + (size_t)k * Lmax, prompt, (size_t)n_prompt * sizeof *prompt);
            memcpy(x->fin + (size_t)k * Lmax, prompt, (size_t)n_prompt * sizeof *prompt);
            memcpy(ids + ((size_t)b * K + k) * n_prompt, prompt, (size_t)n_prompt * sizeof *prompt);
            x->run_score[k] = k ? NEG : 0.0f; /* only the first beam starts live */
            x->fin_score[k] = NEG;
        }
        x->unsatisfied = true;
    }
    int cur = n_prompt;
    if (!st) st = run_step(g, ids, n_prompt, 0, err);
    while (!st) {
        bool any_unsat = false, all_fin = true, all_hit = true;
        for (int b = 0; b < B; b++) {
            beam_item *x = &it[b];
            /* log_softmax, processors on the running sequences, plus the running scores */
            for (int k = 0; k < K; k++) {
                float *sc = acc + (size_t)k * V;
                memcpy(sc, g->logits + ((size_t)b * K + k) * V, (size_t)V * sizeof *sc);
                log_softmax(sc, V);
                process_scores(sc, V, x->run + (size_t)k * Lmax, cur, n_prompt, eos, p);
                for (int v = 0; v < V; v++) sc[v] += x->run_score[k];
            }
            topk(acc, (size_t)K * V, K2, idx);
            for (int j = 0; j < K2; j++) {
                int bm = (int)(idx[j] / (size_t)V), tok = (int)(idx[j] % (size_t)V);
                cand[j] = acc[idx[j]];
                cand_beam[j] = bm;
                int32_t *cs = cand_seq + (size_t)j * Lmax;
                memcpy(cs, x->run + (size_t)bm * Lmax, (size_t)cur * sizeof *cs);
                cs[cur] = tok;
                hits[j] = tok == eos || cur + 1 >= Lmax;
                all_hit = all_hit && hits[j];
            }
            /* the next running beams: the best K candidates that did not stop */
            for (int j = 0; j < K2; j++) runsc[j] = cand[j] + (hits[j] ? NEG : 0.0f);
            topk(runsc, (size_t)K2, K, idx);
            for (int k = 0; k < K; k++) {
                int j = (int)idx[k];
                memcpy(x->run + (size_t)k * Lmax, cand_seq + (size_t)j * Lmax, (size_t)(cur + 1) * sizeof *x->run);
                x->run_score[k] = runsc[j];
                src[b * K + k] = b * K + cand_beam[j];
            }
            /* finished hypotheses: merge the top-K candidates that just stopped, length-penalised */
            bool full = true;
            for (int k = 0; k < K; k++) full = full && x->fin_done[k];
            float lp = (float)pow((double)(cur + 1 - n_prompt), (double)p->length_penalty);
            for (int k = 0; k < K; k++) {
                m_sc[k] = x->fin_score[k];
                m_done[k] = x->fin_done[k];
                m_len[k] = x->fin_len[k];
                memcpy(m_seq + (size_t)k * Lmax, x->fin + (size_t)k * Lmax, (size_t)Lmax * sizeof *m_seq);
            }
            for (int j = 0; j < K2; j++) {
                bool did = hits[j] && j < K;
                float sc = cand[j] / lp;
                if (full && p->early_stopping == 1) sc += NEG;
                if (!x->unsatisfied) sc += NEG;
                if (!did) sc += NEG;
                m_sc[K + j] = sc;
                m_done[K + j] = did;
                m_len[K + j] = cur + 1 - n_prompt;
                memcpy(m_seq + (size_t)(K + j) * Lmax, cand_seq + (size_t)j * Lmax, (size_t)(cur + 1) * sizeof *m_seq);
            }
            topk(m_sc, (size_t)3 * K, K, idx);
            for (int k = 0; k < K; k++) {
                int j = (int)idx[k];
                x->fin_score[k] = m_sc[j];
                x->fin_done[k] = m_done[j];
                x->fin_len[k] = m_len[j];
                memcpy(x->fin + (size_t)k * Lmax, m_seq + (size_t)j * Lmax, (size_t)Lmax * sizeof *x->fin);
            }
        }
        cur++;
        for (int b = 0; b < B; b++) {
            beam_item *x = &it[b];
            int best_len = p->early_stopping == -1 && p->length_penalty > 0 ? Lmax - n_prompt : cur - n_prompt;
            float best = x->run_score[0] / (float)pow((double)best_len, (double)p->length_penalty);
            float worst = x->fin_score[0];
            bool any = false;
            for (int k = 1; k < K; k++) worst = x->fin_score[k] < worst ? x->fin_score[k] : worst;
            for (int k = 0; k < K; k++) {
                any = any || best > (x->fin_done[k] ? worst : NEG);
                all_fin = all_fin && x->fin_done[k];
            }
            x->unsatisfied = x->unsatisfied && any;
            any_unsat = any_unsat || x->unsatisfied;
        }
        if (!any_unsat || (all_fin && p->early_stopping == 1) || all_hit) break;
        reorder_cache(g, src, cur - 1);
        for (int r = 0; r < R; r++) {
            const beam_item *x = &it[r / K];
            ids[r] = x->run[(size_t)(r % K) * Lmax + cur - 1];
        }
        st = run_step(g, ids, 1, cur - 1, err);
    }
    for (int b = 0; b < B && !st; b++) {
        const beam_item *x = &it[b];
        int n = x->fin_len[0] < cap ? x->fin_len[0] : cap;
        memcpy(out + (size_t)b * cap, x->fin + n_prompt, (size_t)n * sizeof *out);
        n_out[b] = n;
    }
    for (int b = 0; it && b < B; b++) {
        free(it[b].run), free(it[b].fin), free(it[b].run_score), free(it[b].fin_score);
        free(it[b].fin_len), free(it[b].fin_done);
    }
    free(it), free(ids), free(cand_seq), free(m_seq), free(acc), free(cand), free(runsc), free(m_sc), free(idx);
    free(hits), free(m_done), free(m_len), free(src), free(cand_beam);
    return st;
}

da_status da_blip_generate(const da_blip *b, da_backend *be, const float *image_embeds, int B, const int32_t *prompt,
                           int n_prompt, const da_blip_gen_params *p, int32_t *out, int cap, int *n_out,
                           da_error *err) {
    const da_blip_text_config *t = &b->cfg.blip_text;
    da_blip_gen_params def;
    if (!p) {
        da_blip_gen_params_init(&def);
        p = &def;
    }
    if (B < 1) return da_err_set(err, DA_ERR_SHAPE, "BLIP generate: batch %d, expected >= 1", B);
    if (p->num_beams < 1 || p->num_beams > 64)
        return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP generate: beams %d, expected 1..64", p->num_beams);
    if (n_prompt < 1 || prompt[0] != t->bos_token_id)
        return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP generate: the prompt must start with bos_token_id %d",
                          t->bos_token_id);
    if (p->max_new_tokens < 1 || n_prompt + p->max_new_tokens > t->max_positions)
        return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP generate: %d prompt + %d new tokens exceed the %d positions "
                          "(or no new tokens)", n_prompt, p->max_new_tokens, t->max_positions);
    if (p->min_new_tokens < 0 || !(p->repetition_penalty > 0) || !isfinite(p->length_penalty))
        return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP generate: min_new_tokens >= 0 and repetition_penalty > 0");
    if (cap < p->max_new_tokens)
        return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP generate: output capacity %d < max_new_tokens %d", cap,
                          p->max_new_tokens);
    if (check_ids(b, prompt, (size_t)n_prompt, err)) return err->code;
    int K = p->num_beams;
    if (size_check(b, B * K, n_prompt, err)) return err->code;
    da_backend *own = NULL;
    if (!be && !(be = own = da_backend_cpu_new())) return da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    gen_ctx g = {.b = b, .be = be};
    g.logits = malloc((size_t)B * K * t->vocab_size * sizeof *g.logits);
    da_status st = g.logits ? state_init(&g.s, b, be, B, K, n_prompt + p->max_new_tokens, err)
                            : da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    if (!st) {
        cross_run cr = {b, &g.s, image_embeds};
        st = da_plan_and_run(be, b->b.be, &g.act, cross_forward, &cr, "BLIP decoder", err);
        if (!st) st = K == 1 ? greedy(&g, B, prompt, n_prompt, p, out, cap, n_out, err)
                             : beam(&g, B, prompt, n_prompt, p, out, cap, n_out, err);
        state_free(&g.s);
    }
    da_arena_free(&g.act);
    free(g.logits);
    da_backend_free(own);
    return st;
}

/* ---- captions ------------------------------------------------------------------------------- */

da_status da_blip_prompt(const da_blip *b, const da_wordpiece *wp, const char *prefix, int32_t *ids, int cap, int *n,
                         da_error *err) {
    const da_blip_text_config *t = &b->cfg.blip_text;
    if (cap < 1) return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP prompt: no room");
    if (da_wordpiece_vocab_size(wp) > t->vocab_size)
        return da_err_set(err, DA_ERR_SHAPE, "BLIP: the tokenizer has %d tokens, the model's vocabulary %d",
                          da_wordpiece_vocab_size(wp), t->vocab_size);
    *n = 1;
    ids[0] = t->bos_token_id;
    if (!prefix || !*prefix) return DA_OK;
    int m = 0;
    int32_t *tmp = malloc((size_t)(cap + 1) * sizeof *tmp);
    if (!tmp) return da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    size_t full = 0;
    da_status st = da_wordpiece_encode_full(wp, prefix, true, tmp, cap + 1, &m, &full, err);
    if (!st && (full > (size_t)cap + 1 || m < 2))
        st = da_err_set(err, DA_ERR_INVALID_ARG, "BLIP prompt: the prefix is %zu tokens, at most %d fit", full, cap - 1);
    if (!st) {
        /* input_ids[:, 0] = bos; input_ids[:, :-1] */
        for (int i = 1; i < m - 1; i++) ids[i] = tmp[i];
        *n = m - 1;
    }
    free(tmp);
    return st;
}

da_status da_blip_caption(const da_blip *b, da_backend *be, da_arena *a, const da_wordpiece *wp,
                          const da_image *const *images, int n, const char *prefix, const da_blip_gen_params *p,
                          char **captions, da_error *err) {
    for (int i = 0; i < n; i++) captions[i] = NULL;
    if (n < 1) return da_err_set(err, DA_ERR_INVALID_ARG, "BLIP: no images");
    da_blip_gen_params def;
    if (!p) {
        da_blip_gen_params_init(&def);
        p = &def;
    }
    const da_blip_text_config *t = &b->cfg.blip_text;
    int S = b->cfg.vision.image_size, T = b->tokens, D = b->cfg.vision.hidden_size, cap = p->max_new_tokens;
    int32_t prompt[64];
    int np = 0;
    da_status st = da_blip_prompt(b, wp, prefix, prompt, 64, &np, err);
    if (st) return st;
    size_t per = (size_t)3 * S * S;
    float *px = malloc((size_t)n * per * sizeof *px), *emb = malloc((size_t)n * T * D * sizeof *emb);
    int32_t *out = malloc((size_t)n * (cap > 0 ? cap : 1) * sizeof *out), *seq = malloc((size_t)(np + cap + 1) * sizeof *seq);
    int *n_out = malloc((size_t)n * sizeof *n_out);
    if (!px || !emb || !out || !seq || !n_out) st = da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    for (int i = 0; i < n && !st; i++) st = da_blip_preprocess(b, images[i], px + (size_t)i * per, err);
    if (!st) st = da_blip_vision_forward(b, be, a, px, n, emb, NULL, err);
    if (!st) st = da_blip_generate(b, be, emb, n, prompt, np, p, out, cap, n_out, err);
    for (int i = 0; i < n && !st; i++) {
        memcpy(seq, prompt, (size_t)np * sizeof *seq);
        memcpy(seq + np, out + (size_t)i * cap, (size_t)n_out[i] * sizeof *seq);
        int len = np + n_out[i];
        /* the model's own special ids are dropped even where the tokenizer does not mark them */
        int k = 0;
        for (int j = 0; j < len; j++)
            if (seq[j] != t->bos_token_id && seq[j] != t->sep_token_id && seq[j] != t->pad_token_id) seq[k++] = seq[j];
        if (!(captions[i] = da_wordpiece_decode(wp, seq, k, true))) st = da_err_set(err, DA_ERR_NOMEM, "BLIP: out of memory");
    }
    if (st)
        for (int i = 0; i < n; i++) {
            free(captions[i]);
            captions[i] = NULL;
        }
    free(px), free(emb), free(out), free(seq), free(n_out);
    return st;
}
