/* clip.c - CLIP text and vision transformers (see clip.h).
 *
 * Mirrors transformers 5.23 models/clip/modeling_clip.py: CLIPTextEmbeddings, CLIPVisionEmbeddings,
 * CLIPEncoderLayer (pre-LN: layer_norm1 -> CLIPAttention -> residual, layer_norm2 -> CLIPMLP ->
 * residual), CLIPTextModel (causal mask, final_layer_norm, eos pooling), CLIPVisionModel
 * (pre_layrnorm, post_layernorm on the class token) and the projections of CLIPModel.
 * Activations are f32 [B, L, D] row-major (PyTorch order); weights stay in their stored dtype.
 */
#include "clip.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "weights.h"

/* ---- the shared encoder ---------------------------------------------------------------------- */

typedef struct clip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    da_w q, k, v, o, fc1, fc2;
    const float *q_b, *k_b, *v_b, *o_b, *fc1_b, *fc2_b;
} clip_layer;

typedef struct clip_encoder {
    int d, heads, inter, n_layers;
    float eps;
    da_act act;
    clip_layer *layers;
} clip_encoder;

static da_status act_of(const char *name, const char *what, da_act *out, da_error *err) {
    /* transformers ACT2FN: "quick_gelu" is x * sigmoid(1.702 x) (OpenAI CLIP), "gelu" the exact erf form */
    if (!strcmp(name, "quick_gelu")) *out = DA_ACT_QUICK_GELU;
    else if (!strcmp(name, "gelu")) *out = DA_ACT_GELU;
    else return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (quick_gelu, gelu)", what, name);
    return DA_OK;
}

static da_status encoder_bind(clip_encoder *e, da_binder *b, const char *prefix, int d, int heads, int inter,
                              int n_layers, float eps, const char *act, da_error *err) {
    if (d <= 0 || heads <= 0 || d % heads || inter <= 0 || n_layers <= 0)
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: invalid configuration (width %d, heads %d, mlp %d, layers %d)",
                          prefix, d, heads, inter, n_layers);
    if (act_of(act, prefix, &e->act, err)) return err->code;
    e->d = d, e->heads = heads, e->inter = inter, e->n_layers = n_layers, e->eps = eps;
    e->layers = calloc((size_t)n_layers, sizeof *e->layers);
    if (!e->layers) return da_err_set(err, DA_ERR_NOMEM, "%s: out of memory", prefix);
    for (int i = 0; i < n_layers; i++) {
        clip_layer *l = &e->layers[i];
#define P "%s.encoder.layers.%d."
        l->ln1_w = da_bind_f32(b, P "layer_norm1.weight", prefix, i);
        l->ln1_b = da_bind_f32(b, P "layer_norm1.bias", prefix, i);
        l->ln2_w = da_bind_f32(b, P "layer_norm2.weight", prefix, i);
        l->ln2_b = da_bind_f32(b, P "layer_norm2.bias", prefix, i);
        l->q = da_bind(b, P "self_attn.q_proj.weight", prefix, i);
        l->k = da_bind(b, P "self_attn.k_proj.weight", prefix, i);
        l->v = da_bind(b, P "self_attn.v_proj.weight", prefix, i);
        l->o = da_bind(b, P "self_attn.out_proj.weight", prefix, i);
        l->q_b = da_bind_f32(b, P "self_attn.q_proj.bias", prefix, i);
        l->k_b = da_bind_f32(b, P "self_attn.k_proj.bias", prefix, i);
        l->v_b = da_bind_f32(b, P "self_attn.v_proj.bias", prefix, i);
        l->o_b = da_bind_f32(b, P "self_attn.out_proj.bias", prefix, i);
        l->fc1 = da_bind(b, P "mlp.fc1.weight", prefix, i);
        l->fc2 = da_bind(b, P "mlp.fc2.weight", prefix, i);
        l->fc1_b = da_bind_f32(b, P "mlp.fc1.bias", prefix, i);
        l->fc2_b = da_bind_f32(b, P "mlp.fc2.bias", prefix, i);
#undef P
    }
    return DA_OK;
}

