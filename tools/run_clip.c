/* run_clip.c - `diffaug run` components for the CLIP networks (engine/clip.h), named after the
 * transformers forward() arguments and outputs:
 *   text_encoder  input_ids [B, L] (I32/I64) [+ clip_skip, an integer scalar] -> last_hidden_state
 *                 [B, L, D], pooler_output [B, D]          (CLIPTextModel; SD's text encoder)
 *   text_encoder_2 input_ids [+ clip_skip] -> last_hidden_state [B, L, D], penultimate [B, L, D]
 *                 (hidden_states[-2]: after layer N - 1, no final_layer_norm), text_embeds [B, P],
 *                 pooler_output [B, D]                    (SDXL's CLIPTextModelWithProjection)
 *                 text_encoder also writes penultimate (SDXL's first encoder uses it)
 *   clip_text     input_ids -> text_embeds [B, P], last_hidden_state, pooler_output
 *                                                           (CLIPModel.get_text_features)
 *   clip_vision   pixel_values [B, 3, S, S] (CLIP-normalised) -> image_embeds [B, P],
 *                 last_hidden_state [B, T, D], pooler_output [B, D] (CLIPVisionModelWithProjection)
 */
#include <stdlib.h>
#include <string.h>

#include "clip.h"
#include "run.h"
#include "util.h"

/* Every input tensor must be one this component reads: a misspelt optional input is an error, not
 * silently ignored. */
static da_status check_input_names(const run_ctx *ctx, const char *component, const char *const *allowed,
                                   da_error *err) {
    for (size_t i = 0; i < ctx->inputs->n_tensors; i++) {
        const char *name = ctx->inputs->tensors[i].name;
        bool ok = false;
        for (size_t j = 0; allowed[j]; j++) ok |= !strcmp(name, allowed[j]);
        if (!ok) {
            char list[256] = "";
            for (size_t j = 0; allowed[j]; j++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", j ? ", " : "", allowed[j]);
            return da_err_set(err, DA_ERR_INVALID_ARG, "%s: input '%s' is not an input of component %s (expected: %s)",
                              ctx->inputs->path, name, component, list);
        }
    }
    return DA_OK;
}

static da_status read_clip_skip(const run_ctx *ctx, int *out, da_error *err) {
    *out = 0;
    const da_st_tensor *t = da_st_find(ctx->inputs, "clip_skip");
    if (!t) return DA_OK;
    if ((t->dtype != DA_I32 && t->dtype != DA_I64) || t->numel != 1)
        return da_err_set(err, DA_ERR_SHAPE, "%s: input 'clip_skip' must be one I32 or I64 value", ctx->inputs->path);
    int64_t v;
    if (t->dtype == DA_I32) {
        int32_t x;
        memcpy(&x, t->data, 4);
        v = x;
    } else
        memcpy(&v, t->data, 8);
    if (v < 0 || v > 1000)
        return da_err_set(err, DA_ERR_BOUNDS, "%s: input 'clip_skip' is %lld, expected 0..layers-1", ctx->inputs->path,
                          (long long)v);
    *out = (int)v;
    return DA_OK;
}

static da_status run_text(run_ctx *ctx, const char *component, da_error *err) {
    const bool te2 = !strcmp(component, "text_encoder_2");
    const bool sd = te2 || !strcmp(component, "text_encoder");
    const da_component comp = te2 ? DA_COMP_TEXT_ENCODER_2 : sd ? DA_COMP_COUNT : DA_COMP_CLIP;
    static const char *const sd_inputs[] = {"input_ids", "clip_skip", NULL}, *const clip_inputs[] = {"input_ids", NULL};
    if (check_input_names(ctx, component, sd ? sd_inputs : clip_inputs, err)) return err->code;
    if (!sd && !da_model_has(ctx->model, DA_COMP_CLIP))
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: component %s needs a CLIPModel folder (text_projection)",
                          ctx->model_path, component);
    if (te2 && !da_model_has(ctx->model, DA_COMP_TEXT_ENCODER_2))
        return da_err_set(err, DA_ERR_INVALID_ARG, "%s: component %s needs an SDXL model (or its text_encoder_2 folder)",
                          ctx->model_path, component);
    da_clip_text *t = NULL;
    int32_t *ids = NULL;
    float *hid = NULL, *pen = NULL, *pool = NULL, *emb = NULL;
    da_arena a = {0};
    da_status st = da_clip_text_load(ctx->model, comp, &t, err);
    if (st) return st;
    const da_clip_text_config *c = da_clip_text_cfg(t);
    int64_t dims[2] = {-1, -1};
    da_clip_text_opts o;
    da_clip_text_opts_init(&o);
    if ((st = run_input_ids(ctx, "input_ids", dims, c->vocab_size - 1, &ids, err))) goto done;
    if (dims[1] > c->max_positions) {
        st = da_err_set(err, DA_ERR_SHAPE, "%s: input 'input_ids' has %lld tokens, expected at most %d",
                        ctx->inputs->path, (long long)dims[1], c->max_positions);
        goto done;
    }
    if (sd && (st = read_clip_skip(ctx, &o.clip_skip, err))) goto done;
    const bool want_emb = te2 || !sd; /* text_encoder on a CLIPModel folder stays the SD output set */
    int B = (int)dims[0], L = (int)dims[1], D = c->hidden_size, P = da_clip_text_projection_dim(t);
    hid = da_malloc((size_t)B * L * D * sizeof(float), err);
    pen = sd ? da_malloc((size_t)B * L * D * sizeof(float), err) : NULL;
    pool = da_malloc((size_t)B * D * sizeof(float), err);
    emb = want_emb ? da_malloc((size_t)B * P * sizeof(float), err) : NULL;
    if (!hid || (sd && !pen) || !pool || (want_emb && !emb)) {
        st = DA_ERR_NOMEM;
        goto done;
    }
    da_clip_text_out out = {.last_hidden_state = hid, .penultimate = pen, .pooler_output = pool, .text_embeds = emb};
    if ((st = da_clip_text_forward(t, ctx->be, &a, ids, B, L, &o, &out, err))) goto done;
    int64_t hd[3] = {B, L, D}, pd[2] = {B, D}, ed[2] = {B, P};
    if ((st = run_output(ctx, "last_hidden_state", 3, hd, hid, err)) ||
        (st = run_output(ctx, "pooler_output", 2, pd, pool, err)))
        goto done;
    if (sd && (st = run_output(ctx, "penultimate", 3, hd, pen, err))) goto done;
    if (want_emb) st = run_output(ctx, "text_embeds", 2, ed, emb, err);
done:
    free(ids), free(hid), free(pen), free(pool), free(emb);
    da_arena_free(&a);
    da_clip_text_free(t);
    return st;
}