/* x [B, L, D] in place through layers [l0, l1): pre-LN self-attention and MLP blocks, each added
 * to the residual stream. Scratch (from a, released on return): h [M, D] for the normed input and
 * the attention output, q/k/v [M, D], f [M, inter]. */
static void encoder_forward(const clip_encoder *e, da_backend *be, da_arena *a, float *x, int B, int L, bool causal,
                            int l0, int l1) {
    size_t mark = da_arena_mark(a);
    int M = B * L, D = e->d, I = e->inter;
    size_t MD = (size_t)M * D;
    float *h = da_arena_floats(a, MD), *q = da_arena_floats(a, MD), *k = da_arena_floats(a, MD);
    float *v = da_arena_floats(a, MD), *f = da_arena_floats(a, (size_t)M * I);
    if (!h || !q || !k || !v || !f) {
        da_backend_fail(be, DA_ERR_NOMEM, "CLIP encoder: activation arena exhausted (plan smaller than run)");
        return;
    }
    /* CLIPAttention: scale = head_dim^-0.5, the text tower masks future keys (create_causal_mask) */
    dk_attn_params ap = dk_attn_params_packed(B, e->heads, L, L, D / e->heads, causal ? 1 : 0);
    for (int i = l0; i < l1; i++) {
        const clip_layer *l = &e->layers[i];
        da_op_layernorm(be, h, x, (size_t)M, (size_t)D, e->eps, l->ln1_w, l->ln1_b);
        da_op_linear(be, M, D, D, h, &l->q, l->q_b, q);
        da_op_linear(be, M, D, D, h, &l->k, l->k_b, k);
        da_op_linear(be, M, D, D, h, &l->v, l->v_b, v);
        da_op_attention(be, &ap, q, k, v, h);
        da_op_linear(be, M, D, D, h, &l->o, l->o_b, q);
        da_op_add(be, x, x, q, MD);
        da_op_layernorm(be, h, x, (size_t)M, (size_t)D, e->eps, l->ln2_w, l->ln2_b);
        da_op_linear(be, M, I, D, h, &l->fc1, l->fc1_b, f);
        da_op_act(be, e->act, f, f, (size_t)M * I);
        da_op_linear(be, M, D, I, f, &l->fc2, l->fc2_b, q);
        da_op_add(be, x, x, q, MD);
    }
    da_arena_reset(a, mark);
}

/* ---- text ------------------------------------------------------------------------------------ */

struct da_clip_text {
    da_clip_text_config cfg;
    da_component comp;
    da_binder b;
    da_w tok_emb;         /* [vocab, D], stored dtype: only the gathered rows are converted */
    const float *pos_emb; /* [max_positions, D] */
    clip_encoder enc;
    const float *final_w, *final_b;
    bool has_proj;
    da_w proj;            /* text_projection [P, D], no bias */
    int proj_dim;
};

da_status da_clip_text_load(const da_model_file *m, da_component comp, da_clip_text **out, da_error *err) {
    return da_clip_text_load_on(m, comp, NULL, out, err);
}

da_status da_clip_text_load_on(const da_model_file *m, da_component comp, da_backend *be, da_clip_text **out,
                               da_error *err) {
    *out = NULL;
    if (comp == DA_COMP_COUNT)
        comp = da_model_has(m, DA_COMP_TEXT_ENCODER)     ? DA_COMP_TEXT_ENCODER
               : da_model_has(m, DA_COMP_TEXT_ENCODER_2) ? DA_COMP_TEXT_ENCODER_2
                                                         : DA_COMP_CLIP;
    if (comp != DA_COMP_TEXT_ENCODER && comp != DA_COMP_TEXT_ENCODER_2 && comp != DA_COMP_CLIP)
        return da_err_set(err, DA_ERR_INVALID_ARG, "CLIP text: component %s has no text tower", da_component_name(comp));
    if (!da_model_has(m, comp))
        return da_err_set(err, DA_ERR_NOT_FOUND, "%s: the model has no %s component (a CLIP text tower)", m->path,
                          da_component_name(comp));
    da_clip_text *t = calloc(1, sizeof *t);
    if (!t) return da_err_set(err, DA_ERR_NOMEM, "CLIP text: out of memory");
    t->cfg = comp == DA_COMP_TEXT_ENCODER_2 ? m->cfg.text2 : m->cfg.text;
    t->comp = comp;
    da_binder_init(&t->b, m, comp);
    t->b.be = be;
    const da_clip_text_config *c = &t->cfg;
    t->tok_emb = da_bind(&t->b, "text_model.embeddings.token_embedding.weight");
    t->pos_emb = da_bind_f32(&t->b, "text_model.embeddings.position_embedding.weight");
    if (encoder_bind(&t->enc, &t->b, "text_model", c->hidden_size, c->num_heads, c->intermediate_size, c->num_layers,
                     c->layer_norm_eps, c->hidden_act, err)) {
        da_clip_text_free(t);
        return err->code;
    }
    t->final_w = da_bind_f32(&t->b, "text_model.final_layer_norm.weight");
    t->final_b = da_bind_f32(&t->b, "text_model.final_layer_norm.bias");
    if (comp == DA_COMP_CLIP || comp == DA_COMP_TEXT_ENCODER_2) { /* CLIPModel / CLIPTextModelWithProjection */
        t->has_proj = true;
        t->proj = da_bind(&t->b, "text_projection.weight");
        t->proj_dim = (int)t->proj.shape[0];
    }
    if (t->b.st) {
        da_status st = t->b.st;
        *err = t->b.err;
        da_clip_text_free(t);
        return st;
    }
    if (t->tok_emb.shape[0] != c->vocab_size || t->tok_emb.shape[1] != c->hidden_size ||
        (t->has_proj && t->proj.shape[1] != c->hidden_size)) {
        da_clip_text_free(t);
        return da_err_set(err, DA_ERR_SHAPE, "%s: text tower shapes disagree with the configuration", m->path);
    }
    *out = t;
    return DA_OK;
}

void da_clip_text_free(da_clip_text *t) {
    if (!t) return;
    free(t->enc.layers);
    da_binder_release(&t->b);
    free(t);
}

const da_clip_text_config *da_clip_text_cfg(const da_clip_text *t) { return &t->cfg; }
int da_clip_text_projection_dim(const da_clip_text *t) { return t->has_proj ? t->proj_dim : 0; }

void da_clip_text_opts_init(da_clip_text_opts *o) { memset(o, 0, sizeof *o); }

int da_clip_text_eos_pos(const da_clip_text_config *cfg, const int32_t *ids, int L) {
    int best = 0;
    if (cfg->eos_token_id == 2) {
        for (int j = 1; j < L; j++)
            if (ids[j] > ids[best]) best = j;
        return best;
    }
    for (int j = 0; j < L; j++)
        if (ids[j] == cfg->eos_token_id) return j;
    return 0;
}

typedef struct text_run {
    const da_clip_text *t;
    const int32_t *ids;
    const int *eos;
    int B, L, stop; /* run layers [0, stop) for last_hidden_state */
    bool want_pool;
    const da_clip_text_out *out;
} text_run;

/* ids [B, L] -> last_hidden_state [B, L, D], penultimate [B, L, D], pooler_output [B, D],
 * text_embeds [B, P]. The layers run once, in stretches between the points an output is taken:
 * after layer N - 1 (penultimate), after layer stop (clip_skip), after layer N. */