da_status run_clip_text(run_ctx *ctx, const char *component, da_error *err) { return run_text(ctx, component, err); }

da_status run_clip_vision(run_ctx *ctx, const char *component, da_error *err) {
    static const char *const inputs[] = {"pixel_values", NULL};
    if (check_input_names(ctx, component, inputs, err)) return err->code;
    da_clip_vision *v = NULL;
    float *px = NULL, *hid = NULL, *pool = NULL, *emb = NULL;
    da_arena a = {0};
    da_status st = da_clip_vision_load(ctx->model, &v, err);
    if (st) return st;
    const da_clip_vision_config *c = da_clip_vision_cfg(v);
    int64_t dims[4] = {-1, 3, c->image_size, c->image_size};
    if ((st = run_input_f32(ctx, "pixel_values", 4, dims, &px, err))) goto done;
    int B = (int)dims[0], T = da_clip_vision_tokens(v), D = c->hidden_size, P = da_clip_vision_projection_dim(v);
    hid = da_malloc((size_t)B * T * D * sizeof(float), err);
    pool = da_malloc((size_t)B * D * sizeof(float), err);
    emb = da_malloc((size_t)B * P * sizeof(float), err);
    if (!hid || !pool || !emb) {
        st = DA_ERR_NOMEM;
        goto done;
    }
    da_clip_vision_out out = {hid, pool, emb};
    if ((st = da_clip_vision_forward(v, ctx->be, &a, px, B, &out, err))) goto done;
    int64_t hd[3] = {B, T, D}, pd[2] = {B, D}, ed[2] = {B, P};
    if ((st = run_output(ctx, "image_embeds", 2, ed, emb, err)) ||
        (st = run_output(ctx, "last_hidden_state", 3, hd, hid, err)) ||
        (st = run_output(ctx, "pooler_output", 2, pd, pool, err)))
        goto done;
done:
    free(px), free(hid), free(pool), free(emb);
    da_arena_free(&a);
    da_clip_vision_free(v);
    return st;
}