static void text_forward(const void *ctx, da_backend *be, da_arena *a) {
    const text_run *r = ctx;
    const da_clip_text *t = r->t;
    int B = r->B, L = r->L, D = t->cfg.hidden_size, N = t->enc.n_layers;
    size_t M = (size_t)B * L;
    const bool want_pen = r->out->penultimate != NULL;
    float *x = da_arena_floats(a, M * D);
    float *snap = r->stop < N && r->out->last_hidden_state ? da_arena_floats(a, M * D) : NULL;
    float *pool = r->want_pool ? da_arena_floats(a, (size_t)B * D) : NULL;
    float *emb = r->want_pool && r->out->text_embeds ? da_arena_floats(a, (size_t)B * t->proj_dim) : NULL;
    if (!x || (r->stop < N && r->out->last_hidden_state && !snap) || (r->want_pool && !pool) ||
        (r->want_pool && r->out->text_embeds && !emb)) {
        da_backend_fail(be, DA_ERR_NOMEM, "CLIP text: activation arena exhausted");
        return;
    }
    /* CLIPTextEmbeddings: token rows + position rows 0..L-1 (the first L*D floats of the table) */
    da_op_gather_rows(be, x, &t->tok_emb, r->ids, M, (size_t)D);
    da_op_add_row(be, x, x, t->pos_emb, (size_t)B, (size_t)L * D);
    int last = r->want_pool ? N : r->out->last_hidden_state ? r->stop : 0;
    if (want_pen && last < N - 1) last = N - 1;
    /* checkpoints in layer order: N - 1 (penultimate), stop (clip-skip output) */
    int cps[2] = {want_pen ? N - 1 : -1, r->stop < N ? r->stop : -1};
    if (cps[0] > cps[1]) {
        int tmp = cps[0];
        cps[0] = cps[1];
        cps[1] = tmp;
    }
    if (cps[0] == cps[1]) cps[0] = -1; /* clip_skip 1 and penultimate: one stop serves both */
    int cur = 0;
    for (int k = 0; k < 2; k++) {
        int cp = cps[k];
        if (cp < 0) continue;
        if (cp > cur) encoder_forward(&t->enc, be, a, x, B, L, true, cur, cp);
        cur = cp > cur ? cp : cur;
        /* hidden_states[-2] as transformers returns it: the residual stream after layer N - 1, before
         * final_layer_norm (what diffusers' StableDiffusionXLPipeline.encode_prompt takes) */
        if (want_pen && cp == N - 1) da_op_download(be, r->out->penultimate, x, M * D);
        if (snap && cp == r->stop) {
            /* diffusers clip_skip: final_layer_norm applied to the earlier layer's output */
            da_op_copy(be, snap, x, M * D);
            da_op_layernorm(be, snap, snap, M, (size_t)D, t->cfg.layer_norm_eps, t->final_w, t->final_b);
            da_op_download(be, r->out->last_hidden_state, snap, M * D);
        }
    }
    if (last > cur) encoder_forward(&t->enc, be, a, x, B, L, true, cur, last);
    if (last < N) return;
    da_op_layernorm(be, x, x, M, (size_t)D, t->cfg.layer_norm_eps, t->final_w, t->final_b);
    if (!snap && r->out->last_hidden_state) da_op_download(be, r->out->last_hidden_state, x, M * D);
    if (!r->want_pool) return;
    for (int b = 0; b < B; b++) da_op_copy(be, pool + (size_t)b * D, x + ((size_t)b * L + r->eos[b]) * D, (size_t)D);
    if (r->out->pooler_output) da_op_download(be, r->out->pooler_output, pool, (size_t)B * D);
    if (emb) {
        da_op_linear(be, B, t->proj_dim, D, pool, &t->proj, NULL, emb);
        da_op_download(be, r->out->text_embeds, emb, (size_t)B * t->proj_dim);
    }
}

da_status da_clip_text_forward(const da_clip_text *t, da_backend *be, da_arena *a, const int32_t *ids, int B, int L,
                               const da_clip_text_opts *opts, const da_clip_text_out *out, da_error *err) {
    const da_clip_text_config *c = &t->cfg;
    da_clip_text_opts def;
    if (!opts) {
        da_clip_text_opts_init(&def);
        opts = &def;
    }
    if (B < 1 || L < 1 || L > c->max_positions)
        return da_err_set(err, DA_ERR_SHAPE, "input_ids: shape [%d, %d], expected [batch >= 1, 1..%d]", B, L,
                          c->max_positions);
    /* GEMM row counts are int, and the MLP activations are B*L*intermediate floats */
    if ((int64_t)B * L * (c->intermediate_size > c->hidden_size ? c->intermediate_size : c->hidden_size) > INT32_MAX)
        return da_err_set(err, DA_ERR_OVERFLOW, "input_ids: batch %d x %d tokens is too large for one forward", B, L);
    if (opts->clip_skip < 0 || opts->clip_skip >= c->num_layers)
        return da_err_set(err, DA_ERR_INVALID_ARG, "clip_skip %d: expected 0..%d (the model has %d layers)",
                          opts->clip_skip, c->num_layers - 1, c->num_layers);
    if (out->text_embeds && !t->has_proj)
        return da_err_set(err, DA_ERR_INVALID_ARG,
                          "text_embeds: the %s component has no text_projection (use a CLIPModel or "
                          "text_encoder_2)",
                          da_component_name(t->comp));
    size_t M = (size_t)B * L;
    for (size_t i = 0; i < M; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return da_err_set(err, DA_ERR_BOUNDS, "input_ids[%zu][%zu] = %d is outside the vocabulary [0, %d)",
                              i / (size_t)L, i % (size_t)L, (int)ids[i], c->vocab_size);
    int *eos = malloc((size_t)B * sizeof *eos);
    if (!eos) return da_err_set(err, DA_ERR_NOMEM, "CLIP text: out of memory");
    for (int b = 0; b < B; b++) eos[b] = da_clip_text_eos_pos(c, ids + (size_t)b * L, L);
    text_run r = {t, ids, eos, B, L, c->num_layers - opts->clip_skip, out->pooler_output || out->text_embeds, out};
    da_status st = da_plan_and_run(be, t->b.be, a, text_forward, &r, "CLIP text", err);
    free(eos);
    return st;
}

da_status da_clip_text_encode_prompts(const da_clip_text *t, da_backend *be, da_arena *a, da_tokenizer *tok,
                                      const char *const *prompts, int n, const da_clip_text_opts *opts,
                                      const da_clip_text_out *out, da_error *err) {
    int L = t->cfg.max_positions;
    if (n < 1) return da_err_set(err, DA_ERR_INVALID_ARG, "CLIP text: no prompts");
    int32_t *ids = da_malloc((size_t)n * L * sizeof *ids, err);
    if (!ids) return DA_ERR_NOMEM;
    da_status st = DA_OK;
    for (int i = 0; i < n && !st; i++) {
        da_tok_output to;
        st = da_tokenizer_encode(tok, prompts[i], L, true, ids + (size_t)i * L, NULL, &to, err);
    }
    if (!st) st = da_clip_text_forward(t, be, a, ids, n, L, opts, out, err);
    free(ids);
    return st;
}

/* ---- vision ---------------------------------------------------------------------------------- */

struct da_clip_vision {
    da_clip_vision_config cfg;
    da_binder b;
    const float *class_emb; /* [D] */
    da_w patch;             /* [D, 3, p, p], no bias */
    const float *pos_emb;   /* [T, D] */
    const float *pre_w, *pre_b, *post_w, *post_b;
    clip_encoder enc;
    da_w proj;              /* visual_projection [P, D], no bias */
    int proj_dim, grid, tokens;
};

da_status da_clip_vision_load(const da_model_file *m, da_clip_vision **out, da_error *err) {
    return da_clip_vision_load_on(m, NULL, out, err);
}

da_status da_clip_vision_load_on(const da_model_file *m, da_backend *be, da_clip_vision **out, da_error *err) {
    *out = NULL;
    if (!da_model_has(m, DA_COMP_CLIP))
        return da_err_set(err, DA_ERR_NOT_FOUND, "%s: not a CLIPModel (no vision tower)", m->path);
    const da_clip_vision_config *c = &m->cfg.vision;
    if (c->patch_size <= 0 || c->image_size % c->patch_size || c->num_channels != 3)
        return da_err_set(err, DA_ERR_UNSUPPORTED, "%s: vision image_size %d / patch_size %d / channels %d unsupported",
                          m->path, c->image_size, c->patch_size, c->num_channels);
    da_clip_vision *v = calloc(1, sizeof *v);
    if (!v) return da_err_set(err, DA_ERR_NOMEM, "CLIP vision: out of memory");
    v->cfg = *c;
    v->grid = c->image_size / c->patch_size;
    v->tokens = v->grid * v->grid + 1;
    da_binder_init(&v->b, m, DA_COMP_CLIP);
    v->b.be = be;
    v->class_emb = da_bind_f32(&v->b, "vision_model.embeddings.class_embedding");
    v->patch = da_bind(&v->b, "vision_model.embeddings.patch_embedding.weight");
    v->pos_emb = da_bind_f32(&v->b, "vision_model.embeddings.position_embedding.weight");
    v->pre_w = da_bind_f32(&v->b, "vision_model.pre_layrnorm.weight");
    v->pre_b = da_bind_f32(&v->b, "vision_model.pre_layrnorm.bias");
    if (encoder_bind(&v->enc, &v->b, "vision_model", c->hidden_size, c->num_heads, c->intermediate_size,
                     c->num_layers, c->layer_norm_eps, c->hidden_act, err)) {
        da_clip_vision_free(v);
        return err->code;
    }
    v->post_w = da_bind_f32(&v->b, "vision_model.post_layernorm.weight");
    v->post_b = da_bind_f32(&v->b, "vision_model.post_layernorm.bias");
    v->proj = da_bind(&v->b, "visual_projection.weight");
    v->proj_dim = (int)v->proj.shape[0];
    if (v->b.st) {
        da_status st = v->b.st;
        *err = v->b.err;
        da_clip_vision_free(v);
        return st;
    }
    *out = v;
    return DA_OK;
}

void da_clip_vision_free(da_clip_vision *v) {
    if (!v) return;
    free(v->enc.layers);
    da_binder_release(&v->b);
    free(v);
}

const da_clip_vision_config *da_clip_vision_cfg(const da_clip_vision *v) { return &v->cfg; }
int da_clip_vision_projection_dim(const da_clip_vision *v) { return v->proj_dim; }
int da_clip_vision_tokens(const da_clip_vision *v) { return v->tokens; }

typedef struct vision_run {
    const da_clip_vision *v;
    const float *pixels;
    int B;
    const da_clip_vision_out *out;
} vision_run;

/* pixel_values [B, 3, S, S] -> last_hidden_state [B, T, D], pooler_output [B, D], image_embeds [B, P] */
static void vision_forward(const void *ctx, da_backend *be, da_arena *a) {
    const vision_run *r = ctx;
    const da_clip_vision *v = r->v;
    int B = r->B, S = v->cfg.image_size, p = v->cfg.patch_size, D = v->cfg.hidden_size, T = v->tokens;
    size_t np = (size_t)v->grid * v->grid;
    size_t npx = (size_t)B * 3 * S * S;
    float *x = da_arena_floats(a, (size_t)B * T * D), *pool = da_arena_floats(a, (size_t)B * D);
    float *emb = da_arena_floats(a, (size_t)B * v->proj_dim);
    size_t mark = da_arena_mark(a);
    float *px = da_arena_floats(a, npx), *pe = da_arena_floats(a, (size_t)B * D * np);
    if (!x || !pool || !emb || !px || !pe) {
        da_backend_fail(be, DA_ERR_NOMEM, "CLIP vision: activation arena exhausted");
        return;
    }
    /* CLIPVisionEmbeddings: non-overlapping patches by a stride-p convolution without bias, the
     * class embedding in front, then positions */
    da_op_upload(be, px, r->pixels, npx);
    dk_conv2d cs = dk_conv2d_make(B, 3, S, S, D, p, p, 0);
    da_op_conv2d(be, &cs, px, &v->patch, NULL, pe);
    for (int b = 0; b < B; b++) {
        float *xb = x + (size_t)b * T * D;
        da_op_copy(be, xb, v->class_emb, (size_t)D);
        /* [D, grid*grid] -> [grid*grid, D]: patch_embeds.flatten(2).transpose(1, 2) */
        da_op_transpose(be, xb + D, pe + (size_t)b * D * np, 1, (size_t)D, np);
    }
    da_arena_reset(a, mark);
    da_op_add_row(be, x, x, v->pos_emb, (size_t)B, (size_t)T * D);
    da_op_layernorm(be, x, x, (size_t)B * T, (size_t)D, v->cfg.layer_norm_eps, v->pre_w, v->pre_b);
    encoder_forward(&v->enc, be, a, x, B, T, false, 0, v->enc.n_layers);
    if (r->out->last_hidden_state) da_op_download(be, r->out->last_hidden_state, x, (size_t)B * T * D);
    for (int b = 0; b < B; b++) da_op_copy(be, pool + (size_t)b * D, x + (size_t)b * T * D, (size_t)D);
    da_op_layernorm(be, pool, pool, (size_t)B, (size_t)D, v->cfg.layer_norm_eps, v->post_w, v->post_b);
    if (r->out->pooler_output) da_op_download(be, r->out->pooler_output, pool, (size_t)B * D);
    if (r->out->image_embeds) {
        da_op_linear(be, B, v->proj_dim, D, pool, &v->proj, NULL, emb);
        da_op_download(be, r->out->image_embeds, emb, (size_t)B * v->proj_dim);
    }
}

da_status da_clip_vision_forward(const da_clip_vision *v, da_backend *be, da_arena *a, const float *pixel_values,
                                 int B, const da_clip_vision_out *out, da_error *err) {
    if (B < 1) return da_err_set(err, DA_ERR_SHAPE, "pixel_values: batch %d, expected >= 1", B);
    const da_clip_vision_config *c = &v->cfg;
    int64_t widest = c->intermediate_size > c->hidden_size ? c->intermediate_size : c->hidden_size;
    if ((int64_t)B * v->tokens * widest > INT32_MAX || (int64_t)B * 3 * c->image_size * c->image_size > INT32_MAX)
        return da_err_set(err, DA_ERR_OVERFLOW, "pixel_values: batch %d is too large for one forward", B);
    vision_run r = {v, pixel_values, B, out};
    return da_plan_and_run(be, v->b.be, a, vision_forward, &r, "CLIP vision", err);
}

da_status da_clip_vision_encode_images(const da_clip_vision *v, da_backend *be, da_arena *a,
                                       const da_image *const *images, int n, float *image_embeds, da_error *err) {
    if (n < 1) return da_err_set(err, DA_ERR_INVALID_ARG, "CLIP vision: no images");
    size_t S = (size_t)v->cfg.image_size, per = 3 * S * S;
    float *px = da_malloc((size_t)n * per * sizeof *px, err);
    if (!px) return DA_ERR_NOMEM;
    da_status st = DA_OK;
    for (int i = 0; i < n && !st; i++) st = da_image_clip_preprocess(images[i], (int)S, px + (size_t)i * per, err);
    da_clip_vision_out out = {.image_embeds = image_embeds};
    if (!st) st = da_clip_vision_forward(v, be, a, px, n, &out, err);
    free(px);
    return st;
}
